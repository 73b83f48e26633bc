//! A fake WhatsApp Graph API, at its wire protocol: `POST /{phone-number-id}/messages`
//! records what the host sends and answers with a wamid (or fails on demand: 5xx, 429 with
//! `Retry-After`, a slow answer, Meta's outside-the-window error), `GET /{media-id}` and the
//! media link serve files; and it delivers webhooks to the host as Meta does, signed with
//! the app secret (duplicates and batches included).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// The access token the fake accepts.
pub const TOKEN: &str = "fake-graph-token";
/// The app secret webhooks are signed with.
pub const APP_SECRET: &str = "fake-app-secret";
/// The business number the fake's webhooks come to.
pub const PHONE_ID: &str = "100200300";

/// One message the host sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub phone_id: String,
    pub body: Value,
    pub at: Instant,
}

impl Sent {
    /// Who it went to.
    pub fn to(&self) -> &str {
        self.body["to"].as_str().unwrap_or_default()
    }

    /// Its text: a text message's body, an interactive message's body text.
    pub fn text(&self) -> &str {
        self.body["text"]["body"]
            .as_str()
            .or_else(|| self.body["interactive"]["body"]["text"].as_str())
            .unwrap_or_default()
    }
}

/// How the next calls fail.
#[derive(Debug, Clone)]
pub enum Failure {
    /// An error status with Meta's error body.
    Status(u16),
    /// 429 with `Retry-After` in seconds.
    TooMany(u64),
    /// A success that takes this long.
    Slow(Duration),
    /// Meta's 400 for a free-form message outside the 24-hour window.
    OutsideWindow,
}

#[derive(Default)]
struct Shared {
    sent: Vec<Sent>,
    /// Every call to the messages endpoint, failed ones included.
    calls: usize,
    /// Those calls by recipient (`to`).
    calls_to: HashMap<String, usize>,
    failures: VecDeque<Failure>,
    /// Fails every call with this status until cleared.
    down: Option<u16>,
    media: HashMap<String, (String, String, Vec<u8>)>,
    next_id: u64,
}

/// The fake, serving until dropped.
pub struct FakeGraph {
    address: std::net::SocketAddr,
    shared: Arc<Mutex<Shared>>,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGraph {
    /// Starts on a loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake Graph API");
        let address = listener.local_addr().expect("its address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let router = Router::new()
            .route("/{phone}/messages", post(send))
            .route("/{media}", get(media_info))
            .route("/files/{media}", get(media_file))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            shared,
            client: reqwest::Client::new(),
            task,
        }
    }

