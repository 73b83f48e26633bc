//! `GET /whatsapp/webhook`: Meta's verification (`hub.verify_token` compared in constant
//! time, `hub.challenge` echoed; 403 otherwise). `POST /whatsapp/webhook`: the signature
//! (`X-Hub-Signature-256`, HMAC-SHA256 of the raw body with the app secret) is checked
//! before the body is parsed (401); bodies over the limit are 413, malformed JSON 400 (each
//! refusal answered `{"error": ...}`, logged and counted); every item of every entry and
//! change goes to the durable inbox, and Meta gets its 200 as soon as they are written,
//! before any plugin runs. When the database cannot take them in time
//! (`whatsapp.write_timeout_ms`, tried once), 503: Meta delivers again later, nothing is
//! lost. While the database is known to be down, 503 at once, without waiting on the pool.

use std::{collections::HashMap, sync::Arc};
use subtle::ConstantTimeEq;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Query, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Inbox, Traffic, WhatsAppConfig, payload::Notification};

/// Where Meta is told to deliver.
pub const PATH: &str = "/whatsapp/webhook";

struct Webhook {
    inbox: Arc<Inbox>,
    app_secret: Vec<u8>,
    verify_token: String,
    numbers: Vec<String>,
    max_body_bytes: usize,
}

/// The webhook's routes, with the body limit of `config`.
pub fn router(inbox: Arc<Inbox>, config: &WhatsAppConfig) -> Router {
    let webhook = Arc::new(Webhook {
        inbox,
        app_secret: config.app_secret.as_bytes().to_vec(),
        verify_token: config.verify_token.clone(),
        numbers: config.phone_number_ids.clone(),
        max_body_bytes: config.max_body_bytes,
    });
    Router::new()
        .route(PATH, get(verify).post(receive))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(webhook)
}

async fn verify(
    State(webhook): State<Arc<Webhook>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let given = query.get("hub.verify_token").map(String::as_str);
    let subscribe = query
        .get("hub.mode")
        .is_some_and(|mode| mode == "subscribe");
    let known = !webhook.verify_token.is_empty()
        && given.is_some_and(|given| {
            // Constant time: the token is a secret a caller could otherwise guess byte by byte.
            bool::from(given.as_bytes().ct_eq(webhook.verify_token.as_bytes()))
        });
    match query.get("hub.challenge") {
        Some(challenge) if subscribe && known => {
            tracing::info!("WhatsApp webhook verified by Meta");
            challenge.clone().into_response()
        }
        _ => {
            tracing::warn!("WhatsApp webhook verification refused: wrong mode or verify token");
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

async fn receive(
    State(webhook): State<Arc<Webhook>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let traffic = webhook.inbox.traffic();
    // Taken as a result so that a body over the limit is answered, logged and counted
    // like the other refusals rather than with axum's plain-text 413.
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            Traffic::count(&traffic.refused, 1);
            let status = rejection.status();
            let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "body over the {}-byte limit (whatsapp.max_body_bytes)",
                    webhook.max_body_bytes
                )
            } else {
                format!("body unreadable: {}", rejection.body_text())
            };
            tracing::warn!("WhatsApp webhook refused: {reason}");
            return refusal(status, &reason);
        }
    };
    if !signed(&webhook.app_secret, &headers, &body) {
        Traffic::count(&traffic.refused, 1);
        tracing::warn!("WhatsApp webhook refused: missing or wrong X-Hub-Signature-256");
        return refusal(StatusCode::UNAUTHORIZED, "bad signature");
    }
    let notification: Notification = match serde_json::from_slice(&body) {
        Ok(notification) => notification,
        Err(error) => {
            Traffic::count(&traffic.refused, 1);
            tracing::warn!("WhatsApp webhook refused: malformed JSON: {error}");
            return refusal(StatusCode::BAD_REQUEST, "malformed JSON");
        }
    };
    let split = notification.split(&webhook.numbers);
    Traffic::count(&traffic.skipped, split.skipped.len());
    for reason in &split.skipped {
        tracing::warn!("WhatsApp webhook item skipped: {reason}");
    }
    let received = split.items.len();
    // Meta delivers again for days: refused now, the items arrive after the recovery,
    // while waiting on a pool that cannot connect would only hold the request open.
    if received > 0 && webhook.inbox.database().is_down() {
        Traffic::count(&traffic.unavailable, 1);
        tracing::debug!(
            items = received,
            "WhatsApp webhook answered 503: the database is down (Meta will deliver again)"
        );
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match webhook.inbox.accept(split.items).await {
        Ok(fresh) => {
            if fresh < received {
                tracing::debug!(
                    duplicates = received - fresh,
                    "WhatsApp redelivery: items seen before ignored"
                );
            }
            StatusCode::OK.into_response()
        }
        Err(error) => {
            Traffic::count(&traffic.unavailable, 1);
            if error.is_outage() {
                // The pool's health logs the outage once, not each webhook it refuses.
                tracing::debug!(
                    items = received,
                    "WhatsApp webhook not accepted (Meta will deliver again): {error}"
                );
            } else {
                tracing::error!(
                    items = received,
                    "WhatsApp webhook not accepted (Meta will deliver again): {error}"
                );
            }
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// A refused post, answered as the host's API answers errors: `{"error": reason}`.
fn refusal(status: StatusCode, reason: &str) -> Response {
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

/// Whether `X-Hub-Signature-256` is `sha256=` and the hex HMAC of the body; compared in
/// constant time by the MAC itself.
fn signed(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(hex_signature) = headers
        .get("x-hub-signature-256")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("sha256="))
    else {
        return false;
    };
    let Ok(signature) = hex::decode(hex_signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_match_the_body_and_the_secret() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            sign(b"s3cret", body).parse().unwrap(),
        );
        assert!(signed(b"s3cret", &headers, body));
        assert!(!signed(b"other", &headers, body));
        assert!(!signed(b"s3cret", &headers, b"{}"));
        headers.insert("x-hub-signature-256", "sha256=zz".parse().unwrap());
        assert!(!signed(b"s3cret", &headers, body));
        assert!(!signed(b"s3cret", &HeaderMap::new(), body));
    }
}
