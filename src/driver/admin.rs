//! The driver's side of Envoy's admin: questions in flight as non-blocking
//! requests, and what their answers mean for the core.

use std::time::{Duration, Instant};

use super::Driver;
use crate::admin::{self, Method};
use crate::core::{Answer, Event, Query, quoted, slot};
use crate::os::listening;

/// How long one request to Envoy's admin may take, connect to last byte.
/// Short: a readiness poll that goes unanswered is simply asked again.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The requests in flight of every HTTP connection manager, as JSON:
/// `^http\..*\.downstream_rq_active$`, URL-encoded (the admin's own
/// request is among them and is left out when summing).
const IN_FLIGHT_PATH: &str = "/stats?format=json&filter=%5Ehttp%5C..*%5C.downstream_rq_active%24";

/// A question to Envoy's admin in flight.
pub(super) struct Asking {
    pub(super) id: u64,
    query: Query,
    pub(super) request: admin::Request,
}

impl Driver {
    /// The admin address of a generation's slot: `--envoy-admin` for slot
    /// 0, `--handoff-admin` for slot 1.
    pub(super) fn admin_addr(&self, generation: u32) -> Option<&admin::AdminAddr> {
        match slot(generation) {
            0 => self.cfg.envoy_admin.as_ref(),
            _ => self.cfg.handoff_admin.as_ref(),
        }
    }

    /// Send a question to Envoy's admin. An error at once (a bad address)
    /// is the answer at once.
    pub(super) fn ask(&mut self, query: Query) -> Option<Event> {
        let (generation, method, path) = match query {
            Query::ServerInfo { generation, .. } | Query::Occupied { generation } => {
                (generation, Method::Get, "/server_info")
            }
            Query::Drain { generation } => (generation, Method::Post, "/drain_listeners?graceful"),
            Query::HealthcheckFail { generation } => {
                (generation, Method::Post, "/healthcheck/fail")
            }
            Query::InFlight { generation } => (generation, Method::Get, IN_FLIGHT_PATH),
            Query::HotRestartVersion { generation } => {
                (generation, Method::Get, "/hot_restart_version")
            }
            Query::Listening { generation, pid } => {
                let admin_port = match self.admin_addr(generation) {
                    Some(admin::AdminAddr::Tcp(addr)) => Some(addr.port()),
                    _ => None,
                };
                let answer = listening::count_listening(pid.as_raw(), admin_port)
                    .map(Answer::Listening)
                    .map_err(|e| format!("cannot read PID={pid}'s sockets: {e}"));
                return Some(Event::Answered(query, answer));
            }
        };
        let Some(addr) = self.admin_addr(generation) else {
            return Some(Event::Answered(query, Err("no admin address".into())));
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
            let answer = match (asking.query, result) {
                // Any HTTP answer at all means the address is taken.
                (Query::Occupied { generation }, Ok(_)) => Ok(Answer::Answers(
                    self.admin_addr(generation).map_or(String::new(), addr_text),
                )),
                (query, result) => result
                    .map_err(|e| e.to_string())
                    .and_then(|response| understand(query, response)),
            };
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

/// An admin address as the user gave it.
fn addr_text(addr: &admin::AdminAddr) -> String {
    match addr {
        admin::AdminAddr::Tcp(a) => a.to_string(),
        admin::AdminAddr::Unix(p) => p.display().to_string(),
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
        return Err(format!("HTTP {}: {}", response.status, quoted(body.trim())));
    }
    match query {
        Query::ServerInfo { .. } => {
            let info = admin::parse_server_info(&response.body)?;
            Ok(Answer::ServerInfo {
                state: info.state,
                restart_epoch: info.restart_epoch,
                uptime: info.uptime_current_epoch,
            })
        }
        Query::HotRestartVersion { .. } => Ok(Answer::Version(admin::parse_hot_restart_version(
            &response.body,
        ))),
        Query::InFlight { .. } => admin::parse_in_flight(&response.body).map(Answer::InFlight),
        _ => Ok(Answer::Ok),
    }
}
