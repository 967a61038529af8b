//! The fake driver: it turns steps into events, feeds them to the core and
//! carries out the actions in the order `src/driver/` does (a spawn's
//! outcome goes back to the core at once and what follows from it runs
//! before the rest of the earlier actions; so does the answer to a question
//! answered at once). Before each event `predict.rs` moves the model on;
//! `actions.rs` carries out and checks each action (`admin.rs` the
//! questions, `control.rs` the replies); `checks.rs` and `handoff.rs`
//! compare the whole state after the event.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hot_restarter::core::{Action, Core, Event, Exit, LogLine, Settings};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::admin::Asked;
use crate::control::Client;
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
    /// Questions to Envoy's admin (or --envoy-bin) not answered yet.
    pub asks: Vec<Asked>,
    /// The question whose answer is the event being handled.
    pub answering: Option<Asked>,
    /// Questions answered at once during the event being handled.
    pub at_once: u32,
    /// Every control client so far, in order.
    pub clients: Vec<Client>,
    trace: Vec<String>,
    /// The log lines of the event being handled, nested calls included.
    /// With the first pid not started yet when each was written.
    pub logged: Vec<(LogLine, i32)>,
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
            asks: Vec::new(),
            answering: None,
            at_once: 0,
            clients: Vec::new(),
            trace: Vec::new(),
            logged: Vec::new(),
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
            Op::Changed(n) => self.event(Event::Changed(
                (0..*n)
                    .map(|i| format!("/etc/envoy/watched-{i}\n.yaml").into())
                    .collect(),
            )),
            Op::Usr1 => self.event(Event::Signal(Signal::SIGUSR1)),
            Op::Term => self.event(Event::Signal(Signal::SIGTERM)),
            Op::Int => self.event(Event::Signal(Signal::SIGINT)),
            Op::Exit {
                children,
                newest,
                helpers,
                statuses,
                orphan,
            } => {
                // Picked by index (from the newest child with `newest`),
                // reaped in start order.
                let exiting = |child: bool, mask: u8, newest: bool| {
                    let all: Vec<_> = (self.w.procs.iter())
                        .filter(|p| p.can_exit() && p.is_child() == child)
                        .collect();
                    let n = all.len();
                    let at = move |i: usize| if newest { n - 1 - i } else { i };
                    (all.into_iter().enumerate())
                        .filter(move |&(i, _)| at(i) < 8 && mask & (1 << at(i)) != 0)
                        .map(|(_, p)| p)
                };
                let mut batch: Vec<(Pid, Exit)> = (exiting(true, *children, *newest))
                    .chain(exiting(false, *helpers, false))
                    .enumerate()
                    .map(|(i, p)| (p.pid, p.dying.unwrap_or(statuses[i % statuses.len()])))
                    .collect();
                if let Some(exit) = orphan {
                    batch.push((self.w.fresh_pid(), *exit));
                }
                self.reap(batch);
            }
            Op::Drained => {
                let live: Vec<_> = self.w.live_children().filter(|p| p.can_exit()).collect();
                let batch = match live[..] {
                    [old, _, ..] => vec![(old.pid, old.dying.unwrap_or(Exit::Code(0)))],
                    _ => vec![],
                };
                self.reap(batch);
            }
            Op::ReapDying => {
                let batch = self.dying();
                self.reap(batch);
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
            Op::Usr2 => self.event(Event::Signal(Signal::SIGUSR2)),
            Op::Answer { pick, kind } => self.answer(*pick, *kind),
            Op::Control(request) => self.control(*request),
            Op::Gone(pick) => self.gone(*pick),
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
                self.reap(batch);
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

    /// Reap `batch`, as the driver does: what each version probe in it wrote
    /// comes to the core first.
    fn reap(&mut self, batch: Vec<(Pid, Exit)>) {
        for (pid, _) in &batch {
            let output = match self.w.get(*pid) {
                Some(p) if matches!(p.kind, Kind::Probe(_)) => p.output.clone(),
                _ => continue,
            };
            self.event(Event::HelperOutput(*pid, output));
        }
        self.event(Event::Reaped(batch));
    }

    /// Every process that was signalled to death and has not exited yet.
    pub fn dying(&self) -> Vec<(Pid, Exit)> {
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
        self.at_once = 0;
        self.regroup.clear();
        self.acted = 0;
        let at = self.now.duration_since(self.t0).as_millis();
        self.trace.push(format!("+{at}ms {ev:?}"));
        self.logged.clear();
        let expect = self.expect(&ev);
        let was_ended = matches!(self.m.mode, Mode::Ended { .. });
        self.predict(&ev);
        let first = self.handle(ev.clone());
        let mut queue: VecDeque<(Action, bool)> = first.into_iter().map(|a| (a, false)).collect();
        while let Some((action, nested)) = queue.pop_front() {
            self.acted += 1;
            self.ensure(self.acted <= 1000, || {
                "I7: one event led to more than 1000 actions: the core loops".into()
            });
            self.trace.push(format!("    {action:?}"));
            self.ensure(
                !matches!(action, Action::Reexec(_)) || queue.is_empty(),
                || format!("R1: Reexec before other actions, lost by the exec: {queue:?}"),
            );
            if let Some(reply) = self.act(action, nested) {
                self.trace.push(format!("    -> {reply:?}"));
                let more = self.handle(reply);
                for a in more.into_iter().rev() {
                    queue.push_front((a, true));
                }
            }
        }
        self.answering = None;
        self.after(&ev, before, poll);
        let ended_now = !was_ended && matches!(self.m.mode, Mode::Ended { .. });
        self.check_log(&expect, ended_now);
    }

    /// One call of the core, and what is checked after each: no change of
    /// state was refused as senseless (I7), Envoy's readiness (A1).
    fn handle(&mut self, ev: Event) -> Vec<Action> {
        let from = self.core.phase();
        let actions = self.core.handle(ev.clone(), self.now);
        self.check_table(&ev, from, self.core.phase());
        let log = self.core.take_log();
        for line in &log {
            self.trace
                .push(format!("    [{}] {}", line.level, line.text));
        }
        let next = self.w.peek_pid();
        self.logged.extend(log.into_iter().map(|l| (l, next)));
        self.ensure(self.core.refused() == 0, || {
            "I7: the core refused a change of state as senseless".into()
        });
        self.check_declared();
        actions
    }
}
