//! The database's admin route: whether the pool reaches its database, for a readiness
//! probe or an operator.

use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use super::{Backend, Database, DbError};
use crate::api_error::ApiError;

/// `GET /v1/database`: 200 when a statement runs; otherwise the failure's class, with 503
/// when it may pass (the database restarting, the pool busy) and 500 when it will not.
pub fn router(db: Database) -> Router {
    Router::new()
        .route("/v1/database", get(status))
        .with_state(db)
}

async fn status(State(db): State<Database>) -> Result<Json<Value>, ApiError> {
    db.run_once("admin.database", || {
        sqlx::query("SELECT 1").execute(db.pool())
    })
    .await?;
    let backend = match db.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    Ok(Json(json!({ "database": "ok", "backend": backend })))
}

/// The admin API's answer to a database failure: its class and whether a retry may help
/// go with the message, so a caller can decide without parsing it.
impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        ApiError::Database {
            message: error.to_string(),
            class: error.class.name(),
            retryable: error.retryable(),
        }
    }
}
