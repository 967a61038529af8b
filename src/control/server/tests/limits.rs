//! The control server's bounds: line length, client count, deadlines, and
//! descriptors closed.

use std::io::Write;
use std::time::{Duration, Instant};

use super::*;

/// Bytes the server holds for clients' unfinished request lines.
fn buffered(server: &ControlServer) -> usize {
    server
        .clients
        .values()
        .map(|c| match &c.state {
            State::Reading { buf, .. } => buf.capacity(),
            _ => 0,
        })
        .sum()
}

#[test]
fn a_1_mb_line_is_refused_without_being_held() {
    let (s, mut server) = bound();
    let mut c = client(&s.path());
    let mut writer = c.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let line = vec![b'x'; 1 << 20];
        // Fails (EPIPE or ECONNRESET) once the server has closed.
        let _ = writer.write_all(&line);
    });
    // The most it held, checked after every turn.
    let mut most = std::cell::Cell::new(0);
    drive(
        &mut server,
        &mut most,
        |_, _, _, e| panic!("{e:?} reached the core"),
        |srv, most| {
            most.set(most.get().max(buffered(srv)));
            srv.next_id == 1 && srv.client_count() == 0
        },
    );
    let most = most.get();
    assert!(most <= MAX_REQUEST_LINE + 1, "held {most} bytes");
    let reason = failed(read_reply(&mut c));
    assert_eq!(
        reason,
        format!("request too long (over {MAX_REQUEST_LINE} bytes)")
    );
    sender.join().unwrap();
}

#[test]
fn a_line_may_be_as_long_as_the_bound_and_not_a_byte_longer() {
    let (s, mut server) = bound();
    // Exactly MAX_REQUEST_LINE bytes: a request, padded with spaces.
    let mut longest = Request::Status.to_line().into_bytes();
    longest.pop();
    longest.resize(MAX_REQUEST_LINE, b' ');
    longest.push(b'\n');
    let mut fits = client(&s.path());
    fits.write_all(&longest).unwrap();
    let mut got = Vec::new();
    let record = |_: &mut ControlServer, got: &mut Vec<_>, _, e| got.push(e);
    drive(&mut server, &mut got, record, |_, got| !got.is_empty());
    assert_eq!(got, [ClientEvent::Request(Request::Status)]);

    // MAX_REQUEST_LINE bytes with no newline yet are held, and no more.
    let mut over = client(&s.path());
    over.write_all(&vec![b' '; MAX_REQUEST_LINE]).unwrap();
    drive(&mut server, &mut got, record, |srv, _| {
        buffered(srv) >= MAX_REQUEST_LINE
    });
    assert_eq!(
        buffered(&server),
        MAX_REQUEST_LINE,
        "capacity exactly what was read"
    );
    over.write_all(b" \n").unwrap();
    let done = |srv: &ControlServer, _: &_| srv.client_count() == 1;
    drive(&mut server, &mut got, record, done);
    let reason = failed(read_reply(&mut over));
    assert_eq!(
        reason,
        format!("request too long (over {MAX_REQUEST_LINE} bytes)")
    );
    assert_eq!(got.len(), 1);
}

/// The inodes of the sockets behind this process's descriptors.
fn open_socket_inodes() -> Vec<u64> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?.to_string();
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_hundred_clients_at_once_are_all_answered_and_every_descriptor_closed() {
    let (s, mut server) = bound();
    let before = fd_count();
    let mut clients: Vec<UnixStream> = (0..100).map(|_| client(&s.path())).collect();
    for c in &mut clients {
        c.write_all(Request::Status.to_line().as_bytes()).unwrap();
    }
    // The inodes of the server's ends of the connections.
    let mut server_side = Vec::new();
    drive(
        &mut server,
        &mut server_side,
        |srv, server_side, id, e| {
            let fd = srv.client_fd(id).unwrap();
            server_side.push(nix::sys::stat::fstat(fd).unwrap().st_ino);
            answer(srv, id, e);
        },
        |_, server_side| server_side.len() == 100,
    );
    assert_eq!(server.client_count(), 0);
    for c in &mut clients {
        assert_eq!(
            read_reply(c),
            Reply::Done {
                detail: "did status".into()
            }
        );
    }
    drop(clients);
    let still_open: Vec<u64> = open_socket_inodes()
        .into_iter()
        .filter(|ino| server_side.contains(ino))
        .collect();
    assert!(
        still_open.is_empty(),
        "server-side sockets left open: {still_open:?}"
    );
    // Other tests of this binary may hold a descriptor for a moment.
    let give_up = Instant::now() + PATIENCE;
    while fd_count() > before {
        assert!(
            Instant::now() < give_up,
            "{} descriptors, {before} before",
            fd_count()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn clients_beyond_the_limit_are_refused_with_a_reply() {
    let (s, mut server) = bound();
    let mut clients: Vec<UnixStream> = (0..MAX_CLIENTS).map(|_| client(&s.path())).collect();
    let ignore = |_: &mut ControlServer, _: &mut (), _, _| {};
    drive(&mut server, &mut (), ignore, |srv, _| {
        srv.client_count() == MAX_CLIENTS
    });
    let mut extra = client(&s.path());
    drive(&mut server, &mut (), ignore, |_, _| {
        let mut fds = [PollFd::new(extra.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() > 0
    });
    assert_eq!(
        failed(read_reply(&mut extra)),
        "too many clients at once, try again"
    );
    assert_eq!(server.client_count(), MAX_CLIENTS);
    // The library client reads the refusal too, even if the server closed
    // before its request was written.
    let path = s.path();
    let asking = std::thread::spawn(move || {
        crate::control::client::request(&path, &Request::Status, Instant::now() + PATIENCE)
    });
    drive(&mut server, &mut (), ignore, |_, _| asking.is_finished());
    let refused = Reply::Failed {
        reason: "too many clients at once, try again".into(),
    };
    assert_eq!(asking.join().unwrap().unwrap(), refused);
    clients.clear();
}

#[test]
fn a_reply_the_client_does_not_read_is_dropped_after_its_deadline() {
    let (s, mut server) = bound();
    let c = client_sending(&s.path(), Request::Status);
    let children = (0..20_000)
        .map(|i| crate::control::proto::ChildStatus {
            pid: i,
            epoch: i,
            generation: 0,
            state: "draining".into(),
        })
        .collect();
    let big = Reply::Status(Box::new(crate::control::proto::Status {
        children,
        ..crate::control::status::tests::sample_status()
    }));
    let mut id = None;
    drive(
        &mut server,
        &mut id,
        |srv, id, client, _| {
            srv.reply(client, &big, Instant::now());
            *id = Some(client);
        },
        |_, id| id.is_some(),
    );
    assert!(
        server.wants_write(id.unwrap()),
        "more than a socket buffer: still writing"
    );
    let deadline = server.next_deadline().expect("a drain deadline");
    server.on_timeout(deadline - Duration::from_millis(1));
    assert_eq!(server.client_count(), 1);
    server.on_timeout(deadline);
    assert_eq!(server.client_count(), 0);
    drop(c);
}
