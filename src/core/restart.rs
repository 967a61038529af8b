//! Restarts: preflight, the new epoch's start, its readiness, and how a
//! restart ends (done, skipped, or failed with --keep-serving), with the
//! helper processes that serve them.

use std::time::Instant;

use nix::unistd::Pid;

use super::{Action, Child, ChildState, Core, Helper, Job, Notify, Probe, Work, later};
use crate::policy::{self, Exit};

impl Core {
    /// A restart begins: run the preflight if there is one, else start the
    /// next epoch at once.
    pub(super) fn begin_restart(&mut self, now: Instant) {
        let epoch = self.next_epoch;
        self.notify(Notify::Reloading(format!("restarting to epoch {epoch}")));
        let Some(script) = &self.s.preflight else {
            self.start_epoch(epoch);
            return;
        };
        log::info!("running preflight {} for epoch {epoch}", script.display());
        self.set_work(Work::Preflight {
            epoch,
            started: now,
            deadline: later(now, self.s.preflight_timeout),
            helper: Helper::Spawning,
        });
        self.actions.push(Action::Spawn(Job::Preflight(epoch)));
    }

    /// Fork and exec the start script for `epoch`.
    pub(super) fn start_epoch(&mut self, epoch: u32) {
        log::info!("forking and execing new child process at epoch {epoch}");
        self.set_work(Work::Forking { epoch });
        self.actions.push(Action::Spawn(Job::Epoch(epoch)));
    }

    pub(super) fn on_spawned(&mut self, job: Job, result: Result<Pid, String>, now: Instant) {
        match (job, result) {
            (Job::Epoch(epoch), Ok(pid)) => self.epoch_started(epoch, pid, now),
            (Job::Epoch(epoch), Err(why)) => {
                log::error!("cannot start epoch {epoch}: {why}");
                self.set_work(Work::Idle);
                self.start_failed(epoch);
            }
            (Job::Preflight(_) | Job::ReadyCheck(_), Ok(pid)) => {
                if !self.adopt_helper(pid) {
                    // Nothing asked for it any more: do not let it run.
                    self.kill_group(pid);
                }
            }
            (Job::Preflight(epoch), Err(why)) => {
                log::error!("cannot run preflight: {why}");
                self.restart_skipped(epoch, "its preflight could not run");
            }
            (Job::ReadyCheck(_), Err(why)) => {
                log::error!("cannot run ready check: {why}");
                if let Work::Awaiting {
                    epoch,
                    pid,
                    started,
                    deadline,
                    script: Probe::Running(Helper::Spawning),
                } = self.work()
                {
                    self.set_work(Work::Awaiting {
                        epoch,
                        pid,
                        started,
                        deadline,
                        script: Probe::Due(later(now, self.s.ready_interval)),
                    });
                }
            }
        }
    }

    /// The helper that was asked for has started: remember its pid.
    fn adopt_helper(&mut self, pid: Pid) -> bool {
        let work = match self.work() {
            Work::Preflight {
                epoch,
                started,
                deadline,
                helper: Helper::Spawning,
            } => Work::Preflight {
                epoch,
                started,
                deadline,
                helper: Helper::Running(pid),
            },
            Work::Awaiting {
                epoch,
                pid: child,
                started,
                deadline,
                script: Probe::Running(Helper::Spawning),
            } => Work::Awaiting {
                epoch,
                pid: child,
                started,
                deadline,
                script: Probe::Running(Helper::Running(pid)),
            },
            _ => return false,
        };
        self.set_work(work);
        true
    }

    fn epoch_started(&mut self, epoch: u32, pid: Pid, now: Instant) {
        log::info!("forked new child process with PID={pid}");
        let checked = self.s.ready_check.is_some();
        self.children.push(Child {
            pid,
            epoch,
            state: if checked {
                ChildState::Starting
            } else {
                ChildState::Ready
            },
        });
        self.next_epoch = epoch + 1;
        if !checked {
            self.restart_done();
            return;
        }
        self.set_work(Work::Awaiting {
            epoch,
            pid,
            started: now,
            deadline: later(now, self.s.ready_timeout),
            script: Probe::Due(now),
        });
        // The first check runs now rather than at the next wake-up.
        self.run_due_probes(now);
    }

    /// A start that failed before any child ran.
    fn start_failed(&mut self, epoch: u32) {
        self.failed = true;
        if self.children.is_empty() {
            // Epoch 0, or every other child is gone: nothing to keep.
            self.finish(crate::policy::Ending::Failure);
        } else if self.s.keep_serving && self.live().next().is_some() {
            self.restart_failed(epoch, "its start script could not be executed");
        } else {
            self.teardown();
        }
    }

