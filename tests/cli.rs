//! The command line: every flag and its environment variable (parsed
//! through the library's parser, plus one run of the real binary),
//! durations, start-up errors and the checks of helper scripts, and the
//! usage messages. Each is refused or taken before epoch 0 starts.

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
    pub(crate) use super::{fixtures::*, log_lines::*, procfs::*, wrapper::*};
}

#[path = "cli/durations.rs"]
mod durations;
#[path = "cli/flags.rs"]
mod flags;
#[path = "cli/helper_checks.rs"]
mod helper_checks;
#[path = "cli/start_errors.rs"]
mod start_errors;
