//! Generations and the side-by-side handoff, as the model sees them: a
//! child of the next generation that becomes ready takes over (the old
//! generation retires: drain, count its listeners, SIGTERM, SIGKILL), and
//! the checks after every event. Invariants H1-H7:
//! - H1 a new generation starts as generation = serving + 1 at epoch 0 (so
//!   a failed handoff is retried with the same number), never while
//!   another restart is in flight or the old generation retires; a restart
//!   is a handoff exactly when one was requested (SIGUSR2, `handoff`, not
//!   lost to a retry), when hot restart is wedged, or when --envoy-bin's
//!   version differs (checked in actions.rs).
//! - H2 the old generation is SIGTERMed (outside shutdown) only after the
//!   new one was declared LIVE: once its drain was refused, its listeners
//!   are closed, or the drain limit passed; SIGKILLed only term_wait after
//!   that (checked in actions.rs).
//! - H3 at most two generations have children at once.
//! - H4 a failed new generation (it exits, is not LIVE in time, or cannot
//!   start) takes nothing else down: no teardown, no signal to the serving
//!   generation, no exit code 1 for it.
//! - H5 children of a retiring generation exiting never cause a teardown
//!   or count as failures.
//! - H6 generation() is the model's serving generation, and the generation
//!   of the newest Ready child.
//! - H7 each handoff step happens in the event that calls for it: the
//!   drain asked when the new generation is LIVE, the listeners counted
//!   when the drain is taken, SIGTERM/SIGKILL to every retiring child.

use std::collections::BTreeSet;

use hot_restarter::core::{ChildState, PhaseName};
use nix::unistd::Pid;

use crate::harness::Harness;
use crate::model::{Epochs, Retire, Stage};

/// How long the old generation may keep listening after the drain request
/// (core/handoff.rs).
pub const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The two readiness probes of a child: `--ready-check`'s script and
/// Envoy's admin (`--envoy-admin`).
#[derive(Debug, Clone, Copy)]
pub enum ReadyProbe {
    Script,
    Admin,
}

impl Harness {
    /// A readiness probe of the awaited `pid` ended: on a pass it is
    /// marked, and `pid` is ready once both probes have passed (one not in
    /// use counts as passed); otherwise that probe's next run is due.
    pub fn probe_ended(&mut self, pid: Pid, probe: ReadyProbe, passed: bool) {
        if !passed {
            let next = Some(self.now + self.s.ready_interval);
            match probe {
                ReadyProbe::Script => self.m.check_due = next,
                ReadyProbe::Admin => self.m.admin_due = next,
            }
            return;
        }
        let c = self.w.get_mut(pid).expect("child");
        match probe {
            ReadyProbe::Script => c.script_ok = true,
            ReadyProbe::Admin => c.admin_ok = true,
        }
        if c.script_ok && c.admin_ok {
            self.became_ready(pid);
        }
    }

    /// Every probe of `pid` passed: it is ready (the next generation's
    /// child: LIVE, the handoff goes on).
    pub fn became_ready(&mut self, pid: Pid) {
        let p = self.w.get_mut(pid).expect("child");
        p.ready = true;
        let g = p.generation;
        self.m.readies += 1;
        if g != self.m.serving {
            self.handoff_live(g);
        } else {
            self.m.succeeded = Some(self.m.begun);
        }
    }

    fn handoff_live(&mut self, g: u32) {
        let from = self.m.serving;
        self.m.serving = g;
        self.m.wedged = false;
        self.m.retired_epochs = Some(std::mem::replace(
            &mut self.m.epochs,
            Epochs::new_generation(),
        ));
        self.m.lives += 1;
        self.m.rounds += 1;
        for p in self.w.procs.iter_mut() {
            if p.is_child() && p.tracked() && p.generation == from && !p.abandoned {
                p.retiring = true;
            }
        }
        self.m.retire = Some(Retire {
            from,
            round: self.m.rounds,
            stage: Stage::Draining {
                limit: self.now + DRAIN_LIMIT,
                asked: false,
            },
        });
        self.retirees_gone();
    }

