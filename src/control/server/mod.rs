//! The control socket's server side: accepting clients (root and the
//! wrapper's own user only), the registry of connected clients, reading
//! their requests and writing the replies. The socket file itself is
//! `socket_file`'s. Everything is non-blocking and driven by the
//! supervisor's poll loop; what a request does is the core's business.
//!
//! # Driving it
//!
//! Each turn of the loop:
//! - poll [`ControlServer::fd`] for `POLLIN`; when ready, call
//!   [`ControlServer::accept`];
//! - poll every `(id, fd, events)` of [`ControlServer::poll_fds`] (the
//!   events may be empty while a request waits for its reply: `POLLHUP` is
//!   reported anyway); for each with non-zero `revents`, call
//!   [`ControlServer::on_ready`] and hand a [`ClientEvent`] to the core;
//! - include [`ControlServer::next_deadline`] in the poll timeout and call
//!   [`ControlServer::on_timeout`] once it has passed.
//!
//! The core answers a [`ClientEvent::Request`] with [`ControlServer::reply`]
//! at once or later (a `--wait` request), and forgets a client on
//! [`ClientEvent::Gone`]. Malformed requests never reach the core: the
//! server answers them itself.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, getsockopt, send, sockopt};

use super::proto::{MAX_REQUEST_LINE, Reply, Request};
use super::socket_file::SocketFile;
use crate::os::reexec::{HandedClient, HandedState};

/// Clients connected at once; more are refused with an error reply. Also
/// the listen backlog.
pub const MAX_CLIENTS: usize = 128;
/// A client must have sent its request line this long after it connected.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must have read its reply this long after it was queued.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections accepted in one call at most, so that a flood of them
/// cannot hold the loop; the rest wait for the next turn.
const ACCEPT_BATCH: usize = 2 * MAX_CLIENTS;

/// One connection, for as long as it is open. Ids are never reused, so a
/// late reply to a client that has gone is simply dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// What a client's readiness meant, for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A well-formed request; answer it with [`ControlServer::reply`].
    Request(Request),
    /// The client hung up before its reply: forget its waiters.
    Gone,
}

/// The listening socket and its clients.
#[derive(Debug)]
pub struct ControlServer {
    socket: SocketFile,
    own_uid: u32,
    /// An open /dev/null, given up to accept (and refuse) one client when
    /// the process is out of descriptors; otherwise the pending connection
    /// would keep the listener readable and the loop spinning.
    spare: Option<File>,
    clients: BTreeMap<ClientId, Client>,
    next_id: u64,
}

#[derive(Debug)]
struct Client {
    stream: UnixStream,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Reading the request line (`buf` holds at most MAX_REQUEST_LINE + 1
    /// bytes).
    Reading { buf: Vec<u8>, deadline: Instant },
    /// The request went to the core; its reply is awaited.
    Waiting,
    /// Writing the reply; the connection closes once it is written.
    Writing {
        out: Vec<u8>,
        written: usize,
        deadline: Instant,
    },
}

/// Whether a peer with `peer_uid` may use the socket of a wrapper whose
/// effective uid is `own_uid`: root and the wrapper's own user only.
pub fn may_serve(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_uid
}

impl ControlServer {
    /// Create the socket at `path`, listening, non-blocking and
    /// close-on-exec, with mode 0600. What is at `path` already is looked at
    /// without following it: a symlink, a non-socket, or a socket something
    /// answers on is an error naming the path; a socket nothing answers on
    /// (ECONNREFUSED) is stale and replaced. A missing directory is an
    /// error naming the path and the OS error.
    pub fn bind(path: &Path) -> Result<ControlServer> {
        Ok(ControlServer {
            socket: SocketFile::bind(path, MAX_CLIENTS as i32)?,
            own_uid: nix::unistd::geteuid().as_raw(),
            spare: File::open("/dev/null").ok(),
            clients: BTreeMap::new(),
            next_id: 0,
        })
    }

    /// What a `reexec` hands over: the listening descriptor's number, the
    /// socket file's identity (device, inode), and every client's
    /// descriptor and state: the `waiting` ones are answered by the new
    /// binary; a client waiting for anything else (none while the core is
    /// quiescent) is left out and closed by the exec. The descriptors stay
    /// open across the exec (their close-on-exec flag is the caller's
    /// business).
    pub fn hand_over(&self, waiting: &[ClientId]) -> (i32, Option<(u64, u64)>, Vec<HandedClient>) {
        let clients = (self.clients.iter())
            .filter_map(|(id, c)| {
                let state = match &c.state {
                    State::Reading { buf, .. } => HandedState::Reading(buf.clone()),
                    State::Waiting if waiting.contains(id) => HandedState::Waiting,
                    State::Waiting => return None,
                    State::Writing { out, written, .. } => {
                        HandedState::Writing(out[*written..].to_vec())
                    }
                };
                Some(HandedClient {
                    fd: c.stream.as_raw_fd(),
                    state,
                })
            })
            .collect();
        (
            self.socket.listener.as_raw_fd(),
            self.socket.identity(),
            clients,
        )
    }

