//! The config store's admin routes: invalidation hooks for changes made outside the bot
//! (an automation tool updating a user, a dashboard editing a guild).

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    routing::post,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ConfigStore, Scope};
use crate::api_error::ApiError;

/// `POST /update-user`, `POST /update-guild`, `POST /v1/config/invalidate`.
pub fn router(store: Arc<ConfigStore>) -> Router {
    Router::new()
        .route("/update-user", post(update_user))
        .route("/update-guild", post(update_guild))
        .route("/v1/config/invalidate", post(invalidate))
        .with_state(store)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateUser {
    user_id: String,
    /// What changed, as the calling tool reports it; recorded in the log only.
    #[serde(default)]
    changes: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateGuild {
    guild_id: String,
}

#[derive(Deserialize)]
struct Invalidate {
    scope: String,
    #[serde(default)]
    id: String,
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(body)| body)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

fn non_empty(id: String, field: &str) -> Result<String, ApiError> {
    if id.trim().is_empty() {
        Err(ApiError::BadRequest(format!("{field} must not be empty")))
    } else {
        Ok(id)
    }
}

/// Drops the scope's settings on every host and says how many documents that was: 200
/// only when every host was told. When Redis cannot carry the invalidation, 503 with the
/// reason (the host retries it by itself once Redis is back; the caller should too).
async fn invalidated(store: &ConfigStore, scope: Scope) -> Result<Json<Value>, ApiError> {
    let count = store.invalidate_everywhere(&scope).await.map_err(|error| {
        ApiError::Unavailable(format!(
            "the other hosts could not be told: {error}; it is retried when Redis is back, \
             try again"
        ))
    })?;
    Ok(Json(json!({ "invalidated": count })))
}

async fn update_user(
    State(store): State<Arc<ConfigStore>>,
    request: Result<Json<UpdateUser>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(request)?;
    let user = non_empty(request.user_id, "userId")?;
    tracing::info!(user = %user, changes = request.changes.len(), "admin: user changed outside the bot");
    invalidated(&store, Scope::User(user)).await
}

async fn update_guild(
    State(store): State<Arc<ConfigStore>>,
    request: Result<Json<UpdateGuild>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let guild = non_empty(body(request)?.guild_id, "guildId")?;
    invalidated(&store, Scope::Guild(guild)).await
}

async fn invalidate(
    State(store): State<Arc<ConfigStore>>,
    request: Result<Json<Invalidate>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let request = body(request)?;
    let scope = Scope::parse(&request.scope, &request.id).map_err(ApiError::BadRequest)?;
    invalidated(&store, scope).await
}
