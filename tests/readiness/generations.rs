//! Generations and handoff with stand-in admins (no Envoy needed): what
//! each child learns of its generation, SIGUSR2 and `handoff` moving to a
//! new generation and stopping the old one, a new generation that fails,
//! a drain the old admin refuses, `--envoy-bin` choosing a handoff, and
//! the flag checks. Real Envoy under load is in tests/envoy/handoff.rs.

use crate::admin_lab::{FakeAdmin, Lab, Mode, initializing, live};
use crate::support::*;
use nix::sys::signal::Signal;

#[test]
fn sigusr2_hands_off_to_a_new_generation_and_stops_the_old_one() {
    let mut lab = Lab::start(&[], &[]);
    let old = lab.pid(0, 0);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={old}) is ready after"));
    assert_eq!(lab.env_of(0, 0), format!("0 0 {}", lab.slot0.addr));

    lab.w.signal(Signal::SIGUSR2);
    let new = lab.pid(1, 0);
    assert_eq!(lab.env_of(1, 0), format!("1 1 {}", lab.slot1.addr));
    lab.w
        .wait_for_text(&format!("generation 1 epoch 0 (PID={new}) is LIVE after"));
    lab.w
        .wait_for_text("generation 0 is draining its listeners");
    let done = lab.w.wait_for_text("handoff from generation 0 done in");
    assert!(
        done.contains(&format!("generation 1 epoch 0 (PID={new}) serves")),
        "{done}"
    );
    assert!(!running(old), "the old generation still runs");
    assert!(running(new));
    // The drain went to the old generation's admin, never to the new one.
    assert!(
        lab.slot0
            .request_lines()
            .iter()
            .any(|l| l == "POST /drain_listeners?graceful HTTP/1.1")
    );
    assert!(
        !lab.slot1
            .request_lines()
            .iter()
            .any(|l| l.starts_with("POST"))
    );

    // Hot restarts go on inside the new generation: epoch 1 on slot 1.
    lab.slot1.set(live(1));
    lab.w.signal(Signal::SIGHUP);
    let next = lab.pid(1, 1);
    assert_eq!(lab.env_of(1, 1), format!("1 1 {}", lab.slot1.addr));
    lab.w
        .wait_for_text(&format!("epoch 1 (PID={next}) is ready after"));
    lab.w.stop();
}

#[test]
fn a_new_generation_that_fails_leaves_the_old_one_serving() {
    let mut lab = Lab::start(&[], &[("FAIL_SLOT", "1")]);
    let old = lab.pid(0, 0);
    lab.w.wait_for_text("is ready after");
    // Nothing answers LIVE for the new generation: it dies first.
    lab.slot1.set(initializing(0));
    lab.w.signal(Signal::SIGUSR2);
    let line = lab
        .w
        .wait_for_text("handoff to generation 1 failed because");
    assert!(line.contains("HOT_RESTARTER_SLOT"), "{line}");
    assert!(
        line.contains(&format!("generation 0 epoch 0 (PID={old}) keeps serving")),
        "{line}"
    );
    assert!(running(old));
    assert!(running(lab.w.pid));
    assert!(
        !lab.slot0
            .request_lines()
            .iter()
            .any(|l| l.starts_with("POST")),
        "the old generation was drained"
    );
    lab.w.stop();
}

#[test]
fn an_old_admin_that_refuses_the_drain_is_stopped_with_a_warning() {
    let mut lab = Lab::start(&[], &[]);
    let old = lab.pid(0, 0);
    lab.w.wait_for_text("is ready after");
    // The old generation's admin goes silent: the drain request times out.
    lab.slot0.set(Mode::Silent);
    lab.w.signal(Signal::SIGUSR2);
    let line = lab.w.wait_for_text("did not take the drain");
    assert!(
        line.contains("requests in flight on it may be cut"),
        "{line}"
    );
    lab.w.wait_for_text("handoff from generation 0 done in");
    assert!(!running(old));
    lab.w.signal(Signal::SIGTERM);
    assert_eq!(lab.w.exit_code(), 0);
}

