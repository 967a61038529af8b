//! `hot-restarter-ctl check` through a wrapper's life: 1 while the first
//! epoch is not ready, 0 once it is and while a slow reload runs, 0 after a
//! failed reload that --keep-serving survived, 1 when the serving child is
//! gone, 1 while stopping, 3 once the wrapper has exited.

use std::process::Output;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::harness::{BIN, Wrapper, shown, wait_until};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `out` is an exit `code` with `text` on stderr.
#[track_caller]
fn fails_with(out: &Output, code: i32, text: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", shown(out));
    assert!(stderr(out).contains(text), "{}", shown(out));
}

/// Wait until `check` exits `code` with `text` in its output.
fn wait_check(w: &Wrapper, code: i32, text: &str) -> Output {
    let mut last = None;
    let ok = wait_until(|| {
        let out = w.ctl(&["check", "--timeout", "5"]);
        let hit = out.status.code() == Some(code)
            && (stdout(&out).contains(text) || stderr(&out).contains(text));
        last = Some(out);
        hit
    });
    let last = last.unwrap();
    assert!(
        ok,
        "check never gave {code} with {text:?}: last {}; {}",
        shown(&last),
        w.output()
    );
    last
}

/// The state the wrapper reports for epoch `epoch`.
fn state_of(w: &Wrapper, epoch: u32) -> Option<String> {
    let out = w.ctl(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let children = status["children"].as_array()?;
    let child = children.iter().find(|c| c["epoch"] == epoch)?;
    Some(child["state"].as_str()?.to_string())
}

#[test]
fn check_follows_the_wrapper_from_start_to_stop() {
    let args = [
        "--control-socket",
        "ctl.sock",
        "--ready-check",
        "ready.sh",
        "--ready-interval",
        "0.02",
        "--keep-serving",
        "--term-wait",
        "60",
        "start.sh",
    ];
    let mut w = Wrapper::start(BIN, &args, &[]);

    // The first epoch runs but is not ready: not serving, and it says why.
    let out = wait_check(&w, 1, "epoch 0 generation 0");
    let why = stderr(&out);
    assert!(
        why.starts_with(
            "hot-restarter-ctl: not serving: no ready child: epoch 0 generation 0 (PID="
        ),
        "{why}"
    );
    assert!(why.contains("is not ready yet"), "{why}");
    let epoch0 = w.epoch_pid(0);

    w.touch("ready-0");
    let out = wait_check(&w, 0, "serves");
    assert_eq!(
        stdout(&out),
        format!("epoch 0 generation 0 (PID={epoch0}) serves\n")
    );
    assert_eq!(stderr(&out), "");

    // A slow reload: epoch 1 starts and is not ready; epoch 0 serves on.
    let out = w.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        wait_until(|| state_of(&w, 1).as_deref() == Some("starting")),
        "epoch 1 never started; {}",
        w.output()
    );
    let out = w.ctl(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(
        stdout(&out),
        format!("epoch 0 generation 0 (PID={epoch0}) serves\n")
    );
    w.touch("ready-1");
    let out = wait_check(&w, 0, "epoch 1 generation 0");
    let epoch1 = w.epoch_pid(1);
    assert_eq!(
        stdout(&out),
        format!("epoch 1 generation 0 (PID={epoch1}) serves\n")
    );

    // A reload whose epoch fails at once: --keep-serving keeps epoch 1.
    w.touch("fail-2");
    let out = w.ctl(&["reload", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let out = w.ctl(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}; {}",
        shown(&out),
        w.output()
    );
    assert_eq!(
        stdout(&out),
        format!("epoch 1 generation 0 (PID={epoch1}) serves\n")
    );

    // The serving child dies; only the draining epoch 0 is left.
    kill(Pid::from_raw(epoch1), Signal::SIGKILL).unwrap();
    let out = wait_check(&w, 1, "only draining");
    assert_eq!(
        stderr(&out),
        "hot-restarter-ctl: not serving: no ready child: only draining ones run\n"
    );

    // Stopping: epoch 0 takes its time over SIGTERM.
    let out = w.ctl(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let out = wait_check(&w, 1, "stopping");
    assert_eq!(
        stderr(&out),
        "hot-restarter-ctl: not serving: hot-restarter is stopping (shutting-down)\n"
    );
    w.touch("may-exit");
    // (Its exit code is another matter: tests/ of the core judge it.)
    w.exit_code();
    let out = w.ctl(&["check"]);
    fails_with(&out, 3, "not running");
}

#[test]
fn check_without_a_socket_is_a_usage_error_and_takes_a_timeout() {
    let out = std::process::Command::new(super::harness::CTL)
        .arg("check")
        .env_remove("HOT_RESTARTER_CONTROL_SOCKET")
        .output()
        .unwrap();
    fails_with(&out, 2, "no control socket");
    let out = std::process::Command::new(super::harness::CTL)
        .args(["check", "--timeout", "soon", "--socket", "x"])
        .output()
        .unwrap();
    fails_with(&out, 2, "'soon' is not a number of seconds");
}
