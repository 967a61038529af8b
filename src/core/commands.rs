//! What the operator asks for, by signal or on the control socket: restart
//! (SIGHUP, `reload`), reopen logs (SIGUSR1, `reopen-logs`), stop
//! (SIGTERM/SIGINT, `stop`), and `status`. A control request does exactly
//! what its signal does, and is answered when that is done.

use std::path::PathBuf;

use nix::sys::signal::Signal;

use super::policy::{self, HupAction};
use super::{
    Action, ChildState, Command, Core, Held, Notify, Phase, Reply, Trigger, WaiterId, quoted_paths,
};

impl Core {
    pub(super) fn on_signal(&mut self, sig: Signal) {
        match sig {
            Signal::SIGTERM | Signal::SIGINT => {
                say!(self, Warn, "got {}", sig.as_str());
                self.on_stop();
            }
            Signal::SIGHUP => {
                say!(self, Info, "got SIGHUP");
                self.on_hup(Trigger::Signal);
            }
            Signal::SIGUSR1 => {
                self.on_usr1();
            }
            Signal::SIGUSR2 => {
                say!(self, Info, "got SIGUSR2");
                self.on_handoff("SIGUSR2");
            }
            other => say!(self, Debug, "ignoring {}", other.as_str()),
        }
    }

    pub(super) fn on_control(&mut self, client: WaiterId, command: Command) {
        match command {
            Command::Status => {
                let status = self.status();
                self.reply(client, Reply::Status(Box::new(status)));
            }
            Command::Reload { wait } => match self.on_hup(Trigger::Request) {
                HupAction::Ignore => self.reply_failed(client, "the wrapper is shutting down"),
                _ if !wait => self.reply_done(client, "reload requested"),
                HupAction::Restart => self.wait_for_current_reload(client),
                HupAction::Hold | HupAction::Coalesce => self.wait_for_held_reload(client),
            },
            Command::ReopenLogs => {
                let sent = self.on_usr1();
                match sent {
                    Some(n) => self.reply_done(client, &format!("SIGUSR1 sent to {n} children")),
                    None => self.reply_failed(client, "the wrapper is shutting down"),
                }
            }
            Command::Stop { wait } => {
                self.on_stop();
                if wait {
                    self.wait_for_exit(client);
                } else {
                    self.reply_done(client, "stopping");
                }
            }
            Command::Reexec { wait } => self.on_reexec(client, wait),
            Command::Handoff { wait } => match self.on_handoff("requested on the control socket") {
                HupAction::Ignore if !self.s.handoff => {
                    self.reply_failed(client, "handoff needs --envoy-admin and --handoff-admin")
                }
                HupAction::Ignore => self.reply_failed(client, "the wrapper is shutting down"),
                _ if !wait => self.reply_done(client, "handoff requested"),
                HupAction::Restart => self.wait_for_current_reload(client),
                HupAction::Hold | HupAction::Coalesce => self.wait_for_held_reload(client),
            },
        }
    }

    fn on_stop(&mut self) {
        if let Phase::Running(_) = self.phase {
            if !self.begin_stop_drain() {
                self.shutdown();
            }
        } else if let Phase::Draining(_) = self.phase {
            self.skip_stop_drain();
        } else {
            say!(
                self,
                Info,
                "already shutting down, ignoring the stop request"
            );
        }
    }

