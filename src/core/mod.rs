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
//! Log lines are written here, where each decision is made, so that the
//! source location in a line points at the decision.

mod commands;
mod exits;
mod ready;
mod report;
mod restart;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::control::proto::{Reply, Request};
use crate::control::server::ClientId;
use crate::policy::{Ending, Exit};

/// How long SIGKILLed processes may take to be reaped before the wrapper
/// gives up on them. SIGKILL cannot be refused, so this only matters for a
/// process stuck in uninterruptible sleep.
pub const KILL_REAP_WAIT: Duration = Duration::from_secs(5);

/// What the core needs to know of the configuration: the switches and
/// durations that decide, and the helper paths for log lines.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The wrapper's own pid, for status reports.
    pub pid: u32,
    pub keep_serving: bool,
    pub preflight: Option<PathBuf>,
    pub ready_check: Option<PathBuf>,
    /// Readiness from Envoy's admin (`--envoy-admin`).
    pub envoy_admin: bool,
    pub hold_while_draining: bool,
    pub term_wait: Duration,
    pub preflight_timeout: Duration,
    pub ready_timeout: Duration,
    pub ready_interval: Duration,
}

impl Settings {
    /// The Python wrapper's behaviour: no extension switched on.
    pub fn plain() -> Settings {
        Settings {
            pid: 0,
            keep_serving: false,
            preflight: None,
            ready_check: None,
            envoy_admin: false,
            hold_while_draining: false,
            term_wait: Duration::from_secs(30),
            preflight_timeout: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(60),
            ready_interval: Duration::from_millis(100),
        }
    }
}

/// A process the core asks the driver to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// The start script, for this epoch.
    Epoch(u32),
    /// The preflight script, for the would-be epoch.
    Preflight(u32),
    /// The ready check, for an epoch that has started.
    ReadyCheck(u32),
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The wrapper is set up: start epoch 0.
    Start,
    /// SIGHUP, SIGUSR1, SIGTERM or SIGINT (SIGCHLD becomes `Reaped`).
    Signal(Signal),
    /// Processes reaped in one pass of `waitpid(-1, WNOHANG)`.
    Reaped(Vec<(Pid, Exit)>),
    /// The outcome of an `Action::Spawn`: the pid, or why it did not start.
    Spawned(Job, Result<Pid, String>),
    /// The answer to an `Action::Ask`: what Envoy's admin said, or why
    /// there was no usable answer.
    Answered(Query, Result<Answer, String>),
    /// The last lines a helper wrote to stderr, sent just before its exit.
    HelperOutput(Pid, String),
    /// A request on the control socket.
    Control(ClientId, Request),
    /// A control client hung up before its answer.
    ControlGone(ClientId),
    /// Time has passed: act on every deadline up to `now`.
    Tick,
}

/// A question for Envoy's admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `GET /server_info`, asked to see whether `epoch` is LIVE.
    ServerInfo { epoch: u32 },
}

/// What Envoy's admin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    ServerInfo {
        state: String,
        restart_epoch: Option<u32>,
    },
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a process; the driver answers with `Event::Spawned` at once.
    Spawn(Job),
    /// Send a signal to one process (a child that has not been reaped).
    Signal(Pid, Signal),
    /// SIGKILL the process group a helper leads, and with it whatever the
    /// helper started.
    KillGroup(Pid),
    /// Tell systemd (when `NOTIFY_SOCKET` is set).
    Notify(Notify),
    /// Answer a control-socket client.
    Reply(ClientId, Reply),
    /// Ask Envoy's admin; the driver answers with `Event::Answered`, within
    /// a short timeout.
    Ask(Query),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    Ready(String),
    Reloading(String),
    Stopping,
}

/// What a live child is doing, as far as the wrapper knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Started; its readiness is being checked.
    Starting,
    /// The newest epoch, ready (or started, where readiness is not checked).
    Ready,
    /// An older epoch: a newer one has taken over.
    Draining,
    /// Given up on (not ready in time) and SIGKILLed: its exit is expected
    /// and decides nothing.
    Abandoned,
}

impl ChildState {
    pub fn name(self) -> &'static str {
        match self {
            ChildState::Starting => "starting",
            ChildState::Ready => "ready",
            ChildState::Draining => "draining",
            ChildState::Abandoned => "abandoned",
        }
    }
}

/// One running epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub pid: Pid,
    pub epoch: u32,
    pub state: ChildState,
}

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

/// The preflight of a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Preflight {
    epoch: u32,
    started: Instant,
    deadline: Instant,
    helper: Helper,
}

/// An epoch that has started and is ready once every probe has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Awaiting {
    epoch: u32,
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
    },
    Preflight(Preflight),
    Awaiting(Awaiting),
}

