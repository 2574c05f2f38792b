//! The translation of database failures into the domain's terms.

use sea_orm::{DbErr, RuntimeErr, sqlx};
use todo_domain::DomainError;

/// Turns a database failure into a [`DomainError`]: `Unavailable` when the
/// database could not be reached or is shutting down (a retry later may
/// succeed, and the api answers 503), `Unexpected` for everything else.
///
/// Failures that mean something to the domain (a taken email) are told
/// apart by the one repository method that can cause them, before falling
/// back to this.
pub(crate) fn domain_error(err: DbErr) -> DomainError {
    if is_unavailable(&err) {
        DomainError::Unavailable(Box::new(err))
    } else {
        DomainError::Unexpected(Box::new(err))
    }
}

/// A statement that could not even be built (a column/value count
/// mismatch in our own code): a bug, never the client's or the database's.
pub(crate) fn unbuildable(err: sea_orm::sea_query::error::Error) -> DomainError {
    DomainError::Unexpected(Box::new(err))
}

fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(cause)) | DbErr::Query(RuntimeErr::SqlxError(cause)) => {
            is_unavailable_sqlx(cause)
        }
        _ => false,
    }
}

fn is_unavailable_sqlx(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(cause) => cause
            .code()
            .is_some_and(|code| is_unavailable_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATE class 08 (connection exception), the 57P0x codes a server
/// sends when an administrator or a shutdown ends the session, and 57014,
/// a statement cancelled: by our `statement_timeout` (the server is too
/// slow or a lock is held too long) or by an operator. Either way the
/// request was fine and a retry later may succeed. Matched on the code
/// rather than on the PostgreSQL error type so it can be tested without a
/// server; SQLite's codes are plain decimal numbers without a leading
/// zero, so they never match.
fn is_unavailable_sqlstate(code: &str) -> bool {
    (code.len() == 5 && code.starts_with("08"))
        || matches!(code, "57014" | "57P01" | "57P02" | "57P03")
}

#[cfg(test)]
mod tests {
    use super::fake::ServerError;
    use std::sync::Arc;

    use sea_orm::ConnAcquireErr;

    use super::*;

    fn is_unavailable_error(err: DbErr) -> bool {
        match domain_error(err) {
            DomainError::Unavailable(_) => true,
            DomainError::Unexpected(_) => false,
            other => panic!("neither Unavailable nor Unexpected: {other:?}"),
        }
    }

    fn from_sqlx_query(err: sqlx::Error) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
    }

    fn from_sqlx_exec(err: sqlx::Error) -> DbErr {
        DbErr::Exec(RuntimeErr::SqlxError(Arc::new(err)))
    }

    fn server_error(code: &'static str) -> DbErr {
        from_sqlx_exec(sqlx::Error::Database(Box::new(ServerError(code))))
    }

    #[test]
    fn an_exhausted_or_closed_pool_is_unavailable() {
        assert!(is_unavailable_error(DbErr::ConnectionAcquire(
            ConnAcquireErr::Timeout
        )));
        assert!(is_unavailable_error(DbErr::ConnectionAcquire(
            ConnAcquireErr::ConnectionClosed
        )));
    }

    #[test]
    fn a_connection_error_is_unavailable() {
        assert!(is_unavailable_error(DbErr::Conn(RuntimeErr::Internal(
            "Disconnected".into()
        ))));
    }

    #[test]
    fn transport_failures_during_a_statement_are_unavailable() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(is_unavailable_error(from_sqlx_query(sqlx::Error::Io(
            reset
        ))));
        assert!(is_unavailable_error(from_sqlx_exec(sqlx::Error::Tls(
            "handshake failed".into()
        ))));
        assert!(is_unavailable_error(from_sqlx_query(
            sqlx::Error::PoolTimedOut
        )));
        assert!(is_unavailable_error(from_sqlx_exec(
            sqlx::Error::PoolClosed
        )));
        assert!(is_unavailable_error(from_sqlx_query(
            sqlx::Error::WorkerCrashed
        )));
    }

    #[test]
    fn connection_exception_sqlstates_are_unavailable() {
        for code in ["08000", "08003", "08006", "08001", "08P01"] {
            assert!(is_unavailable_error(server_error(code)), "{code}");
        }
    }

    #[test]
    fn server_shutdown_sqlstates_are_unavailable() {
        for code in ["57P01", "57P02", "57P03"] {
            assert!(is_unavailable_error(server_error(code)), "{code}");
        }
    }

    #[test]
    fn a_cancelled_statement_is_unavailable() {
        // query_canceled: the statement timeout fired, or an operator
        // cancelled it.
        assert!(is_unavailable_error(server_error("57014")));
    }

    #[test]
    fn constraint_and_data_errors_are_unexpected() {
        // Unique violation, foreign key violation, invalid byte sequence,
        // and SQLite's UNIQUE and BUSY codes.
        for code in ["23505", "23503", "22021", "2067", "5", "8"] {
            assert!(!is_unavailable_error(server_error(code)), "{code}");
        }
    }

    #[test]
    fn decoding_and_driver_errors_are_unexpected() {
        assert!(!is_unavailable_error(from_sqlx_query(
            sqlx::Error::RowNotFound
        )));
        assert!(!is_unavailable_error(from_sqlx_query(sqlx::Error::Decode(
            "bad uuid".into()
        ))));
        assert!(!is_unavailable_error(from_sqlx_exec(
            sqlx::Error::Protocol("unexpected message".into())
        )));
    }

    #[test]
    fn errors_raised_inside_sea_orm_are_unexpected() {
        assert!(!is_unavailable_error(DbErr::Type("bad column".into())));
        assert!(!is_unavailable_error(DbErr::RecordNotUpdated));
        assert!(!is_unavailable_error(DbErr::Query(RuntimeErr::Internal(
            "oops".into()
        ))));
    }
}

/// A server error with a chosen SQLSTATE, for the unit tests of the error
/// translations (here and in `diagnosis`).
#[cfg(test)]
pub(crate) mod fake {
    use std::borrow::Cow;

    use sea_orm::sqlx::error::{DatabaseError, ErrorKind};

    #[derive(Debug)]
    pub(crate) struct ServerError(pub(crate) &'static str);

    impl std::fmt::Display for ServerError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "server error {}", self.0)
        }
    }

    impl std::error::Error for ServerError {}

    impl DatabaseError for ServerError {
        fn message(&self) -> &str {
            "server error"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }
}
