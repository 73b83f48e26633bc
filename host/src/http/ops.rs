//! The operator's view over HTTP: `/metrics` (Prometheus text), `/healthz` (alive) and
//! `/readyz` (database and platforms reachable), open to scrapers and probes; and
//! `GET /v1/metrics` (JSON), behind the admin token.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use super::report::Report;
use crate::dispatch::Dispatcher;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `/metrics`, `/healthz`, `/readyz`.
pub fn public(dispatcher: Arc<Dispatcher>) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(dispatcher)
}

/// `GET /v1/metrics`.
pub fn admin(dispatcher: Arc<Dispatcher>) -> Router {
    Router::new()
        .route("/v1/metrics", get(json_report))
        .with_state(dispatcher)
}

async fn prometheus(State(dispatcher): State<Arc<Dispatcher>>) -> Response {
    let report = Report::gather(&dispatcher).await;
    match report.prometheus(&dispatcher) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!("/metrics: {error:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable").into_response()
        }
    }
}

async fn json_report(State(dispatcher): State<Arc<Dispatcher>>) -> Json<Report> {
    Json(Report::gather(&dispatcher).await)
}

/// 200 when the database answers and every platform is connected; 503 with what is not.
async fn ready(State(dispatcher): State<Arc<Dispatcher>>) -> Response {
    let database = match &dispatcher.registry().runtime().backends().config_store {
        // Known down: said at once (the health's probe notices the recovery), rather than
        // each probe of the orchestrator waiting out the pool.
        Some(store) if store.database().is_down() => {
            Err("unreachable (the host retries it in the background)".to_owned())
        }
        Some(store) => {
            let db = store.database();
            let check = db.run_once("readyz", || sqlx::query("SELECT 1").execute(db.pool()));
            match tokio::time::timeout(READY_TIMEOUT, check).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("no answer in {READY_TIMEOUT:?}")),
            }
        }
        None => Ok(()),
    };
    let platforms = dispatcher.platforms();
    let ready = database.is_ok() && platforms.iter().all(|(_, connected)| *connected);
    let body = json!({
        "ready": ready,
        "database": database.err().unwrap_or_else(|| "ok".to_owned()),
        "platforms": platforms
            .iter()
            .map(|(name, connected)| (name.to_string(), json!(connected)))
            .collect::<serde_json::Map<_, _>>(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
