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
    /// A service the call needs (Redis) is unavailable: 503; the text says what to do.
    #[error("{0}")]
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.to_string() });
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
