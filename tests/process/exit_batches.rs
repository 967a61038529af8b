//! Defects found by breaking the pre-core binary as a user would, each
//! fixed in the core: --keep-serving forgetting an old epoch's failure, a
//! batch of exits naming one of its own children as serving, and helpers
//! whose background processes outlived them.


use std::fs;

use crate::support::*;
use nix::sys::signal::Signal;

const START: &str = r#"#!/bin/sh
exec "$REPORT_DIR/reporter.sh" "$@"
"#;

/// A ready check that leaves a background process behind and passes.
const LEAKY_CHECK: &str = r#"#!/bin/sh
sleep 1000 &
echo $! >> "$REPORT_DIR/leaked"
exit 0
"#;

fn start(flags: &[&str]) -> Wrapper {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "reporter.sh", REPORTER);
    script(dir.path(), "start.sh", START);
    script(dir.path(), "leaky.sh", LEAKY_CHECK);
    let mut cmd = command(dir.path());
    cmd.args(flags).arg("start.sh");
    let w = Wrapper::spawn(dir, cmd);
    w.report(0);
    w
}

/// Restart to `epoch` and return its pid.
fn restart_to(w: &Wrapper, epoch: u32) -> i32 {
    w.signal(Signal::SIGHUP);
    w.report(epoch).pid().unwrap()
}

#[test]
fn keep_serving_exits_1_when_an_old_epoch_failed_before_the_new_one_ended_cleanly() {
    let mut w = start(&["--keep-serving"]);
    let epoch0 = w.report(0).pid().unwrap();
    let epoch1 = restart_to(&w, 1);
    // The old epoch fails while the new one serves...
    signal_pid(epoch0, Signal::SIGKILL);
    w.wait_for(&format!("PID={epoch0} was killed with signal=9"));
    w.wait_for_text("epoch 0 (PID=");
    assert!(running(epoch1));
    // ...then the new one ends cleanly by itself.
    signal_pid(epoch1, Signal::SIGTERM);
    w.wait_for(&format!("PID={epoch1} exited with code=0"));
    w.wait_for("exiting due to lack of child processes");
    assert_eq!(w.exit_code(), 1, "a child failed during the run");
    w.assert_no_children_left();
}

#[test]
fn keep_serving_exits_1_when_the_new_epoch_failed_before_the_old_one_ended_cleanly() {
    let mut w = start(&["--keep-serving"]);
    let epoch0 = w.report(0).pid().unwrap();
    let epoch1 = restart_to(&w, 1);
    signal_pid(epoch1, Signal::SIGKILL);
    w.wait_for_text("restart to epoch 1 failed because");
    signal_pid(epoch0, Signal::SIGTERM);
    w.wait_for(&format!("PID={epoch0} exited with code=0"));
    assert_eq!(w.exit_code(), 1, "a child failed during the run");
    w.assert_no_children_left();
}

#[test]
fn children_that_exit_in_one_batch_are_never_named_as_serving() {
    let mut w = start(&["--keep-serving"]);
    let epoch0 = w.report(0).pid().unwrap();
    let epoch1 = restart_to(&w, 1);
    let epoch2 = restart_to(&w, 2);
    // Stop the wrapper so that both exits are reaped in one batch.
    signal_pid(w.pid, Signal::SIGSTOP);
    signal_pid(epoch1, Signal::SIGKILL);
    signal_pid(epoch2, Signal::SIGKILL);
    assert!(wait_until(DEADLINE, || !running(epoch1) && !running(epoch2)));
    signal_pid(w.pid, Signal::SIGCONT);
    w.wait_for(&format!("PID={epoch1} was killed with signal=9"));
    w.wait_for(&format!("PID={epoch2} was killed with signal=9"));
    w.wait_for_text("the next restart uses epoch");
    for dead in [epoch1, epoch2] {
        assert!(
            !w.output().contains(&format!("(PID={dead}) keeps serving")),
            "a child of the batch was named as serving:\n{}",
            w.output()
        );
    }
    assert!(
        w.output()
            .contains(&format!("epoch 0 (PID={epoch0}) keeps serving")),
        "{}",
        w.output()
    );
    // The next restart follows the survivor.
    fs::remove_file(w.path().join("epoch-1")).unwrap();
    let again = restart_to(&w, 1);
    assert_ne!(again, epoch1);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "a graceful stop decides the exit code");
    w.assert_no_children_left();
}

/// The pids a leaky helper left behind, once at least `n` are recorded.
fn leaked(w: &Wrapper, n: usize) -> Vec<i32> {
    let path = w.path().join("leaked");
    let mut pids = Vec::new();
    assert!(
        wait_until(DEADLINE, || {
            pids = fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            pids.len() >= n
        }),
        "the helper never recorded its background process"
    );
    pids
}

#[test]
fn what_a_ready_check_leaves_behind_is_killed_when_the_check_is_over() {
    let mut w = start(&["--ready-check", "leaky.sh"]);
    w.wait_for_text("epoch 0 (PID=");
    let pids = leaked(&w, 1);
    let _guards: Vec<_> = pids.iter().map(|p| ProcessGuard::new(*p)).collect();
    for pid in &pids {
        assert!(
            wait_until(DEADLINE, || !running(*pid)),
            "the ready check's background PID={pid} outlived the check"
        );
    }
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn what_a_preflight_leaves_behind_does_not_outlive_the_wrapper() {
    let mut w = start(&["--preflight", "leaky.sh"]);
    let epoch1 = restart_to(&w, 1);
    assert!(running(epoch1));
    let pids = leaked(&w, 1);
    let _guards: Vec<_> = pids.iter().map(|p| ProcessGuard::new(*p)).collect();
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    for pid in &pids {
        assert!(
            wait_until(DEADLINE, || !running(*pid)),
            "the preflight's background PID={pid} outlived the wrapper"
        );
    }
}