    /// --keep-serving: the serving generation has no live child left after
    /// a failure while the one it took over from drains, not SIGTERMed
    /// yet: that one serves again (no signal to it), and a handoff is
    /// held to start once the batch is judged.
    pub fn take_back_retiring(&mut self) -> bool {
        let Some(r) = self.m.retire else {
            return false;
        };
        if matches!(r.stage, Stage::Stopping { .. }) || self.w.retiring().next().is_none() {
            return false;
        }
        for p in self.w.procs.iter_mut() {
            if p.is_child() && p.tracked() && p.retiring && p.generation == r.from {
                p.retiring = false;
            }
        }
        self.m.serving = r.from;
        let mut epochs = self.m.retired_epochs.take().unwrap_or_default();
        if let Some(newest) = self.w.serving(r.from).map(|p| p.epoch()).max() {
            epochs.restart_failed(newest);
        }
        self.m.epochs = epochs;
        self.m.retire = None;
        self.m.hup_pending = true;
        self.m.pending_handoff = true;
        true
    }

    pub fn set_stage(&mut self, stage: Stage) {
        if let Some(r) = &mut self.m.retire {
            r.stage = stage;
        }
    }

    /// SIGTERM every retiring child, in this event.
    pub fn stop_retiring(&mut self) {
        self.m.term_due = self.w.retiring().map(|p| p.pid).collect();
        let deadline = self.now + self.s.term_wait;
        self.set_stage(Stage::Stopping { deadline });
    }

    /// The handoff is done once no retiring child is left.
    pub fn retirees_gone(&mut self) {
        if self.m.retire.is_some() && self.w.retiring().next().is_none() {
            self.m.retire = None;
            self.m.succeeded = Some(self.m.begun);
        }
    }

    pub fn check_generations(&self) {
        let gens: BTreeSet<u32> = self.w.children().map(|p| p.generation).collect();
        let core: BTreeSet<u32> = (self.core.children().iter())
            .map(|c| c.generation)
            .collect();
        self.ensure(gens.len() <= 2 && core.len() <= 2, || {
            format!("H3: children of generations {core:?} (model {gens:?}) at once")
        });
        let serving = self.core.generation();
        self.ensure(serving == self.m.serving, || {
            format!(
                "H6: generation() is {serving}, the model's serving generation is {}",
                self.m.serving
            )
        });
        let newest = (self.core.children().iter())
            .rev()
            .find(|c| c.state == ChildState::Ready);
        self.ensure(newest.is_none_or(|c| c.generation == serving), || {
            format!("H6: generation() is {serving}, the newest Ready child is {newest:?}")
        });
        if self.m.running() {
            self.ensure(
                self.m.term_due.is_empty() && self.m.kill_due.is_empty(),
                || {
                    format!(
                        "H7: the handoff did not SIGTERM {:?} / SIGKILL {:?} when due",
                        self.m.term_due, self.m.kill_due
                    )
                },
            );
        }
        let stalled = match self.m.retire.map(|r| r.stage) {
            Some(Stage::Draining { asked, .. }) => !asked,
            Some(Stage::Counting { .. }) => true,
            _ => false,
        };
        self.ensure(!stalled, || {
            format!(
                "H7: the handoff stalls at {:?}: the drain is asked as the new generation is \
                 LIVE, the listeners counted as it is taken",
                self.m.retire
            )
        });
        self.ensure(self.m.decided.is_none(), || {
            format!(
                "H1: the comparison chose {:?}, but no restart began",
                self.m.decided
            )
        });
        let compare_asked = self.m.compare.as_ref().is_none_or(|c| c.asked);
        self.ensure(compare_asked, || {
            "A2: comparing without asking the running Envoy's version".into()
        });
        // H4, H5: when only a new generation's failure (a retiring child's
        // exit) happened, the model keeps running: so must the core.
        if self.m.running() && (self.m.handoff_failed_now || self.m.retired_now) {
            let phase = self.core.phase();
            self.ensure(
                !matches!(phase, PhaseName::Killing | PhaseName::Exiting),
                || {
                    format!(
                        "H4/H5: a failed new generation ({}) or a retiring child's exit ({}) took \
                     the wrapper to {phase:?}",
                        self.m.handoff_failed_now, self.m.retired_now
                    )
                },
            );
        }
    }
}
