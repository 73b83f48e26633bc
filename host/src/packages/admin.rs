//! The packages' admin routes (`/v1/plugins...`), behind the operator's token; the
//! command line's `wasmbot plugin ...` calls them.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api_error::ApiError,
    packages::{
        FetchError, IndexError, Install, MAX_BLOB_BYTES, Outcome, Packages, Reason, Refusal,
    },
};

/// `/v1/plugins`: list (GET), install (POST); `/v1/plugins/archive` (POST, an image-layout
/// archive as the body); `/v1/plugins/search?q=`, `/v1/plugins/update` (POST);
/// `/v1/plugins/{name}` (GET: info, DELETE: remove) and its `approve`, `pin`, `unpin`,
/// `rollback` (POST).
pub fn router(packages: Arc<Packages>) -> Router {
    Router::new()
        .route("/v1/plugins", get(list).post(install))
        .route(
            "/v1/plugins/archive",
            post(install_archive).layer(DefaultBodyLimit::max(MAX_BLOB_BYTES as usize * 2)),
        )
        .route("/v1/plugins/search", get(search))
        .route("/v1/plugins/update", post(update))
        .route("/v1/plugins/{name}", get(info).delete(remove))
        .route("/v1/plugins/{name}/approve", post(approve))
        .route("/v1/plugins/{name}/pin", post(pin))
        .route("/v1/plugins/{name}/unpin", post(unpin))
        .route("/v1/plugins/{name}/rollback", post(rollback))
        .with_state(packages)
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let text = refusal.to_string();
        match refusal.reason {
            Reason::NotFound(_) => ApiError::NotFound(text),
            Reason::Conflict(_) | Reason::Clash(_) => ApiError::Conflict(text),
            Reason::Fetch(FetchError::Registry { .. })
            | Reason::Index(IndexError::Fetch { .. }) => ApiError::Unavailable(text),
            Reason::Database(error) => ApiError::from(error),
            _ => ApiError::Refused(text),
        }
    }
}

async fn list(State(packages): State<Arc<Packages>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "plugins": packages.list().await? })))
}

async fn install(
    State(packages): State<Arc<Packages>>,
    Json(request): Json<Install>,
) -> Result<Json<Outcome>, ApiError> {
    if request.source.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "source: NAME[@VERSION] or REGISTRY/REPO[:TAG]".into(),
        ));
    }
    Ok(Json(packages.install(&request).await?))
}

#[derive(Deserialize)]
struct ArchiveFlags {
    #[serde(default)]
    allow_unsigned: bool,
    #[serde(default)]
    approve: bool,
}

async fn install_archive(
    State(packages): State<Arc<Packages>>,
    Query(flags): Query<ArchiveFlags>,
    body: Bytes,
) -> Result<Json<Outcome>, ApiError> {
    let outcome = packages
        .install_archive(&body, flags.allow_unsigned, flags.approve)
        .await?;
    Ok(Json(outcome))
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(
    State(packages): State<Arc<Packages>>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let found = packages.search(&query.q).await?;
    let found: Vec<Value> = found
        .into_iter()
        .map(|(index, plugin)| json!({ "index": index, "plugin": plugin }))
        .collect();
    Ok(Json(json!({ "plugins": found })))
}

async fn info(
    State(packages): State<Arc<Packages>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let indexed: Vec<Value> = packages
        .search(&name)
        .await?
        .into_iter()
        .filter(|(_, plugin)| plugin.name == name)
        .map(|(index, plugin)| json!({ "index": index, "plugin": plugin }))
        .collect();
    let installed = packages
        .list()
        .await?
        .into_iter()
        .find(|listed| listed.plugin == name);
    if indexed.is_empty() && installed.is_none() {
        return Err(ApiError::NotFound(format!(
            "{name}: neither installed nor in a configured index"
        )));
    }
    Ok(Json(json!({ "indexed": indexed, "installed": installed })))
}

#[derive(Deserialize, Default)]
struct UpdateRequest {
    #[serde(default)]
    plugin: Option<String>,
    #[serde(default)]
    check: bool,
}

async fn update(
    State(packages): State<Arc<Packages>>,
    Json(request): Json<UpdateRequest>,
) -> Result<Json<Value>, ApiError> {
    let reports = packages
        .update(request.plugin.as_deref(), request.check)
        .await?;
    Ok(Json(json!({ "plugins": reports })))
}

async fn approve(
    State(packages): State<Arc<Packages>>,
    Path(name): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    Ok(Json(packages.approve(&name).await?))
}

async fn rollback(
    State(packages): State<Arc<Packages>>,
    Path(name): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    Ok(Json(packages.rollback(&name).await?))
}

async fn pin(
    State(packages): State<Arc<Packages>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    packages.pin(&name, true).await?;
    Ok(Json(json!({ "plugin": name, "pinned": true })))
}

async fn unpin(
    State(packages): State<Arc<Packages>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    packages.pin(&name, false).await?;
    Ok(Json(json!({ "plugin": name, "pinned": false })))
}

async fn remove(
    State(packages): State<Arc<Packages>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    packages.remove(&name).await?;
    Ok(Json(json!({ "plugin": name, "removed": true })))
}
