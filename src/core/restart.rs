//! Restarts: the preflight, the new epoch's start, and how a restart ends
//! (done, skipped, or failed with --keep-serving); the helper processes
//! that serve them are in `helpers.rs`.

use nix::unistd::Pid;

use super::policy::{self, Ending};
use super::report::Outcome;
use super::transition::Settle;
use super::{
    Action, Awaiting, Child, ChildState, Core, Helper, Job, JobKind, Notify, Preflight, Probe,
    Work, later,
};

impl Core {
    /// A restart begins: run the preflight if there is one, else start the
    /// next epoch at once.
    pub(super) fn begin_restart(&mut self) {
        if let (true, Some(why)) = (self.s.handoff, self.doomed_reason()) {
            self.begin_handoff(&why);
        } else if let Some(why) = self.doomed_reason() {
            // A new epoch's handshake would block the doomed one at once,
            // and the new one could never be ready.
            let epoch = self.next_epoch;
            self.reload_begun(epoch);
            // RELOADING=1 as for any skipped restart, so that systemd's
            // reload ends with the READY=1 that follows.
            self.notify(Notify::Reloading(format!("restarting to epoch {epoch}")));
            self.restart_skipped(epoch, &Self::doomed_restart(&why, false));
        } else if self.s.handoff && self.wedged {
            let why = "hot restart is wedged: a new epoch died before it was ready, and Envoy \
                       refuses every further hot restart of this generation \
                       (envoyproxy/envoy #33446)";
            self.begin_handoff(why);
        } else if self.s.handoff && self.s.envoy_bin {
            self.begin_comparing();
        } else {
            let (epoch, generation) = (self.next_epoch, self.generation);
            self.begin_restart_to(epoch, generation);
        }
    }

    /// Why a hot restart of a doomed generation is skipped.
    pub(super) fn doomed_restart(why: &str, handoff: bool) -> String {
        match handoff {
            true => {
                format!("{why} (a new epoch could never be ready; a new generation takes over)")
            }
            false => format!(
                "{why} (a new epoch could never be ready; without --handoff-admin only a restart \
                 of the service helps)"
            ),
        }
    }

    /// Restart to `epoch` of `generation` (a new generation: a handoff):
    /// run the preflight if there is one, else start it at once.
    pub(super) fn begin_restart_to(&mut self, epoch: u32, generation: u32) {
        let now = self.now;
        self.reload_begun(epoch);
        self.notify(Notify::Reloading(format!("restarting to epoch {epoch}")));
        let Some(script) = &self.s.preflight else {
            self.start_epoch(epoch, generation);
            return;
        };
        say!(
            self,
            Info,
            "running preflight {} for epoch {epoch}",
            script.display()
        );
        self.set_work(
            Work::Preflight(Preflight {
                epoch,
                generation,
                started: now,
                deadline: later(now, self.s.preflight_timeout),
                helper: Helper::Spawning,
            }),
            Settle::Keep,
        );
        let job = Job::new(JobKind::Preflight, epoch, generation);
        self.actions.push(Action::Spawn(job));
    }

    /// Fork and exec the start script for `epoch` of `generation`.
    pub(super) fn start_epoch(&mut self, epoch: u32, generation: u32) {
        say!(
            self,
            Info,
            "forking and execing new child process at epoch {epoch}"
        );
        if self.s.handoff {
            say!(
                self,
                Info,
                "epoch {epoch} is of generation {generation} (slot {})",
                super::slot(generation)
            );
        }
        self.set_work(Work::Forking { epoch, generation }, Settle::Keep);
        let job = Job::new(JobKind::Epoch, epoch, generation);
        self.actions.push(Action::Spawn(job));
    }

