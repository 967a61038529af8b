//! Processes that are not the wrapper's epochs: orphans re-parented to it
//! (with --subreaper) are reaped silently and never change the outcome; and
//! no child outlives a wrapper that is SIGKILLed.

use std::fs;
use std::time::Duration;

use crate::components::*;
use crate::support::*;
use nix::sys::signal::Signal;

/// A start script that first leaves an orphan behind: a grandchild whose
/// parent (a subshell) exits at once. The orphan writes its pid to
/// `$REPORT_DIR/orphan`, waits for `$REPORT_DIR/go`, then exits 5. Then the
/// usual reporter runs. The orphan lets go of stdout and stderr, which the
/// harness reads until every writer has closed them.
fn orphan_maker() -> String {
    let orphan = r#"( sh -c 'echo $$ > "$REPORT_DIR/orphan.tmp"; mv "$REPORT_DIR/orphan.tmp" "$REPORT_DIR/orphan"; while [ ! -e "$REPORT_DIR/go" ]; do sleep 0.01; done; exit 5' </dev/null >/dev/null 2>&1 & )"#;
    format!("#!/bin/sh\n{orphan}\n{REPORTER}")
}

/// Start the wrapper with --subreaper on the orphan maker; returns it, the
/// epoch 0 pid, and the orphan (re-parented to the wrapper by then).
fn with_orphan() -> (Wrapper, i32, ProcessGuard) {
    let w = Wrapper::start_with(&["--subreaper"], &orphan_maker(), |_| {});
    let child = w.first_child();
    let path = w.path().join("orphan");
    assert!(
        wait_until(DEADLINE, || path.exists()),
        "no orphan; output:\n{}",
        w.output()
    );
    let orphan: i32 = fs::read_to_string(&path).unwrap().trim().parse().unwrap();
    let guard = ProcessGuard::new(orphan);
    // Without this the test would prove nothing.
    assert!(
        wait_until(DEADLINE, || ppid_of(orphan) == Some(w.pid)),
        "PID={orphan} was not re-parented to the wrapper (ppid {:?})",
        ppid_of(orphan)
    );
    (w, child, guard)
}

/// The orphan `pid` is gone: the wrapper reaped it without a word about its
/// exit, and carries on serving.
fn assert_reaped_silently(w: &mut Wrapper, pid: i32, child: i32) {
    w.wait_gone(pid);
    w.wait_idle();
    // A killed orphan's own child (its `sleep`) is orphaned in turn and is
    // a zombie for the moment until the wrapper reaps it: none may remain.
    assert!(
        wait_until(DEADLINE, || zombie_children(w.pid).is_empty()),
        "zombies left: {:?}",
        zombie_children(w.pid)
    );
    let about: Vec<String> = w
        .log_lines()
        .into_iter()
        .filter(|l| l.contains(&format!("PID={pid} ")) && level_of(l) != "DEBUG")
        .collect();
    assert!(about.is_empty(), "the orphan's exit was judged: {about:?}");
    w.assert_not_logged("Due to abnormal exit, force killing all child processes and exiting");
    w.assert_not_logged("exiting due to lack of child processes");
    assert!(w.is_running(), "the wrapper exited:\n{}", w.output());
    assert!(running(child), "epoch 0 was stopped");
    assert_eq!(w.report(0).count("term"), 0, "epoch 0 was signalled");

    w.stop_cleanly();
}

#[test]
fn an_orphan_exiting_non_zero_is_reaped_silently() {
    let (mut w, child, orphan) = with_orphan();
    fs::write(w.path().join("go"), "").unwrap();
    assert_reaped_silently(&mut w, orphan.pid, child);
    assert!(!w.output().contains("exited with code=5"), "{}", w.output());
}

#[test]
fn an_orphan_killed_by_a_signal_is_reaped_silently() {
    let (mut w, child, orphan) = with_orphan();
    signal_pid(orphan.pid, Signal::SIGKILL);
    assert_reaped_silently(&mut w, orphan.pid, child);
    assert!(
        !w.output().contains("was killed with signal=9"),
        "{}",
        w.output()
    );
}

