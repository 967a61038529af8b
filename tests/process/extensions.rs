//! The opt-in flags with fixture scripts: --preflight, --keep-serving,
//! --ready-check. Files in the test dir steer the fixtures: `fail` makes a
//! new epoch exit 3 at start, `broken` fails the preflight, `slow` makes it
//! hang, `ready-N` makes epoch N pass the ready check.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// start.sh: exits 3 while `fail` exists, else becomes the reporter.
const START: &str = r#"#!/bin/sh
if [ -e "$REPORT_DIR/fail" ]; then exit 3; fi
exec "$REPORT_DIR/reporter.sh" "$@"
"#;

const PREFLIGHT: &str = r#"#!/bin/sh
echo "$RESTART_EPOCH" >> "$REPORT_DIR/preflight-epochs"
if [ -e "$REPORT_DIR/slow" ]; then exec sleep 30; fi
[ ! -e "$REPORT_DIR/broken" ]
"#;

const READY: &str = r#"#!/bin/sh
echo checked
[ -e "$REPORT_DIR/ready-$RESTART_EPOCH" ]
"#;

/// Start the wrapper with `flags` on START, with the preflight and ready
/// scripts written beside it.
fn start(flags: &[&str]) -> Wrapper {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "reporter.sh", REPORTER);
    script(dir.path(), "start.sh", START);
    script(dir.path(), "preflight.sh", PREFLIGHT);
    script(dir.path(), "ready.sh", READY);
    script(dir.path(), "pf.sh", PREFLIGHT_WITH_WORKER);
    let mut cmd = command(dir.path());
    cmd.args(flags).arg("start.sh");
    let w = Wrapper::spawn(dir, cmd);
    w.report(0);
    w
}

fn touch(w: &Wrapper, name: &str) {
    fs::write(w.path().join(name), "").unwrap();
}

fn remove(w: &Wrapper, name: &str) {
    fs::remove_file(w.path().join(name)).unwrap();
}

/// Make epoch 0 pass the ready check, wait until the wrapper says so, then
/// SIGHUP: returns the pids of epoch 0 (ready) and epoch 1 (not ready).
fn ready_then_restart(w: &Wrapper) -> (i32, i32) {
    touch(w, "ready-0");
    let epoch0 = w.report(0).pid().unwrap();
    w.wait_for_text(&format!("epoch 0 (PID={epoch0}) is ready after"));
    w.signal(Signal::SIGHUP);
    (epoch0, w.report(1).pid().unwrap())
}

fn stop(mut w: Wrapper) {
    w.stop();
}

#[test]
fn a_failed_preflight_skips_the_restart_and_keeps_the_epoch_number() {
    let w = start(&["--preflight", "preflight.sh"]);
    let epoch0 = w.report(0).pid().unwrap();
    touch(&w, "broken");
    w.signal(Signal::SIGHUP);
    w.wait_for(&format!(
        "restart to epoch 1 skipped because its preflight failed; \
         epoch 0 (PID={epoch0}) keeps serving"
    ));
    assert!(
        !w.path().join("epoch-1").exists(),
        "an epoch started anyway"
    );
    assert!(running(epoch0));
    assert_eq!(
        w.count("forking and execing new child process at epoch 1"),
        0
    );

    remove(&w, "broken");
    w.signal(Signal::SIGHUP);
    w.wait_for_text("preflight for epoch 1 passed in");
    let epoch1 = w.report(1);
    assert_eq!(epoch1.get("epoch").as_deref(), Some("1"));
    // The preflight saw the would-be epoch both times: 1 was not used up.
    let seen = fs::read_to_string(w.path().join("preflight-epochs")).unwrap();
    assert_eq!(seen, "1\n1\n");
    // The first start never runs the preflight.
    assert_eq!(w.count("running preflight preflight.sh for epoch 0"), 0);
    stop(w);
}

