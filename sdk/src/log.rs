//! Log lines attributed to the plugin by the host: the `log` capability, which the manifest
//! must ask for (`.capability("log")`) and the operator grant.

pub use crate::bindings::wasmbot::plugin::log::Level;
use crate::bindings::wasmbot::plugin::log::write;

/// Writes a line at `level` with key-value fields.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    write(level, message, &fields);
}

/// Writes a debug line.
pub fn debug(message: &str) {
    log(Level::Debug, message, &[]);
}

/// Writes an info line.
pub fn info(message: &str) {
    log(Level::Info, message, &[]);
}

/// Writes a warning.
pub fn warn(message: &str) {
    log(Level::Warn, message, &[]);
}

/// Writes an error line.
pub fn error(message: &str) {
    log(Level::Error, message, &[]);
}