/// What the wrapper is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Serving, and maybe restarting.
    Running(Work),
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
    next_epoch: u32,
    /// Fact: a SIGHUP waits for the restart in flight (or a drain) to end.
    held: bool,
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
}

impl Core {
    pub fn new(settings: Settings, now: Instant) -> Core {
        Core {
            report: report::Reporting::new(settings.pid, now),
            s: settings,
            phase: Phase::Running(Work::Idle),
            children: Vec::new(),
            next_epoch: 0,
            held: false,
            failed: false,
            killed_helpers: Vec::new(),
            helper_said: None,
            actions: Vec::new(),
            now,
        }
    }

    /// Take one event at `now`; returns what to do, in order.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        self.now = now;
        if !matches!(self.phase, Phase::Done(_)) {
            match event {
                Event::Start => self.start_epoch(0),
                Event::Signal(sig) => self.on_signal(sig, now),
                Event::Reaped(batch) => self.on_reaped(batch, now),
                Event::Spawned(job, result) => self.on_spawned(job, result, now),
                Event::Answered(query, answer) => self.on_answer(query, answer, now),
                Event::Control(client, request) => self.on_control(client, request, now),
                Event::ControlGone(client) => self.on_control_gone(client),
                Event::HelperOutput(pid, text) => self.helper_said = Some((pid, text)),
                Event::Tick => self.on_time(now),
            }
            self.settle(now);
        }
        std::mem::take(&mut self.actions)
    }

    /// The earliest moment something must happen without an event.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Running(Work::Idle | Work::Forking { .. }) | Phase::Done(_) => None,
            Phase::Running(Work::Preflight(p)) => Some(p.deadline),
            Phase::Running(Work::Awaiting(a)) => [a.script, a.admin]
                .into_iter()
                .filter_map(|p| match p {
                    Probe::Due(at) => Some(at),
                    _ => None,
                })
                .chain([a.deadline])
                .min(),
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

    /// Live children in start order.
    pub fn children(&self) -> &[Child] {
        &self.children
    }

    pub fn phase(&self) -> PhaseName {
        match &self.phase {
            Phase::Running(Work::Idle) => PhaseName::Running,
            Phase::Running(Work::Forking { .. }) => PhaseName::Starting,
            Phase::Running(Work::Preflight { .. }) => PhaseName::Preflight,
            Phase::Running(Work::Awaiting { .. }) => PhaseName::Starting,
            Phase::ShuttingDown { .. } => PhaseName::ShuttingDown,
            Phase::Killing { .. } => PhaseName::Killing,
            Phase::Exiting { .. } => PhaseName::Exiting,
            Phase::Done(_) => PhaseName::Done,
        }
    }

    /// Every helper process not reaped yet (running or killed).
    pub fn helpers(&self) -> Vec<Pid> {
        let mut pids = self.killed_helpers.clone();
        pids.extend(self.helper_pid());
        pids
    }

    /// The epoch the next restart will use.
    pub fn next_epoch(&self) -> u32 {
        self.next_epoch
    }

    /// Whether a SIGHUP is held.
    pub fn held(&self) -> bool {
        self.held
    }

    // ----- after every event ---------------------------------------------

    /// What follows from any event: end the run when no child is left, and
    /// start a held restart once nothing holds it any more. Done once per
    /// event, after the whole event (a batch of exits) has been judged.
    fn settle(&mut self, now: Instant) {
        self.check_children_left();
        if self.held
            && matches!(self.phase, Phase::Running(_))
            && self.live().next().is_some()
            && !self.restart_blocked()
        {
            self.held = false;
            log::info!("starting the held restart");
            self.begin_restart(now);
        }
    }

    // ----- small shared pieces -------------------------------------------

    fn notify(&mut self, n: Notify) {
        self.actions.push(Action::Notify(n));
    }

    /// READY=1 with the serving epoch, unless a held restart is still to
    /// come (systemd's reload is not done until then).
    fn notify_ready(&mut self) {
        if self.held {
            return;
        }
        if let Some(c) = self.live().last() {
            let status = format!("serving epoch {} (PID={})", c.epoch, c.pid);
            self.notify(Notify::Ready(status));
        }
    }

    /// Children that count: every one not already given up on.
    fn live(&self) -> impl DoubleEndedIterator<Item = &Child> {
        self.children
            .iter()
            .filter(|c| c.state != ChildState::Abandoned)
    }

    fn serving_description(&self) -> String {
        match self.live().last() {
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

    fn set_work(&mut self, work: Work) {
        if let Phase::Running(_) = self.phase {
            self.phase = Phase::Running(work);
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
