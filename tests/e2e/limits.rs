//! The operator's rate limits before plugins run, and plugins' own limits: exact at the
//! boundary in one process and across two hosts on one Redis, one notice per window.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use wasmbot::{
    bindings::types::{Action, Event, Platform},
    capabilities::rate_limit::{Decision, LimitConfig, OnRedisError, Per, Rate, RateLimiter},
    config::Config,
    dispatch::{Dispatcher, Outlet, SendFailure},
    platforms::console,
    redis::Redis,
    runtime::Registry,
};
use wasmbot_sdk::testing::{TestHost, texts};
use wasmbot_tests::{config, install, plugin, redis_url, unique};

/// A Discord outlet that keeps each event's replies.
#[derive(Default)]
struct Discord {
    replies: Mutex<HashMap<String, Vec<String>>>,
}

impl Discord {
    fn take(&self, event: &str) -> Vec<String> {
        let mut replies = self.replies.lock().unwrap();
        replies.remove(event).unwrap_or_default()
    }
}

impl Outlet for Discord {
    fn platform(&self) -> Platform {
        Platform::Discord
    }

    fn deliver<'a>(
        &'a self,
        origin: &'a Event,
        plugin: &'a str,
        action: Action,
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        let text = texts(&[action]).join("");
        let mut replies = self.replies.lock().unwrap();
        replies
            .entry(origin.id.clone())
            .or_default()
            .push(format!("{plugin}> {text}"));
        Box::pin(async { Ok(()) })
    }
}

struct Host {
    dispatcher: Dispatcher,
    discord: Arc<Discord>,
    _folder: tempfile::TempDir,
}

impl Host {
    async fn start(config: Config, plugins: &[&str]) -> Self {
        let folder = tempfile::tempdir().unwrap();
        install(folder.path(), plugins);
        let mut config = config;
        config.runtime.plugins_dir = folder.path().to_owned();
        config.database.url = format!("sqlite://{}/bot.db?mode=rwc", folder.path().display());
        let store = Arc::new(config.open_store().await.unwrap());
        let backends = config.backends(store).unwrap();
        let registry = Registry::new(config.build_runtime(backends).unwrap());
        registry.load_dir(folder.path()).await.unwrap();
        let discord = Arc::new(Discord::default());
        let dispatcher = config.dispatcher(registry).with_outlet(discord.clone());
        Self {
            dispatcher,
            discord,
            _folder: folder,
        }
    }

    /// `line` written on Discord by `user` in `guild`; the replies it got.
    async fn say(&self, user: &str, guild: &str, line: &str) -> Vec<String> {
        let mut event = console::event_for_line(&self.dispatcher, line).unwrap();
        event.platform = Platform::Discord;
        event.author.id = user.to_owned();
        event.guild_id = Some(guild.to_owned());
        let id = event.id.clone();
        self.dispatcher.dispatch(event).await;
        self.discord.take(&id)
    }
}

fn limit(limit: u32, window_secs: u64) -> LimitConfig {
    LimitConfig {
        limit,
        window_secs,
        per: None,
    }
}

fn pongs(replies: &[Vec<String>]) -> usize {
    replies
        .iter()
        .filter(|r| r.len() == 1 && r[0].starts_with("ping> pong"))
        .count()
}

fn notices(replies: &[Vec<String>]) -> Vec<String> {
    replies
        .iter()
        .flatten()
        .filter(|r| r.starts_with("wasmbot> "))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_user_over_the_limit_is_stopped_before_plugins_and_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.rate_limits.user = limit(5, 60);
    let host = Host::start(config, &["ping"]).await;
    let mut replies = Vec::new();
    let lines = ["!ping"; 5].into_iter().chain(["just chatting"; 2]);
    for line in lines.chain(["!ping"; 3]) {
        replies.push(host.say("flooder", "g1", line).await);
    }
    assert_eq!(pongs(&replies), 5, "{replies:?}");
    assert!(replies[..5].iter().all(|r| r[0].starts_with("ping> pong")));
    let told = notices(&replies);
    assert_eq!(told.len(), 1, "{replies:?}");
    assert!(
        told[0].contains("too fast") && told[0].contains("Limit: 5 per 60 s"),
        "{told:?}"
    );
    // Chat over the limit is dropped quietly; the first command over it is told.
    assert!(replies[5].is_empty() && replies[6].is_empty());
    assert_eq!(
        replies[7], told,
        "the first refused command gets the notice"
    );
    // Someone else is not affected.
    assert_eq!(pongs(&[host.say("calm", "g1", "!ping").await]), 1);
    assert_eq!(host.dispatcher.limits().refused()["user"], 5);
}

