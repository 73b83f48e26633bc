//! A later `storage-probe` whose second migration fails half-way: its first statement
//! works, its second names a column that does not exist. The host must roll it all back
//! and keep the previous version serving.

use wasmbot_sdk::prelude::*;

struct Broken;

impl Plugin for Broken {
    fn manifest() -> Manifest {
        Manifest::new("storage-probe", "0.2.0")
            .command(CommandSpec::new("broken", "Never served"))
            .migration(
                1,
                "CREATE TABLE notes (author TEXT NOT NULL, body TEXT NOT NULL);
                     CREATE INDEX notes_by_author ON notes (author)",
            )
            .migration(
                2,
                "CREATE TABLE extra (x BIGINT);
                 UPDATE notes SET missing_column = 1",
            )
    }

    fn handle(_event: Event) -> Handled {
        Ok(vec![Action::reply("broken version")])
    }
}

export_plugin!(Broken);
