//! Settings, read once at start-up from the environment (and a `.env` file
//! when present). Defaults make a bare `cargo run` work on an embedded
//! SQLite file; anything set but wrong stops the service with the
//! variable's name in the message.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use todo_domain::SignInLimit;

use crate::proxies::TrustedProxies;

mod external;

pub use external::ExternalAuthSettings;

/// Where the embedded default database lives, relative to the working
/// directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://todo-api.sqlite3?mode=rwc";
const MIN_SECRET_BYTES: usize = 32;

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable is set to something unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it (never its value, which may be secret).
        reason: &'static str,
    },
    /// A variable that is no longer read is set: refused rather than
    /// ignored, so that its meaning is not lost without notice.
    #[error("{name} is no longer read: {instead}")]
    Retired {
        /// The variable.
        name: &'static str,
        /// What to set instead.
        instead: &'static str,
    },
    /// A variable that has no default here is missing.
    #[error("{name} must be set: {reason}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// Why it is required.
        reason: &'static str,
    },
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interface to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// `postgres://…` or `sqlite://…`.
    pub database_url: SecretString,
    /// The most connections the instance opens (`DATABASE_MAX_CONNECTIONS`);
    /// unset, the instance sizes its pools to the machine (see
    /// `startup::ConnectionShares`).
    pub database_max_connections: Option<u32>,
    /// How long a request waits for a pooled connection before it is
    /// answered 503.
    pub database_acquire_timeout: Duration,
    /// The longest a statement may run before it is cancelled and the
    /// request answered 503.
    pub database_statement_timeout: Duration,
    /// HS256 key of the tokens.
    pub jwt_secret: SecretString,
    /// True when the secret was generated because none was configured;
    /// tokens then die with the process.
    pub jwt_secret_generated: bool,
    /// `iss` of issued tokens, and the only one accepted.
    pub jwt_issuer: String,
    /// Lifetime of issued tokens.
    pub jwt_ttl: Duration,
    /// Origins allowed to call the API from a browser.
    pub cors_allowed_origins: Vec<String>,
    /// Abuse and fault limits: rate limits, request timeouts, shutdown.
    pub hardening: HardeningSettings,
    /// Failed sign-ins allowed per email within a window
    /// (`SIGN_IN_FAILURES_PER_ACCOUNT`, default 10, within
    /// `SIGN_IN_FAILURE_WINDOW_SECONDS`, default 900), across every
    /// instance.
    pub sign_in_limit: SignInLimit,
    /// Tokens of an external identity provider, when configured.
    pub external_auth: Option<ExternalAuthSettings>,
    /// Whether `GET /metrics` is served (and requests are counted).
    pub metrics_enabled: bool,
    /// The most tasks one user may own (`MAX_TASKS_PER_USER`, default
    /// 10,000, at least 1).
    pub max_tasks_per_user: u32,
    /// How many days the changes feed remembers a deletion
    /// (`CHANGES_RETENTION_DAYS`, default 30, at least 1); a feed cursor
    /// older than that is 410 `cursor_expired`.
    pub changes_retention_days: u32,
    /// How often an open event stream carries a comment when nothing else
    /// was sent (`STREAM_HEARTBEAT_SECONDS`, default 15, at least 1): the
    /// contract's "at least every 15 seconds", and what keeps proxies from
    /// closing a quiet stream.
    pub stream_heartbeat: Duration,
}

