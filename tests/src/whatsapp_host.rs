//! A wasmbot host on WhatsApp as the tests and the benchmark run it: the real host, its
//! webhook and its HTTP routes (admin API behind [`ADMIN_TOKEN`], `/metrics`...) served on
//! a loopback port, its Graph API the fake.

use std::{path::Path, sync::Arc};

use wasmbot::{
    capabilities::{config_store::ConfigStore, counters::WriteBehind},
    config::Config,
    dispatch::{Dispatcher, timers::Firing},
    platforms::whatsapp::{Running, WhatsApp},
};

use crate::{
    config,
    fake_whatsapp::{APP_SECRET, FakeGraph, PHONE_ID, TOKEN},
};

/// The bearer token of the test hosts' admin API.
pub const ADMIN_TOKEN: &str = "admin-token";

/// A host receiving WhatsApp webhooks and sending through the fake.
pub struct Host {
    pub dispatcher: Arc<Dispatcher>,
    pub whatsapp: WhatsApp,
    /// `http://127.0.0.1:port`: where the webhook and the admin API are.
    pub url: String,
    running: Option<Running>,
    firing: Option<Firing>,
    http: tokio::task::JoinHandle<()>,
    store: Arc<ConfigStore>,
}

impl Host {
    /// A host with the plugins of `folder` whose workers run.
    pub async fn start(fake: &FakeGraph, folder: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut host = Self::serve(fake, folder, tweak).await;
        host.running = Some(host.whatsapp.start(Arc::clone(&host.dispatcher)));
        host.firing = Firing::start(&host.dispatcher);
        host
    }

    /// A host that acknowledges webhooks but whose workers do not run.
    pub async fn serve(fake: &FakeGraph, folder: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = whatsapp_config(fake, folder);
        tweak(&mut config);
        let store = Arc::new(config.open_store().await.expect("config store"));
        let backends = config.backends(Arc::clone(&store)).expect("backends");
        let registry = config.registry(config.build_runtime(backends).expect("runtime"));
        registry.load_dir(folder).await.expect("plugins");
        let whatsapp = WhatsApp::prepare(&config.whatsapp, store.database())
            .expect("WhatsApp configuration")
            .expect("WhatsApp is configured");
        let dispatcher = Arc::new(
            config
                .dispatcher(registry)
                .with_outlet(whatsapp.outlet.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let router = wasmbot::http::host_router(
            Arc::clone(&dispatcher),
            &config.admin.token,
            None,
            [whatsapp.router()],
        );
        let http = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            dispatcher,
            whatsapp,
            url,
            running: None,
            firing: None,
            http,
            store,
        }
    }

    /// The host's config store.
    pub fn store(&self) -> &Arc<ConfigStore> {
        &self.store
    }

    /// The host's write-behind counters (nothing flushes them on its own here: tests call
    /// `flush_all`).
    pub fn counters(&self) -> Arc<WriteBehind> {
        let backends = self.dispatcher.registry().runtime().backends();
        match &backends.counters {
            Some(counters) => Arc::clone(counters),
            None => panic!("the host runs without counters"),
        }
    }

    /// Stops as on SIGTERM: the workers finish what they process and release the rest.
    pub async fn stop(mut self) {
        self.http.abort();
        if let Some(firing) = self.firing.take() {
            firing.stop(std::time::Duration::from_secs(5)).await;
        }
        if let Some(running) = self.running.take() {
            running.stop(std::time::Duration::from_secs(5)).await;
        }
        self.store.database().pool().close().await;
    }

    /// Stops as in a crash: nothing is finished or released.
    pub async fn kill(mut self) {
        self.http.abort();
        drop(self.firing.take());
        drop(self.running.take());
        self.store.database().pool().close().await;
    }
}

/// The test configuration of a host of `folder`'s plugins, reaching `fake`: SQLite in the
/// folder, short retries, the admin API open to [`ADMIN_TOKEN`].
pub fn whatsapp_config(fake: &FakeGraph, folder: &Path) -> Config {
    let mut config = config(folder);
    config.database.url = format!("sqlite://{}/bot.db?mode=rwc", folder.display());
    let whatsapp = &mut config.whatsapp;
    whatsapp.access_token = TOKEN.to_owned();
    whatsapp.app_secret = APP_SECRET.to_owned();
    whatsapp.verify_token = "verify-me".to_owned();
    whatsapp.phone_number_ids = vec![PHONE_ID.to_owned()];
    whatsapp.api_url = fake.url();
    whatsapp.backoff_ms = 10;
    whatsapp.backoff_max_ms = 50;
    config.admin.token = ADMIN_TOKEN.to_owned();
    config
}