#[test]
fn envoy_bin_with_another_hot_restart_version_turns_a_reload_into_a_handoff() {
    let dir = tempfile::tempdir().unwrap();
    let other = script(dir.path(), "envoy-new", "#!/bin/sh\necho 12.1 >&2\n");
    let same = script(dir.path(), "envoy-same", "#!/bin/sh\necho 11.104 >&2\n");
    for (bin, handoff) in [(&same, false), (&other, true)] {
        let bin = bin.display().to_string();
        let mut lab = Lab::start(&["--envoy-bin", &bin], &[]);
        lab.w.wait_for_text("is ready after");
        lab.slot0.set(live(1));
        lab.w.signal(Signal::SIGHUP);
        if handoff {
            let line = lab
                .w
                .wait_for_text("handing off from generation 0 to generation 1");
            assert!(line.contains("12.1"), "{line}");
            assert!(line.contains("11.104"), "{line}");
            lab.w.wait_for_text("handoff from generation 0 done in");
        } else {
            let epoch1 = lab.pid(0, 1);
            lab.w
                .wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
            assert!(!lab.w.output().contains("handing off"));
        }
        lab.w.stop();
    }
}

#[test]
fn without_handoff_admin_nothing_changes_and_sigusr2_keeps_its_default() {
    let admin = FakeAdmin::tcp(live(0));
    let mut w = Wrapper::start(&["--envoy-admin", &admin.addr]);
    let child = w.report(0).pid().unwrap();
    w.wait_for_text("is ready after");
    assert!(!w.output().contains("generation"), "{}", w.output());
    w.signal(Signal::SIGUSR2);
    let status = w.wait_exit(DEADLINE);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGUSR2),
        "as the Python wrapper"
    );
    assert!(
        wait_until(DEADLINE, || !running(child)),
        "the child outlived the wrapper"
    );
}

#[test]
fn handoff_flags_are_checked_at_start_up() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--handoff-admin", "127.0.0.1:9902"],
            "--handoff-admin needs --envoy-admin",
        ),
        (
            &[
                "--envoy-admin",
                "127.0.0.1:9901",
                "--handoff-admin",
                "127.0.0.1:9901",
            ],
            "is the same address as --envoy-admin",
        ),
        (
            &[
                "--envoy-admin",
                "127.0.0.1:9901",
                "--envoy-bin",
                "/bin/true",
            ],
            "--envoy-bin needs --handoff-admin",
        ),
    ];
    for (args, message) in cases {
        let mut w = Wrapper::start(args);
        w.expect_refused_at_start(2, &format!("{args:?}"));
        assert!(w.output().contains(message), "{args:?}: {}", w.output());
    }
}

#[test]
fn ctl_handoff_waits_until_the_new_generation_serves() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ctl.sock").display().to_string();
    let mut lab = Lab::start(&["--control-socket", &sock], &[]);
    let old = lab.pid(0, 0);
    lab.w.wait_for_text("is ready after");
    let ctl = env!("CARGO_BIN_EXE_hot-restarter-ctl");
    let out = std::process::Command::new(ctl)
        .args(["--socket", &sock, "handoff", "--wait", "--timeout", "20"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Done once the new generation serves, as a hot restart is done once
    // the new epoch is ready: the old one drains on.
    assert!(stdout.contains("generation 1 epoch 0 (PID="), "{stdout}");
    assert!(
        stdout.contains("is LIVE and serves; generation 0 drains"),
        "{stdout}"
    );
    lab.w.wait_for_text("handoff from generation 0 done in");
    assert!(
        wait_until(DEADLINE, || !running(old)),
        "the old generation stayed"
    );
    let status = std::process::Command::new(ctl)
        .args(["--socket", &sock, "status", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let children = json["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{json}");
    assert_eq!(children[0]["generation"], 1, "{json}");
    assert_eq!(json["counters"]["handoffs_done"], 1, "{json}");
    lab.w.signal(Signal::SIGTERM);
    assert_eq!(lab.w.exit_code(), 0);
}
