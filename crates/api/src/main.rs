//! The `todo-api` server binary.

use std::process::ExitCode;

use todo_api::{Application, Settings, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(error) = telemetry::init() {
        // No subscriber yet: the message goes straight to stderr.
        eprintln!("configuration: {error}");
        return ExitCode::FAILURE;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            tracing::error!("configuration: {error}");
            return ExitCode::FAILURE;
        }
    };
    if settings.jwt_secret_generated {
        tracing::warn!(
            "JWT_SECRET is not set: using a random secret, so tokens stop working when the server restarts"
        );
    }
    let application = match Application::build(&settings).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!("start-up failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(host = %settings.host, port = application.port(), "todo-api listening");
    match application.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("server stopped: {error}");
            ExitCode::FAILURE
        }
    }
}