/// Limits that protect the service from abusive or broken clients, and the
/// grace period of a shutdown (see `docs/reliability.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardeningSettings {
    /// How long SIGTERM waits for in-flight requests before the process
    /// exits anyway (`SHUTDOWN_TIMEOUT_SECONDS`, default 30).
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's line and headers
    /// (`CLIENT_REQUEST_TIMEOUT_SECONDS`, default 5).
    pub client_request_timeout: Duration,
    /// How long a client may take to send a request's body
    /// (`REQUEST_BODY_TIMEOUT_SECONDS`, default 10).
    pub request_body_timeout: Duration,
    /// How long an idle connection is kept open for another request
    /// (`KEEP_ALIVE_SECONDS`, default 5; 0 turns keep-alive off). A
    /// connection with no request in progress for this long plus the head
    /// timeout is closed by `connection_watch`, since actix-http reliably
    /// times only the first request head of a connection.
    pub keep_alive: Option<Duration>,
    /// Sign-ups and sign-ins one client address may make per minute, on
    /// average (`AUTH_RATE_LIMIT_PER_MINUTE`, default 20).
    pub auth_rate_limit_per_minute: u32,
    /// How many of those may come at once (`AUTH_RATE_LIMIT_BURST`,
    /// default 10).
    pub auth_rate_limit_burst: u32,
    /// How many sign-ups and sign-ins may wait for the password hasher
    /// (`PASSWORD_HASH_QUEUE`, default 32); one more is answered 503
    /// `busy` at once.
    pub password_hash_queue: u32,
    /// How long one of them may wait for its turn before it is answered
    /// 503 `busy` (`PASSWORD_HASH_WAIT_SECONDS`, default 2).
    pub password_hash_wait: Duration,
    /// The reverse proxies whose `X-Forwarded-For` is believed
    /// (`TRUSTED_PROXIES`, default none: the client is the TCP peer).
    pub trusted_proxies: TrustedProxies,
}

impl Settings {
    /// Reads the process environment, after loading `.env` if present.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env file is the normal case in production.
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the
    /// process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let embedded = database_url.starts_with("sqlite://");
        if !embedded
            && !database_url.starts_with("postgres://")
            && !database_url.starts_with("postgresql://")
        {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                reason: "must start with postgres://, postgresql:// or sqlite://",
            });
        }

        let (jwt_secret, jwt_secret_generated) = match get("JWT_SECRET") {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    reason: "must be at least 32 bytes long",
                });
            }
            Some(secret) => (SecretString::from(secret), false),
            None if embedded => (random_secret()?, true),
            None => {
                return Err(ConfigError::Missing {
                    name: "JWT_SECRET",
                    reason: "required with PostgreSQL (at least 32 bytes)",
                });
            }
        };

        let jwt_issuer = get("JWT_ISSUER").unwrap_or_else(|| "todo-api".to_owned());
        let external_auth = external::from_lookup(&get, &jwt_issuer)?;

        Ok(Self {
            host: get("HOST").unwrap_or_else(|| "127.0.0.1".to_owned()),
            port: parse_or(get("PORT"), "PORT", 8080, "must be a port number")?,
            database_url: SecretString::from(database_url),
            database_max_connections: parse_optional(
                get("DATABASE_MAX_CONNECTIONS"),
                "DATABASE_MAX_CONNECTIONS",
                "must be a positive whole number",
            )?,
            database_acquire_timeout: Duration::from_secs(parse_or(
                get("DATABASE_ACQUIRE_TIMEOUT"),
                "DATABASE_ACQUIRE_TIMEOUT",
                5,
                "must be a whole number of seconds",
            )?),
            database_statement_timeout: positive_seconds(&get, "DATABASE_STATEMENT_TIMEOUT", 5)?,
            jwt_secret,
            jwt_secret_generated,
            jwt_issuer,
            jwt_ttl: Duration::from_secs(parse_or(
                get("JWT_TTL_SECONDS"),
                "JWT_TTL_SECONDS",
                86_400,
                "must be a whole number of seconds",
            )?),
            cors_allowed_origins: get("CORS_ALLOWED_ORIGINS")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|origin| !origin.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            hardening: HardeningSettings::from_lookup(&get)?,
            sign_in_limit: sign_in_limit(&get)?,
            external_auth,
            metrics_enabled: parse_or(
                get("METRICS_ENABLED"),
                "METRICS_ENABLED",
                true,
                "must be true or false",
            )?,
            max_tasks_per_user: parse_or(
                get("MAX_TASKS_PER_USER"),
                "MAX_TASKS_PER_USER",
                10_000,
                "must be a positive whole number",
            )?,
            changes_retention_days: parse_or(
                get("CHANGES_RETENTION_DAYS"),
                "CHANGES_RETENTION_DAYS",
                30,
                "must be a whole number of days, at least 1",
            )?,
            stream_heartbeat: match parse_or(
                get("STREAM_HEARTBEAT_SECONDS"),
                "STREAM_HEARTBEAT_SECONDS",
                15,
                "must be a whole number of seconds, at least 1",
            )? {
                0 => {
                    return Err(ConfigError::Invalid {
                        name: "STREAM_HEARTBEAT_SECONDS",
                        reason: "must be at least 1",
                    });
                }
                seconds => Duration::from_secs(seconds),
            },
        })
        .and_then(Self::checked)
    }

    fn checked(self) -> Result<Self, ConfigError> {
        if self.database_max_connections == Some(0) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_MAX_CONNECTIONS",
                reason: "must be at least 1",
            });
        }
        if self.database_acquire_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: "DATABASE_ACQUIRE_TIMEOUT",
                reason: "must be at least 1",
            });
        }
        if self.jwt_ttl.is_zero() {
            return Err(ConfigError::Invalid {
                name: "JWT_TTL_SECONDS",
                reason: "must be at least 1",
            });
        }
        if self.max_tasks_per_user == 0 {
            return Err(ConfigError::Invalid {
                name: "MAX_TASKS_PER_USER",
                reason: "must be at least 1",
            });
        }
        if self.changes_retention_days == 0 {
            return Err(ConfigError::Invalid {
                name: "CHANGES_RETENTION_DAYS",
                reason: "must be at least 1",
            });
        }
        Ok(self)
    }

    /// How long the changes feed remembers a deletion.
    #[must_use]
    pub fn changes_retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.changes_retention_days) * 86_400)
    }

    /// Whether the database is the embedded SQLite file.
    #[must_use]
    pub fn uses_embedded_database(&self) -> bool {
        self.database_url.expose_secret().starts_with("sqlite://")
    }
}

