//! Requests, replies and hang-ups between the control server and clients.

use std::io::Write;
use std::time::{Duration, Instant};

use super::*;

#[test]
fn may_serve_root_and_the_own_user_only() {
    assert!(may_serve(0, 1000));
    assert!(may_serve(1000, 1000));
    assert!(may_serve(0, 0));
    assert!(!may_serve(1001, 1000));
    assert!(!may_serve(1000, 0));
    assert!(!may_serve(65534, 1000));
}

#[test]
fn a_request_is_handed_over_and_its_reply_written() {
    let (s, mut server) = bound();
    let mut c = client_sending(&s.path(), Request::Reload { wait: true });
    let mut got = Vec::new();
    drive(
        &mut server,
        &mut got,
        |srv, got, id, e| {
            got.push(e.clone());
            answer(srv, id, e)
        },
        |_, got| !got.is_empty(),
    );
    assert_eq!(got, [ClientEvent::Request(Request::Reload { wait: true })]);
    assert_eq!(
        read_reply(&mut c),
        Reply::Done {
            detail: "did reload".into()
        }
    );
    assert_eq!(
        server.client_count(),
        0,
        "closed once the reply was written"
    );
}

#[test]
fn a_silent_client_does_not_delay_another_and_times_out_alone() {
    let (s, mut server) = bound();
    let started = Instant::now();
    let mut silent = client(&s.path());
    // Connected until the end, never read: a client waiting for its reply.
    let _waiting = client_sending(&s.path(), Request::Stop { wait: true });
    let mut talker = client_sending(&s.path(), Request::Status);
    let mut requests = Vec::new();
    drive(
        &mut server,
        &mut requests,
        |srv, requests, id, e| {
            if e == ClientEvent::Request(Request::Status) {
                answer(srv, id, e);
            } else {
                requests.push(e); // the stop waits for its reply
            }
        },
        |srv, requests| srv.client_count() == 2 && requests.len() == 1,
    );
    assert_eq!(
        read_reply(&mut talker),
        Reply::Done {
            detail: "did status".into()
        }
    );
    assert!(
        started.elapsed() < REQUEST_TIMEOUT / 2,
        "the silent client held things up"
    );
    assert_eq!(
        requests,
        [ClientEvent::Request(Request::Stop { wait: true })]
    );

    // Past its request deadline the silent client is told and dropped; the
    // client waiting for its reply has no deadline here.
    server.on_timeout(Instant::now() + REQUEST_TIMEOUT + Duration::from_millis(1));
    assert_eq!(server.client_count(), 1);
    assert_eq!(failed(read_reply(&mut silent)), "no request within 5 s");
    assert!(server.next_deadline().is_none());
}

