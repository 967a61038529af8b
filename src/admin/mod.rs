//! Envoy's admin API, spoken without ever blocking: the admin address, one
//! HTTP/1.1 exchange as a state machine the event loop drives (`Request`),
//! its errors, and what the wrapper reads from `/server_info`.
//!
//! The supervisor's loop owns the waiting: it polls `Request::fd()` for
//! POLLOUT or POLLIN (as `wants_write` says) until `deadline()`, calls
//! `on_ready` whenever poll reports the descriptor, and `timed_out` once the
//! deadline has passed. Nothing here sleeps, resolves a name or waits on a
//! socket, so a slow, silent or absent Envoy never delays a signal
//! (docs/envoy.md, Readiness). `request_blocking` wraps the same machine in its own
//! poll() for tests and one-shot command-line use.

mod envoy;
mod http;
mod request;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

pub use envoy::{ServerInfo, parse_hot_restart_version, parse_in_flight, parse_server_info};
pub use request::Request;

/// The most a response (head and body) may take. Envoy 1.40's
/// `/server_info` is about 125 KB, most of it the list of extensions.
pub const MAX_RESPONSE: usize = 1 << 20;

/// Where Envoy's admin listens: an IP literal and port (never a name: a DNS
/// look-up would block the loop) or the absolute path of its unix socket
/// (the admin `pipe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// The longest path a `sockaddr_un` holds (108 bytes with the final NUL).
const MAX_UNIX_PATH: usize = 107;

impl FromStr for AdminAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected IPv4:PORT, [IPv6]:PORT or an absolute unix socket path";
        if s.starts_with('/') {
            if s.len() > MAX_UNIX_PATH {
                return Err(format!(
                    "'{s}' is not an admin address: a unix socket path has at most \
                     {MAX_UNIX_PATH} bytes"
                ));
            }
            // The file may not exist yet: Envoy creates it when it starts.
            return Ok(AdminAddr::Unix(PathBuf::from(s)));
        }
        match s.parse::<std::net::SocketAddr>() {
            Ok(a) if a.port() == 0 => Err(format!(
                "'{s}' is not an admin address: port 0 cannot be connected to"
            )),
            Ok(a) => Ok(AdminAddr::Tcp(a)),
            Err(_) if s.contains('/') || s.ends_with(".sock") => Err(format!(
                "'{s}' is not an admin address: a unix socket path must be absolute"
            )),
            Err(_) => Err(format!("'{s}' is not an admin address: {expected}")),
        }
    }
}

impl fmt::Display for AdminAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminAddr::Tcp(a) => write!(f, "{a}"),
            AdminAddr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A complete answer: the status and the body, de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why an exchange with the admin failed; it names the address.
#[derive(Debug)]
pub struct AdminError {
    addr: AdminAddr,
    kind: ErrorKind,
}

/// How far an exchange got, for timeout messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connecting,
    Sending,
    Receiving,
}

#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The path to request is not an origin-form path (`/...`, no spaces).
    BadPath(String),
    /// socket(2) failed.
    Socket(io::Error),
    /// connect(2) failed, at once or later (SO_ERROR).
    Connect(io::Error),
    Send(io::Error),
    Receive(io::Error),
    /// poll(2) failed (only in `request_blocking`).
    Poll(io::Error),
    /// The deadline passed at this stage.
    Timeout {
        after: Duration,
        stage: Stage,
    },
    ClosedBeforeHead,
    ClosedInBody,
    BadHead(String),
    BadBody(String),
    /// The response exceeded this many bytes.
    TooLarge(usize),
}

impl AdminError {
    fn new(addr: &AdminAddr, kind: ErrorKind) -> Self {
        AdminError {
            addr: addr.clone(),
            kind,
        }
    }

