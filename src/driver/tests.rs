//! Unit tests of the parent module.

use super::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

#[test]
fn wait_statuses_become_exits() {
    let pid = Pid::from_raw(42);
    assert_eq!(exit_of(WaitStatus::Exited(pid, 0)), Some(Exit::Code(0)));
    assert_eq!(exit_of(WaitStatus::Exited(pid, 3)), Some(Exit::Code(3)));
    assert_eq!(
        exit_of(WaitStatus::Signaled(pid, Signal::SIGSEGV, true)),
        Some(Exit::Signal(11))
    );
    assert_eq!(exit_of(WaitStatus::Stopped(pid, Signal::SIGSTOP)), None);
    assert_eq!(exit_of(WaitStatus::StillAlive), None);
}
