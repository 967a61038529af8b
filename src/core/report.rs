//! What the wrapper tells about itself: the reload in flight and the
//! control-socket clients waiting for it, the last reload's result, the
//! counters, and the status report.

use std::time::Instant;

use super::{ChildState, Core, PhaseName};
use crate::control::proto::{Counters, LastReload, Reply, Status, reload_result};
use crate::control::server::ClientId;

/// A reload (begun by SIGHUP or `reload`) that has not ended yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    epoch: u32,
    started: Instant,
    waiters: Vec<ClientId>,
    /// A handoff to a new generation rather than a hot restart.
    handoff: bool,
}

/// Reporting state: facts about what was asked and how it went, never what
/// decides the next step.
#[derive(Debug, Clone)]
pub(super) struct Reporting {
    started: Instant,
    pid: u32,
    current: Option<InFlight>,
    /// Waiting for the held reload (not begun yet).
    held_waiters: Vec<ClientId>,
    /// Waiting for the wrapper to exit (`stop --wait`).
    stop_waiters: Vec<ClientId>,
    last: Option<LastReload>,
    counters: Counters,
}

impl Reporting {
    pub(super) fn new(pid: u32, now: Instant) -> Reporting {
        Reporting {
            started: now,
            pid,
            current: None,
            held_waiters: Vec::new(),
            stop_waiters: Vec::new(),
            last: None,
            counters: Counters::default(),
        }
    }
}

/// How a reload ended.
pub(super) enum Outcome<'a> {
    /// The new epoch runs (and is ready, where that is checked).
    Done(&'a str),
    /// Nothing was started; the serving epochs are untouched.
    Skipped(&'a str),
    /// The new epoch was started and failed.
    Failed(&'a str),
}

impl Core {
    /// A reload to `epoch` begins; clients waiting for a held reload now
    /// wait for this one.
    pub(super) fn reload_begun(&mut self, epoch: u32, now: Instant) {
        let r = &mut self.report;
        if let Some(current) = &mut r.current {
            // Already begun (the versions were compared first). Requests
            // held meanwhile wait for the restart that follows this one.
            current.epoch = epoch;
            return;
        }
        let waiters = std::mem::take(&mut r.held_waiters);
        r.current = Some(InFlight {
            epoch,
            started: now,
            waiters,
            handoff: false,
        });
    }

    /// The reload in flight (or about to begin) is a handoff.
    pub(super) fn reload_is_handoff(&mut self) {
        let now = self.now;
        self.reload_begun(0, now);
        if let Some(current) = &mut self.report.current {
            current.handoff = true;
        }
    }

    /// The reload in flight ended: record it and answer its waiters.
    pub(super) fn reload_ended(&mut self, outcome: Outcome) {
        let Some(current) = self.report.current.take() else {
            return;
        };
        let ms = self
            .now
            .saturating_duration_since(current.started)
            .as_millis() as u64;
        let (result, text, reply) = match outcome {
            Outcome::Done(detail) => {
                match current.handoff {
                    true => self.report.counters.handoffs_done += 1,
                    false => self.report.counters.reloads_done += 1,
                }
                let reply = Reply::Done {
                    detail: detail.to_string(),
                };
                (reload_result::DONE, None, reply)
            }
            Outcome::Skipped(reason) | Outcome::Failed(reason) => {
                let c = &mut self.report.counters;
                let result = match (&outcome, current.handoff) {
                    (Outcome::Skipped(_), false) => {
                        c.reloads_skipped += 1;
                        reload_result::SKIPPED
                    }
                    (_, false) => {
                        c.reloads_failed += 1;
                        reload_result::FAILED
                    }
                    (Outcome::Skipped(_), true) => {
                        c.handoffs_failed += 1;
                        reload_result::SKIPPED
                    }
                    (_, true) => {
                        c.handoffs_failed += 1;
                        reload_result::FAILED
                    }
                };
                let reply = Reply::Failed {
                    reason: reason.to_string(),
                };
                (result, Some(reason.to_string()), reply)
            }
        };
        self.report.last = Some(LastReload {
            epoch: current.epoch,
            result: result.to_string(),
            reason: text,
            ms,
        });
        for client in current.waiters {
            self.reply(client, reply.clone());
        }
    }

    /// The reload in flight will be retried (its preflight was for an
    /// epoch that will not come next): its waiters wait for the retry.
    pub(super) fn reload_postponed(&mut self) {
        if let Some(mut current) = self.report.current.take() {
            current.waiters.append(&mut self.report.held_waiters);
            self.report.held_waiters = current.waiters;
        }
    }

    /// Shutting down or tearing down: no reload will come.
    pub(super) fn reloads_abandoned(&mut self, why: &str) {
        let mut waiters = self
            .report
            .current
            .take()
            .map(|c| c.waiters)
            .unwrap_or_default();
        waiters.append(&mut self.report.held_waiters);
        for client in waiters {
            self.reply_failed(client, why);
        }
    }

    pub(super) fn wait_for_current_reload(&mut self, client: ClientId) {
        match &mut self.report.current {
            Some(current) => current.waiters.push(client),
            // It began and ended within this request (cannot happen while
            // a spawn's outcome comes as an event of its own).
            None => self.reply_done(client, "reloaded"),
        }
    }

    pub(super) fn wait_for_held_reload(&mut self, client: ClientId) {
        self.report.held_waiters.push(client);
    }

    pub(super) fn wait_for_exit(&mut self, client: ClientId) {
        self.report.stop_waiters.push(client);
    }

    /// A client hung up: forget it wherever it waits.
    pub(super) fn on_control_gone(&mut self, client: ClientId) {
        let r = &mut self.report;
        r.held_waiters.retain(|c| *c != client);
        r.stop_waiters.retain(|c| *c != client);
        if let Some(current) = &mut r.current {
            current.waiters.retain(|c| *c != client);
        }
    }

    /// Clients waiting for the wrapper to exit; the driver answers them
    /// last, once the pid file and the socket are gone.
    pub fn take_stop_waiters(&mut self) -> Vec<ClientId> {
        std::mem::take(&mut self.report.stop_waiters)
    }

    pub(super) fn status(&self, now: Instant) -> Status {
        let phase = match self.phase() {
            PhaseName::Running => "running",
            PhaseName::Preflight => "preflight",
            PhaseName::Starting => "starting",
            PhaseName::HandingOff => "handing-off",
            PhaseName::ShuttingDown => "shutting-down",
            PhaseName::Killing => "killing",
            PhaseName::Exiting => "exiting",
            PhaseName::Done => "done",
        };
        Status {
            pid: self.report.pid,
            phase: phase.to_string(),
            uptime_s: now
                .saturating_duration_since(self.report.started)
                .as_secs_f64(),
            children: self
                .children
                .iter()
                .filter(|c| c.state != ChildState::Abandoned)
                .map(|c| crate::control::proto::ChildStatus {
                    pid: c.pid.as_raw() as u32,
                    epoch: c.epoch,
                    generation: c.generation,
                    state: c.state.name().to_string(),
                })
                .collect(),
            last_reload: self.report.last.clone(),
            counters: self.report.counters.clone(),
        }
    }
}
