//! Real Envoy 1.40 under hot-restarter, under wrk load: hot restarts,
//! readiness from Envoy's admin, handoffs between generations (in a
//! private network namespace), and the README's demo.

#[path = "support/components.rs"]
mod components;
#[path = "support/envoy_lab.rs"]
mod envoy_lab;
#[path = "support/fixtures.rs"]
mod fixtures;
#[path = "support/log_lines.rs"]
mod log_lines;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/procfs.rs"]
mod procfs;
#[path = "support/wrapper.rs"]
mod wrapper;

/// What the tests of this binary import: `use crate::support::*`.
mod support {
    pub(crate) use super::{components, envoy_lab, netns};
    pub(crate) use super::{components::*, fixtures::*, log_lines::*, procfs::*, wrapper::*};
    pub use hot_restarter_test_needs::{in_netns, needs};
}

#[path = "envoy/admin.rs"]
mod admin;
#[path = "envoy/demo.rs"]
mod demo;
#[path = "envoy/handoff.rs"]
mod handoff;
#[path = "envoy/hot_restart.rs"]
mod hot_restart;
