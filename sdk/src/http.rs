//! Outbound HTTP through the standard `wasi:http` interfaces. The capability is `http`,
//! granted by name, and the operator lists the hosts each plugin may reach
//! (`[plugins.NAME] http_allow = ["api.openai.com"]`); any other host is refused as
//! [`HttpError::Denied`] before a connection is made. Settings such as an endpoint's URL
//! and key come from the plugin's environment (`[plugins.NAME] env`), read with
//! [`std::env::var`].
//!
//! ```
//! use wasmbot_sdk::{http, prelude::*};
//!
//! struct Weather;
//!
//! impl Plugin for Weather {
//!     fn manifest() -> Manifest {
//!         Manifest::new("weather", "0.1.0")
//!             .command(CommandSpec::new("weather", "Today's weather"))
//!             .capability("http")
//!     }
//!
//!     fn handle(_event: Event) -> Handled {
//!         let url = std::env::var("WEATHER_URL").unwrap_or_default();
//!         let forecast: serde_json::Value = http::get(&url, &[])?.json()?;
//!         let summary = forecast["summary"].as_str().unwrap_or("unknown");
//!         Ok(vec![Action::reply(format!("Today: {summary}"))])
//!     }
//! }
//!
//! export_plugin!(Weather);
//! ```

use std::fmt;

use serde::{Serialize, de::DeserializeOwned};
use wasip2::http::{
    outgoing_handler,
    types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme},
};

use crate::PluginError;

/// The largest response body read; more is an error rather than unbounded memory.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// `blocking-write-and-flush` takes at most this much at once.
const WRITE_CHUNK: usize = 4096;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused it: `http` is not granted, or the host is not in `http_allow`.
    Denied,
    /// The URL cannot be sent (`scheme://host/path`, http or https).
    InvalidUrl(String),
    /// The response body is over [`MAX_RESPONSE_BYTES`].
    TooLarge,
    /// The body is not what was expected (JSON that does not parse, say).
    InvalidBody(String),
    /// Anything else: connection, TLS, timeout, a malformed response.
    Failed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied => f.write_str("HTTP request denied by the host"),
            HttpError::InvalidUrl(url) => write!(f, "invalid URL {url:?}"),
            HttpError::TooLarge => write!(f, "response over {MAX_RESPONSE_BYTES} bytes"),
            HttpError::InvalidBody(why) => write!(f, "unexpected response body: {why}"),
            HttpError::Failed(why) => write!(f, "HTTP request failed: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// So `?` works in a handler: an endpoint that cannot be reached is "unavailable", which
/// the host tells the user as such.
impl From<HttpError> for PluginError {
    fn from(error: HttpError) -> Self {
        PluginError::Unavailable(error.to_string())
    }
}

/// A response, its body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; a non-2xx status is [`HttpError::Failed`] with the body's start.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        if !self.ok() {
            let start: String = String::from_utf8_lossy(&self.body)
                .chars()
                .take(200)
                .collect();
            return Err(HttpError::Failed(format!(
                "status {}: {start}",
                self.status
            )));
        }
        serde_json::from_slice(&self.body).map_err(|e| HttpError::InvalidBody(e.to_string()))
    }
}

/// `GET url` with `headers`.
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<Response, HttpError> {
    send(Method::Get, url, headers, &[])
}

/// `POST url` with `headers` and `body` as JSON.
pub fn post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &impl Serialize,
) -> Result<Response, HttpError> {
    let body = serde_json::to_vec(body).map_err(|e| HttpError::InvalidBody(e.to_string()))?;
    let mut with_type = vec![("content-type", "application/json")];
    with_type.extend_from_slice(headers);
    send(Method::Post, url, &with_type, &body)
}

fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let invalid = || HttpError::InvalidUrl(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return Err(invalid()),
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(invalid());
    }
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| HttpError::Failed(format!("header {name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let set = request
        .set_method(&method)
        .and(request.set_scheme(Some(&scheme)))
        .and(request.set_authority(Some(authority)))
        .and(request.set_path_with_query(Some(path)));
    set.map_err(|()| invalid())?;
    let outgoing = request.body().map_err(|()| failed("request body taken"))?;
    let pending = outgoing_handler::handle(request, None).map_err(error)?;
    {
        let stream = outgoing
            .write()
            .map_err(|()| failed("request body stream"))?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| failed(&format!("writing the request: {e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(error)?;
    let response = loop {
        match pending.get() {
            Some(Ok(response)) => break response.map_err(error)?,
            Some(Err(())) => return Err(failed("response taken twice")),
            None => pending.subscribe().block(),
        }
    };
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| failed("response body taken"))?;
    let stream = incoming
        .stream()
        .map_err(|()| failed("response body stream"))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(failed(&format!("reading the response: {e:?}"))),
        }
    }
    Ok(Response { status, body })
}

fn failed(why: &str) -> HttpError {
    HttpError::Failed(why.to_owned())
}

fn error(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied,
        other => HttpError::Failed(format!("{other:?}")),
    }
}
