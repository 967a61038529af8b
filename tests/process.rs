//! The process contract kept from hot-restarter.py: epochs and what each
//! child inherits, signals, graceful shutdown, child failures and exit
//! codes, orphans, the pid file, the log lines word for word, and the
//! opt-in flags (--preflight, --keep-serving, --ready-check, --watch).

#[path = "support/components.rs"]
mod components;
#[path = "support/mod.rs"]
mod support;

#[path = "process/epochs.rs"]
mod epochs;
#[path = "process/extensions.rs"]
mod extensions;
#[path = "process/failures.rs"]
mod failures;
#[path = "process/keep_serving.rs"]
mod keep_serving;
#[path = "process/log_messages.rs"]
mod log_messages;
#[path = "process/orphans.rs"]
mod orphans;
#[path = "process/pid_file.rs"]
mod pid_file;
#[path = "process/shutdown.rs"]
mod shutdown;
#[path = "process/signals.rs"]
mod signals;
#[path = "process/watch.rs"]
mod watch;
