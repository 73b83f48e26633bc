//! Asks for a capability that no host provides: it must be refused at load.

use wasmbot_sdk::prelude::*;

struct Greedy;

impl Plugin for Greedy {
    fn manifest() -> Manifest {
        Manifest::new("greedy", "0.1.0").capability("teleport")
    }

    fn handle(_event: Event) -> Handled {
        Ok(vec![])
    }
}

export_plugin!(Greedy);
