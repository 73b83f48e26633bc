//! `!cfg OP SCOPE [KEY] [VALUE]`: calls the `config` (or, with `host-` ops, `host-config`)
//! interface and answers `ok:<json>` or `err:<kind>:<message>`, so tests can drive every
//! call and bad input from the outside. `!cfg time SCOPE KEY N` reads N times and answers
//! each read's duration in nanoseconds, for the benchmark (`clock`: the clock's own cost).

use serde_json::{Value, json};
use wasmbot_sdk::{
    config::{self, ConfigError, Member},
    host_config,
    prelude::*,
};

struct Probe;

impl Plugin for Probe {
    fn manifest() -> Manifest {
        Manifest::new("config-probe", "0.1.0")
            .command(
                CommandSpec::new("cfg", "Drive the config interface")
                    .option(OptionSpec::new("op", "get, doc, set, del, keys, ...", OptionKind::Text).required())
                    .option(OptionSpec::new("scope", "global, guild, channel, user, member, empty", OptionKind::Text).required())
                    .option(OptionSpec::new("key", "The field", OptionKind::Text))
                    .option(OptionSpec::new("value", "JSON", OptionKind::Rest)),
            )
            .capability("log")
            .config(
                ScopeKind::Guild,
                &json!({ "greeting": "hello", "count": 0, "ratio": 0.5, "tags": [], "extra": null }),
            )
            .config(ScopeKind::User, &json!({ "lang": "en" }))
            .config(ScopeKind::Member, &json!({ "xp": 0 }))
            .config(ScopeKind::Channel, &json!({ "quiet": false }))
            .config(ScopeKind::Global, &json!({ "motd": "" }))
    }

    fn handle(event: Event) -> Handled {
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let op = command.text("op").unwrap_or_default();
        let key = command.text("key").unwrap_or_default();
        let value = command.text("value").unwrap_or_default();
        let scope = scope(&event, command.text("scope").unwrap_or_default());
        let answer = match op {
            "get" => config::get::<Value>(&scope, key).map(|v| v.to_string()),
            "doc" => config::document::<Value>(&scope).map(|v| v.to_string()),
            "set" => config::set(&scope, key, &raw(value)).map(|()| "null".to_owned()),
            "del" => config::delete(&scope, key).map(|()| "null".to_owned()),
            "keys" => config::keys(&scope).map(|keys| json!(keys).to_string()),
            "register" => config::register(ScopeKind::Guild, &json!({ "late": 1 }))
                .map(|()| "null".to_owned()),
            "host-get" => host_config::get::<Value>(&scope, key).map(|v| v.to_string()),
            "host-set" => host_config::set(&scope, key, &raw(value)).map(|()| "null".to_owned()),
            "time" => return Ok(vec![Action::reply(time(&scope, key, value, true))]),
            "clock" => return Ok(vec![Action::reply(time(&scope, key, value, false))]),
            other => return Err(PluginError::InvalidInput(format!("unknown op {other}"))),
        };
        let text = match answer {
            Ok(json) => format!("ok:{json}"),
            Err(error) => format!("err:{}:{}", kind(&error), error.message()),
        };
        Ok(vec![Action::reply(text)])
    }
}

/// The value as the user typed it: JSON when it parses, else the text as a JSON string.
fn raw(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()))
}

fn scope(event: &Event, name: &str) -> Scope {
    let guild = event.guild_id.clone().unwrap_or_default();
    match name {
        "global" => Scope::Global,
        "channel" => event.channel_scope(),
        "user" => event.user_scope(),
        "member" => Scope::Member(Member {
            guild_id: guild,
            user_id: event.author.id.clone(),
        }),
        "empty" => Scope::Guild(String::new()),
        _ => Scope::Guild(guild),
    }
}

fn kind(error: &ConfigError) -> &'static str {
    match error {
        ConfigError::Denied(_) => "denied",
        ConfigError::InvalidScope(_) => "invalid-scope",
        ConfigError::UnknownKey(_) => "unknown-key",
        ConfigError::InvalidValue(_) => "invalid-value",
        ConfigError::TooLarge(_) => "too-large",
        ConfigError::Unavailable(_) => "unavailable",
    }
}

/// Reads `key` `count` times; each read's duration in nanoseconds, space-separated. With
/// `read` false, times nothing: the cost of the clock itself.
fn time(scope: &Scope, key: &str, count: &str, read: bool) -> String {
    let count: usize = count.parse().unwrap_or(1000).min(5000);
    let mut durations = Vec::with_capacity(count);
    for _ in 0..count {
        // std's clock on wasm32-wasip2 is WASI's monotonic clock, in nanoseconds.
        let started = std::time::Instant::now();
        let value = match read {
            true => config::get::<Value>(scope, key),
            false => Ok(Value::Null),
        };
        durations.push(started.elapsed().as_nanos());
        if let Err(error) = value {
            return format!("err:{}", error.message());
        }
    }
    durations
        .iter()
        .map(u128::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

export_plugin!(Probe);
