//! What guilds get from the host on the console: `help` built from the manifests, plugins and
//! commands switched per guild (seen by a second host at once), the plugins' defaults, and
//! the cooldowns plugins declare.

use std::{path::Path, sync::Arc, time::Duration};

use serde_json::json;
use wasmbot::{
    capabilities::config_store::{
        Scope,
        host_settings::{HOST, SWITCHES},
    },
    config::Config,
};
use wasmbot_sdk::testing::TestHost;
use wasmbot_tests::{config, plugin, postgres_url, redis_url, unique};

async fn host(packages: &[&str]) -> TestHost {
    let files: Vec<_> = packages.iter().map(|name| plugin(name)).collect();
    TestHost::load(&files).await.unwrap()
}

/// The texts answered to `line` in `guild`, one string.
async fn say(host: &TestHost, guild: &str, line: &str) -> String {
    host.say_in(guild, line).await.join("\n")
}

#[tokio::test]
async fn help_lists_what_is_on_here_and_explains_one_command() {
    let host = host(&["ping", "dice", "guild-probe"]).await;
    let guild = unique("g");
    let help = say(&host, &guild, "!help").await;
    assert!(help.contains("`!ping`"), "{help}");
    assert!(help.contains("`!roll`"), "{help}");
    assert!(help.contains("**dice**"), "{help}");
    // The host's own commands, for whoever may run them (the console's user may).
    assert!(help.contains("`!plugin <action> <name>`"), "{help}");
    // guild-probe says it starts off in a guild.
    assert!(!help.contains("`!daily`"), "{help}");
    assert_eq!(say(&host, &guild, "!daily").await, "");

    assert_eq!(
        say(&host, &guild, "!plugin enable guild-probe").await,
        "guild-probe is on in this server."
    );
    let help = say(&host, &guild, "!help").await;
    assert!(help.contains("`!daily` Claim the daily reward"), "{help}");
    assert_eq!(say(&host, &guild, "!daily").await, "daily ok");
    let daily = say(&host, &guild, "!help daily").await;
    assert!(
        daily.starts_with("`!daily` Claim the daily reward"),
        "{daily}"
    );
    assert!(
        daily.contains("Cooldown: 2 uses per 2 s per user."),
        "{daily}"
    );
    let roll = say(&host, &guild, "!help !roll").await;
    assert!(roll.contains("Options:"), "{roll}");
    assert_eq!(
        say(&host, &guild, "!help teleport").await,
        "There is no command `!teleport` here."
    );
    // Another guild has its own switches.
    assert!(!say(&host, &unique("g"), "!help").await.contains("`!daily`"));
}

#[tokio::test]
async fn guild_admins_switch_plugins_and_commands_and_bad_input_writes_nothing() {
    let host = host(&["ping", "dice"]).await;
    let guild = unique("g");
    let store = host.store().unwrap().clone();
    let stored = || {
        let store = store.clone();
        let scope = Scope::Guild(guild.clone());
        async move { store.get(HOST, &scope, SWITCHES).await.unwrap() }
    };
    let plugins = say(&host, &guild, "!plugins").await;
    assert!(plugins.contains("`dice` on (default)"), "{plugins}");

    assert_eq!(
        say(&host, &guild, "!plugin disable dice").await,
        "dice is off in this server."
    );
    assert_eq!(
        say(&host, &guild, "!roll 1 6").await,
        "",
        "a plugin off here hears nothing"
    );
    assert!(!say(&host, &guild, "!help").await.contains("`!roll`"));
    assert!(say(&host, &guild, "!plugins").await.contains("`dice` off:"));
    assert!(say(&host, &unique("g"), "!roll 1 6").await.contains("1d6"));

    assert_eq!(
        say(&host, &guild, "!command disable ping").await,
        "`!ping` is off in this server."
    );
    assert_eq!(say(&host, &guild, "!ping").await, "");
    assert_eq!(
        say(&host, &guild, "!command enable ping #general").await,
        "`!ping` is off in the whole server; `!command enable ping` turns it on everywhere."
    );
    let before = stored().await;
    assert_eq!(
        before,
        json!({"plugins": {"dice": false}, "commands": ["ping"]})
    );

    // Bad input: a clear answer, nothing written.
    for (line, answer) in [
        (
            "!plugin disable teleport",
            "There is no plugin `teleport` (`!plugins` lists them).",
        ),
        (
            "!plugin toggle dice",
            "Usage: `!plugin enable|disable NAME`.",
        ),
        (
            "!command disable teleport",
            "There is no command `!teleport` here.",
        ),
        ("!command disable roll <#>", "`<#>` is not a channel."),
        (
            "!plugin",
            "Usage: `!plugins`, `!plugin enable|disable NAME`, `!command enable|disable NAME [#channel]`.",
        ),
    ] {
        assert_eq!(say(&host, &guild, line).await, answer, "{line}");
    }
    assert_eq!(stored().await, before);

    assert_eq!(
        say(&host, &guild, "!command enable ping").await,
        "`!ping` is on in this server."
    );
    assert!(say(&host, &guild, "!ping").await.starts_with("pong"));
    // Off in one channel only (the console's is `console`).
    assert_eq!(
        say(&host, &guild, "!command disable ping <#console>").await,
        "`!ping` is off in <#console>."
    );
    assert_eq!(say(&host, &guild, "!ping").await, "");
    assert_eq!(
        say(&host, &guild, "!plugin enable dice").await,
        "dice is on in this server."
    );
    assert!(say(&host, &guild, "!roll 1 6").await.contains("1d6"));
}

