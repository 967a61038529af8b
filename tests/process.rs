//! The process contract kept from hot-restarter.py: epochs and what each
//! child inherits, signals, graceful shutdown, child failures and exit
//! codes, orphans, the pid file, the log lines word for word, and the
//! opt-in flags (--preflight, --keep-serving, --ready-check).

mod support {
    //! The parts of tests/support this binary uses.
    pub mod components;
    pub mod fixtures;
    pub mod log;
    pub mod procfs;
    pub mod wrapper;

    pub use hot_restarter_test_needs::needs;
    pub use {components::*, fixtures::*, log::*, procfs::*, wrapper::*};
}

#[path = "process/epochs.rs"]
mod epochs;
#[path = "process/signals.rs"]
mod signals;
#[path = "process/shutdown.rs"]
mod shutdown;
#[path = "process/failures.rs"]
mod failures;
#[path = "process/keep_serving.rs"]
mod keep_serving;
#[path = "process/orphans.rs"]
mod orphans;
#[path = "process/pid_file.rs"]
mod pid_file;
#[path = "process/log_messages.rs"]
mod log_messages;
#[path = "process/extensions.rs"]
mod extensions;
