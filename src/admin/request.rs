//! One HTTP exchange with the admin on a non-blocking socket: connect, send
//! the request, read the response, each step taken only as far as the
//! socket allows without waiting.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, SockaddrStorage, UnixAddr, connect, getpeername,
    getsockopt, recv, send, socket, sockopt,
};

use super::http::{ParseError, Parser};
use super::{AdminAddr, AdminError, ErrorKind, MAX_RESPONSE, Method, Response, Stage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    /// This many bytes of the request have been sent.
    Sending(usize),
    Receiving,
    /// `on_ready` has returned its answer.
    Done,
}

/// One exchange in flight. Drop it to abandon it (the socket is closed).
#[derive(Debug)]
pub struct Request {
    addr: AdminAddr,
    fd: OwnedFd,
    state: State,
    request: Vec<u8>,
    parser: Parser,
    timeout: Duration,
    deadline: Instant,
}

/// Bytes read per recv(2); a whole Envoy `/server_info` is ~8 reads.
const READ_SIZE: usize = 16 * 1024;

impl Request {
    /// Open a non-blocking, close-on-exec socket and begin connecting; the
    /// exchange must be over by `now + timeout`.
    pub fn start(
        addr: &AdminAddr,
        method: Method,
        path: &str,
        now: Instant,
        timeout: Duration,
    ) -> Result<Request, AdminError> {
        let err = |kind| AdminError::new(addr, kind);
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(err(ErrorKind::BadPath(path.to_owned())));
        }
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        let (family, host) = match addr {
            AdminAddr::Tcp(a) if a.is_ipv4() => (AddressFamily::Inet, a.to_string()),
            AdminAddr::Tcp(a) => (AddressFamily::Inet6, a.to_string()),
            AdminAddr::Unix(_) => (AddressFamily::Unix, "localhost".to_owned()),
        };
        let fd = socket(family, SockType::Stream, flags, None)
            .map_err(|e| err(ErrorKind::Socket(e.into())))?;
        let connected = match addr {
            AdminAddr::Tcp(a) => connect(fd.as_raw_fd(), &SockaddrStorage::from(*a)),
            AdminAddr::Unix(p) => UnixAddr::new(p).and_then(|u| connect(fd.as_raw_fd(), &u)),
        };
        let state = match connected {
            Ok(()) => State::Sending(0),
            // The connection goes on in the background; POLLOUT tells when
            // it is done. EINTR on a non-blocking connect means the same.
            Err(Errno::EINPROGRESS | Errno::EINTR) => State::Connecting,
            // EAGAIN (a unix socket whose listen queue is full) included:
            // retrying is the caller's decision, with its own interval.
            Err(e) => return Err(err(ErrorKind::Connect(e.into()))),
        };
        let mut request = format!(
            "{} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hot-restarter/{}\r\n\
             Accept: */*\r\nConnection: close\r\n",
            method.as_str(),
            env!("CARGO_PKG_VERSION"),
        );
        if method == Method::Post {
            request.push_str("Content-Length: 0\r\n");
        }
        request.push_str("\r\n");
        Ok(Request {
            addr: addr.clone(),
            fd,
            state,
            request: request.into_bytes(),
            parser: Parser::new(MAX_RESPONSE),
            timeout,
            deadline: now + timeout,
        })
    }

    /// The socket, for the loop's poll().
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// True while connecting or sending (poll for POLLOUT), false while
    /// receiving (poll for POLLIN).
    pub fn wants_write(&self) -> bool {
        matches!(self.state, State::Connecting | State::Sending(_))
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn addr(&self) -> &AdminAddr {
        &self.addr
    }

    /// The error for an exchange whose deadline has passed; the loop then
    /// drops the request.
    pub fn timed_out(&self) -> AdminError {
        let stage = match self.state {
            State::Connecting => Stage::Connecting,
            State::Sending(_) => Stage::Sending,
            State::Receiving | State::Done => Stage::Receiving,
        };
        self.error(ErrorKind::Timeout {
            after: self.timeout,
            stage,
        })
    }

    /// Advance as far as the socket allows without waiting. Call it when
    /// poll() reports the descriptor (any revents, POLLHUP and POLLERR
    /// included); a call with nothing to do is harmless. Some once the
    /// exchange is over, after which it returns None.
    pub fn on_ready(&mut self) -> Option<Result<Response, AdminError>> {
        let result = self.advance().transpose()?;
        self.state = State::Done;
        Some(result)
    }

    /// Ok(None): waiting for the socket.
    fn advance(&mut self) -> Result<Option<Response>, AdminError> {
        loop {
            match self.state {
                State::Connecting => {
                    if !self.connected()? {
                        return Ok(None);
                    }
                    self.state = State::Sending(0);
                }
                State::Sending(sent) if sent == self.request.len() => {
                    self.state = State::Receiving;
                }
                State::Sending(sent) => {
                    // MSG_NOSIGNAL: a closed peer is an EPIPE here, never a
                    // SIGPIPE for the whole wrapper.
                    match send(
                        self.fd.as_raw_fd(),
                        &self.request[sent..],
                        MsgFlags::MSG_NOSIGNAL,
                    ) {
                        Ok(n) => self.state = State::Sending(sent + n),
                        Err(Errno::EAGAIN) => return Ok(None),
                        Err(Errno::EINTR) => {}
                        Err(e) => return Err(self.error(ErrorKind::Send(e.into()))),
                    }
                }
                State::Receiving => return self.receive(),
                State::Done => return Ok(None),
            }
        }
    }

    /// Whether a connect in progress has finished; its error if it failed.
    fn connected(&self) -> Result<bool, AdminError> {
        let pending = getsockopt(&self.fd, sockopt::SocketError)
            .map_err(|e| self.error(ErrorKind::Connect(e.into())))?;
        if pending != 0 {
            let e = io::Error::from_raw_os_error(pending);
            return Err(self.error(ErrorKind::Connect(e)));
        }
        // No error yet: connected, or still trying (a wake-up for nothing).
        match getpeername::<SockaddrStorage>(self.fd.as_raw_fd()) {
            Ok(_) => Ok(true),
            Err(Errno::ENOTCONN) => Ok(false),
            Err(e) => Err(self.error(ErrorKind::Connect(e.into()))),
        }
    }

    /// Read what is there; Some once the response is complete.
    fn receive(&mut self) -> Result<Option<Response>, AdminError> {
        let mut buf = [0u8; READ_SIZE];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return self.parser.eof().map(Some).map_err(|e| self.parse_error(e)),
                Ok(n) => {
                    if let Some(r) = self
                        .parser
                        .push(&buf[..n])
                        .map_err(|e| self.parse_error(e))?
                    {
                        return Ok(Some(r));
                    }
                }
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(self.error(ErrorKind::Receive(e.into()))),
            }
        }
    }

    fn parse_error(&self, e: ParseError) -> AdminError {
        self.error(match e {
            ParseError::BadHead(d) => ErrorKind::BadHead(d),
            ParseError::BadBody(d) => ErrorKind::BadBody(d),
            ParseError::TooLarge(cap) => ErrorKind::TooLarge(cap),
            ParseError::ClosedBeforeHead => ErrorKind::ClosedBeforeHead,
            ParseError::ClosedInBody => ErrorKind::ClosedInBody,
        })
    }

    fn error(&self, kind: ErrorKind) -> AdminError {
        AdminError::new(&self.addr, kind)
    }
}