    pub(super) fn on_spawned(&mut self, job: Job, result: Result<Pid, String>) {
        let now = self.now;
        let (epoch, generation) = (job.epoch, job.generation);
        match (job.kind, result) {
            (JobKind::Epoch, Ok(pid)) => self.epoch_started(epoch, generation, pid),
            (JobKind::Epoch, Err(why)) => {
                say!(self, Error, "cannot start epoch {epoch}: {why}");
                self.set_work(Work::Idle, Settle::Keep);
                if generation != self.generation {
                    self.failed = true;
                    self.handoff_failed(generation, "its start script could not be executed");
                } else {
                    self.start_failed(epoch);
                }
            }
            (JobKind::Preflight | JobKind::ReadyCheck | JobKind::VersionProbe, Ok(pid)) => {
                if let Some(helper) = self.helper_mut()
                    && *helper == Helper::Spawning
                {
                    *helper = Helper::Running(pid);
                } else {
                    // Nothing asked for it any more: do not let it run.
                    self.kill_group(pid);
                }
            }
            (JobKind::Preflight, Err(why)) => {
                say!(self, Error, "cannot run preflight: {why}");
                self.restart_skipped(epoch, "its preflight could not run");
            }
            (JobKind::VersionProbe, Err(why)) => self.version_known(Some(Err(why)), None),
            (JobKind::ReadyCheck, Err(why)) => {
                say!(self, Error, "cannot run ready check: {why}");
                let interval = self.s.ready_interval;
                if let Some(a) = self.awaiting_mut() {
                    a.script = Probe::Due(later(now, interval));
                }
            }
        }
    }

    fn epoch_started(&mut self, epoch: u32, generation: u32, pid: Pid) {
        let now = self.now;
        say!(self, Info, "forked new child process with PID={pid}");
        let checked = self.readiness_checked();
        self.children.push(Child {
            pid,
            epoch,
            generation,
            state: if checked {
                ChildState::Starting
            } else {
                ChildState::Ready
            },
        });
        if generation == self.generation {
            self.next_epoch = epoch + 1;
        }
        if !checked {
            self.restart_done();
            return;
        }
        let probe = |on: bool| if on { Probe::Due(now) } else { Probe::Off };
        self.set_work(
            Work::Awaiting(Awaiting {
                epoch,
                generation,
                pid,
                started: now,
                deadline: later(now, self.s.ready_timeout),
                script: probe(self.s.ready_check.is_some()),
                admin: probe(self.s.envoy_admin),
                admin_said: None,
            }),
            Settle::Keep,
        );
        // The first checks run now rather than at the next wake-up.
        self.run_due_probes();
    }

    /// A start that failed before any child ran.
    fn start_failed(&mut self, epoch: u32) {
        self.failed = true;
        if self.children.is_empty() {
            // Epoch 0, or every other child is gone: nothing to keep.
            self.finish(Ending::Failure);
        } else if self.s.keep_serving && self.serving().next().is_some() {
            self.restart_failed(epoch, "its start script could not be executed");
        } else {
            self.teardown();
        }
    }

    /// The restart is complete (the new epoch runs, and is ready if that is
    /// checked). The newest live epoch serves; the older ones drain.
    pub(super) fn restart_done(&mut self) {
        let newest = self.serving().last().map(|c| c.pid);
        let generation = self.generation;
        for c in &mut self.children {
            if c.generation == generation
                && matches!(c.state, ChildState::Starting | ChildState::Ready)
            {
                c.state = if Some(c.pid) == newest {
                    ChildState::Ready
                } else {
                    ChildState::Draining
                };
            }
        }
        let detail = self.serving().last().map(|c| {
            if c.state == ChildState::Ready && self.readiness_checked() {
                format!("epoch {} (PID={}) is ready", c.epoch, c.pid)
            } else {
                format!("epoch {} (PID={}) runs", c.epoch, c.pid)
            }
        });
        let settle = match &detail {
            Some(detail) => Settle::Ended(Outcome::Done(detail)),
            None => Settle::Keep,
        };
        self.set_work(Work::Idle, settle);
        if let (true, Some(old)) = (self.held.is_some(), self.draining()) {
            say!(
                self,
                Info,
                "the held restart waits until epoch {} (PID={}) has drained and exited",
                old.epoch,
                old.pid
            );
        }
    }

