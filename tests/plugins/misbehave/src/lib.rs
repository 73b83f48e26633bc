//! Every way a plugin can go wrong, one command each. The host must contain each to its event.
//! `count` and `hoard` keep what they did in globals: an instance reused between events
//! (`instances = "reuse"`) remembers it, a fresh one does not.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

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
    ("count", "How many events this instance has counted"),
    (
        "hoard",
        "Keeps 6 MiB more for good, and says how much it holds",
    ),
    ("fine", "Behaves"),
];

static COUNTED: AtomicU32 = AtomicU32::new(0);
static HOARD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

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
            "count" => {
                let counted = COUNTED.fetch_add(1, Ordering::Relaxed) + 1;
                Ok(vec![Action::reply(counted.to_string())])
            }
            "hoard" => {
                let mut hoard = HOARD.lock().unwrap_or_else(|e| e.into_inner());
                hoard.push(vec![1u8; 6 << 20]);
                Ok(vec![Action::reply(format!("{} MiB", hoard.len() * 6))])
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
