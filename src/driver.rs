//! The one loop that acts: it waits on the signalfd, the registered sockets
//! and the core's nearest deadline, feeds what happened to the core and
//! carries out the actions the core returns (spawn, signal, notify).
//!
//! Everything happens on the main thread: `PR_SET_PDEATHSIG` fires when the
//! thread that forked exits, so spawning from any other thread would kill
//! the children early.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::admin;
use crate::cli::Config;
use crate::core::{Action, Answer, Core, Event, Job, Notify, Query, Settings};
use crate::notify::Notifier;
use crate::policy::Exit;
use crate::poller::{self, Interest};
use crate::signals::Signals;
use crate::spawn::{self, Spec};

/// What a ready descriptor stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Signals,
    /// An admin request, by its id.
    Admin(u64),
}

/// How long one request to Envoy's admin may take, connect to last byte.
/// Short: a readiness poll that goes unanswered is simply asked again.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A question to Envoy's admin in flight.
struct Asking {
    id: u64,
    query: Query,
    request: admin::Request,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            keep_serving: cfg.keep_serving,
            preflight: cfg.preflight.clone(),
            ready_check: cfg.ready_check.clone(),
            envoy_admin: cfg.envoy_admin.is_some(),
            hold_while_draining: cfg.hold_while_draining,
            term_wait: cfg.term_wait,
            preflight_timeout: cfg.preflight_timeout,
            ready_timeout: cfg.ready_timeout,
            ready_interval: cfg.ready_interval,
        }
    }
}

pub struct Driver {
    cfg: Config,
    core: Core,
    signals: Signals,
    notifier: Option<Notifier>,
    asking: Vec<Asking>,
    next_id: u64,
}

impl Driver {
    pub fn new(cfg: Config, signals: Signals, notifier: Option<Notifier>) -> Driver {
        let core = Core::new(Settings::from_config(&cfg), Instant::now());
        Driver {
            cfg,
            core,
            signals,
            notifier,
            asking: Vec::new(),
            next_id: 0,
        }
    }

    /// Start epoch 0 and supervise until the wrapper should exit; returns
    /// the exit code. Every child and helper has been reaped by then.
    pub fn run(mut self) -> Result<i32> {
        self.feed(Event::Start);
        loop {
            if let Some(code) = self.core.exit_code() {
                // Collect whatever else has exited (orphans, when PID 1).
                reap();
                return Ok(code);
            }
            let mut interests = vec![Interest {
                fd: self.signals.fd(),
                write: false,
                token: Token::Signals,
            }];
            interests.extend(self.asking.iter().map(|a| Interest {
                fd: a.request.fd(),
                write: a.request.wants_write(),
                token: Token::Admin(a.id),
            }));
            let deadline = self
                .asking
                .iter()
                .map(|a| a.request.deadline())
                .chain(self.core.poll_timeout())
                .min();
            let ready = poller::wait(&interests, deadline)?;
            drop(interests);
            // Signals first: a stop request is acted on before anything an
            // admin answered in the same turn.
            if ready.contains(&Token::Signals) {
                self.on_signals()?;
            }
            for token in ready {
                if let Token::Admin(id) = token {
                    self.on_admin_ready(id);
                }
            }
            self.admin_timeouts();
            self.feed(Event::Tick);
        }
    }

    fn on_signals(&mut self) -> Result<()> {
        for sig in self.signals.read()? {
            if self.core.exit_code().is_some() {
                break;
            }
            let event = match sig {
                Signal::SIGCHLD => Event::Reaped(reap()),
                other => Event::Signal(other),
            };
            self.feed(event);
        }
        Ok(())
    }

    /// Hand one event to the core and carry out what it decides. A spawn's
    /// outcome goes back to the core at once, and what follows from it is
    /// done before the rest of the earlier actions.
    fn feed(&mut self, event: Event) {
        let mut queue: VecDeque<Action> = self.core.handle(event, Instant::now()).into();
        while let Some(action) = queue.pop_front() {
            if let Some(event) = self.act(action) {
                let more = self.core.handle(event, Instant::now());
                for action in more.into_iter().rev() {
                    queue.push_front(action);
                }
            }
        }
    }

