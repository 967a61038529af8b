//! The driver's side of Envoy's admin: questions in flight as non-blocking
//! requests, and what their answers mean for the core.

use std::time::{Duration, Instant};

use super::Driver;
use crate::admin;
use crate::core::{Answer, Event, Query};

/// How long one request to Envoy's admin may take, connect to last byte.
/// Short: a readiness poll that goes unanswered is simply asked again.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A question to Envoy's admin in flight.
pub(super) struct Asking {
    pub(super) id: u64,
    query: Query,
    pub(super) request: admin::Request,
}

impl Driver {
    /// Send a question to Envoy's admin. An error at once (a bad address)
    /// is the answer at once.
    pub(super) fn ask(&mut self, query: Query) -> Option<Event> {
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

    pub(super) fn on_admin_ready(&mut self, id: u64) {
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
    pub(super) fn admin_timeouts(&mut self) {
        let now = Instant::now();
        while let Some(i) = self.asking.iter().position(|a| now >= a.request.deadline()) {
            let asking = self.asking.remove(i);
            let error = asking.request.timed_out().to_string();
            self.feed(Event::Answered(asking.query, Err(error)));
        }
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
