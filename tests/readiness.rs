//! Envoy-aware readiness and generations against stand-in admins (no
//! Envoy needed): `--envoy-admin` readiness, `--handoff-admin` handoffs
//! between generations, and the races of a handoff with crashes and stale
//! answers.

#[path = "support/admin_lab.rs"]
mod admin_lab;
#[path = "support/mod.rs"]
mod support;

#[path = "readiness/admin.rs"]
mod admin;
#[path = "readiness/drain.rs"]
mod drain;
#[path = "readiness/generations.rs"]
mod generations;
#[path = "readiness/handoff_races.rs"]
mod handoff_races;
