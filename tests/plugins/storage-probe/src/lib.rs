//! `!add TEXT` keeps a note of the author's and answers `ok:N` (their note count), `!list`
//! answers `ok:A|B`, `!sql STATEMENT` runs the test's statement (no parameters) and
//! answers `ok:ROWS` or the error, `!count-longer TEXT` passes a text where a number
//! belongs; `!bench N` times N reads of
//! one note and answers each one's nanoseconds (for the storage benchmark).

use wasmbot_sdk::{
    prelude::*,
    storage::{self, StorageError, Value},
};

struct Probe;

/// The tables; `storage-broken` ships the same first migration.
const NOTES: &str = "CREATE TABLE notes (author TEXT NOT NULL, body TEXT NOT NULL);
                     CREATE INDEX notes_by_author ON notes (author)";

fn text_command(name: &str) -> CommandSpec {
    CommandSpec::new(name, "Some text").option(OptionSpec::new("text", "What", OptionKind::Rest))
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(text) => text.clone(),
        Value::Blob(bytes) => format!("{} bytes", bytes.len()),
    }
}

fn run(command: &Command, author: &str) -> Result<String, StorageError> {
    let text = command.text("text").unwrap_or_default();
    let rows = |rows: storage::Rows| {
        let rows: Vec<String> = rows
            .rows
            .iter()
            .map(|row| row.iter().map(show).collect::<Vec<_>>().join(","))
            .collect();
        format!("ok:{}", rows.join("|"))
    };
    match command.name.as_str() {
        "add" => {
            storage::execute(
                "INSERT INTO notes (author, body) VALUES ($1, $2)",
                &[author.into(), text.into()],
            )?;
            let count = storage::query(
                "SELECT count(*) FROM notes WHERE author = $1",
                &[author.into()],
            )?;
            Ok(rows(count))
        }
        "list" => storage::query(
            "SELECT body FROM notes WHERE author = $1 ORDER BY body",
            &[author.into()],
        )
        .map(rows),
        "count-longer" => storage::query(
            "SELECT count(*) FROM notes WHERE length(body) > $1",
            &[text.into()],
        )
        .map(rows),
        "bench" => {
            let reads: usize = text.parse().unwrap_or(1);
            let mut nanos = Vec::with_capacity(reads);
            for _ in 0..reads {
                // std's clock on wasm32-wasip2 is WASI's monotonic clock, in nanoseconds.
                let started = std::time::Instant::now();
                storage::query(
                    "SELECT body FROM notes WHERE author = $1 LIMIT 1",
                    &[author.into()],
                )?;
                nanos.push(started.elapsed().as_nanos().to_string());
            }
            Ok(nanos.join(" "))
        }
        _ => storage::query(text, &[]).map(rows),
    }
}

impl Plugin for Probe {
    fn manifest() -> Manifest {
        Manifest::new("storage-probe", "0.1.0")
            .command(text_command("add"))
            .command(CommandSpec::new("list", "The author's notes"))
            .command(text_command("sql"))
            .command(text_command("count-longer"))
            .command(text_command("bench"))
            .migration(1, NOTES)
    }

    fn handle(event: Event) -> Handled {
        let Some(command) = event.command() else {
            return Ok(vec![]);
        };
        let answer = match run(command, &event.author.id) {
            Ok(text) => text,
            Err(error) => format!("err:{error:?}"),
        };
        Ok(vec![Action::reply(answer)])
    }
}

export_plugin!(Probe);