#[test]
fn a_preflight_that_hangs_is_killed_and_the_restart_skipped() {
    let w = start(&["--preflight", "preflight.sh", "--preflight-timeout", "0.3"]);
    let epoch0 = w.report(0).pid().unwrap();
    touch(&w, "slow");
    w.signal(Signal::SIGHUP);
    w.wait_for_text("preflight for epoch 1 (PID=");
    let line = w.wait_for_text("timed out after");
    assert!(line.contains("timed out after 0.3 s"), "{line}");
    w.wait_for_text("restart to epoch 1 skipped because its preflight timed out");
    assert!(running(epoch0));
    assert!(!w.path().join("epoch-1").exists());
    remove(&w, "slow");
    w.signal(Signal::SIGHUP);
    assert_eq!(w.report(1).get("epoch").as_deref(), Some("1"));
    // The killed preflight was reaped: no zombie under the wrapper.
    assert!(wait_until(DEADLINE, || zombie_children(w.pid).is_empty()));
    stop(w);
}

#[test]
fn sighups_during_a_preflight_are_held_and_coalesced() {
    let w = start(&["--preflight", "preflight.sh", "--preflight-timeout", "0.5"]);
    touch(&w, "slow");
    w.signal(Signal::SIGHUP);
    w.wait_for("running preflight preflight.sh for epoch 1");
    w.signal(Signal::SIGHUP);
    w.wait_for("holding SIGHUP until the preflight for epoch 1 is done");
    remove(&w, "slow");
    // The slow preflight times out; the held SIGHUP then runs a new one.
    w.wait_for("starting the held restart");
    w.wait_for_text("preflight for epoch 1 passed in");
    assert_eq!(w.report(1).get("epoch").as_deref(), Some("1"));
    stop(w);
}

#[test]
fn an_unusable_preflight_is_refused_before_any_child_starts() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    cmd.args(["--preflight", "no-such-preflight.sh", "start.sh"]);
    let mut w = Wrapper::spawn(dir, cmd);
    w.expect_refused_at_start(2, "a missing preflight");
    let line = w.wait_for_text("no-such-preflight.sh");
    assert!(line.contains("--preflight"), "{line}");
    assert!(line.contains("No such file or directory"), "{line}");
}

#[test]
fn keep_serving_survives_a_failed_epoch_and_reuses_its_number() {
    let w = start(&["--keep-serving"]);
    let epoch0 = w.report(0).pid().unwrap();
    touch(&w, "fail");
    w.signal(Signal::SIGHUP);
    let line = w.wait_for_text("restart to epoch 1 failed because PID=");
    assert!(line.contains("exited with code=3"), "{line}");
    assert!(
        line.contains(&format!("epoch 0 (PID={epoch0}) keeps serving")),
        "{line}"
    );
    assert!(line.contains("the next restart uses epoch 1"), "{line}");
    assert!(line.contains("(--keep-serving)"), "{line}");
    assert!(running(epoch0));
    assert!(running(w.pid));

    remove(&w, "fail");
    w.signal(Signal::SIGHUP);
    let epoch1 = w.report(1);
    assert!(running(epoch1.pid().unwrap()));
    w.wait_for_count("forking and execing new child process at epoch 1", 2);
    assert_eq!(
        w.count("forking and execing new child process at epoch 2"),
        0
    );
    assert_eq!(
        w.count("Due to abnormal exit, force killing all child processes and exiting"),
        0
    );
    stop(w);
}

#[test]
fn keep_serving_survives_a_start_script_that_cannot_be_executed() {
    let w = start(&["--keep-serving"]);
    let epoch0 = w.report(0).pid().unwrap();
    let start_sh = w.path().join("start.sh");
    fs::set_permissions(&start_sh, fs::Permissions::from_mode(0o644)).unwrap();
    w.signal(Signal::SIGHUP);
    let line = w.wait_for_text("cannot start epoch 1: cannot execute start.sh");
    assert!(line.contains("Permission denied"), "{line}");
    w.wait_for_text("restart to epoch 1 failed because its start script could not be executed");
    assert!(running(epoch0));
    fs::set_permissions(&start_sh, fs::Permissions::from_mode(0o755)).unwrap();
    w.signal(Signal::SIGHUP);
    assert_eq!(w.report(1).get("epoch").as_deref(), Some("1"));
    stop(w);
}

