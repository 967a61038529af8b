//! The supervisor: the live children, the restart in progress, and the one
//! event loop that reacts to signals and deadlines.
//!
//! Everything happens on the main thread, between two waits on the
//! signalfd. A pid leaves `children` only once it has been reaped here, so
//! a signal is never sent to a pid that may have been reused.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::cli::Config;
use crate::notify::Notifier;
use crate::policy::{self, Ending, Exit, HupAction};
use crate::signals::Signals;
use crate::spawn::{self, Spec};

/// How long SIGKILLed children may take to be reaped before the wrapper
/// exits without them. SIGKILL cannot be refused, so this only matters for
/// a process stuck in uninterruptible sleep.
const KILL_REAP_WAIT: Duration = Duration::from_secs(5);

/// One running epoch.
#[derive(Debug)]
struct Child {
    pid: Pid,
    epoch: u32,
    /// Already given up on (its ready check timed out and it was killed):
    /// its exit is expected and decides nothing.
    abandoned: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// SIGTERM/SIGINT was received and passed on; children have until the
    /// deadline to exit.
    ShuttingDown {
        deadline: Instant,
    },
    /// Every child has been SIGKILLed; once they are reaped the wrapper
    /// exits as `ending` says.
    Killing {
        deadline: Instant,
        ending: Ending,
    },
}

/// A helper process (preflight or ready check) and when it must be done.
#[derive(Debug, Clone, Copy)]
struct Helper {
    pid: Pid,
    deadline: Instant,
}

/// A restart that is not finished yet. Without `--preflight` and
/// `--ready-check` restarts finish as soon as the child is forked, as in the
/// Python wrapper, and this stays `None`.
#[derive(Debug, Clone, Copy)]
enum Restart {
    /// The preflight script runs for `epoch`.
    Preflight {
        epoch: u32,
        started: Instant,
        helper: Helper,
    },
    /// `child` (epoch `epoch`) runs; the ready check runs now (`check`) or
    /// again at `next_try`, until `deadline`.
    Ready {
        epoch: u32,
        child: Pid,
        started: Instant,
        deadline: Instant,
        check: Option<Helper>,
        next_try: Instant,
    },
}

pub struct Supervisor {
    cfg: Config,
    signals: Signals,
    notifier: Option<Notifier>,
    next_epoch: u32,
    /// Live children in start order; the last one is the newest epoch.
    children: Vec<Child>,
    phase: Phase,
    restart: Option<Restart>,
    /// A SIGHUP arrived while a restart was in progress.
    held_hup: bool,
    /// With --keep-serving, the newest epoch failed and no restart has
    /// succeeded since: if the older children run out, that is a failure.
    kept_failure: bool,
    /// Set when the wrapper is done, with its exit code.
    exit: Option<i32>,
    /// Handling a batch of exits: held restarts wait until the whole batch
    /// has been judged (a crash later in it may mean a teardown).
    in_batch: bool,
    /// The current helper is among the exits of this batch: it has been
    /// reaped, so it must not be signalled any more.
    helper_reaped: bool,
}

impl Supervisor {
    pub fn new(cfg: Config, signals: Signals, notifier: Option<Notifier>) -> Supervisor {
        Supervisor {
            cfg,
            signals,
            notifier,
            next_epoch: 0,
            children: Vec::new(),
            phase: Phase::Running,
            restart: None,
            held_hup: false,
            kept_failure: false,
            exit: None,
            in_batch: false,
            helper_reaped: false,
        }
    }

    /// Start epoch 0 and supervise until the wrapper should exit; returns
    /// the exit code.
    pub fn run(mut self) -> Result<i32> {
        self.start_epoch(0);
        loop {
            if let Some(code) = self.exit {
                // Nothing we started may outlive us: wait for a helper that
                // is still running (SIGKILL is immediate), then collect
                // whatever else has exited.
                if let Some(pid) = self.kill_helper() {
                    self.wait_for_helper(pid);
                }
                self.reap();
                return Ok(code);
            }
            let signals = self.signals.wait(self.next_deadline())?;
            for sig in signals {
                if self.exit.is_some() {
                    break;
                }
                self.on_signal(sig);
            }
            if self.exit.is_none() {
                self.on_time(Instant::now());
            }
        }
    }

