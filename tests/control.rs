//! The control socket (`--control-socket`) and `hot-restarter-ctl`: the
//! protocol, its limits, waiting requests, status, and the client.

mod support {
    //! The parts of tests/support this binary uses.
    pub mod fixtures;
    pub mod log;
    pub mod procfs;
    pub mod wrapper;

    pub use {fixtures::*, log::*, procfs::*, wrapper::*};
}

#[path = "control/socket.rs"]
mod socket;
#[path = "control/ctl.rs"]
mod ctl;