#[tokio::test]
async fn a_switch_is_seen_by_a_second_host_at_once() {
    let mut config: Config = config(Path::new(""));
    config.database.url = postgres_url();
    config.redis.url = redis_url();
    let start = || async {
        let store = Arc::new(config.open_store().await.unwrap());
        TestHost::with_store(config.clone(), store, &[plugin("dice")])
            .await
            .unwrap()
    };
    let (a, b) = (start().await, start().await);
    let guild = unique("g");
    // Both hosts have the guild's settings cached.
    assert!(say(&a, &guild, "!roll 1 6").await.contains("1d6"));
    assert!(say(&b, &guild, "!roll 1 6").await.contains("1d6"));
    assert_eq!(
        say(&a, &guild, "!plugin disable dice").await,
        "dice is off in this server."
    );
    let mut answered = say(&b, &guild, "!roll 1 6").await;
    // The invalidation travels through Redis: a moment at most.
    for _ in 0..50 {
        if answered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answered = say(&b, &guild, "!roll 1 6").await;
    }
    assert_eq!(answered, "", "the second host still runs dice");
}

#[tokio::test]
async fn the_operators_default_decides_a_new_guilds_switch() {
    let mut config: Config = config(Path::new(""));
    config.runtime.cache_dir = Default::default();
    config.plugins.insert(
        "dice".into(),
        wasmbot_tests::section(json!({ "guild_default": false })),
    );
    config.plugins.insert(
        "guild-probe".into(),
        wasmbot_tests::section(json!({ "guild_default": true })),
    );
    let host = TestHost::with_config(config, &[plugin("dice"), plugin("guild-probe")])
        .await
        .unwrap();
    let guild = unique("g");
    assert_eq!(say(&host, &guild, "!roll 1 6").await, "");
    assert_eq!(say(&host, &guild, "!daily").await, "daily ok");
    assert!(
        say(&host, &guild, "!plugins")
            .await
            .contains("`dice` off (default)")
    );
}

#[tokio::test]
async fn a_cooldown_refuses_the_use_past_its_limit_once_with_a_notice() {
    let host = host(&["guild-probe"]).await;
    let guild = unique("g");
    say(&host, &guild, "!plugin enable guild-probe").await;
    assert_eq!(say(&host, &guild, "!daily").await, "daily ok");
    assert_eq!(say(&host, &guild, "!daily").await, "daily ok");
    let refused = say(&host, &guild, "!daily").await;
    assert!(
        refused.starts_with("`daily` is cooling down; please wait"),
        "{refused}"
    );
    assert!(refused.contains("(Limit: 2 per 2 s.)"), "{refused}");
    assert_eq!(
        say(&host, &guild, "!daily").await,
        "",
        "one notice per window"
    );
    // Counted per user: another user of the same guild is not held back.
    let Some(mut event) = wasmbot::platforms::console::event_for_line(host.dispatcher(), "!daily")
    else {
        panic!("a command");
    };
    event.guild_id = Some(guild.clone());
    event.author.id = "someone-else".into();
    let (_, actions) = host.event(event).await;
    assert_eq!(wasmbot_sdk::testing::texts(&actions), ["daily ok"]);
    // The window opened with the first use holds two uses, however they are spread: past
    // half of it (where a smoothed rate would let one more through), still refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(say(&host, &guild, "!daily").await, "");
    // The window closes: allowed again, and a new window opens.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(say(&host, &guild, "!daily").await, "daily ok");
}

#[tokio::test]
async fn help_can_be_renamed_or_switched_off_and_its_name_is_kept_from_plugins() {
    let mut renamed: Config = config(Path::new(""));
    renamed.runtime.cache_dir = Default::default();
    renamed.bot.help_command = "commands".into();
    let host = TestHost::with_config(renamed, &[plugin("ping")])
        .await
        .unwrap();
    assert!(host.say("!commands").await[0].contains("`!ping`"));
    assert!(host.say("!help").await.is_empty());

    // A plugin whose command is the host's help's name is refused, saying why.
    let mut taken: Config = config(Path::new(""));
    taken.runtime.cache_dir = Default::default();
    taken.bot.help_command = "ping".into();
    let error = match TestHost::with_config(taken, &[plugin("ping")]).await {
        Ok(_) => panic!("a plugin declaring the help's name was loaded"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("command \"ping\" is the host's own") && error.contains("bot.help_command"),
        "{error}"
    );

    let mut off: Config = config(Path::new(""));
    off.runtime.cache_dir = Default::default();
    off.bot.help_command = String::new();
    off.bot.guild_commands = false;
    let host = TestHost::with_config(off, &[plugin("ping")]).await.unwrap();
    assert!(host.say("!help").await.is_empty());
    assert!(host.say("!plugins").await.is_empty());
}
