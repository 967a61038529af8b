//! The control socket's client side, blocking and bounded by a deadline:
//! connect, send one request line, read one reply line. Used by
//! `hot-restarter-ctl`.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, UnixAddr, connect as connect_fd, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::proto::{Reply, ReplyError, Request};

/// The longest reply line read (a status with hundreds of children fits).
pub const MAX_REPLY_LINE: usize = 1024 * 1024;

/// Why no reply was had.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing answers on the socket (ENOENT or ECONNREFUSED): the wrapper
    /// is not running.
    NotRunning { path: PathBuf, error: io::Error },
    /// The deadline passed while connecting, sending or waiting.
    TimedOut,
    /// The wrapper closed the connection without replying.
    NoReply,
    /// A reply that this client cannot use (another protocol version, or
    /// malformed).
    Protocol(ReplyError),
    /// Any other failure, naming the operation, the path and the OS error.
    Io(String),
}

impl ClientError {
    /// hot-restarter-ctl's exit code for this failure: 3 when the wrapper is
    /// not running, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::NotRunning { .. } => 3,
            _ => 1,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotRunning { path, error } => write!(
                f,
                "hot-restarter is not running: nothing answers on {} ({error})",
                path.display()
            ),
            ClientError::TimedOut => write!(f, "timed out"),
            ClientError::NoReply => write!(f, "the wrapper closed the connection without a reply"),
            ClientError::Protocol(e) => write!(f, "{e}"),
            ClientError::Io(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Send `request` to the wrapper at `path` and return its reply, all
/// before `deadline`.
pub fn request(path: &Path, request: &Request, deadline: Instant) -> Result<Reply, ClientError> {
    let mut stream = connect(path, deadline)?;
    let shown = path.display();
    let sent = stream
        .set_write_timeout(Some(remaining(deadline)?))
        .and_then(|()| stream.write_all(request.to_line().as_bytes()));
    let reading = |e: ClientError| match e {
        ClientError::Io(e) => ClientError::Io(format!("cannot read the reply from {shown}: {e}")),
        e => e,
    };
    let line = match sent {
        Ok(()) => read_line(&mut stream, deadline).map_err(reading)?,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(ClientError::TimedOut);
        }
        // A wrapper that refuses a client (too many, wrong uid) replies and
        // closes at once, maybe before the request is written: its reply
        // is still there to read.
        Err(e) => read_line(&mut stream, deadline)
            .map_err(|_| ClientError::Io(format!("cannot send the request to {shown}: {e}")))?,
    };
    Reply::parse(&line).map_err(ClientError::Protocol)
}

/// Connect to the socket at `path`. Connecting waits (until `deadline`)
/// only while the wrapper's listen queue is full.
pub fn connect(path: &Path, deadline: Instant) -> Result<UnixStream, ClientError> {
    let shown = path.display();
    let io_error = |what: &str, e: Errno| ClientError::Io(format!("{what} {shown}: {e}"));
    let addr = UnixAddr::new(path).map_err(|e| io_error("cannot use socket path", e))?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| io_error("cannot create a socket for", e))?;
    // A unix stream connect blocks while the listener's queue is full, for
    // at most SO_SNDTIMEO; then it fails with EAGAIN.
    let left = remaining(deadline)?;
    let timeout = TimeVal::new(left.as_secs() as _, left.subsec_micros() as _);
    setsockopt(&fd, sockopt::SendTimeout, &timeout)
        .map_err(|e| io_error("cannot set a send timeout for", e))?;
    loop {
        match connect_fd(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(UnixStream::from(fd)),
            Err(Errno::EINTR) => {}
            Err(e @ (Errno::ENOENT | Errno::ECONNREFUSED)) => {
                return Err(ClientError::NotRunning {
                    path: path.to_path_buf(),
                    error: e.into(),
                });
            }
            Err(Errno::EAGAIN) => return Err(ClientError::TimedOut),
            Err(e) => return Err(io_error("cannot connect to", e)),
        }
    }
}

/// The time left until `deadline`, or TimedOut if none is (a zero socket
/// timeout would mean "forever").
fn remaining(deadline: Instant) -> Result<Duration, ClientError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_micros(1) {
        Err(ClientError::TimedOut)
    } else {
        Ok(left)
    }
}

/// Read up to the first `\n` (or the end of file), at most MAX_REPLY_LINE
/// bytes. An `Io` error carries only the OS error: the caller names the path.
fn read_line(stream: &mut UnixStream, deadline: Instant) -> Result<Vec<u8>, ClientError> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = remaining(deadline)?;
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| ClientError::Io(e.to_string()))?;
        match stream.read(&mut chunk) {
            Ok(0) if line.is_empty() => return Err(ClientError::NoReply),
            Ok(0) => return Ok(line),
            Ok(n) => {
                if let Some(end) = chunk[..n].iter().position(|&b| b == b'\n') {
                    line.extend_from_slice(&chunk[..end]);
                    return Ok(line);
                }
                line.extend_from_slice(&chunk[..n]);
                if line.len() > MAX_REPLY_LINE {
                    let what = format!("reply longer than {MAX_REPLY_LINE} bytes");
                    return Err(ClientError::Protocol(ReplyError::Malformed(what)));
                }
            }
            Err(e) => match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    return Err(ClientError::TimedOut);
                }
                // The wrapper exited (or closed) without a reply.
                io::ErrorKind::ConnectionReset if line.is_empty() => {
                    return Err(ClientError::NoReply);
                }
                _ => return Err(ClientError::Io(e.to_string())),
            },
        }
    }
}
