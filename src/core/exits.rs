//! Exits and endings: judging reaped processes, the teardown after a
//! failure, the graceful shutdown, and the deadlines that end each of them.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::doom::Verdict;
use super::policy::{Ending, Exit};
use super::report::Outcome;
use super::transition::Settle;
use super::{Action, ChildState, Core, KILL_REAP_WAIT, Phase, Work, describe, later};

impl Core {
    /// One SIGCHLD's worth of reaped processes: our children, helpers, and
    /// orphans re-parented to us.
    pub(super) fn on_reaped(&mut self, batch: Vec<(Pid, Exit)>) {
        let helper = self.helper_pid();
        // The Python wrapper logs every SIGCHLD; ready checks exit several
        // times a second, so their exits alone are logged only at debug.
        let only_helpers = batch
            .iter()
            .all(|(pid, _)| Some(*pid) == helper || self.killed_helpers.contains(pid));
        if self.phase.is_running() && !batch.is_empty() && !only_helpers {
            say!(self, Info, "got SIGCHLD");
        } else {
            say!(self, Debug, "got SIGCHLD");
        }
        // Every child of the batch leaves the list before any is judged, so
        // that no judgement names a child of the same batch as serving.
        let mut exited = Vec::new();
        for (pid, exit) in batch {
            if let Some(i) = self.children.iter().position(|c| c.pid == pid) {
                exited.push((self.children.remove(i), exit));
            } else if let Some(i) = self.killed_helpers.iter().position(|p| *p == pid) {
                self.killed_helpers.remove(i);
                say!(
                    self,
                    Debug,
                    "killed helper PID={pid} reaped ({})",
                    describe(exit)
                );
            } else if !self.helper_reaped(pid, exit) {
                say!(
                    self,
                    Debug,
                    "reaped PID={pid} ({}), not a child we track",
                    describe(exit)
                );
            }
        }
        // Children first, then the helper: a helper's exit can start an
        // epoch, which must not happen in a batch that needs a teardown.
        let (mut teardown, mut rescue) = (false, None);
        for (child, exit) in exited {
            match self.judge_exit(child, exit) {
                Verdict::Nothing => {}
                Verdict::Teardown => teardown = true,
                Verdict::HandOff(why) => rescue = Some(why),
            }
        }
        if teardown && self.phase.is_running() {
            self.teardown();
        } else if let Some(why) = rescue
            && *self.work() == Work::Idle
        {
            // Nothing serves: a new generation now, which also answers a
            // held request (its clients wait for this handoff).
            self.held = None;
            self.begin_handoff(&why);
        }
        self.check_retired();
        self.judge_helper();
    }

    /// Judge one child's exit: what it means for the run.
    fn judge_exit(&mut self, child: super::Child, exit: Exit) -> Verdict {
        let pid = child.pid;
        if !self.phase.is_running() || child.state == ChildState::Abandoned {
            say!(
                self,
                Debug,
                "PID={pid} (epoch {}): {}",
                child.epoch,
                describe(exit)
            );
            return Verdict::Nothing;
        }
        if child.state == ChildState::Retiring {
            self.retired(child, exit);
            return Verdict::Nothing;
        }
        match exit {
            Exit::Code(0) => say!(self, Info, "PID={pid} exited with code=0"),
            Exit::Code(code) => say!(self, Warn, "PID={pid} exited with code={code}"),
            Exit::Signal(sig) => say!(self, Warn, "PID={pid} was killed with signal={sig}"),
        }
        let awaited = matches!(self.work(), Work::Awaiting(a) if a.pid == pid);
        if child.generation != self.generation {
            // The new generation of a handoff, before it was LIVE: the old
            // one keeps serving, whatever the flags.
            let why = format!(
                "PID={pid} {} before it was LIVE (if it failed at once: does the start script \
                 use HOT_RESTARTER_SLOT for --base-id and the admin address?)",
                describe(exit)
            );
            self.failed |= !exit.is_clean();
            self.handoff_failed(child.generation, &why);
            return Verdict::Nothing;
        }
        let fatal = !exit.is_clean() && !self.s.keep_serving;
        if !fatal && let Some(verdict) = self.chain_exit(&child, exit) {
            return verdict;
        }
        if exit.is_clean() {
            if awaited {
                // It finished before it was ever ready: nothing to wait for,
                // and the restart did not take (the older epochs serve on).
                let reason = format!(
                    "restart to epoch {} failed because PID={pid} exited with code=0 before it \
                     was ready",
                    child.epoch
                );
                say!(self, Warn, "{reason}; {}", self.serving_description());
                self.set_work(Work::Idle, Settle::Ended(Outcome::Failed(&reason)));
            }
            return Verdict::Nothing;
        }
        self.failed = true;
        if self.s.keep_serving && self.live().next().is_none() && self.take_back_retiring(&child) {
            return Verdict::Nothing;
        }
        if !self.s.keep_serving || self.live().next().is_none() {
            return Verdict::Teardown;
        }
        let starting = match self.work() {
            Work::Awaiting(a) if a.generation != self.generation => Some(a.generation),
            _ => None,
        };
        if let Some(starting) = starting {
            // The serving generation is being handed off: a failure of one
            // of its children is not a failed restart, and the handoff goes
            // on (--keep-serving); once the new generation is LIVE it serves.
            // A later hot restart of this one follows its newest live epoch.
            let serving = self.serving().map(|c| c.epoch);
            self.next_epoch = crate::core::policy::next_epoch_after_failure(serving, child.epoch);
            say!(
                self,
                Warn,
                "generation {} epoch {} (PID={pid}) failed while generation {starting} starts; \
                 the handoff goes on (--keep-serving)",
                child.generation,
                child.epoch,
            );
            return Verdict::Nothing;
        }
        let newest = self.serving().map(|c| c.epoch).max().unwrap_or(0);
        if child.epoch > newest || self.serving().next().is_none() {
            // Not ready yet: a new epoch died before going live (its
            // restart may be over already, failed by an older epoch judged
            // first in the same batch).
            if child.state == ChildState::Starting {
                self.wedged = true;
            }
            // envoyproxy/envoy #33446: once a new Envoy has died before
            // going live, Envoy 1.40 refuses every later hot restart of the
            // surviving generation, whatever epoch number is tried.
            say!(
                self,
                Warn,
                "epoch {} (PID={pid}) died before taking over; if Envoy itself had started, \
                 every further hot restart of the serving Envoy will fail with \"previous envoy \
                 process is still initializing\" until the service is restarted cold \
                 (envoyproxy/envoy #33446); --preflight catches bad configs before a new Envoy \
                 starts",
                child.epoch
            );
            self.restart_failed(child.epoch, &format!("PID={pid} {}", describe(exit)));
        } else {
            say!(
                self,
                Warn,
                "epoch {} (PID={pid}) failed while newer epochs run; {} (--keep-serving)",
                child.epoch,
                self.serving_description()
            );
        }
        Verdict::Nothing
    }

