//! Tests for the control server: real unix sockets in a temp dir, driven by
//! a small poll loop like the supervisor's, with `now` passed in. This file
//! holds that loop and the helpers; the tests are in `exchange` (requests,
//! replies, hang-ups) and `limits` (bounds, deadlines, descriptors).

mod exchange;
mod limits;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::*;
use crate::control::proto::{Reply, Request};

/// Server tests open many descriptors and count them: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long any test waits for anything.
const PATIENCE: Duration = Duration::from_secs(10);

struct Setup {
    _serial: MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    Setup {
        _serial: SERIAL.lock().unwrap_or_else(|e| e.into_inner()),
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

/// A server bound in a fresh directory (`Setup` holds the directory and
/// the lock).
fn bound() -> (Setup, ControlServer) {
    let s = setup();
    let server = ControlServer::bind(&s.path()).unwrap();
    (s, server)
}

impl Setup {
    fn path(&self) -> PathBuf {
        self.dir.path().join("ctl.sock")
    }
}

/// One turn of a poll loop: wait up to `max` (or the server's deadline),
/// accept, read, time out. Returns the events for the core.
fn turn(server: &mut ControlServer, max: Duration) -> Vec<(ClientId, ClientEvent)> {
    let start = Instant::now();
    let wait = match server.next_deadline() {
        Some(deadline) => deadline.saturating_duration_since(start).min(max),
        None => max,
    };
    // The listener (None) and the clients with any revents.
    let ready: Vec<Option<ClientId>> = {
        let clients = server.poll_fds();
        let mut fds = vec![PollFd::new(server.fd(), PollFlags::POLLIN)];
        fds.extend(
            clients
                .iter()
                .map(|(_, fd, events)| PollFd::new(*fd, *events)),
        );
        let ms = PollTimeout::try_from(wait.as_millis() as i32).unwrap();
        poll(&mut fds, ms).expect("poll");
        let mut ready = Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents().is_some_and(|r| !r.is_empty()) {
                ready.push(if i == 0 { None } else { Some(clients[i - 1].0) });
            }
        }
        ready
    };
    let now = Instant::now();
    let mut events = Vec::new();
    for id in ready {
        match id {
            None => {
                server.accept(now);
            }
            Some(id) => events.extend(server.on_ready(id, now).map(|e| (id, e))),
        }
    }
    if server.next_deadline().is_some_and(|d| d <= now) {
        server.on_timeout(now);
    }
    events
}

/// Turn until `done` says so, handing every event to `core` (both see the
/// test's `state`); panics after PATIENCE.
fn drive<S>(
    server: &mut ControlServer,
    state: &mut S,
    mut core: impl FnMut(&mut ControlServer, &mut S, ClientId, ClientEvent),
    mut done: impl FnMut(&ControlServer, &S) -> bool,
) {
    let give_up = Instant::now() + PATIENCE;
    while !done(server, state) {
        assert!(
            Instant::now() < give_up,
            "the server did not get there in time"
        );
        for (id, event) in turn(server, Duration::from_millis(50)) {
            core(server, state, id, event);
        }
    }
}

/// A core that answers every request at once.
fn answer(server: &mut ControlServer, id: ClientId, event: ClientEvent) {
    if let ClientEvent::Request(request) = event {
        let detail = format!("did {}", request.name());
        assert!(server.reply(id, &Reply::Done { detail }, Instant::now()));
    }
}

fn client(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// A client at `path` that has sent `request`.
fn client_sending(path: &Path, request: Request) -> UnixStream {
    let mut c = client(path);
    c.write_all(request.to_line().as_bytes()).unwrap();
    c
}

fn read_reply(stream: &mut UnixStream) -> Reply {
    let mut text = Vec::new();
    if let Err(e) = stream.read_to_end(&mut text) {
        // Closing a socket with unread input resets the connection, after
        // what was sent before has been read.
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset,
            "read the reply"
        );
        assert!(text.ends_with(b"\n"), "reset before the whole reply");
    }
    assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
    Reply::parse(&text).expect("a reply")
}

fn failed(reply: Reply) -> String {
    match reply {
        Reply::Failed { reason } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}
