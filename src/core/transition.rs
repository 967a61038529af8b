//! The one way the wrapper's state changes, in the manner of systemd's
//! `service_set_state`: every change of phase or work goes through
//! [`Core::set_state`], which cancels what the new state forbids (the
//! helper of the work being left, a held restart and waiting clients once
//! the wrapper stops running), settles the reload report the caller names,
//! arms what the new state needs (STOPPING=1, the wait for killed helpers)
//! and refuses a change that makes no sense.

use super::report::Outcome;
use super::{Core, Ending, KILL_REAP_WAIT, Notify, Phase, Work, later};

/// What becomes of the reload in flight (if any) when the state changes.
pub(super) enum Settle<'a> {
    /// It goes on (or none is in flight).
    Keep,
    /// It ended: record it, answer its clients, and tell systemd READY=1.
    Ended(Outcome<'a>),
    /// It will be retried: its clients wait for the retry.
    Postponed,
}

impl Core {
    /// Change the phase (and, while running, the work) to `to`.
    pub(super) fn set_state(&mut self, to: Phase, settle: Settle) {
        if !allowed(&self.phase, &to) {
            self.refuse(&to);
            return;
        }
        // The helper of the work being left: SIGKILL its group, unless the
        // new state keeps it (the same preflight or ready check).
        if let Some(pid) = self.helper_pid()
            && helper_of(&to) != Some(pid)
        {
            self.kill_group(pid);
        }
        let stops_running = self.phase.is_running() && !to.is_running();
        self.phase = match to {
            // Killed helpers are still to be reaped: not done until they are.
            Phase::Done(ending) if !self.killed_helpers.is_empty() => Phase::Exiting {
                deadline: later(self.now, KILL_REAP_WAIT),
                ending,
            },
            to => to,
        };
        if stops_running {
            self.stop_running();
        }
        match settle {
            Settle::Keep => {}
            Settle::Ended(outcome) => {
                self.reload_ended(outcome);
                self.notify_ready();
            }
            Settle::Postponed => self.reload_postponed(),
        }
    }

    /// The work changes while running.
    pub(super) fn set_work(&mut self, work: Work, settle: Settle) {
        self.set_state(Phase::Running(work), settle);
    }

    /// Leave the work in flight without ending its reload (the caller
    /// settles it, or starts the next step of the same reload).
    pub(super) fn drop_work(&mut self) {
        self.set_work(Work::Idle, Settle::Keep);
    }

    /// The wrapper no longer runs: no restart will come, so no request is
    /// held and no client waits for a reload.
    fn stop_running(&mut self) {
        self.held = None;
        let why = match self.phase {
            Phase::ShuttingDown { .. } => {
                self.notify(Notify::Stopping);
                "the wrapper is shutting down"
            }
            Phase::Draining(_) => {
                self.notify(Notify::Stopping);
                "the wrapper is draining Envoy to stop"
            }
            Phase::Killing { .. } => {
                "a child failed: the wrapper is killing every child and exiting 1"
            }
            _ => "the wrapper is exiting: no child is left",
        };
        self.reloads_abandoned(why);
    }

    /// A change that makes no sense is a bug in the core: loud in debug
    /// builds (the property tests), logged and ignored in release, where
    /// staying in a known state serves better than ending the wrapper.
    fn refuse(&mut self, to: &Phase) {
        self.refused += 1;
        let msg = format!(
            "internal error: refusing the change from {:?} to {:?}",
            self.phase, to
        );
        debug_assert!(false, "{msg}");
        say!(self, Error, "{msg}");
    }
}

/// The pid of the helper a state runs, if it runs one.
pub(super) fn helper_of(phase: &Phase) -> Option<nix::unistd::Pid> {
    use super::{Awaiting, Helper, Preflight, Probe};
    match phase {
        Phase::Running(Work::Preflight(Preflight {
            helper: Helper::Running(pid),
            ..
        }))
        | Phase::Running(Work::Awaiting(Awaiting {
            script: Probe::Running(Helper::Running(pid)),
            ..
        }))
        | Phase::Running(Work::Comparing {
            probe: Helper::Running(pid),
            ..
        }) => Some(*pid),
        _ => None,
    }
}

/// The changes that make sense: the phases only go forward (running,
/// shutting down, killing, exiting, done), and a restart's work goes
/// from idle through its steps back to idle.
fn allowed(from: &Phase, to: &Phase) -> bool {
    match (from, to) {
        (Phase::Running(from), Phase::Running(to)) => work_allowed(from, to),
        (Phase::Running(_), Phase::ShuttingDown { .. } | Phase::Draining(_)) => true,
        (Phase::Draining(_), Phase::ShuttingDown { .. }) => true,
        (
            Phase::Running(_),
            Phase::Killing {
                ending: Ending::Failure,
                ..
            },
        ) => true,
        (
            Phase::ShuttingDown { .. },
            Phase::Killing {
                ending: Ending::ForcedShutdown,
                ..
            },
        ) => true,
        (
            Phase::Running(_)
            | Phase::Draining(_)
            | Phase::ShuttingDown { .. }
            | Phase::Killing { .. },
            Phase::Exiting { .. } | Phase::Done(_),
        ) => true,
        (Phase::Exiting { .. }, Phase::Done(_)) => true,
        _ => false,
    }
}

fn work_allowed(from: &Work, to: &Work) -> bool {
    matches!(
        (from, to),
        (_, Work::Idle)
            | (
                Work::Idle,
                Work::Forking { .. }
                    | Work::Comparing { .. }
                    | Work::Preflight(_)
                    | Work::Checking { .. }
            )
            | (
                Work::Checking { .. },
                Work::Forking { .. } | Work::Preflight(_)
            )
            | (Work::Comparing { .. }, Work::Comparing { .. })
            | (Work::Forking { .. }, Work::Awaiting(_))
            | (Work::Awaiting(_) | Work::Retiring(_), Work::Retiring(_))
    )
}
