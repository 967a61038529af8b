//! `--envoy-admin` against a stand-in admin (no Envoy needed): an epoch is
//! ready only when the admin says LIVE for that very epoch, SIGHUPs wait
//! and coalesce until then, the drain hold is on by default, a silent or
//! refusing admin never delays a signal, and bad addresses are usage
//! errors. Real Envoy is in tests/envoy/admin.rs.

use std::time::{Duration, Instant};

use crate::admin_lab::{FakeAdmin, Mode, initializing, live};
use crate::support::*;
use nix::sys::signal::Signal;

fn start(admin: &FakeAdmin, flags: &[&str]) -> Wrapper {
    let mut args = vec!["--envoy-admin", admin.addr.as_str()];
    args.extend_from_slice(flags);
    Wrapper::start(&args)
}

/// Wait until the fake admin has been asked `n` more times than now.
fn asked_more(admin: &FakeAdmin, n: usize) {
    let before = admin.requests();
    assert!(
        wait_until(DEADLINE, || admin.requests() >= before + n),
        "the wrapper stopped asking the admin"
    );
}

#[test]
fn an_epoch_is_ready_only_when_the_admin_says_live_for_that_epoch() {
    let admin = FakeAdmin::tcp(initializing(0));
    let mut w = start(&admin, &[]);
    let epoch0 = w.report(0).pid().unwrap();
    asked_more(&admin, 3);
    assert!(
        !w.output().contains("is ready after"),
        "ready while INITIALIZING"
    );
    admin.set(live(0));
    w.wait_for_text(&format!("epoch 0 (PID={epoch0}) is ready after"));
    assert!(
        admin
            .request_lines()
            .iter()
            .all(|l| l == "GET /server_info HTTP/1.1"),
        "{:?}",
        admin.request_lines()
    );

    // Right after a hot restart the old epoch's admin still answers LIVE on
    // the same address: that is not the new epoch being ready.
    w.signal(Signal::SIGHUP);
    let epoch1 = w.report(1).pid().unwrap();
    asked_more(&admin, 5);
    assert!(
        !w.output()
            .contains(&format!("epoch 1 (PID={epoch1}) is ready after")),
        "epoch 1 was declared ready on epoch 0's answer"
    );
    // SIGUSR1 spares the epoch that is not LIVE yet.
    w.signal(Signal::SIGUSR1);
    w.wait_for_text(&format!("not sending SIGUSR1 to PID={epoch1}"));
    admin.set(live(1));
    w.wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
    w.stop();
}

#[test]
fn sighups_wait_until_live_and_then_until_the_old_epoch_has_drained() {
    let admin = FakeAdmin::tcp(live(0));
    let mut w = start(&admin, &[]);
    w.wait_for_text("epoch 0 (PID=");
    w.wait_for_text("is ready after");
    let epoch0 = w.report(0).pid().unwrap();
    admin.set(initializing(1));
    w.signal(Signal::SIGHUP);
    let epoch1 = w.report(1).pid().unwrap();
    for n in 1..=3 {
        w.signal(Signal::SIGHUP);
        w.wait_for_count("got SIGHUP", 1 + n);
    }
    w.wait_for_text("holding SIGHUP until epoch 1");
    let coalesced = || {
        w.output()
            .matches("coalescing SIGHUP into the held restart")
            .count()
    };
    assert!(
        wait_until(DEADLINE, || coalesced() == 2),
        "two SIGHUPs were not coalesced:\n{}",
        w.output()
    );
    admin.set(live(1));
    w.wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
    // The drain hold is on by default with --envoy-admin: epoch 2 waits
    // until epoch 0 has exited.
    w.wait_for_text(&format!(
        "the held restart waits until epoch 0 (PID={epoch0}) has drained and exited"
    ));
    assert_eq!(
        w.count("forking and execing new child process at epoch 2"),
        0
    );
    signal_pid(epoch0, Signal::SIGTERM);
    w.wait_for("forking and execing new child process at epoch 2");
    let epoch2 = w.report(2).pid().unwrap();
    admin.set(live(2));
    w.wait_for_text(&format!("epoch 2 (PID={epoch2}) is ready after"));
    assert_eq!(
        w.count("forking and execing new child process at epoch 3"),
        0,
        "the held SIGHUPs were not coalesced into one restart"
    );
    w.stop();
}

