//! Hot-restart chains Envoy 1.40 cannot survive (docs/envoy-faults.md): a
//! starting epoch whose hot-restart parent exited can never finish its
//! handshake (hopeless), and a serving epoch whose draining parent died
//! aborts 10-15 s later, at its next message to that parent (doomed). The
//! wrapper acts at once rather than wait for either.

use super::policy::Exit;
use super::report::Outcome;
use super::transition::Settle;
use super::{Child, ChildState, Core, Held, Work};

/// What an exit means for the run, once judged.
pub(super) enum Verdict {
    Nothing,
    /// Kill every child and exit 1.
    Teardown,
    /// Nothing serves (or soon will not): start a new generation now.
    HandOff(String),
}

impl Core {
    /// Judge the exit of `child` (already out of the list) for what it does
    /// to its hot-restart chain; None when it does nothing to it.
    pub(super) fn chain_exit(&mut self, child: &Child, exit: Exit) -> Option<Verdict> {
        let chain = |c: &Child| matches!(c.state, ChildState::Ready | ChildState::Draining);
        if child.generation != self.generation || !chain(child) {
            return None;
        }
        // The epoch starting, if it still runs: its hot-restart parent is
        // the newest epoch that started before it and still ran.
        let starting = match self.work() {
            Work::Awaiting(a)
                if a.generation == child.generation
                    && self.children.iter().any(|c| c.pid == a.pid) =>
            {
                Some((a.epoch, a.pid))
            }
            _ => None,
        };
        let newer = self
            .serving()
            .filter(|c| chain(c) && c.epoch > child.epoch)
            .max_by_key(|c| c.epoch)
            .cloned();
        let Some(serving) = newer else {
            let (epoch, pid) = starting?;
            let reason = format!(
                "epoch {epoch} (PID={pid}) can never be ready: its hot-restart parent epoch {} \
                 (PID={}) exited",
                child.epoch, child.pid
            );
            self.give_up_starting(pid, &reason);
            return Some(self.nothing_serves(reason));
        };
        if exit.is_clean() {
            return None;
        }
        let direct = !self
            .serving()
            .any(|c| chain(c) && c.epoch > child.epoch && c.epoch < serving.epoch);
        let how = match direct {
            true => "its hot-restart parent",
            false => "an older epoch of its hot-restart chain,",
        };
        let reason = format!(
            "epoch {} (PID={}) will abort: {how} epoch {} (PID={}) died",
            serving.epoch, serving.pid, child.epoch, child.pid
        );
        say!(
            self,
            Warn,
            "{reason}; Envoy blocks at its next message to it and aborts 10-15 s later, and no \
             hot restart of it can become ready"
        );
        self.failed = true;
        self.wedged = true;
        self.doomed = Some((self.generation, reason.clone()));
        if let Some((_, pid)) = starting {
            let why = format!("{reason}, so no newer epoch can become ready");
            self.give_up_starting(pid, &why);
        }
        if !self.s.handoff {
            return Some(Verdict::Nothing);
        }
        let handing_off = match self.work() {
            Work::Idle => return Some(Verdict::HandOff(reason)),
            Work::Awaiting(a) => a.generation != self.generation,
            Work::Preflight(p) => p.generation != self.generation,
            Work::Forking { generation, .. } | Work::Checking { generation } => {
                *generation != self.generation
            }
            Work::Comparing { .. } | Work::Retiring(_) => false,
        };
        if !handing_off {
            self.held = Some(Held::Handoff(reason));
        }
        Some(Verdict::Nothing)
    }

    /// Why a hot restart of the serving generation is refused, if it is:
    /// its serving epoch is doomed and a new epoch could never be ready.
    pub(super) fn doomed_reason(&self) -> Option<String> {
        match &self.doomed {
            Some((generation, why)) if *generation == self.generation => Some(why.clone()),
            _ => None,
        }
    }

    /// Kill the starting epoch `pid`, which can never be ready, and end its
    /// restart as failed.
    fn give_up_starting(&mut self, pid: nix::unistd::Pid, reason: &str) {
        say!(self, Warn, "{reason}; killing it");
        self.abandon(pid);
        self.failed = true;
        self.set_work(Work::Idle, Settle::Ended(Outcome::Failed(reason)));
    }

    /// No ready child is left: a new generation with --handoff-admin,
    /// else the Python wrapper's teardown.
    fn nothing_serves(&mut self, reason: String) -> Verdict {
        if self.s.handoff {
            Verdict::HandOff(reason)
        } else {
            say!(
                self,
                Warn,
                "no epoch is ready and --handoff-admin is not set: nothing can serve"
            );
            Verdict::Teardown
        }
    }
}
