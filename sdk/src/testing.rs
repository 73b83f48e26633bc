//! Run a plugin against an in-process host from an ordinary `cargo test`.
//!
//! ```no_run
//! use wasmbot_sdk::{build::PluginBuild, testing::TestHost};
//!
//! #[tokio::test]
//! async fn ping_answers_pong() {
//!     let wasm = PluginBuild::new(env!("CARGO_MANIFEST_DIR")).package("ping").run().unwrap();
//!     let host = TestHost::load(&wasm).await.unwrap();
//!     let replies = host.say("!ping").await;
//!     assert!(replies[0].starts_with("pong"));
//! }
//! ```
//!
//! The host is the real one (sandbox, budgets, dispatch, argument parsing) with the console
//! platform's conventions: a local user in a local guild, and `/press ID` for buttons.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
pub use wasmbot::{
    bindings::types::{Action, Outgoing},
    capabilities::config_store::ConfigStore,
    config::Config,
    dispatch::Outcome,
};
use wasmbot::{
    bindings::types::{Event, EventKind, Platform},
    capabilities::counters::WriteBehind,
    dispatch::{Dispatcher, Outlet, SendFailure, timers::Firing},
    platforms::console,
};

/// An in-process host with some plugins loaded, recording what they send.
pub struct TestHost {
    dispatcher: Arc<Dispatcher>,
    outlet: Arc<Recorder>,
    /// Fires the plugins' timers while the host lives.
    _firing: Option<Firing>,
    /// The private SQLite database's folder, removed with the host.
    _database: Option<tempfile::TempDir>,
}

impl TestHost {
    /// A host with the default configuration (no disk cache), a private SQLite config
    /// store and these plugin files.
    pub async fn load(files: &[PathBuf]) -> anyhow::Result<Self> {
        let mut config = Config::default();
        config.runtime.cache_dir = PathBuf::new();
        Self::with_config(config, files).await
    }

    /// A host with `config`, a private SQLite config store and these plugin files; a file
    /// that does not load is an error.
    pub async fn with_config(mut config: Config, files: &[PathBuf]) -> anyhow::Result<Self> {
        let folder = tempfile::tempdir()?;
        let path = folder.path().join("wasmbot.db");
        config.database.url = format!("sqlite://{}?mode=rwc", path.display());
        config.redis.url.clear();
        let store = Arc::new(config.open_store().await?);
        let mut host = Self::with_store(config, store, files).await?;
        host._database = Some(folder);
        Ok(host)
    }

    /// A host with `config`, the given config store (Postgres, Redis...) and these plugin
    /// files.
    pub async fn with_store(
        config: Config,
        store: Arc<ConfigStore>,
        files: &[PathBuf],
    ) -> anyhow::Result<Self> {
        let backends = config.backends(store)?;
        let registry = config.registry(config.build_runtime(backends)?);
        for (file, loaded) in files.iter().zip(registry.load_files(files).await) {
            loaded.map_err(|error| anyhow::anyhow!("{}: {error}", file.display()))?;
        }
        let outlet = Arc::new(Recorder::default());
        let dispatcher = Arc::new(config.dispatcher(registry).with_outlet(outlet.clone()));
        let firing = Firing::start(&dispatcher);
        Ok(Self {
            dispatcher,
            outlet,
            _firing: firing,
            _database: None,
        })
    }

    /// The host's write-behind counters (`flush_all` writes what plugins counted).
    pub fn counters(&self) -> Option<&Arc<WriteBehind>> {
        self.dispatcher
            .registry()
            .runtime()
            .backends()
            .counters
            .as_ref()
    }

    /// The host's config store, to read or change what plugins see.
    pub fn store(&self) -> Option<&Arc<ConfigStore>> {
        self.dispatcher
            .registry()
            .runtime()
            .backends()
            .config_store
            .as_ref()
    }

    /// The dispatcher, for loading more plugins, reading the registry or serving the
    /// host's HTTP routes.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Types a console line (a message, or `/press ID`) and returns the actions delivered.
    pub async fn send(&self, line: &str) -> Vec<Action> {
        match console::event_for_line(&self.dispatcher, line) {
            Some(event) => self.event(event).await.1,
            None => Vec::new(),
        }
    }

    /// Types a console line and returns the texts of the replies and sends delivered.
    pub async fn say(&self, line: &str) -> Vec<String> {
        texts(&self.send(line).await)
    }

    /// Types a console line as if in `guild` (so tests sharing a database need not share
    /// a guild) and returns the texts delivered.
    pub async fn say_in(&self, guild: &str, line: &str) -> Vec<String> {
        let Some(mut event) = console::event_for_line(&self.dispatcher, line) else {
            return Vec::new();
        };
        event.guild_id = Some(guild.to_owned());
        texts(&self.event(event).await.1)
    }

    /// Waits, at most `within`, until the plugins' timers have delivered `count` replies and
    /// sends in all; returns those delivered so far, each with the timer event it answered.
    pub async fn timer_actions(
        &self,
        count: usize,
        within: std::time::Duration,
    ) -> Vec<(Event, Action)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.outlet.fired.notified();
            let fired = self.outlet.timers();
            if fired.len() >= count || tokio::time::Instant::now() >= deadline {
                return fired;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// How many replies and sends the plugins' timers have delivered so far.
    pub fn timers_fired(&self) -> usize {
        self.outlet
            .timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Dispatches any event; returns what each plugin made of it and the actions delivered
    /// in answer to it (other events' actions are not mixed in, however many run at once).
    pub async fn event(&self, event: Event) -> (Vec<Outcome>, Vec<Action>) {
        let id = event.id.clone();
        let outcomes = self.dispatcher.dispatch(event).await;
        (outcomes, self.outlet.take(&id))
    }
}

/// The texts of the replies and sends among `actions`.
pub fn texts(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Reply(message) => Some(message.text.clone()),
            Action::Send(send) => Some(send.message.text.clone()),
            _ => None,
        })
        .collect()
}

/// The console outlet of a test host: keeps each event's actions until they are taken.
#[derive(Default)]
struct Recorder {
    actions: Mutex<HashMap<String, Vec<Action>>>,
    /// What timer events were answered with, in order.
    timers: Mutex<Vec<(Event, Action)>>,
    fired: tokio::sync::Notify,
}

impl Recorder {
    fn timers(&self) -> Vec<(Event, Action)> {
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn take(&self, event_id: &str) -> Vec<Action> {
        let mut actions = self.actions.lock().unwrap_or_else(|e| e.into_inner());
        actions.remove(event_id).unwrap_or_default()
    }
}

impl Outlet for Recorder {
    fn platform(&self) -> Platform {
        Platform::Console
    }

    fn deliver<'a>(
        &'a self,
        origin: &'a Event,
        _plugin: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        if let EventKind::Timer(_) = origin.kind {
            let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
            timers.push((origin.clone(), action));
            self.fired.notify_waiters();
            return Box::pin(async { Ok(()) });
        }
        let mut actions = self.actions.lock().unwrap_or_else(|e| e.into_inner());
        actions.entry(origin.id.clone()).or_default().push(action);
        Box::pin(async { Ok(()) })
    }
}
