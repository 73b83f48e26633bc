//! End-to-end tests: the real host, real plugins built for wasm32-wasip2 by the tests
//! themselves, on the console platform.

mod config_store;
mod console;
mod counters;
mod database;
mod discord_gateway;
mod discord_http;
mod flows;
mod guilds;
mod limits;
mod loading;
mod operations;
mod packages;
mod plugin_config;
mod plugins;
mod reload;
mod reuse;
mod sandbox;
mod seed_bots;
mod state;
mod storage;
mod timers;
mod whatsapp;
