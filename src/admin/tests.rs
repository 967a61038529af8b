//! The admin client against fake admins on 127.0.0.1 and on unix sockets
//! in a temp dir: framings, failures, deadlines, and that no call blocks.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{Backlog, listen};

use super::*;

/// How long any single wait in these tests may take before it fails.
const BOUND: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(250);

/// What the fake admin does once it has written its answer.
#[derive(Clone, Copy)]
enum After {
    /// Close the connection.
    Close,
    /// Keep it open until the client closes it: the client must finish on
    /// the framing alone.
    Linger,
}

/// Wait (bounded) until `fd` is readable: a listener has a connection.
fn wait_readable(fd: impl AsFd) {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    let n = poll(&mut fds, PollTimeout::try_from(BOUND).unwrap()).unwrap();
    assert_eq!(n, 1, "no client within {BOUND:?}");
}

/// Read one request head, write `answer`, then do as `after` says; the
/// request head is returned.
fn serve<S: Read + Write>(mut s: S, answer: &[u8], after: After) -> String {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    // The client may give up mid-answer (the cap test): not an error here.
    let _ = s.write_all(answer);
    if let After::Linger = after {
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    }
    String::from_utf8_lossy(&req).into_owned()
}

/// A one-connection fake admin on 127.0.0.1.
fn tcp_admin(answer: &[u8], after: After) -> (AdminAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = AdminAddr::Tcp(listener.local_addr().unwrap());
    let answer = answer.to_vec();
    let server = thread::spawn(move || {
        wait_readable(&listener);
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(BOUND)).unwrap();
        serve(s, &answer, after)
    });
    (addr, server)
}

/// A one-connection fake admin on a unix socket at `path`.
fn unix_admin(path: &Path, answer: &[u8]) -> (AdminAddr, JoinHandle<String>) {
    let listener = UnixListener::bind(path).unwrap();
    let answer = answer.to_vec();
    let server = thread::spawn(move || {
        wait_readable(&listener);
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(BOUND)).unwrap();
        serve(s, &answer, After::Close)
    });
    (AdminAddr::Unix(path.to_owned()), server)
}

fn get(addr: &AdminAddr, path: &str) -> Result<Response, AdminError> {
    request_blocking(addr, Method::Get, path, BOUND)
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
    server: envoy\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n\
    11\r\n{\"state\": \"LIVE\"}\r\n0\r\n\r\n";

#[test]
fn content_length_body_without_waiting_for_close() {
    let (addr, server) = tcp_admin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nLIVE\n",
        After::Linger,
    );
    let r = get(&addr, "/ready").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"LIVE\n"[..]));
    let req = server.join().unwrap();
    assert!(req.starts_with("GET /ready HTTP/1.1\r\n"), "{req}");
    assert!(req.contains(&format!("\r\nHost: {addr}\r\n")), "{req}");
    assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
}

#[test]
fn chunked_body_as_envoy_sends_it() {
    let (addr, server) = tcp_admin(CHUNKED, After::Linger);
    let r = get(&addr, "/server_info").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(parse_server_info(&r.body).unwrap().state, "LIVE");
    server.join().unwrap();
}

#[test]
fn body_read_to_eof() {
    let (addr, server) = tcp_admin(b"HTTP/1.1 404 Not Found\r\n\r\nno such page", After::Close);
    let r = get(&addr, "/nope").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (404, &b"no such page"[..]));
    server.join().unwrap();
}

#[test]
fn post_sends_an_empty_body() {
    let (addr, server) = tcp_admin(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nOK\n\r\n0\r\n\r\n",
        After::Linger,
    );
    let r = request_blocking(&addr, Method::Post, "/drain_listeners?graceful", BOUND).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"OK\n"[..]));
    let req = server.join().unwrap();
    assert!(
        req.starts_with("POST /drain_listeners?graceful HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(req.contains("\r\nContent-Length: 0\r\n"), "{req}");
}

#[test]
fn ipv6_loopback_when_available() {
    // Some containers have no ::1; the address form is tested either way.
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        return;
    };
    let addr = AdminAddr::Tcp(listener.local_addr().unwrap());
    let server = thread::spawn(move || {
        wait_readable(&listener);
        serve(listener.accept().unwrap().0, CHUNKED, After::Close)
    });
    assert_eq!(get(&addr, "/server_info").unwrap().status, 200);
    assert!(server.join().unwrap().contains("Host: [::1]:"));
}

#[test]
fn silent_admin_times_out_and_on_ready_never_blocks() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = AdminAddr::Tcp(listener.local_addr().unwrap());
    let start = Instant::now();
    let mut req = Request::start(&addr, Method::Get, "/server_info", start, SHORT).unwrap();
    assert_eq!(req.deadline(), start + SHORT);
    // Accepted (the handshake is the kernel's), then never answered.
    wait_readable(&listener);
    let (_held, _) = listener.accept().unwrap();
    let mut calls = 0;
    while Instant::now() < req.deadline() {
        // Called whether or not the socket is ready: it must return at once.
        let t = Instant::now();
        assert!(req.on_ready().is_none());
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "on_ready took {:?}",
            t.elapsed()
        );
        calls += 1;
        let mut fds = [PollFd::new(req.fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(10u8));
    }
    assert!(!req.wants_write(), "the request was sent; it waits to read");
    assert!(calls > 1);
    let e = req.timed_out();
    assert!(e.is_timeout());
    assert_eq!(
        e.to_string(),
        format!("no answer from {addr} within 250 ms (response incomplete)")
    );
    // The blocking helper gives up at its deadline too.
    let t = Instant::now();
    let e = request_blocking(&addr, Method::Get, "/", SHORT).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(
        t.elapsed() >= SHORT && t.elapsed() < BOUND,
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn full_listen_queue_times_out_while_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Backlog 0 holds one connection; with it taken and never accepted, the
    // kernel drops further SYNs, so the next connect stays in progress.
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let addr = AdminAddr::Tcp(listener.local_addr().unwrap());
    let _filler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let e = request_blocking(&addr, Method::Get, "/ready", SHORT).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("no answer from {addr} within 250 ms (still connecting)")
    );
}

