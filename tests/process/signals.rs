//! Signals outside shutdown: SIGUSR1 fan-out, no signal to a reaped pid, a
//! storm of SIGHUPs, and signals the wrapper's own parent left ignored.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;

use crate::support::*;
use nix::sys::signal::Signal;

#[test]
fn sigusr1_reaches_every_live_child_exactly_once() {
    let mut w = Wrapper::start(&[]);
    let pids = w.start_epochs(2);
    w.signal(Signal::SIGUSR1);
    for (epoch, pid) in pids.iter().enumerate() {
        w.wait_for(&format!("sending SIGUSR1 to PID={pid}"));
        w.wait_report_event(epoch as u32, "usr1", 1);
    }
    // The wrapper itself survived SIGUSR1 (its default action is to die).
    assert!(w.is_running(), "the wrapper died of SIGUSR1");
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    for epoch in 0..=2 {
        assert_eq!(
            w.report(epoch).count("usr1"),
            1,
            "epoch {epoch} did not get exactly one SIGUSR1"
        );
    }
    assert_eq!(w.messages_starting("sending SIGUSR1 to PID=").len(), 3);
    w.assert_no_children_left();
}

#[test]
fn a_reaped_child_is_never_signalled_again() {
    let mut w = Wrapper::start(&[]);
    // Epoch 0 finishes draining (exits 0) by itself.
    let pids = w.epoch_0_drained();
    w.signal(Signal::SIGUSR1);
    w.wait_for(&format!("sending SIGUSR1 to PID={}", pids[1]));
    w.wait_report_event(1, "usr1", 1);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    assert_eq!(
        w.messages_starting("sending SIGUSR1 to PID="),
        vec![format!("sending SIGUSR1 to PID={}", pids[1])]
    );
    assert_eq!(
        w.messages_starting("sending TERM to PID="),
        vec![format!("sending TERM to PID={}", pids[1])]
    );
    w.assert_no_children_left();
}

/// A light child for the storm: reports its pid, then odd epochs exit 0 at
/// once (so that the wrapper has exits to reap while it is flooded) and even
/// ones become a single `sleep` process.
const STORM_CHILD: &str = r#"#!/bin/sh
echo "pid=$$" > "$REPORT_DIR/epoch-$RESTART_EPOCH"
case "$RESTART_EPOCH" in *[13579]) exit 0 ;; esac
exec sleep 1000
"#;

#[test]
fn a_storm_of_sighups_gives_contiguous_epochs_and_leaves_no_zombie() {
    let mut w = Wrapper::start_with(&[], STORM_CHILD, |_| {});
    w.wait_for_text("forked new child process with PID=");
    // As fast as possible: the kernel folds most of these into one.
    for _ in 0..400 {
        w.signal(Signal::SIGHUP);
    }
    // Then 300 more, each as soon as the wrapper has taken the previous one
    // off its queue, so that every one arrives while it is busy forking.
    let hup = 1u64 << (Signal::SIGHUP as i32 - 1);
    for _ in 0..300 {
        let end = std::time::Instant::now() + DEADLINE;
        while pending_signals(w.pid) & hup != 0 {
            assert!(std::time::Instant::now() < end, "SIGHUP never taken");
            std::thread::yield_now();
        }
        w.signal(Signal::SIGHUP);
    }
    // Every SIGHUP has been handled once the wrapper sleeps with nothing
    // pending.
    w.wait_idle();
    assert!(w.is_running(), "the wrapper did not survive the storm");

    let forks = w.messages_starting("forking and execing new child process at epoch ");
    let last = forks.len() as u32 - 1;
    let expected: Vec<String> = (0..=last)
        .map(|k| format!("forking and execing new child process at epoch {k}"))
        .collect();
    assert_eq!(forks, expected, "epochs not contiguous");
    assert!(last >= 300, "the storm started only {last} epochs");
    assert_eq!(
        w.count("got SIGHUP"),
        last as usize,
        "each handled SIGHUP must start exactly one epoch"
    );
    assert_eq!(
        w.messages_starting("forked new child process with PID=")
            .len(),
        last as usize + 1
    );

    // One report per started epoch, no gap, no extra, all distinct pids.
    let mut pids = BTreeSet::new();
    for epoch in 0..=last {
        let path = w.path().join(format!("epoch-{epoch}"));
        assert!(
            wait_until(DEADLINE, || Report::read(&path).pid().is_some()),
            "epoch {epoch} never reported"
        );
        assert!(pids.insert(w.pid_of(epoch)), "epoch {epoch}: pid reused");
    }
    let files: BTreeSet<u32> = fs::read_dir(w.path())
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("epoch-")?.parse().ok())
        .collect();
    assert_eq!(files, (0..=last).collect::<BTreeSet<u32>>());

    // Every odd epoch exited 0 and was reaped: no zombie under the wrapper.
    let odd = (0..=last).filter(|k| k % 2 == 1).count();
    let settled = wait_until(DEADLINE, || {
        w.messages_starting("PID=")
            .iter()
            .filter(|m| m.ends_with(" exited with code=0"))
            .count()
            == odd
            && zombie_children(w.pid).is_empty()
    });
    assert!(
        settled,
        "zombies left: {:?}; output:\n{}",
        zombie_children(w.pid),
        w.output()
    );
    for epoch in (1..=last).step_by(2) {
        assert!(!exists(w.pid_of(epoch)), "epoch {epoch} was not reaped");
    }
    assert!(w.is_running(), "the wrapper exited after the storm");

    w.stop_cleanly();
}

#[test]
fn signals_the_parent_left_ignored_are_still_handled() {
    // `nohup hot-restarter start.sh` starts the wrapper with SIGHUP ignored;
    // a careless supervisor may ignore more.
    let mut w = Wrapper::start_with(&[], REPORTER, |cmd| {
        // SAFETY: signal() is async-signal-safe; this runs in the forked
        // child just before exec.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGHUP, libc::SIGUSR1, libc::SIGTERM, libc::SIGINT] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                Ok(())
            });
        }
    });
    let pids = w.start_epochs(1);
    w.signal(Signal::SIGUSR1);
    w.wait_for(&format!("sending SIGUSR1 to PID={}", pids[1]));
    w.wait_report_event(1, "usr1", 1);
    w.stop_cleanly();
}

#[test]
fn a_wrapper_started_with_sigchld_ignored_still_sees_its_children_exit() {
    // An ignored SIGCHLD survives execve, and with it the kernel reaps the
    // children itself: waitpid finds nothing. The Python wrapper installs a
    // SIGCHLD handler, which undoes the inherited SIG_IGN.
    let mut w = Wrapper::start_with(&[], REPORTER, |cmd| {
        cmd.env("EXIT_AT_START", "0");
        // SAFETY: signal() is async-signal-safe; this runs in the forked
        // child just before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGCHLD, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    let pid = w.pid_of(0);
    w.wait_for(&format!("PID={pid} exited with code=0"));
    w.wait_for("exiting due to lack of child processes");
    assert_eq!(w.exit_code(), 0, "{}", w.output());
}
