//! The one loop that acts: it waits on the signalfd, the registered sockets
//! and the core's nearest deadline, feeds what happened to the core and
//! carries out the actions the core returns (spawn, signal, notify).
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

use crate::cli::Config;
use crate::core::{Action, Core, Event, Job, Notify, Settings};
use crate::notify::Notifier;
use crate::policy::Exit;
use crate::poller::{self, Interest};
use crate::signals::Signals;
use crate::spawn::{self, Spec};

/// What a ready descriptor stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Signals,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            keep_serving: cfg.keep_serving,
            preflight: cfg.preflight.clone(),
            ready_check: cfg.ready_check.clone(),
            envoy_admin: false,
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
}

impl Driver {
    pub fn new(cfg: Config, signals: Signals, notifier: Option<Notifier>) -> Driver {
        let core = Core::new(Settings::from_config(&cfg), Instant::now());
        Driver {
            cfg,
            core,
            signals,
            notifier,
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
            let interests = [Interest {
                fd: self.signals.fd(),
                write: false,
                token: Token::Signals,
            }];
            let ready = poller::wait(&interests, self.core.poll_timeout())?;
            for token in ready {
                match token {
                    Token::Signals => self.on_signals()?,
                }
            }
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
            Action::Ask(query) => Some(Event::Answered(
                query,
                Err("no admin address configured".to_string()),
            )),
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
