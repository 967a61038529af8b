//! The faults a control socket server must survive: garbage, an overlong
//! line, silent clients, a hundred clients at once, a waiter that hangs
//! up, and what may already be at the socket path.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use nix::sys::signal::Signal;

use crate::harness::*;

// ----- bad input and faults ------------------------------------------------

#[test]
fn garbage_gets_an_error_reply_and_changes_nothing() {
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    let cases: [(&[u8], &str); 10] = [
        (b"hello\n", "malformed request: not JSON"),
        (b"[1,2]\n", "not a JSON object"),
        (b"{}\n", "no protocol version"),
        (b"{\"cmd\":\"reload\"}\n", "no protocol version"),
        (
            b"{\"v\":2,\"cmd\":\"reload\"}\n",
            "unsupported protocol version 2",
        ),
        (b"{\"v\":1}\n", "no command"),
        (
            b"{\"v\":1,\"cmd\":\"explode\"}\n",
            "unknown command \"explode\"",
        ),
        (
            b"{\"v\":1,\"cmd\":\"reload\",\"wait\":\"yes\"}\n",
            "\"wait\" must be true or false",
        ),
        (
            b"{\"v\":1,\"cmd\":\"status\",\"wait\":true}\n",
            "status takes no \"wait\"",
        ),
        (b"\xff\xfe{\"v\":1,\"cmd\":\"reload\"}\n", "not JSON"),
    ];
    for (request, expected) in cases {
        let reply = exchange(&socket, request);
        let error = error_of(&reply);
        assert!(
            error.contains(expected),
            "{:?}: {error:?}",
            String::from_utf8_lossy(request)
        );
    }
    // A request without a newline, ended by the client's end of file, is
    // read; one cut short is malformed.
    let mut half = connect(&socket);
    half.write_all(b"{\"v\":1,\"cmd\":\"rel").unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(error_of(&read_reply(&half)).contains("not JSON"));

    // Nothing happened: no restart, no signal, no log line for a request.
    let s = status(&socket);
    assert_eq!(children(&s), [child(pid0, 0, "ready")], "{s}");
    assert!(s["last_reload"].is_null());
    assert_eq!(counters(&s), expected_counters(&[]));
    assert!(!w.path().join("epoch-1").exists());
    assert_eq!(w.report(0).count("usr1") + w.report(0).count("term"), 0);
    assert!(
        w.messages_starting("control socket: ").is_empty(),
        "{}",
        w.output()
    );
    assert_eq!(w.count("got SIGHUP"), 0);
}

#[test]
fn an_overlong_line_is_refused_without_being_held() {
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    // Warm up: the first status allocates what every later one reuses.
    status(&socket);
    w.wait_idle();
    let before = ProcFigures::read(w.pid);

    // Four clients at once, each sending 1 MB without a newline, and
    // staying connected: a wrapper that buffered the line would hold 4 MB
    // now. It reads 8 KiB of each, answers and hangs up, and the writes
    // fail (EPIPE, ECONNRESET).
    const CLIENTS: usize = 4;
    let sent = Arc::new(Barrier::new(CLIENTS + 1));
    let measured = Arc::new(Barrier::new(CLIENTS + 1));
    let senders: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = socket.clone();
            let (sent, measured) = (sent.clone(), measured.clone());
            thread::spawn(move || {
                let stream = connect(&socket);
                let mut writer = stream.try_clone().unwrap();
                let _ = writer.write_all(&vec![b'x'; 1 << 20]);
                sent.wait();
                measured.wait();
                let _ = writer.write_all(b"\n");
                error_of(&read_reply(&stream))
            })
        })
        .collect();
    sent.wait();
    w.wait_idle();
    let during = ProcFigures::read(w.pid);
    measured.wait();
    for sender in senders {
        let error = sender.join().unwrap();
        assert_eq!(error, "request too long (over 8192 bytes)");
    }
    w.wait_idle();
    let after = ProcFigures::read(w.pid);
    // Had it kept even one line, it would have grown by 1 MB.
    for figures in [during, after] {
        assert!(
            figures.vm_rss_kb < before.vm_rss_kb + 512,
            "before: {before}; while the clients were connected: {during}; after: {after}"
        );
    }
    assert!(
        wait_until(DEADLINE, || fds(w.pid) == before.fds),
        "descriptors: {} before, {} after",
        before.fds,
        fds(w.pid)
    );
    // Still serving.
    let s = status(&socket);
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    let out = ctl(&socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn silent_clients_delay_no_signal() {
    let (mut w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    // One client says nothing, one stops halfway through its request.
    let silent = connect(&socket);
    let mut partial = connect(&socket);
    partial.write_all(b"{\"v\":1,\"cmd\":").unwrap();
    let connected = Instant::now();
    // Both are still connected and unanswered: a read would block.
    let still_connected = |s: &UnixStream| {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let r = (&*s).read(&mut buf);
        s.set_nonblocking(false).unwrap();
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    };

    w.signal(Signal::SIGHUP);
    let pid1 = w.ready_pid(1);
    w.wait_for(&format!("forked new child process with PID={pid1}"));
    let hup_took = connected.elapsed();
    // The wrapper drops a client that sends no request within 5 s: the
    // SIGHUP was acted on long before, while both clients were connected.
    assert!(still_connected(&silent) && still_connected(&partial));

    w.signal(Signal::SIGTERM);
    let status = w.wait_exit(DEADLINE);
    let stop_took = connected.elapsed();
    assert_eq!(status.code(), Some(0), "{}", w.output());
    assert!(
        hup_took < Duration::from_secs(3) && stop_took < Duration::from_secs(4),
        "SIGHUP took {hup_took:?}, SIGTERM {stop_took:?} with silent clients connected"
    );
    for pid in [pid0, pid1] {
        assert!(!exists(pid));
    }
    // The wrapper closed them as it exited.
    for s in [&silent, &partial] {
        let mut rest = Vec::new();
        let _ = (&*s).read_to_end(&mut rest);
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
}

#[test]
fn a_hundred_clients_at_once_are_all_answered() {
    const CLIENTS: usize = 100;
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    w.wait_idle();
    let before = fds(w.pid);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = socket.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut stream = connect(&socket);
                // Every client connected before any sends.
                barrier.wait();
                stream.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n").unwrap();
                read_reply(&stream)
            })
        })
        .collect();
    for client in clients {
        let reply = client.join().unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["status"]["pid"], w.pid);
        assert_eq!(children(&reply["status"]), [child(pid0, 0, "ready")]);
    }
    assert!(
        wait_until(DEADLINE, || fds(w.pid) == before),
        "descriptors: {before} before, {} after",
        fds(w.pid)
    );
    assert_eq!(w.messages_starting("control socket: ").len(), 0);
}

