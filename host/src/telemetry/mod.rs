//! What the operator sees: logs, memory figures and pressure, and the host's metrics as
//! JSON and Prometheus text.

mod logs;
pub mod memory;
pub mod report;

pub use logs::init;
