//! Start-up failures name their cause, and TLS to PostgreSQL works for real.
//!
//! The TLS test makes its own CA and server certificate (openssl CLI) and
//! starts a PostgreSQL cluster of its own on a free port, with `ssl = on`,
//! a password for `postgres` and SCRAM for every TCP connection. It needs
//! PostgreSQL's server binaries (`pg_config --bindir`, or `PG_BINDIR`) and
//! `openssl`; as root it runs the server as the `postgres` user. Where
//! those are missing it says so on stderr and does nothing, except in CI
//! (`CI=true`) or with `TEST_DATABASE_URL` set (as `.ci/run` does), where
//! that fails it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};
use tempfile::TempDir;
use todo_persistence::{ConnectError, Database, DatabaseSettings, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The cluster's `postgres` password; no error message may show it.
const PASSWORD: &str = "tls-test-Secret-7319";

fn settings(url: &str, acquire_timeout: Duration) -> DatabaseSettings {
    DatabaseSettings {
        url: url.to_owned(),
        max_connections: 1,
        acquire_timeout,
        statement_timeout: Duration::from_secs(5),
    }
}

/// Connects to `url`, which must fail, and checks that nothing of the URL
/// (the password above all) shows in the error or its causes.
async fn failure(url: &str, acquire_timeout: Duration) -> ConnectError {
    let err = match connect(&settings(url, acquire_timeout)).await {
        Ok(_) => panic!("connected, but the start-up should have failed"),
        Err(err) => err,
    };
    let shown = error_chain(&err);
    assert!(!shown.contains(PASSWORD), "the password shows: {shown}");
    assert!(!shown.contains(url), "the URL shows: {shown}");
    err
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = format!("{err} / {err:?}");
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause} / {cause:?}"));
        source = cause.source();
    }
    text
}

/// A local port nothing listens on (it was free a moment ago).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP server on loopback that handles each connection with `serve`.
async fn fake_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    address
}

// --- Failures that need no server ---------------------------------------------

async fn unknown_host() -> ConnectError {
    // `.invalid` never resolves (RFC 2606).
    failure(
        &format!("postgres://postgres:{PASSWORD}@no-such-host.invalid:5432/postgres"),
        Duration::from_secs(2),
    )
    .await
}

async fn refused() -> ConnectError {
    failure(
        &format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
            free_port()
        ),
        Duration::from_millis(500),
    )
    .await
}

/// A server that accepts connections and never says a word.
async fn no_answer() -> ConnectError {
    let silent = fake_server(|stream| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    })
    .await;
    failure(
        &format!("postgres://postgres:{PASSWORD}@{silent}/postgres?sslmode=disable"),
        Duration::from_millis(500),
    )
    .await
}

/// A server that answers "no" to the TLS request, as PostgreSQL with
/// `ssl = off` does.
async fn tls_not_offered() -> ConnectError {
    let plain = fake_server(|mut stream| async move {
        let mut ssl_request = [0_u8; 8];
        if stream.read_exact(&mut ssl_request).await.is_ok() {
            let _ = stream.write_all(b"N").await;
        }
    })
    .await;
    failure(
        &format!("postgres://postgres:{PASSWORD}@{plain}/postgres?sslmode=require"),
        Duration::from_secs(2),
    )
    .await
}

#[tokio::test]
async fn an_unknown_host_is_named_as_such() {
    let err = unknown_host().await;
    assert!(matches!(err, ConnectError::HostUnknown(_)), "{err:?}");
    assert!(err.to_string().contains("host name is unknown"), "{err}");
}

