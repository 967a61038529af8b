//! hot-restarter under real supervisors and their example files: runit,
//! monit and systemd (unit files checked with systemd-analyze, sd_notify).

#[path = "support/components.rs"]
mod components;
#[path = "support/supervisor.rs"]
mod supervisor;
#[path = "support/mod.rs"]
mod support;

#[path = "supervisors/monit.rs"]
mod monit;
#[path = "supervisors/runit.rs"]
mod runit;
#[path = "supervisors/systemd.rs"]
mod systemd;
