//! The checks after every event: the core's views against the model and
//! the fake world (invariants 2, 5, 6, 7, 9, 10), and what must have been
//! sent by the end of the event (SIGTERM, SIGKILL, SIGUSR1), with those of
//! handoff.rs and control.rs.

use std::collections::BTreeSet;
use std::time::Instant;

use hot_restarter::core::{Child, ChildState, Event, PhaseName};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::harness::Harness;
use crate::model::Mode;
use crate::world::{Kind, Proc};

/// Everything the core shows, to tell whether an event changed anything.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    children: Vec<Child>,
    phase: PhaseName,
    helpers: Vec<Pid>,
    next_epoch: u32,
    held: bool,
    poll: Option<Instant>,
    code: Option<i32>,
    generation: u32,
}

impl Harness {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            children: self.core.children().to_vec(),
            phase: self.core.phase(),
            helpers: self.core.helpers(),
            next_epoch: self.core.next_epoch(),
            held: self.core.held(),
            poll: self.core.poll_timeout(),
            code: self.core.exit_code(),
            generation: self.core.generation(),
        }
    }

    pub fn after(&mut self, ev: &Event, before: Snapshot, poll: Option<Instant>) {
        // A new generation in preflight needs no living parent: the run
        // goes on with no child until it starts (or its preflight fails).
        let handing_off =
            self.m.running() && (self.m.preflight).is_some_and(|f| f.generation != self.m.serving);
        if self.w.children().next().is_none() && !handing_off {
            let code = match self.m.mode {
                Mode::Running => i32::from(self.m.failure_seen),
                Mode::Terminating { .. } => 0,
                Mode::Killing { .. } => 1,
                Mode::Ended { code, .. } => code,
            };
            if !matches!(self.m.mode, Mode::Ended { .. }) {
                self.m.mode = Mode::Ended { at: self.now, code };
            }
            self.m.hup_pending = false;
            self.m.pending_handoff = false;
            self.m.preflight = None;
            self.m.compare = None;
            self.m.retire = None;
        }
        self.refused_while_doomed();
        self.check_control(ev, &before);
        if *ev == Event::Tick && poll.is_none_or(|t| self.now < t) {
            let now = self.snapshot();
            self.ensure(self.acted == 0 && now == before, || {
                format!(
                    "I7: a Tick before poll_timeout ({poll:?}) changed something:\n  before \
                     {before:?}\n  after {now:?}"
                )
            });
        }
        self.check_probe(ev);
        self.check_sent();
        self.check_generations();
        self.check_views();
        self.check_helpers();
        self.check_hups();
        self.check_end();
        self.check_no_hopeless_wait();
    }

    /// I12 no wait without a serving child: after every event while
    /// running, an epoch N > 0 still awaited has a living hot-restart
    /// parent (an older, ready or draining epoch of its generation);
    /// otherwise it could never finish Envoy's handshake and the wait would
    /// last the whole ready timeout (issue 14, chain 1).
    fn check_no_hopeless_wait(&self) {
        if !self.m.running() {
            return;
        }
        let children = self.core.children();
        for c in children.iter().filter(|c| c.state == ChildState::Starting) {
            if c.epoch == 0 {
                continue;
            }
            let parent = children.iter().any(|p| {
                p.generation == c.generation
                    && p.epoch < c.epoch
                    && matches!(p.state, ChildState::Ready | ChildState::Draining)
            });
            self.ensure(parent, || {
                format!(
                    "I12: epoch {} (PID={}) of generation {} is still awaited, but no older \
                     epoch of its generation is alive: {children:?}",
                    c.epoch, c.pid, c.generation
                )
            });
        }
    }

    fn check_sent(&self) {
        self.ensure(self.regroup.is_empty(), || {
            format!(
                "I1: helper(s) {:?} reaped while running, but their process group was not \
                 killed in the same turn",
                self.regroup
            )
        });
        self.ensure(self.m.usr1_due.is_empty(), || {
            format!(
                "I8: SIGUSR1 not passed on to ready PIDs {:?}",
                self.m.usr1_due
            )
        });
        // The children not sent a signal yet (`sent` says whether one was).
        let missed = |sent: fn(&Proc) -> bool| -> Vec<Pid> {
            (self.w.children())
                .filter(|p| !sent(p))
                .map(|p| p.pid)
                .collect()
        };
        if self.m.term_event {
            let missed = missed(|p| p.termed);
            self.ensure(missed.is_empty(), || {
                format!("shutdown began but SIGTERM was not sent to {missed:?}")
            });
        }
        if let Mode::Killing { .. } = self.m.mode {
            let missed = missed(|p| p.killed);
            self.ensure(missed.is_empty(), || {
                format!("every child is to be SIGKILLed, but not {missed:?}")
            });
        }
    }

    fn check_views(&self) {
        let model: Vec<(Pid, u32)> = self.w.children().map(|p| (p.pid, p.epoch())).collect();
        let core: Vec<(Pid, u32)> = (self.core.children().iter())
            .map(|c| (c.pid, c.epoch))
            .collect();
        self.ensure(model == core, || {
            format!(
                "I9: children() lists {core:?}, the children not reaped are {model:?} (a reaped \
                 child kept, or a running one dropped)"
            )
        });
        for c in self.core.children() {
            let p = self.w.get(c.pid).expect("compared above");
            let starting = !p.ready && !p.abandoned;
            self.ensure(
                (c.state == ChildState::Starting) == starting
                    && (c.state == ChildState::Abandoned) == p.abandoned
                    && (c.state == ChildState::Retiring) == p.retiring
                    && c.generation == p.generation,
                || {
                    format!(
                        "I9: PID={} (generation {} epoch {}) is {:?}, but the model says \
                         ready={} abandoned={} retiring={} (generation {})",
                        c.pid,
                        c.generation,
                        c.epoch,
                        c.state,
                        p.ready,
                        p.abandoned,
                        p.retiring,
                        p.generation
                    )
                },
            );
        }
        let starting = (self.core.children().iter())
            .filter(|c| c.state == ChildState::Starting)
            .count();
        self.ensure(starting <= 1, || {
            format!("I2: {starting} children are starting at once")
        });
        let model: BTreeSet<Pid> = self.w.helpers().map(|p| p.pid).collect();
        let core: BTreeSet<Pid> = self.core.helpers().into_iter().collect();
        self.ensure(model == core, || {
            format!("I9: helpers() lists {core:?}, the helpers not reaped are {model:?}")
        });
        let comparing = self.m.compare.is_some();
        let expected = match self.m.mode {
            Mode::Running if self.m.preflight.is_some() || comparing => PhaseName::Preflight,
            Mode::Running if self.w.awaited().is_some() => PhaseName::Starting,
            Mode::Running if self.m.retire.is_some() => PhaseName::HandingOff,
            Mode::Running => PhaseName::Running,
            Mode::Terminating { .. } => PhaseName::ShuttingDown,
            Mode::Killing { .. } => PhaseName::Killing,
            Mode::Ended { .. } if self.w.helpers().next().is_some() => PhaseName::Exiting,
            Mode::Ended { .. } => PhaseName::Done,
        };
        let phase = self.core.phase();
        self.ensure(phase == expected, || {
            format!(
                "I4/I9: the core is in {phase:?}, the model expects {expected:?} ({:?})",
                { self.m.mode }
            )
        });
        let idle = matches!(phase, PhaseName::Running | PhaseName::Done);
        let poll = self.core.poll_timeout();
        self.ensure(poll.is_none() == idle, || {
            format!(
                "I7: poll_timeout is {poll:?} in {phase:?}: it must be None exactly when \
                 running with no restart in flight, or done"
            )
        });
    }

    /// The awaited epoch's probes run again `ready_interval` after a
    /// failed one (a ready check that failed or could not start, an admin
    /// answer that was not LIVE): poll_timeout says when, and a Tick from
    /// then on runs them.
    fn check_probe(&self, ev: &Event) {
        let Some(child) = self.w.awaited() else {
            return;
        };
        if !self.m.running() {
            return;
        }
        // Each probe the child still needs (its ready check, its admin's
        // LIVE): one runs, or the next one is due.
        let probes = [
            (
                self.s.ready_check.is_some() && !child.script_ok,
                (self.w.helpers()).any(|h| !h.killed && !h.is_child()),
                self.m.check_due,
                "no ready check runs or is due",
            ),
            (
                self.s.envoy_admin && !child.admin_ok,
                self.asks.iter().any(|a| a.about == Some(child.pid)),
                self.m.admin_due,
                "A2: no admin question is out or due",
            ),
        ];
        let mut dues = Vec::new();
        for (needed, running, due, missing) in probes {
            if needed && !running {
                let Some(due) = due else {
                    self.fail(format!("{missing} for PID={}", child.pid));
                };
                dues.push(due);
            }
        }
        let deadline = child.born + self.s.ready_timeout;
        let next = dues.iter().copied().chain([deadline]).min();
        let poll = self.core.poll_timeout();
        self.ensure(poll == next, || {
            format!(
                "I7: poll_timeout is {poll:?}, but the next probes are due at {dues:?} and the \
                 ready deadline is {deadline:?}"
            )
        });
        self.ensure(
            *ev != Event::Tick || dues.iter().all(|&d| d > self.now),
            || {
                format!(
                    "a probe due at {dues:?} did not run at the Tick at {:?}",
                    self.now
                )
            },
        );
    }

    /// Every helper still running is one the restart in flight needs.
    fn check_helpers(&self) {
        let running: Vec<_> = self.w.helpers().filter(|h| !h.killed).collect();
        self.ensure(running.len() <= 1, || {
            format!("I2: several helpers run that the core has not killed: {running:?}")
        });
        for h in running {
            let wanted = self.m.running()
                && match h.kind {
                    Kind::Preflight(_) => self.m.preflight.is_some_and(|f| f.pid == h.pid),
                    Kind::ReadyCheck { child, .. } => {
                        self.w.awaited().map(|c| c.pid) == Some(child)
                    }
                    Kind::Probe(_) => (self.m.compare.as_ref())
                        .is_some_and(|c| c.probe == Some(h.pid) && c.binary.is_none()),
                    Kind::Child(_) => unreachable!(),
                };
            self.ensure(wanted, || {
                format!(
                    "PID={} ({:?}) is left running although nothing waits for it (model: {:?})",
                    h.pid, h.kind, self.m.mode
                )
            });
        }
        if let Some(f) = self.m.preflight {
            let alive = self.w.get(f.pid).is_some_and(|p| p.tracked() && !p.killed);
            self.ensure(alive, || {
                format!("the preflight in flight (PID={}) was killed", f.pid)
            });
        }
    }

    /// Without --handoff-admin a doomed generation refuses a hot restart
    /// once nothing holds it back: the request is answered, not held.
    fn refused_while_doomed(&mut self) {
        let serving = self.m.serving;
        if !self.m.running() || self.s.handoff || self.m.doomed != Some(serving) {
            return;
        }
        let draining = self.s.hold_while_draining && self.w.serving(serving).count() > 1;
        let blocked = self.m.preflight.is_some()
            || self.w.awaited().is_some()
            || self.m.compare.is_some()
            || self.m.retire.is_some()
            || self.w.children().any(|p| p.abandoned)
            || draining;
        if !blocked {
            self.m.hup_pending = false;
            self.m.pending_handoff = false;
        }
    }

    /// Invariant 10: a SIGHUP is held exactly while one is pending, and a
    /// pending one waits only for what may hold it back.
    fn check_hups(&self) {
        if !self.m.running() {
            return;
        }
        let held = self.core.held();
        self.ensure(held == self.m.hup_pending, || {
            format!(
                "I10: held() is {held} but a SIGHUP pending is {} (a SIGHUP lost, or a \
                 restart the operator never asked for)",
                self.m.hup_pending
            )
        });
        if held && self.core.phase() == PhaseName::Running {
            let serving = self.m.serving;
            let draining = self.s.hold_while_draining && self.w.serving(serving).count() > 1;
            let killed = self.w.children().any(|p| p.abandoned);
            self.ensure(draining || killed, || {
                "I10: a SIGHUP is held with no restart in flight and nothing to wait for".into()
            });
        }
    }

    /// Invariants 5 and 6, once the core is done.
    fn check_end(&mut self) {
        let Some(code) = self.core.exit_code() else {
            return;
        };
        self.check_clients_at_end();
        let Mode::Ended { code: expected, .. } = self.m.mode else {
            self.fail(format!("I5: done while the model is {:?}", self.m.mode));
        };
        self.ensure(code == expected, || {
            format!(
                "I5: exit code {code}, expected {expected} (a failure seen: {})",
                self.m.failure_seen
            )
        });
        for p in &self.w.procs {
            self.ensure(p.reaped || p.given_up, || {
                format!(
                    "I6: done, but PID={} ({:?}) was neither reaped nor waited for until \
                     KILL_REAP_WAIT",
                    p.pid, p.kind
                )
            });
        }
        for ev in [
            Event::Signal(Signal::SIGHUP),
            Event::Signal(Signal::SIGTERM),
            Event::Tick,
            Event::Reaped(vec![]),
        ] {
            let actions = self.core.handle(ev.clone(), self.now);
            self.ensure(
                actions.is_empty() && self.core.exit_code() == Some(code),
                || format!("once done, {ev:?} still gave {actions:?}"),
            );
        }
    }
}