#[test]
fn a_waiter_that_hangs_up_is_forgotten() {
    let (mut w, socket) = start(&["--ready-check", "ready.sh"], |dir| {
        script(dir, "ready.sh", GATED_READY);
    });
    ready(&w, 0);
    // A reload --wait whose client leaves while epoch 1 is not ready.
    let mut leaver = connect(&socket);
    leaver
        .write_all(format!("{RELOAD_WAIT}\n").as_bytes())
        .unwrap();
    let pid1 = w.ready_pid(1);
    drop(leaver);
    // One that leaves before its request is even read.
    let mut quick = connect(&socket);
    quick
        .write_all(format!("{RELOAD_WAIT}\n").as_bytes())
        .unwrap();
    drop(quick);
    w.wait_for_count(&logged_request(RELOAD_WAIT), 2);

    fs::write(w.path().join("ready-1"), "").unwrap();
    w.wait_for_text(&format!("epoch 1 (PID={pid1}) is ready after"));
    // The second request was held, and runs once epoch 1 is ready.
    let pid2 = w.ready_pid(2);
    fs::write(w.path().join("ready-2"), "").unwrap();
    w.wait_for_text(&format!("epoch 2 (PID={pid2}) is ready after"));
    assert!(w.is_running());
    let s = status(&socket);
    assert_eq!(s["phase"], "running", "{s}");
    assert_eq!(s["last_reload"]["epoch"], 2, "{s}");
    assert_eq!(counters(&s), expected_counters(&[("reloads_done", 2)]));
    // A stop --wait that leaves: the wrapper still stops, and cleanly.
    let mut stopper = connect(&socket);
    stopper
        .write_all(b"{\"v\":1,\"cmd\":\"stop\",\"wait\":true}\n")
        .unwrap();
    drop(stopper);
    assert_eq!(w.exit_code(), 0);
    assert!(!socket.exists());
}

// ----- what is at the socket path --------------------------------------------

#[test]
fn a_socket_in_a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("missing/ctl.sock");
    let mut w = on_socket(dir, &socket, &[]);
    assert_eq!(w.exit_code(), 1);
    let output = w.output();
    assert!(
        output.contains(&format!(
            "cannot create control socket {}",
            socket.display()
        )) && output.contains("No such file or directory"),
        "{output}"
    );
    assert_eq!(
        started_epochs(&w.lines()),
        Vec::<u32>::new(),
        "a child was started"
    );
    assert!(!w.path().join("epoch-0").exists());
}

