//! The `log` capability: plugin log lines go to the host's `tracing` output, with the
//! plugin's name on every line, cut to a size limit and to a number of lines per event.

use wasmtime::component::{HasSelf, Linker};

use super::{Backends, Grant, HasContexts, Instance, Policy};
use crate::bindings::wasmbot::plugin::log;

/// Longest message kept, in bytes; the rest is cut.
const MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Most fields kept per line.
const MAX_FIELDS: usize = 16;

/// One instance's logging: its grant and what is left of its per-event allowance.
pub struct Context {
    grant: Grant,
    lines_left: u32,
    limit_noted: bool,
}

impl Context {
    pub(super) fn new(grant: Grant, instance: &Instance, _: &Backends, _: &Policy) -> Self {
        Self {
            grant,
            lines_left: instance.log_lines,
            limit_noted: false,
        }
    }

    /// A whole event's allowance again, for a kept instance's next event.
    pub(super) fn next_event(&mut self, lines: u32) {
        self.lines_left = lines;
        self.limit_noted = false;
    }

    /// Counts one log line against the per-event allowance; says so once when it runs out.
    fn take_line(&mut self) -> bool {
        if self.lines_left > 0 {
            self.lines_left -= 1;
            return true;
        }
        if !std::mem::replace(&mut self.limit_noted, true) {
            tracing::warn!(
                plugin = &**self.grant.plugin(),
                "log line limit reached; dropping the rest of this event's lines"
            );
        }
        false
    }
}

pub(super) fn link<T: HasContexts>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasSelf<Context>>(linker, |t| &mut t.contexts().log)
}

impl log::Host for Context {
    fn write(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        if self.grant.check().is_err() || !self.take_line() {
            return;
        }
        let plugin = &**self.grant.plugin();
        // Escaped so a plugin cannot forge host log lines with newlines or terminal codes.
        let message = escape_controls(truncate(&message, MAX_MESSAGE_BYTES));
        let fields = escape_controls(&format_fields(&fields)).into_owned();
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", plugin, fields, "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", plugin, fields, "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", plugin, fields, "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", plugin, fields, "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", plugin, fields, "{message}"),
        }
    }
}

fn format_fields(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (key, value) in fields.iter().take(MAX_FIELDS) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(truncate(key, 64));
        out.push('=');
        out.push_str(truncate(value, 256));
    }
    out
}

/// `text` with control characters (newlines, escape sequences) written as `\u{..}`.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect::<String>()
        .into()
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(escape_controls("plain"), "plain");
        assert_eq!(
            escape_controls("a\nINFO fake\u{1b}[31m"),
            "a\\u{a}INFO fake\\u{1b}[31m"
        );
    }

    #[test]
    fn fields_are_capped() {
        let fields: Vec<(String, String)> = (0..40)
            .map(|i| (format!("k{i}"), "v".repeat(1000)))
            .collect();
        let line = format_fields(&fields);
        assert_eq!(line.matches('=').count(), MAX_FIELDS);
        assert!(line.len() < MAX_FIELDS * (64 + 256 + 2));
    }
}
