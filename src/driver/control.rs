//! The driver's side of the control socket: accepting clients, reading
//! their requests for the core, timeouts, and the last answers at exit.

use std::time::Instant;

use super::Driver;
use crate::control::proto::{Reply, Request};
use crate::control::server::{ClientEvent, ClientId};
use crate::core::{self, Event, WaiterId};

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
            Some(ClientEvent::Request(request)) => {
                if request != Request::Status {
                    log::info!("control socket: {}", request.to_line().trim_end());
                }
                self.feed(Event::Control(waiter(id), request.into()))
            }
            Some(ClientEvent::Gone) => self.feed(Event::ControlGone(waiter(id))),
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
        for waiter in waiters {
            server.reply(client(waiter), &reply, now);
        }
    }

    /// Carry out `Action::Reply`.
    pub(super) fn reply(&mut self, waiter: WaiterId, reply: &core::Reply) {
        if let Some(server) = &mut self.control {
            server.reply(client(waiter), &Reply::from(reply), Instant::now());
        }
    }
}

/// The core knows a client by its server's id number.
fn waiter(id: ClientId) -> WaiterId {
    WaiterId(id.0)
}

fn client(waiter: WaiterId) -> ClientId {
    ClientId(waiter.0)
}
