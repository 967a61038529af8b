//! The core that decides: it owns the live children, the phase and the
//! restart in flight, takes events (signals, exits, spawn results, the
//! passing of time) and returns actions (spawn, signal, notify). It starts
//! no process and makes no system call, so every decision can be driven and
//! checked on its own (see `tests/core_props.rs`); `crate::driver` carries
//! the actions out.
//!
//! The state is one enum, `Phase`, in the manner of systemd's
//! `ServiceState`: what the wrapper is doing is never derived from a
//! combination of flags. The few remaining fields are facts (a SIGHUP is
//! held, a child has failed, helpers were killed and await reaping).
//!
//! Log lines are the core's output too ([`LogLine`], taken with
//! [`Core::take_log`]): each is made where its decision is made, with that
//! source location, and the property tests read them.

/// Log a line from the core: it is kept, with its level, where it was
/// written (module, file, line) and its text, until the driver takes it
/// with [`Core::take_log`] and hands it to the `log` crate.
macro_rules! say {
    ($core:expr, $level:ident, $($arg:tt)+) => {
        $core.log.push($crate::core::LogLine {
            level: log::Level::$level,
            text: format!($($arg)+),
            site: {
                static SITE: $crate::core::LogSite = $crate::core::LogSite {
                    target: module_path!(),
                    file: file!(),
                    line: line!(),
                };
                &SITE
            },
        })
    };
}

mod commands;
mod doom;
mod drain;
mod exits;
mod handoff;
mod helpers;
pub mod policy;
mod quote;
mod ready;
mod reexec;
mod report;
mod restart;
#[cfg(test)]
mod tests;
mod transition;
mod types;
mod view;

pub use quote::{escape_controls, quoted};
pub use reexec::{ChildFacts, Snapshot};
pub use report::{Counters, LastReload, ReloadResult, StatusView};
pub use types::*;

use std::time::{Duration, Instant};

use nix::unistd::Pid;

pub use policy::{Ending, Exit};

/// How long SIGKILLed processes may take to be reaped before the wrapper
/// gives up on them. SIGKILL cannot be refused, so this only matters for a
/// process stuck in uninterruptible sleep.
pub const KILL_REAP_WAIT: Duration = Duration::from_secs(5);

/// A helper process (preflight, ready check) as the core sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Helper {
    /// Asked for; `Event::Spawned` comes next.
    Spawning,
    Running(Pid),
    /// Reaped in the batch being handled; judged once the batch's children
    /// have been (a crash in the same batch may mean a teardown).
    Exited(Pid, Exit),
}

/// One readiness probe of an epoch that has started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// Not configured.
    Off,
    /// Run it (again) at this moment.
    Due(Instant),
    /// The ready-check script runs.
    Running(Helper),
    /// A question to Envoy's admin is out.
    Asking,
    Passed,
}

/// The preflight of a restart to `epoch` of `generation` (a new
/// generation: a handoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Preflight {
    epoch: u32,
    generation: u32,
    started: Instant,
    deadline: Instant,
    helper: Helper,
}

/// An epoch that has started and is ready once every probe has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Awaiting {
    epoch: u32,
    generation: u32,
    pid: Pid,
    started: Instant,
    deadline: Instant,
    script: Probe,
    admin: Probe,
    /// What Envoy's admin said last, for the log when time runs out.
    admin_said: Option<String>,
}

/// A restart in flight. Without `--preflight` and readiness checks a restart
/// is over as soon as the child is forked, as in the Python wrapper, and
/// the work stays `Idle`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Work {
    Idle,
    /// The start script for `epoch` is being forked; `Event::Spawned`
    /// comes next.
    Forking {
        epoch: u32,
        generation: u32,
    },
    /// `--envoy-bin`: the binary's and the running Envoy's hot-restart
    /// versions are asked for, to choose between a hot restart and a
    /// handoff.
    Comparing {
        started: Instant,
        deadline: Instant,
        /// `--envoy-bin PATH --hot-restart-version`.
        probe: Helper,
        binary: Option<Result<String, String>>,
        running: Option<Result<String, String>>,
    },
    /// Before a new generation starts, its admin address is asked whether
    /// anything answers there already.
    Checking {
        generation: u32,
    },
    Preflight(Preflight),
    Awaiting(Awaiting),
    /// The new generation serves; the old one (`from`) drains and stops.
    Retiring(Retiring),
}

/// The old generation's way out after a handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retiring {
    from: u32,
    /// When the handoff began, for its duration.
    started: Instant,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `POST /drain_listeners?graceful` is out.
    Draining { limit: Instant },
    /// Its listeners are counted again at `next`; at `limit` it is stopped
    /// whatever the count.
    Watching { next: Instant, limit: Instant },
    /// A count is out.
    Counting { limit: Instant },
    /// SIGTERM sent; SIGKILL at `deadline`.
    Stopping { deadline: Instant },
}

