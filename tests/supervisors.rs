//! hot-restarter under real supervisors and their example files: runit,
//! monit and systemd (unit files checked with systemd-analyze, sd_notify).

mod support {
    //! The parts of tests/support this binary uses.
    pub mod components;
    pub mod fixtures;
    pub mod log;
    pub mod procfs;
    pub mod supervisor;
    pub mod wrapper;

    pub use hot_restarter_test_needs::needs;
    pub use {components::*, fixtures::*, log::*, procfs::*, wrapper::*};
}

#[path = "supervisors/runit.rs"]
mod runit;
#[path = "supervisors/monit.rs"]
mod monit;
#[path = "supervisors/systemd.rs"]
mod systemd;
