//! hot-restarter-ctl: talk to a running hot-restarter over its control
//! socket (`--control-socket`), or start one detached (`start`, for monit
//! and other supervisors whose start program must exit).
//!
//! Exit codes: 0 done, 1 the operation failed, 2 usage error, 3 the wrapper
//! is not running (nothing answers on the socket).
//!
//! `stop --wait` returns on the wrapper's reply, which it sends as its last
//! act, with its children reaped and its pid and socket files removed (see
//! `control::proto`). Only a reply means success: a connection closed
//! without one (the wrapper was killed, its children maybe still running)
//! is exit 1 with that reason. `start` runs the wrapper
//! (`$HOT_RESTARTER_BIN`, else `hot-restarter` beside this executable, else
//! on PATH) in a session of its own with stdin from /dev/null and output
//! appended to `--log`, passes the socket as HOT_RESTARTER_CONTROL_SOCKET
//! unless the arguments have `--control-socket`, and polls `status` until
//! the wrapper (that very pid) answers with a child, or exits.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

use hot_restarter::control::client::{self, ClientError};
use hot_restarter::control::ctl_cli::{Cli, Cmd, WaitArgs};
use hot_restarter::control::proto::{Reply, Request, Status};

/// How long a command without `--wait` (or `--timeout`) may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on `reload --wait` and `handoff --wait`.
const RESTART_WAIT: Duration = Duration::from_secs(120);
/// The default bound on `stop --wait`: the wrapper's default term wait
/// (30 s), then SIGKILL and the last reaps, with room to spare.
const STOP_WAIT: Duration = Duration::from_secs(40);
/// The default bound on `start`.
const START_WAIT: Duration = Duration::from_secs(60);
/// How often `start` asks whether the wrapper is up.
const START_POLL: Duration = Duration::from_millis(20);
/// How many lines of the log `start` shows when the wrapper exits.
const LOG_TAIL_LINES: usize = 10;

/// Why the command did not succeed: the exit code and the message for
/// stderr (none for a message already printed).
struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: Some(message.into()),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::new(e.exit_code(), e.to_string())
    }
}