/// A restart request waiting for the one in flight to end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    /// A hot restart (SIGHUP, `reload`).
    Restart,
    /// A handoff (SIGUSR2, `handoff`), with why; it absorbs a held restart.
    Handoff(String),
}

/// What the wrapper is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Serving, and maybe restarting.
    Running(Work),
    /// `--drain-on-stop`: the serving Envoys drain before the SIGTERM.
    Draining(drain::StopDrain),
    /// SIGTERM/SIGINT passed on; children have until `deadline`.
    ShuttingDown {
        deadline: Instant,
    },
    /// Every child was SIGKILLed; once they are reaped the wrapper ends as
    /// `ending` says.
    Killing {
        deadline: Instant,
        ending: Ending,
    },
    /// No child is left; killed helpers are still to be reaped.
    Exiting {
        deadline: Instant,
        ending: Ending,
    },
    Done(Ending),
}

/// The name of the phase, for status reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseName {
    Running,
    Preflight,
    Starting,
    /// The old generation drains and stops after a handoff.
    HandingOff,
    /// `--drain-on-stop`: draining before the stop.
    DrainingForStop,
    ShuttingDown,
    Killing,
    Exiting,
    Done,
}

pub struct Core {
    s: Settings,
    phase: Phase,
    /// Live children in start order; the last one is the newest epoch.
    children: Vec<Child>,
    /// The serving generation; hot restarts start its next epoch.
    generation: u32,
    next_epoch: u32,
    /// A restart request waits for the one in flight (or a drain) to end.
    held: Option<Held>,
    /// Fact: a new epoch died (or was killed) before it was ready, so
    /// Envoy refuses every further hot restart of this generation
    /// (envoyproxy/envoy #33446); with handoff the next reload hands off.
    wedged: bool,
    /// Fact: the serving epoch of this generation will abort, its draining
    /// hot-restart parent having died (see `doom.rs`), and why.
    doomed: Option<(u32, String)>,
    /// Fact: a child failed, or a restart failed, during this run. With
    /// --keep-serving the wrapper carries on, but exits 1 in the end.
    failed: bool,
    /// Helpers that were SIGKILLed and are not reaped yet.
    killed_helpers: Vec<Pid>,
    /// What the last helper wrote to stderr, to explain its failure.
    helper_said: Option<(Pid, String)>,
    actions: Vec<Action>,
    /// The time of the event being handled.
    now: Instant,
    report: report::Reporting,
    /// Changes of state refused as senseless (see `transition.rs`).
    refused: u32,
    /// Log lines not taken yet.
    log: Vec<LogLine>,
    /// What asked for the restart that is held or about to begin; the
    /// reload takes it when it begins (for its status).
    trigger: Option<Trigger>,
    /// A reexec asked for and held until nothing is in flight, with the
    /// clients waiting for its answer.
    reexec: Option<Vec<WaiterId>>,
    /// Reexecs that took over since the wrapper was first started.
    reexecs: u64,
}

impl Core {
    pub fn new(settings: Settings, now: Instant) -> Core {
        Core {
            report: report::Reporting::new(settings.pid, now),
            s: settings,
            phase: Phase::Running(Work::Idle),
            children: Vec::new(),
            generation: 0,
            next_epoch: 0,
            held: None,
            wedged: false,
            doomed: None,
            failed: false,
            killed_helpers: Vec::new(),
            helper_said: None,
            actions: Vec::new(),
            now,
            refused: 0,
            log: Vec::new(),
            trigger: None,
            reexec: None,
            reexecs: 0,
        }
    }