    /// Wait (bounded) for a SIGKILLed helper to be reaped.
    fn wait_for_helper(&self, pid: Pid) {
        let deadline = Instant::now() + KILL_REAP_WAIT;
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                // Reaped, or (ECHILD) already gone.
                _ => return,
            }
            match self.signals.wait(Some(deadline)) {
                Ok(sigs) if !sigs.is_empty() => {}
                _ => {
                    log::error!(
                        "helper PID={pid} was not reaped after SIGKILL, exiting without it"
                    );
                    return;
                }
            }
        }
    }

    // ----- signals -------------------------------------------------------

    fn on_signal(&mut self, sig: Signal) {
        match sig {
            Signal::SIGCHLD => self.on_sigchld(),
            Signal::SIGTERM | Signal::SIGINT => {
                log::warn!("got {}", sig.as_str());
                if self.phase == Phase::Running {
                    self.shutdown();
                } else {
                    log::info!("already shutting down, ignoring {}", sig.as_str());
                }
            }
            Signal::SIGHUP => {
                log::info!("got SIGHUP");
                self.on_hup();
            }
            Signal::SIGUSR1 => {
                if self.phase != Phase::Running {
                    log::info!("got SIGUSR1");
                    log::info!("shutting down, ignoring SIGUSR1");
                    return;
                }
                let starting = match self.restart {
                    Some(Restart::Ready { child, .. }) => Some(child),
                    _ => None,
                };
                for child in &self.children {
                    if Some(child.pid) == starting {
                        // SIGUSR1's default action is to terminate: sent
                        // before Envoy has installed its handler, it would
                        // kill the new epoch. An epoch that is not ready has
                        // just opened its logs anyway.
                        log::info!(
                            "not sending SIGUSR1 to PID={} (epoch {} is not ready yet)",
                            child.pid,
                            child.epoch
                        );
                        continue;
                    }
                    log::info!("sending SIGUSR1 to PID={}", child.pid);
                    if let Err(e) = kill(child.pid, Signal::SIGUSR1) {
                        log::error!("error in SIGUSR1 to PID={} continuing", child.pid);
                        log::debug!("SIGUSR1 to PID={}: {e}", child.pid);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_hup(&mut self) {
        let stopping = self.phase != Phase::Running;
        match policy::on_hup(stopping, self.restart_blocked(), self.held_hup) {
            HupAction::Ignore => log::info!("shutting down, ignoring SIGHUP"),
            HupAction::Restart => self.begin_restart(),
            HupAction::Hold => {
                self.held_hup = true;
                log::info!("holding SIGHUP until {}", self.describe_restart());
                // systemd (Type=notify-reload) waits for RELOADING=1 after
                // its SIGHUP; READY=1 follows once the held restart is done.
                if let Some(n) = &self.notifier {
                    n.reloading("restart held");
                }
            }
            HupAction::Coalesce => log::info!(
                "coalescing SIGHUP into the held restart (waiting until {})",
                self.describe_restart()
            ),
        }
    }

    /// Is a new restart to wait? While one is under way (preflight, ready
    /// check), and with --hold-while-draining while an older epoch drains.
    fn restart_blocked(&self) -> bool {
        self.restart.is_some() || self.draining().is_some() || self.abandoned().is_some()
    }

    /// A killed epoch not reaped yet: its Envoy may still hold the epoch's
    /// hot-restart socket, so the same epoch number must wait for it.
    fn abandoned(&self) -> Option<&Child> {
        self.children.iter().find(|c| c.abandoned)
    }

    /// The oldest epoch still draining, when --hold-while-draining makes it
    /// hold restarts back.
    fn draining(&self) -> Option<&Child> {
        if self.cfg.hold_while_draining && self.live().count() > 1 {
            self.live().next()
        } else {
            None
        }
    }

    fn describe_restart(&self) -> String {
        if let (None, Some(old)) = (self.restart, self.draining()) {
            return format!(
                "epoch {} (PID={}) has drained and exited",
                old.epoch, old.pid
            );
        }
        if let (None, Some(killed)) = (self.restart, self.abandoned()) {
            return format!(
                "epoch {} (PID={}) has been reaped",
                killed.epoch, killed.pid
            );
        }
        match self.restart {
            Some(Restart::Preflight { epoch, .. }) => {
                format!("the preflight for epoch {epoch} is done")
            }
            Some(Restart::Ready { epoch, child, .. }) => {
                format!("epoch {epoch} (PID={child}) is ready")
            }
            None => "the current restart is done".to_string(),
        }
    }

    // ----- restarts ------------------------------------------------------

    /// A restart begins: run the preflight if there is one, else start the
    /// next epoch at once.
    fn begin_restart(&mut self) {
        let epoch = self.next_epoch;
        if let Some(n) = &self.notifier {
            n.reloading(&format!("restarting to epoch {epoch}"));
        }
        let Some(script) = self.cfg.preflight.clone() else {
            self.start_epoch(epoch);
            return;
        };
        log::info!("running preflight {} for epoch {epoch}", script.display());
        match self.spawn_helper(&script, epoch, false) {
            Ok(pid) => {
                let now = Instant::now();
                self.restart = Some(Restart::Preflight {
                    epoch,
                    started: now,
                    helper: Helper {
                        pid,
                        deadline: now + self.cfg.preflight_timeout,
                    },
                });
            }
            Err(e) => {
                log::error!(
                    "cannot run preflight: {}",
                    spawn::explain_exec_error(&script, &e)
                );
                self.restart_skipped(epoch, "its preflight could not run");
            }
        }
    }

    /// Fork and exec the start script for `epoch`.
    fn start_epoch(&mut self, epoch: u32) {
        log::info!("forking and execing new child process at epoch {epoch}");
        let result = Spec::new(&self.cfg.start_script, &self.cfg.script_args, epoch)
            .and_then(|spec| spawn::spawn(&spec));
        let pid = match result {
            Ok(pid) => pid,
            Err(e) => {
                log::error!(
                    "cannot start epoch {epoch}: {}",
                    spawn::explain_exec_error(&self.cfg.start_script, &e)
                );
                self.restart = None;
                self.start_failed(epoch);
                return;
            }
        };
        log::info!("forked new child process with PID={pid}");
        self.children.push(Child {
            pid,
            epoch,
            abandoned: false,
        });
        self.next_epoch = epoch + 1;
        if self.cfg.ready_check.is_some() {
            let now = Instant::now();
            self.restart = Some(Restart::Ready {
                epoch,
                child: pid,
                started: now,
                deadline: now + self.cfg.ready_timeout,
                check: None,
                next_try: now,
            });
            // Run the first check now rather than at the next wake-up.
            self.on_time(now);
        } else {
            self.restart_done();
        }
    }

    /// A start that failed before any child ran.
    fn start_failed(&mut self, epoch: u32) {
        if self.children.is_empty() {
            // Epoch 0, or every other child is gone: nothing to keep.
            self.finish(Ending::Failure);
        } else if self.cfg.keep_serving {
            self.restart_failed(epoch, "its start script could not be executed");
        } else {
            self.teardown();
        }
    }

    /// The restart is complete (the new epoch runs, and is ready if there
    /// is a ready check). Start a held one, if any.
    fn restart_done(&mut self) {
        self.restart = None;
        self.kept_failure = false;
        self.notify_ready();
        if let (true, Some(old)) = (self.held_hup, self.draining()) {
            log::info!(
                "the held restart waits until epoch {} (PID={}) has drained and exited",
                old.epoch,
                old.pid
            );
        }
        self.take_held_hup();
    }

    fn take_held_hup(&mut self) {
        if self.held_hup
            && !self.in_batch
            && self.phase == Phase::Running
            && self.exit.is_none()
            && self.live().next().is_some()
            && !self.restart_blocked()
        {
            self.held_hup = false;
            log::info!("starting the held restart");
            self.begin_restart();
        }
    }

    /// A restart that did not start a new epoch: the serving children are
    /// untouched and the epoch number stays free.
    fn restart_skipped(&mut self, epoch: u32, why: &str) {
        self.restart = None;
        log::error!(
            "restart to epoch {epoch} skipped because {why}; {}",
            self.serving_description()
        );
        self.notify_ready();
        self.take_held_hup();
    }

    /// With --keep-serving: a new epoch failed while older ones run.
    fn restart_failed(&mut self, epoch: u32, why: &str) {
        if let Some(Restart::Preflight { epoch: checked, .. }) = self.restart {
            // The preflight ran for an epoch that will not come next now:
            // stop it and run the restart again for the right epoch.
            self.kill_helper();
            self.held_hup = true;
            log::info!("cancelled the preflight for epoch {checked}; the restart will be retried");
        }
        self.next_epoch = policy::next_epoch_after_failure(self.live().map(|c| c.epoch), epoch);
        self.kept_failure = true;
        log::warn!(
            "restart to epoch {epoch} failed because {why}; {} (--keep-serving), \
             the next restart uses epoch {}",
            self.serving_description(),
            self.next_epoch
        );
        self.restart = None;
        self.notify_ready();
        self.take_held_hup();
    }

    /// Children that count: every one not already given up on.
    fn live(&self) -> impl Iterator<Item = &Child> {
        self.children.iter().filter(|c| !c.abandoned)
    }

    fn serving_description(&self) -> String {
        match self.live().last() {
            Some(c) => format!("epoch {} (PID={}) keeps serving", c.epoch, c.pid),
            None => "no epoch is serving".to_string(),
        }
    }

    /// READY=1 with the serving epoch, unless a held restart is still to
    /// come (systemd's reload is not done until then).
    fn notify_ready(&self) {
        if self.held_hup {
            return;
        }
        if let (Some(n), Some(c)) = (&self.notifier, self.live().last()) {
            n.ready(&format!("serving epoch {} (PID={})", c.epoch, c.pid));
        }
    }

    // ----- helpers (preflight, ready check) -------------------------------

    fn spawn_helper(&self, script: &Path, epoch: u32, quiet: bool) -> std::io::Result<Pid> {
        // Its own process group, so that killing it also kills what it
        // started (`sh` running `envoy --mode validate`, `curl`).
        let spec = Spec::new(script, &[], epoch)?.own_group();
        spawn::spawn(&if quiet { spec.quiet_stdout() } else { spec })
    }

    fn helper_pid(&self) -> Option<Pid> {
        match self.restart {
            Some(Restart::Preflight { helper, .. }) => Some(helper.pid),
            Some(Restart::Ready {
                check: Some(helper),
                ..
            }) => Some(helper.pid),
            _ => None,
        }
    }

    /// SIGKILL the running helper's process group, if any, and return the
    /// helper's pid unless it has already been reaped. It is reaped later as
    /// a process that is no longer tracked.
    fn kill_helper(&mut self) -> Option<Pid> {
        let pid = self.helper_pid().filter(|_| !self.helper_reaped);
        if let Some(pid) = pid {
            kill_group(pid);
        }
        self.restart = None;
        pid
    }

    fn on_helper_exit(&mut self, pid: Pid, exit: Exit) {
        let now = Instant::now();
        match self.restart {
            Some(Restart::Preflight { epoch, started, .. }) => {
                if exit.is_clean() {
                    log::info!(
                        "preflight for epoch {epoch} passed in {} ms",
                        started.elapsed().as_millis()
                    );
                    self.restart = None;
                    if self.phase != Phase::Running || self.live().next().is_none() {
                        // The serving epoch is gone meanwhile: nothing to
                        // hot-restart from, and the wrapper is about to end.
                        return;
                    }
                    self.start_epoch(epoch);
                } else {
                    log::error!(
                        "preflight for epoch {epoch} (PID={pid}) failed: {}",
                        describe(exit)
                    );
                    self.restart_skipped(epoch, "its preflight failed");
                }
            }
            Some(Restart::Ready {
                epoch,
                child,
                started,
                deadline,
                ..
            }) => {
                if exit.is_clean() {
                    log::info!(
                        "epoch {epoch} (PID={child}) is ready after {} ms",
                        started.elapsed().as_millis()
                    );
                    self.restart_done();
                } else {
                    log::debug!(
                        "ready check for epoch {epoch} (PID={child}): {}",
                        describe(exit)
                    );
                    self.restart = Some(Restart::Ready {
                        epoch,
                        child,
                        started,
                        deadline,
                        check: None,
                        next_try: now + self.cfg.ready_interval,
                    });
                }
            }
            None => {}
        }
    }

    // ----- children ------------------------------------------------------

    /// Reap everything that has exited: our children, helpers, and orphans
    /// re-parented to us.
    fn on_sigchld(&mut self) {
        let reaped = self.reap();
        let helper = self.helper_pid();
        // The Python wrapper logs every SIGCHLD; ready checks exit several
        // times a second, so their exits alone are logged only at debug.
        let only_helpers = reaped.iter().all(|(pid, _)| Some(*pid) == helper);
        if self.phase == Phase::Running && !reaped.is_empty() && !only_helpers {
            log::info!("got SIGCHLD");
        } else {
            log::debug!("got SIGCHLD");
        }
        // Judge the children first, then the helper: a helper exit can
        // start an epoch, which must not happen in a batch that turns out to
        // need a teardown. The helper, if reaped, is marked so that nothing
        // signals its pid again.
        let helper_exit = reaped.iter().find(|(pid, _)| Some(*pid) == helper).copied();
        self.in_batch = true;
        self.helper_reaped = helper_exit.is_some();
        let mut failed = false;
        for &(pid, exit) in &reaped {
            if let Some(i) = self.children.iter().position(|c| c.pid == pid) {
                let child = self.children.remove(i);
                failed |= self.on_child_exit(child, exit);
            } else if Some(pid) != helper {
                log::debug!(
                    "reaped PID={pid} ({}), not a child we track",
                    describe(exit)
                );
            }
        }
        if failed {
            self.teardown();
        }
        if let Some((pid, exit)) = helper_exit
            && self.helper_pid() == Some(pid)
        {
            self.on_helper_exit(pid, exit);
        }
        self.in_batch = false;
        self.helper_reaped = false;
        self.check_children_left();
        // An epoch that finished draining (or a restart that completed in
        // this batch) may be what a held SIGHUP waits for.
        self.take_held_hup();
    }

    /// `waitpid(-1, WNOHANG)` until nothing more has exited.
    fn reap(&mut self) -> Vec<(Pid, Exit)> {
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

    /// Judge one child's exit. Returns true when it means a teardown.
    fn on_child_exit(&mut self, child: Child, exit: Exit) -> bool {
        let pid = child.pid;
        if self.phase != Phase::Running || child.abandoned {
            log::debug!("PID={pid} (epoch {}): {}", child.epoch, describe(exit));
            return false;
        }
        match exit {
            Exit::Code(0) => log::info!("PID={pid} exited with code=0"),
            Exit::Code(code) => log::warn!("PID={pid} exited with code={code}"),
            Exit::Signal(sig) => log::warn!("PID={pid} was killed with signal={sig}"),
        }
        let awaited = matches!(self.restart, Some(Restart::Ready { child: c, .. }) if c == pid);
        if exit.is_clean() {
            if awaited {
                // It finished before it was ever ready: nothing to wait for.
                self.kill_helper();
                self.restart_done();
            }
            return false;
        }
        if !self.cfg.keep_serving || self.live().next().is_none() {
            return true;
        }
        let newest = self.live().map(|c| c.epoch).max().unwrap_or(0);
        if child.epoch > newest {
            if awaited {
                self.kill_helper();
            }
            // envoyproxy/envoy #33446: once a new Envoy has died before
            // going live, Envoy 1.40 refuses every later hot restart of the
            // surviving generation, whatever epoch number is tried.
            log::warn!(
                "epoch {} (PID={pid}) died before taking over; if Envoy itself had started, \
                 every further hot restart of the serving Envoy will fail with \"previous envoy \
                 process is still initializing\" until the service is restarted cold \
                 (envoyproxy/envoy #33446); --preflight catches bad configs before a new Envoy \
                 starts",
                child.epoch
            );
            self.restart_failed(child.epoch, &format!("PID={pid} {}", describe(exit)));
        } else {
            log::warn!(
                "epoch {} (PID={pid}) failed while newer epochs run; {} (--keep-serving)",
                child.epoch,
                self.serving_description()
            );
        }
        false
    }

    /// Exit once no child is left (and say why).
    fn check_children_left(&mut self) {
        if !self.children.is_empty() || self.exit.is_some() {
            return;
        }
        match self.phase {
            Phase::Running => {
                log::warn!("exiting due to lack of child processes");
                self.finish(if self.kept_failure {
                    Ending::Failure
                } else {
                    Ending::NoChildrenLeft
                });
            }
            Phase::ShuttingDown { .. } => {
                log::info!("all children exited cleanly");
                self.finish(Ending::GracefulShutdown);
            }
            Phase::Killing { ending, .. } => {
                if ending == Ending::Failure {
                    log::warn!("exiting due to lack of child processes");
                }
                self.finish(ending);
            }
        }
    }

    /// A child failed: SIGKILL every other child, then exit 1 once they are
    /// reaped.
    fn teardown(&mut self) {
        log::warn!("Due to abnormal exit, force killing all child processes and exiting");
        self.kill_helper();
        self.force_kill_all(Ending::Failure);
    }

    fn force_kill_all(&mut self, ending: Ending) {
        for child in &self.children {
            log::warn!("force killing PID={}", child.pid);
            if let Err(e) = kill(child.pid, Signal::SIGKILL) {
                log::error!("error force killing PID={} continuing", child.pid);
                log::debug!("SIGKILL to PID={}: {e}", child.pid);
            }
        }
        self.phase = Phase::Killing {
            deadline: Instant::now() + KILL_REAP_WAIT,
            ending,
        };
        self.check_children_left();
    }

    /// SIGTERM/SIGINT: pass SIGTERM on and wait up to the term wait.
    fn shutdown(&mut self) {
        if let Some(n) = &self.notifier {
            n.stopping();
        }
        self.kill_helper();
        self.held_hup = false;
        for child in &self.children {
            log::info!("sending TERM to PID={}", child.pid);
            if let Err(e) = kill(child.pid, Signal::SIGTERM) {
                log::error!("error sending TERM to PID={} continuing", child.pid);
                log::debug!("SIGTERM to PID={}: {e}", child.pid);
            }
        }
        self.phase = Phase::ShuttingDown {
            deadline: Instant::now() + self.cfg.term_wait,
        };
        self.check_children_left();
    }

    fn finish(&mut self, ending: Ending) {
        self.exit = Some(ending.exit_code());
    }

    // ----- deadlines -----------------------------------------------------

    /// The earliest moment something must happen without a signal.
    fn next_deadline(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Running => None,
            Phase::ShuttingDown { deadline } | Phase::Killing { deadline, .. } => Some(deadline),
        };
        let restart = match self.restart {
            None => None,
            Some(Restart::Preflight { helper, .. }) => Some(helper.deadline),
            Some(Restart::Ready {
                deadline,
                check,
                next_try,
                ..
            }) => Some(match check {
                Some(_) => deadline,
                None => deadline.min(next_try),
            }),
        };
        [phase, restart].into_iter().flatten().min()
    }

    /// Act on every deadline that has passed.
    fn on_time(&mut self, now: Instant) {
        match self.phase {
            Phase::ShuttingDown { deadline } if now >= deadline => {
                for child in &self.children {
                    log::info!("child PID={} did not exit cleanly, killing", child.pid);
                }
                self.force_kill_all(Ending::ForcedShutdown);
                return;
            }
            Phase::Killing { deadline, ending } if now >= deadline => {
                for child in &self.children {
                    log::error!(
                        "PID={} was not reaped after SIGKILL, exiting without it",
                        child.pid
                    );
                }
                self.finish(ending);
                return;
            }
            _ => {}
        }
        match self.restart {
            Some(Restart::Preflight { epoch, helper, .. }) if now >= helper.deadline => {
                kill_group(helper.pid);
                log::error!(
                    "preflight for epoch {epoch} (PID={}) timed out after {} s",
                    helper.pid,
                    self.cfg.preflight_timeout.as_secs_f64()
                );
                self.restart_skipped(epoch, "its preflight timed out");
            }
            Some(Restart::Ready {
                epoch,
                child,
                deadline,
                check,
                ..
            }) if now >= deadline => {
                if let Some(check) = check {
                    kill_group(check.pid);
                }
                self.restart = None;
                log::error!(
                    "epoch {epoch} (PID={child}) not ready after {} s, killing it",
                    self.cfg.ready_timeout.as_secs_f64()
                );
                self.ready_timed_out(child, epoch);
            }
            Some(Restart::Ready {
                epoch,
                child,
                started,
                deadline,
                check: None,
                next_try,
            }) if now >= next_try => {
                let script = self
                    .cfg
                    .ready_check
                    .clone()
                    .expect("ready check configured");
                let check = match self.spawn_helper(&script, epoch, true) {
                    Ok(pid) => Some(Helper { pid, deadline }),
                    Err(e) => {
                        log::error!(
                            "cannot run ready check: {}",
                            spawn::explain_exec_error(&script, &e)
                        );
                        None
                    }
                };
                self.restart = Some(Restart::Ready {
                    epoch,
                    child,
                    started,
                    deadline,
                    check,
                    next_try: now + self.cfg.ready_interval,
                });
            }
            _ => {}
        }
    }

    /// The ready check gave up on `pid`: kill it; that is a failed restart.
    fn ready_timed_out(&mut self, pid: Pid, epoch: u32) {
        let Some(i) = self.children.iter().position(|c| c.pid == pid) else {
            return;
        };
        self.children[i].abandoned = true;
        log::warn!("force killing PID={pid}");
        if let Err(e) = kill(pid, Signal::SIGKILL) {
            log::error!("error force killing PID={pid} continuing");
            log::debug!("SIGKILL to PID={pid}: {e}");
        }
        if self.cfg.keep_serving && self.live().next().is_some() {
            self.restart_failed(epoch, "it was not ready in time");
        } else {
            self.teardown();
        }
    }
}

/// SIGKILL a helper and everything in its process group (it leads one).
/// The group id cannot be reused while any member of the group lives.
fn kill_group(pid: Pid) {
    let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
}

/// "exited with code=N" / "was killed with signal=N", as in the log lines.
fn describe(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exited with code={code}"),
        Exit::Signal(sig) => format!("was killed with signal={sig}"),
    }
}
