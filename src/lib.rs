//! hot-restarter's library: everything the binaries, benches and tests
//! share. `main.rs` only parses flags and maps `run`'s result to an exit code.

pub mod admin;
pub mod capture;
pub mod cli;
pub mod container;
pub mod control;
pub mod core;
pub mod driver;
pub mod exec_check;
pub mod logging;
pub mod notify;
pub mod pidfile;
pub mod policy;
pub mod poller;
pub mod setup;
pub mod signals;
pub mod sockets;
pub mod spawn;
