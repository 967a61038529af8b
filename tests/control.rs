//! The control socket (`--control-socket`) and `hot-restarter-ctl`: the
//! protocol, its limits, waiting requests, status, and the client.

#[path = "support/fixtures.rs"]
mod fixtures;
#[path = "support/log_lines.rs"]
mod log_lines;
#[path = "support/procfs.rs"]
mod procfs;
#[path = "support/wrapper.rs"]
mod wrapper;

/// What the tests of this binary import: `use crate::support::*`.
mod support {
    pub(crate) use super::{fixtures::*, log_lines::*, procfs::*, wrapper::*};
}

#[path = "control/ctl.rs"]
mod ctl;
#[path = "control/socket.rs"]
mod socket;
