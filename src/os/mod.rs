//! The operating system as the driver uses it: signals, spawning and exec
//! checks, a helper's stderr capture, counting listening sockets, the pid
//! file, sd_notify, the reexec hand-over, logging, the process's set-up and the poll wait.

pub mod exec_check;
pub mod listening;
pub mod logging;
pub mod pid_file;
pub mod poller;
pub mod reexec;
pub mod sd_notify;
pub mod setup;
pub mod shm_check;
pub mod signals;
pub mod spawn;
pub mod stderr_capture;
