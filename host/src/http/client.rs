//! The admin API from the command line: `wasmbot invalidate` and `wasmbot plugin ...` ask
//! a running bot, which acts on every host.

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::capabilities::config_store::Scope;

/// A client of one bot's admin API.
pub struct Admin {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Admin {
    /// The admin API at `base` (`http://host:port`), called with `token`.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !token.is_empty(),
            "no admin token: set admin.token (or WASMBOT_ADMIN__TOKEN) to the bot's"
        );
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: reqwest::Client::new(),
        })
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        self.send(self.client.get(self.url(path)).query(query))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.client.post(self.url(path)).json(&body))
            .await
    }

    /// `POST path` with raw bytes.
    pub async fn upload(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/octet-stream")
            .body(bytes);
        self.send(request).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.client.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The answer's JSON, or its `error` as the error.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        // An install compiles the plugin before it answers.
        let response = request
            .timeout(Duration::from_secs(300))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the admin API at {}: is the bot running with admin.token set?",
                    self.base
                )
            })?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            return Ok(answer);
        }
        let reason = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        anyhow::bail!("the admin API answered {status}: {reason}")
    }
}

/// Asks the admin API at `base` (`http://host:port`) to invalidate `scope` everywhere;
/// returns how many documents that was.
pub async fn invalidate(base: &str, token: &str, scope: &Scope) -> anyhow::Result<u64> {
    let body = json!({ "scope": scope.kind().name(), "id": scope.id() });
    let answer = Admin::new(base, token)?
        .post("/v1/config/invalidate", body)
        .await?;
    answer
        .get("invalidated")
        .and_then(Value::as_u64)
        .context("the admin API's answer has no count")
}
