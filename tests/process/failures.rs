//! Child exits outside shutdown: exit 0 is expected (the wrapper carries on,
//! or exits 0 with no child left); a non-zero exit or a death by signal
//! SIGKILLs every other child and exits 1.

use crate::support::*;
use nix::sys::signal::Signal;

#[test]
fn an_old_epoch_exiting_0_leaves_the_wrapper_serving() {
    let mut w = Wrapper::start(&[]);
    // Epoch 0 finished draining.
    let pids = w.epoch_0_drained();
    w.assert_logged("INFO", &format!("PID={} exited with code=0", pids[0]));
    w.assert_logged("INFO", "got SIGCHLD");
    w.wait_gone(pids[0]);
    // Let the wrapper finish with that SIGCHLD before judging.
    w.wait_idle();
    assert!(
        w.is_running(),
        "the wrapper exited; output:\n{}",
        w.output()
    );
    assert!(running(pids[1]), "epoch 1 was stopped");
    assert_eq!(w.report(1).count("term"), 0, "epoch 1 was signalled");
    w.assert_not_logged("exiting due to lack of child processes");
    w.assert_not_logged("Due to abnormal exit, force killing all child processes and exiting");
    // It still restarts: the next epoch is 2.
    w.signal(Signal::SIGHUP);
    w.wait_for("forking and execing new child process at epoch 2");
    w.report(2);
    w.stop();
}

#[test]
fn the_last_child_exiting_0_ends_the_wrapper_with_0() {
    let mut w = Wrapper::start_env(&[], &[("EXIT_AT_START", "0")]);
    let pid = w.pid_of(0);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    w.assert_logged("INFO", &format!("PID={pid} exited with code=0"));
    w.assert_logged("WARNING", "exiting due to lack of child processes");
    w.assert_not_logged("Due to abnormal exit, force killing all child processes and exiting");
    assert!(!exists(pid));
}

#[test]
fn every_epoch_exiting_0_in_turn_ends_the_wrapper_with_0() {
    let mut w = Wrapper::start(&[]);
    let pids = w.epoch_0_drained();
    w.wait_idle();
    assert!(w.is_running(), "exited with a child left:\n{}", w.output());
    signal_pid(pids[1], Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    w.assert_logged("INFO", &format!("PID={} exited with code=0", pids[1]));
    w.assert_logged("WARNING", "exiting due to lack of child processes");
    w.assert_no_children_left();
}

/// After the child `pids[victim]` failed (logged as "PID=<pid> `outcome`"):
/// the wrapper SIGKILLed every other child (they saw no SIGTERM), reaped
/// them, and exited 1.
fn assert_teardown(w: &mut Wrapper, pids: &[i32], victim: usize, outcome: &str) {
    let others: Vec<i32> = (pids.iter().enumerate())
        .filter(|(i, _)| *i != victim)
        .map(|(_, pid)| *pid)
        .collect();
    let (victim, logged) = (pids[victim], format!("PID={} {outcome}", pids[victim]));
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    // Reaped before the wrapper exited, so already gone now.
    for pid in &others {
        assert!(
            !running(*pid),
            "PID={pid} still ran when the wrapper exited"
        );
    }
    w.assert_logged("WARNING", &logged);
    w.assert_logged(
        "WARNING",
        "Due to abnormal exit, force killing all child processes and exiting",
    );
    for pid in &others {
        w.assert_logged("WARNING", &format!("force killing PID={pid}"));
        w.assert_not_logged(&format!("sending TERM to PID={pid}"));
    }
    w.assert_not_logged(&format!("force killing PID={victim}"));
    for epoch in 0..others.len() as u32 + 1 {
        let report = w.report(epoch);
        if report.pid() != Some(victim) {
            assert_eq!(report.count("term"), 0, "SIGTERMed, not SIGKILLed");
        }
    }
    w.assert_not_logged("all children exited cleanly");
    w.assert_no_children_left();
}

#[test]
fn a_new_epoch_exiting_non_zero_takes_everything_down() {
    let mut w = Wrapper::start_env(&[], &[("FAIL_EPOCH", "1")]);
    let first = w.first_child();
    w.signal(Signal::SIGHUP);
    let crashed = w.pid_of(1);
    assert_teardown(&mut w, &[first, crashed], 1, "exited with code=3");
}

#[test]
fn an_old_epoch_exiting_non_zero_takes_everything_down() {
    let mut w = Wrapper::start_env(&[], &[("TERM_EXIT", "4")]);
    let pids = w.start_epochs(2);
    signal_pid(pids[0], Signal::SIGTERM);
    assert_teardown(&mut w, &pids, 0, "exited with code=4");
}

#[test]
fn a_child_killed_by_sigsegv_takes_everything_down() {
    let mut w = Wrapper::start_with(&[], REPORTER, no_core_dumps);
    let pids = w.start_epochs(2);
    signal_pid(pids[1], Signal::SIGSEGV);
    assert_teardown(&mut w, &pids, 1, "was killed with signal=11");
}

#[test]
fn a_child_killed_by_sigkill_takes_everything_down() {
    let mut w = Wrapper::start(&[]);
    let pids = w.start_epochs(1);
    signal_pid(pids[1], Signal::SIGKILL);
    assert_teardown(&mut w, &pids, 1, "was killed with signal=9");
}