    /// End the run once no child is left (and say why).
    pub(super) fn check_children_left(&mut self) {
        // A new generation about to start needs no living parent: its
        // admin address being checked, or its epoch 0 in preflight or being
        // forked, keeps the wrapper running with no child at all.
        let starting = match self.work() {
            Work::Forking { .. } | Work::Checking { .. } => true,
            Work::Preflight(p) => p.generation != self.generation,
            _ => false,
        };
        if !self.children.is_empty() || starting {
            return;
        }
        match self.phase.clone() {
            Phase::Running(_) => {
                say!(self, Warn, "exiting due to lack of child processes");
                self.finish(if self.failed {
                    Ending::Failure
                } else {
                    Ending::NoChildrenLeft
                });
            }
            Phase::Draining(_) => {
                say!(self, Info, "all children exited while draining");
                self.finish(Ending::GracefulShutdown);
            }
            Phase::ShuttingDown { .. } => {
                say!(self, Info, "all children exited cleanly");
                self.finish(Ending::GracefulShutdown);
            }
            Phase::Killing { ending, .. } => {
                if ending == Ending::Failure {
                    say!(self, Warn, "exiting due to lack of child processes");
                }
                self.finish(ending);
            }
            Phase::Exiting { ending, .. } if self.killed_helpers.is_empty() => {
                self.set_state(Phase::Done(ending), Settle::Keep);
            }
            Phase::Exiting { .. } | Phase::Done(_) => {}
        }
    }

    /// A child failed: SIGKILL every other child, then exit 1 once they are
    /// reaped.
    pub(super) fn teardown(&mut self) {
        say!(
            self,
            Warn,
            "Due to abnormal exit, force killing all child processes and exiting"
        );
        self.force_kill_all(Ending::Failure);
    }

    fn force_kill_all(&mut self, ending: Ending) {
        let killing = Phase::Killing {
            deadline: later(self.now, KILL_REAP_WAIT),
            ending,
        };
        self.set_state(killing, Settle::Keep);
        for i in 0..self.children.len() {
            let pid = self.children[i].pid;
            say!(self, Warn, "force killing PID={pid}");
            self.actions.push(Action::Signal(pid, Signal::SIGKILL));
        }
    }

    /// SIGTERM/SIGINT: pass SIGTERM on and wait up to the term wait.
    pub(super) fn shutdown(&mut self) {
        let shutting_down = Phase::ShuttingDown {
            deadline: later(self.now, self.s.term_wait),
        };
        self.set_state(shutting_down, Settle::Keep);
        for i in 0..self.children.len() {
            let pid = self.children[i].pid;
            say!(self, Info, "sending TERM to PID={pid}");
            self.actions.push(Action::Signal(pid, Signal::SIGTERM));
        }
    }

    /// No child is left: stop whatever helper runs, and be done once every
    /// killed helper has been reaped.
    pub(super) fn finish(&mut self, ending: Ending) {
        self.set_state(Phase::Done(ending), Settle::Keep);
    }

    /// Act on every deadline that has passed.
    pub(super) fn on_time(&mut self) {
        let now = self.now;
        match self.phase.clone() {
            Phase::ShuttingDown { deadline } if now >= deadline => {
                for c in &self.children {
                    say!(
                        self,
                        Info,
                        "child PID={} did not exit cleanly, killing",
                        c.pid
                    );
                }
                self.force_kill_all(Ending::ForcedShutdown);
            }
            Phase::Killing { deadline, ending } if now >= deadline => {
                for c in &self.children {
                    say!(
                        self,
                        Error,
                        "PID={} was not reaped after SIGKILL, exiting without it",
                        c.pid
                    );
                }
                self.children.clear();
                self.finish(ending);
            }
            Phase::Exiting { deadline, ending } if now >= deadline => {
                for pid in &self.killed_helpers {
                    say!(
                        self,
                        Error,
                        "helper PID={pid} was not reaped after SIGKILL, exiting without it"
                    );
                }
                self.killed_helpers.clear();
                self.set_state(Phase::Done(ending), Settle::Keep);
            }
            Phase::Running(_) => self.restart_deadlines(),
            Phase::Draining(_) => self.stop_drain_time(),
            _ => {}
        }
    }
}

impl Phase {
    pub(super) fn is_running(&self) -> bool {
        matches!(self, Phase::Running(_))
    }
}
