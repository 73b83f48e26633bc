//! Why one event failed in a plugin. Every failure is contained to that event.

use std::time::Duration;

use wasmtime::Trap;

use crate::runtime::{HostState, bindings::types::PluginError};

/// One event's failure in one plugin; the host and every other plugin go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("used more than its CPU budget of {0:?}")]
    CpuBudget(Duration),
    #[error("took longer than its wall-clock budget of {0:?}")]
    WallClock(Duration),
    #[error("went over its memory cap of {0} MiB")]
    Memory(u64),
    #[error("overflowed its stack")]
    StackOverflow,
    #[error("panicked: {0}")]
    Panic(String),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned a malformed result: {0}")]
    Malformed(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("returned an error: {0:?}")]
    Plugin(PluginError),
}

impl Failure {
    /// A short stable name, for counters and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::CpuBudget(_) => "cpu_budget",
            Failure::WallClock(_) => "wall_clock",
            Failure::Memory(_) => "memory",
            Failure::StackOverflow => "stack_overflow",
            Failure::Panic(_) => "panic",
            Failure::Trap(_) => "trap",
            Failure::Malformed(_) => "malformed",
            Failure::Instantiate(_) => "instantiate",
            Failure::Plugin(_) => "plugin_error",
        }
    }

    /// Names the cause of a failed guest call from the error and what the store recorded.
    pub(crate) fn of_call(error: wasmtime::Error, state: &HostState, memory_mib: u64) -> Self {
        if state.cpu.exceeded {
            return Failure::CpuBudget(state.cpu.budget);
        }
        if state.memory.exceeded {
            return Failure::Memory(memory_mib);
        }
        let Some(trap) = error.downcast_ref::<Trap>() else {
            // Not a trap: the result could not be lifted or checked.
            return Failure::Malformed(format!("{error:#}"));
        };
        let stderr = state.stderr();
        match trap {
            Trap::StackOverflow => Failure::StackOverflow,
            _ if stderr.contains("panicked") => Failure::Panic(one_line(&stderr)),
            _ if stderr.is_empty() => Failure::Trap(trap.to_string()),
            _ => Failure::Trap(format!("{trap} (stderr: {})", one_line(&stderr))),
        }
    }
}

/// A multi-line guest message as one log-friendly line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}
