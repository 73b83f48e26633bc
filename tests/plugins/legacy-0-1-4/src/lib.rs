//! A plugin built against the released contract `wasmbot:plugin@0.1.4`, the newest 0.1: later
//! hosts must keep loading it and answering it. It uses `messaging` (whose action type 0.2
//! changed: the host adapts it) and `state` (unchanged: the host serves it by the newest
//! implementation under its 0.1 name). Its contract is the copy the host's own 0.1 bindings
//! are generated from, `wit/released/0.1/`.

wit_bindgen::generate!({
    world: "plugin",
    path: "../../../wit/released/0.1",
});

use wasmbot::plugin::{
    messaging, state,
    types::{CommandSpec, EventKind, Outgoing},
};

struct Legacy;

fn text(text: String) -> Outgoing {
    Outgoing {
        text,
        embeds: vec![],
        buttons: vec![],
        menu: None,
        media: vec![],
        template: None,
        ephemeral: false,
    }
}

impl Guest for Legacy {
    fn describe() -> Manifest {
        Manifest {
            name: "legacy-0-1-4".into(),
            version: "0.1.4".into(),
            description: "Answers !old14".into(),
            commands: vec![CommandSpec {
                name: "old14".into(),
                description: "Answers from contract 0.1.4".into(),
                aliases: vec![],
                options: vec![],
                permissions: vec![],
                staff_only: false,
            }],
            events: vec![],
            capabilities: vec!["messaging".into(), "state".into()],
        }
    }

    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let EventKind::Command(_) = event.kind else {
            return Ok(vec![]);
        };
        let conversation = state::Conversation {
            platform: event.platform,
            chat_id: event.channel_id.clone(),
            user_id: event.author.id.clone(),
        };
        let unavailable = |error: String| PluginError::Unavailable(error);
        let seen = state::get(&conversation)
            .map_err(|e| unavailable(format!("{e:?}")))?
            .and_then(|count| count.parse::<u32>().ok())
            .unwrap_or(0)
            + 1;
        state::set(&conversation, &seen.to_string(), 3600)
            .map_err(|e| unavailable(format!("{e:?}")))?;
        messaging::act(&Action::Reply(text("working on it (0.1.4)".into())))
            .map_err(|e| unavailable(format!("{e:?}")))?;
        Ok(vec![Action::Reply(text(format!(
            "still here (0.1.4), call {seen}"
        )))])
    }
}

export!(Legacy);