    /// A restart request: start one now, hold it, fold it into the held
    /// one, or ignore it while stopping. SIGHUP's and `reload`'s lines are
    /// the Python wrapper's; a watched change names the files.
    fn on_hup(&mut self, trigger: Trigger) -> HupAction {
        let stopping = !matches!(self.phase, Phase::Running(_));
        let action = policy::on_hup(stopping, self.restart_blocked(), self.held.is_some());
        let changed = match &trigger {
            Trigger::Changed(paths) => Some(quoted_paths(paths)),
            _ => None,
        };
        match action {
            HupAction::Ignore => match &changed {
                None => say!(self, Info, "shutting down, ignoring SIGHUP"),
                Some(paths) => say!(self, Info, "{paths} changed: shutting down, ignoring it"),
            },
            HupAction::Restart => {
                if let Some(paths) = &changed {
                    say!(self, Info, "{paths} changed: restarting");
                }
                self.trigger = Some(trigger);
                self.begin_restart();
                // Taken by the reload it began; nothing is left pending.
                self.trigger = None;
            }
            HupAction::Hold => {
                self.held = Some(Held::Restart);
                match &changed {
                    None => say!(self, Info, "holding SIGHUP until {}", self.describe_wait()),
                    Some(paths) => say!(
                        self,
                        Info,
                        "{paths} changed: holding the restart until {}",
                        self.describe_wait()
                    ),
                }
                self.trigger = Some(trigger);
                // systemd (Type=notify-reload) waits for RELOADING=1 after
                // its SIGHUP; READY=1 follows once the held restart is done.
                self.notify(Notify::Reloading("restart held".into()));
            }
            HupAction::Coalesce => {
                match &changed {
                    None => say!(
                        self,
                        Info,
                        "coalescing SIGHUP into the held restart (waiting until {})",
                        self.describe_wait()
                    ),
                    Some(paths) => say!(
                        self,
                        Info,
                        "{paths} changed: coalescing into the held restart (waiting until {})",
                        self.describe_wait()
                    ),
                }
                match &mut self.trigger {
                    Some(held) => held.absorb(trigger),
                    None => self.trigger = Some(trigger),
                }
            }
        }
        action
    }

    /// `--watch`: watched files changed; a reload exactly as SIGHUP's.
    pub(super) fn on_changed(&mut self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        self.on_hup(Trigger::Changed(paths));
    }

    /// A handoff request: as a restart request, but to a new generation; a
    /// held handoff absorbs a held restart (the new generation reads the
    /// configuration afresh too).
    fn on_handoff(&mut self, why: &str) -> HupAction {
        if !self.s.handoff {
            say!(
                self,
                Warn,
                "ignoring the handoff request: --handoff-admin is not set"
            );
            return HupAction::Ignore;
        }
        let stopping = !matches!(self.phase, Phase::Running(_));
        let held_handoff = matches!(self.held, Some(Held::Handoff(_)));
        let action = policy::on_hup(stopping, self.restart_blocked(), held_handoff);
        match action {
            HupAction::Ignore => say!(self, Info, "shutting down, ignoring the handoff request"),
            HupAction::Restart => self.begin_handoff(why),
            HupAction::Hold => {
                self.held = Some(Held::Handoff(why.to_string()));
                say!(
                    self,
                    Info,
                    "holding the handoff until {}",
                    self.describe_wait()
                );
                self.notify(Notify::Reloading("handoff held".into()));
            }
            HupAction::Coalesce => say!(
                self,
                Info,
                "coalescing the handoff request into the held one"
            ),
        }
        action
    }

    /// SIGUSR1 to every child that can take it; returns how many, or None
    /// when shutting down.
    fn on_usr1(&mut self) -> Option<usize> {
        if !matches!(self.phase, Phase::Running(_)) {
            say!(self, Info, "got SIGUSR1");
            say!(self, Info, "shutting down, ignoring SIGUSR1");
            return None;
        }
        let mut sent = 0;
        for i in 0..self.children.len() {
            let c = self.children[i].clone();
            match c.state {
                // SIGUSR1's default action is to terminate: sent before
                // Envoy has installed its handler, it would kill the new
                // epoch. An epoch that is not ready has just opened its logs.
                ChildState::Starting => say!(
                    self,
                    Info,
                    "not sending SIGUSR1 to PID={} (epoch {} is not ready yet)",
                    c.pid,
                    c.epoch
                ),
                // SIGKILLed already: nothing to reopen.
                ChildState::Abandoned => {}
                ChildState::Ready | ChildState::Draining | ChildState::Retiring => {
                    say!(self, Info, "sending SIGUSR1 to PID={}", c.pid);
                    self.actions.push(Action::Signal(c.pid, Signal::SIGUSR1));
                    sent += 1;
                }
            }
        }
        Some(sent)
    }

    pub(super) fn reply(&mut self, client: WaiterId, reply: Reply) {
        self.actions.push(Action::Reply(client, reply));
    }

    pub(super) fn reply_done(&mut self, client: WaiterId, detail: &str) {
        let detail = detail.to_string();
        self.reply(client, Reply::Done { detail });
    }

    pub(super) fn reply_failed(&mut self, client: WaiterId, reason: &str) {
        let reason = reason.to_string();
        self.reply(client, Reply::Failed { reason });
    }
}