#[test]
fn a_symlink_at_the_socket_path_is_refused_and_left_alone() {
    for dangling in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "start.sh", REPORTER);
        let target = dir.path().join("precious");
        if !dangling {
            fs::write(&target, "keep me").unwrap();
        }
        let socket = dir.path().join("ctl.sock");
        std::os::unix::fs::symlink(&target, &socket).unwrap();
        let mut cmd = command(dir.path());
        cmd.arg("--control-socket").arg(&socket).arg("start.sh");
        let mut w = Wrapper::spawn(dir, cmd);
        assert_eq!(w.exit_code(), 1, "dangling={dangling}");
        let output = w.output();
        assert!(
            output.contains(&format!(
                "control socket path {} is a symlink",
                socket.display()
            )),
            "{output}"
        );
        assert!(
            fs::symlink_metadata(&socket)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_link(&socket).unwrap(), target);
        if dangling {
            assert!(!target.exists(), "created through the link");
        } else {
            assert_eq!(fs::read_to_string(&target).unwrap(), "keep me");
        }
        assert!(!w.path().join("epoch-0").exists(), "a child was started");
    }
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    // What a wrapper killed with SIGKILL leaves: a socket file nothing
    // listens on.
    drop(UnixListener::bind(&socket).unwrap());
    // A second name keeps the stale inode from being reused by the new
    // socket, so that the two can be told apart.
    let old = dir.path().join("old.sock");
    fs::hard_link(&socket, &old).unwrap();
    let stale = fs::symlink_metadata(&socket).unwrap().ino();
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    cmd.arg("--control-socket").arg(&socket).arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    let pid0 = up(&w);
    w.wait_for(&format!(
        "removed stale control socket {}",
        socket.display()
    ));
    assert_ne!(fs::symlink_metadata(&socket).unwrap().ino(), stale);
    assert_eq!(mode_of(&socket), (true, 0o600));
    let s = status(&socket);
    assert_eq!(s["pid"], w.pid);
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    assert!(!socket.exists());
}

#[test]
fn a_live_wrappers_socket_is_not_taken_over() {
    let (w1, socket) = start(&[], |_| {});
    let pid0 = up(&w1);
    let inode = fs::symlink_metadata(&socket).unwrap().ino();

    // A second wrapper, in a directory of its own, given the same socket.
    second_wrapper_refused(&socket, &[]);

    // The first is unaffected: the same socket file, still serving.
    assert_eq!(fs::symlink_metadata(&socket).unwrap().ino(), inode);
    assert_eq!(mode_of(&socket), (true, 0o600));
    let s = status(&socket);
    assert_eq!(s["pid"], w1.pid);
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    let out = ctl(&socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    w1.ready_pid(1);
}

/// The wrapper on the reporter in `dir`, with `--control-socket socket`
/// and `extra` flags.
fn on_socket(dir: tempfile::TempDir, socket: &Path, extra: &[&std::ffi::OsStr]) -> Wrapper {
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    cmd.arg("--control-socket")
        .arg(socket)
        .args(extra)
        .arg("start.sh");
    Wrapper::spawn(dir, cmd)
}

/// A second wrapper, in a directory of its own, given `socket` (which a
/// running wrapper serves) and `extra` flags: it exits 1 before epoch 0,
/// saying that another process answers there.
fn second_wrapper_refused(socket: &Path, extra: &[&std::ffi::OsStr]) -> Wrapper {
    let mut w = on_socket(tempfile::tempdir().unwrap(), socket, extra);
    w.expect_refused_at_start(1, "a second wrapper on the same socket");
    assert!(
        w.output()
            .contains(&format!("another process answers on {}", socket.display())),
        "{}",
        w.output()
    );
    w
}

#[test]
fn a_second_wrapper_refused_at_the_socket_leaves_the_first_ones_pid_file() {
    // Both given the same --pid-file, as a supervisor's start program run
    // twice would: the refused one must not have replaced (and, exiting,
    // removed) the pid file of the one that runs.
    let (w1, socket) = start(&["--pid-file", "w.pid"], |_| {});
    up(&w1);
    let pid_file = w1.path().join("w.pid");
    let w2 = second_wrapper_refused(&socket, &["--pid-file".as_ref(), pid_file.as_os_str()]);
    assert_eq!(
        fs::read_to_string(&pid_file).ok(),
        Some(format!("{}\n", w1.pid)),
        "the first wrapper's pid file; the second wrapper said:\n{}",
        w2.output()
    );
}

#[test]
fn a_pid_file_that_cannot_be_written_leaves_no_socket_behind() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let mut w = on_socket(
        dir,
        &socket,
        &["--pid-file".as_ref(), "missing/w.pid".as_ref()],
    );
    assert_eq!(w.exit_code(), 1);
    assert!(
        w.output().contains("cannot write pid file missing/w.pid"),
        "{}",
        w.output()
    );
    assert!(!socket.exists(), "the socket file outlived the wrapper");
    assert!(!w.path().join("epoch-0").exists(), "a child was started");
}
