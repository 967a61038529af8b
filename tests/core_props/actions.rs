//! The fake driver's hands: carrying out each action the core returns,
//! as `src/driver.rs` does, against the fake world, and checking on the
//! spot that the model allows it (invariants 1-4, 8, 10 and 11).

use hot_restarter::core::{Action, ChildState, Event, Job, JobKind};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::harness::Harness;
use crate::model::{Flight, Mode};
use crate::ops::Luck;
use crate::world::Kind;

impl Harness {
    pub fn act(&mut self, action: Action, nested: bool) -> Option<Event> {
        match action {
            Action::Spawn(job) => Some(Event::Spawned(job, self.spawn(job))),
            Action::Signal(pid, sig) => {
                self.signal(pid, sig);
                None
            }
            Action::KillGroup(pid) => {
                self.kill_group(pid, nested);
                None
            }
            // Neither Envoy's admin nor the control socket is modelled.
            Action::Notify(_) | Action::Reply(..) | Action::Ask(_) => None,
        }
    }

    fn spawn(&mut self, job: Job) -> Result<Pid, String> {
        let i = self.spawns;
        self.spawns += 1;
        self.ensure(self.m.running(), || {
            format!(
                "I4: Spawn({job:?}) while {:?}: nothing is spawned once SIGTERM/SIGINT was \
                 handled or a teardown began",
                self.m.mode
            )
        });
        let fail = Luck::bit(self.luck.fail, i);
        let (stuck, deaf) = (Luck::bit(self.luck.stuck, i), Luck::bit(self.luck.deaf, i));
        let why = || Err(format!("fake: cannot execute for {job:?}"));
        match job {
            Job {
                kind: JobKind::Epoch,
                epoch: n,
                ..
            } => {
                self.check_epoch_spawn(n);
                if fail {
                    self.epoch_failed(n);
                    return why();
                }
                let pid = self.w.spawn(Kind::Child(n), self.now, stuck, deaf);
                self.w.get_mut(pid).expect("new").ready = self.s.ready_check.is_none();
                self.m.epochs.started(n);
                self.m.check_due = Some(self.now);
                Ok(pid)
            }
            Job {
                kind: JobKind::Preflight,
                epoch: n,
                ..
            } => {
                self.ensure(self.s.preflight.is_some(), || {
                    "Spawn(Preflight) without --preflight".into()
                });
                self.restart_begins(job);
                if fail {
                    return why(); // the restart is skipped
                }
                let pid = self.w.spawn(Kind::Preflight(n), self.now, stuck, deaf);
                self.m.preflight = Some(Flight {
                    begun: self.now,
                    pid,
                });
                Ok(pid)
            }
            Job {
                kind: JobKind::ReadyCheck,
                epoch: n,
                ..
            } => {
                self.ensure(self.s.ready_check.is_some(), || {
                    "Spawn(ReadyCheck) without --ready-check".into()
                });
                let awaited = self.w.awaited().map(|c| (c.pid, c.epoch()));
                self.ensure(awaited.is_some_and(|(_, e)| e == n), || {
                    format!("I2: ReadyCheck({n}) spawned while the epoch awaited is {awaited:?}")
                });
                self.ensure(self.w.helpers().all(|h| h.killed), || {
                    "I2: a second helper spawned while one runs".into()
                });
                let due = self.m.check_due.take();
                self.ensure(due.is_some_and(|d| d <= self.now), || {
                    format!("ReadyCheck({n}) spawned before it was due ({due:?})")
                });
                if fail {
                    // Tried again after the ready interval.
                    self.m.check_due = Some(self.now + self.s.ready_interval);
                    return why();
                }
                let child = awaited.expect("checked").0;
                let kind = Kind::ReadyCheck { epoch: n, child };
                Ok(self.w.spawn(kind, self.now, stuck, deaf))
            }
        }
    }

    fn check_epoch_spawn(&mut self, n: u32) {
        if let Some(c) = self.w.awaited() {
            self.fail(format!(
                "I2: Spawn(Epoch({n})) while epoch {} (PID={}) is still starting",
                c.epoch(),
                c.pid
            ));
        }
        let starting = self
            .core
            .children()
            .iter()
            .find(|c| c.state == ChildState::Starting);
        self.ensure(starting.is_none(), || {
            format!("I2: Spawn(Epoch({n})) while the core lists {starting:?} as starting")
        });
        let live: Vec<u32> = self.w.children().map(|p| p.epoch()).collect();
        if let Err(msg) = self.m.epochs.check_spawn(n, self.s.keep_serving, &live) {
            self.fail(msg);
        }
        if n > 0 && self.s.preflight.is_some() {
            let passed = self.m.preflight_passed.take();
            self.ensure(passed == Some(n), || {
                format!(
                    "I11: epoch {n} started without a preflight for it passing in this batch \
                     (passed: {passed:?})"
                )
            });
        } else if n > 0 {
            self.restart_begins(Job::new(JobKind::Epoch, n, 0));
        }
    }

