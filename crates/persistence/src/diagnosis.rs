//! Why a PostgreSQL connection could not be opened at start-up, in the
//! classes an operator acts on: TLS, authentication, host, database.

use std::io;
use std::time::Duration;

use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::{DbErr, RuntimeErr, sqlx};

use crate::ConnectError;

/// The longest the one diagnostic TCP connection after a timed-out start-up
/// may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The variant of [`ConnectError`] for a class of causes, each with its
/// own message.
type Class = fn(DbErr) -> ConnectError;

/// The [`ConnectError`] that names what went wrong with `err`, a failure of
/// the pool to open its first connection to the server `options` name.
pub(crate) async fn classify(err: DbErr, options: &PgConnectOptions) -> ConnectError {
    let class: Class = match driver_error(&err) {
        // sqlx retries a refused connection until the acquire timeout and
        // then reports only the timeout; one more attempt, by hand, tells a
        // refusal from silence.
        Some(sqlx::Error::PoolTimedOut) => probe(options).await,
        Some(sqlx::Error::Io(cause)) if is_tls_failure(cause) => ConnectError::Tls,
        Some(sqlx::Error::Io(cause)) => match cause.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::TimedOut => ConnectError::NoAnswer,
            // A failed name lookup has no kind of its own; ask the
            // resolver again.
            _ if !resolves(options).await => ConnectError::HostUnknown,
            _ => ConnectError::Connect,
        },
        Some(sqlx::Error::Tls(_)) => ConnectError::Tls,
        Some(sqlx::Error::Database(cause)) => match cause.code().as_deref() {
            // invalid_password, and invalid_authorization_specification
            // (an unknown user, or no pg_hba.conf rule lets it in).
            Some("28P01" | "28000") => ConnectError::Authentication,
            // invalid_catalog_name: no database of that name.
            Some("3D000") => ConnectError::DatabaseMissing,
            _ => ConnectError::Connect,
        },
        _ => ConnectError::Connect,
    };
    class(err)
}

fn driver_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(cause))
        | DbErr::Exec(RuntimeErr::SqlxError(cause))
        | DbErr::Query(RuntimeErr::SqlxError(cause)) => Some(cause),
        _ => None,
    }
}

/// rustls reports a refused certificate (an unknown CA, a name that does
/// not match) as an I/O error that carries its own error inside.
fn is_tls_failure(err: &io::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match err.get_ref() {
        Some(inner) => Some(inner),
        None => return false,
    };
    while let Some(error) = cause {
        if error.is::<rustls::Error>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Whether the server's host name resolves to at least one address. A
/// Unix socket path needs no lookup.
async fn resolves(options: &PgConnectOptions) -> bool {
    if options.get_socket().is_some() {
        return true;
    }
    let lookup = tokio::net::lookup_host((options.get_host(), options.get_port()));
    match tokio::time::timeout(PROBE_TIMEOUT, lookup).await {
        Ok(Ok(mut addresses)) => addresses.next().is_some(),
        _ => false,
    }
}

/// One plain TCP connection to the server, after the pool gave up: refused,
/// host unknown, or (connected, or no answer in time) silent.
async fn probe(options: &PgConnectOptions) -> Class {
    if options.get_socket().is_some() {
        return ConnectError::NoAnswer;
    }
    let attempt = tokio::net::TcpStream::connect((options.get_host(), options.get_port()));
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Err(err)) if err.kind() == io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        Ok(Err(_)) if !resolves(options).await => ConnectError::HostUnknown,
        _ => ConnectError::NoAnswer,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn options() -> PgConnectOptions {
        "postgres://u@127.0.0.1:1/db".parse().unwrap()
    }

    fn from_sqlx(err: sqlx::Error) -> DbErr {
        DbErr::Conn(RuntimeErr::SqlxError(Arc::new(err)))
    }

    use crate::errors::fake::ServerError;

    async fn class_of(err: sqlx::Error) -> ConnectError {
        classify(from_sqlx(err), &options()).await
    }

    #[tokio::test]
    async fn rejected_credentials_are_an_authentication_failure() {
        for code in ["28P01", "28000"] {
            let err = class_of(sqlx::Error::Database(Box::new(ServerError(code)))).await;
            assert!(
                matches!(err, ConnectError::Authentication(_)),
                "{code}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unknown_database_is_named_as_such() {
        let err = class_of(sqlx::Error::Database(Box::new(ServerError("3D000")))).await;
        assert!(matches!(err, ConnectError::DatabaseMissing(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_certificate_refused_by_rustls_is_a_tls_failure() {
        let refused = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let err = class_of(sqlx::Error::Io(refused)).await;
        assert!(matches!(err, ConnectError::Tls(_)), "{err:?}");
        let err = class_of(sqlx::Error::Tls("server does not support TLS".into())).await;
        assert!(matches!(err, ConnectError::Tls(_)), "{err:?}");
    }

    #[tokio::test]
    async fn other_server_errors_fall_back_to_the_generic_message() {
        let err = class_of(sqlx::Error::Database(Box::new(ServerError("XX000")))).await;
        assert!(matches!(err, ConnectError::Connect(_)), "{err:?}");
        let err = class_of(sqlx::Error::Protocol("odd".into())).await;
        assert!(matches!(err, ConnectError::Connect(_)), "{err:?}");
    }
}