    /// The restart is complete (the new epoch runs, and is ready if that is
    /// checked). The newest live epoch serves; the older ones drain.
    pub(super) fn restart_done(&mut self) {
        self.set_work(Work::Idle);
        let newest = self.live().last().map(|c| c.pid);
        for c in &mut self.children {
            if c.state != ChildState::Abandoned {
                c.state = if Some(c.pid) == newest {
                    ChildState::Ready
                } else {
                    ChildState::Draining
                };
            }
        }
        self.notify_ready();
        if let (true, Some(old)) = (self.held, self.draining()) {
            log::info!(
                "the held restart waits until epoch {} (PID={}) has drained and exited",
                old.epoch,
                old.pid
            );
        }
    }

    /// A restart that did not start a new epoch: the serving children are
    /// untouched and the epoch number stays free.
    pub(super) fn restart_skipped(&mut self, epoch: u32, why: &str) {
        self.set_work(Work::Idle);
        log::error!(
            "restart to epoch {epoch} skipped because {why}; {}",
            self.serving_description()
        );
        self.notify_ready();
    }

    /// With --keep-serving: a new epoch failed while older ones run.
    pub(super) fn restart_failed(&mut self, epoch: u32, why: &str) {
        match self.work() {
            Work::Preflight { epoch: checked, .. } => {
                // The preflight ran for an epoch that will not come next
                // now: stop it and run the restart again for the right epoch.
                self.kill_helper();
                self.held = true;
                log::info!(
                    "cancelled the preflight for epoch {checked}; the restart will be retried"
                );
            }
            // The awaited epoch exited in the same batch as an older one
            // judged first: its ready check must not be left running.
            Work::Awaiting { .. } => self.kill_helper(),
            Work::Idle | Work::Forking { .. } => {}
        }
        self.failed = true;
        self.next_epoch = policy::next_epoch_after_failure(self.live().map(|c| c.epoch), epoch);
        log::warn!(
            "restart to epoch {epoch} failed because {why}; {} (--keep-serving), \
             the next restart uses epoch {}",
            self.serving_description(),
            self.next_epoch
        );
        self.set_work(Work::Idle);
        self.notify_ready();
    }

    /// Is a new restart to wait? While one is under way (preflight, ready
    /// check), while a killed epoch is not reaped yet, and with
    /// --hold-while-draining while an older epoch drains.
    pub(super) fn restart_blocked(&self) -> bool {
        self.work() != Work::Idle || self.draining().is_some() || self.abandoned().is_some()
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
        if self.s.hold_while_draining && self.live().count() > 1 {
            self.live().next()
        } else {
            None
        }
    }

    /// What a held SIGHUP waits for, for the log.
    pub(super) fn describe_wait(&self) -> String {
        let work = self.work();
        if let (Work::Idle, Some(old)) = (work, self.draining()) {
            return format!(
                "epoch {} (PID={}) has drained and exited",
                old.epoch, old.pid
            );
        }
        if let (Work::Idle, Some(killed)) = (work, self.abandoned()) {
            return format!(
                "epoch {} (PID={}) has been reaped",
                killed.epoch, killed.pid
            );
        }
        match work {
            Work::Preflight { epoch, .. } => format!("the preflight for epoch {epoch} is done"),
            Work::Awaiting { epoch, pid, .. } => format!("epoch {epoch} (PID={pid}) is ready"),
            Work::Forking { .. } | Work::Idle => "the current restart is done".to_string(),
        }
    }

    // ----- helpers -------------------------------------------------------

    /// The running helper, if any.
    pub(super) fn helper_pid(&self) -> Option<Pid> {
        match self.work() {
            Work::Preflight {
                helper: Helper::Running(pid),
                ..
            }
            | Work::Awaiting {
                script: Probe::Running(Helper::Running(pid)),
                ..
            } => Some(pid),
            _ => None,
        }
    }

    /// If `pid` is the running helper, note its exit, to be judged once the
    /// rest of its batch has been. Returns whether it was.
    pub(super) fn helper_reaped(&mut self, reaped: Pid, exit: Exit) -> bool {
        let work = match self.work() {
            Work::Preflight {
                epoch,
                started,
                deadline,
                helper: Helper::Running(pid),
            } if pid == reaped => Work::Preflight {
                epoch,
                started,
                deadline,
                helper: Helper::Exited(pid, exit),
            },
            Work::Awaiting {
                epoch,
                pid: child,
                started,
                deadline,
                script: Probe::Running(Helper::Running(pid)),
            } if pid == reaped => Work::Awaiting {
                epoch,
                pid: child,
                started,
                deadline,
                script: Probe::Running(Helper::Exited(pid, exit)),
            },
            _ => return false,
        };
        self.set_work(work);
        // Whatever the helper left running in its process group goes with
        // it. Its pid cannot have been reused yet: the group keeps it while
        // any member lives, and this runs in the same turn as the reaping.
        self.actions.push(Action::KillGroup(reaped));
        true
    }

