//! Graceful shutdown: SIGTERM and SIGINT, the term wait, children that
//! ignore SIGTERM, signals during shutdown, and how soon the wrapper exits.

use std::time::{Duration, Instant};

use crate::support::*;
use nix::sys::signal::Signal;

/// Start three epochs, send `sig` to the wrapper, and check the graceful
/// shutdown: every child gets SIGTERM once, the wrapper exits 0.
fn graceful_shutdown(sig: Signal, logged: &str) {
    let mut w = Wrapper::start(&[]);
    let pids = w.start_epochs(2);
    w.signal(sig);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    w.assert_logged("WARNING", logged);
    for (epoch, pid) in pids.iter().enumerate() {
        w.assert_logged("INFO", &format!("sending TERM to PID={pid}"));
        assert_eq!(
            w.report(epoch as u32).count("term"),
            1,
            "epoch {epoch} did not get exactly one SIGTERM"
        );
    }
    w.assert_logged("INFO", "all children exited cleanly");
    w.assert_not_logged("Due to abnormal exit, force killing all child processes and exiting");
    w.assert_no_children_left();
}

#[test]
fn sigterm_stops_every_child_and_exits_0() {
    graceful_shutdown(Signal::SIGTERM, "got SIGTERM");
}

#[test]
fn sigint_stops_every_child_and_exits_0() {
    graceful_shutdown(Signal::SIGINT, "got SIGINT");
}

#[test]
fn exit_codes_do_not_matter_during_shutdown() {
    let mut w = Wrapper::start_env(&[], &[("TERM_EXIT", "7")]);
    let pids = w.start_epochs(1);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    w.assert_logged("INFO", "all children exited cleanly");
    for pid in pids {
        w.assert_not_logged(&format!("force killing PID={pid}"));
    }
    w.assert_no_children_left();
}

/// A wrapper with `--term-wait term_wait` whose epoch 0 ignores SIGTERM,
/// sent SIGTERM: returns it once the child has seen the SIGTERM, with the
/// child's pid and when the SIGTERM was sent.
fn sigterm_to_a_deaf_child(term_wait: &str) -> (Wrapper, i32, Instant) {
    let w = Wrapper::start_env(&["--term-wait", term_wait], &[("IGNORE_TERM", "1")]);
    let pid = w.first_child();
    let sent = Instant::now();
    w.signal(Signal::SIGTERM);
    w.wait_report_event(0, "term", 1);
    (w, pid, sent)
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_the_term_wait() {
    let (mut w, pid, sent) = sigterm_to_a_deaf_child("0.5");
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "killed before the term wait ended ({took:?})"
    );
    assert!(
        took < Duration::from_secs(10),
        "--term-wait 0.5 not honoured ({took:?})"
    );
    w.assert_logged(
        "INFO",
        &format!("child PID={pid} did not exit cleanly, killing"),
    );
    w.assert_logged("WARNING", &format!("force killing PID={pid}"));
    w.assert_not_logged("all children exited cleanly");
    w.assert_no_children_left();
}

#[test]
fn only_the_child_that_ignores_sigterm_is_killed() {
    // Epoch 1 ignores SIGTERM; epoch 0 exits when asked.
    let body = format!("#!/bin/sh\n[ \"$RESTART_EPOCH\" = 1 ] && export IGNORE_TERM=1\n{REPORTER}");
    let mut w = Wrapper::start_with(&["--term-wait", "0.5"], &body, |_| {});
    let pids = w.start_epochs(1);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    w.assert_not_logged(&format!(
        "child PID={} did not exit cleanly, killing",
        pids[0]
    ));
    w.assert_not_logged(&format!("force killing PID={}", pids[0]));
    w.assert_logged(
        "INFO",
        &format!("child PID={} did not exit cleanly, killing", pids[1]),
    );
    w.assert_logged("WARNING", &format!("force killing PID={}", pids[1]));
    w.assert_no_children_left();
}

#[test]
fn signals_during_shutdown_are_logged_and_ignored() {
    let (mut w, pid, sent) = sigterm_to_a_deaf_child("2");
    w.wait_for(&format!("sending TERM to PID={pid}"));

    // Each one on its own, so that each is seen and logged separately.
    w.signal(Signal::SIGHUP);
    w.wait_for("got SIGHUP");
    w.signal(Signal::SIGUSR1);
    w.wait_for_text("SIGUSR1");
    w.signal(Signal::SIGTERM);
    w.wait_for_count("got SIGTERM", 2);
    w.signal(Signal::SIGINT);
    w.wait_for("got SIGINT");
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "too slow: the term wait ended before every signal was sent"
    );

    assert_eq!(w.exit_code(), 1, "{}", w.output());
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "a signal during shutdown cut the term wait short ({took:?})"
    );
    // Nothing was acted on: no new epoch, no SIGUSR1 or second SIGTERM
    // passed on.
    assert!(!w.path().join("epoch-1").exists(), "a new epoch started");
    assert_eq!(
        w.messages_starting("forking and execing new child process at epoch "),
        vec!["forking and execing new child process at epoch 0"]
    );
    w.assert_not_logged(&format!("sending SIGUSR1 to PID={pid}"));
    assert_eq!(w.count(&format!("sending TERM to PID={pid}")), 1);
    let report = w.report(0);
    assert_eq!(report.count("usr1"), 0, "{report:?}");
    assert_eq!(report.count("term"), 1, "{report:?}");
    w.assert_logged(
        "INFO",
        &format!("child PID={pid} did not exit cleanly, killing"),
    );
    w.assert_no_children_left();
}

/// SIGTERM to wrapper exit, with children that exit at once.
fn time_to_exit() -> Duration {
    let mut w = Wrapper::start(&[]);
    w.start_epochs(2);
    let sent = Instant::now();
    w.signal(Signal::SIGTERM);
    let status = w.wait_exit(Duration::from_secs(5));
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{}", w.output());
    w.assert_no_children_left();
    took
}

#[test]
fn the_wrapper_exits_as_soon_as_the_last_child_is_reaped() {
    // The default term wait is 30 s: each run must end well inside it
    // (wait_end fails after 5 s). The Python wrapper polls once a second,
    // so it never takes less than 1 s; the fastest of three runs shows
    // there is no such poll, whatever the load on the machine.
    let fastest = (0..3).map(|_| time_to_exit()).min().unwrap();
    assert!(
        fastest < Duration::from_millis(800),
        "SIGTERM to exit took at least {fastest:?}: is the wrapper polling?"
    );
}
