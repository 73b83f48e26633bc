//! The Graph API client: `POST /{phone-number-id}/messages`, retried with exponential
//! backoff on 5xx, 429 and Meta's rate-limit codes (honouring `Retry-After`), behind the
//! circuit breaker; and media downloads, capped in size and checked for their type.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::{StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use super::{
    WhatsAppConfig,
    breaker::{Admission, Breaker, RequestKey},
};
use crate::dispatch::MediaFile;

/// Meta's error codes for "too many messages": retried like a 429.
const RATE_LIMIT_CODES: [i64; 4] = [4, 80007, 130429, 131056];
/// Meta's error code for a free-form message outside the 24-hour window.
pub const OUTSIDE_WINDOW_CODE: i64 = 131047;

/// Why a Graph API call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Meta answered and refused the request: retrying the same one will not help.
    #[error("the WhatsApp API refused the request ({status}, code {code}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Meta's error code (131047: outside the 24-hour window).
        code: i64,
        /// Meta's explanation.
        message: String,
    },
    /// Meta did not answer, failed (5xx) or asked to slow down (429): worth trying later.
    #[error("the WhatsApp API is unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
        /// When Meta said to come back.
        retry_after: Option<Duration>,
    },
    /// The breaker is open: no call was made.
    #[error("the WhatsApp API is failing; calls resume in {}s", .0.as_secs().max(1))]
    BreakerOpen(Duration),
    /// A media file over the cap: the download stopped there.
    #[error("media {id} is over the {limit}-byte limit")]
    TooLarge {
        /// The media id.
        id: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// A media file of another type than Meta announced, or no type at all.
    #[error("media {id} came as {got:?}, expected {expected:?}")]
    WrongType {
        /// The media id.
        id: String,
        /// The type Meta announced.
        expected: String,
        /// The type the file came as.
        got: String,
    },
}

impl GraphError {
    /// Whether the message should wait and be sent later rather than be given up.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GraphError::Unavailable { .. } | GraphError::BreakerOpen(_)
        )
    }
}

/// The Graph API, as one host reaches it.
pub struct Graph {
    client: reqwest::Client,
    base: String,
    token: String,
    breaker: Breaker,
    backoff: ExponentialBuilder,
    backoff_max: Duration,
    media_max: u64,
}

#[derive(Deserialize)]
struct Sent {
    #[serde(default)]
    messages: Vec<SentId>,
}

#[derive(Deserialize)]
struct SentId {
    id: String,
}

#[derive(Deserialize)]
struct MediaInfo {
    url: String,
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    file_size: Option<u64>,
}

impl Graph {
    /// A client of `config.api_url` with the access token.
    pub fn new(config: &WhatsAppConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .build()?;
        let backoff_max = Duration::from_millis(config.backoff_max_ms);
        Ok(Self {
            client,
            base: config.api_url.trim_end_matches('/').to_owned(),
            token: config.access_token.clone(),
            breaker: Breaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_open_ms),
            ),
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(config.backoff_ms))
                .with_max_delay(backoff_max)
                .with_max_times(config.send_attempts.saturating_sub(1) as usize)
                .with_jitter(),
            backoff_max,
            media_max: config.media_max_bytes,
        })
    }

    /// The breaker: whether calls are refused now.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Sends one message from `phone_id`; returns its wamid. Transient failures are
    /// retried (at most `send_attempts` calls in all); the breaker counts them as one
    /// failed request, and so are this message's later attempts (from the outbox).
    pub async fn send(&self, phone_id: &str, body: &Value) -> Result<String, GraphError> {
        let url = format!("{}/{phone_id}/messages", self.base);
        // The outbox keeps the body as this text and parses it back, which gives the same
        // text again: its attempts have this message's key.
        let key = RequestKey::of((phone_id, body.to_string()));
        let call = || async {
            let answer = self.guarded(key, self.client.post(&url).json(body)).await?;
            let sent: Sent = answer.json().await.map_err(|error| unavailable(&error))?;
            Ok(sent
                .messages
                .into_iter()
                .next()
                .map(|m| m.id)
                .unwrap_or_default())
        };
        call.retry(self.backoff)
            .when(|error: &GraphError| matches!(error, GraphError::Unavailable { .. }))
            .adjust(|error, delay| {
                let hinted = match error {
                    GraphError::Unavailable {
                        retry_after: Some(hint),
                        ..
                    } => Some((*hint).min(self.backoff_max)),
                    _ => None,
                };
                delay.map(|delay| hinted.unwrap_or(delay))
            })
            .notify(|error, delay| {
                tracing::debug!(?delay, "WhatsApp send retried: {error}");
            })
            .await
    }

    /// Downloads a media file the platform holds: its metadata (the link, the type), then
    /// the file itself, stopping at the size cap; the type must be what Meta announced.
    pub async fn download(&self, media_id: &str) -> Result<MediaFile, GraphError> {
        let url = format!("{}/{media_id}", self.base);
        let info: MediaInfo = self
            .guarded(RequestKey::of(&url), self.client.get(&url))
            .await?
            .json()
            .await
            .map_err(|error| unavailable(&error))?;
        let too_large = || GraphError::TooLarge {
            id: media_id.to_owned(),
            limit: self.media_max,
        };
        if info.file_size.is_some_and(|size| size > self.media_max) {
            return Err(too_large());
        }
        let answer = self
            .guarded(RequestKey::of(&info.url), self.client.get(&info.url))
            .await?;
        let got = answer
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let essence = |mime: &str| mime.split(';').next().unwrap_or("").trim().to_lowercase();
        if got.is_empty() || essence(got) != essence(&info.mime_type) {
            return Err(GraphError::WrongType {
                id: media_id.to_owned(),
                expected: info.mime_type,
                got: got.to_owned(),
            });
        }
        let mime_type = essence(got);
        if answer
            .content_length()
            .is_some_and(|length| length > self.media_max)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut stream = answer.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| unavailable(&error))?;
            if (body.len() + chunk.len()) as u64 > self.media_max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(MediaFile {
            mime_type,
            bytes: Bytes::from(body),
        })
    }

    /// One call of the request `key` through the breaker, with the token; an error answer
    /// is classified.
    async fn guarded(
        &self,
        key: RequestKey,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GraphError> {
        if let Admission::Refused(wait) = self.breaker.admit() {
            return Err(GraphError::BreakerOpen(wait));
        }
        let result = match request.bearer_auth(&self.token).send().await {
            Ok(answer) if answer.status().is_success() => Ok(answer),
            Ok(answer) => Err(refusal(answer).await),
            Err(error) => Err(unavailable(&error)),
        };
        match &result {
            Err(GraphError::Unavailable { .. }) => self.breaker.failure(key),
            // Meta answered: the API works, whatever it thought of the request.
            _ => self.breaker.success(),
        }
        result
    }
}

fn unavailable(error: &reqwest::Error) -> GraphError {
    GraphError::Unavailable {
        reason: error.to_string(),
        retry_after: None,
    }
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
}

/// What an error answer means: 5xx, 429 and rate-limit codes are worth retrying (after
/// `Retry-After` when given), the rest is the request's fault.
async fn refusal(answer: reqwest::Response) -> GraphError {
    let status = answer.status();
    let retry_after = answer
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let detail = answer.json::<ErrorBody>().await.unwrap_or_default().error;
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || RATE_LIMIT_CODES.contains(&detail.code)
    {
        return GraphError::Unavailable {
            reason: format!("{status}: {}", detail.message),
            retry_after,
        };
    }
    GraphError::Rejected {
        status: status.as_u16(),
        code: detail.code,
        message: detail.message,
    }
}