impl HardeningSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let seconds = |name: &'static str, default: u64| positive_seconds(get, name, default);
        let positive = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            match parse_or(get(name), name, default, "must be a positive whole number")? {
                0 => Err(ConfigError::Invalid {
                    name,
                    reason: "must be at least 1",
                }),
                value => Ok(value),
            }
        };
        if get("TRUST_PROXY_HEADERS").is_some() {
            return Err(ConfigError::Retired {
                name: "TRUST_PROXY_HEADERS",
                instead: "list the addresses of your reverse proxies in TRUSTED_PROXIES \
                          (comma-separated, CIDR blocks allowed, e.g. 10.0.0.0/8), or unset it",
            });
        }
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => TrustedProxies::none(),
            Some(list) => TrustedProxies::parse(&list).map_err(|_| ConfigError::Invalid {
                name: "TRUSTED_PROXIES",
                reason: "must be a comma-separated list of IP addresses and CIDR blocks \
                         (10.0.0.0/8, 2001:db8::/32, 192.0.2.7)",
            })?,
        };
        Ok(Self {
            shutdown_timeout: seconds("SHUTDOWN_TIMEOUT_SECONDS", 30)?,
            client_request_timeout: seconds("CLIENT_REQUEST_TIMEOUT_SECONDS", 5)?,
            request_body_timeout: seconds("REQUEST_BODY_TIMEOUT_SECONDS", 10)?,
            keep_alive: match parse_or(
                get("KEEP_ALIVE_SECONDS"),
                "KEEP_ALIVE_SECONDS",
                5,
                "must be a whole number of seconds (0 turns keep-alive off)",
            )? {
                0 => None,
                value => Some(Duration::from_secs(value)),
            },
            auth_rate_limit_per_minute: positive("AUTH_RATE_LIMIT_PER_MINUTE", 20)?,
            auth_rate_limit_burst: positive("AUTH_RATE_LIMIT_BURST", 10)?,
            password_hash_queue: positive("PASSWORD_HASH_QUEUE", 32)?,
            password_hash_wait: seconds("PASSWORD_HASH_WAIT_SECONDS", 2)?,
            trusted_proxies,
        })
    }
}

