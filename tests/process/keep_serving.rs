//! --keep-serving and the exit code: a child that failed during the run
//! makes the final exit 1 even when the last child then ends cleanly,
//! whichever epoch failed first; and children reaped in one batch are
//! never named as the epoch that keeps serving.

use std::fs;

use crate::support::*;
use nix::sys::signal::Signal;

/// The wrapper with --keep-serving on the reporter, restarted once:
/// returns it with the pids of epochs 0 and 1.
fn two_epochs() -> (Wrapper, i32, i32) {
    let w = Wrapper::start(&["--keep-serving"]);
    let epoch0 = w.report(0).pid().unwrap();
    let epoch1 = restart_to(&w, 1);
    (w, epoch0, epoch1)
}

/// Restart to `epoch` and return its pid.
fn restart_to(w: &Wrapper, epoch: u32) -> i32 {
    w.signal(Signal::SIGHUP);
    w.report(epoch).pid().unwrap()
}

#[test]
fn keep_serving_exits_1_when_an_old_epoch_failed_before_the_new_one_ended_cleanly() {
    let (mut w, epoch0, epoch1) = two_epochs();
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
    let (mut w, epoch0, epoch1) = two_epochs();
    signal_pid(epoch1, Signal::SIGKILL);
    w.wait_for_text("restart to epoch 1 failed because");
    signal_pid(epoch0, Signal::SIGTERM);
    w.wait_for(&format!("PID={epoch0} exited with code=0"));
    assert_eq!(w.exit_code(), 1, "a child failed during the run");
    w.assert_no_children_left();
}

#[test]
fn children_that_exit_in_one_batch_are_never_named_as_serving() {
    let (mut w, epoch0, epoch1) = two_epochs();
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