    /// The server handed over by the previous binary: its listening
    /// descriptor and its clients, with fresh deadlines. Returns the ids of
    /// the clients that wait for the reexec's answer.
    pub fn adopt(
        listener: std::os::fd::OwnedFd,
        path: &Path,
        file: Option<(u64, u64)>,
        clients: Vec<(std::os::fd::OwnedFd, HandedState)>,
        now: Instant,
    ) -> (ControlServer, Vec<ClientId>) {
        let mut server = ControlServer {
            socket: SocketFile::adopt(listener, path.to_path_buf(), file),
            own_uid: nix::unistd::geteuid().as_raw(),
            spare: File::open("/dev/null").ok(),
            clients: BTreeMap::new(),
            next_id: 0,
        };
        let mut waiting = Vec::new();
        for (fd, handed) in clients {
            let id = ClientId(server.next_id);
            server.next_id += 1;
            let state = match handed {
                HandedState::Reading(buf) => State::Reading {
                    buf,
                    deadline: now + REQUEST_TIMEOUT,
                },
                HandedState::Waiting => {
                    waiting.push(id);
                    State::Waiting
                }
                HandedState::Writing(out) => State::Writing {
                    out,
                    written: 0,
                    deadline: now + REPLY_TIMEOUT,
                },
            };
            let stream = UnixStream::from(fd);
            server.clients.insert(id, Client { stream, state });
        }
        (server, waiting)
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.socket.path
    }

    /// The listening socket: poll it for `POLLIN`, then call [`accept`](Self::accept).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.listener.as_fd()
    }

    /// Accept the pending connections (until EAGAIN, or a batch of
    /// `2 * MAX_CLIENTS`: the listener then stays readable). Peers other
    /// than root and the wrapper's own user, and peers beyond
    /// [`MAX_CLIENTS`], get an error reply and are closed at once. Returns
    /// the new clients.
    pub fn accept(&mut self, now: Instant) -> Vec<ClientId> {
        let mut new = Vec::new();
        for _ in 0..ACCEPT_BATCH {
            match self.socket.listener.accept() {
                Ok((stream, _)) => new.extend(self.admit(stream, now)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A signal, or a client that gave up while queued.
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if !self.shed_one() {
                        break;
                    }
                }
                Err(e) => {
                    log::warn!(
                        "cannot accept on control socket {}: {e}",
                        self.socket.path.display()
                    );
                    break;
                }
            }
        }
        new
    }

    fn admit(&mut self, stream: UnixStream, now: Instant) -> Option<ClientId> {
        let uid = match getsockopt(&stream, sockopt::PeerCredentials) {
            Ok(creds) => creds.uid(),
            Err(e) => {
                log::warn!("control socket: cannot read a client's credentials: {e}");
                return None;
            }
        };
        if !may_serve(uid, self.own_uid) {
            log::warn!("control socket: refused a client with uid {uid}");
            refuse(
                &stream,
                &format!("permission denied: uid {uid} may not use this control socket"),
            );
            return None;
        }
        if self.clients.len() >= MAX_CLIENTS {
            log::warn!("control socket: {MAX_CLIENTS} clients already, refused one more");
            refuse(&stream, "too many clients at once, try again");
            return None;
        }
        if let Err(e) = stream.set_nonblocking(true) {
            log::warn!("control socket: cannot make a client non-blocking: {e}");
            return None;
        }
        let id = ClientId(self.next_id);
        self.next_id += 1;
        let state = State::Reading {
            buf: Vec::new(),
            deadline: now + REQUEST_TIMEOUT,
        };
        self.clients.insert(id, Client { stream, state });
        Some(id)
    }

    /// Out of descriptors: free the spare one, accept one client with it,
    /// tell it why it is refused, and take the spare back.
    fn shed_one(&mut self) -> bool {
        let Some(spare) = self.spare.take() else {
            log::warn!("control socket: out of file descriptors, cannot accept");
            return false;
        };
        drop(spare);
        let shed = match self.socket.listener.accept() {
            Ok((stream, _)) => {
                refuse(&stream, "the wrapper is out of file descriptors");
                true
            }
            Err(_) => false,
        };
        log::warn!("control socket: out of file descriptors, refused a client");
        self.spare = File::open("/dev/null").ok();
        shed
    }

