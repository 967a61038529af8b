//! The fake driver: it turns steps into events, feeds them to the core and
//! carries out the actions in the order `src/driver.rs` does (a spawn's
//! outcome goes back to the core at once and what follows from it runs
//! before the rest of the earlier actions). Before each event it moves the
//! model on; `actions.rs` carries out and checks each action; `checks.rs`
//! compares the whole state after the event.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hot_restarter::core::{Action, Core, Event, KILL_REAP_WAIT, Settings};
use hot_restarter::policy::Exit;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::model::{Mode, Model};
use crate::ops::{Luck, Op, Step};
use crate::world::{Kind, World};

pub struct Harness {
    pub s: Settings,
    pub core: Core,
    t0: Instant,
    pub now: Instant,
    pub w: World,
    pub m: Model,
    pub luck: Luck,
    /// Spawns asked for during the event being handled.
    pub spawns: u32,
    /// Helpers reaped in the batch being handled, not killed before: the
    /// core must KillGroup each once, from its handling of that batch.
    pub regroup: Vec<Pid>,
    /// Actions carried out for the event being handled.
    pub acted: usize,
    trace: Vec<String>,
}

impl Harness {
    pub fn start(s: Settings, luck: Luck) -> Harness {
        let now = Instant::now();
        let mut h = Harness {
            core: Core::new(s.clone(), now),
            s,
            t0: now,
            now,
            w: World::new(),
            m: Model::new(),
            luck,
            spawns: 0,
            regroup: Vec::new(),
            acted: 0,
            trace: Vec::new(),
        };
        h.event(Event::Start);
        h
    }

    pub fn done(&self) -> bool {
        self.core.exit_code().is_some()
    }

    /// Fail with the message and the last events and actions.
    pub fn fail(&self, msg: String) -> ! {
        let from = self.trace.len().saturating_sub(60);
        panic!(
            "{msg}\n  settings: {:?}\n  epochs started: {:?}\n  last events:\n{}",
            self.s,
            self.m.epochs.started,
            self.trace[from..].join("\n")
        );
    }