#[test]
fn two_requests_in_one_loop_a_silent_admin_delays_nothing() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = AdminAddr::Tcp(silent.local_addr().unwrap());
    let (good_addr, server) = tcp_admin(CHUNKED, After::Linger);
    let now = Instant::now();
    let mut reqs = [
        Some(Request::start(&silent_addr, Method::Get, "/server_info", now, BOUND).unwrap()),
        Some(Request::start(&good_addr, Method::Get, "/server_info", now, BOUND).unwrap()),
    ];
    // The event loop's shape: poll every live request, advance the ready ones.
    let answered = loop {
        assert!(now.elapsed() < BOUND, "no answer from the good admin");
        let mut fds: Vec<PollFd> = reqs
            .iter()
            .flatten()
            .map(|r| {
                let ev = if r.wants_write() {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                PollFd::new(r.fd(), ev)
            })
            .collect();
        poll(&mut fds, PollTimeout::try_from(BOUND).unwrap()).unwrap();
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(true)).collect();
        drop(fds);
        let live = reqs.iter_mut().enumerate().filter(|(_, r)| r.is_some());
        let mut done = None;
        for ((i, slot), ready) in live.zip(ready) {
            if ready && let Some(result) = slot.as_mut().unwrap().on_ready() {
                done = Some((i, result));
            }
        }
        if let Some(d) = done {
            break d;
        }
    };
    assert_eq!(answered.0, 1, "the good admin answers first");
    assert_eq!(answered.1.unwrap().status, 200);
    assert!(now.elapsed() < Duration::from_secs(1));
    drop(reqs);
    server.join().unwrap();
}

#[test]
fn refused_port_names_the_address() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: AdminAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let e = get(&addr, "/ready").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("connect to 127.0.0.1:{port}: Connection refused (os error 111)")
    );
    assert!(e.is_not_listening());
}

/// GET `path` from an admin that answers `answer`, then does `after`: the
/// admin's address and the error (the request must fail).
fn failed_get(answer: &[u8], after: After, path: &str) -> (AdminAddr, AdminError) {
    let (addr, server) = tcp_admin(answer, after);
    let e = get(&addr, path).unwrap_err();
    server.join().unwrap();
    (addr, e)
}

#[test]
fn closed_without_an_answer() {
    let (addr, e) = failed_get(b"HTTP/1.1 200 OK\r\nContent-", After::Close, "/ready");
    assert_eq!(
        e.to_string(),
        format!("{addr} closed the connection before the response head was complete")
    );
}

#[test]
fn response_over_the_cap() {
    let mut answer = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    answer.resize(MAX_RESPONSE + 4096, b'x');
    let (addr, e) = failed_get(&answer, After::Close, "/stats");
    assert!(
        matches!(e.kind(), ErrorKind::TooLarge(MAX_RESPONSE)),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("response from {addr} is larger than 1048576 bytes")
    );
}

#[test]
fn garbage_head() {
    let (addr, e) = failed_get(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", After::Linger, "/");
    assert_eq!(
        e.to_string(),
        format!("bad response head from {addr}: invalid HTTP version")
    );
}

#[test]
fn unix_socket_admin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let addr: AdminAddr = path.to_str().unwrap().parse().unwrap();
    // Not there yet: the path parses, the connection fails and says why.
    let e = get(&addr, "/ready").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "connect to {}: No such file or directory (os error 2)",
            path.display()
        )
    );
    assert!(e.is_not_listening());
    let (addr2, server) = unix_admin(&path, CHUNKED);
    assert_eq!(addr, addr2);
    let r = get(&addr, "/server_info").unwrap();
    assert_eq!(parse_server_info(&r.body).unwrap().state, "LIVE");
    assert!(server.join().unwrap().contains("\r\nHost: localhost\r\n"));
}

#[test]
fn unix_socket_with_a_full_queue_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // Backlog 0 holds one connection: a second connect is refused with
    // EAGAIN rather than left in progress.
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let _filler = UnixStream::connect(&path).unwrap();
    let addr = AdminAddr::Unix(path.clone());
    let t = Instant::now();
    let e = Request::start(&addr, Method::Get, "/ready", t, BOUND).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(
        e.to_string().starts_with(&format!(
            "connect to {}: Resource temporarily unavailable (os error 11)",
            path.display()
        )),
        "{e}"
    );
}

#[test]
fn a_bad_path_is_refused_before_any_socket() {
    let addr: AdminAddr = "127.0.0.1:9".parse().unwrap();
    for bad in ["server_info", "/a b", "/a\r\nX: y", ""] {
        let e = Request::start(&addr, Method::Get, bad, Instant::now(), SHORT).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::BadPath(_)), "{e}");
    }
}