#[tokio::test]
async fn the_notice_comes_again_in_the_next_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.rate_limits.user = limit(1, 1);
    let host = Host::start(config, &["ping"]).await;
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(host.say("u", "g", "!ping").await);
    }
    assert_eq!((pongs(&replies), notices(&replies).len()), (1, 1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut later = Vec::new();
    for _ in 0..3 {
        later.push(host.say("u", "g", "!ping").await);
    }
    assert_eq!((pongs(&later), notices(&later).len()), (1, 1), "{later:?}");
}

#[tokio::test]
async fn command_guild_and_plugin_limits_count_what_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.rate_limits.user = limit(1000, 60);
    // Two rolls per guild, whoever rolls; three pings per user into the ping plugin.
    let mut roll = limit(2, 60);
    roll.per = Some(Per::Guild);
    config.rate_limits.commands.insert("roll".into(), roll);
    config
        .rate_limits
        .plugins
        .insert("ping".into(), limit(3, 60));
    let host = Host::start(config, &["ping", "dice"]).await;

    let rolled = |replies: &[String]| replies.iter().any(|r| r.starts_with("dice> "));
    assert!(rolled(&host.say("a", "g1", "!roll").await));
    assert!(rolled(&host.say("b", "g1", "!roll").await));
    let third = host.say("c", "g1", "!roll").await;
    assert!(!rolled(&third) && third[0].contains("`roll` is used too often"));
    // The guild's limit is shared, its notice is each user's own.
    let fourth = host.say("d", "g1", "!roll").await;
    assert!(!rolled(&fourth) && fourth[0].contains("`roll` is used too often"));
    assert!(host.say("d", "g1", "!roll").await.is_empty());
    assert!(rolled(&host.say("c", "g2", "!roll").await), "another guild");

    let mut replies = Vec::new();
    for _ in 0..5 {
        replies.push(host.say("a", "g1", "!ping").await);
    }
    assert_eq!(pongs(&replies), 3);
    let refused = host.dispatcher.limits().refused();
    assert_eq!((refused["command roll"], refused["plugin ping"]), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_redis_enforce_one_limit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.rate_limits.user = limit(10, 60);
    config.redis.url = redis_url();
    let (a, b) = tokio::join!(
        Host::start(config.clone(), &["ping"]),
        Host::start(config, &["ping"])
    );
    let user = unique("shared-user");
    let mut replies = Vec::new();
    for round in 0..15 {
        let host = if round % 2 == 0 { &a } else { &b };
        replies.push(host.say(&user, "g", "!ping").await);
        replies.push(host.say(&user, "g", "!ping").await);
    }
    assert_eq!(pongs(&replies), 10, "{replies:?}");
    assert_eq!(notices(&replies).len(), 1, "one notice across both hosts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_checks_are_atomic_under_concurrency() {
    let redis = Redis::new(&redis_url()).unwrap();
    let hosts: Vec<Arc<RateLimiter>> = (0..2)
        .map(|_| {
            Arc::new(RateLimiter::new(
                10,
                Some(redis.clone()),
                OnRedisError::Allow,
            ))
        })
        .collect();
    let rate = Rate::new(25, Duration::from_secs(60)).unwrap();
    let key = unique("burst");
    let checks = (0..100).map(|i| {
        let limiter = Arc::clone(&hosts[i % 2]);
        let key = key.clone();
        tokio::spawn(async move { limiter.check(&key, rate).await.unwrap() })
    });
    let decisions = futures::future::join_all(checks).await;
    let allowed = decisions
        .iter()
        .filter(|d| *d.as_ref().unwrap() == Decision::Allowed)
        .count();
    assert_eq!(allowed, 25);
    let Ok(Decision::RetryAfter(wait)) = hosts[0].check(&key, rate).await else {
        panic!("over the limit");
    };
    // One of 25 slots of a minute frees every 2.4 s.
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(2400),
        "{wait:?}"
    );
}

#[tokio::test]
async fn an_unreachable_redis_allows_by_default_and_denies_on_request() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = Redis::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let rate = Rate::new(1, Duration::from_secs(60)).unwrap();
    let open = RateLimiter::new(10, Some(gone.clone()), OnRedisError::Allow);
    for _ in 0..3 {
        assert_eq!(open.check("k", rate).await, Ok(Decision::Allowed));
    }
    let closed = RateLimiter::new(10, Some(gone.clone()), OnRedisError::Deny);
    assert!(!closed.check("k", rate).await.unwrap().allowed());
    assert!(gone.failures() >= 1);
}

#[tokio::test]
async fn plugins_guard_their_own_operations() {
    let host = TestHost::load(&[plugin("load-probe")]).await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.extend(host.say("!ai").await);
    }
    assert_eq!(answers[..3], ["ok", "ok", "ok"]);
    let wait: u64 = answers[3].strip_prefix("wait:").unwrap().parse().unwrap();
    // One of three slots of a minute frees every 20 s.
    assert!(wait > 0 && wait <= 20_000, "{answers:?}");
}
