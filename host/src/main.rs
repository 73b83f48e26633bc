//! `wasmbot`: runs the bot. With no platform credentials configured it runs a console
//! session on this terminal.

// The whole bot is one future (every capability's calls nested in it): its layout is
// deeper than the default limit allows.
#![recursion_limit = "256"]

#[path = "main/packages.rs"]
mod packages;

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::io::BufReader;
use wasmbot::{
    capabilities::{Backends, config_store::Scope},
    config::Config,
    db::{Database, redact},
    dispatch::timers::Firing,
    http::{client, host_router, serve},
    platforms::{
        console::{self, ConsoleOutlet},
        discord::{Discord, interactions},
        whatsapp::WhatsApp,
    },
    runtime::{Registry, registry, watch},
};

#[derive(Parser)]
#[command(
    name = "wasmbot",
    version,
    about = "Chat bots whose behaviour lives in WebAssembly plugins"
)]
struct Cli {
    /// The configuration file (TOML); `WASMBOT_*` variables override it.
    #[arg(long, env = "WASMBOT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The plugins folder (overrides `runtime.plugins_dir`).
    #[arg(long, global = true)]
    plugins_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the bot (the default).
    Run,
    /// Apply the database migrations and exit.
    Migrate,
    /// Load plugin files and print their manifests, or why they cannot load. Their compiled
    /// form goes into the cache, so a start-up that follows does not compile them.
    Check {
        /// `.wasm` files [default: every plugin in the plugins folder].
        files: Vec<PathBuf>,
    },
    /// Package, sign and publish plugins; search, install, update, approve, pin, roll back
    /// and remove them in the running bot.
    Plugin {
        #[command(subcommand)]
        command: packages::PluginCommand,
        /// The admin API's address [default: http:// and admin.listen].
        #[arg(long, global = true)]
        admin_url: Option<String>,
    },
    /// Publisher keys.
    Key {
        #[command(subcommand)]
        command: packages::KeyCommand,
    },
    /// Plugin indexes.
    Index {
        #[command(subcommand)]
        command: packages::IndexCommand,
    },
    /// Drop a scope's cached settings on every host of the running bot, after a change made
    /// outside it (through the bot's admin API).
    Invalidate {
        /// global, guild, channel, user or member.
        scope: String,
        /// The guild, channel or user id; GUILD:USER for a member.
        #[arg(default_value = "")]
        id: String,
        /// The admin API's address [default: http:// and admin.listen].
        #[arg(long)]
        admin_url: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    // Before the runtime's threads start allocating.
    wasmbot::telemetry::allocator::cap_glibc_arenas();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => {
            let code = runtime.block_on(bot());
            // Everything was stopped in order by now. What may be left is the console's
            // read of a terminal nobody types in, a blocking read no signal ends: dropping
            // the runtime would wait for it forever.
            runtime.shutdown_background();
            code
        }
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bot() -> std::process::ExitCode {
    wasmbot::telemetry::init();
    // On a worker thread, like every task the bot spawns: the thread blocked on `main` is
    // not one of the runtime's, and each wake-up of a future it drives (every database or
    // Redis round trip of a console event) would cross threads, which costs more than the
    // round trip.
    let outcome = match tokio::spawn(run(Cli::parse())).await {
        Ok(outcome) => outcome,
        Err(join) => Err(anyhow::anyhow!("the bot's task ended abnormally: {join}")),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.plugins_dir {
        config.runtime.plugins_dir = dir;
    }
    let config = Arc::new(config);
    let command = cli.command.unwrap_or(Commands::Run);
    if let Commands::Migrate = command {
        let db = Database::connect(&config.database)?;
        db.migrate().await?;
        tracing::info!(url = %redact(&config.database.url), "database migrated");
        return Ok(());
    }
    match command {
        Commands::Invalidate {
            scope,
            id,
            admin_url,
        } => {
            let scope = Scope::parse(&scope, &id).map_err(anyhow::Error::msg)?;
            let url = admin_url.unwrap_or_else(|| format!("http://{}", config.admin.listen));
            let count = client::invalidate(&url, &config.admin.token, &scope).await?;
            println!("{scope}: {count} cached document(s) dropped on every host");
            Ok(())
        }
        Commands::Plugin { command, admin_url } => {
            let url = admin_url.unwrap_or_else(|| format!("http://{}", config.admin.listen));
            packages::plugin(&config, command, url).await
        }
        Commands::Key { command } => packages::key(command),
        Commands::Index { command } => packages::index(&config, command).await,
        Commands::Check { mut files } => {
            if files.is_empty() {
                files = registry::plugin_files(&config.runtime.plugins_dir)?;
            }
            let runtime = config.build_runtime(Backends::default())?;
            check(&config.registry(runtime), &files).await
        }
        _ => run_bot(config).await,
    }
}

async fn run_bot(config: Arc<Config>) -> anyhow::Result<()> {
    let store = Arc::new(config.open_store().await?);
    let backends = config.backends(Arc::clone(&store))?;
    backends.start();
    let registry = config.registry(config.build_runtime(backends.clone())?);
    let dir = &config.runtime.plugins_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the plugins folder {}", dir.display()))?;
    // Watch before the first load, so a file changed meanwhile is not missed (loading the
    // same bytes twice is a no-op).
    let _watcher = if config.runtime.hot_reload {
        let quiet = std::time::Duration::from_millis(config.runtime.reload_debounce_ms);
        Some(watch::watch(Arc::clone(&registry), dir.clone(), quiet)?)
    } else {
        None
    };
    let loaded = registry.load_dir(dir).await?;
    tracing::info!(folder = %dir.display(), "{} plugin(s) loaded", loaded.len());
    // Installed packages serve next to the folder's plugins, and follow other hosts.
    let packages = config.packages(Arc::clone(&registry));
    if let Some(packages) = &packages {
        packages.start().await;
    }

    let discord = Discord::prepare(&config.discord, &registry).await?;
    let whatsapp = WhatsApp::prepare(&config.whatsapp, store.database())?;
    // With a platform connected the bot is a service: stdin may be closed, and its end is
    // no reason to stop. Without one, the console is the platform, and only then is it one
    // of the platforms `/readyz` and `/metrics` report.
    let console = discord.as_ref().is_none_or(|d| d.gateway.is_none()) && whatsapp.is_none();
    let mut dispatcher = config.dispatcher(registry);
    if console {
        dispatcher = dispatcher.with_outlet(ConsoleOutlet::new(tokio::io::stdout()));
    }
    if let Some(discord) = &discord {
        dispatcher = dispatcher.with_outlet(discord.outlet.clone());
    }
    if let Some(whatsapp) = &whatsapp {
        dispatcher = dispatcher.with_outlet(whatsapp.outlet.clone());
    }
    let dispatcher = Arc::new(dispatcher);
    let firing = Firing::start(&dispatcher);
    if config.admin.token.is_empty() {
        tracing::info!("admin API closed: set admin.token to open it");
    }
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut platform_routes = Vec::new();
    if let Some(discord) = &discord
        && !config.discord.public_key.is_empty()
    {
        let key = interactions::public_key(&config.discord.public_key)?;
        let answers = Arc::clone(discord.outlet.answers());
        platform_routes.push(interactions::router(Arc::clone(&dispatcher), answers, key));
        tracing::info!("Discord interactions accepted at POST /discord/interactions");
    }
    if let Some(whatsapp) = &whatsapp {
        platform_routes.push(whatsapp.router());
        tracing::info!("WhatsApp webhooks accepted at GET and POST /whatsapp/webhook");
    }
    let router = host_router(
        Arc::clone(&dispatcher),
        &config.admin.token,
        packages.clone(),
        platform_routes,
    );
    let listen = config.admin.listen;
    let http = tokio::spawn(async move {
        let stop = async {
            let _ = http_stopped.await;
        };
        if let Err(error) = serve(listen, router, stop).await {
            tracing::error!("{error:#}");
        }
    });

    let stop = stop_requested()?;
    let gateway = discord
        .and_then(|discord| discord.gateway)
        .map(|gateway| gateway.start(Arc::clone(&dispatcher)));
    let whatsapp = whatsapp.map(|whatsapp| whatsapp.start(Arc::clone(&dispatcher)));
    let result = if !console {
        stop.await;
        Ok(())
    } else {
        println!(
            "wasmbot console: type a message, e.g. {}ping; /press ID to click a button; /quit to leave.",
            config.bot.prefix
        );
        let input = BufReader::new(tokio::io::stdin());
        console::run_until(&dispatcher, input, stop).await
    };
    if let Some(gateway) = gateway {
        gateway.stop().await;
    }

    // Whatever the way out: no new events, those in flight finish, pending writes are
    // written, the pool is closed.
    let grace = std::time::Duration::from_millis(config.runtime.shutdown_grace_ms);
    if let Some(firing) = firing {
        firing.stop(grace).await;
    }
    if let Some(whatsapp) = whatsapp {
        whatsapp.stop(grace).await;
    }
    let unfinished = dispatcher.drain(grace).await;
    if unfinished > 0 {
        tracing::warn!(unfinished, ?grace, "stopping with events still running");
    }
    if let Some(packages) = &packages {
        packages.stop();
    }
    backends.stop().await;
    let _ = http_stop.send(());
    let _ = http.await;
    store.database().pool().close().await;
    tracing::info!("stopped");
    result
}

/// Ctrl-C, or SIGTERM from a service manager. The handlers are installed by this call, not
/// when the future is first polled, so a signal that comes early is not the default death.
fn stop_requested() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn check(registry: &Registry, files: &[PathBuf]) -> anyhow::Result<()> {
    let loaded = registry.load_files(files).await;
    let snapshot = registry.snapshot();
    for file in files {
        if let Some(plugin) = snapshot.plugins().find(|p| p.source() == file) {
            println!("{}: {:#?}", file.display(), plugin.manifest());
        }
    }
    let failed = loaded.iter().filter(|result| result.is_err()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} file(s) cannot be loaded",
        files.len()
    );
    Ok(())
}
