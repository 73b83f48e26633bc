//! The wasmbot host: runs chat bots whose behaviour lives in sandboxed WebAssembly plugins.
//!
//! - [`runtime`]: the engine, plugin loading, per-event instances with budgets, the registry
//!   and hot reload;
//! - [`capabilities`]: what plugins may call, one module per WIT interface, with grants;
//! - [`dispatch`]: events to plugins, actions to platforms;
//! - [`packages`]: signed plugin packages installed into a running bot;
//! - [`platforms`]: the adapters (the console, Discord, WhatsApp);
//! - [`config`]: the operator's configuration.

#![warn(missing_docs)]

pub mod api_error;
pub mod bindings;
pub mod capabilities;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod http;
pub mod packages;
pub mod permissions;
pub mod platforms;
pub mod redis;
pub mod runtime;
pub mod task;
pub mod telemetry;
