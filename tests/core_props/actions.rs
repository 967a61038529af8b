//! The fake driver's hands: carrying out each action the core returns,
//! as `src/driver/` does, against the fake world, and checking on the
//! spot that the model allows it (invariants 1-4, 8, 10 and 11, H1, H2;
//! questions in admin.rs, replies in control.rs).

use hot_restarter::core::{Action, ChildState, Event, Job, JobKind};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::harness::Harness;
use crate::model::{Flight, Mode, RestartKind};
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
            Action::Ask(query) => self.ask(query),
            Action::Reexec(waiters) => self.reexec(waiters),
            action @ (Action::Notify(_) | Action::Reply(..)) => {
                self.act_control(&action);
                None
            }
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
                generation: g,
            } => {
                self.check_epoch_spawn(n, g);
                if fail {
                    self.epoch_failed(n, g);
                    return why();
                }
                let pid = self.w.spawn(Kind::Child(n), g, self.now, stuck, deaf);
                let p = self.w.get_mut(pid).expect("new");
                p.script_ok = self.s.ready_check.is_none();
                p.admin_ok = !self.s.envoy_admin;
                if g == self.m.serving {
                    self.m.epochs.started(n);
                }
                self.m.check_due = Some(self.now);
                self.m.admin_due = self.s.envoy_admin.then_some(self.now);
                if self.s.ready_check.is_none() && !self.s.envoy_admin {
                    self.became_ready(pid);
                }
                Ok(pid)
            }
            Job {
                kind: JobKind::Preflight,
                epoch: n,
                generation: g,
            } => {
                self.ensure(self.s.preflight.is_some(), || {
                    "Spawn(Preflight) without --preflight".into()
                });
                self.check_generation(n, g, "Preflight");
                let kind = self.kind_of(g);
                self.restart_begins(&format!("{job:?}"), kind);
                if fail {
                    return why(); // the restart is skipped
                }
                let pid = self.w.spawn(Kind::Preflight(n), g, self.now, stuck, deaf);
                self.m.preflight = Some(Flight {
                    begun: self.now,
                    pid,
                    generation: g,
                });
                Ok(pid)
            }
            Job {
                kind: JobKind::ReadyCheck,
                epoch: n,
                generation: g,
            } => {
                self.ensure(self.s.ready_check.is_some(), || {
                    "Spawn(ReadyCheck) without --ready-check".into()
                });
                let awaited = self.w.awaited().map(|c| (c.pid, c.epoch(), c.generation));
                self.ensure(awaited.is_some_and(|(_, e, eg)| (e, eg) == (n, g)), || {
                    format!(
                        "I2: ReadyCheck({n}, generation {g}) spawned while the epoch awaited is                          {awaited:?}"
                    )
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
                Ok(self.w.spawn(kind, g, self.now, stuck, deaf))
            }
            Job {
                kind: JobKind::VersionProbe,
                epoch: n,
                generation: g,
            } => {
                self.ensure(self.s.envoy_bin, || {
                    "Spawn(VersionProbe) without --envoy-bin".into()
                });
                self.check_generation(n, g, "VersionProbe");
                self.probe_spawned(n, g, fail, stuck, deaf)
            }
        }
    }

    fn check_epoch_spawn(&mut self, n: u32, g: u32) {
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
        let restart = (n, g) != (0, 0);
        self.check_generation(n, g, "Epoch");
        if g == self.m.serving {
            let live: Vec<u32> = (self.w.children())
                .filter(|p| p.generation == g)
                .map(|p| p.epoch())
                .collect();
            if let Err(msg) = self.m.epochs.check_spawn(n, self.s.keep_serving, &live) {
                self.fail(msg);
            }
        }
        if restart && self.s.preflight.is_some() {
            let passed = self.m.preflight_passed.take();
            self.ensure(passed == Some((n, g)), || {
                format!(
                    "I11: epoch {n} (generation {g}) started without a preflight for it passing \
                     in this batch (passed: {passed:?})"
                )
            });
        } else if restart {
            let kind = self.kind_of(g);
            self.restart_begins(&format!("Epoch({n}, generation {g})"), kind);
        }
    }

    /// H1: a job of the serving generation, or epoch 0 of the next one.
    fn check_generation(&self, n: u32, g: u32, what: &str) {
        let serving = self.m.serving;
        self.ensure(g == serving || (g == serving + 1 && n == 0), || {
            format!(
                "H1: {what}({n}, generation {g}) while generation {serving} serves: a new \
                 generation is serving + 1 and starts at epoch 0"
            )
        });
    }

    fn kind_of(&self, g: u32) -> RestartKind {
        match g == self.m.serving {
            true => RestartKind::Hot,
            false => RestartKind::Handoff,
        }
    }

    /// A restart begins (its comparison of versions, its preflight, or its
    /// epoch when there is neither): of the kind requested, or chosen.
    pub fn restart_begins(&mut self, what: &str, kind: RestartKind) {
        if let Some(chosen) = self.m.decided.take() {
            self.ensure(chosen == kind, || {
                format!("H1: the versions compared chose {chosen:?}, but {what} began")
            });
        } else {
            self.ensure(self.m.hup_pending, || {
                format!("I10: a restart ({what}) began with no SIGHUP/SIGUSR2 pending")
            });
            let expected = if self.m.pending_handoff || (self.s.handoff && self.m.wedged) {
                RestartKind::Handoff
            } else if self.s.handoff && self.s.envoy_bin {
                RestartKind::Compare
            } else {
                RestartKind::Hot
            };
            self.ensure(kind == expected, || {
                format!(
                    "H1: {what} began, a {expected:?} was due (handoff requested: {}, wedged: \
                     {})",
                    self.m.pending_handoff, self.m.wedged
                )
            });
            self.m.hup_pending = false;
            self.m.pending_handoff = false;
            self.m.begun += 1;
            self.m.succeeded = None;
        }
        let busy = self.m.preflight.is_some() || self.w.awaited().is_some();
        let busy = busy || self.m.compare.is_some() || self.m.retire.is_some();
        self.ensure(!busy, || {
            format!(
                "I2/H1: a restart ({what}) began while another is in flight, or the old \
                 generation retires"
            )
        });
        self.ensure(self.w.helpers().all(|h| h.killed), || {
            format!("I2: a restart ({what}) began while a helper runs")
        });
        let serving = self.m.serving;
        // A handoff because nothing (soon) serves waits for nothing of the
        // serving generation: the new one has its own base-id.
        let rescue = self.m.rescue_now && kind == RestartKind::Handoff;
        let draining = self.s.hold_while_draining && self.w.serving(serving).count() > 1;
        self.ensure(!draining || rescue, || {
            format!(
                "I11: a restart ({what}) began while an older epoch drains (--hold-while-draining)"
            )
        });
        let killed = self.w.children().find(|p| p.abandoned).map(|p| p.pid);
        self.ensure(killed.is_none() || rescue, || {
            format!("I11: a restart ({what}) began while killed epoch PID={killed:?} is not reaped")
        });
    }

    /// Invariant-3 bookkeeping and the model's outcome for a failed start;
    /// a new generation's is only a failed handoff (H4).
    fn epoch_failed(&mut self, n: u32, g: u32) {
        if g != self.m.serving {
            // A failed start: a failed handoff, and a failure for the exit
            // code (docs/behaviour.md, exit codes: a start failed).
            self.m.handoff_failed_now = true;
            self.m.failure_seen = true;
            return;
        }
        self.m.failure_seen = true;
        self.m.epochs.failed(n);
        let newest = self.w.serving(g).map(|p| p.epoch()).max();
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
                let handoff = self.m.term_due.iter().position(|&d| d == pid);
                if let Some(i) = handoff {
                    self.m.term_due.remove(i);
                } else {
                    // A retiring child may have had the handoff's SIGTERM.
                    let shutdown = self.m.term_event && (!p.termed || p.retiring);
                    self.ensure(shutdown, || {
                        format!(
                            "{}: {what} outside the start of a graceful shutdown (or twice), \
                             and not the handoff stopping a generation handed off (retiring: \
                             {}, handoff: {:?})",
                            self.unexpected(),
                            p.retiring,
                            self.m.retire
                        )
                    });
                }
                self.w.term(pid);
            }
            Signal::SIGKILL => {
                let killing = matches!(self.m.mode, Mode::Killing { .. });
                let handoff = self.m.kill_due.iter().position(|&d| d == pid);
                if let Some(i) = handoff {
                    self.m.kill_due.remove(i);
                }
                self.ensure(killing || p.abandoned || handoff.is_some(), || {
                    format!(
                        "{}: {what} outside a teardown, a forced shutdown, a ready timeout or \
                         the end of a retiring generation's term wait (model: {:?})",
                        self.unexpected(),
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

    /// Which invariant a SIGTERM/SIGKILL the model did not expect breaks.
    fn unexpected(&self) -> &'static str {
        match (self.m.handoff_failed_now, self.m.retired_now) {
            (true, _) => "H4 (a failed new generation takes the others down)",
            (_, true) => "H5 (a retiring child's exit takes the others down)",
            _ => "H2",
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
