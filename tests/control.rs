//! The control socket (`--control-socket`) and `hot-restarter-ctl`: the
//! protocol, its limits, waiting requests, status, and the client.

#[path = "control/ctl.rs"]
mod ctl;
#[path = "control/faults.rs"]
mod faults;
#[path = "control/harness.rs"]
mod harness;
#[path = "control/socket.rs"]
mod socket;
#[path = "support/mod.rs"]
mod support;