    /// Every client's descriptor with the events to poll it for.
    pub fn poll_fds(&self) -> Vec<(ClientId, BorrowedFd<'_>, PollFlags)> {
        let events = |state: &State| match state {
            State::Reading { .. } => PollFlags::POLLIN,
            State::Waiting => PollFlags::empty(),
            State::Writing { .. } => PollFlags::POLLOUT,
        };
        self.clients
            .iter()
            .map(|(id, c)| (*id, c.stream.as_fd(), events(&c.state)))
            .collect()
    }

    /// One client's descriptor, while it is connected.
    pub fn client_fd(&self, id: ClientId) -> Option<BorrowedFd<'_>> {
        self.clients.get(&id).map(|c| c.stream.as_fd())
    }

    /// Whether a reply is still being written to the client.
    pub fn wants_write(&self, id: ClientId) -> bool {
        matches!(
            self.clients.get(&id),
            Some(Client {
                state: State::Writing { .. },
                ..
            })
        )
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The client's descriptor was reported ready (any `revents`): read its
    /// request, notice that it hung up, or write more of its reply.
    pub fn on_ready(&mut self, id: ClientId, now: Instant) -> Option<ClientEvent> {
        let client = self.clients.get_mut(&id)?;
        match &mut client.state {
            State::Reading { buf, .. } => match read_line(&mut client.stream, buf) {
                Line::Partial => None,
                Line::Closed => {
                    self.clients.remove(&id);
                    None
                }
                Line::TooLong => {
                    let reason = format!("request too long (over {MAX_REQUEST_LINE} bytes)");
                    self.reply(id, &Reply::Failed { reason }, now);
                    None
                }
                Line::Complete(line) => match Request::parse(&line) {
                    Ok(request) => {
                        client.state = State::Waiting;
                        Some(ClientEvent::Request(request))
                    }
                    Err(reason) => {
                        self.reply(id, &Reply::Failed { reason }, now);
                        None
                    }
                },
            },
            State::Waiting => {
                if hung_up(&client.stream) {
                    self.clients.remove(&id);
                    Some(ClientEvent::Gone)
                } else {
                    None
                }
            }
            State::Writing { .. } => {
                self.flush(id);
                None
            }
        }
    }

    /// Queue `reply` for the client and write what can be written now; the
    /// connection closes once all of it is written. False if the client is
    /// gone or already has its reply (one per connection).
    pub fn reply(&mut self, id: ClientId, reply: &Reply, now: Instant) -> bool {
        let Some(client) = self.clients.get_mut(&id) else {
            return false;
        };
        if matches!(client.state, State::Writing { .. }) {
            return false;
        }
        client.state = State::Writing {
            out: reply.to_line().into_bytes(),
            written: 0,
            deadline: now + REPLY_TIMEOUT,
        };
        self.flush(id);
        true
    }

    /// Write as much of the client's reply as the socket takes; close the
    /// connection once it is all written, or the client is gone.
    fn flush(&mut self, id: ClientId) {
        let Some(Client {
            stream,
            state: State::Writing { out, written, .. },
        }) = self.clients.get_mut(&id)
        else {
            return;
        };
        while *written < out.len() {
            match send_now(stream, &out[*written..]) {
                Ok(n) => *written += n,
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => {}
                // EPIPE, ECONNRESET: the client left; nothing to tell anyone.
                Err(_) => break,
            }
        }
        self.clients.remove(&id);
    }

    /// The earliest time a client is due to be dropped: put it in the poll
    /// timeout. A client waiting for its reply has no deadline here (its
    /// own `--timeout` bounds the wait; it hangs up when it gives up).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients
            .values()
            .filter_map(|c| match c.state {
                State::Reading { deadline, .. } | State::Writing { deadline, .. } => Some(deadline),
                State::Waiting => None,
            })
            .min()
    }

    /// Drop the clients whose deadline has passed: those that sent no
    /// complete request in time (told so, if they still listen) and those
    /// that did not read their reply in time.
    pub fn on_timeout(&mut self, now: Instant) {
        let mut late = Vec::new();
        for (id, client) in &self.clients {
            match client.state {
                State::Reading { deadline, .. } if deadline <= now => {
                    let secs = REQUEST_TIMEOUT.as_secs();
                    refuse(&client.stream, &format!("no request within {secs} s"));
                    late.push(*id);
                }
                State::Writing { deadline, .. } if deadline <= now => late.push(*id),
                _ => {}
            }
        }
        for id in late {
            self.clients.remove(&id);
        }
    }

    /// Remove the socket file now (if it is still the one this server
    /// created), so that new connections fail, while connected clients are
    /// still served: call it on the way out, before the last replies. The
    /// file is removed on drop otherwise.
    pub fn unlink(&mut self) {
        self.socket.unlink();
    }
}

mod client_io;
use client_io::{Line, hung_up, read_line, refuse, send_now};

#[cfg(test)]
mod tests;
