//! The model, moved on before the core sees each event: what the event
//! means from the events and the fake world alone (never from the core's
//! views). Nested events (a spawn's outcome, an answer given at once) are
//! predicted where the fake driver produces them, in `actions.rs` and
//! `admin.rs`.

use hot_restarter::core::Command;
use hot_restarter::core::Exit;
use hot_restarter::core::{Event, KILL_REAP_WAIT};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::handoff::ReadyProbe;
use crate::harness::Harness;
use crate::model::{Mode, Stage};
use crate::world::Kind;

impl Harness {
    pub fn predict(&mut self, ev: &Event) {
        self.m.term_event = false;
        self.m.preflight_passed = None;
        self.m.usr1_due.clear();
        self.m.handoff_failed_now = false;
        self.m.retired_now = false;
        self.m.rescue_now = false;
        self.m.succeeded = None;
        match ev {
            Event::Start | Event::Spawned(..) | Event::Signal(_) | Event::Control(..)
                if !self.m.running() => {}
            Event::Signal(Signal::SIGTERM | Signal::SIGINT) => self.predict_term(),
            Event::Signal(Signal::SIGHUP) => self.m.hup_pending = true,
            // --watch: a reload as SIGHUP's.
            Event::Changed(paths) if !paths.is_empty() => self.m.hup_pending = true,
            Event::Changed(_) => {}
            Event::Signal(Signal::SIGUSR2) => self.predict_handoff_request(),
            Event::Signal(Signal::SIGUSR1) => self.predict_usr1(),
            Event::Control(_, request) => match request {
                Command::Reload { .. } => self.m.hup_pending = true,
                Command::Handoff { .. } => self.predict_handoff_request(),
                Command::ReopenLogs => self.predict_usr1(),
                Command::Stop { .. } => self.predict_term(),
                Command::Status | Command::Reexec { .. } => {}
            },
            Event::Reaped(batch) => self.predict_reaped(batch),
            Event::Tick => self.predict_tick(),
            Event::Answered(_, answer) => self.predict_answer(answer),
            Event::Start | Event::Spawned(..) | Event::Signal(_) => {}
            // Not generated.
            Event::HelperOutput(..) | Event::ControlGone(_) | Event::ReexecFailed(_) => {}
        }
    }

    fn predict_term(&mut self) {
        self.m.mode = Mode::Terminating {
            deadline: self.now + self.s.term_wait,
        };
        self.m.term_event = true;
        self.stop_restarts();
    }

    /// Shutdown or teardown: no restart is pending or in flight any more.
    fn stop_restarts(&mut self) {
        self.m.hup_pending = false;
        self.m.pending_handoff = false;
        self.m.preflight = None;
        self.m.compare = None;
        self.m.decided = None;
        self.m.retire = None;
    }

    /// SIGUSR2 or `handoff`: ignored without --handoff-admin.
    fn predict_handoff_request(&mut self) {
        if self.s.handoff {
            self.m.hup_pending = true;
            self.m.pending_handoff = true;
        }
    }

    /// SIGUSR1 goes to every child that is ready (a retiring generation's
    /// too), never to one whose readiness is still checked.
    fn predict_usr1(&mut self) {
        self.m.usr1_due = (self.w.children())
            .filter(|p| p.ready && !p.abandoned)
            .map(|p| p.pid)
            .collect();
    }

