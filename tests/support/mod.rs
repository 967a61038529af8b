//! The harness every test binary shares (tests/README.md): the wrapper
//! under test, fixture scripts and reports, log lines, /proc, assertions
//! on lists. A binary loads it with `#[path = "support/mod.rs"] mod
//! support;` and adds, at its root, the parts only some binaries need
//! (`components`, `admin_lab`, `envoy_lab`, `netns`, `supervisor`,
//! `fifo`).

pub mod assertions;
pub mod fixtures;
pub mod log_lines;
pub mod procfs;
pub mod wrapper;

#[allow(unused_imports)] // only some binaries assert on lists
pub use assertions::*;
pub use fixtures::*;
#[allow(unused_imports)] // not every binary reads log lines itself
pub use log_lines::*;
pub use procfs::*;
pub use wrapper::*;
