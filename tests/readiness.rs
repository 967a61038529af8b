//! Envoy-aware readiness and generations against stand-in admins (no
//! Envoy needed): `--envoy-admin` readiness, `--handoff-admin` handoffs
//! between generations, and the races of a handoff with crashes and stale
//! answers.

#[path = "support/admin_lab.rs"]
mod admin_lab;
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
    pub(crate) use super::admin_lab;
    pub(crate) use super::{fixtures::*, procfs::*, wrapper::*};
}

#[path = "readiness/admin.rs"]
mod admin;
#[path = "readiness/generations.rs"]
mod generations;
#[path = "readiness/handoff_races.rs"]
mod handoff_races;