fn sign_in_limit(get: &dyn Fn(&str) -> Option<String>) -> Result<SignInLimit, ConfigError> {
    let failures = match parse_or(
        get("SIGN_IN_FAILURES_PER_ACCOUNT"),
        "SIGN_IN_FAILURES_PER_ACCOUNT",
        10,
        "must be a positive whole number",
    )? {
        0 => {
            return Err(ConfigError::Invalid {
                name: "SIGN_IN_FAILURES_PER_ACCOUNT",
                reason: "must be at least 1",
            });
        }
        failures => failures,
    };
    Ok(SignInLimit {
        failures,
        window: positive_seconds(get, "SIGN_IN_FAILURE_WINDOW_SECONDS", 900)?,
    })
}

/// A duration in whole seconds, at least one.
fn positive_seconds(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match parse_or(
        get(name),
        name,
        default,
        "must be a whole number of seconds",
    )? {
        0 => Err(ConfigError::Invalid {
            name,
            reason: "must be at least 1",
        }),
        value => Ok(Duration::from_secs(value)),
    }
}

fn parse_or<T: std::str::FromStr>(
    raw: Option<String>,
    name: &'static str,
    default: T,
    reason: &'static str,
) -> Result<T, ConfigError> {
    Ok(parse_optional(raw, name, reason)?.unwrap_or(default))
}

/// `raw` parsed when it is set; `None` when it is not.
fn parse_optional<T: std::str::FromStr>(
    raw: Option<String>,
    name: &'static str,
    reason: &'static str,
) -> Result<Option<T>, ConfigError> {
    raw.map(|raw| {
        raw.trim()
            .parse()
            .map_err(|_| ConfigError::Invalid { name, reason })
    })
    .transpose()
}

