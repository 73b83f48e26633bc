//! The admin API from the command line: `wasmbot invalidate` asks a running bot to drop a
//! scope's cached settings, which it does on every host.

use anyhow::Context;
use serde_json::{Value, json};

use crate::capabilities::config_store::Scope;

/// Asks the admin API at `base` (`http://host:port`) to invalidate `scope` everywhere;
/// returns how many documents that was.
pub async fn invalidate(base: &str, token: &str, scope: &Scope) -> anyhow::Result<u64> {
    anyhow::ensure!(
        !token.is_empty(),
        "no admin token: set admin.token (or WASMBOT_ADMIN__TOKEN) to the bot's"
    );
    let url = format!("{}/v1/config/invalidate", base.trim_end_matches('/'));
    let body = json!({ "scope": scope.kind().name(), "id": scope.id() });
    let response = reqwest::Client::new()
        .post(&url)
        .timeout(std::time::Duration::from_secs(10))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the admin API at {url}: is the bot running with admin.token set?")
        })?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    match answer.get("invalidated").and_then(Value::as_u64) {
        Some(count) if status.is_success() => Ok(count),
        _ => {
            let reason = answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            anyhow::bail!("the admin API answered {status}: {reason}")
        }
    }
}