    pub fn addr(&self) -> &AdminAddr {
        &self.addr
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Nothing was listening (yet): refused, or no such socket file. Normal
    /// while a freshly started Envoy has not opened its admin.
    pub fn is_not_listening(&self) -> bool {
        matches!(&self.kind, ErrorKind::Connect(e)
            if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT)))
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout { .. })
    }
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.addr;
        match &self.kind {
            ErrorKind::BadPath(p) => write!(f, "cannot request {p:?} from {a}: not a path"),
            ErrorKind::Socket(e) => write!(f, "create a socket for {a}: {e}"),
            ErrorKind::Connect(e) if e.raw_os_error() == Some(libc::EAGAIN) => write!(
                f,
                "connect to {a}: {e} (the admin's listen queue is full or it is not accepting)"
            ),
            ErrorKind::Connect(e) => write!(f, "connect to {a}: {e}"),
            ErrorKind::Send(e) => write!(f, "send the request to {a}: {e}"),
            ErrorKind::Receive(e) => write!(f, "read the response from {a}: {e}"),
            ErrorKind::Poll(e) => write!(f, "wait for {a}: poll: {e}"),
            ErrorKind::Timeout { after, stage } => {
                let what = match stage {
                    Stage::Connecting => "still connecting",
                    Stage::Sending => "request not sent",
                    Stage::Receiving => "response incomplete",
                };
                write!(
                    f,
                    "no answer from {a} within {} ms ({what})",
                    after.as_millis()
                )
            }
            ErrorKind::ClosedBeforeHead => write!(
                f,
                "{a} closed the connection before the response head was complete"
            ),
            ErrorKind::ClosedInBody => write!(
                f,
                "{a} closed the connection before the response body was complete"
            ),
            ErrorKind::BadHead(d) => write!(f, "bad response head from {a}: {d}"),
            ErrorKind::BadBody(d) => write!(f, "bad response body from {a}: {d}"),
            ErrorKind::TooLarge(cap) => {
                write!(f, "response from {a} is larger than {cap} bytes")
            }
        }
    }
}

/// The OS error is part of the message, so it is not repeated as a source.
impl std::error::Error for AdminError {}

/// One exchange, waiting for it here with poll(2): for tests and one-shot
/// command-line use, never inside the supervisor's loop.
pub fn request_blocking(
    addr: &AdminAddr,
    method: Method,
    path: &str,
    timeout: Duration,
) -> Result<Response, AdminError> {
    let mut req = Request::start(addr, method, path, Instant::now(), timeout)?;
    loop {
        let left = req.deadline().saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(req.timed_out());
        }
        // Round up so that the wake-up never comes before the deadline.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let events = if req.wants_write() {
            PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        };
        let mut fds = [PollFd::new(req.fd(), events)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            // EINTR: a signal with a handler; the deadline still holds.
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(AdminError::new(addr, ErrorKind::Poll(e.into()))),
            Ok(_) => {}
        }
        if let Some(done) = req.on_ready() {
            return done;
        }
    }
}

#[cfg(test)]
mod addr_tests {
    use super::*;

    #[test]
    fn parses_ip_literals_and_absolute_paths() {
        let v4: AdminAddr = "127.0.0.1:9901".parse().unwrap();
        assert_eq!(v4, AdminAddr::Tcp("127.0.0.1:9901".parse().unwrap()));
        assert_eq!(v4.to_string(), "127.0.0.1:9901");
        let v6: AdminAddr = "[::1]:9901".parse().unwrap();
        assert_eq!(v6.to_string(), "[::1]:9901");
        let unix: AdminAddr = "/run/envoy/admin.sock".parse().unwrap();
        assert_eq!(unix, AdminAddr::Unix("/run/envoy/admin.sock".into()));
        assert_eq!(unix.to_string(), "/run/envoy/admin.sock");
    }

    #[test]
    fn rejects_names_bad_ports_and_relative_paths() {
        let generic = "expected IPv4:PORT, [IPv6]:PORT or an absolute unix socket path";
        for bad in [
            "localhost:9901",
            "localhost:99999",
            "127.0.0.1",
            "127.0.0.1:99999",
            "::1:9901",
            "",
        ] {
            let e = bad.parse::<AdminAddr>().unwrap_err();
            assert_eq!(e, format!("'{bad}' is not an admin address: {generic}"));
        }
        let e = "127.0.0.1:0".parse::<AdminAddr>().unwrap_err();
        assert!(e.contains("port 0"), "{e}");
        for rel in ["run/admin.sock", "admin.sock", "./admin"] {
            let e = rel.parse::<AdminAddr>().unwrap_err();
            assert!(e.contains("must be absolute"), "{e}");
            assert!(e.starts_with(&format!("'{rel}'")), "{e}");
        }
        let long = format!("/{}", "x".repeat(MAX_UNIX_PATH));
        assert!(long.parse::<AdminAddr>().unwrap_err().contains("at most"));
    }
}