#[tokio::test]
async fn a_refused_connection_is_named_as_such() {
    let err = refused().await;
    assert!(matches!(err, ConnectError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("connection refused"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_named_as_such() {
    let err = no_answer().await;
    assert!(matches!(err, ConnectError::NoAnswer(_)), "{err:?}");
    assert!(err.to_string().contains("no answer"), "{err}");
}

#[tokio::test]
async fn a_server_without_tls_fails_sslmode_require_as_tls() {
    let err = tls_not_offered().await;
    assert!(matches!(err, ConnectError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("TLS failed"), "{err}");
}

// --- A TLS cluster of our own -------------------------------------------------

/// A PostgreSQL cluster in a temporary directory, stopped when dropped.
struct TlsCluster {
    directory: TempDir,
    bin: PathBuf,
    /// As root the server must run as `postgres`: it refuses to run as root.
    as_postgres: bool,
    port: u16,
}

impl TlsCluster {
    /// Starts the cluster, or `None` (outside CI) when this machine lacks
    /// what it needs.
    fn start() -> Option<TlsCluster> {
        let missing = |what: String| -> Option<TlsCluster> {
            // As for the test databases: in CI, or wherever a PostgreSQL
            // is named for the tests (`.ci/run` always names one), a
            // machine that cannot run this is a broken set-up.
            let required = std::env::var("CI").is_ok_and(|value| value == "true")
                || std::env::var_os("TEST_DATABASE_URL").is_some();
            assert!(!required, "the TLS test cannot run here: {what}");
            let _ = writeln!(
                std::io::stderr(),
                "note: the TLS start-up test did not run: {what}"
            );
            None
        };
        let Some(bin) = postgres_bindir() else {
            return missing("no PostgreSQL server binaries (set PG_BINDIR)".into());
        };
        if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
            return missing(format!("no initdb or pg_ctl in {}", bin.display()));
        }
        if Command::new("openssl").arg("version").output().is_err() {
            return missing("no openssl command".into());
        }
        let as_postgres = is_root();
        if as_postgres && Command::new("runuser").arg("--help").output().is_err() {
            return missing("running as root, but no runuser to become postgres".into());
        }

        let directory = tempfile::Builder::new()
            .prefix("todo-api-tls-")
            .tempdir()
            .unwrap();
        let cluster = TlsCluster {
            directory,
            bin,
            as_postgres,
            port: free_port(),
        };
        cluster.make_certificates();
        cluster.init();
        cluster.pg_ctl(&["start", "-w", "-t", "60", "-l"], Some("server.log"));
        Some(cluster)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    /// A CA, a server certificate it signs for `localhost` only, and a
    /// second CA that signs nothing of this server's.
    fn make_certificates(&self) {
        let new_ca = |name: &str| {
            run(self
                .openssl()
                .args(["req", "-x509", "-nodes", "-days", "2"])
                .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
                .args([
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.crt"),
                ])
                .args(["-subj", &format!("/CN=todo-api test {name}")])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
        };
        new_ca("ca");
        new_ca("other-ca");
        std::fs::write(
            self.path("server.ext"),
            "subjectAltName = DNS:localhost\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        run(self
            .openssl()
            .args(["req", "-new", "-nodes"])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-keyout", "server.key", "-out", "server.csr"])
            .args(["-subj", "/CN=localhost"]));
        run(self
            .openssl()
            .args(["x509", "-req", "-days", "2", "-in", "server.csr"])
            .args(["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"])
            .args(["-out", "server.crt", "-extfile", "server.ext"]));
    }

    fn openssl(&self) -> Command {
        let mut command = Command::new("openssl");
        command.current_dir(self.directory.path());
        command
    }

    /// `initdb` with a password for `postgres` and SCRAM on every TCP
    /// connection, then the server's TLS settings.
    fn init(&self) {
        std::fs::write(self.path("password"), PASSWORD).unwrap();
        if self.as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(self.directory.path()));
        }
        run(self
            .as_server_user(&self.bin.join("initdb"))
            .arg("-D")
            .arg(self.path("data"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", self.path("password").display()))
            .args(["--no-sync", "--no-instructions", "--locale=C", "-E", "UTF8"]));
        let directory = self.directory.path().display();
        let mut config = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("data/postgresql.conf"))
            .unwrap();
        write!(
            config,
            "\nport = {port}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{directory}'\n\
             ssl = on\n\
             ssl_cert_file = '{directory}/server.crt'\n\
             ssl_key_file = '{directory}/server.key'\n\
             fsync = off\n\
             max_connections = 20\n\
             shared_buffers = 16MB\n",
            port = self.port,
        )
        .unwrap();
        // The server refuses a key others may read.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            self.path("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }

    fn as_server_user(&self, program: &Path) -> Command {
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.current_dir(self.directory.path());
        command
    }

    fn pg_ctl(&self, arguments: &[&str], log: Option<&str>) {
        let mut command = self.as_server_user(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(self.path("data")).args(arguments);
        if let Some(log) = log {
            command.arg(self.path(log));
        }
        run(&mut command);
    }

    /// `postgres://postgres:<password>@<host>:<port>/<database>?<query>`.
    fn url(&self, host: &str, password: &str, database: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{password}@{host}:{}/{database}?{query}",
            self.port
        )
    }

    fn ca(&self, name: &str) -> String {
        self.path(&format!("{name}.crt")).display().to_string()
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let mut command = self.as_server_user(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.path("data"))
            .args(["stop", "-m", "immediate", "-w"]);
        if let Ok(output) = command.output()
            && !output.status.success()
        {
            eprintln!(
                "warning: the TLS test cluster did not stop: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// Runs `command`, failing the test with its output if it fails.
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?} did not start: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `PG_BINDIR`, else what `pg_config` says, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout).
fn postgres_bindir() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("PG_BINDIR") {
        return Some(PathBuf::from(bin));
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
        && let Ok(bin) = String::from_utf8(output.stdout)
    {
        return Some(PathBuf::from(bin.trim()));
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .map(|version| PathBuf::from(format!("/usr/lib/postgresql/{version}/bin")))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// Connects and answers whether the session is encrypted.
async fn encrypted_session(url: &str) -> bool {
    let db: Database = connect(&settings(url, Duration::from_secs(10)))
        .await
        .unwrap_or_else(|err| panic!("{err}: {}", error_chain(&err)));
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap();
    let ssl = row.try_get_by_index::<bool>(0).unwrap();
    db.close().await.unwrap();
    ssl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_postgres_of_our_own_and_every_start_up_failure_named() {
    let started = Instant::now();
    let Some(cluster) = TlsCluster::start() else {
        return;
    };
    let start_took = started.elapsed();
    let ca = cluster.ca("ca");

    // Encrypted, not verified (the Neon-style URL).
    assert!(
        encrypted_session(&cluster.url("127.0.0.1", PASSWORD, "postgres", "sslmode=require")).await
    );
    // Verified against our CA, with and without the host name.
    assert!(
        encrypted_session(&cluster.url(
            "localhost",
            PASSWORD,
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        ))
        .await
    );
    assert!(
        encrypted_session(&cluster.url(
            "127.0.0.1",
            PASSWORD,
            "postgres",
            &format!("sslmode=verify-ca&sslrootcert={ca}")
        ))
        .await
    );

    let quick = Duration::from_secs(10);
    // The certificate names `localhost`, not `127.0.0.1`.
    let wrong_name = failure(
        &cluster.url(
            "127.0.0.1",
            PASSWORD,
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        quick,
    )
    .await;
    let other_ca = failure(
        &cluster.url(
            "localhost",
            PASSWORD,
            "postgres",
            &format!("sslmode=verify-ca&sslrootcert={}", cluster.ca("other-ca")),
        ),
        quick,
    )
    .await;
    // Only the public roots compiled in: our CA is not among them.
    let public_roots_only = failure(
        &cluster.url("localhost", PASSWORD, "postgres", "sslmode=verify-full"),
        quick,
    )
    .await;
    for err in [&wrong_name, &other_ca, &public_roots_only] {
        assert!(matches!(err, ConnectError::Tls(_)), "{err:?}");
    }

    let wrong_password = failure(
        &cluster.url(
            "127.0.0.1",
            "not-the-password",
            "postgres",
            "sslmode=require",
        ),
        quick,
    )
    .await;
    assert!(
        matches!(wrong_password, ConnectError::Authentication(_)),
        "{wrong_password:?}"
    );
    let missing_database = failure(
        &cluster.url(
            "localhost",
            PASSWORD,
            "no_such_database",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        quick,
    )
    .await;
    assert!(
        matches!(missing_database, ConnectError::DatabaseMissing(_)),
        "{missing_database:?}"
    );

    // One message a class, and each says which.
    let classes = [
        ("TLS verification", wrong_name),
        ("authentication", wrong_password),
        ("database missing", missing_database),
        ("host unknown", unknown_host().await),
        ("refused", refused().await),
        ("no answer", no_answer().await),
        ("TLS not offered", tls_not_offered().await),
    ];
    let messages: Vec<String> = classes.iter().map(|(_, err)| err.to_string()).collect();
    for (index, (class, err)) in classes.iter().enumerate() {
        assert_ne!(
            err.to_string(),
            "could not connect to the database",
            "{class}: only the generic message"
        );
        let same = messages
            .iter()
            .enumerate()
            .filter(|(other, message)| *other != index && **message == messages[index])
            .count();
        // Both TLS failures share the TLS message; every other class has
        // its own.
        let expected = usize::from(class.starts_with("TLS"));
        assert_eq!(same, expected, "{class}: {err}");
    }

    let stopping = Instant::now();
    drop(cluster);
    let _ = writeln!(
        std::io::stderr(),
        "reliability: TLS cluster of our own: started in {start_took:?} (certificates, initdb, \
         pg_ctl start), stopped in {:?}; sslmode=require, verify-full (localhost) and verify-ca \
         with the test CA connect, encrypted; verify-full with a wrong host name, verify-ca with \
         another CA and verify-full with the public roots only fail as TLS; a wrong password as \
         authentication; a missing database as such",
        stopping.elapsed()
    );
}

/// A pool connected lazily opens nothing when made: it comes back at once
/// even with nothing listening at the address, and an unreachable server
/// shows only at the first statement.
#[tokio::test]
async fn a_lazy_pool_opens_nothing_until_a_statement_needs_it() {
    let url = format!("postgres://postgres@127.0.0.1:{}/nothing", free_port());
    let started = Instant::now();
    let db = todo_persistence::connect_lazily(&settings(&url, Duration::from_millis(300)))
        .await
        .expect("a lazy pool makes no connection, so none can fail");
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(todo_persistence::pool_usage(&db).unwrap().open, 0);
    assert!(db.execute_unprepared("SELECT 1").await.is_err());
}
