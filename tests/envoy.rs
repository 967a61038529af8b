//! Real Envoy 1.40 under hot-restarter, under wrk load: hot restarts,
//! readiness from Envoy's admin, handoffs between generations (in a
//! private network namespace), reloads on ConfigMap updates (--watch),
//! upgrading the wrapper itself (reexec), and
//! the README's demo.

#[path = "support/components.rs"]
mod components;
#[path = "support/envoy_lab.rs"]
mod envoy_lab;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/mod.rs"]
mod support;

#[path = "envoy/admin.rs"]
mod admin;
#[path = "envoy/demo.rs"]
mod demo;
#[path = "envoy/drain.rs"]
mod drain;
#[path = "envoy/handoff.rs"]
mod handoff;
#[path = "envoy/hot_restart.rs"]
mod hot_restart;
#[path = "envoy/reexec.rs"]
mod reexec;
#[path = "envoy/watch.rs"]
mod watch;