    fn predict_reaped(&mut self, batch: &[(Pid, Exit)]) {
        let running = self.m.running();
        let serving = self.m.serving;
        // (epoch, was it awaited)
        let mut failed: Vec<(u32, bool)> = Vec::new();
        let mut helpers = Vec::new();
        let chain = self.chain_exits(batch);
        for &(pid, exit) in batch {
            if chain.contains(&pid) {
                let p = self.w.get_mut(pid).expect("a child");
                p.reaped = true;
                continue;
            }
            let Some(p) = self.w.get_mut(pid) else {
                continue; // an orphan
            };
            assert!(!p.reaped, "fake world: PID={pid} reaped twice");
            p.reaped = true;
            if p.given_up {
                continue;
            }
            match p.kind {
                Kind::Child(_) if !running || p.abandoned => {}
                // Handed off: its exit is expected and decides nothing.
                Kind::Child(_) if p.retiring => self.m.retired_now = true,
                // A new generation before it was LIVE, whatever its exit.
                // A non-zero exit is a failed child for the exit code too.
                Kind::Child(_) if p.generation != serving => {
                    self.m.handoff_failed_now = true;
                    self.m.failure_seen |= !exit.is_clean();
                }
                Kind::Child(e) if !exit.is_clean() => failed.push((e, !p.ready)),
                Kind::Child(_) => {}
                kind if !p.killed => {
                    self.regroup.push(pid);
                    helpers.push((kind, pid, exit));
                }
                _ => {}
            }
        }
        if !failed.is_empty() {
            self.m.failure_seen = true;
            for &(e, _) in &failed {
                self.m.epochs.failed(e);
            }
            if failed.iter().any(|&(_, awaited)| awaited) {
                // A new epoch died before it was ready: Envoy refuses every
                // further hot restart of this generation (#33446).
                self.m.wedged = true;
            }
            let newest = self.w.serving(serving).map(|p| p.epoch()).max();
            let handing_off = self.w.awaited().is_some_and(|c| c.generation != serving);
            let none_live = self.w.live_children().next().is_none();
            if self.s.keep_serving && none_live && self.take_back_retiring() {
                // The generation it took over from serves again.
            } else if !self.s.keep_serving || none_live {
                self.tear_down();
            } else if let Some(newest) = newest
                && !failed.iter().any(|&(e, _)| e > newest)
            {
                // An older epoch failed while newer ones run.
            } else if handing_off {
                // The serving generation lost its newest epoch (or every
                // epoch) while a new generation starts: the handoff goes on,
                // and a later hot restart follows the newest live epoch.
                if let Some(newest) = newest {
                    self.m.epochs.restart_failed(newest);
                }
            } else {
                // A failed restart (the newest epoch failed): the next one
                // follows the newest epoch still serving.
                self.m
                    .epochs
                    .restart_failed(newest.expect("live, not handing off"));
                self.m.compare = None;
                if let Some(f) = self.m.preflight.take() {
                    // The preflight checked the number after the failed
                    // epoch: the restart (or handoff) is tried again, and a
                    // handoff requested meanwhile stays one.
                    self.m.hup_pending = true;
                    self.m.pending_handoff |= f.generation != serving;
                }
            }
        }
        self.retirees_gone();
        if !self.m.running() {
            return;
        }
        for (kind, pid, exit) in helpers {
            match kind {
                Kind::Preflight(n) if self.m.preflight.is_some_and(|f| f.pid == pid) => {
                    let g = self.m.preflight.expect("checked").generation;
                    self.m.preflight = None;
                    if exit.is_clean() && self.w.live_children().next().is_some() {
                        self.m.preflight_passed = Some((n, g));
                    }
                }
                Kind::ReadyCheck { child, .. }
                    if self.w.awaited().map(|c| c.pid) == Some(child) =>
                {
                    self.probe_ended(child, ReadyProbe::Script, exit.is_clean());
                }
                Kind::Probe(_) => self.probe_exited(pid, exit),
                _ => {}
            }
        }
    }

    /// Exits that break a hot-restart chain (Envoy 1.40, see `doom.rs` in
    /// the core), judged in batch order with the whole batch gone: the
    /// parent of a starting epoch (any exit) makes it hopeless, killed at
    /// once, and then nothing serves (a handoff, else a teardown); an
    /// older epoch failing dooms the newest one (a handoff now, or hot
    /// restarts refused). Returns the pids so judged.
    fn chain_exits(&mut self, batch: &[(Pid, Exit)]) -> Vec<Pid> {
        let serving = self.m.serving;
        if !self.m.running() {
            return Vec::new();
        }
        let gone: Vec<Pid> = batch.iter().map(|b| b.0).collect();
        let left = |w: &crate::world::World| -> Vec<(u32, Pid, bool)> {
            w.serving(serving)
                .filter(|p| !gone.contains(&p.pid))
                .map(|p| (p.epoch(), p.pid, p.ready))
                .collect()
        };
        let mut judged = Vec::new();
        let mut teardown = false;
        for &(pid, exit) in batch {
            let Some(p) = self.w.get(pid) else { continue };
            let chained = p.is_child()
                && !p.abandoned
                && !p.retiring
                && !p.given_up
                && p.ready
                && p.generation == serving;
            if !chained || (!exit.is_clean() && !self.s.keep_serving) {
                continue;
            }
            let epoch = p.epoch();
            let live = left(&self.w);
            let starting = live.iter().find(|c| !c.2).map(|c| c.1);
            let newer = live.iter().any(|c| c.2 && c.0 > epoch);
            if !newer {
                let Some(starting) = starting else { continue };
                judged.push(pid);
                self.m.rescue_now = true;
                self.w.get_mut(starting).expect("a child").abandoned = true;
                self.m.failure_seen = true;
                if self.s.handoff {
                    self.m.hup_pending = true;
                    self.m.pending_handoff = true;
                } else {
                    teardown = true;
                }
            } else if !exit.is_clean() {
                judged.push(pid);
                self.m.rescue_now = true;
                self.m.epochs.failed(epoch);
                self.m.failure_seen = true;
                self.m.wedged = true;
                self.m.doomed = Some(serving);
                if let Some(starting) = starting {
                    self.w.get_mut(starting).expect("a child").abandoned = true;
                }
                let handing_off = self.w.awaited().is_some_and(|c| c.generation != serving)
                    || self.m.preflight.is_some_and(|f| f.generation != serving);
                if self.s.handoff && !handing_off {
                    self.m.hup_pending = true;
                    self.m.pending_handoff = true;
                }
            }
        }
        if teardown {
            self.tear_down();
        }
        judged
    }

