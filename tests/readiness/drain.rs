//! `--drain-on-stop` against a stand-in admin (no Envoy needed): admin
//! answers that are errors, garbage or nothing at all during the drain are
//! logged (escaped) and the stop still happens once the drain time is up;
//! while draining, `status` says `draining-for-stop`, `check` answers 1 and
//! a reload is refused; the flag needs --envoy-admin. Real Envoy is in
//! tests/envoy/drain.rs.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::admin_lab::{FakeAdmin, Mode, live};
use crate::support::*;
use nix::sys::signal::Signal;

const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

fn start(admin: &FakeAdmin, flags: &[&str]) -> Wrapper {
    let mut args = vec!["--envoy-admin", admin.addr.as_str()];
    args.extend_from_slice(flags);
    let w = Wrapper::start(&args);
    w.wait_for_text("is ready after");
    w
}

fn ctl(socket: &std::path::Path, args: &[&str]) -> Output {
    Command::new(CTL)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn admin_garbage_during_the_drain_is_logged_and_the_stop_goes_on() {
    // The stand-in answers /stats with "OK\n": not the JSON Envoy sends.
    let admin = FakeAdmin::tcp(live(0));
    let mut w = start(&admin, &["--drain-on-stop", "1.5"]);
    let t = Instant::now();
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    eprintln!(
        "[drain-standin] garbage /stats: SIGTERM to exit {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let lines = admin.request_lines();
    assert_all_among(
        &[
            "POST /healthcheck/fail HTTP/1.1",
            "POST /drain_listeners?graceful HTTP/1.1",
            "GET /stats?format=json&filter=%5Ehttp%5C..*%5C.downstream_rq_active%24 HTTP/1.1",
        ],
        &lines,
        format!("{lines:?}"),
    );
    let warned = w.messages_starting("cannot count the requests in flight of generation 0: ");
    assert!(!warned.is_empty(), "{}", w.output());
    assert!(
        warned.iter().all(|m| m.contains("\"/stats is not JSON")),
        "{warned:?}"
    );
    assert!(
        !w.messages_starting("drain deadline passed after")
            .is_empty()
    );
    w.assert_logged("INFO", "all children exited cleanly");
    w.assert_no_children_left();
}

#[test]
fn a_silent_admin_does_not_hold_the_stop_past_the_drain_time() {
    let admin = FakeAdmin::tcp(live(0));
    let mut w = start(&admin, &["--drain-on-stop", "1"]);
    admin.set(Mode::Silent);
    let t = Instant::now();
    w.signal(Signal::SIGTERM);
    let status = w.wait_exit(Duration::from_secs(30));
    eprintln!(
        "[drain-standin] silent admin, --drain-on-stop 1: SIGTERM to exit {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(0), "{}", w.output());
    assert!(
        !w.messages_starting("drain deadline passed after")
            .is_empty()
    );
    assert!(
        !w.messages_starting("POST /healthcheck/fail to generation 0's admin failed: ")
            .is_empty(),
        "{}",
        w.output()
    );
    w.assert_no_children_left();
}

#[test]
fn while_draining_status_says_so_check_fails_and_reloads_are_refused() {
    let admin = FakeAdmin::tcp(live(0));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let socket_arg = socket.display().to_string();
    let mut w = start(
        &admin,
        &["--drain-on-stop", "60", "--control-socket", &socket_arg],
    );
    let check = ctl(&socket, &["check"]);
    assert_eq!(check.status.code(), Some(0), "{check:?}");
    let stop = ctl(&socket, &["stop"]);
    assert_eq!(stop.status.code(), Some(0), "{stop:?}");
    w.wait_for_text("draining Envoy (epoch 0 (PID=");
    let status = ctl(&socket, &["status", "--json"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("\"phase\": \"draining-for-stop\""), "{text}");
    let check = ctl(&socket, &["check"]);
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let reload = ctl(&socket, &["reload"]);
    assert_eq!(reload.status.code(), Some(1), "{reload:?}");
    w.signal(Signal::SIGHUP);
    w.wait_for("shutting down, ignoring SIGHUP");
    assert!(!w.output().contains("epoch 1"), "{}", w.output());
    // A second stop (here on the socket) skips the rest of the drain.
    let t = Instant::now();
    let again = ctl(&socket, &["stop", "--wait"]);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    assert!(
        t.elapsed() < Duration::from_secs(50),
        "the drain was not skipped"
    );
    w.assert_logged(
        "WARNING",
        "stop requested again while draining: skipping the rest of the drain",
    );
}

#[test]
fn drain_on_stop_needs_envoy_admin() {
    let mut w = Wrapper::start(&["--drain-on-stop", "5"]);
    w.expect_refused_at_start(2, "--drain-on-stop without --envoy-admin");
    w.assert_logged(
        "ERROR",
        "--drain-on-stop needs --envoy-admin: the drain goes through Envoy's admin",
    );
}