    /// SIGKILL a helper's group; it is reaped later.
    fn kill_group(&mut self, pid: Pid) {
        self.actions.push(Action::KillGroup(pid));
        self.killed_helpers.push(pid);
    }

    /// Stop the restart in flight: SIGKILL its helper (unless it has exited
    /// already) and forget the work.
    pub(super) fn kill_helper(&mut self) {
        if let Some(pid) = self.helper_pid() {
            self.kill_group(pid);
        }
        self.set_work(Work::Idle);
    }

    /// A helper reaped in the last batch, judged now.
    pub(super) fn judge_helper(&mut self, now: Instant) {
        match self.work() {
            Work::Preflight {
                epoch,
                started,
                helper: Helper::Exited(pid, exit),
                ..
            } => {
                if !exit.is_clean() {
                    log::error!(
                        "preflight for epoch {epoch} (PID={pid}) failed: {}",
                        super::describe(exit)
                    );
                    self.restart_skipped(epoch, "its preflight failed");
                    return;
                }
                log::info!(
                    "preflight for epoch {epoch} passed in {} ms",
                    now.saturating_duration_since(started).as_millis()
                );
                self.set_work(Work::Idle);
                if self.live().next().is_some() {
                    self.start_epoch(epoch);
                }
                // else: the serving epoch is gone meanwhile; nothing to
                // hot-restart from, and the wrapper is about to end.
            }
            Work::Awaiting {
                epoch,
                pid,
                started,
                deadline,
                script: Probe::Running(Helper::Exited(check, exit)),
            } => {
                let script = if exit.is_clean() {
                    Probe::Passed
                } else {
                    log::debug!(
                        "ready check for epoch {epoch} (PID={pid}, check PID={check}): {}",
                        super::describe(exit)
                    );
                    Probe::Due(later(now, self.s.ready_interval))
                };
                self.set_work(Work::Awaiting {
                    epoch,
                    pid,
                    started,
                    deadline,
                    script,
                });
                self.check_ready(now);
            }
            _ => {}
        }
    }

    /// The awaited epoch is ready once every probe has passed.
    fn check_ready(&mut self, now: Instant) {
        if let Work::Awaiting {
            epoch,
            pid,
            started,
            script: Probe::Passed,
            ..
        } = self.work()
        {
            log::info!(
                "epoch {epoch} (PID={pid}) is ready after {} ms",
                now.saturating_duration_since(started).as_millis()
            );
            self.restart_done();
        }
    }

    /// Start every probe whose time has come.
    pub(super) fn run_due_probes(&mut self, now: Instant) {
        if let Work::Awaiting {
            epoch,
            pid,
            started,
            deadline,
            script: Probe::Due(at),
        } = self.work()
            && now >= at
        {
            self.set_work(Work::Awaiting {
                epoch,
                pid,
                started,
                deadline,
                script: Probe::Running(Helper::Spawning),
            });
            self.actions.push(Action::Spawn(Job::ReadyCheck(epoch)));
        }
    }

    /// Deadlines of the restart in flight.
    pub(super) fn restart_deadlines(&mut self, now: Instant) {
        match self.work() {
            Work::Preflight {
                epoch,
                deadline,
                helper,
                ..
            } if now >= deadline => {
                self.kill_helper();
                let pid = match helper {
                    Helper::Running(pid) | Helper::Exited(pid, _) => pid.to_string(),
                    Helper::Spawning => "?".into(),
                };
                log::error!(
                    "preflight for epoch {epoch} (PID={pid}) timed out after {} s",
                    self.s.preflight_timeout.as_secs_f64()
                );
                self.restart_skipped(epoch, "its preflight timed out");
            }
            Work::Awaiting {
                epoch,
                pid,
                deadline,
                ..
            } if now >= deadline => {
                self.kill_helper();
                log::error!(
                    "epoch {epoch} (PID={pid}) not ready after {} s, killing it",
                    self.s.ready_timeout.as_secs_f64()
                );
                self.ready_timed_out(pid, epoch);
            }
            Work::Awaiting { .. } => self.run_due_probes(now),
            _ => {}
        }
    }

    /// The ready check gave up on `pid`: kill it; that is a failed restart.
    fn ready_timed_out(&mut self, pid: Pid, epoch: u32) {
        let Some(child) = self.children.iter_mut().find(|c| c.pid == pid) else {
            return;
        };
        child.state = ChildState::Abandoned;
        log::warn!("force killing PID={pid}");
        self.actions
            .push(Action::Signal(pid, nix::sys::signal::Signal::SIGKILL));
        if self.s.keep_serving && self.live().next().is_some() {
            self.restart_failed(epoch, "it was not ready in time");
        } else {
            self.failed = true;
            self.teardown();
        }
    }
}