    /// Take one event at `now`; returns what to do, in order.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        self.now = now;
        if !matches!(self.phase, Phase::Done(_)) {
            match event {
                Event::Start => self.start_epoch(0, 0),
                Event::Signal(sig) => self.on_signal(sig),
                Event::Reaped(batch) => self.on_reaped(batch),
                Event::Spawned(job, result) => self.on_spawned(job, result),
                Event::Answered(query, answer) => self.on_answer(query, answer),
                Event::Control(client, request) => self.on_control(client, request),
                Event::ControlGone(client) => self.on_control_gone(client),
                Event::HelperOutput(pid, text) => self.helper_said = Some((pid, text)),
                Event::Changed(paths) => self.on_changed(paths),
                Event::Tick => self.on_time(),
                Event::ReexecFailed(why) => self.reexec_failed(&why),
            }
            self.settle();
        }
        std::mem::take(&mut self.actions)
    }

    /// The log lines written since the last call, in order: the driver
    /// writes them before it carries out the actions of the same event.
    pub fn take_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }

    /// The same, drained in place: the buffer keeps its capacity, so a
    /// burst of lines (a fan-out) is not a chain of growing allocations
    /// at every event.
    pub fn drain_log(&mut self) -> std::vec::Drain<'_, LogLine> {
        self.log.drain(..)
    }

    /// The earliest moment something must happen without an event.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Running(Work::Idle | Work::Forking { .. } | Work::Checking { .. })
            | Phase::Done(_) => None,
            Phase::Running(Work::Comparing { deadline, .. }) => Some(*deadline),
            Phase::Running(Work::Preflight(p)) => Some(p.deadline),
            Phase::Running(Work::Retiring(r)) => match r.stage {
                Stage::Draining { limit } | Stage::Counting { limit } => Some(limit),
                Stage::Watching { next, limit } => Some(next.min(limit)),
                Stage::Stopping { deadline } => Some(deadline),
            },
            Phase::Running(Work::Awaiting(a)) => [a.script, a.admin]
                .into_iter()
                .filter_map(|p| match p {
                    Probe::Due(at) => Some(at),
                    _ => None,
                })
                .chain([a.deadline])
                .min(),
            Phase::Draining(d) => Some(d.next.map_or(d.deadline, |n| n.min(d.deadline))),
            Phase::ShuttingDown { deadline }
            | Phase::Killing { deadline, .. }
            | Phase::Exiting { deadline, .. } => Some(*deadline),
        }
    }

    /// The exit code, once the wrapper is done.
    pub fn exit_code(&self) -> Option<i32> {
        match &self.phase {
            Phase::Done(ending) => Some(ending.exit_code()),
            _ => None,
        }
    }

    // ----- after every event ---------------------------------------------

    /// What follows from any event: end the run when no child is left, and
    /// start a held restart once nothing holds it any more. Done once per
    /// event, after the whole event (a batch of exits) has been judged.
    fn settle(&mut self) {
        self.check_children_left();
        if self.held.is_some()
            && matches!(self.phase, Phase::Running(_))
            && self.live().next().is_some()
            && !self.restart_blocked()
        {
            match self.held.take() {
                Some(Held::Handoff(why)) => {
                    say!(self, Info, "starting the held handoff");
                    self.begin_handoff(&why);
                }
                _ => {
                    say!(self, Info, "starting the held restart");
                    self.begin_restart();
                }
            }
        }
        self.settle_reexec();
    }

    // ----- small shared pieces -------------------------------------------

    fn notify(&mut self, n: Notify) {
        self.actions.push(Action::Notify(n));
    }

    /// READY=1 with the serving epoch, unless a held restart is still to
    /// come (systemd's reload is not done until then).
    fn notify_ready(&mut self) {
        if self.held.is_some() {
            return;
        }
        if let Some(c) = self.ready_child() {
            let status = match self.s.handoff {
                true => format!(
                    "serving generation {} epoch {} (PID={})",
                    c.generation, c.epoch, c.pid
                ),
                false => format!("serving epoch {} (PID={})", c.epoch, c.pid),
            };
            self.notify(Notify::Ready(status));
        }
    }

    /// Children that count: every one not given up on or handed off.
    fn live(&self) -> impl DoubleEndedIterator<Item = &Child> {
        self.children
            .iter()
            .filter(|c| !matches!(c.state, ChildState::Abandoned | ChildState::Retiring))
    }

    /// The live children of the serving generation (a new generation being
    /// started is not serving yet).
    fn serving(&self) -> impl DoubleEndedIterator<Item = &Child> {
        let generation = self.generation;
        self.live().filter(move |c| c.generation == generation)
    }

    /// The newest child of the serving generation that has been ready (it
    /// may drain since), the only kind that may be called serving: one
    /// still starting may never come up.
    fn ready_child(&self) -> Option<&Child> {
        self.serving().rfind(|c| c.state != ChildState::Starting)
    }

    fn serving_description(&self) -> String {
        match self.ready_child() {
            Some(c) if self.s.handoff => format!(
                "generation {} epoch {} (PID={}) keeps serving",
                c.generation, c.epoch, c.pid
            ),
            Some(c) => format!("epoch {} (PID={}) keeps serving", c.epoch, c.pid),
            None => "no epoch is serving".to_string(),
        }
    }

    fn work(&self) -> &Work {
        match &self.phase {
            Phase::Running(work) => work,
            _ => &Work::Idle,
        }
    }

    fn awaiting_mut(&mut self) -> Option<&mut Awaiting> {
        match &mut self.phase {
            Phase::Running(Work::Awaiting(a)) => Some(a),
            _ => None,
        }
    }
}

/// `now + d`, or as far as an `Instant` reaches: a deadline too far away
/// to represent is one that never comes.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// "exited with code=N" / "was killed with signal=N", as in the log lines.
pub fn describe(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exited with code={code}"),
        Exit::Signal(sig) => format!("was killed with signal={sig}"),
    }
}
