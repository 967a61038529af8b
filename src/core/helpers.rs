//! The helper processes of a restart (the preflight and the ready-check
//! script): which one runs, noting its exit within a batch, killing its
//! process group, and judging its exit once the batch's children have been.

use nix::unistd::Pid;

use super::Exit;
use super::policy::last_words;
use super::{Action, Awaiting, Core, Helper, Preflight, Probe, Work, later};

impl Core {
    /// The helper of the restart in flight (preflight or ready check).
    pub(super) fn helper_mut(&mut self) -> Option<&mut Helper> {
        match &mut self.phase {
            super::Phase::Running(Work::Preflight(p)) => Some(&mut p.helper),
            super::Phase::Running(Work::Comparing { probe, .. }) => Some(probe),
            super::Phase::Running(Work::Awaiting(Awaiting {
                script: Probe::Running(h),
                ..
            })) => Some(h),
            _ => None,
        }
    }

    /// The running helper, if any.
    pub(super) fn helper_pid(&self) -> Option<Pid> {
        super::transition::helper_of(&self.phase)
    }

    /// If `pid` is the running helper, note its exit, to be judged once the
    /// rest of its batch has been. Returns whether it was.
    pub(super) fn helper_reaped(&mut self, reaped: Pid, exit: Exit) -> bool {
        match self.helper_mut() {
            Some(h) if *h == Helper::Running(reaped) => *h = Helper::Exited(reaped, exit),
            _ => return false,
        }
        // Whatever the helper left running in its process group goes with
        // it. Its pid cannot have been reused yet: the group keeps it while
        // any member lives, and this runs in the same turn as the reaping.
        self.actions.push(Action::KillGroup(reaped));
        true
    }

    /// SIGKILL a helper's group; it is reaped later.
    pub(super) fn kill_group(&mut self, pid: Pid) {
        self.actions.push(Action::KillGroup(pid));
        self.killed_helpers.push(pid);
    }

    /// A helper reaped in the last batch, judged now.
    pub(super) fn judge_helper(&mut self) {
        let now = self.now;
        match self.work().clone() {
            Work::Preflight(Preflight {
                epoch,
                generation,
                started,
                helper: Helper::Exited(pid, exit),
                ..
            }) => {
                if !exit.is_clean() {
                    say!(
                        self,
                        Error,
                        "preflight for epoch {epoch} (PID={pid}) failed: {}",
                        super::describe(exit)
                    );
                    let said = match self.output_of(pid).map(|text| last_words(&text)) {
                        Some(text) if !text.is_empty() => format!(": {text}"),
                        _ => String::new(),
                    };
                    let detail = format!(" (PID={pid} {}){said}", super::describe(exit));
                    self.restart_skipped_because(epoch, "its preflight failed", &detail);
                    return;
                }
                say!(
                    self,
                    Info,
                    "preflight for epoch {epoch} passed in {} ms",
                    now.saturating_duration_since(started).as_millis()
                );
                if generation == self.generation
                    && let Some(why) = self.doomed_reason()
                {
                    // Doomed while the preflight ran: the new epoch could
                    // never be ready; a held handoff (if any) comes next.
                    self.restart_skipped(epoch, &Self::doomed_restart(&why, self.s.handoff));
                    return;
                }
                self.drop_work();
                if self.live().next().is_some() {
                    self.start_epoch(epoch, generation);
                }
                // else: the serving epoch is gone meanwhile; nothing to
                // hot-restart from, and the wrapper is about to end.
            }
            Work::Awaiting(Awaiting {
                epoch,
                pid,
                script: Probe::Running(Helper::Exited(check, exit)),
                ..
            }) => {
                let script = if exit.is_clean() {
                    Probe::Passed
                } else {
                    say!(
                        self,
                        Debug,
                        "ready check for epoch {epoch} (PID={pid}, check PID={check}): {}",
                        super::describe(exit)
                    );
                    Probe::Due(later(now, self.s.ready_interval))
                };
                if let Some(a) = self.awaiting_mut() {
                    a.script = script;
                }
                self.check_ready();
            }
            // Judged once: its version stays known while the comparison waits
            // for the running Envoy's.
            Work::Comparing {
                probe: Helper::Exited(pid, exit),
                binary: None,
                ..
            } => {
                // Envoy prints the version alone, on its last line.
                let said = self.output_of(pid).unwrap_or_default();
                let last = said.lines().map(str::trim).rfind(|l| !l.is_empty());
                let version = match last {
                    Some(version) if exit.is_clean() => Ok(version.to_string()),
                    _ => Err(format!(
                        "--envoy-bin --hot-restart-version {}: {}",
                        super::describe(exit),
                        last_words(&said)
                    )),
                };
                self.version_known(Some(version), None);
            }
            _ => {}
        }
    }

    /// What `pid` wrote, if it was the last helper to say anything.
    fn output_of(&mut self, pid: Pid) -> Option<String> {
        match self.helper_said.take() {
            Some((p, text)) if p == pid => Some(text),
            _ => None,
        }
    }
}