    fn predict_tick(&mut self) {
        let now = self.now;
        match self.m.mode {
            Mode::Terminating { deadline } if now >= deadline => {
                self.m.mode = Mode::Killing {
                    deadline: now + KILL_REAP_WAIT,
                };
            }
            Mode::Killing { deadline } if now >= deadline => {
                for p in self.w.procs.iter_mut() {
                    if p.is_child() && p.tracked() {
                        p.given_up = true;
                    }
                }
                self.m.mode = Mode::Ended { at: now, code: 1 };
            }
            Mode::Ended { at, .. } if now >= at + KILL_REAP_WAIT => {
                for p in self.w.procs.iter_mut() {
                    if !p.is_child() && p.tracked() {
                        p.given_up = true;
                    }
                }
            }
            Mode::Running => {
                let late = (self.w.awaited())
                    .filter(|c| now >= c.born + self.s.ready_timeout)
                    .map(|c| c.pid);
                if let Some(pid) = late {
                    self.ready_timed_out(pid);
                } else if let Some(f) = self.m.preflight
                    && now >= f.begun + self.s.preflight_timeout
                {
                    self.m.preflight = None;
                } else if let Some(c) = &self.m.compare
                    && now >= c.deadline
                {
                    // Missing versions are errors: a hot restart.
                    self.m.compare = None;
                    self.m.decided = Some(crate::model::RestartKind::Hot);
                } else if let Some(r) = self.m.retire {
                    self.retire_deadlines(r.stage);
                }
            }
            _ => {}
        }
    }

    /// The awaited epoch was not ready in time: SIGKILLed. A new
    /// generation's failure takes nothing else down.
    fn ready_timed_out(&mut self, pid: Pid) {
        let serving = self.m.serving;
        let p = self.w.get_mut(pid).expect("child");
        p.abandoned = true;
        if p.generation != serving {
            // Killed for not being LIVE in time: a failed child too.
            self.m.handoff_failed_now = true;
            self.m.failure_seen = true;
            return;
        }
        let epoch = p.epoch();
        self.m.failure_seen = true;
        self.m.wedged = true;
        self.m.epochs.failed(epoch);
        match self.w.serving(serving).map(|p| p.epoch()).max() {
            Some(newest) if self.s.keep_serving => self.m.epochs.restart_failed(newest),
            _ => self.tear_down(),
        }
    }

    fn retire_deadlines(&mut self, stage: Stage) {
        let now = self.now;
        match stage {
            Stage::Draining { limit, .. } | Stage::Counting { limit } if now >= limit => {
                self.stop_retiring()
            }
            Stage::Watching { limit, .. } if now >= limit => self.stop_retiring(),
            Stage::Watching { next, limit } if now >= next => {
                self.set_stage(Stage::Counting { limit });
            }
            Stage::Stopping { deadline } if now >= deadline => {
                self.m.kill_due = self.w.retiring().map(|p| p.pid).collect();
                let wait = KILL_REAP_WAIT.max(self.s.term_wait);
                self.set_stage(Stage::Stopping {
                    deadline: now + wait,
                });
            }
            _ => {}
        }
    }

    pub fn tear_down(&mut self) {
        self.m.torn_down = true;
        self.m.mode = Mode::Killing {
            deadline: self.now + KILL_REAP_WAIT,
        };
        self.stop_restarts();
    }
}