#[test]
fn garbage_gets_an_error_reply_and_never_reaches_the_core() {
    let (s, mut server) = bound();
    let garbage: [&[u8]; 4] = [
        b"\x00\xff\xfe garbage\n",
        b"{\"v\":1,\"cmd\":\"explode\"}\n",
        b"{\"v\":9,\"cmd\":\"status\"}\n",
        b"\n",
    ];
    let mut clients: Vec<UnixStream> = garbage
        .iter()
        .map(|line| {
            let mut c = client(&s.path());
            c.write_all(line).unwrap();
            c
        })
        .collect();
    let mut events = 0;
    drive(
        &mut server,
        &mut events,
        |_, events, _, _| *events += 1,
        |srv, _| srv.next_id == 4 && srv.client_count() == 0,
    );
    let reasons: Vec<String> = clients.iter_mut().map(|c| failed(read_reply(c))).collect();
    assert!(
        reasons[0].starts_with("malformed request: not JSON"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("unknown command \"explode\""),
        "{reasons:?}"
    );
    assert!(
        reasons[2].starts_with("unsupported protocol version 9"),
        "{reasons:?}"
    );
    assert!(reasons[3].starts_with("malformed request"), "{reasons:?}");
    assert_eq!(events, 0);
}

#[test]
fn a_request_without_newline_counts_at_end_of_file_and_a_half_closed_client_gets_its_reply() {
    let (s, mut server) = bound();
    let mut c = client(&s.path());
    c.write_all(br#"{"v":1,"cmd":"reopen-logs"}"#).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut pending = None;
    drive(
        &mut server,
        &mut pending,
        |_, pending, id, e| {
            assert_eq!(e, ClientEvent::Request(Request::ReopenLogs));
            *pending = Some(id);
        },
        |_, pending| pending.is_some(),
    );
    // Shutting down its writing side is not hanging up: no Gone.
    for _ in 0..3 {
        assert!(turn(&mut server, Duration::from_millis(20)).is_empty());
    }
    assert!(server.reply(
        pending.unwrap(),
        &Reply::Done { detail: "x".into() },
        Instant::now()
    ));
    assert_eq!(read_reply(&mut c), Reply::Done { detail: "x".into() });
}

#[test]
fn a_client_that_hangs_up_before_its_reply_is_gone() {
    let (s, mut server) = bound();
    let c = client_sending(&s.path(), Request::Reload { wait: true });
    let mut events = Vec::new();
    let record = |_: &mut ControlServer, events: &mut Vec<_>, id, e| events.push((id, e));
    drive(&mut server, &mut events, record, |_, events| {
        !events.is_empty()
    });
    let id = events[0].0;
    drop(c);
    drive(&mut server, &mut events, record, |_, events| {
        events.len() == 2
    });
    assert_eq!(events[1], (id, ClientEvent::Gone));
    assert_eq!(server.client_count(), 0);
    // A late reply to it is dropped quietly.
    assert!(!server.reply(
        id,
        &Reply::Done {
            detail: "late".into()
        },
        Instant::now()
    ));
    // A client that leaves before sending anything is no event at all.
    drop(client(&s.path()));
    let mut n = 0;
    let done = |srv: &ControlServer, _: &_| srv.next_id == 2 && srv.client_count() == 0;
    drive(&mut server, &mut n, |_, n, _, _| *n += 1, done);
    assert_eq!(n, 0);
}

#[test]
fn unlink_stops_new_connections_but_serves_connected_clients() {
    let (s, mut server) = bound();
    let mut c = client_sending(&s.path(), Request::Stop { wait: true });
    let mut id = None;
    drive(
        &mut server,
        &mut id,
        |_, id, client, _| *id = Some(client),
        |_, id| id.is_some(),
    );
    server.unlink();
    assert!(!s.path().exists());
    let err = UnixStream::connect(s.path()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    server.reply(
        id.unwrap(),
        &Reply::Done {
            detail: "stopped".into(),
        },
        Instant::now(),
    );
    assert_eq!(
        read_reply(&mut c),
        Reply::Done {
            detail: "stopped".into()
        }
    );
}

#[test]
fn the_client_and_the_server_understand_each_other() {
    use crate::control::client::{self, ClientError};
    let (s, mut server) = bound();
    let path = s.path();
    let asking = std::thread::spawn(move || {
        let deadline = Instant::now() + PATIENCE;
        let status = client::request(&path, &Request::Status, deadline);
        let reload = client::request(&path, &Request::Reload { wait: true }, deadline);
        let stop = client::request(&path, &Request::Stop { wait: true }, deadline);
        let after = client::request(&path, &Request::Status, deadline);
        (status, reload, stop, after)
    });
    let status = crate::control::status::tests::sample_status();
    let mut stopped = false;
    drive(
        &mut server,
        &mut stopped,
        |srv, stopped, id, e| {
            let now = Instant::now();
            match e {
                ClientEvent::Request(Request::Status) => {
                    srv.reply(id, &Reply::Status(Box::new(status.clone())), now);
                }
                ClientEvent::Request(Request::Reload { wait: true }) => {
                    srv.reply(
                        id,
                        &Reply::Failed {
                            reason: "preflight failed".into(),
                        },
                        now,
                    );
                }
                ClientEvent::Request(Request::Stop { wait: true }) => {
                    // As the core will on its way out: the file goes first.
                    srv.unlink();
                    srv.reply(
                        id,
                        &Reply::Done {
                            detail: "exit code 0".into(),
                        },
                        now,
                    );
                    *stopped = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        },
        |srv, stopped| *stopped && srv.client_count() == 0,
    );
    let (got_status, reload, stop, after) = asking.join().unwrap();
    assert_eq!(got_status.unwrap(), Reply::Status(Box::new(status)));
    assert_eq!(
        reload.unwrap(),
        Reply::Failed {
            reason: "preflight failed".into()
        }
    );
    assert_eq!(
        stop.unwrap(),
        Reply::Done {
            detail: "exit code 0".into()
        }
    );
    match after {
        Err(e @ ClientError::NotRunning { .. }) => assert_eq!(e.exit_code(), 3),
        other => panic!("expected NotRunning, got {other:?}"),
    }
}