#[test]
fn a_live_orphan_does_not_hold_up_shutdown() {
    let (mut w, _child, orphan) = with_orphan();
    w.signal(Signal::SIGTERM);
    // Not the 30 s default term wait, and not exit 1 for an unkillable
    // "child": the orphan is none of the wrapper's business.
    let status = w.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", w.output());
    w.assert_logged("INFO", "all children exited cleanly");
    w.assert_not_logged(&format!("sending TERM to PID={}", orphan.pid));
    w.assert_no_children_left();
}

#[test]
fn a_sigkilled_wrapper_takes_every_child_with_it() {
    let mut w = Wrapper::start(&[]);
    let pids = w.start_epochs(2);
    w.signal(Signal::SIGKILL);
    assert!(wait_until(DEADLINE, || !w.is_running()), "still running");
    for (epoch, pid) in pids.iter().enumerate() {
        assert!(
            wait_until(DEADLINE, || !running(*pid)),
            "epoch {epoch} (PID={pid}) outlived the wrapper"
        );
        // It got SIGTERM (its parent-death signal), not just any death.
        w.wait_report_event(epoch as u32, "term", 1);
    }
    let status = w.wait_exit(DEADLINE);
    assert_eq!(status.code(), None, "the wrapper was not killed");
}

/// As PID 1 (a container entrypoint), orphans come to the wrapper without
/// --subreaper. Run it as the init of a new PID namespace. The scripts
/// report host pids (from the host's /proc), and no `epoch-N` files, so
/// that the harness never kills a pid of the other namespace.
const PID1_CHILD: &str = r#"#!/bin/sh
read me rest < /proc/self/stat
echo "$me" > "$REPORT_DIR/child.tmp"; mv "$REPORT_DIR/child.tmp" "$REPORT_DIR/child"
( sh -c 'read me rest < /proc/self/stat; echo "$me" > "$REPORT_DIR/orphan.tmp"; mv "$REPORT_DIR/orphan.tmp" "$REPORT_DIR/orphan"; while [ ! -e "$REPORT_DIR/go" ]; do sleep 0.01; done; exit 5' </dev/null >/dev/null 2>&1 & )
trap 'exit 0' TERM
while :; do sleep 0.02; done
"#;

#[needs(pid_namespace)]
#[test]
fn as_pid_1_orphans_are_reaped_silently() {
    need_tool("unshare");
    let can = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        can,
        "no new PID namespace here (needs CAP_SYS_ADMIN); {}",
        why_required()
    );
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", PID1_CHILD);
    let mut cmd = std::process::Command::new("unshare");
    // --kill-child: if unshare dies (the harness kills it when the test
    // ends), the wrapper gets SIGKILL and the whole namespace goes with it.
    cmd.args(["--pid", "--fork", "--kill-child", BIN, "start.sh"])
        .current_dir(dir.path())
        .env("REPORT_DIR", dir.path())
        .env_remove("RESTART_EPOCH")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut w = Wrapper::spawn(dir, cmd);
    let line = w.wait_for_text("forked new child process with PID=");
    assert_eq!(check_log_line(&line, 1), Ok(()), "not PID 1: {line}");
    let mut wrapper = 0;
    assert!(
        wait_until(DEADLINE, || {
            wrapper = children_of(w.pid).first().copied().unwrap_or(0);
            wrapper != 0
        }),
        "no wrapper under unshare"
    );
    let read_pid = |name: &str| -> i32 {
        let path = w.path().join(name);
        assert!(wait_until(DEADLINE, || path.exists()), "no {name} pid");
        fs::read_to_string(&path).unwrap().trim().parse().unwrap()
    };
    let child = read_pid("child");
    let orphan = ProcessGuard::new(read_pid("orphan"));
    assert!(
        wait_until(DEADLINE, || ppid_of(orphan.pid) == Some(wrapper)),
        "the orphan was not re-parented to the wrapper"
    );
    fs::write(w.path().join("go"), "").unwrap();
    w.wait_gone(orphan.pid);
    assert!(wait_until(DEADLINE, || is_idle(wrapper)), "never idle");
    assert_eq!(zombie_children(wrapper), Vec::<i32>::new(), "zombies left");
    assert!(!w.output().contains("exited with code=5"), "{}", w.output());
    w.assert_not_logged("Due to abnormal exit, force killing all child processes and exiting");
    assert!(running(child), "the child was stopped");

    signal_pid(wrapper, Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    w.assert_logged("INFO", "all children exited cleanly");
    assert!(wait_until(DEADLINE, || !running(child)), "child left");
}