    /// A restart begins (its preflight, or its epoch when there is none).
    fn restart_begins(&mut self, job: Job) {
        self.ensure(self.m.hup_pending, || {
            format!("I10: a restart ({job:?}) began with no SIGHUP pending")
        });
        self.m.hup_pending = false;
        self.ensure(
            self.m.preflight.is_none() && self.w.awaited().is_none(),
            || format!("I2: a restart ({job:?}) began while another is in flight"),
        );
        self.ensure(self.w.helpers().all(|h| h.killed), || {
            format!("I2: a restart ({job:?}) began while a helper runs")
        });
        let draining = self.s.hold_while_draining && self.w.live_children().count() > 1;
        self.ensure(!draining, || {
            format!(
                "I11: a restart ({job:?}) began while an older epoch drains (--hold-while-draining)"
            )
        });
        let killed = self.w.children().find(|p| p.abandoned).map(|p| p.pid);
        self.ensure(killed.is_none(), || {
            format!(
                "I11: a restart ({job:?}) began while killed epoch PID={killed:?} is not reaped"
            )
        });
    }

    /// Invariant-3 bookkeeping and the model's outcome for a failed start.
    fn epoch_failed(&mut self, n: u32) {
        self.m.failure_seen = true;
        self.m.epochs.failed(n);
        let newest = self.w.live_children().map(|p| p.epoch()).max();
        if self.w.children().next().is_none() {
            self.m.mode = Mode::Ended {
                at: self.now,
                code: 1,
            };
        } else if let (true, Some(newest)) = (self.s.keep_serving, newest) {
            self.m.epochs.restart_failed(newest);
        } else {
            self.tear_down();
        }
    }

    fn signal(&mut self, pid: Pid, sig: Signal) {
        let Some(p) = self.w.get(pid).cloned() else {
            self.fail(format!(
                "I1: {sig:?} to PID={pid}, which the core never started"
            ));
        };
        let what = format!("{sig:?} to PID={pid} ({:?})", p.kind);
        self.ensure(p.is_child(), || {
            format!("I1: {what}: helpers are stopped by KillGroup only")
        });
        self.ensure(!p.reaped, || {
            format!("I1: {what} after its exit was handed to the core")
        });
        self.ensure(!p.given_up, || {
            format!("I1: {what} after the core gave up on it")
        });
        match sig {
            Signal::SIGUSR1 => {
                let state = (self.core.children().iter())
                    .find(|c| c.pid == pid)
                    .map(|c| c.state);
                self.ensure(state != Some(ChildState::Starting), || {
                    format!("I8: {what}, a child in Starting state")
                });
                let due = self.m.usr1_due.iter().position(|&d| d == pid);
                self.ensure(due.is_some(), || {
                    format!(
                        "I8: {what}: not a ready epoch, sent twice, or not for a SIGUSR1 \
                         (ready: {}, abandoned: {})",
                        p.ready, p.abandoned
                    )
                });
                self.m.usr1_due.remove(due.expect("checked"));
            }
            Signal::SIGTERM => {
                self.ensure(self.m.term_event && !p.termed, || {
                    format!("{what} outside the start of a graceful shutdown, or twice")
                });
                self.w.term(pid);
            }
            Signal::SIGKILL => {
                let killing = matches!(self.m.mode, Mode::Killing { .. });
                self.ensure(killing || p.abandoned, || {
                    format!(
                        "{what} outside a teardown, a forced shutdown or a ready timeout \
                         (model: {:?})",
                        self.m.mode
                    )
                });
                self.w.kill(pid);
            }
            _ => self.fail(format!(
                "{what}: the core sends only SIGUSR1, SIGTERM, SIGKILL"
            )),
        }
    }

    fn kill_group(&mut self, pid: Pid, nested: bool) {
        let Some(p) = self.w.get(pid).cloned() else {
            self.fail(format!(
                "I1: KillGroup({pid}), which the core never started"
            ));
        };
        self.ensure(!p.is_child(), || {
            format!("I1: KillGroup({pid}) for a child (epoch {})", p.epoch())
        });
        if p.reaped {
            // Allowed: once per helper, from the core's own handling of the
            // Reaped batch that reaped it (not from a nested Spawned), when
            // the helper had not been killed before. Its group is killed
            // right after reaping, in the same turn, so the pid cannot have
            // been reused yet.
            let allowed = self.regroup.iter().position(|&r| r == pid);
            self.ensure(!nested && allowed.is_some(), || {
                format!(
                    "I1: KillGroup({pid}) ({:?}) after its exit was handed to the core, \
                     outside the handling of the batch that reaped it, or twice",
                    p.kind
                )
            });
            self.regroup.remove(allowed.expect("checked"));
            return;
        }
        self.ensure(!p.killed && !p.given_up, || {
            format!("KillGroup({pid}) ({:?}) a second time", p.kind)
        });
        self.w.kill(pid);
    }
}
