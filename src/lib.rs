//! hot-restarter's library: everything the binaries, benches and tests
//! share. `main.rs` only parses flags and maps `run`'s result to an exit code.
//!
//! `core` decides (pure: events in, actions out), `driver` is the one loop
//! that carries the actions out, `os` the system calls it needs, `admin`
//! and `control` the two protocol adapters, `config` the flags, `watch` the
//! inotify watcher behind `--watch`.

pub mod admin;
pub mod config;
pub mod control;
pub mod core;
pub mod driver;
pub mod os;
pub mod watch;
