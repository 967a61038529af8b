//! Envoy-aware readiness and generations against stand-in admins (no
//! Envoy needed): `--envoy-admin` readiness, `--handoff-admin` handoffs
//! between generations, and the races of a handoff with crashes and stale
//! answers.

mod support {
    //! The parts of tests/support this binary uses.
    pub mod admin_lab;
    pub mod fixtures;
    pub mod log;
    pub mod procfs;
    pub mod wrapper;

    pub use {fixtures::*, procfs::*, wrapper::*};
}

#[path = "readiness/admin.rs"]
mod admin;
#[path = "readiness/generations.rs"]
mod generations;
#[path = "readiness/handoff_races.rs"]
mod handoff_races;
