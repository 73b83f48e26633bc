//! Discord interactions over HTTP: Ed25519 signatures checked before anything is parsed,
//! PING → PONG, slash commands and button clicks through the same plugins as prefix
//! commands, answered in the HTTP response.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Router, body::Body, http::Request};
use ed25519_dalek::{Signer, SigningKey};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmbot::{
    platforms::discord::{
        DiscordOutlet,
        interactions::{self, Answers},
    },
    runtime::Registry,
};
use wasmbot_tests::{config, install, section};

struct Discord {
    router: Router,
    key: SigningKey,
    _folder: tempfile::TempDir,
}

impl Discord {
    async fn start() -> Self {
        let folder = tempfile::tempdir().unwrap();
        install(folder.path(), &["ping", "dice", "settings"]);
        let mut config = config(folder.path());
        config.plugins.insert(
            "settings".into(),
            section(json!({"grants": ["log", "config", "host-config"]})),
        );
        config.database.url = format!("sqlite://{}/bot.db?mode=rwc", folder.path().display());
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = hex::encode(key.verifying_key().as_bytes());
        let store = Arc::new(config.open_store().await.unwrap());
        let backends = config.backends(store).unwrap();
        let registry = Registry::new(config.build_runtime(backends).unwrap());
        registry.load_dir(folder.path()).await.unwrap();
        let answers = Arc::new(Answers::default());
        let outlet = DiscordOutlet::new(answers.clone(), None, None);
        let dispatcher = Arc::new(config.dispatcher(registry).with_outlet(Arc::new(outlet)));
        let verifying = interactions::public_key(&public).unwrap();
        Self {
            router: interactions::router(dispatcher, answers, verifying),
            key,
            _folder: folder,
        }
    }

    /// Posts `body` signed with `key` at `timestamp`; the status and the answer.
    async fn post_signed(&self, body: &str, key: &SigningKey, timestamp: u64) -> (u16, Value) {
        let timestamp = timestamp.to_string();
        let signature = key.sign(format!("{timestamp}{body}").as_bytes());
        let request = Request::post("/discord/interactions")
            .header("content-type", "application/json")
            .header("x-signature-ed25519", hex::encode(signature.to_bytes()))
            .header("x-signature-timestamp", timestamp)
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(request).await
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        self.post_signed(&body.to_string(), &self.key, now()).await
    }

    async fn send(&self, request: Request<Body>) -> (u16, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, value)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn slash(id: &str, name: &str, options: Value) -> Value {
    as_member(id, name, options, "0")
}

/// A slash command from a member holding `permissions` (Discord's decimal bitfield).
fn as_member(id: &str, name: &str, options: Value, permissions: &str) -> Value {
    json!({
        "type": 2,
        "id": id,
        "token": "t",
        "guild_id": "g1",
        "channel_id": "c1",
        "member": {
            "user": { "id": "u1", "username": "ada" },
            "roles": [],
            "permissions": permissions,
        },
        "data": { "name": name, "options": options },
    })
}

#[tokio::test]
async fn commands_that_need_permissions_check_what_discord_says_the_member_holds() {
    let discord = Discord::start().await;
    let prefix = json!([{ "name": "prefix", "type": 3, "value": "?" }]);
    // Without Manage Guild: refused by the host, the plugin does not run.
    let (status, answer) = discord
        .post(&as_member("p1", "prefix", prefix.clone(), "0"))
        .await;
    assert_eq!(status, 200);
    let refused = answer["data"]["content"].as_str().unwrap();
    assert!(refused.contains("not allowed to use `prefix`"), "{answer}");
    assert_eq!(
        answer["data"]["flags"], 64,
        "the refusal is ephemeral: {answer}"
    );
    // Manage Guild (1 << 5), or Administrator (1 << 3): the plugin runs.
    let (_, answer) = discord.post(&as_member("p2", "prefix", prefix, "32")).await;
    let done = answer["data"]["content"].as_str().unwrap();
    assert!(done.contains("Commands now start with `?`"), "{answer}");
    let (_, answer) = discord
        .post(&as_member("p3", "settings", json!([]), "8"))
        .await;
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Prefix: `?`"),
        "{answer}"
    );
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let discord = Discord::start().await;
    assert_eq!(
        discord.post(&json!({ "type": 1 })).await,
        (200, json!({ "type": 1 }))
    );
}

#[tokio::test]
async fn bad_signatures_and_stale_timestamps_are_401() {
    let discord = Discord::start().await;
    let body = json!({ "type": 1 }).to_string();
    let stranger = SigningKey::from_bytes(&[9; 32]);
    assert_eq!(discord.post_signed(&body, &stranger, now()).await.0, 401);
    assert_eq!(
        discord
            .post_signed(&body, &discord.key, now() - 600)
            .await
            .0,
        401
    );
    assert_eq!(
        discord
            .post_signed(&body, &discord.key, now() + 600)
            .await
            .0,
        401
    );
    let unsigned = Request::post("/discord/interactions")
        .body(Body::from(body.clone()))
        .unwrap();
    assert_eq!(discord.send(unsigned).await.0, 401);
    // A signature over another body does not pass for this one.
    let timestamp = now().to_string();
    let signature = discord.key.sign(format!("{timestamp}{{}}").as_bytes());
    let swapped = Request::post("/discord/interactions")
        .header("x-signature-ed25519", hex::encode(signature.to_bytes()))
        .header("x-signature-timestamp", timestamp)
        .body(Body::from(body))
        .unwrap();
    assert_eq!(discord.send(swapped).await.0, 401);
    // Signed but not JSON: a clear 400, nothing dispatched.
    assert_eq!(
        discord.post_signed("{nope", &discord.key, now()).await.0,
        400
    );
}

#[tokio::test]
async fn slash_commands_and_clicks_reach_the_same_plugins() {
    let discord = Discord::start().await;
    let (status, answer) = discord.post(&slash("1", "ping", json!([]))).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 4);
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("pong"),
        "{answer}"
    );

    let options = json!([
        { "name": "dice", "type": 4, "value": 2 },
        { "name": "sides", "type": 4, "value": 6 },
    ]);
    let (status, answer) = discord.post(&slash("2", "roll", options)).await;
    assert_eq!(status, 200);
    let content = answer["data"]["content"].as_str().unwrap();
    assert!(content.starts_with("2d6: "), "{answer}");
    let button = &answer["data"]["components"][0]["components"][0];
    assert_eq!(button["custom_id"], "dice/again:2:6");

    let click = json!({
        "type": 3,
        "id": "3",
        "token": "t",
        "guild_id": "g1",
        "channel_id": "c1",
        "member": { "user": { "id": "u1", "username": "ada" }, "roles": [] },
        "data": { "custom_id": "dice/again:1:4", "component_type": 2 },
        "message": { "id": "m1" },
    });
    let (status, answer) = discord.post(&click).await;
    assert_eq!(status, 200);
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("1d4: "),
        "{answer}"
    );

    // A command no plugin declared is acknowledged, not an error.
    let (status, answer) = discord.post(&slash("4", "nothing", json!([]))).await;
    assert_eq!((status, answer["type"].clone()), (200, json!(4)));
}
