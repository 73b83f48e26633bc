//! Every way a plugin can go wrong, one command each. The host must contain each to its event.

use std::time::Duration;

use wasmbot_sdk::{ChannelRef, Destination, Platform, Send, prelude::*};

struct Misbehave;

const COMMANDS: &[(&str, &str)] = &[
    ("spin", "An infinite loop"),
    ("bomb", "Allocates until memory runs out"),
    ("recurse", "Recursion without end"),
    ("boom", "Panics"),
    ("flood", "Returns thousands of actions"),
    ("huge", "Returns a reply of 8 MiB"),
    ("nap", "Sleeps 10 minutes in a host call"),
    (
        "elsewhere",
        "Sends to WhatsApp, which this host may not reach",
    ),
    ("chatty", "Writes a thousand log lines"),
    ("fine", "Behaves"),
];

impl Plugin for Misbehave {
    fn manifest() -> Manifest {
        COMMANDS.iter().fold(
            Manifest::new("misbehave", "0.1.0").capability("log"),
            |manifest, (name, description)| manifest.command(CommandSpec::new(*name, *description)),
        )
    }

    fn handle(event: Event) -> Handled {
        let name = event.command().map(|c| c.name.as_str()).unwrap_or_default();
        match name {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => Ok(vec![Action::reply(format!(
                "{}",
                deep(std::hint::black_box(1))
            ))]),
            "boom" => panic!("boom: this plugin panics on purpose"),
            "flood" => Ok((0..5000).map(|i| Action::reply(format!("{i}"))).collect()),
            "huge" => Ok(vec![Action::reply("x".repeat(8 << 20))]),
            "nap" => {
                std::thread::sleep(Duration::from_secs(600));
                Ok(vec![Action::reply("rested")])
            }
            "elsewhere" => Ok(vec![
                Action::Send(Send {
                    to: Destination::Channel(ChannelRef {
                        platform: Platform::Whatsapp,
                        guild_id: None,
                        channel_id: "15550001111".into(),
                    }),
                    message: Outgoing::text("hello from elsewhere"),
                }),
                Action::reply("sent elsewhere"),
            ]),
            "chatty" => {
                for i in 0..1000 {
                    log::info(&format!("line {i}"));
                }
                Ok(vec![Action::reply("said a lot")])
            }
            _ => Ok(vec![Action::reply("fine")]),
        }
    }
}

/// Recursion that never ends, in wasm locals (the engine's stack, not Rust's shadow stack).
fn deep(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let below = deep(std::hint::black_box(n + 1));
    std::hint::black_box(below).wrapping_add(1)
}

export_plugin!(Misbehave);
