//! The core's vocabulary: its settings, the events it takes, the actions
//! it returns, the children it reports, and the commands and replies of
//! its control-socket clients (`crate::control` turns them into the wire
//! protocol and back).

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Exit;
use super::report::StatusView;

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
    /// `--drain-on-stop`: drain the serving Envoys for up to this long
    /// before the SIGTERM of a stop.
    pub drain_on_stop: Option<Duration>,
    pub preflight_timeout: Duration,
    pub ready_timeout: Duration,
    pub ready_interval: Duration,
    /// Generations and side-by-side handoff (`--handoff-admin`).
    pub handoff: bool,
    /// Compare the hot-restart version of the Envoy binary with the running
    /// one's at each reload (`--envoy-bin`).
    pub envoy_bin: bool,
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
            drain_on_stop: None,
            preflight_timeout: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(60),
            ready_interval: Duration::from_millis(100),
            handoff: false,
            envoy_bin: false,
        }
    }
}

/// What asked for a reload, for the log and the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// `reload` on the control socket.
    Request,
    /// `--watch`: these files changed.
    Changed(Vec<PathBuf>),
}

impl Trigger {
    /// One line for the status: "SIGHUP", "reload request", or the changed
    /// paths, quoted and bounded (they come from outside).
    pub fn describe(&self) -> String {
        match self {
            Trigger::Signal => "SIGHUP".to_string(),
            Trigger::Request => "reload request".to_string(),
            Trigger::Changed(paths) => format!("{} changed", quoted_paths(paths)),
        }
    }

    /// Folds a later request into this held one: the changed paths add up,
    /// and any change outweighs a bare SIGHUP (the reload reads them all).
    pub fn absorb(&mut self, later: Trigger) {
        match (&mut *self, later) {
            (Trigger::Changed(mine), Trigger::Changed(theirs)) => {
                for p in theirs {
                    if !mine.contains(&p) {
                        mine.push(p);
                    }
                }
            }
            (Trigger::Changed(_), _) => {}
            (_, later) => *self = later,
        }
    }
}

/// Paths from outside (a watched path names files an operator chose, but a
/// changed name may be anything) for one log line: each quoted and bounded,
/// at most four, then how many more.
pub fn quoted_paths(paths: &[PathBuf]) -> String {
    let mut shown: Vec<String> = (paths.iter().take(4))
        .map(|p| super::quoted(&p.to_string_lossy()))
        .collect();
    if paths.len() > 4 {
        shown.push(format!("and {} more", paths.len() - 4));
    }
    shown.join(", ")
}

/// A process the core asks the driver to start, for `epoch` of
/// `generation` (which set its `RESTART_EPOCH` and, with handoff, its
/// `HOT_RESTARTER_GENERATION`, `_SLOT` and `_ENVOY_ADMIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Job {
    pub kind: JobKind,
    pub epoch: u32,
    pub generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// The start script.
    Epoch,
    /// The preflight script, for the would-be epoch.
    Preflight,
    /// The ready check, for an epoch that has started.
    ReadyCheck,
    /// `--envoy-bin PATH --hot-restart-version`, before a restart to
    /// `epoch`: the binary prints its hot-restart version, which decides
    /// between a hot restart and a handoff.
    VersionProbe,
}

impl Job {
    pub fn new(kind: JobKind, epoch: u32, generation: u32) -> Job {
        Job {
            kind,
            epoch,
            generation,
        }
    }
}

/// Which admin address a generation uses: slot 0 is `--envoy-admin`, slot 1
/// `--handoff-admin`.
pub fn slot(generation: u32) -> u32 {
    generation % 2
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The wrapper is set up: start epoch 0.
    Start,
    /// SIGHUP, SIGUSR1, SIGUSR2, SIGTERM or SIGINT (SIGCHLD becomes
    /// `Reaped`).
    Signal(Signal),
    /// Processes reaped in one pass of `waitpid(-1, WNOHANG)`.
    Reaped(Vec<(Pid, Exit)>),
    /// The outcome of an `Action::Spawn`: the pid, or why it did not start.
    Spawned(Job, Result<Pid, String>),
    /// The answer to an `Action::Ask`: what Envoy's admin said, or why
    /// there was no usable answer.
    Answered(Query, Result<Answer, String>),
    /// What a helper wrote (a preflight's stderr, the version probe's
    /// stdout and stderr), at most 64 KiB, sent just before its exit.
    HelperOutput(Pid, String),
    /// A request on the control socket.
    Control(WaiterId, Command),
    /// A control client hung up before its answer.
    ControlGone(WaiterId),
    /// `--watch`: the contents of these watched files changed (after the
    /// debounce): a reload as SIGHUP's, which names them.
    Changed(Vec<PathBuf>),
    /// Time has passed: act on every deadline up to `now`.
    Tick,
    /// The `Action::Reexec` was not carried out, and why (the old binary
    /// stays in charge).
    ReexecFailed(String),
}

