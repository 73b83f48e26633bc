//! What the operator sees of the process: logs, and memory figures and pressure. Every
//! layer below the HTTP server may use it; the host's metrics, which read those layers, are
//! gathered above them, in the HTTP layer's `report`.

pub mod allocator;
mod logs;
pub mod memory;

pub use logs::init;