    /// A restart that did not start a new epoch: the serving children are
    /// untouched and the epoch number stays free.
    pub(super) fn restart_skipped(&mut self, epoch: u32, why: &str) {
        self.restart_skipped_because(epoch, why, "");
    }

    /// The same, with `detail` (what the preflight said) added to the
    /// reason reported on the control socket; the log line keeps its words.
    pub(super) fn restart_skipped_because(&mut self, epoch: u32, why: &str, detail: &str) {
        let reason = format!("restart to epoch {epoch} skipped because {why}");
        say!(self, Error, "{reason}; {}", self.serving_description());
        let reported = format!("{reason}{detail}");
        self.set_work(Work::Idle, Settle::Ended(Outcome::Skipped(&reported)));
    }

    /// With --keep-serving: a new epoch failed while older ones run.
    pub(super) fn restart_failed(&mut self, epoch: u32, why: &str) {
        let retried = match self.work() {
            Work::Preflight(_) | Work::Comparing { .. } => {
                // The preflight (or the version comparison) ran for an epoch
                // that will not come next now: stop it and run the restart
                // again for the right epoch. A held handoff stays a handoff:
                // it absorbs a restart.
                let retry = match self.work() {
                    Work::Preflight(p) if p.generation != self.generation => {
                        super::Held::Handoff("the handoff is retried".into())
                    }
                    _ => super::Held::Restart,
                };
                let what = match self.work() {
                    Work::Preflight(p) => format!("the preflight for epoch {}", p.epoch),
                    _ => "the hot-restart version comparison".to_string(),
                };
                self.held = match self.held.take() {
                    Some(super::Held::Handoff(why)) => Some(super::Held::Handoff(why)),
                    _ => Some(retry),
                };
                say!(self, Info, "cancelled {what}; the restart will be retried");
                true
            }
            // The awaited epoch's ready check goes with the work (it may
            // still run when an older epoch of the same batch was judged
            // first).
            _ => false,
        };
        self.failed = true;
        self.next_epoch = policy::next_epoch_after_failure(self.serving().map(|c| c.epoch), epoch);
        say!(
            self,
            Warn,
            "restart to epoch {epoch} failed because {why}; {} (--keep-serving), \
             the next restart uses epoch {}",
            self.serving_description(),
            self.next_epoch
        );
        let reason = format!("restart to epoch {epoch} failed because {why}");
        let settle = match retried {
            true => Settle::Postponed,
            false => Settle::Ended(Outcome::Failed(&reason)),
        };
        self.set_work(Work::Idle, settle);
    }

    /// Is a new epoch's readiness checked (script or Envoy's admin)?
    pub(super) fn readiness_checked(&self) -> bool {
        self.s.ready_check.is_some() || self.s.envoy_admin
    }

    /// Is a new restart to wait? While one is under way (preflight, ready
    /// check), while a killed epoch is not reaped yet, and with
    /// --hold-while-draining while an older epoch drains.
    pub(super) fn restart_blocked(&self) -> bool {
        *self.work() != Work::Idle || self.draining().is_some() || self.abandoned().is_some()
    }

    /// A killed epoch not reaped yet: its Envoy may still hold the epoch's
    /// hot-restart socket, so the same epoch number must wait for it.
    fn abandoned(&self) -> Option<&Child> {
        self.children
            .iter()
            .find(|c| c.state == ChildState::Abandoned)
    }

    /// The oldest epoch still draining, when --hold-while-draining makes it
    /// hold restarts back.
    fn draining(&self) -> Option<&Child> {
        if self.s.hold_while_draining && self.serving().count() > 1 {
            self.serving().next()
        } else {
            None
        }
    }