/// 32 random bytes, hex-encoded, from the operating system.
fn random_secret() -> Result<SecretString, ConfigError> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| ConfigError::Invalid {
        name: "JWT_SECRET",
        reason: "is unset and no random secret could be generated",
    })?;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(SecretString::from(hex))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_run_on_the_embedded_database_with_a_generated_secret() {
        let settings = settings(&[]).unwrap();
        assert!(settings.uses_embedded_database());
        assert!(settings.jwt_secret_generated);
        assert_eq!(settings.jwt_secret.expose_secret().len(), 64);
        assert_eq!((settings.host.as_str(), settings.port), ("127.0.0.1", 8080));
        assert_eq!(settings.jwt_issuer, "todo-api");
        assert_eq!(settings.jwt_ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn postgres_without_a_secret_refuses_to_start() {
        let error = settings(&[("DATABASE_URL", "postgres://localhost/db")]).unwrap_err();
        assert!(error.to_string().contains("JWT_SECRET"));
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_refuses_to_start() {
        let error = settings(&[("JWT_SECRET", &SECRET[..31])]).unwrap_err();
        assert!(error.to_string().contains("at least 32 bytes"));
    }

    #[test]
    fn a_32_byte_secret_is_accepted() {
        let settings =
            settings(&[("DATABASE_URL", "postgres://h/db"), ("JWT_SECRET", SECRET)]).unwrap();
        assert!(!settings.jwt_secret_generated);
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let error = settings(&[("PORT", "eighty")]).unwrap_err();
        assert!(error.to_string().starts_with("PORT"));
    }

    #[test]
    fn cors_origins_are_split_on_commas() {
        let settings =
            settings(&[("CORS_ALLOWED_ORIGINS", "https://a.io, https://b.io,")]).unwrap();
        assert_eq!(
            settings.cors_allowed_origins,
            ["https://a.io", "https://b.io"]
        );
    }

    #[test]
    fn metrics_are_on_unless_turned_off() {
        assert!(settings(&[]).unwrap().metrics_enabled);
        assert!(
            !settings(&[("METRICS_ENABLED", "false")])
                .unwrap()
                .metrics_enabled
        );
        let error = settings(&[("METRICS_ENABLED", "no")]).unwrap_err();
        assert!(error.to_string().starts_with("METRICS_ENABLED"));
    }

    #[test]
    fn the_task_limit_defaults_to_ten_thousand_and_must_be_at_least_one() {
        assert_eq!(settings(&[]).unwrap().max_tasks_per_user, 10_000);
        assert_eq!(
            settings(&[("MAX_TASKS_PER_USER", "3")])
                .unwrap()
                .max_tasks_per_user,
            3
        );
        for bad in ["0", "-1", "many"] {
            let error = settings(&[("MAX_TASKS_PER_USER", bad)]).unwrap_err();
            assert!(error.to_string().starts_with("MAX_TASKS_PER_USER"), "{bad}");
        }
    }

    #[test]
    fn the_connection_maximum_is_left_to_the_machine_unless_set_and_at_least_one() {
        for unset in [&[][..], &[("DATABASE_MAX_CONNECTIONS", " ")]] {
            assert_eq!(settings(unset).unwrap().database_max_connections, None);
        }
        assert_eq!(
            settings(&[("DATABASE_MAX_CONNECTIONS", " 7 ")])
                .unwrap()
                .database_max_connections,
            Some(7)
        );
        for bad in ["0", "-1", "many"] {
            let error = settings(&[("DATABASE_MAX_CONNECTIONS", bad)]).unwrap_err();
            assert!(
                error.to_string().starts_with("DATABASE_MAX_CONNECTIONS"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn deletions_are_remembered_thirty_days_unless_told_and_at_least_one() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.changes_retention_days, 30);
        assert_eq!(
            defaults.changes_retention(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            settings(&[("CHANGES_RETENTION_DAYS", "1")])
                .unwrap()
                .changes_retention_days,
            1
        );
        for bad in ["0", "-1", "a month"] {
            let error = settings(&[("CHANGES_RETENTION_DAYS", bad)]).unwrap_err();
            assert!(
                error.to_string().starts_with("CHANGES_RETENTION_DAYS"),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unknown_database_scheme_is_refused() {
        for url in ["mysql://h/db", "sqlite:todo.db"] {
            let error = settings(&[("DATABASE_URL", url)]).unwrap_err();
            assert!(error.to_string().contains("DATABASE_URL"), "{url}");
        }
    }

    #[test]
    fn statements_time_out_after_five_seconds_unless_told_otherwise() {
        assert_eq!(
            settings(&[]).unwrap().database_statement_timeout,
            Duration::from_secs(5)
        );
        let settings = settings(&[("DATABASE_STATEMENT_TIMEOUT", "2")]).unwrap();
        assert_eq!(settings.database_statement_timeout, Duration::from_secs(2));
    }

    #[test]
    fn a_statement_timeout_below_one_second_is_refused() {
        for value in ["0", "-1", "0.5", "soon"] {
            let error = settings(&[("DATABASE_STATEMENT_TIMEOUT", value)]).unwrap_err();
            assert!(
                error.to_string().starts_with("DATABASE_STATEMENT_TIMEOUT"),
                "{value}: {error}"
            );
        }
    }

    #[test]
    fn ten_failed_sign_ins_per_email_in_fifteen_minutes_unless_told_otherwise() {
        assert_eq!(
            settings(&[]).unwrap().sign_in_limit,
            SignInLimit {
                failures: 10,
                window: Duration::from_secs(900),
            }
        );
        let limit = settings(&[
            ("SIGN_IN_FAILURES_PER_ACCOUNT", "3"),
            ("SIGN_IN_FAILURE_WINDOW_SECONDS", "60"),
        ])
        .unwrap()
        .sign_in_limit;
        assert_eq!((limit.failures, limit.window), (3, Duration::from_secs(60)));
        for (name, value) in [
            ("SIGN_IN_FAILURES_PER_ACCOUNT", "0"),
            ("SIGN_IN_FAILURES_PER_ACCOUNT", "many"),
            ("SIGN_IN_FAILURE_WINDOW_SECONDS", "0"),
            ("SIGN_IN_FAILURE_WINDOW_SECONDS", "-5"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert!(
                error.to_string().starts_with(name),
                "{name}={value}: {error}"
            );
        }
    }

    #[test]
    fn a_zero_acquire_timeout_is_refused() {
        let error = settings(&[("DATABASE_ACQUIRE_TIMEOUT", "0")]).unwrap_err();
        assert!(error.to_string().starts_with("DATABASE_ACQUIRE_TIMEOUT"));
    }

    #[test]
    fn hardening_defaults_are_the_documented_ones() {
        let hardening = settings(&[]).unwrap().hardening;
        assert_eq!(hardening.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(hardening.client_request_timeout, Duration::from_secs(5));
        assert_eq!(hardening.request_body_timeout, Duration::from_secs(10));
        assert_eq!(hardening.keep_alive, Some(Duration::from_secs(5)));
        assert_eq!(hardening.auth_rate_limit_per_minute, 20);
        assert_eq!(hardening.auth_rate_limit_burst, 10);
        assert_eq!(hardening.password_hash_queue, 32);
        assert_eq!(hardening.password_hash_wait, Duration::from_secs(2));
        assert!(hardening.trusted_proxies.is_empty());
    }

    #[test]
    fn hardening_values_are_read_and_checked() {
        let hardening = settings(&[
            ("SHUTDOWN_TIMEOUT_SECONDS", "3"),
            ("AUTH_RATE_LIMIT_BURST", "2"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("PASSWORD_HASH_QUEUE", "5"),
            ("PASSWORD_HASH_WAIT_SECONDS", "7"),
        ])
        .unwrap()
        .hardening;
        assert_eq!(hardening.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(hardening.auth_rate_limit_burst, 2);
        assert_eq!(hardening.password_hash_queue, 5);
        assert_eq!(hardening.password_hash_wait, Duration::from_secs(7));
        assert_eq!(
            hardening.trusted_proxies,
            TrustedProxies::parse("10.0.0.0/8,::1").unwrap()
        );
        for (name, value) in [
            ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
            ("CLIENT_REQUEST_TIMEOUT_SECONDS", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("REQUEST_BODY_TIMEOUT_SECONDS", "-1"),
            ("PASSWORD_HASH_QUEUE", "0"),
            ("PASSWORD_HASH_WAIT_SECONDS", "0"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert!(error.to_string().starts_with(name), "{error}");
        }
    }

    #[test]
    fn the_retired_proxy_switch_stops_the_start_naming_its_replacement() {
        for value in ["true", "false"] {
            let error = settings(&[("TRUST_PROXY_HEADERS", value)]).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with("TRUST_PROXY_HEADERS"), "{message}");
            assert!(message.contains("TRUSTED_PROXIES"), "{message}");
        }
    }

    #[test]
    fn a_bad_proxy_list_names_the_variable_without_echoing_it() {
        let error = settings(&[("TRUSTED_PROXIES", "10.0.0.0/33")]).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("TRUSTED_PROXIES"), "{message}");
        assert!(!message.contains("10.0.0.0/33"), "{message}");
    }

    #[test]
    fn debug_output_does_not_show_the_secret() {
        let settings = settings(&[("JWT_SECRET", SECRET)]).unwrap();
        assert!(!format!("{settings:?}").contains(SECRET));
    }
}
