//! A fake OpenAI-compatible chat endpoint: `POST /v1/chat/completions` records each request
//! (its authorization header and body) and answers `echo: <the last user message>`, with a
//! `usage` object as OpenAI's: prompt tokens are the words of every message sent, completion
//! tokens the words of the answer.

use std::sync::{Arc, Mutex};

use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Asked {
    pub authorization: String,
    pub body: Value,
    /// The `usage.total_tokens` the fake answered.
    pub total_tokens: u64,
}

/// The fake, serving until dropped.
pub struct FakeOpenAi {
    address: std::net::SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOpenAi {
    /// Starts on a loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake OpenAI");
        let address = listener.local_addr().expect("its address");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(Arc::clone(&asked));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            asked,
            task,
        }
    }

    /// The base URL, for the plugin's `AI_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// `host:port`, for the plugin's `http_allow`.
    pub fn authority(&self) -> String {
        self.address.to_string()
    }

    /// The requests so far.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn complete(
    State(asked): State<Arc<Mutex<Vec<Asked>>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let question = body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .and_then(|last| last["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let words = |text: &str| text.split_whitespace().count() as u64;
    let prompt_tokens: u64 = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|message| words(message["content"].as_str().unwrap_or_default()))
        .sum();
    let answer = format!("echo: {question}");
    let completion_tokens = words(&answer);
    let total_tokens = prompt_tokens + completion_tokens;
    asked.lock().unwrap_or_else(|e| e.into_inner()).push(Asked {
        authorization,
        body,
        total_tokens,
    });
    Json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": answer },
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
        },
    }))
}
