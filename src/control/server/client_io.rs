//! One client's socket I/O: reading a bounded request line, noticing a
//! hang-up, a send that never blocks, and a refusal written in passing.

use super::*;

/// What reading a client's request line gave.
pub(super) enum Line {
    /// More is to come.
    Partial,
    /// The line, without its `\n` (or everything up to the client's end of
    /// file, if it sent no `\n`).
    Complete(Vec<u8>),
    /// Longer than MAX_REQUEST_LINE.
    TooLong,
    /// The client left before sending anything, or the connection failed.
    Closed,
}

/// Read what the client has sent into `buf`, never holding more than
/// MAX_REQUEST_LINE + 1 bytes: enough to tell a line that is too long.
pub(super) fn read_line(stream: &mut UnixStream, buf: &mut Vec<u8>) -> Line {
    let mut chunk = [0u8; 4096];
    loop {
        let room = (MAX_REQUEST_LINE + 1 - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) if buf.is_empty() => return Line::Closed,
            Ok(0) => return Line::Complete(std::mem::take(buf)),
            Ok(n) => {
                let newline = chunk[..n].iter().position(|&b| b == b'\n');
                let take = &chunk[..newline.unwrap_or(n)];
                // Exactly: amortized doubling would hold up to twice the bound.
                buf.reserve_exact(take.len());
                buf.extend_from_slice(take);
                if buf.len() > MAX_REQUEST_LINE {
                    return Line::TooLong;
                }
                if newline.is_some() {
                    return Line::Complete(std::mem::take(buf));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Line::Partial,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Line::Closed,
        }
    }
}

/// Whether the peer has closed its end entirely. A unix stream socket
/// reports POLLHUP only then; a client that only shut down its writing side
/// (`socat`, `nc -N`) still waits for its reply.
pub(super) fn hung_up(stream: &UnixStream) -> bool {
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        Err(_) => false,
    }
}

/// Send without blocking and without SIGPIPE, whatever the process's
/// SIGPIPE disposition is.
pub(super) fn send_now(stream: &UnixStream, bytes: &[u8]) -> nix::Result<usize> {
    send(
        stream.as_raw_fd(),
        bytes,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    )
}

/// Best effort: tell a client it is refused, without waiting. Its send
/// buffer is empty, so one short line fits.
pub(super) fn refuse(stream: &UnixStream, reason: &str) {
    let line = Reply::Failed {
        reason: reason.to_string(),
    }
    .to_line();
    let _ = send_now(stream, line.as_bytes());
}
