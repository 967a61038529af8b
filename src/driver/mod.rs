//! The one loop that acts: it waits on the signalfd, the registered sockets
//! and the core's nearest deadline, feeds what happened to the core and
//! carries out the actions the core returns (spawn, signal, notify).
//!
//! `admin` holds the requests to Envoy's admin in flight, `control` the
//! control socket's glue, `watch` the `--watch` glue.
//!
//! Everything happens on the main thread: `PR_SET_PDEATHSIG` fires when the
//! thread that forked exits, so spawning from any other thread would kill
//! the children early.

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

mod admin;
mod control;
mod jobs;
mod reexec;
mod watch;

use crate::config::Config;
use crate::control::server::{ClientId, ControlServer};
use crate::core::Exit;
use crate::core::{Action, Core, Event, JobKind, Notify, Settings};
use crate::os::pid_file::PidFile;
use crate::os::poller::{self, Interest};
use crate::os::sd_notify::Notifier;
use crate::os::signals::Signals;
use crate::os::stderr_capture::Capture;
use crate::watch::Watcher;

/// What a ready descriptor stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Signals,
    /// An admin request, by its id.
    Admin(u64),
    /// The control socket has a connection to accept.
    Listener,
    /// A control client.
    Client(ClientId),
    /// `--watch`: the inotify descriptor has events.
    Watch,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            pid: std::process::id(),
            keep_serving: cfg.keep_serving,
            preflight: cfg.preflight.clone(),
            ready_check: cfg.ready_check.clone(),
            envoy_admin: cfg.envoy_admin.is_some(),
            hold_while_draining: cfg.hold_while_draining,
            term_wait: cfg.term_wait,
            drain_on_stop: cfg.drain_on_stop,
            preflight_timeout: cfg.preflight_timeout,
            ready_timeout: cfg.ready_timeout,
            ready_interval: cfg.ready_interval,
            handoff: cfg.handoff_admin.is_some(),
            envoy_bin: cfg.envoy_bin.is_some(),
        }
    }
}

/// What the process owns besides the core's decisions: the descriptors
/// the loop watches and the files it removes at exit.
pub struct Resources {
    pub signals: Signals,
    pub notifier: Option<Notifier>,
    pub pid_file: Option<PidFile>,
    pub control: Option<ControlServer>,
    pub watcher: Option<Watcher>,
}

pub struct Driver {
    cfg: Config,
    core: Core,
    signals: Signals,
    notifier: Option<Notifier>,
    pid_file: Option<PidFile>,
    control: Option<ControlServer>,
    watcher: Option<Watcher>,
    asking: Vec<admin::Asking>,
    next_id: u64,
    /// The output of helpers that run (preflights, the version probe), by
    /// pid.
    captures: Vec<(Pid, JobKind, Capture)>,
    /// Started by a reexec: the children run already, no epoch 0 starts.
    resumed: bool,
}

impl Driver {
    pub fn new(cfg: Config, resources: Resources) -> Driver {
        let core = Core::new(Settings::from_config(&cfg), Instant::now());
        Driver::new_with(cfg, resources, core)
    }

    fn new_with(cfg: Config, resources: Resources, core: Core) -> Driver {
        Driver {
            resumed: false,
            cfg,
            core,
            signals: resources.signals,
            notifier: resources.notifier,
            pid_file: resources.pid_file,
            control: resources.control,
            watcher: resources.watcher,
            asking: Vec::new(),
            next_id: 0,
            captures: Vec::new(),
        }
    }

    /// Start epoch 0 and supervise until the wrapper should exit; returns
    /// the exit code. Every child and helper has been reaped by then.
    pub fn run(mut self) -> Result<i32> {
        if !self.resumed {
            if let Some(watcher) = &self.watcher {
                for path in watcher.missing() {
                    log::warn!(
                        "watched file {} cannot be read yet: watching for its arrival",
                        crate::core::quoted(&path.to_string_lossy())
                    );
                }
            }
            self.feed(Event::Start);
        }
        loop {
            if let Some(code) = self.core.exit_code() {
                // Collect whatever else has exited (orphans, when PID 1).
                reap();
                self.exit(code);
                return Ok(code);
            }
            let ready = self.wait()?;
            // Signals first: a stop request is acted on before anything an
            // admin or a client said in the same turn.
            if ready.contains(&Token::Signals) {
                self.on_signals()?;
            }
            for token in ready {
                match token {
                    Token::Signals => {}
                    Token::Admin(id) => self.on_admin_ready(id),
                    Token::Listener => self.accept_clients(),
                    Token::Client(id) => self.on_client_ready(id),
                    Token::Watch => self.on_watch_ready(),
                }
            }
            self.admin_timeouts();
            self.control_timeouts();
            self.watch_timeouts();
            self.feed(Event::Tick);
        }
    }

    /// Wait for the next signal, socket event or deadline.
    fn wait(&self) -> Result<Vec<Token>> {
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
        let mut deadline = self.core.poll_timeout();
        for a in &self.asking {
            deadline = earliest(deadline, Some(a.request.deadline()));
        }
        if let Some(server) = &self.control {
            interests.push(Interest {
                fd: server.fd(),
                write: false,
                token: Token::Listener,
            });
            for (id, fd, flags) in server.poll_fds() {
                interests.push(Interest {
                    fd,
                    write: flags.contains(nix::poll::PollFlags::POLLOUT),
                    token: Token::Client(id),
                });
            }
            deadline = earliest(deadline, server.next_deadline());
        }
        if let Some(watcher) = &self.watcher {
            interests.push(Interest {
                fd: watcher.fd(),
                write: false,
                token: Token::Watch,
            });
            // Armed only while a change waits out its debounce.
            deadline = earliest(deadline, watcher.poll_timeout());
        }
        poller::wait(&interests, deadline)
    }

    fn on_signals(&mut self) -> Result<()> {
        for sig in self.signals.read()? {
            if self.core.exit_code().is_some() {
                break;
            }
            let event = match sig {
                Signal::SIGCHLD => {
                    let reaped = reap();
                    self.collect_captures(&reaped);
                    Event::Reaped(reaped)
                }
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
        self.write_log();
        while let Some(action) = queue.pop_front() {
            if let Some(event) = self.act(action) {
                let more = self.core.handle(event, Instant::now());
                self.write_log();
                for action in more.into_iter().rev() {
                    queue.push_front(action);
                }
            }
        }
    }

    /// The core's log lines, through the `log` crate as if written where
    /// the core made them (the same level, target and source location).
    fn write_log(&mut self) {
        for line in self.core.drain_log() {
            log::logger().log(
                &log::Record::builder()
                    .level(line.level)
                    .target(line.site.target)
                    .module_path_static(Some(line.site.target))
                    .file_static(Some(line.site.file))
                    .line(Some(line.site.line))
                    .args(format_args!("{}", line.text))
                    .build(),
            );
        }
    }

    fn act(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Spawn(job) => {
                let result = self.spawn(job);
                Some(Event::Spawned(job, result))
            }
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
            Action::Reexec(waiters) => self.reexec(waiters),
            Action::Reply(waiter, reply) => {
                self.reply(waiter, &reply);
                None
            }
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
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
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
                if let (Some(pid), Some(exit)) = (status.pid(), exit_of(status)) {
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

/// The meaning of a wait status, or `None` for a status that is not an
/// end (stopped, continued, still running).
fn exit_of(status: WaitStatus) -> Option<Exit> {
    match status {
        WaitStatus::Exited(_, code) => Some(Exit::Code(code)),
        WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
