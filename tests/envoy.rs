//! Real Envoy 1.40 under hot-restarter, under wrk load: hot restarts,
//! readiness from Envoy's admin, handoffs between generations (in a
//! private network namespace), and the README's demo.

mod support {
    //! The parts of tests/support this binary uses.
    pub mod components;
    pub mod envoy_lab;
    pub mod fixtures;
    pub mod log;
    pub mod netns;
    pub mod procfs;
    pub mod wrapper;

    pub use hot_restarter_test_needs::{in_netns, needs};
    pub use {components::*, fixtures::*, log::*, procfs::*, wrapper::*};
}

#[path = "envoy/hot_restart.rs"]
mod hot_restart;
#[path = "envoy/admin.rs"]
mod admin;
#[path = "envoy/handoff.rs"]
mod handoff;
#[path = "envoy/demo.rs"]
mod demo;
