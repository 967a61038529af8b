//! The command line: every flag and its environment variable (parsed
//! through the library's parser, plus one run of the real binary),
//! durations, start-up errors and the checks of helper scripts, and the
//! usage messages. Each is refused or taken before epoch 0 starts.

#[path = "cli/durations.rs"]
mod durations;
#[path = "cli/flags.rs"]
mod flags;
#[path = "cli/helper_checks.rs"]
mod helper_checks;
#[path = "cli/start_errors.rs"]
mod start_errors;
#[path = "support/mod.rs"]
mod support;
