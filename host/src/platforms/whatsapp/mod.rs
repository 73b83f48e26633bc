//! WhatsApp, on Meta's Cloud API: webhooks in (verified, acknowledged at once, kept in a
//! durable inbox, de-duplicated, processed by per-user workers), messages out through the
//! Graph API (retried, behind a circuit breaker, queued while Meta is down, refused outside
//! the 24-hour customer-service window unless they are templates), and media downloads
//! with a size cap.

pub mod breaker;
pub mod graph;
pub mod inbox;
pub mod outbox;
pub mod outlet;
mod payload;
pub mod webhook;
pub mod wire;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use self::{graph::Graph, inbox::Inbox, outlet::WhatsAppOutlet};
use crate::{db::Database, dispatch::Dispatcher};

/// The `[whatsapp]` section. `WHATSAPP_TOKEN`, `WHATSAPP_APP_SECRET` and
/// `WHATSAPP_VERIFY_TOKEN` override the secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// The Graph API access token; set, WhatsApp is on.
    pub access_token: String,
    /// The app secret: every webhook's `X-Hub-Signature-256` is checked with it.
    pub app_secret: String,
    /// What Meta must send to verify the webhook (`hub.verify_token`).
    pub verify_token: String,
    /// The business phone number ids this host serves; the first sends messages to users
    /// who never wrote to another.
    pub phone_number_ids: Vec<String>,
    /// The Graph API, with its version; a fake in tests.
    pub api_url: String,
    /// The largest webhook body accepted, in bytes (413 past it).
    pub max_body_bytes: usize,
    /// The largest media file downloaded, in bytes.
    pub media_max_bytes: u64,
    /// Workers processing webhook items; one user's items always go to the same one, in
    /// order.
    pub workers: usize,
    /// How long a host may work on an item before another may take it over (it crashed),
    /// in seconds.
    pub claim_s: u64,
    /// How long a webhook waits for its items to be written to the inbox before it is
    /// answered 503 (Meta delivers it again), in milliseconds; no retry on this path.
    pub write_timeout_ms: u64,
    /// Items a worker may have answered, or be answering, before their done mark is
    /// written: what a crash answers twice, per worker, at most. 1 waits for each item's
    /// mark before the next; more lets the marks of a worker's items share a statement.
    pub marks_ahead: usize,
    /// How long processed items are remembered to recognize Meta's redeliveries, in hours.
    pub dedupe_hours: u64,
    /// Attempts of one Graph API call before the message waits in the outbox.
    pub send_attempts: u32,
    /// The first retry's delay, doubled each time, in milliseconds.
    pub backoff_ms: u64,
    /// The longest delay between retries, in milliseconds.
    pub backoff_max_ms: u64,
    /// Distinct requests failing in a row (no call succeeding in between) that open the
    /// circuit breaker. A request is one message (its retries and its outbox attempts count
    /// once) or one media download: one message retried through an outage never opens it.
    pub breaker_failures: u32,
    /// How long the open breaker refuses calls before it lets one probe through, in
    /// milliseconds.
    pub breaker_open_ms: u64,
    /// One Graph API call's time limit, in milliseconds.
    pub request_timeout_ms: u64,
    /// The customer-service window: after a user's last message, how long free-form
    /// messages may be sent to them, in hours; after it, only templates.
    pub window_hours: u64,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self {
            access_token: String::new(),
            app_secret: String::new(),
            verify_token: String::new(),
            phone_number_ids: Vec::new(),
            api_url: "https://graph.facebook.com/v21.0".to_owned(),
            max_body_bytes: 1024 * 1024,
            media_max_bytes: 25 * 1024 * 1024,
            workers: 16,
            claim_s: 300,
            write_timeout_ms: 3_000,
            marks_ahead: 4,
            dedupe_hours: 7 * 24,
            send_attempts: 4,
            backoff_ms: 200,
            backoff_max_ms: 5_000,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            request_timeout_ms: 10_000,
            window_hours: 24,
        }
    }
}

impl WhatsAppConfig {
    /// Whether WhatsApp is configured.
    pub fn enabled(&self) -> bool {
        !self.access_token.is_empty()
    }

    /// Reads the secrets' environment variables over the file.
    pub fn read_env(&mut self) {
        for (name, field) in [
            ("WHATSAPP_TOKEN", &mut self.access_token),
            ("WHATSAPP_APP_SECRET", &mut self.app_secret),
            ("WHATSAPP_VERIFY_TOKEN", &mut self.verify_token),
        ] {
            if let Ok(value) = std::env::var(name) {
                *field = value;
            }
        }
    }

