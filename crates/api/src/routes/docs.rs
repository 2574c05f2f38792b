//! The API description and the interactive docs. The Swagger UI assets are
//! compiled into the binary (utoipa-swagger-ui's `vendored` feature), so
//! `/docs` works with no network, and served here rather than through the
//! crate's own actix service so that unknown files and other methods get
//! the contract's 404 and 405 bodies like every other route.

use std::sync::{Arc, LazyLock};

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};
use todo_domain::DomainError;
use utoipa_swagger_ui::Config;

use crate::error::ApiError;
use crate::routes::fallback;

/// Where the document is served, and what the UI loads.
pub const DOCUMENT_PATH: &str = "/openapi.json";

/// Serialized once: the document is fixed at compile time.
static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| crate::openapi::document_json().map_err(|error| error.to_string()));

static UI_CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::new([DOCUMENT_PATH])
            .try_it_out_enabled(true)
            .display_request_duration(true)
            // The default sends the document to swagger.io for a badge;
            // the docs must not call out.
            .validator_url("none"),
    )
});

/// Mounts `/openapi.json`, `/docs` and the UI's files under `/docs/`.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource(DOCUMENT_PATH)
                .route(web::get().to(document))
                .default_service(web::to(fallback::method_not_allowed("GET"))),
        )
        .service(
            web::resource("/docs")
                .route(web::get().to(docs_root))
                .default_service(web::to(fallback::method_not_allowed("GET"))),
        )
        .service(
            web::resource("/docs/")
                .route(web::get().to(docs_page))
                .default_service(web::to(fallback::method_not_allowed("GET"))),
        )
        // The UI's files all sit at the top of its folder, so one segment
        // is enough (and keeps the metrics' route label a plain pattern).
        .service(
            web::resource("/docs/{file}")
                .route(web::get().to(docs_file))
                .default_service(web::to(fallback::method_not_allowed("GET"))),
        );
}

/// `GET /openapi.json`: the OpenAPI 3.1 document.
async fn document() -> Result<HttpResponse, ApiError> {
    match &*DOCUMENT {
        Ok(json) => Ok(HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(json.clone())),
        Err(error) => Err(DomainError::Unexpected(error.clone().into()).into()),
    }
}

/// `GET /docs`: the UI's files are addressed relative to `/docs/`.
async fn docs_root() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// `GET /docs/`: the UI's page.
async fn docs_page() -> Result<HttpResponse, ApiError> {
    ui_file("")
}

/// `GET /docs/{file}`: the UI's scripts, styles and icons.
async fn docs_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ui_file(&file)
}

/// A file of the vendored UI; the empty name is its page.
fn ui_file(name: &str) -> Result<HttpResponse, ApiError> {
    match utoipa_swagger_ui::serve(name, UI_CONFIG.clone()) {
        Ok(Some(file)) => Ok(HttpResponse::Ok()
            .content_type(file.content_type)
            .body(file.bytes.into_owned())),
        Ok(None) => Err(ApiError::RouteNotFound),
        Err(error) => Err(DomainError::Unexpected(error.to_string().into()).into()),
    }
}
