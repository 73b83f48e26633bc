//! Platform adapters: each turns its platform's traffic into normalized events for the
//! dispatcher and carries out actions as its platform's [`Outlet`](crate::dispatch::Outlet).

pub mod console;
pub mod discord;
pub mod whatsapp;
