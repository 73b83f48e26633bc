//! A wasmbot host on Discord as the tests and the benchmark run it: the real host, its
//! gateway connected to the fake Discord.

use std::{path::Path, sync::Arc};

use serde_json::json;
use wasmbot::{
    capabilities::config_store::ConfigStore,
    config::Config,
    dispatch::{Dispatcher, timers::Firing},
    platforms::discord::{Discord, gateway::Running},
};

use crate::{
    config,
    fake_discord::{FakeDiscord, TOKEN},
    install, section,
};

/// A host connected to the fake Discord.
pub struct Host {
    pub dispatcher: Arc<Dispatcher>,
    gateway: Option<Running>,
    firing: Option<Firing>,
    store: Arc<ConfigStore>,
}

impl Host {
    /// A host with the plugins of `folder`, connected to `fake`.
    pub async fn start(fake: &FakeDiscord, folder: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = discord_config(fake, folder);
        tweak(&mut config);
        let store = Arc::new(config.open_store().await.expect("config store"));
        let backends = config.backends(Arc::clone(&store)).expect("backends");
        let registry = config.registry(config.build_runtime(backends).expect("runtime"));
        registry.load_dir(folder).await.expect("plugins");
        let discord = Discord::prepare(&config.discord, &registry)
            .await
            .expect("Discord accepts the token")
            .expect("Discord is configured");
        let dispatcher = Arc::new(
            config
                .dispatcher(registry)
                .with_outlet(discord.outlet.clone()),
        );
        let gateway = discord.gateway.map(|g| g.start(Arc::clone(&dispatcher)));
        let firing = Firing::start(&dispatcher);
        Self {
            dispatcher,
            gateway,
            firing,
            store,
        }
    }

    /// Closes the gateway, then the database pool.
    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.stop().await;
        }
        if let Some(firing) = self.firing.take() {
            firing.stop(std::time::Duration::from_secs(5)).await;
        }
        self.store.database().pool().close().await;
    }
}

/// The test configuration of a host of `folder`'s plugins, reaching `fake`.
pub fn discord_config(fake: &FakeDiscord, folder: &Path) -> Config {
    let mut config = config(folder);
    config.database.url = format!("sqlite://{}/bot.db?mode=rwc", folder.display());
    config.discord.token = TOKEN.to_owned();
    config.discord.api_url = fake.api_url();
    config.plugins.insert(
        "settings".into(),
        section(json!({"grants": ["log", "config", "host-config"]})),
    );
    config
}

/// A folder with the plugins `names`.
pub fn plugins(names: &[&str]) -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("temporary folder");
    install(folder.path(), names);
    folder
}

/// The settings of a measured run: its own Postgres database (`url`), whose statistics
/// count the config store's statements, and no rate limits (thousands of messages in
/// seconds would trip them; they are not what is measured).
pub fn measured(url: String) -> impl FnOnce(&mut Config) {
    move |config| {
        config.database.url = url;
        config.rate_limits.enabled = false;
    }
}
