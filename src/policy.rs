//! Pure decisions, kept apart from processes so they can be tested alone:
//! what an exit means, which code the wrapper exits with, which epoch comes
//! next, and what a SIGHUP does in each state.

use nix::sys::wait::WaitStatus;

/// How one child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl Exit {
    /// The meaning of a wait status, or `None` for a status that is not an
    /// end (stopped, continued, still running).
    pub fn from_status(status: WaitStatus) -> Option<Exit> {
        match status {
            WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
            WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
            _ => None,
        }
    }

    /// Exit code 0 is an epoch that finished draining; anything else is a
    /// failure that, by default, takes the whole wrapper down.
    pub fn is_clean(self) -> bool {
        self == Exit::Code(0)
    }
}

/// Why the wrapper is stopping, which decides its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every child exited 0 by itself.
    NoChildrenLeft,
    /// SIGTERM/SIGINT and every child exited within the term wait.
    GracefulShutdown,
    /// SIGTERM/SIGINT, but some children had to be SIGKILLed.
    ForcedShutdown,
    /// A child failed, or a start failed.
    Failure,
}

impl Ending {
    pub fn exit_code(self) -> i32 {
        match self {
            Ending::NoChildrenLeft | Ending::GracefulShutdown => 0,
            Ending::ForcedShutdown | Ending::Failure => 1,
        }
    }
}

/// The epoch the next restart uses after a restart to `failed` did not
/// take, given the epochs still running. Envoy's epoch n talks to epoch
/// n-1, so the next try must follow the newest live epoch: the failed
/// number is reused, never skipped.
pub fn next_epoch_after_failure(live: impl IntoIterator<Item = u32>, failed: u32) -> u32 {
    match live.into_iter().max() {
        Some(newest) => newest + 1,
        None => failed,
    }
}

/// What to do with a SIGHUP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HupAction {
    /// Begin a restart now.
    Restart,
    /// A restart is in progress (preflight running, or the newest epoch not
    /// ready yet): remember that one more is wanted.
    Hold,
    /// One is already held: this SIGHUP folds into it.
    Coalesce,
    /// Shutting down or tearing down: log and ignore.
    Ignore,
}

/// Decide a SIGHUP from the wrapper's state.
pub fn on_hup(stopping: bool, restart_in_progress: bool, already_held: bool) -> HupAction {
    if stopping {
        HupAction::Ignore
    } else if !restart_in_progress {
        HupAction::Restart
    } else if already_held {
        HupAction::Coalesce
    } else {
        HupAction::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn wait_statuses_become_exits() {
        let pid = Pid::from_raw(42);
        assert_eq!(
            Exit::from_status(WaitStatus::Exited(pid, 0)),
            Some(Exit::Code(0))
        );
        assert_eq!(
            Exit::from_status(WaitStatus::Exited(pid, 3)),
            Some(Exit::Code(3))
        );
        assert_eq!(
            Exit::from_status(WaitStatus::Signaled(pid, Signal::SIGSEGV, true)),
            Some(Exit::Signal(11))
        );
        assert_eq!(
            Exit::from_status(WaitStatus::Stopped(pid, Signal::SIGSTOP)),
            None
        );
        assert_eq!(Exit::from_status(WaitStatus::StillAlive), None);
    }

    #[test]
    fn only_code_zero_is_clean() {
        assert!(Exit::Code(0).is_clean());
        assert!(!Exit::Code(1).is_clean());
        assert!(!Exit::Code(127).is_clean());
        assert!(!Exit::Signal(15).is_clean());
        assert!(!Exit::Signal(9).is_clean());
    }

    #[test]
    fn exit_codes_match_the_python_wrapper() {
        assert_eq!(Ending::NoChildrenLeft.exit_code(), 0);
        assert_eq!(Ending::GracefulShutdown.exit_code(), 0);
        assert_eq!(Ending::ForcedShutdown.exit_code(), 1);
        assert_eq!(Ending::Failure.exit_code(), 1);
    }

    #[test]
    fn a_failed_epoch_number_is_reused() {
        // epoch 0 serves, epoch 1 failed: try 1 again.
        assert_eq!(next_epoch_after_failure([0], 1), 1);
        // epoch 1 serves while 0 drains, 2 failed: try 2 again.
        assert_eq!(next_epoch_after_failure([0, 1], 2), 2);
        // an old, draining epoch failed: the newest still decides.
        assert_eq!(next_epoch_after_failure([3], 2), 4);
        // nothing left: nothing to follow.
        assert_eq!(next_epoch_after_failure([], 5), 5);
    }

    #[test]
    fn hups_restart_hold_coalesce_or_are_ignored() {
        assert_eq!(on_hup(false, false, false), HupAction::Restart);
        assert_eq!(on_hup(false, true, false), HupAction::Hold);
        assert_eq!(on_hup(false, true, true), HupAction::Coalesce);
        assert_eq!(on_hup(true, false, false), HupAction::Ignore);
        assert_eq!(on_hup(true, true, true), HupAction::Ignore);
    }
}
