//! The control socket (`--control-socket`) and `hot-restarter-ctl`: the
//! protocol, its limits, waiting requests, status, and the client; and
//! `reexec`, the wrapper executing a new binary of itself.

#[allow(dead_code)] // the reexec handoff test uses a part of it
#[path = "support/admin_lab.rs"]
mod admin_lab;

#[path = "control/ctl.rs"]
mod ctl;
#[path = "control/faults.rs"]
mod faults;
#[path = "control/harness.rs"]
mod harness;
#[path = "control/reexec.rs"]
mod reexec;
#[path = "control/socket.rs"]
mod socket;
#[path = "support/mod.rs"]
mod support;
