//! Why one event failed in a plugin. Every failure is contained to that event.

use std::time::Duration;

use wasmtime::Trap;

use crate::{bindings::types::PluginError, runtime::InstanceData};

/// One event's failure in one plugin; the host and every other plugin go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The guest ran longer than its CPU budget.
    #[error("used more than its CPU budget of {0:?}")]
    CpuBudget(Duration),
    /// The event took longer than its wall-clock budget, host calls included.
    #[error("took longer than its wall-clock budget of {0:?}")]
    WallClock(Duration),
    /// The instance asked for more memory than its cap.
    #[error("went over its memory cap of {0} MiB")]
    Memory(u64),
    /// The guest overflowed its stack.
    #[error("overflowed its stack")]
    StackOverflow,
    /// The guest panicked; the text is its panic message.
    #[error("panicked: {0}")]
    Panic(String),
    /// Any other trap.
    #[error("trapped: {0}")]
    Trap(String),
    /// The result broke the contract or the output limits.
    #[error("returned a malformed result: {0}")]
    Malformed(String),
    /// No instance could be made.
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    /// The guest called `exit`.
    #[error("exited with status {0}")]
    Exit(i32),
    /// The handler returned its own error.
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
            Failure::Exit(_) => "exit",
            Failure::Plugin(_) => "plugin_error",
        }
    }

    /// Names the cause of a failed instantiation from the error and what the store recorded.
    pub(crate) fn of_instantiation(
        error: wasmtime::Error,
        state: &InstanceData,
        memory_mib: u64,
    ) -> Self {
        Self::of_limit(state, memory_mib)
            .unwrap_or_else(|| Failure::Instantiate(format!("{error:#}")))
    }

    /// Names the cause of a failed guest call from the error and what the store recorded.
    pub(crate) fn of_call(error: wasmtime::Error, state: &InstanceData, memory_mib: u64) -> Self {
        if let Some(limit) = Self::of_limit(state, memory_mib) {
            return limit;
        }
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return Failure::Exit(exit.0);
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

    /// A budget or cap the host enforced, if one fired.
    fn of_limit(state: &InstanceData, memory_mib: u64) -> Option<Self> {
        if state.cpu.exceeded {
            Some(Failure::CpuBudget(state.cpu.budget))
        } else if state.memory.exceeded {
            Some(Failure::Memory(memory_mib))
        } else {
            None
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
