//! `!echo TEXT`: replies with the text. The trivial plugin of the benchmark.

use wasmbot_sdk::prelude::*;

struct Echo;

impl Plugin for Echo {
    fn manifest() -> Manifest {
        Manifest::new("echo", "1.0.0").command(
            CommandSpec::new("echo", "Repeat the text").option(OptionSpec::new(
                "text",
                "What to repeat",
                OptionKind::Rest,
            )),
        )
    }

    fn handle(event: Event) -> Handled {
        Ok(vec![Action::reply(event.text())])
    }
}

export_plugin!(Echo);