/// A question about Envoy, for its admin (at the address of the
/// generation's slot) or the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `GET /server_info`, asked to see whether `epoch` is LIVE, about the
    /// child `pid`: an answer to a question about an earlier child with
    /// the same numbers (--keep-serving reuses an epoch number, a failed
    /// handoff is retried at the same generation and epoch) must not count
    /// for a later one.
    ServerInfo {
        generation: u32,
        epoch: u32,
        pid: Pid,
    },
    /// `POST /drain_listeners?graceful`: the old generation stops taking
    /// new connections once the drain time is over.
    Drain { generation: u32 },
    /// How many listening TCP sockets `pid` still holds, the admin's own
    /// excepted.
    Listening { generation: u32, pid: Pid },
    /// `POST /healthcheck/fail`, at the start of a drain before a stop.
    HealthcheckFail { generation: u32 },
    /// `GET /stats` of the requests in flight (`http.*.downstream_rq_active`
    /// but the admin's own), while draining before a stop.
    InFlight { generation: u32 },
    /// `GET /hot_restart_version` of the serving Envoy.
    HotRestartVersion { generation: u32 },
    /// Before `generation` starts: does anything answer on its admin
    /// address already? (Any HTTP answer says yes; an error says no.)
    Occupied { generation: u32 },
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    ServerInfo {
        state: String,
        restart_epoch: Option<u32>,
        /// How long the answering Envoy's current epoch has run.
        uptime: Option<Duration>,
    },
    /// The admin took the request (HTTP 200).
    Ok,
    /// Requests in flight, summed over the HTTP connection managers.
    InFlight(u64),
    /// Listening sockets counted.
    Listening(usize),
    /// A hot-restart version, e.g. "11.104".
    Version(String),
    /// Something answered on this admin address.
    Answers(String),
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
    Reply(WaiterId, Reply),
    /// Ask Envoy's admin; the driver answers with `Event::Answered`, within
    /// a short timeout.
    Ask(Query),
    /// Nothing is in flight: hand the state over to a fresh execution of
    /// the wrapper's binary. The clients wait for the new binary's answer;
    /// should the driver not exec, it answers them with why and tells the
    /// core with `Event::ReexecFailed`.
    Reexec(Vec<WaiterId>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    Ready(String),
    Reloading(String),
    Stopping,
}

/// What a live child is doing, as far as the wrapper knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Of a generation that has been handed off: draining, then stopped;
    /// its exit is expected and decides nothing.
    Retiring,
}

/// One running epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub pid: Pid,
    pub epoch: u32,
    pub generation: u32,
    pub state: ChildState,
}

/// Who waits for an answer (a control-socket client). The number is the
/// driver's; the core only keeps it, compares it and gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId(pub u64);

/// What an operator asks for on the control socket; each does what its
/// signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Report the wrapper's state.
    Status,
    /// As SIGHUP; with `wait`, answered when that restart has ended.
    Reload { wait: bool },
    /// As SIGUSR2 (`--handoff-admin`); with `wait`, answered when the
    /// handoff has ended.
    Handoff { wait: bool },
    /// As SIGUSR1.
    ReopenLogs,
    /// As SIGTERM; with `wait`, answered as the wrapper's last act.
    Stop { wait: bool },
    /// Execute the wrapper's binary afresh, keeping the pid and the
    /// children; held until no work is in flight. With `wait`, answered by
    /// the new binary once it has taken over (or by this one with why not).
    Reexec { wait: bool },
}

/// The core's answer to a [`Command`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The answer to [`Command::Status`].
    Status(Box<StatusView>),
    /// Carried out, e.g. "epoch 3 (PID=123) is ready".
    Done { detail: String },
    /// Refused, or it failed, e.g. "restart to epoch 2 skipped because ...".
    Failed { reason: String },
}

/// A log line the core wrote, for the driver to hand to the `log` crate
/// as if written where the core made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: log::Level,
    pub text: String,
    /// Where the core made it: one static per call site, so that a line
    /// costs 40 bytes (a fan-out to 100 children buffers 100 of them).
    pub site: &'static LogSite,
}

/// The source location of a [`LogLine`].
#[derive(Debug, PartialEq, Eq)]
pub struct LogSite {
    /// The module path, the `log` target (what `RUST_LOG` filters on).
    pub target: &'static str,
    pub file: &'static str,
    pub line: u32,
}