fn main() -> ExitCode {
    // An empty HOT_RESTARTER_CONTROL_SOCKET counts as unset, as the
    // wrapper's own variables do.
    hot_restarter::config::forget_empty_variables();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // The first paragraph on one line (cli::one_line would look the
            // argument up among the wrapper's flags, not these).
            let text = e.to_string();
            let first = text.split("\n\n").next().unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("hot-restarter-ctl: {first} (try 'hot-restarter-ctl --help')");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = failure.message {
                eprintln!("hot-restarter-ctl: {message}");
            }
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let socket = cli.socket;
    if let Cmd::Start { log, timeout, args } = cli.command {
        return start(socket, log, timeout, args);
    }
    let socket = socket.ok_or_else(|| {
        Failure::new(
            2,
            "no control socket: give --socket PATH or set HOT_RESTARTER_CONTROL_SOCKET",
        )
    })?;
    if let Cmd::Check { timeout } = cli.command {
        return check(&socket, timeout.unwrap_or(EXCHANGE_TIMEOUT));
    }
    let (mut json, mut prometheus) = (false, false);
    let (request, w, waiting_for) = match cli.command {
        Cmd::Status {
            json: j,
            prometheus: p,
        } => {
            (json, prometheus) = (j, p);
            (Request::Status, WaitArgs::default(), "the status")
        }
        Cmd::Reload(w) => (Request::Reload { wait: w.wait }, w, "the reload"),
        Cmd::Handoff(w) => (Request::Handoff { wait: w.wait }, w, "the handoff"),
        Cmd::ReopenLogs => (Request::ReopenLogs, WaitArgs::default(), "the reply"),
        Cmd::Stop(w) => (Request::Stop { wait: w.wait }, w, "the wrapper to exit"),
        Cmd::Reexec(w) => (Request::Reexec { wait: w.wait }, w, "the new binary"),
        Cmd::Start { .. } | Cmd::Check { .. } => unreachable!("handled above"),
    };
    let timeout = match (w.timeout, w.wait, request) {
        (Some(t), _, _) => t,
        (None, false, _) => EXCHANGE_TIMEOUT,
        (None, true, Request::Stop { .. }) => STOP_WAIT,
        (None, true, _) => RESTART_WAIT,
    };
    let name = request.name();
    match client::request(&socket, &request, Instant::now() + timeout) {
        Ok(Reply::Status(status)) if request == Request::Status => {
            if json {
                let text = serde_json::to_string_pretty(&status).expect("a Status serializes");
                println!("{text}");
            } else if prometheus {
                print!("{}", status.to_prometheus());
            } else {
                print!("{}", status.to_text());
            }
            Ok(())
        }
        Ok(Reply::Done { detail }) if request != Request::Status => {
            println!("{detail}");
            Ok(())
        }
        Ok(Reply::Failed { reason }) => Err(Failure::new(1, format!("{name} failed: {reason}"))),
        Ok(_) => Err(Failure::new(1, format!("unexpected reply to {name}"))),
        Err(ClientError::TimedOut) => Err(Failure::new(
            1,
            format!(
                "timed out after {} s waiting for {waiting_for}",
                secs(timeout)
            ),
        )),
        Err(e @ ClientError::NotRunning { .. }) if prometheus => {
            print!("{}", Status::prometheus_down());
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `check`: 0 while a ready child serves, 1 with the reason while none
/// does (see `control::check`), 3 when the wrapper is not running.
fn check(socket: &Path, timeout: Duration) -> Result<(), Failure> {
    match client::request(socket, &Request::Status, Instant::now() + timeout) {
        Ok(Reply::Status(status)) => match hot_restarter::control::check::serving(&status) {
            Ok(line) => {
                println!("{line}");
                Ok(())
            }
            Err(why) => Err(Failure::new(1, format!("not serving: {why}"))),
        },
        Ok(Reply::Failed { reason }) => Err(Failure::new(1, format!("status failed: {reason}"))),
        Ok(Reply::Done { .. }) => Err(Failure::new(1, "unexpected reply to status")),
        Err(ClientError::TimedOut) => Err(Failure::new(
            1,
            format!("timed out after {} s waiting for the status", secs(timeout)),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `start`: run hot-restarter detached and wait until it answers with a
/// child running, or exits.
fn start(
    socket: Option<PathBuf>,
    log: Option<PathBuf>,
    timeout: Option<Duration>,
    args: Vec<OsString>,
) -> Result<(), Failure> {
    let theirs = control_socket_arg(&args);
    let socket = match (socket, &theirs) {
        (Some(ours), Some(theirs)) if ours != *theirs => {
            return Err(Failure::new(
                2,
                format!(
                    "--socket {} differs from the wrapper's --control-socket {}",
                    ours.display(),
                    theirs.display()
                ),
            ));
        }
        (Some(path), _) => path,
        (None, Some(path)) => path.clone(),
        (None, None) => {
            return Err(Failure::new(
                2,
                "no control socket: give --socket PATH, set HOT_RESTARTER_CONTROL_SOCKET \
                 or pass --control-socket to hot-restarter",
            ));
        }
    };
    let timeout = timeout.unwrap_or(START_WAIT);
    let deadline = Instant::now() + timeout;
    match client::request(&socket, &Request::Status, deadline) {
        Ok(Reply::Status(status)) => {
            println!("hot-restarter is already running (PID={})", status.pid);
            return Ok(());
        }
        Err(ClientError::NotRunning { .. }) => {}
        Ok(_) => return Err(Failure::new(1, "something else answers on the socket")),
        Err(e) => {
            return Err(Failure::new(
                1,
                format!("cannot ask {}: {e}", socket.display()),
            ));
        }
    }

    let bin = wrapper_binary();
    let output = match &log {
        Some(path) => OpenOptions::new().append(true).create(true).open(path),
        None => OpenOptions::new().write(true).open("/dev/null"),
    }
    .map_err(|e| {
        let path = log.as_deref().unwrap_or(Path::new("/dev/null"));
        Failure::new(1, format!("cannot open {}: {e}", path.display()))
    })?;
    let stderr = output
        .try_clone()
        .map_err(|e| Failure::new(1, format!("cannot duplicate the log descriptor: {e}")))?;
    let mut command = Command::new(&bin);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(stderr);
    if theirs.is_none() {
        command.env("HOT_RESTARTER_CONTROL_SOCKET", &socket);
    }
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid(2), which is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    let mut child = command
        .spawn()
        .map_err(|e| Failure::new(1, format!("cannot start {}: {e}", bin.display())))?;
    let pid = child.id();

    loop {
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(Failure::new(
                1,
                format!(
                    "hot-restarter (PID={pid}) {} before it answered on {}{}",
                    describe(exit),
                    socket.display(),
                    log_tail(log.as_deref())
                ),
            ));
        }
        let attempt = (Instant::now() + Duration::from_secs(1)).min(deadline);
        match client::request(&socket, &Request::Status, attempt) {
            Ok(Reply::Status(status)) if status.pid == pid && !status.children.is_empty() => {
                let first = &status.children[0];
                println!(
                    "hot-restarter started (PID={pid}), epoch {} runs (PID={})",
                    first.epoch, first.pid
                );
                return Ok(());
            }
            // Not up yet, or no child yet (another wrapper answering makes
            // ours exit: reported above).
            Ok(_) | Err(ClientError::NotRunning { .. } | ClientError::TimedOut) => {}
            Err(ClientError::NoReply) => {}
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(
                1,
                format!(
                    "timed out after {} s waiting for hot-restarter (PID={pid}) to answer on {} \
                     with a child running; it is left running",
                    secs(timeout),
                    socket.display()
                ),
            ));
        }
        std::thread::sleep(START_POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// The value of `--control-socket PATH` or `--control-socket=PATH` among
/// hot-restarter's arguments, if there is one.
fn control_socket_arg(args: &[OsString]) -> Option<PathBuf> {
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let word = word.to_string_lossy();
        if word == "--control-socket" {
            return words.next().map(PathBuf::from);
        }
        if let Some(value) = word.strip_prefix("--control-socket=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// $HOT_RESTARTER_BIN, else `hot-restarter` beside this executable, else
/// `hot-restarter` on PATH.
fn wrapper_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOT_RESTARTER_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("hot-restarter")))
        .filter(|beside| beside.is_file())
        .unwrap_or_else(|| PathBuf::from("hot-restarter"))
}

fn describe(exit: ExitStatus) -> String {
    match (exit.code(), exit.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({exit})"),
    }
}

/// The last lines of the log, as the end of an error message.
fn log_tail(log: Option<&Path>) -> String {
    let Some(path) = log else {
        return "; its output went to /dev/null (give --log FILE to keep it)".to_string();
    };
    let mut tail = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        let len = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(len.saturating_sub(8192)))?;
        file.read_to_end(&mut tail)
    });
    if let Err(e) = read {
        return format!("; cannot read {}: {e}", path.display());
    }
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().collect();
    let last = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    let mut out = format!("; last lines of {}:", path.display());
    for line in last {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

/// Seconds for a message: `120`, `0.5`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}
