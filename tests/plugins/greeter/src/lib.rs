//! Test plugin for packages: one source, three versions (`greeter` 1.0.0, `greeter-1-1`
//! 1.1.0, `greeter-2` 2.0.0, each its own crate over this file). Version 2 asks for `http`
//! besides `log`: an update to it needs the operator's approval.

use wasmbot_sdk::prelude::*;

struct Greeter;

const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Plugin for Greeter {
    fn manifest() -> Manifest {
        let manifest = Manifest::new("greeter", VERSION)
            .description("Says hello with its version")
            .command(CommandSpec::new("greet", "Say hello"))
            .capability("log");
        match env!("CARGO_PKG_VERSION_MAJOR") {
            "1" => manifest,
            _ => manifest.capability("http"),
        }
    }

    fn handle(_event: Event) -> Handled {
        log::info("greeting");
        Ok(vec![Action::reply(format!("hello from greeter {VERSION}"))])
    }
}

export_plugin!(Greeter);
