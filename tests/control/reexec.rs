//! `hot-restarter-ctl reexec`: the wrapper executes its binary afresh
//! (copied into the test's temp dir, so it can be replaced there) and
//! keeps its pid, its children and its state; refused binaries leave the
//! old one in charge; a reexec asked for during a restart, a preflight or
//! a handoff is held, one while shutting down refused; signals
//! sent during the exec are acted on; 100 reexecs leave memory and
//! descriptors flat.

#[path = "reexec/handoff.rs"]
mod handoff;
#[path = "reexec/harness.rs"]
mod harness;
#[path = "reexec/refused.rs"]
mod refused;
#[path = "reexec/state.rs"]
mod state;
