//! The driver's side of `reexec`: check the new binary, hand the state
//! over and exec it; or, in the new binary, carry on from the hand-over.

use std::time::Instant;

use super::{Driver, Resources, reap};
use crate::config::Config;
use crate::control::server::ClientId;
use crate::core::{self, Core, Event, Settings, WaiterId};
use crate::os::reexec::{self, Handover};

impl Driver {
    /// Carry out `Action::Reexec`: returns only if the old binary stays
    /// in charge, with the event that says why.
    pub(super) fn reexec(&mut self, waiters: Vec<WaiterId>) -> Option<Event> {
        let why = self.try_reexec(&waiters);
        for w in waiters {
            self.reply(
                w,
                &core::Reply::Failed {
                    reason: why.clone(),
                },
            );
        }
        Some(Event::ReexecFailed(why))
    }

    fn try_reexec(&mut self, waiters: &[WaiterId]) -> String {
        let Some(path) = reexec::exe_path() else {
            return "the path this wrapper was started from is unknown".into();
        };
        if let Err(why) = reexec::check(path) {
            return why;
        }
        let Some(snapshot) = self.core.snapshot() else {
            return "work is in flight".into();
        };
        // Answers to admin questions are no longer awaited by a quiescent
        // core; they are dropped with the old binary.
        self.asking.clear();
        let clients: Vec<ClientId> = waiters.iter().map(|w| ClientId(w.0)).collect();
        let (listener, socket_file, handed) = match &self.control {
            Some(server) => {
                let (l, f, w) = server.hand_over(&clients);
                (Some(l), f, w)
            }
            None => (None, None, Vec::new()),
        };
        let handover = Handover {
            format: reexec::HANDOVER_VERSION,
            argv: reexec::argv(),
            from_version: env!("CARGO_PKG_VERSION").to_string(),
            core: snapshot,
            listener,
            socket_file,
            clients: handed.clone(),
            pid_file: self.cfg.pid_file.clone(),
        };
        let mut keep: Vec<i32> = handed.iter().map(|c| c.fd).collect();
        keep.extend(listener);
        log::logger().flush();
        reexec::exec(path, &handover, &keep)
    }

    /// The new binary's start after a reexec: the core carries on from the
    /// hand-over, the control socket and the pid file are adopted, and the
    /// `reexec --wait` clients are answered.
    pub fn resume(
        cfg: Config,
        mut resources: Resources,
        handover: Handover,
        fallback: Option<String>,
    ) -> Driver {
        let now = Instant::now();
        let mut core = Core::resume(Settings::from_config(&cfg), handover.core, now);
        if fallback.is_none() {
            core.took_over();
        }
        let mut waiting = Vec::new();
        if let (Some(path), Some(fd)) = (&cfg.control_socket, handover.listener)
            && let Some(listener) = reexec::own(fd)
        {
            {
                let clients = (handover.clients.into_iter())
                    .filter_map(|c| Some((reexec::own(c.fd)?, c.state)))
                    .collect();
                let (server, ids) = crate::control::server::ControlServer::adopt(
                    listener,
                    path,
                    handover.socket_file,
                    clients,
                    now,
                );
                resources.control = Some(server);
                waiting = ids;
            }
        }
        if let Some(path) = &handover.pid_file {
            resources.pid_file = Some(crate::os::pid_file::PidFile::adopt(
                path,
                std::process::id(),
            ));
        }
        let mut driver = Driver::new_with(cfg, resources, core);
        driver.resumed = true;
        let reply = match &fallback {
            None => {
                log::info!(
                    "hot-restarter {} (PID={}) took over from {} after reexec",
                    env!("CARGO_PKG_VERSION"),
                    std::process::id(),
                    crate::core::quoted(&handover.from_version)
                );
                core::Reply::Done {
                    detail: format!(
                        "hot-restarter {} took over from {} (PID={})",
                        env!("CARGO_PKG_VERSION"),
                        handover.from_version,
                        std::process::id()
                    ),
                }
            }
            Some(why) => {
                let why = crate::core::escape_controls(why);
                log::warn!(
                    "reexec failed, hot-restarter {} (PID={}) carries on: {why}",
                    env!("CARGO_PKG_VERSION"),
                    std::process::id(),
                );
                core::Reply::Failed {
                    reason: format!(
                        "{why}; the previous binary ({}) carries on",
                        env!("CARGO_PKG_VERSION")
                    ),
                }
            }
        };
        for id in waiting {
            driver.reply(WaiterId(id.0), &reply);
        }
        // SIGCHLDs pending at the exec were discarded when the new binary
        // set SIGCHLD's disposition: reap once now.
        let reaped = reap();
        if !reaped.is_empty() {
            driver.feed(Event::Reaped(reaped));
        }
        driver
    }
}