    fn act(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Spawn(job) => Some(Event::Spawned(job, self.spawn(job))),
            Action::Signal(pid, sig) => {
                send(pid, sig);
                None
            }
            Action::KillGroup(pid) => {
                // The group id is the helper's pid; ESRCH (nothing left in
                // the group) is the usual answer and means nothing.
                let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
                None
            }
            Action::Ask(query) => self.ask(query),
            Action::Notify(n) => {
                if let Some(notifier) = &self.notifier {
                    match n {
                        Notify::Ready(status) => notifier.ready(&status),
                        Notify::Reloading(status) => notifier.reloading(&status),
                        Notify::Stopping => notifier.stopping(),
                    }
                }
                None
            }
        }
    }

    /// Send a question to Envoy's admin. An error at once (a bad address)
    /// is the answer at once.
    fn ask(&mut self, query: Query) -> Option<Event> {
        let Some(addr) = &self.cfg.envoy_admin else {
            return Some(Event::Answered(query, Err("no admin address".into())));
        };
        let (method, path) = match query {
            Query::ServerInfo { .. } => (admin::Method::Get, "/server_info"),
        };
        match admin::Request::start(addr, method, path, Instant::now(), ADMIN_TIMEOUT) {
            Ok(request) => {
                self.next_id += 1;
                self.asking.push(Asking {
                    id: self.next_id,
                    query,
                    request,
                });
                None
            }
            Err(e) => Some(Event::Answered(query, Err(e.to_string()))),
        }
    }

    fn on_admin_ready(&mut self, id: u64) {
        let Some(i) = self.asking.iter().position(|a| a.id == id) else {
            return;
        };
        if let Some(result) = self.asking[i].request.on_ready() {
            let asking = self.asking.remove(i);
            let answer = result
                .map_err(|e| e.to_string())
                .and_then(|response| understand(asking.query, response));
            self.feed(Event::Answered(asking.query, answer));
            release_freed_memory();
        }
    }

    /// Requests whose time is up: each is answered with its timeout.
    fn admin_timeouts(&mut self) {
        let now = Instant::now();
        while let Some(i) = self.asking.iter().position(|a| now >= a.request.deadline()) {
            let asking = self.asking.remove(i);
            let error = asking.request.timed_out().to_string();
            self.feed(Event::Answered(asking.query, Err(error)));
        }
    }

    /// Start a job; the error is explained for the log.
    fn spawn(&self, job: Job) -> Result<Pid, String> {
        let (script, spec) = match job {
            Job::Epoch(epoch) => (
                &self.cfg.start_script,
                Spec::new(&self.cfg.start_script, &self.cfg.script_args, epoch),
            ),
            // Helpers lead a process group of their own, so that killing
            // the group also kills what they started (`sh` running `envoy
            // --mode validate`, `curl`).
            Job::Preflight(epoch) => {
                let script = self.cfg.preflight.as_ref().expect("preflight configured");
                (script, Spec::new(script, &[], epoch).map(Spec::own_group))
            }
            Job::ReadyCheck(epoch) => {
                let script = self
                    .cfg
                    .ready_check
                    .as_ref()
                    .expect("ready check configured");
                (
                    script,
                    Spec::new(script, &[], epoch).map(|s| s.own_group().quiet_stdout()),
                )
            }
        };
        spec.and_then(|spec| spawn::spawn(&spec))
            .map_err(|e| spawn::explain_exec_error(script, &e))
    }
}

/// Give freed heap pages back to the kernel. Envoy's /server_info is about
/// 125 KB of JSON; parsing it leaves free pages that glibc would otherwise
/// keep for good, and the wrapper stays resident for months.
fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free memory of the allocator's own
    // arenas to the kernel; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What an admin response means for the question asked.
fn understand(query: Query, response: admin::Response) -> Result<Answer, String> {
    if response.status != 200 {
        let body = String::from_utf8_lossy(&response.body);
        return Err(format!("HTTP {}: {}", response.status, body.trim()));
    }
    match query {
        Query::ServerInfo { .. } => {
            let info = admin::parse_server_info(&response.body)?;
            Ok(Answer::ServerInfo {
                state: info.state,
                restart_epoch: info.restart_epoch,
            })
        }
    }
}

/// Send `sig` to a child, logging a failure in the Python wrapper's words.
fn send(pid: Pid, sig: Signal) {
    if let Err(e) = kill(pid, sig) {
        match sig {
            Signal::SIGUSR1 => log::error!("error in SIGUSR1 to PID={pid} continuing"),
            Signal::SIGTERM => log::error!("error sending TERM to PID={pid} continuing"),
            Signal::SIGKILL => log::error!("error force killing PID={pid} continuing"),
            _ => log::error!("error sending {} to PID={pid} continuing", sig.as_str()),
        }
        log::debug!("{} to PID={pid}: {e}", sig.as_str());
    }
}

/// `waitpid(-1, WNOHANG)` until nothing more has exited.
pub fn reap() -> Vec<(Pid, Exit)> {
    let mut reaped = Vec::new();
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => break,
            Ok(status) => {
                if let (Some(pid), Some(exit)) = (status.pid(), Exit::from_status(status)) {
                    reaped.push((pid, exit));
                }
            }
            // ECHILD: no children at all.
            Err(Errno::ECHILD) => break,
            // EINTR: cannot happen with our signals blocked, but is
            // harmless to retry.
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log::error!("waitpid failed: {e}");
                break;
            }
        }
    }
    reaped
}
