//! `reexec`: the request to execute the wrapper's binary afresh is held
//! until nothing is in flight, then handed to the driver; and the core's
//! state as a [`Snapshot`] that the new binary resumes from.
//!
//! Holding until quiescence is the design choice that keeps the hand-over
//! small: with no restart, handoff, helper, admin question or held request
//! in flight, the state is the children and a few facts and counters, all
//! plain data. A reexec asked for while shutting down is refused.

use std::time::{Duration, Instant};

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{Child, ChildState, Core, Counters, LastReload, Phase, Settings, WaiterId, Work};

/// One child, as handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildFacts {
    pub pid: i32,
    pub epoch: u32,
    pub generation: u32,
    pub state: ChildState,
}

/// What a quiescent core is: everything the next binary needs to carry on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub children: Vec<ChildFacts>,
    pub generation: u32,
    pub next_epoch: u32,
    pub wedged: bool,
    pub doomed: Option<(u32, String)>,
    pub failed: bool,
    pub counters: Counters,
    pub last_reload: Option<LastReload>,
    /// How long the wrapper has run, so that the uptime carries on.
    pub uptime_ms: u64,
    /// Reexecs before this one.
    pub reexecs: u64,
}

impl Core {
    pub(super) fn on_reexec(&mut self, client: WaiterId, wait: bool) {
        if !matches!(self.phase, Phase::Running(_)) {
            say!(self, Info, "shutting down, ignoring the reexec request");
            self.reply_failed(client, "the wrapper is shutting down");
            return;
        }
        let waiters = self.reexec.get_or_insert_with(Vec::new);
        if wait {
            waiters.push(client);
        } else {
            self.reply_done(client, "reexec requested");
        }
        if !self.quiescent() {
            say!(
                self,
                Info,
                "holding the reexec until {}",
                self.describe_wait_for_reexec()
            );
        }
    }

    /// Nothing in flight: no restart or handoff, no helper, no held
    /// request (admin questions are asked only while work is in flight).
    fn quiescent(&self) -> bool {
        matches!(self.phase, Phase::Running(Work::Idle))
            && self.held.is_none()
            && self.killed_helpers.is_empty()
            && self.helper_pid().is_none()
            && !self.reload_in_flight()
    }

    fn describe_wait_for_reexec(&self) -> &'static str {
        match self.work() {
            Work::Idle => "the held restart is over",
            _ => "the restart in flight is over",
        }
    }

    /// After every event: a held reexec goes to the driver once nothing is
    /// in flight; a stop refuses it.
    pub(super) fn settle_reexec(&mut self) {
        if self.reexec.is_none() {
            return;
        }
        if !matches!(self.phase, Phase::Running(_)) {
            for client in self.reexec.take().unwrap_or_default() {
                self.reply_failed(client, "the wrapper is shutting down: no reexec");
            }
            return;
        }
        if self.quiescent() {
            let waiters = self.reexec.take().unwrap_or_default();
            say!(self, Info, "re-executing the wrapper's binary");
            self.actions.push(super::Action::Reexec(waiters));
        }
    }

    pub(super) fn reexec_failed(&mut self, why: &str) {
        say!(
            self,
            Warn,
            "reexec refused, this binary stays in charge: {}",
            super::quoted(why)
        );
    }

    /// The state to hand over; `None` unless quiescent.
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.quiescent() {
            return None;
        }
        Some(Snapshot {
            children: (self.children.iter())
                .map(|c| ChildFacts {
                    pid: c.pid.as_raw(),
                    epoch: c.epoch,
                    generation: c.generation,
                    state: c.state,
                })
                .collect(),
            generation: self.generation,
            next_epoch: self.next_epoch,
            wedged: self.wedged,
            doomed: self.doomed.clone(),
            failed: self.failed,
            counters: self.report.counters.clone(),
            last_reload: self.report.last.clone(),
            uptime_ms: self
                .now
                .saturating_duration_since(self.report.started)
                .as_millis() as u64,
            reexecs: self.reexecs,
        })
    }

    /// A core that carries on from `snapshot` (count the reexec with
    /// [`Core::took_over`]).
    pub fn resume(settings: Settings, snapshot: Snapshot, now: Instant) -> Core {
        let mut core = Core::new(settings, now);
        core.children = (snapshot.children.into_iter())
            .map(|c| Child {
                pid: Pid::from_raw(c.pid),
                epoch: c.epoch,
                generation: c.generation,
                state: c.state,
            })
            .collect();
        core.generation = snapshot.generation;
        core.next_epoch = snapshot.next_epoch;
        core.wedged = snapshot.wedged;
        core.doomed = snapshot.doomed;
        core.failed = snapshot.failed;
        core.report.counters = snapshot.counters;
        core.report.last = snapshot.last_reload;
        core.report.started = now
            .checked_sub(Duration::from_millis(snapshot.uptime_ms))
            .unwrap_or(now);
        core.reexecs = snapshot.reexecs;
        core
    }

    /// The new binary took over: one more reexec.
    pub fn took_over(&mut self) {
        self.reexecs += 1;
    }
}
