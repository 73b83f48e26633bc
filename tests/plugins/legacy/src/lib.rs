//! A plugin built against the released contract `wasmbot:plugin@0.1.0`: later hosts must keep
//! loading it and answering it. Its copy of that contract (`wit/plugin.wit`) is the proof's
//! fixture; `host/tests/contract.rs` checks it against the released `wit/released/0.1.0.sig`.

wit_bindgen::generate!({
    world: "plugin",
    path: "wit/plugin.wit",
});

use wasmbot::plugin::{
    log,
    types::{CommandSpec, EventKind, Outgoing},
};

struct Legacy;

impl Guest for Legacy {
    fn describe() -> Manifest {
        Manifest {
            name: "legacy".into(),
            version: "0.1.0".into(),
            description: "Answers !old".into(),
            commands: vec![CommandSpec {
                name: "old".into(),
                description: "Answers from contract 0.1.0".into(),
                aliases: vec![],
                options: vec![],
                permissions: vec![],
                staff_only: false,
            }],
            events: vec![],
            capabilities: vec!["log".into()],
        }
    }

    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let EventKind::Command(_) = event.kind else {
            return Ok(vec![]);
        };
        log::write(log::Level::Info, "answering from 0.1.0", &[]);
        Ok(vec![Action::Reply(Outgoing {
            text: "still here (0.1.0)".into(),
            embeds: vec![],
            buttons: vec![],
            menu: None,
            media: vec![],
            template: None,
            ephemeral: false,
        })])
    }
}

export!(Legacy);
