//! Outbound HTTP for plugins, through the standard `wasi:http` interfaces: only for plugins
//! granted `http`, and only to the hosts the operator listed for them (`http_allow`).
//! Everything else is refused as `HTTP-request-denied` before a connection is opened, with
//! one log line per event naming the plugin and the host it tried.

use std::{sync::Arc, time::Duration};

use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use wasmtime::component::Linker;
use wasmtime_wasi::ResourceTable;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    default_send_request,
};

use super::{Backends, Grant, HasContexts, Instance};

/// Where a plugin may send requests (a key of `[plugin_defaults]` and `[plugins.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// `host` (its scheme's default port) or `host:port`. Empty: nowhere.
    pub http_allow: Vec<String>,
}

impl Policy {
    pub(crate) fn validate(&self, _section: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

/// One instance's `wasi:http`: its context (no per-plugin state) and its outbound rules.
pub struct Context {
    http: WasiHttpCtx,
    outbound: Outbound,
}

impl Context {
    pub(crate) fn new(
        grant: Grant,
        instance: &Instance,
        _: &Backends,
        policy: &super::Policy,
    ) -> Self {
        Self {
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(
                Arc::clone(grant.plugin()),
                grant.granted(),
                &policy.http.http_allow,
                instance.wall_budget,
            ),
        }
    }

    /// The view `wasi:http` works on: this context and the instance's resource table
    /// (its bodies are WASI streams).
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table,
            hooks: &mut self.outbound,
        }
    }
}

pub(crate) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// What one event's plugin may reach.
pub struct Outbound {
    plugin: Arc<str>,
    /// `host` or `host:port` entries; empty when the capability is not granted.
    allow: Arc<[String]>,
    /// No request may outlive the event: its wall-clock budget.
    budget: Duration,
    denied_noted: bool,
}

impl Outbound {
    /// The outbound rules of `plugin`: `allow` applies only when `granted`.
    pub fn new(plugin: Arc<str>, granted: bool, allow: &[String], budget: Duration) -> Self {
        Self {
            plugin,
            allow: if granted { allow.into() } else { Arc::from([]) },
            budget,
            denied_noted: false,
        }
    }

    fn permits(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("http") {
                80
            } else {
                443
            });
        let default_port = matches!(
            (uri.scheme_str(), port),
            (Some("http"), 80) | (Some("https"), 443)
        );
        self.allow.iter().any(|entry| match entry.rsplit_once(':') {
            Some((allowed, allowed_port)) => {
                allowed.eq_ignore_ascii_case(host) && allowed_port.parse() == Ok(port)
            }
            None => default_port && entry.eq_ignore_ascii_case(host),
        })
    }
}

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        _ = fut;
        if !self.permits(request.uri()) {
            if !std::mem::replace(&mut self.denied_noted, true) {
                tracing::warn!(
                    plugin = %self.plugin,
                    host = request.uri().authority().map(|a| a.as_str()).unwrap_or_default(),
                    "HTTP request denied: not in the plugin's http_allow (or http not granted)"
                );
            }
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let cap = |asked: Option<Duration>| Some(asked.map_or(self.budget, |t| t.min(self.budget)));
        let asked = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: cap(asked.connect_timeout),
            first_byte_timeout: cap(asked.first_byte_timeout),
            between_bytes_timeout: cap(asked.between_bytes_timeout),
        };
        Box::new(async move {
            let (response, io) = default_send_request(request, Some(options)).await?;
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(io);
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_hosts_and_ports_are_reached() {
        let allow = ["api.openai.com".to_owned(), "127.0.0.1:8081".to_owned()];
        let outbound = Outbound::new("ai".into(), true, &allow, Duration::from_secs(1));
        let permits = |uri: &str| outbound.permits(&uri.parse().unwrap());
        assert!(permits("https://api.openai.com/v1/chat/completions"));
        assert!(permits("https://API.openai.com:443/v1"));
        assert!(
            !permits("https://api.openai.com:8443/v1"),
            "other ports need listing"
        );
        assert!(!permits("https://api.openai.com.evil.example/v1"));
        assert!(permits("http://127.0.0.1:8081/v1"));
        assert!(!permits("http://127.0.0.1:8082/v1"));
        assert!(!permits("http://localhost/v1"));
        let ungranted = Outbound::new("ai".into(), false, &allow, Duration::from_secs(1));
        assert!(!ungranted.permits(&"https://api.openai.com/v1".parse().unwrap()));
    }
}