    /// The base URL, for `whatsapp.api_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next calls fail this way, one failure each, in order.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Failure>) {
        self.lock().failures.extend(failures);
    }

    /// Every call fails with `status` until [`FakeGraph::recover`].
    pub fn go_down(&self, status: u16) {
        self.lock().down = Some(status);
    }

    /// Calls succeed again.
    pub fn recover(&self) {
        self.lock().down = None;
    }

    /// Calls to the messages endpoint so far, failed ones included.
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    /// Calls to the messages endpoint for `recipient` so far, failed ones included.
    pub fn calls_to(&self, recipient: &str) -> usize {
        self.lock().calls_to.get(recipient).copied().unwrap_or(0)
    }

    /// The messages sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// Serves a media file: its metadata says `announced`, the file comes as `served`.
    pub fn add_media(&self, id: &str, announced: &str, served: &str, bytes: Vec<u8>) {
        self.lock().media.insert(
            id.to_owned(),
            (announced.to_owned(), served.to_owned(), bytes),
        );
    }

    /// Waits until `count` messages were sent (at most 20 s) and returns them all.
    pub async fn wait_sent(&self, count: usize) -> Vec<Sent> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sent = self.sent();
            if sent.len() >= count || Instant::now() > deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Posts `body` to the host's webhook signed as Meta signs it; returns the status.
    pub async fn deliver(&self, host: &str, body: &Value) -> StatusCode {
        let body = body.to_string();
        self.deliver_raw(
            host,
            body.as_bytes(),
            Some(&signature(APP_SECRET, body.as_bytes())),
        )
        .await
    }

    /// Posts raw bytes with the given signature header (or none).
    pub async fn deliver_raw(
        &self,
        host: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> StatusCode {
        let mut request = self
            .client
            .post(format!("{host}/whatsapp/webhook"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        match request.send().await {
            Ok(answer) => StatusCode::from_u16(answer.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Err(error) => panic!("the host's webhook did not answer: {error}"),
        }
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` with `secret`, as Meta's header has it.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook body with one entry per element of `changes` (each a `value`).
pub fn notification(changes: Vec<Value>) -> Value {
    let entry: Vec<Value> = changes
        .into_iter()
        .map(
            |value| json!({ "id": "waba-1", "changes": [{ "field": "messages", "value": value }] }),
        )
        .collect();
    json!({ "object": "whatsapp_business_account", "entry": entry })
}

/// A change's `value` with messages from one user to [`PHONE_ID`].
pub fn messages_value(from: &str, name: &str, messages: Vec<Value>) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550001111", "phone_number_id": PHONE_ID },
        "contacts": [{ "profile": { "name": name }, "wa_id": from }],
        "messages": messages,
    })
}

/// A text message, stamped now.
pub fn text(from: &str, wamid: &str, body: &str) -> Value {
    json!({
        "from": from, "id": wamid, "timestamp": now_s().to_string(),
        "type": "text", "text": { "body": body },
    })
}

/// A reply-button press.
pub fn button_reply(from: &str, wamid: &str, id: &str) -> Value {
    json!({
        "from": from, "id": wamid, "timestamp": now_s().to_string(),
        "type": "interactive",
        "interactive": { "type": "button_reply", "button_reply": { "id": id, "title": id } },
    })
}

/// A list-row choice; `id` is the row's id as the host sent it.
pub fn list_reply(from: &str, wamid: &str, id: &str) -> Value {
    json!({
        "from": from, "id": wamid, "timestamp": now_s().to_string(),
        "type": "interactive",
        "interactive": { "type": "list_reply", "list_reply": { "id": id, "title": id } },
    })
}

/// A one-message webhook body: `text` from `from`.
pub fn text_webhook(from: &str, wamid: &str, body: &str) -> Value {
    notification(vec![messages_value(
        from,
        "Ana",
        vec![text(from, wamid, body)],
    )])
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn meta_error(status: u16, code: i64, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "error": {
        "message": message, "type": "OAuthException", "code": code, "fbtrace_id": "fake"
    }});
    (status, Json(body)).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"))
}

async fn send(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(phone): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&headers) {
        return meta_error(401, 190, "Invalid OAuth access token");
    }
    let failure = {
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.calls += 1;
        let to = body["to"].as_str().unwrap_or_default().to_owned();
        *shared.calls_to.entry(to).or_default() += 1;
        match shared.down {
            Some(status) => Some(Failure::Status(status)),
            None => shared.failures.pop_front(),
        }
    };
    match failure {
        Some(Failure::Status(status)) => {
            return meta_error(status, 2, "Service temporarily unavailable");
        }
        Some(Failure::TooMany(seconds)) => {
            let mut answer = meta_error(429, 130429, "Rate limit hit");
            if let Ok(value) = seconds.to_string().parse() {
                answer.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return answer;
        }
        Some(Failure::OutsideWindow) => {
            return meta_error(400, 131047, "Re-engagement message");
        }
        Some(Failure::Slow(wait)) => tokio::time::sleep(wait).await,
        None => {}
    }
    let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
    shared.next_id += 1;
    let id = format!("wamid.out.{}", shared.next_id);
    let to = body["to"].clone();
    shared.sent.push(Sent {
        phone_id: phone,
        body,
        at: Instant::now(),
    });
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": to }],
        "messages": [{ "id": id }],
    }))
    .into_response()
}

async fn media_info(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return meta_error(401, 190, "Invalid OAuth access token");
    }
    let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
    let Some((announced, _, bytes)) = shared.media.get(&id) else {
        return meta_error(404, 100, "Unsupported get request");
    };
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    Json(json!({
        "messaging_product": "whatsapp",
        "url": format!("http://{host}/files/{id}"),
        "mime_type": announced,
        "file_size": bytes.len(),
        "id": id,
    }))
    .into_response()
}

async fn media_file(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
    match shared.media.get(&id) {
        Some((_, served, bytes)) => {
            ([(header::CONTENT_TYPE, served.clone())], bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
