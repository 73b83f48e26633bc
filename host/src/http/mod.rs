//! The host's HTTP server (axum): each feature provides its own `Router`, merged here and
//! nowhere else ([`host_router`], the platforms' routes included); the admin routes behind
//! the operator's bearer token. And the command line's client of it.

pub mod client;
pub mod ops;
pub mod report;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::{
    Router,
    extract::{Request, State},
    http::header,
    middleware::{self, Next},
    response::Response,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::{
    api_error::ApiError, capabilities::config_store::ConfigStore, dispatch::Dispatcher,
    packages::Packages,
};

/// The `[admin]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the HTTP server: the admin API, `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// The bearer token every admin call must carry; empty (the default) keeps the admin
    /// API closed.
    pub token: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: String::new(),
        }
    }
}

/// The config store's and the database's admin routes, behind the bearer token.
pub fn admin_router(store: Arc<ConfigStore>, token: &str) -> Router {
    protect(admin_routes(store), token)
}

fn admin_routes(store: Arc<ConfigStore>) -> Router {
    let db = store.database().clone();
    crate::capabilities::config_store::admin::router(store).merge(crate::db::admin::router(db))
}

fn protect(router: Router, token: &str) -> Router {
    let token: Arc<str> = Arc::from(token);
    router.layer(middleware::from_fn_with_state(token, require_bearer))
}

/// The whole host's routes, the one place they are merged: the operator's view, open; the
/// admin API behind `token` (an empty token keeps it closed), with the packages' routes
/// when `packages` is given; and `platform_routes`, the
/// connected platforms' own (Discord's interactions, WhatsApp's webhooks), open, since the
/// platforms prove their calls with their own signatures, not the operator's token.
pub fn host_router(
    dispatcher: Arc<Dispatcher>,
    token: &str,
    packages: Option<Arc<Packages>>,
    platform_routes: impl IntoIterator<Item = Router>,
) -> Router {
    let mut admin = ops::admin(Arc::clone(&dispatcher));
    if let Some(store) = &dispatcher.registry().runtime().backends().config_store {
        admin = admin.merge(admin_routes(Arc::clone(store)));
    }
    if let Some(packages) = packages {
        admin = admin.merge(crate::packages::admin::router(packages));
    }
    let host = ops::public(dispatcher).merge(protect(admin, token));
    platform_routes
        .into_iter()
        .fold(host, |host, platform| host.merge(platform))
}

/// Serves `router` on `listen` until `stop` completes or the task is dropped.
pub async fn serve(
    listen: SocketAddr,
    router: Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("HTTP: binding {listen}"))?;
    tracing::info!(%listen, "HTTP listening: /metrics, /healthz, /readyz, admin API");
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
        .context("HTTP server")
}

async fn require_bearer(
    State(token): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Constant time (`subtle`): timing must not tell how much of a guess was right.
    if token.is_empty() || !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}
