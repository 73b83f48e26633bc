//! The admin API's error: what any layer's handler answers when a call fails, as JSON
//! `{"error": ...}` with its status code.
//!
//! A leaf: it imports nothing of the crate, so the layers below the HTTP server (the
//! database, the config store) can answer with it without depending on that server. A
//! layer's own errors become one by a `From` impl kept in that layer (the database's is in
//! `db::admin`).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// An error answered as JSON `{"error": ...}` with its status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or the wrong one.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The request is malformed; the text says how.
    #[error("{0}")]
    BadRequest(String),
    /// The database failed: 503 when trying again may help, 500 when it will not.
    #[error("{message}")]
    Database {
        /// The failure, as the database layer words it.
        message: String,
        /// The kind of failure, e.g. `connection-lost`, answered as `class`.
        class: &'static str,
        /// Whether trying again may help, answered as `retryable`.
        retryable: bool,
    },
    /// A service the call needs (Redis, a registry) is unavailable: 503; the text says
    /// what to do.
    #[error("{0}")]
    Unavailable(String),
    /// What the call names does not exist: 404.
    #[error("{0}")]
    NotFound(String),
    /// The call does not apply in the present state (a name taken, nothing pending): 409.
    #[error("{0}")]
    Conflict(String),
    /// The request is well formed but what it brings is refused (a bad signature): 422.
    #[error("{0}")]
    Refused(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.to_string() });
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Database {
                class, retryable, ..
            } => {
                body["class"] = (*class).into();
                body["retryable"] = (*retryable).into();
                if *retryable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        };
        (status, Json(body)).into_response()
    }
}
