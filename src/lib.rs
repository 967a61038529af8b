//! hot-restarter's library: everything the binaries, benches and tests
//! share. `main.rs` only parses flags and maps `run`'s result to an exit code.

pub mod cli;
pub mod control;
pub mod logging;
pub mod notify;
pub mod pidfile;
pub mod policy;
pub mod signals;
pub mod spawn;
pub mod supervisor;
