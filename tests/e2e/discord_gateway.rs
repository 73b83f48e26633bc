//! Discord through the gateway, end to end: a real host connects with serenity to the fake
//! Discord in `wasmbot_tests::fake_discord` and answers through its REST API.

use std::{sync::Arc, time::Duration};

use serde_json::json;
use wasmbot::{config::Config, platforms::discord::Discord, runtime::Registry};
use wasmbot_tests::{
    discord_host::{Host, discord_config, measured, plugins},
    fake_discord::{APP_ID, BOT_ID, FakeDiscord, Sent, user_json},
    fake_openai::FakeOpenAi,
    postgres_url, redis_url, section,
};

/// Discord's Manage Guild permission bit.
const MANAGE_GUILD: u64 = 1 << 5;

/// Waits (at most 10 s) until `done`.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A message the bot posted in `channel` whose content contains `text`.
fn posted(channel: u64, text: &'static str) -> impl Fn(&Sent) -> bool {
    let channel = channel.to_string();
    move |sent| {
        sent.method == "POST"
            && sent.channel() == Some(channel.as_str())
            && sent.path.ends_with("/messages")
            && sent.content().contains(text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_over_the_gateway_answers_pong_as_a_reply() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping", "dice"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());

    let before = fake.sent_count();
    let message = fake.message(guild, channel, user, "!ping");
    let reply = fake.wait_for(before, posted(channel, "pong")).await;
    assert_eq!(
        reply.body["message_reference"]["message_id"],
        json!(message.to_string()),
        "the answer is a reply to the message"
    );

    // Mentioning the bot works as the prefix, in both of Discord's mention forms.
    for mention in [format!("<@{BOT_ID}>"), format!("<@!{BOT_ID}>")] {
        let before = fake.sent_count();
        fake.message(guild, channel, user, &format!("{mention} ping"));
        fake.wait_for(before, posted(channel, "pong")).await;
    }

    // Buttons and reactions go out with the reply; a click comes back to the plugin.
    let before = fake.sent_count();
    let rolled = fake.message(guild, channel, user, "!roll 2 6");
    let roll = fake.wait_for(before, posted(channel, "2d6")).await;
    let button = &roll.body["components"][0]["components"][0];
    assert_eq!(
        button["custom_id"],
        json!("dice/again:2:6"),
        "{:#?}",
        roll.body
    );
    let reaction = format!("/messages/{rolled}/reactions/");
    fake.wait_for(before, |s| s.method == "PUT" && s.path.contains(&reaction))
        .await;
    let before = fake.sent_count();
    let click = fake.click(guild, channel, user, fake.id(), "dice/again:2:6");
    let callback = format!("/interactions/{click}/token-{click}/callback");
    let answer = fake.wait_for(before, |s| s.path == callback).await;
    let text = answer.body["data"]["content"].as_str().unwrap_or_default();
    assert!(text.starts_with("2d6"), "{:#?}", answer.body);

    // Wrong argument types get the usage, not a crash; the bot goes on.
    let before = fake.sent_count();
    fake.message(guild, channel, user, "!roll many dice");
    let usage = fake.wait_for(before, posted(channel, "roll")).await;
    assert!(usage.content().contains("Usage"), "{}", usage.content());

    // Bots (other bots and webhooks), empty messages and unknown commands get nothing;
    // a ping sent after them is answered, and it is the only answer.
    let before = fake.sent_count();
    fake.message_from(guild, channel, &user_json(fake.id(), true), &[], "!ping");
    fake.message(guild, channel, user, "");
    fake.message(guild, channel, user, "!no-such-command");
    fake.message(guild, channel, user, "!ping");
    fake.wait_for(before, posted(channel, "pong")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answers: Vec<Sent> = fake.sent().into_iter().skip(before).collect();
    assert_eq!(
        answers.len(),
        1,
        "only the user's ping is answered: {answers:#?}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_discord_refuses_stops_the_start_with_a_clear_error() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping"]);
    let mut config = discord_config(&fake, folder.path());
    config.discord.token = "not-the-token".into();
    let store = Arc::new(config.open_store().await.expect("config store"));
    let backends = config.backends(store).expect("backends");
    let registry = Registry::new(config.build_runtime(backends).expect("runtime"));
    let error = match Discord::prepare(&config.discord, &registry).await {
        Ok(_) => panic!("a refused token must stop the start"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("refused the bot token"), "{error}");
    assert_eq!(fake.identifies(), 0, "no gateway connection was tried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin_answers_a_short_error_and_the_bot_goes_on() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping", "misbehave"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());

    let before = fake.sent_count();
    fake.message(guild, channel, user, "!boom");
    let apology = fake.wait_for(before, posted(channel, "failed")).await;
    assert!(
        apology.content().starts_with("Sorry, `boom` failed."),
        "{}",
        apology.content()
    );
    assert!(
        !apology.content().contains("panic"),
        "no internals: {}",
        apology.content()
    );
    assert!(
        apology.content().len() < 200,
        "short: {}",
        apology.content()
    );

    let before = fake.sent_count();
    fake.message(guild, channel, user, "!ping");
    fake.wait_for(before, posted(channel, "pong")).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_gateway_resumes_and_nothing_sent_meanwhile_is_lost() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let discord_up = |host: &Host| {
        host.dispatcher
            .platforms()
            .iter()
            .any(|(name, up)| *name == "discord" && *up)
    };
    wait_until("the shard reports connected", || discord_up(&host)).await;
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());

    fake.drop_connections();
    // Sent while the bot is away: Discord keeps it for the session's resume.
    let before = fake.sent_count();
    fake.message(guild, channel, user, "!ping");
    fake.wait_for(before, posted(channel, "pong")).await;
    assert_eq!(
        fake.identifies(),
        1,
        "the session was resumed, not started again"
    );
    assert!(fake.resumes() >= 1);
    wait_until("the shard reports connected again", || discord_up(&host)).await;
    assert_eq!(fake.rate_limited(), 0, "within the gateway's send limit");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_are_registered_when_they_change_and_invoked_like_prefix_commands() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping", "dice", "settings"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let names = |fake: &FakeDiscord| {
        let mut names: Vec<String> = fake
            .commands("")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    wait_until("commands registered at READY", || fake.command_writes() > 0).await;
    assert!(
        names(&fake).contains(&"roll".to_owned()),
        "{:?}",
        names(&fake)
    );
    let prefix = fake
        .commands("")
        .into_iter()
        .find(|c| c["name"] == "prefix")
        .expect("the settings plugin's prefix command");
    assert_eq!(
        prefix["default_member_permissions"],
        json!(MANAGE_GUILD.to_string())
    );
    assert_eq!(prefix["options"][0]["type"], json!(3));
    let roll = fake.commands("").into_iter().find(|c| c["name"] == "roll");
    assert_eq!(
        roll.map(|r| r["options"][1]["type"].clone()),
        Some(json!(4))
    );

    // Invoked: the same plugin as `!roll`, with typed options, answered to the interaction.
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());
    let before = fake.sent_count();
    let options = json!([{ "name": "dice", "type": 4, "value": 2 }, { "name": "sides", "type": 4, "value": 6 }]);
    let id = fake.slash(guild, channel, user, 0, "roll", options);
    let callback = format!("/interactions/{id}/token-{id}/callback");
    let answer = fake.wait_for(before, |sent| sent.path == callback).await;
    assert_eq!(answer.body["type"], json!(4), "{:#?}", answer.body);
    let text = answer.body["data"]["content"].as_str().unwrap_or_default();
    assert!(text.contains("2d6"), "{text}");

    // A restart with the same plugins reads Discord's commands and writes nothing.
    let writes = fake.command_writes();
    host.stop().await;
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    wait_until("the restarted host connects", || fake.identifies() == 2).await;
    // READY's synchronisation reads Discord's commands; give it the time to write.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.command_writes(),
        writes,
        "unchanged commands are not written"
    );

    // Unloading a plugin removes its commands.
    host.dispatcher
        .registry()
        .unload_file(&folder.path().join("dice.wasm"))
        .await
        .expect("dice was loaded");
    wait_until("roll removed after the unload", || {
        !names(&fake).contains(&"roll".to_owned())
    })
    .await;
    assert_eq!(fake.command_writes(), writes + 1);
    assert!(names(&fake).contains(&"ping".to_owned()));
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_between_two_hosts_by_guild() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping"]);
    let shard = |n: u32| {
        move |config: &mut Config| {
            config.discord.shards = 2;
            config.discord.first_shard = n;
            config.discord.last_shard = Some(n);
        }
    };
    let zero = Host::start(&fake, folder.path(), shard(0)).await;
    let one = Host::start(&fake, folder.path(), shard(1)).await;
    fake.wait_connected(2).await;
    let (channel, user) = (fake.id(), fake.id());
    for shard in [0, 1] {
        let guild = fake.guild_on(shard, 2);
        let before = fake.sent_count();
        fake.message(guild, channel, user, "!ping");
        fake.wait_for(before, posted(channel, "pong")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pongs = fake
        .sent()
        .iter()
        .filter(|s| s.content().contains("pong"))
        .count();
    assert_eq!(pongs, 2, "each guild's message reached one host only");
    assert_eq!(fake.identifies(), 2);
    zero.stop().await;
    one.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_change_is_seen_on_the_next_message_and_by_a_second_host() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping", "settings"]);
    let shared = |config: &mut Config| {
        config.database.url = postgres_url();
        config.redis.url = redis_url();
    };
    let first = Host::start(&fake, folder.path(), shared).await;
    fake.wait_connected(1).await;
    // The second host runs no gateway of its own here: it is handed the guild's
    // messages directly, as it would be after taking over the guild's shard.
    let second = Host::start(&fake, folder.path(), |config| {
        shared(config);
        config.discord.shards = 2;
        config.discord.first_shard = 1;
    })
    .await;
    // A guild of shard 0 in both layouts: only the first host receives it.
    let (guild, channel, user) = (fake.guild_on(0, 2), fake.id(), fake.id());

    let before = fake.sent_count();
    fake.message(guild, channel, user, "!ping");
    fake.wait_for(before, posted(channel, "pong")).await;
    // The second host caches the guild's settings too.
    let before = fake.sent_count();
    second
        .dispatcher
        .dispatch(message_event(guild, channel, user, "!ping"))
        .await;
    fake.wait_for(before, posted(channel, "pong")).await;

    // Refused without Manage Guild, then changed with it.
    let before = fake.sent_count();
    let options = json!([{ "name": "prefix", "type": 3, "value": "?" }]);
    fake.slash(guild, channel, user, 0, "prefix", options.clone());
    let refused = fake
        .wait_for(before, |s| s.path.contains("/callback"))
        .await;
    assert!(
        refused.body["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("not allowed")
    );
    let before = fake.sent_count();
    fake.slash(guild, channel, user, MANAGE_GUILD, "prefix", options);
    fake.wait_for(before, |s| s.path.contains("/callback"))
        .await;

    // The next message on the first host uses the new prefix, the old one no longer works.
    let before = fake.sent_count();
    fake.message(guild, channel, user, "!ping");
    fake.message(guild, channel, user, "?ping");
    fake.wait_for(before, posted(channel, "pong")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pongs = fake
        .sent()
        .iter()
        .skip(before)
        .filter(|s| s.content().contains("pong"))
        .count();
    assert_eq!(pongs, 1, "only ?ping is a command now");

    // The second host was told through Redis: its cached copy is gone.
    // Dispatch returns once the answer is delivered: what the fake recorded is all.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before = fake.sent_count();
        let event = message_event(guild, channel, user, "?ping");
        second.dispatcher.dispatch(event).await;
        if fake
            .sent()
            .iter()
            .skip(before)
            .any(|s| s.content().contains("pong"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second host sees the new prefix"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.stop().await;
    second.stop().await;
}

fn message_event(
    guild: u64,
    channel: u64,
    user: u64,
    text: &str,
) -> wasmbot::bindings::types::Event {
    use wasmbot::bindings::types::{Event, EventKind, Message, Platform, User};
    Event {
        id: String::new(),
        platform: Platform::Discord,
        guild_id: Some(guild.to_string()),
        channel_id: channel.to_string(),
        author: User {
            id: user.to_string(),
            name: "user".into(),
            is_bot: false,
            roles: Vec::new(),
            locale: None,
        },
        timestamp_ms: 0,
        received_ms: 0,
        guild_locale: None,
        kind: EventKind::Message(Message {
            id: "1".into(),
            text: text.into(),
            reply_to: None,
            mentions: Vec::new(),
            attachments: Vec::new(),
            location: None,
            contacts: Vec::new(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_in_a_hundred_guilds_make_at_most_a_hundred_config_queries() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping"]);
    let database = wasmbot_tests::fresh_postgres("discord_queries").await;
    let host = Host::start(&fake, folder.path(), measured(database.clone())).await;
    fake.wait_connected(1).await;
    let guilds: Vec<u64> = (0..100).map(|_| fake.id()).collect();
    let channel = fake.id();
    let before = fake.sent_count();
    for i in 0..10_000 {
        let guild = guilds[i % guilds.len()];
        fake.message(guild, channel, 1 + i as u64 % 500, "!ping");
    }
    let answered = fake
        .wait_count(10_000, Duration::from_secs(30), |s| {
            s.content().contains("pong")
        })
        .await;
    let others: Vec<Sent> = fake
        .sent()
        .into_iter()
        .skip(before)
        .filter(|s| !s.content().contains("pong"))
        .take(3)
        .collect();
    assert_eq!(
        answered, 10_000,
        "every message answered; other answers: {others:#?}"
    );
    host.stop().await;
    let statements = wasmbot_tests::config_statements(&database).await;
    assert!(
        (1..=100).contains(&statements),
        "{statements} config statements for 10 000 messages in 100 guilds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentioning_the_bot_asks_the_ai_in_the_guilds_role_with_the_history() {
    let fake = FakeDiscord::start().await;
    let ai = FakeOpenAi::start().await;
    let folder = plugins(&["ping", "settings", "ai-reply"]);
    let ai_plugin = |allow: String| {
        section(json!({
            "grants": ["log", "state", "rate-limit", "host-config", "http"],
            "http_allow": [allow],
            "env": { "AI_URL": ai.url(), "AI_KEY": "test-key" },
        }))
    };
    let allowed = ai_plugin(ai.authority());
    let host = Host::start(&fake, folder.path(), move |config| {
        config.bot.mention_command = "ai".into();
        config.plugins.insert("ai-reply".into(), allowed);
    })
    .await;
    fake.wait_connected(1).await;
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());

    let before = fake.sent_count();
    let prompt = json!([{ "name": "prompt", "type": 3, "value": "You are a pirate." }]);
    fake.slash(guild, channel, user, MANAGE_GUILD, "ai-prompt", prompt);
    fake.wait_for(before, |s| s.path.contains("/callback"))
        .await;

    let before = fake.sent_count();
    fake.message(guild, channel, user, &format!("<@{BOT_ID}> what is wasm?"));
    fake.wait_for(before, posted(channel, "echo: what is wasm?"))
        .await;
    let before = fake.sent_count();
    fake.message(guild, channel, user, &format!("<@{BOT_ID}> and then?"));
    fake.wait_for(before, posted(channel, "echo: and then?"))
        .await;

    let asked = ai.asked();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].authorization, "Bearer test-key");
    let messages = &asked[1].body["messages"];
    assert_eq!(
        messages[0],
        json!({ "role": "system", "content": "You are a pirate." })
    );
    assert_eq!(
        messages[1],
        json!({ "role": "user", "content": "what is wasm?" })
    );
    assert_eq!(
        messages[2],
        json!({ "role": "assistant", "content": "echo: what is wasm?" })
    );
    assert_eq!(
        messages[3],
        json!({ "role": "user", "content": "and then?" })
    );
    // A mention that names a command is that command.
    let before = fake.sent_count();
    fake.message(guild, channel, user, &format!("<@{BOT_ID}> ping"));
    fake.wait_for(before, posted(channel, "pong")).await;
    assert_eq!(ai.asked().len(), 2);
    host.stop().await;

    // Outside its allow-list the plugin reaches nothing; the user hears it is unavailable.
    let denied = ai_plugin("api.openai.com".to_owned());
    let host = Host::start(&fake, folder.path(), move |config| {
        config.bot.mention_command = "ai".into();
        config.plugins.insert("ai-reply".into(), denied);
    })
    .await;
    wait_until("the second host connects", || fake.identifies() == 2).await;
    let before = fake.sent_count();
    fake.message(guild, channel, user, &format!("<@{BOT_ID}> are you there?"));
    let answer = fake.wait_for(before, posted(channel, "unavailable")).await;
    assert!(
        answer.content().starts_with("`ai` is unavailable"),
        "{}",
        answer.content()
    );
    assert_eq!(ai.asked().len(), 2, "no request left the host");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_slower_than_discord_waits_is_deferred_then_answered() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["misbehave"]);
    let host = Host::start(&fake, folder.path(), |config| {
        let slow = section(json!({"wall_ms": 3_000}));
        config.plugins.insert("misbehave".into(), slow);
    })
    .await;
    fake.wait_connected(1).await;
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());
    let before = fake.sent_count();
    let id = fake.slash(guild, channel, user, 0, "nap", json!([]));
    let callback = format!("/interactions/{id}/token-{id}/callback");
    let deferral = fake.wait_for(before, |sent| sent.path == callback).await;
    assert_eq!(
        deferral.body["type"],
        json!(5),
        "told to wait: {:#?}",
        deferral.body
    );
    let original = format!("/webhooks/{APP_ID}/token-{id}/messages/@original");
    let answer = fake
        .wait_for(before, |sent| {
            sent.method == "PATCH" && sent.path == original
        })
        .await;
    assert!(answer.content().contains("`nap`"), "{}", answer.content());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_commands_that_need_permissions_are_checked_against_the_guilds_roles() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["settings"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let (guild, channel, owner, user) = (fake.id(), fake.id(), fake.id(), fake.id());
    let (managers, fans) = (fake.id(), fake.id());
    fake.guild_create(
        guild,
        owner,
        &[(managers, MANAGE_GUILD), (fans, 0)],
        channel,
    );
    let author = user_json(user, false);
    let said = |text: &'static str| posted(channel, text);

    let before = fake.sent_count();
    fake.message_from(guild, channel, &author, &[fans], "!prefix ?");
    fake.wait_for(before, said("not allowed")).await;
    let before = fake.sent_count();
    fake.message_from(guild, channel, &author, &[fans, managers], "!prefix ?");
    fake.wait_for(before, said("now start with `?`")).await;
    // The owner holds every permission, roles or not.
    let before = fake.sent_count();
    fake.message_from(guild, channel, &user_json(owner, false), &[], "?prefix !");
    fake.wait_for(before, said("now start with `!`")).await;
    // A guild Discord has not described: nothing is known, so refused.
    let before = fake.sent_count();
    fake.message_from(fake.id(), channel, &author, &[managers], "!prefix ?");
    fake.wait_for(before, said("not allowed")).await;
    host.stop().await;
}

/// Whether a message body lets Discord ping no one: no `@everyone`/`@here`, no role and no
/// user named in the content (the author of the message replied to at most).
fn mentions_no_one(body: &serde_json::Value) -> bool {
    let allowed = &body["allowed_mentions"];
    let none = |key: &str| allowed[key].is_null() || allowed[key] == json!([]);
    allowed["parse"] == json!([]) && none("users") && none("roles")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_bot_sends_pings_anyone_even_when_it_echoes_a_mention() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["dice", "echo"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());

    // The host's usage line quotes what the user typed.
    let before = fake.sent_count();
    fake.message(guild, channel, user, "!roll @everyone");
    let usage = fake.wait_for(before, posted(channel, "@everyone")).await;
    assert!(
        usage.content().contains("must be a whole number"),
        "{}",
        usage.content()
    );
    assert!(mentions_no_one(&usage.body), "{:#?}", usage.body);

    // A plugin's reply that contains every kind of mass or role mention.
    let before = fake.sent_count();
    fake.message(guild, channel, user, "!echo @everyone @here <@&42> <@7>");
    let echoed = fake.wait_for(before, posted(channel, "@here")).await;
    assert!(mentions_no_one(&echoed.body), "{:#?}", echoed.body);

    // The same as a slash command: the interaction's answer.
    let before = fake.sent_count();
    let options = json!([{ "name": "text", "type": 3, "value": "@everyone" }]);
    let id = fake.slash(guild, channel, user, 0, "echo", options);
    let callback = format!("/interactions/{id}/token-{id}/callback");
    let answer = fake.wait_for(before, |sent| sent.path == callback).await;
    assert_eq!(answer.body["data"]["content"], json!("@everyone"));
    assert!(mentions_no_one(&answer.body["data"]), "{:#?}", answer.body);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_refusals_in_slash_commands_are_seen_by_the_asker_only() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["settings", "dice"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());
    let answer_to = |id: u64| {
        let callback = format!("/interactions/{id}/token-{id}/callback");
        move |sent: &Sent| sent.path == callback
    };

    // Without Manage Guild: the host refuses, for the member's eyes only.
    let before = fake.sent_count();
    let options = json!([{ "name": "prefix", "type": 3, "value": "?" }]);
    let id = fake.slash(guild, channel, user, 0, "prefix", options);
    let refused = fake.wait_for(before, answer_to(id)).await;
    let content = refused.body["data"]["content"].as_str().unwrap_or_default();
    assert!(content.contains("not allowed to use `prefix`"), "{content}");
    assert_eq!(
        refused.body["data"]["flags"],
        json!(64),
        "ephemeral: {:#?}",
        refused.body
    );

    // A plugin's own answer stays public.
    let before = fake.sent_count();
    let options = json!([{ "name": "dice", "type": 4, "value": 2 }, { "name": "sides", "type": 4, "value": 6 }]);
    let id = fake.slash(guild, channel, user, 0, "roll", options);
    let rolled = fake.wait_for(before, answer_to(id)).await;
    assert!(rolled.body["data"]["flags"].is_null(), "{:#?}", rolled.body);

    // A prefix command's usage line is a reply in the channel, as before.
    let before = fake.sent_count();
    fake.message(guild, channel, user, "!roll many dice");
    let usage = fake.wait_for(before, posted(channel, "Usage")).await;
    assert!(usage.body["flags"].is_null(), "{:#?}", usage.body);
    host.stop().await;
}

/// `/readyz`'s status and its answer for Discord, and `/metrics`'
/// `wasmbot_platform_connected{platform="discord"}`.
async fn readiness(router: &axum::Router) -> (u16, serde_json::Value, f64) {
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let get = |path: &str| {
        let request = Request::get(path).body(Body::empty()).expect("request");
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.expect("answer");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.expect("body");
            (
                status,
                String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            )
        }
    };
    let (status, ready) = get("/readyz").await;
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("JSON");
    let (_, metrics) = get("/metrics").await;
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text");
    let connected = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "wasmbot_platform_connected" && s.labels.get("platform") == Some("discord")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(value) | prometheus_parse::Value::Untyped(value) => {
                value
            }
            _ => f64::NAN,
        })
        .unwrap_or(f64::NAN);
    (status, ready["platforms"].clone(), connected)
}

/// Asks `/readyz` and `/metrics` until they say `wanted`; how many times it asked. Only a
/// hang guard bounds it: serenity retries a refused shard every few seconds.
async fn ask_until(router: &axum::Router, wanted: (u16, serde_json::Value, f64)) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut asked = 0;
    loop {
        let now = readiness(router).await;
        asked += 1;
        if now == wanted {
            return asked;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {now:?}, not {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_drops_while_the_gateway_refuses_and_comes_back_when_it_accepts() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let router = wasmbot::http::host_router(Arc::clone(&host.dispatcher), "", None, []);
    let up = (200, json!({ "discord": true }), 1.0);
    let down = (503, json!({ "discord": false }), 0.0);
    ask_until(&router, up.clone()).await;

    // An outage: the connection drops and every new one is refused. Serenity's resume
    // fails and it restarts the shard, with no event to its handlers.
    fake.refuse_connections().await;
    ask_until(&router, down.clone()).await;
    let connections = fake.identifies() + fake.resumes();
    for _ in 0..5 {
        assert_eq!(readiness(&router).await, down, "down while refused");
    }

    // Discord is back: the shard reconnects, and readiness with it.
    fake.accept_connections().await;
    ask_until(&router, up).await;
    assert!(
        fake.identifies() + fake.resumes() > connections,
        "a new connection was made"
    );
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());
    let before = fake.sent_count();
    fake.message(guild, channel, user, "!ping");
    fake.wait_for(before, posted(channel, "pong")).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_follows_the_members_roles_the_guilds_switches_and_the_users_locale() {
    const MANAGE_MESSAGES: u64 = 1 << 13;
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["ping", "guild-probe"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let (guild, channel, owner, member) = (fake.id(), fake.id(), fake.id(), fake.id());
    let (tidiers, fans) = (fake.id(), fake.id());
    fake.guild_create(
        guild,
        owner,
        &[(tidiers, MANAGE_MESSAGES), (fans, 0)],
        channel,
    );
    let ask = async |author: u64, roles: &[u64], text: &str| {
        let before = fake.sent_count();
        fake.message_from(guild, channel, &user_json(author, false), roles, text);
        let sent = fake
            .wait_for(before, |sent| {
                sent.method == "POST" && sent.path.ends_with("/messages")
            })
            .await;
        sent.content().to_owned()
    };

    // Registered with Discord: the host's /help, and the plugins' localized commands.
    wait_until("commands registered", || fake.command_writes() > 0).await;
    let registered = |name: &str| fake.commands("").into_iter().find(|c| c["name"] == name);
    assert!(registered("help").is_some());
    let hola = registered("hola").expect("hola registered");
    assert_eq!(
        hola["description_localizations"],
        json!({ "es-ES": "Saludar", "pt-BR": "Dizer olá" })
    );
    assert_eq!(hola["name_localizations"], json!({ "es-ES": "hola" }));

    // A member without Manage Server may not switch plugins; the owner may.
    let refused = ask(member, &[fans], "!plugin enable guild-probe").await;
    assert!(
        refused.contains("Manage Server permission or a staff role"),
        "{refused}"
    );
    let done = ask(owner, &[], "!plugin enable guild-probe").await;
    assert_eq!(done, "guild-probe is on in this server.");

    let help = ask(member, &[fans], "!help").await;
    assert!(
        help.contains("`!daily`") && help.contains("`!ping`"),
        "{help}"
    );
    assert!(!help.contains("`!tidy`"), "a fan cannot tidy: {help}");
    assert!(!help.contains("`!staff`"), "{help}");
    assert!(!help.contains("`!plugin "), "{help}");
    let help = ask(member, &[tidiers], "!help").await;
    assert!(help.contains("`!tidy`"), "{help}");

    // /help in the user's language, seen by the asker only.
    let before = fake.sent_count();
    let id = fake.slash_in("es-ES", guild, channel, member, 0, "help", json!([]));
    let callback = format!("/interactions/{id}/token-{id}/callback");
    let answer = fake.wait_for(before, |sent| sent.path == callback).await;
    let text = answer.body["data"]["content"].as_str().unwrap_or_default();
    assert!(text.contains("`!hola` Saludar"), "{text}");
    assert_eq!(answer.body["data"]["flags"], json!(64), "ephemeral");

    // Switched off: gone from help, and a slash invocation says so.
    assert_eq!(
        ask(owner, &[], "!plugin disable guild-probe").await,
        "guild-probe is off in this server."
    );
    assert!(!ask(member, &[fans], "!help").await.contains("`!daily`"));
    let before = fake.sent_count();
    let id = fake.slash(guild, channel, member, 0, "daily", json!([]));
    let callback = format!("/interactions/{id}/token-{id}/callback");
    let answer = fake.wait_for(before, |sent| sent.path == callback).await;
    assert_eq!(
        answer.body["data"]["content"],
        json!("`/daily` is switched off here.")
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_pings_only_its_author_and_a_poll_closes_with_its_tally() {
    let fake = FakeDiscord::start().await;
    let folder = plugins(&["remind", "poll"]);
    let host = Host::start(&fake, folder.path(), |_| {}).await;
    fake.wait_connected(1).await;
    let (guild, channel, user) = (fake.id(), fake.id(), fake.id());

    let before = fake.sent_count();
    fake.message(guild, channel, user, "!remind 1s stretch @everyone");
    fake.wait_for(before, posted(channel, "⏰ In 1s")).await;
    let reminder = fake.wait_for(before, posted(channel, "⏰ stretch")).await;
    assert_eq!(
        reminder.content(),
        format!("<@{user}> ⏰ stretch @everyone"),
        "in the channel it was set in, naming its author"
    );
    let allowed = &reminder.body["allowed_mentions"];
    assert_eq!(allowed["users"], json!([user.to_string()]), "{allowed}");
    assert_eq!(allowed["parse"], json!([]), "no @everyone: {allowed}");

    let before = fake.sent_count();
    fake.message(guild, channel, user, "!poll 5s Lunch? | pizza | sushi");
    let ballot = fake.wait_for(before, posted(channel, "Lunch?")).await;
    let button = ballot.body["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(button.starts_with("poll/vote:"), "{:#?}", ballot.body);
    let before = fake.sent_count();
    let click = fake.click(guild, channel, user, fake.id(), &button);
    let callback = format!("/interactions/{click}/token-{click}/callback");
    let answer = fake.wait_for(before, |sent| sent.path == callback).await;
    assert_eq!(
        answer.body["data"]["content"],
        json!("You voted for pizza.")
    );
    let tally = fake.wait_for(before, posted(channel, "📊 Closed")).await;
    assert!(
        tally.content().contains("pizza: 1 vote (100%)"),
        "{}",
        tally.content()
    );
    host.stop().await;
}