#[test]
fn the_drain_hold_can_be_turned_off() {
    let admin = FakeAdmin::tcp(live(0));
    let mut w = start(&admin, &["--hold-while-draining=false"]);
    w.wait_for_text("is ready after");
    admin.set(live(1));
    w.signal(Signal::SIGHUP);
    let epoch1 = w.report(1).pid().unwrap();
    w.wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
    admin.set(live(2));
    w.signal(Signal::SIGHUP);
    let epoch2 = w.report(2).pid().unwrap();
    assert!(running(w.report(0).pid().unwrap()), "epoch 0 still drains");
    w.wait_for_text(&format!("epoch 2 (PID={epoch2}) is ready after"));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn a_silent_admin_runs_into_the_ready_timeout_and_never_delays_sigterm() {
    let admin = FakeAdmin::tcp(Mode::Silent);
    let mut w = start(&admin, &["--ready-timeout", "1.5"]);
    let line = w.wait_for_text("not ready after 1.5 s, killing it");
    assert!(line.contains("no answer from"), "{line}");
    assert_eq!(w.exit_code(), 1, "epoch 0 never ready: the wrapper fails");
    w.assert_no_children_left();

    // A request hangs on the silent admin while SIGTERM arrives: the
    // wrapper acts on it without waiting for the request's timeout (1 s).
    let mut w = start(&admin, &["--ready-timeout", "30"]);
    w.report(0);
    asked_more(&admin, 1);
    let sent = Instant::now();
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    let took = sent.elapsed();
    assert!(
        took < Duration::from_millis(900),
        "SIGTERM waited for the admin request: {took:?}"
    );
    w.assert_no_children_left();
}

#[test]
fn a_refusing_admin_is_named_in_the_timeout() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut w = Wrapper::start(&["--envoy-admin", &addr, "--ready-timeout", "0.5"]);
    let line = w.wait_for_text("not ready after 0.5 s, killing it");
    assert!(line.contains(&addr), "{line}");
    assert!(line.contains("Connection refused"), "{line}");
    assert_eq!(w.exit_code(), 1);
    w.assert_no_children_left();
}

#[test]
fn an_admin_on_a_unix_socket_that_appears_later_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let addr = path.display().to_string();
    // The socket does not exist yet (Envoy creates it): not an error.
    let mut w = Wrapper::start(&["--envoy-admin", &addr]);
    let epoch0 = w.report(0).pid().unwrap();
    let admin = FakeAdmin::unix(&path, live(0));
    w.wait_for_text(&format!("epoch 0 (PID={epoch0}) is ready after"));
    assert!(admin.requests() >= 1);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn no_admin_request_and_no_wake_up_while_idle() {
    let admin = FakeAdmin::tcp(live(0));
    let mut w = start(&admin, &[]);
    w.wait_for_text("is ready after");
    w.wait_idle();
    let before = admin.requests();
    let wakeups = voluntary_switches(w.pid);
    // Nothing to wait for: watch a quiet window.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(admin.requests(), before, "the admin was asked while idle");
    assert_eq!(voluntary_switches(w.pid), wakeups, "the wrapper woke up");
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

fn voluntary_switches(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn an_admin_address_that_does_not_parse_is_a_usage_error() {
    for bad in [
        "localhost:9901",
        "127.0.0.1",
        "relative/admin.sock",
        "1.2.3.4:99999",
    ] {
        let mut w = Wrapper::start(&["--envoy-admin", bad]);
        w.expect_refused_at_start(2, bad);
        let err = w.stderr_lines().join("\n");
        assert!(err.contains(bad), "the error does not name {bad}: {err}");
    }
    // From the environment too, naming the variable.
    let mut w = Wrapper::start_env(&[], &[("HOT_RESTARTER_ENVOY_ADMIN", "nope")]);
    assert_eq!(w.exit_code(), 2);
    let err = w.stderr_lines().join("\n");
    assert!(err.contains("HOT_RESTARTER_ENVOY_ADMIN"), "{err}");
}
