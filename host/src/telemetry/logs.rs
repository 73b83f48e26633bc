//! Logs: `tracing` to stderr, JSON lines when `LOG_FORMAT=json`.
//!
//! `LOG_LEVEL` (default `info`) is the level of wasmbot's own lines and its plugins'; other
//! crates stay at `warn` (or quieter, with `LOG_LEVEL=error`), because at debug level
//! Cranelift and wasmtime write hundreds of thousands of lines while plugins compile.
//! `RUST_LOG` adds `tracing` filter directives on top, e.g. `RUST_LOG=sqlx=debug`; set
//! alone, it is the whole filter. A `LOG_LEVEL` that is not a bare level is taken as
//! directives too.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

/// The targets that are wasmbot's own: the host and the lines its plugins log.
const OWN_TARGETS: [&str; 2] = ["wasmbot", "plugin"];

/// Installs the global subscriber; a second call does nothing.
pub fn init() {
    let directives = directives(
        std::env::var("LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|error| {
        eprintln!("LOG_LEVEL / RUST_LOG {directives:?} not understood ({error}): logging at info");
        EnvFilter::new(directives_for(LevelFilter::INFO))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already installed (tests, embedding): keep the existing subscriber.
    drop(installed);
}

/// The filter directives for `LOG_LEVEL` and `RUST_LOG`.
pub fn directives(log_level: Option<&str>, rust_log: Option<&str>) -> String {
    let rust_log = rust_log.map(str::trim).filter(|r| !r.is_empty());
    let base = match (log_level.map(str::trim).filter(|l| !l.is_empty()), rust_log) {
        (None, Some(rust_log)) => return rust_log.to_owned(),
        (None, None) => directives_for(LevelFilter::INFO),
        (Some(level), _) => match level.parse::<LevelFilter>() {
            Ok(level) => directives_for(level),
            Err(_) => level.to_owned(),
        },
    };
    match rust_log {
        Some(extra) => format!("{base},{extra}"),
        None => base,
    }
}

/// `level` for wasmbot's targets, at most `warn` for the rest.
fn directives_for(level: LevelFilter) -> String {
    let others = level.min(LevelFilter::WARN);
    let own = OWN_TARGETS.map(|target| format!("{target}={level}"));
    format!("{others},{}", own.join(","))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The lines a subscriber with `directives` lets through, of one line per target.
    fn written(directives: &str) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&out);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(directives))
            .with_ansi(false)
            .with_writer(move || Writer(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "wasmbot::runtime", "host debug");
            tracing::debug!(target: "plugin", "plugin debug");
            tracing::debug!(target: "cranelift_codegen::machinst", "compiler debug");
            tracing::info!(target: "wasmtime::runtime", "wasmtime info");
            tracing::warn!(target: "sqlx::pool", "pool warning");
        });
        let bytes = out.lock().map(|bytes| bytes.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_level_debug_is_wasmbots_debug_not_the_compilers() {
        let out = written(&directives(Some("debug"), None));
        assert!(out.contains("host debug"), "{out}");
        assert!(out.contains("plugin debug"), "{out}");
        assert!(out.contains("pool warning"), "{out}");
        assert!(!out.contains("compiler debug"), "{out}");
        assert!(!out.contains("wasmtime info"), "{out}");
    }

    #[test]
    fn rust_log_names_the_compiler_to_hear_it() {
        let out = written(&directives(Some("debug"), Some("cranelift_codegen=debug")));
        assert!(out.contains("compiler debug"), "{out}");
        assert!(out.contains("host debug"), "{out}");
        assert!(!out.contains("wasmtime info"), "{out}");
    }

    #[test]
    fn quieter_levels_quiet_everyone_and_directives_pass_through() {
        let out = written(&directives(Some("error"), None));
        assert!(!out.contains("pool warning"), "{out}");
        assert_eq!(directives(None, None), "warn,wasmbot=info,plugin=info");
        assert_eq!(directives(None, Some("debug")), "debug");
        assert_eq!(
            directives(Some("wasmbot=trace,sqlx=info"), None),
            "wasmbot=trace,sqlx=info"
        );
    }
}
