//! What the wrapper tells about itself: the reload in flight and the
//! control-socket clients waiting for it, the last reload's result, the
//! counters, and the status report.

use std::time::Instant;

use std::time::Duration;

use super::{Child, ChildState, Core, PhaseName, Reply, Trigger, WaiterId};

/// The wrapper's state, as `status` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusView {
    /// The wrapper's pid.
    pub pid: u32,
    pub phase: PhaseName,
    /// Since the core was made.
    pub uptime: Duration,
    /// The live children in start order, those given up on left out.
    pub children: Vec<Child>,
    /// The last reload that ended; `None` before the first.
    pub last_reload: Option<LastReload>,
    pub counters: Counters,
    /// Reexecs of the wrapper's binary that took over (`reexec`).
    pub reexecs: u64,
}

/// How the last reload ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastReload {
    /// The epoch it started (or would have started, if skipped).
    pub epoch: u32,
    pub result: ReloadResult,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// How long it took, in milliseconds.
    pub ms: u64,
    /// What asked for it ("SIGHUP", "reload request", or which watched
    /// files changed); `None` for a reload the wrapper began itself.
    pub trigger: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReloadResult {
    Done,
    /// Nothing was started (the preflight said no, or could not run).
    Skipped,
    Failed,
}

/// Reloads and handoffs by how they ended, since the wrapper started.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Hot restarts whose new epoch runs (and is ready, where checked).
    pub reloads_done: u64,
    pub reloads_skipped: u64,
    pub reloads_failed: u64,
    /// Handoffs whose new generation is LIVE.
    pub handoffs_done: u64,
    /// Handoffs skipped or failed.
    pub handoffs_failed: u64,
}

/// A reload (begun by SIGHUP or `reload`) that has not ended yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    epoch: u32,
    started: Instant,
    waiters: Vec<WaiterId>,
    /// A handoff to a new generation rather than a hot restart.
    handoff: bool,
    trigger: Option<Trigger>,
}

/// Reporting state: facts about what was asked and how it went, never what
/// decides the next step.
#[derive(Debug, Clone)]
pub(super) struct Reporting {
    pub(super) started: Instant,
    pid: u32,
    current: Option<InFlight>,
    /// Waiting for the held reload (not begun yet).
    held_waiters: Vec<WaiterId>,
    /// Waiting for the wrapper to exit (`stop --wait`).
    stop_waiters: Vec<WaiterId>,
    pub(super) last: Option<LastReload>,
    pub(super) counters: Counters,
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
    pub(super) fn reload_begun(&mut self, epoch: u32) {
        let now = self.now;
        let r = &mut self.report;
        if let Some(current) = &mut r.current {
            // Already begun (the versions were compared first). Requests
            // held meanwhile wait for the restart that follows this one.
            current.epoch = epoch;
            return;
        }
        let waiters = std::mem::take(&mut r.held_waiters);
        let trigger = self.trigger.take();
        self.report.current = Some(InFlight {
            epoch,
            started: now,
            waiters,
            handoff: false,
            trigger,
        });
    }

    /// The reload in flight (or about to begin) is a handoff.
    pub(super) fn reload_is_handoff(&mut self) {
        self.reload_begun(0);
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
                (ReloadResult::Done, None, reply)
            }
            Outcome::Skipped(reason) | Outcome::Failed(reason) => {
                let c = &mut self.report.counters;
                let result = match &outcome {
                    Outcome::Skipped(_) => ReloadResult::Skipped,
                    _ => ReloadResult::Failed,
                };
                // A handoff has one count for skipped and failed.
                *match (&result, current.handoff) {
                    (_, true) => &mut c.handoffs_failed,
                    (ReloadResult::Skipped, false) => &mut c.reloads_skipped,
                    (_, false) => &mut c.reloads_failed,
                } += 1;
                let reply = Reply::Failed {
                    reason: reason.to_string(),
                };
                (result, Some(reason.to_string()), reply)
            }
        };
        self.report.last = Some(LastReload {
            epoch: current.epoch,
            result,
            reason: text,
            ms,
            trigger: current.trigger.as_ref().map(Trigger::describe),
        });
        for client in current.waiters {
            self.reply(client, reply.clone());
        }
    }

    /// The reload in flight will be retried (its preflight was for an
    /// epoch that will not come next): its waiters wait for the retry.
    pub(super) fn reload_postponed(&mut self) {
        if let Some(mut current) = self.report.current.take() {
            // The retry answers to what asked for this one.
            let mut trigger = current.trigger.take();
            match (&mut trigger, self.trigger.take()) {
                (Some(mine), Some(held)) => mine.absorb(held),
                (None, held) => trigger = held,
                (Some(_), None) => {}
            }
            self.trigger = trigger;
            current.waiters.append(&mut self.report.held_waiters);
            self.report.held_waiters = current.waiters;
        }
    }

    /// Shutting down or tearing down: no reload will come.
    pub(super) fn reloads_abandoned(&mut self, why: &str) {
        self.trigger = None;
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

    pub(super) fn wait_for_current_reload(&mut self, client: WaiterId) {
        match &mut self.report.current {
            Some(current) => current.waiters.push(client),
            // It began and ended within this request (a refused restart):
            // answer as it ended.
            None => match self.report.last.clone() {
                Some(LastReload {
                    reason: Some(reason),
                    ..
                }) => self.reply_failed(client, &reason),
                _ => self.reply_done(client, "reloaded"),
            },
        }
    }

    pub(super) fn wait_for_held_reload(&mut self, client: WaiterId) {
        self.report.held_waiters.push(client);
    }

    pub(super) fn wait_for_exit(&mut self, client: WaiterId) {
        self.report.stop_waiters.push(client);
    }

    /// A client hung up: forget it wherever it waits.
    pub(super) fn on_control_gone(&mut self, client: WaiterId) {
        let r = &mut self.report;
        r.held_waiters.retain(|c| *c != client);
        r.stop_waiters.retain(|c| *c != client);
        if let Some(current) = &mut r.current {
            current.waiters.retain(|c| *c != client);
        }
        // The reexec itself stays requested; only its answer is not due.
        if let Some(waiters) = &mut self.reexec {
            waiters.retain(|c| *c != client);
        }
    }

    /// Whether a reload (or handoff) has begun and not ended.
    pub(super) fn reload_in_flight(&self) -> bool {
        self.report.current.is_some()
    }

    /// Clients waiting for the wrapper to exit; the driver answers them
    /// last, once the pid file and the socket are gone.
    pub fn take_stop_waiters(&mut self) -> Vec<WaiterId> {
        std::mem::take(&mut self.report.stop_waiters)
    }

    pub(super) fn status(&self) -> StatusView {
        StatusView {
            pid: self.report.pid,
            phase: self.phase(),
            uptime: self.now.saturating_duration_since(self.report.started),
            children: (self.children.iter())
                .filter(|c| c.state != ChildState::Abandoned)
                .cloned()
                .collect(),
            last_reload: self.report.last.clone(),
            counters: self.report.counters.clone(),
            reexecs: self.reexecs,
        }
    }
}
