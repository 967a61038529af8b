//! hot-restarter under real supervisors and their example files: runit,
//! monit and systemd (unit files checked with systemd-analyze, sd_notify).

#[path = "support/components.rs"]
mod components;
#[path = "support/fixtures.rs"]
mod fixtures;
#[path = "support/log_lines.rs"]
mod log_lines;
#[path = "support/procfs.rs"]
mod procfs;
#[path = "support/supervisor.rs"]
mod supervisor;
#[path = "support/wrapper.rs"]
mod wrapper;

/// What the tests of this binary import: `use crate::support::*`.
mod support {
    pub(crate) use super::supervisor;
    pub(crate) use super::{components::*, fixtures::*, log_lines::*, procfs::*, wrapper::*};
    pub use hot_restarter_test_needs::needs;
}

#[path = "supervisors/monit.rs"]
mod monit;
#[path = "supervisors/runit.rs"]
mod runit;
#[path = "supervisors/systemd.rs"]
mod systemd;