    /// What a held SIGHUP waits for, for the log.
    pub(super) fn describe_wait(&self) -> String {
        let idle = *self.work() == Work::Idle;
        if let (true, Some(old)) = (idle, self.draining()) {
            return format!(
                "epoch {} (PID={}) has drained and exited",
                old.epoch, old.pid
            );
        }
        if let (true, Some(killed)) = (idle, self.abandoned()) {
            return format!(
                "epoch {} (PID={}) has been reaped",
                killed.epoch, killed.pid
            );
        }
        match self.work() {
            Work::Preflight(p) => format!("the preflight for epoch {} is done", p.epoch),
            Work::Awaiting(a) => format!("epoch {} (PID={}) is ready", a.epoch, a.pid),
            Work::Comparing { .. } => "the hot-restart versions are compared".to_string(),
            Work::Checking { generation } => {
                format!("generation {generation}'s admin address has been checked")
            }
            Work::Retiring(r) => format!("generation {} has drained and exited", r.from),
            Work::Forking { .. } | Work::Idle => "the current restart is done".to_string(),
        }
    }

    /// SIGKILL a child given up on; its exit will decide nothing. Returns
    /// whether it was ours.
    pub(super) fn abandon(&mut self, pid: Pid) -> bool {
        let Some(child) = self.children.iter_mut().find(|c| c.pid == pid) else {
            return false;
        };
        child.state = ChildState::Abandoned;
        say!(self, Warn, "force killing PID={pid}");
        self.actions
            .push(Action::Signal(pid, nix::sys::signal::Signal::SIGKILL));
        true
    }

    /// Deadlines of the restart in flight.
    pub(super) fn restart_deadlines(&mut self) {
        let now = self.now;
        match self.work().clone() {
            Work::Preflight(p) if now >= p.deadline => {
                let pid = match p.helper {
                    Helper::Running(pid) | Helper::Exited(pid, _) => pid.to_string(),
                    Helper::Spawning => "?".into(),
                };
                say!(
                    self,
                    Error,
                    "preflight for epoch {} (PID={pid}) timed out after {} s",
                    p.epoch,
                    self.s.preflight_timeout.as_secs_f64()
                );
                self.restart_skipped(p.epoch, "its preflight timed out");
            }
            Work::Awaiting(a) if now >= a.deadline => {
                // Given up on: the ready check goes now, the reload is
                // settled below.
                self.drop_work();
                let said = match &a.admin_said {
                    Some(said) => format!(" (Envoy's admin said: {said})"),
                    None => String::new(),
                };
                say!(
                    self,
                    Error,
                    "epoch {} (PID={}) not ready after {} s, killing it{said}",
                    a.epoch,
                    a.pid,
                    self.s.ready_timeout.as_secs_f64()
                );
                if a.generation != self.generation {
                    self.abandon(a.pid);
                    self.failed = true;
                    self.handoff_failed(a.generation, "it was not LIVE in time");
                } else {
                    self.ready_timed_out(a.pid, a.epoch);
                }
            }
            Work::Awaiting(_) => self.run_due_probes(),
            Work::Comparing {
                deadline,
                binary,
                running,
                ..
            } if now >= deadline => {
                let missing = || Err("no answer in time".to_string());
                self.compared(
                    binary.unwrap_or_else(missing),
                    running.unwrap_or_else(missing),
                );
            }
            Work::Retiring(r) => self.retiring_deadlines(r),
            _ => {}
        }
    }

    /// The ready check gave up on `pid`: kill it; that is a failed restart.
    fn ready_timed_out(&mut self, pid: Pid, epoch: u32) {
        if !self.abandon(pid) {
            return;
        }
        // A new Envoy killed before it was LIVE wedges hot restart as one
        // that died (envoyproxy/envoy #33446).
        self.wedged = true;
        if self.s.keep_serving && self.serving().next().is_some() {
            self.restart_failed(epoch, "it was not ready in time");
        } else {
            self.failed = true;
            self.teardown();
        }
    }
}