    /// Refuses a configuration that would accept unsigned webhooks or send from nowhere,
    /// naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        anyhow::ensure!(
            !self.app_secret.is_empty(),
            "whatsapp.app_secret (or WHATSAPP_APP_SECRET): needed to check webhook signatures"
        );
        anyhow::ensure!(
            !self.phone_number_ids.is_empty(),
            "whatsapp.phone_number_ids: at least one business phone number id"
        );
        anyhow::ensure!(self.workers >= 1, "whatsapp.workers: at least 1");
        anyhow::ensure!(
            self.send_attempts >= 1,
            "whatsapp.send_attempts: at least 1"
        );
        Ok(())
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.window_hours * 3600)
    }
}

/// What went through WhatsApp since the host started (`wasmbot_platform_total`).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Webhook items written to the inbox.
    pub received: AtomicU64,
    /// Items Meta delivered again, recognized and ignored.
    pub duplicates: AtomicU64,
    /// Items skipped: unknown message types, numbers this host does not serve.
    pub skipped: AtomicU64,
    /// Webhook posts refused: bad signature, malformed JSON, a body over the size limit.
    pub refused: AtomicU64,
    /// Webhook posts answered 503 because the database could not take their items (it
    /// was known to be down, or the write failed): Meta delivers them again.
    pub unavailable: AtomicU64,
    /// Items processed by the workers.
    pub processed: AtomicU64,
    /// Messages the Graph API took.
    pub sent: AtomicU64,
    /// Messages put in the outbox because the API could not take them.
    pub queued: AtomicU64,
    /// Messages refused for good (by Meta, or outside the 24-hour window).
    pub failed: AtomicU64,
}

impl Traffic {
    pub(crate) fn count(counter: &AtomicU64, by: usize) {
        counter.fetch_add(by as u64, Ordering::Relaxed);
    }

    fn counts(&self) -> Vec<(&'static str, u64)> {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        vec![
            ("received", read(&self.received)),
            ("duplicates", read(&self.duplicates)),
            ("skipped", read(&self.skipped)),
            ("refused", read(&self.refused)),
            ("unavailable", read(&self.unavailable)),
            ("processed", read(&self.processed)),
            ("sent", read(&self.sent)),
            ("queued", read(&self.queued)),
            ("failed", read(&self.failed)),
        ]
    }
}

/// WhatsApp as one host runs it.
pub struct WhatsApp {
    /// Where actions for WhatsApp go.
    pub outlet: Arc<WhatsAppOutlet>,
    /// The durable inbox of webhook items.
    pub inbox: Arc<Inbox>,
    config: WhatsAppConfig,
}

impl WhatsApp {
    /// WhatsApp as configured, or `None` when it is not.
    pub fn prepare(config: &WhatsAppConfig, db: &Database) -> anyhow::Result<Option<Self>> {
        if !config.enabled() {
            return Ok(None);
        }
        let traffic = Arc::new(Traffic::default());
        let graph = Arc::new(Graph::new(config)?);
        let inbox = Arc::new(Inbox::new(db.clone(), config, Arc::clone(&traffic)));
        let outlet = Arc::new(WhatsAppOutlet::new(graph, Arc::clone(&inbox), config));
        Ok(Some(Self {
            outlet,
            inbox,
            config: config.clone(),
        }))
    }

    /// `GET` and `POST /whatsapp/webhook`.
    pub fn router(&self) -> axum::Router {
        webhook::router(Arc::clone(&self.inbox), &self.config)
    }

    /// Starts the workers (and takes up items left unprocessed by a host that stopped) and
    /// the outbox's sender.
    pub fn start(&self, dispatcher: Arc<Dispatcher>) -> Running {
        Running {
            inbox: self.inbox.start(dispatcher),
            outbox: self.outlet.start(),
        }
    }
}

/// The running workers; dropping it stops them.
pub struct Running {
    inbox: inbox::Workers,
    outbox: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops taking items: those being processed may finish within `grace`; those not
    /// started yet are released at once for the next host (or this one's restart) instead
    /// of waiting for their claims to run out. Dropped instead, as in a crash, the claims
    /// run out first.
    pub async fn stop(self, grace: Duration) {
        self.outbox.abort();
        self.inbox.stop(grace).await;
    }
}
