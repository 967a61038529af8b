//! The driver's side of the control socket: accepting clients, reading
//! their requests for the core, timeouts, and the last answers at exit.

use std::time::Instant;

use super::Driver;
use crate::control::proto::Reply;
use crate::control::server::{ClientEvent, ClientId};
use crate::core::Event;

impl Driver {
    pub(super) fn accept_clients(&mut self) {
        if let Some(server) = &mut self.control {
            server.accept(Instant::now());
        }
    }

    pub(super) fn on_client_ready(&mut self, id: ClientId) {
        let Some(server) = &mut self.control else {
            return;
        };
        match server.on_ready(id, Instant::now()) {
            Some(ClientEvent::Request(request)) => self.feed(Event::Control(id, request)),
            Some(ClientEvent::Gone) => self.feed(Event::ControlGone(id)),
            None => {}
        }
    }

    pub(super) fn control_timeouts(&mut self) {
        if let Some(server) = &mut self.control {
            let now = Instant::now();
            if server.next_deadline().is_some_and(|d| now >= d) {
                server.on_timeout(now);
            }
        }
    }

    /// The wrapper is about to exit with `code`, every child reaped: remove
    /// the pid file and the socket file, then answer `stop --wait` last, so
    /// that a new wrapper can start the moment the answer arrives.
    pub(super) fn exit(&mut self, code: i32) {
        drop(self.pid_file.take());
        let waiters = self.core.take_stop_waiters();
        let Some(server) = &mut self.control else {
            return;
        };
        server.unlink();
        let reply = if code == 0 {
            Reply::Done {
                detail: "hot-restarter exited with code 0".into(),
            }
        } else {
            Reply::Failed {
                reason: format!("hot-restarter exited with code {code}"),
            }
        };
        let now = Instant::now();
        for client in waiters {
            server.reply(client, &reply, now);
        }
    }
}
