//! `ai-reply`: answers with an OpenAI-compatible chat model, in the role the guild's AI role
//! prompt gives it (set with `settings`' `ai-prompt`), with the conversation's last turns as
//! context. `!ai question`, or, with `bot.mention_command = "ai"`, any message addressed to
//! the bot (`@bot how are you?`).
//!
//! The operator grants it `http` and `host-config` and gives it its endpoint:
//!
//! ```toml
//! [plugins.ai-reply]
//! grants = ["log", "state", "rate-limit", "host-config", "http"]
//! http_allow = ["api.openai.com"]
//! env = { AI_URL = "https://api.openai.com/v1", AI_KEY = "$OPENAI_API_KEY", AI_MODEL = "gpt-4o-mini" }
//! ```

use std::time::Duration;

use serde_json::{Value, json};
use wasmbot_sdk::{host_config, http, prelude::*, rate_limit, state};

/// The role when the guild set none.
const DEFAULT_PROMPT: &str = "You are a helpful assistant in a chat server. Answer briefly.";
/// Questions one user may ask per minute: each is a paid call.
const PER_MINUTE: u32 = 5;

struct AiReply;

impl Plugin for AiReply {
    fn manifest() -> Manifest {
        Manifest::new("ai-reply", env!("CARGO_PKG_VERSION"))
            .description("Answers questions with an AI model")
            .command(
                CommandSpec::new("ai", "Ask the AI").option(
                    OptionSpec::new("question", "What to ask", OptionKind::Rest).required(),
                ),
            )
            .capability("log")
            .capability("state")
            .capability("rate-limit")
            .capability("host-config")
            .capability("http")
    }

    fn handle(event: Event) -> Handled {
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let question = command
            .text("question")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let url = std::env::var("AI_URL")
            .map_err(|_| PluginError::Unavailable("AI_URL is not configured".into()))?;
        let key = std::env::var("AI_KEY").unwrap_or_default();
        let model = std::env::var("AI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
        let limit_key = format!("ask:{}", event.author.id);
        if let Some(wait) = rate_limit::check(&limit_key, PER_MINUTE, Duration::from_secs(60))? {
            let seconds = wait.as_secs().max(1);
            return Ok(vec![Action::reply(format!(
                "You are asking a lot; try again in {seconds} s."
            ))]);
        }
        let role: String = match event.guild_scope() {
            Some(guild) => host_config::get(&guild, host_config::AI_ROLE_PROMPT)?,
            None => String::new(),
        };
        let role = if role.trim().is_empty() {
            DEFAULT_PROMPT.to_owned()
        } else {
            role
        };
        let conversation = event.conversation();
        let mut messages = vec![json!({ "role": "system", "content": role })];
        for turn in state::history(&conversation)? {
            messages.push(json!({ "role": turn.role, "content": turn.text }));
        }
        messages.push(json!({ "role": "user", "content": question }));
        let endpoint = format!("{}/chat/completions", url.trim_end_matches('/'));
        let authorization = format!("Bearer {key}");
        let response = http::post_json(
            &endpoint,
            &[("authorization", &authorization)],
            &json!({ "model": model, "messages": messages }),
        )?;
        let body: Value = response.json()?;
        let Some(answer) = body["choices"][0]["message"]["content"].as_str() else {
            return Err(PluginError::Unavailable("the model gave no answer".into()));
        };
        state::remember(&conversation, "user", &question)?;
        state::remember(&conversation, "assistant", answer)?;
        log::debug(&format!("answered with {} characters", answer.len()));
        Ok(vec![Action::reply(answer)])
    }
}

export_plugin!(AiReply);