    pub fn ensure(&self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(msg());
        }
    }

    /// Take one random step (nothing once the wrapper is done: it exited).
    pub fn step(&mut self, step: &Step) {
        if self.done() {
            return;
        }
        self.luck = step.luck;
        match &step.op {
            Op::Hup => self.event(Event::Signal(Signal::SIGHUP)),
            Op::Usr1 => self.event(Event::Signal(Signal::SIGUSR1)),
            Op::Term => self.event(Event::Signal(Signal::SIGTERM)),
            Op::Int => self.event(Event::Signal(Signal::SIGINT)),
            Op::Exit {
                children,
                helpers,
                statuses,
                orphan,
            } => {
                let exiting = |child: bool, mask: u8| {
                    (self.w.procs.iter())
                        .filter(move |p| p.can_exit() && p.is_child() == child)
                        .enumerate()
                        .filter(move |&(i, _)| i < 8 && mask & (1 << i) != 0)
                        .map(|(_, p)| p)
                };
                let mut batch: Vec<(Pid, Exit)> = (exiting(true, *children))
                    .chain(exiting(false, *helpers))
                    .enumerate()
                    .map(|(i, p)| (p.pid, p.dying.unwrap_or(statuses[i % statuses.len()])))
                    .collect();
                if let Some(exit) = orphan {
                    batch.push((self.w.fresh_pid(), *exit));
                }
                self.event(Event::Reaped(batch));
            }
            Op::Drained => {
                let live: Vec<_> = self.w.live_children().filter(|p| p.can_exit()).collect();
                let batch = match live[..] {
                    [old, _, ..] => vec![(old.pid, old.dying.unwrap_or(Exit::Code(0)))],
                    _ => vec![],
                };
                self.event(Event::Reaped(batch));
            }
            Op::ReapDying => {
                let batch = self.dying();
                self.event(Event::Reaped(batch));
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.event(Event::Tick);
            }
            Op::PastDeadline(ms) => {
                if let Some(t) = self.core.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.now += Duration::from_millis(u64::from(*ms));
                self.event(Event::Tick);
            }
        }
    }

    /// Drive the run to its end: SIGTERM, let every signalled process die,
    /// let time reach each deadline. The core must get to Done.
    pub fn finish(&mut self) {
        self.luck = Luck::default();
        self.event(Event::Signal(Signal::SIGTERM));
        for _ in 0..50 {
            if self.done() {
                return;
            }
            let batch = self.dying();
            if !batch.is_empty() {
                self.event(Event::Reaped(batch));
            } else if let Some(t) = self.core.poll_timeout() {
                self.now = self.now.max(t);
                self.event(Event::Tick);
            } else {
                self.fail(format!(
                    "liveness: after SIGTERM the core waits in {:?} with no deadline, and no \
                     process is left to exit",
                    self.core.phase()
                ));
            }
        }
        self.fail("liveness: not done after 50 turns of the final drive".into());
    }

    /// Every process that was signalled to death and has not exited yet.
    fn dying(&self) -> Vec<(Pid, Exit)> {
        (self.w.procs.iter())
            .filter(|p| !p.reaped)
            .filter_map(|p| Some((p.pid, p.dying?)))
            .collect()
    }

    /// Feed one event and carry out what follows, as `Driver::feed` does.
    pub fn event(&mut self, ev: Event) {
        if self.done() {
            return;
        }
        let before = self.snapshot();
        let poll = self.core.poll_timeout();
        self.spawns = 0;
        self.regroup.clear();
        self.acted = 0;
        let at = self.now.duration_since(self.t0).as_millis();
        self.trace.push(format!("+{at}ms {ev:?}"));
        self.predict(&ev);
        let first = self.core.handle(ev.clone(), self.now);
        let mut queue: VecDeque<(Action, bool)> = first.into_iter().map(|a| (a, false)).collect();
        while let Some((action, nested)) = queue.pop_front() {
            self.acted += 1;
            self.ensure(self.acted <= 1000, || {
                "I7: one event led to more than 1000 actions: the core loops".into()
            });
            self.trace.push(format!("    {action:?}"));
            if let Some(reply) = self.act(action, nested) {
                self.trace.push(format!("    -> {reply:?}"));
                let more = self.core.handle(reply, self.now);
                for a in more.into_iter().rev() {
                    queue.push_front((a, true));
                }
            }
        }
        self.after(&ev, before, poll);
    }

    // ----- the model, before the core sees the event ---------------------

    fn predict(&mut self, ev: &Event) {
        self.m.term_event = false;
        self.m.preflight_passed = None;
        self.m.usr1_due.clear();
        match ev {
            Event::Start | Event::Spawned(..) | Event::Signal(_) if !self.m.running() => {}
            Event::Signal(Signal::SIGTERM | Signal::SIGINT) => {
                self.m.mode = Mode::Terminating {
                    deadline: self.now + self.s.term_wait,
                };
                self.m.term_event = true;
                self.m.hup_pending = false;
                self.m.preflight = None;
            }
            Event::Signal(Signal::SIGHUP) => self.m.hup_pending = true,
            Event::Signal(Signal::SIGUSR1) => {
                self.m.usr1_due = (self.w.live_children())
                    .filter(|p| p.ready)
                    .map(|p| p.pid)
                    .collect();
            }
            Event::Reaped(batch) => self.predict_reaped(batch),
            Event::Tick => self.predict_tick(),
            Event::Start | Event::Spawned(..) | Event::Signal(_) => {}
            // Not generated: the admin and the control socket are outside
            // this model (tests/admin_readiness.rs, tests/control.rs).
            Event::Answered(..)
            | Event::HelperOutput(..)
            | Event::Control(..)
            | Event::ControlGone(_) => {}
        }
    }

    fn predict_reaped(&mut self, batch: &[(Pid, Exit)]) {
        let running = self.m.running();
        let mut failed = Vec::new();
        let mut helpers = Vec::new();
        for &(pid, exit) in batch {
            let Some(p) = self.w.get_mut(pid) else {
                continue; // an orphan
            };
            assert!(!p.reaped, "fake world: PID={pid} reaped twice");
            p.reaped = true;
            if p.given_up {
                continue;
            }
            match p.kind {
                Kind::Child(e) if running && !p.abandoned && !exit.is_clean() => failed.push(e),
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
            for &e in &failed {
                self.m.epochs.failed(e);
            }
            let newest = self.w.live_children().map(|p| p.epoch()).max();
            if !self.s.keep_serving || newest.is_none() {
                self.tear_down();
            } else if let Some(newest) = newest
                && failed.iter().any(|&e| e > newest)
            {
                // A failed restart (the newest epoch failed): the next one
                // follows the newest epoch still serving.
                self.m.epochs.restart_failed(newest);
                if self.m.preflight.take().is_some() {
                    // The preflight checked the number after the failed
                    // epoch: the restart is tried again.
                    self.m.hup_pending = true;
                }
            }
        }
        if !self.m.running() {
            return;
        }
        for (kind, pid, exit) in helpers {
            match kind {
                Kind::Preflight(n) if self.m.preflight.is_some_and(|f| f.pid == pid) => {
                    self.m.preflight = None;
                    if exit.is_clean() && self.w.live_children().next().is_some() {
                        self.m.preflight_passed = Some(n);
                    }
                }
                Kind::ReadyCheck { child, .. }
                    if self.w.awaited().map(|c| c.pid) == Some(child) =>
                {
                    if exit.is_clean() {
                        self.w.get_mut(child).expect("child").ready = true;
                    } else {
                        self.m.check_due = Some(self.now + self.s.ready_interval);
                    }
                }
                _ => {}
            }
        }
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
                    let p = self.w.get_mut(pid).expect("child");
                    p.abandoned = true;
                    let epoch = p.epoch();
                    self.m.failure_seen = true;
                    self.m.epochs.failed(epoch);
                    match self.w.live_children().map(|p| p.epoch()).max() {
                        Some(newest) if self.s.keep_serving => self.m.epochs.restart_failed(newest),
                        _ => self.tear_down(),
                    }
                } else if let Some(f) = self.m.preflight
                    && now >= f.begun + self.s.preflight_timeout
                {
                    self.m.preflight = None;
                }
            }
            _ => {}
        }
    }

    pub fn tear_down(&mut self) {
        self.m.mode = Mode::Killing {
            deadline: self.now + KILL_REAP_WAIT,
        };
        self.m.preflight = None;
    }
}
