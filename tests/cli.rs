//! The command line: every flag and its environment variable (parsed
//! through the library's parser, plus one run of the real binary),
//! durations, start-up errors and the checks of helper scripts, and the
//! usage messages. Each is refused or taken before epoch 0 starts.

mod support {
    //! The parts of tests/support this binary uses.
    pub mod fixtures;
    pub mod log;
    pub mod procfs;
    pub mod wrapper;

    pub use {fixtures::*, log::*, procfs::*, wrapper::*};
}

#[path = "cli/flags.rs"]
mod flags;
#[path = "cli/durations.rs"]
mod durations;
#[path = "cli/start_errors.rs"]
mod start_errors;
#[path = "cli/helper_checks.rs"]
mod helper_checks;