#[test]
fn keep_serving_exits_1_when_the_survivors_run_out_after_a_failure() {
    let mut w = start(&["--keep-serving"]);
    let epoch0 = w.report(0).pid().unwrap();
    touch(&w, "fail");
    w.signal(Signal::SIGHUP);
    w.wait_for_text("restart to epoch 1 failed because");
    // The survivor finishes by itself with code 0 (as a drained Envoy would).
    kill(Pid::from_raw(epoch0), Signal::SIGTERM).unwrap();
    w.wait_for(&format!("PID={epoch0} exited with code=0"));
    w.wait_for("exiting due to lack of child processes");
    assert_eq!(w.exit_code(), 1);
}

#[test]
fn the_ready_check_holds_and_coalesces_sighups_until_the_epoch_is_ready() {
    let w = start(&["--ready-check", "ready.sh", "--ready-interval", "0.02"]);
    let (_, epoch1) = ready_then_restart(&w);
    // Epoch 1 is not ready: a burst of SIGHUPs becomes one held restart.
    for _ in 0..10 {
        w.signal(Signal::SIGHUP);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    w.wait_for(&format!(
        "holding SIGHUP until epoch 1 (PID={epoch1}) is ready"
    ));
    assert!(
        !w.path().join("epoch-2").exists(),
        "restarted before epoch 1 was ready"
    );
    assert_eq!(
        w.count("forking and execing new child process at epoch 2"),
        0
    );
    touch(&w, "ready-1");
    w.wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
    w.wait_for("starting the held restart");
    let epoch2 = w.report(2).pid().unwrap();
    touch(&w, "ready-2");
    w.wait_for_text(&format!("epoch 2 (PID={epoch2}) is ready after"));
    // Exactly one restart came out of the burst.
    assert_eq!(
        w.count("forking and execing new child process at epoch 2"),
        1
    );
    assert_eq!(
        w.count("forking and execing new child process at epoch 3"),
        0
    );
    assert!(!w.path().join("epoch-3").exists());
    // The ready check's stdout ("checked") is not in the log.
    assert!(!w.output().contains("checked"));
    stop(w);
}

#[test]
fn an_epoch_0_that_never_gets_ready_takes_the_wrapper_down() {
    let mut w = start(&["--ready-check", "ready.sh", "--ready-timeout", "0.5"]);
    let epoch0 = w.report(0).pid().unwrap();
    w.wait_for(&format!(
        "epoch 0 (PID={epoch0}) not ready after 0.5 s, killing it"
    ));
    assert_eq!(w.exit_code(), 1);
    w.assert_no_children_left();
    assert!(zombie_children(w.pid).is_empty());
}

#[test]
fn keep_serving_with_a_ready_timeout_kills_only_the_new_epoch() {
    let w = start(&[
        "--keep-serving",
        "--ready-check",
        "ready.sh",
        "--ready-timeout",
        "0.5",
    ]);
    let (epoch0, first1) = ready_then_restart(&w);
    w.wait_for(&format!(
        "epoch 1 (PID={first1}) not ready after 0.5 s, killing it"
    ));
    w.wait_for_text("restart to epoch 1 failed because it was not ready in time");
    assert!(wait_until(DEADLINE, || !running(first1)));
    assert!(running(epoch0));
    // The killed epoch's exit decides nothing: no teardown.
    assert_eq!(
        w.count("Due to abnormal exit, force killing all child processes and exiting"),
        0
    );
    fs::remove_file(w.path().join("epoch-1")).unwrap();
    touch(&w, "ready-1");
    w.signal(Signal::SIGHUP);
    let second1 = w.report(1).pid().unwrap();
    assert_ne!(first1, second1);
    w.wait_for_text(&format!("epoch 1 (PID={second1}) is ready after"));
    stop(w);
}

#[test]
fn hold_while_draining_waits_for_the_old_epoch_to_exit() {
    let w = start(&["--hold-while-draining"]);
    let epoch0 = w.report(0).pid().unwrap();
    // One epoch alive: a restart starts at once.
    w.signal(Signal::SIGHUP);
    let epoch1 = w.report(1).pid().unwrap();
    // Epoch 0 still "drains": further SIGHUPs are held and coalesced.
    w.signal(Signal::SIGHUP);
    w.wait_for(&format!(
        "holding SIGHUP until epoch 0 (PID={epoch0}) has drained and exited"
    ));
    w.signal(Signal::SIGHUP);
    w.wait_for_text("coalescing SIGHUP into the held restart");
    assert!(
        !w.path().join("epoch-2").exists(),
        "restarted while epoch 0 drained"
    );
    // Epoch 0 finishes draining (exit 0): the held restart runs, once.
    kill(Pid::from_raw(epoch0), Signal::SIGTERM).unwrap();
    w.wait_for(&format!("PID={epoch0} exited with code=0"));
    w.wait_for("starting the held restart");
    let epoch2 = w.report(2).pid().unwrap();
    assert!(running(epoch1) && running(epoch2));
    assert_eq!(
        w.count("forking and execing new child process at epoch 2"),
        1
    );
    assert_eq!(
        w.count("forking and execing new child process at epoch 3"),
        0
    );
    stop(w);
}

#[test]
fn sigusr1_spares_an_epoch_that_is_not_ready_yet() {
    // SIGUSR1 terminates a process that has no handler yet: a new Envoy
    // still starting up must not get it (with --ready-check the wrapper
    // knows which epoch that is).
    let w = start(&["--ready-check", "ready.sh", "--ready-interval", "0.02"]);
    let (_, epoch1) = ready_then_restart(&w);
    w.signal(Signal::SIGUSR1);
    w.wait_for(&format!(
        "not sending SIGUSR1 to PID={epoch1} (epoch 1 is not ready yet)"
    ));
    w.wait_report_event(0, "usr1", 1);
    assert_eq!(w.report(1).count("usr1"), 0);
    // Once ready, it gets the next one like any other epoch.
    touch(&w, "ready-1");
    w.wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
    w.signal(Signal::SIGUSR1);
    w.wait_report_event(1, "usr1", 1);
    w.wait_report_event(0, "usr1", 2);
    stop(w);
}

#[test]
fn a_held_restart_does_not_start_when_the_last_epoch_has_gone() {
    // Epoch 0 never gets ready, a SIGHUP is held, then epoch 0 exits 0 by
    // itself: nothing is left to hot-restart from, so the wrapper exits 0
    // (as when every child exited 0) instead of starting epoch 1.
    let mut w = start(&["--ready-check", "ready.sh"]);
    let epoch0 = w.report(0).pid().unwrap();
    w.signal(Signal::SIGHUP);
    w.wait_for(&format!(
        "holding SIGHUP until epoch 0 (PID={epoch0}) is ready"
    ));
    kill(Pid::from_raw(epoch0), Signal::SIGTERM).unwrap();
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    assert_eq!(w.count("starting the held restart"), 0, "{}", w.output());
    assert!(!w.path().join("epoch-1").exists());
    w.wait_for("exiting due to lack of child processes");
}

/// A preflight that starts a worker of its own (as `sh` running
/// `envoy --mode validate` does) and waits while `hold` exists; the
/// worker's pid goes to `preflight-worker-$RESTART_EPOCH`. Finishing by
/// itself, it stops its worker; killed, it cannot: the wrapper must.
const PREFLIGHT_WITH_WORKER: &str = r#"#!/bin/sh
sleep 60 &
echo $! > "$REPORT_DIR/preflight-worker-$RESTART_EPOCH"
while [ -e "$REPORT_DIR/hold" ]; do sleep 0.02; done
kill $! 2>/dev/null
"#;

fn worker_of(w: &Wrapper, epoch: u32) -> i32 {
    let path = w.path().join(format!("preflight-worker-{epoch}"));
    assert!(wait_until(DEADLINE, || fs::read_to_string(&path)
        .is_ok_and(|t| t.ends_with('\n'))));
    fs::read_to_string(&path).unwrap().trim().parse().unwrap()
}

#[test]
fn a_timed_out_preflight_is_killed_with_what_it_started() {
    let w = start(&["--preflight", "pf.sh", "--preflight-timeout", "0.3"]);
    touch(&w, "hold");
    w.signal(Signal::SIGHUP);
    let worker = worker_of(&w, 1);
    let _guard = ProcessGuard::new(worker);
    w.wait_for_text("restart to epoch 1 skipped because its preflight timed out");
    assert!(
        wait_until(DEADLINE, || !running(worker)),
        "the preflight's own child PID={worker} survived its timeout"
    );
    stop(w);
}

#[test]
fn keep_serving_cancels_a_preflight_for_an_epoch_that_will_not_come() {
    // Epoch 1 serves; a preflight for epoch 2 runs; epoch 1 crashes. The
    // next epoch is 1 again, so the preflight for 2 is killed (with its
    // worker) and the restart is retried for epoch 1.
    let w = start(&["--keep-serving", "--preflight", "pf.sh"]);
    w.signal(Signal::SIGHUP);
    let epoch1 = w.report(1).pid().unwrap();
    touch(&w, "hold");
    w.signal(Signal::SIGHUP);
    let worker = worker_of(&w, 2);
    let _guard = ProcessGuard::new(worker);
    kill(Pid::from_raw(epoch1), Signal::SIGKILL).unwrap();
    w.wait_for("cancelled the preflight for epoch 2; the restart will be retried");
    assert!(
        wait_until(DEADLINE, || !running(worker)),
        "the cancelled preflight's worker PID={worker} survived"
    );
    w.wait_for("running preflight pf.sh for epoch 1");
    fs::remove_file(w.path().join("epoch-1")).unwrap();
    remove(&w, "hold");
    let again = w.report(1).pid().unwrap();
    assert_ne!(again, epoch1);
    assert_eq!(
        w.count("forking and execing new child process at epoch 2"),
        0
    );
    stop(w);
}

/// An interval longer than the timeout: the check runs exactly once (the
/// default 0.1 s would run it about ten times).
#[test]
fn a_ready_interval_longer_than_the_ready_timeout_runs_the_check_once() {
    let mut w = start_in(
        |dir| {
            script(dir, "start.sh", REPORTER);
            script(
                dir,
                "count.sh",
                "#!/bin/sh\necho run >> \"$REPORT_DIR/checks\"\nexit 1\n",
            );
        },
        &[
            "--ready-interval",
            "3600",
            "--ready-check",
            "count.sh",
            "--ready-timeout",
            "1",
            "start.sh",
        ],
        |_| {},
    );
    w.wait_for_text("not ready after 1 s, killing it");
    assert_eq!(w.exit_code(), 1);
    assert_eq!(
        fs::read_to_string(w.path().join("checks")).unwrap(),
        "run\n"
    );
}

// ----- what a helper leaves behind ------------------------------------------

/// A helper (ready check or preflight) that leaves a background process
/// behind and passes.
const LEAKY_HELPER: &str = r#"#!/bin/sh
sleep 1000 &
echo $! >> "$REPORT_DIR/leaked"
exit 0
"#;

/// The wrapper on the reporter with `flag leaky.sh`.
fn start_leaky(flag: &str) -> Wrapper {
    start_in(
        |dir| {
            script(dir, "start.sh", REPORTER);
            script(dir, "leaky.sh", LEAKY_HELPER);
        },
        &[flag, "leaky.sh", "start.sh"],
        |_| {},
    )
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
    let mut w = start_leaky("--ready-check");
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
    let mut w = start_leaky("--preflight");
    w.report(0);
    w.signal(Signal::SIGHUP);
    let epoch1 = w.report(1).pid().unwrap();
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
