//! Binaries a reexec refuses: the old one stays in charge, serving with
//! the same children, and `reexec --wait` exits 1 with the reason.

use std::path::Path;

use super::harness::*;
use crate::support::{copy, script};

fn refused(setup: impl FnOnce(&Path), reason: &str) {
    let mut w = start(&[]);
    let before = status(&w);
    setup(&exe(&w));
    let (_, err) = ctl_ok(&w, &["reexec", "--wait"], 1);
    assert!(err.contains(reason), "expected {reason:?} in {err:?}");
    let after = status(&w);
    assert_eq!(kept(after.clone()), kept(before));
    assert_eq!(after["reexecs"], 0);
    w.wait_for_text("reexec refused, this binary stays in charge");
    // Still acting: a reload works.
    ctl_ok(&w, &["reload", "--wait"], 0);
    w.stop_cleanly();
}

#[test]
fn a_missing_binary_is_refused() {
    refused(|exe| std::fs::remove_file(exe).unwrap(), "No such file");
}

#[test]
fn a_shell_script_is_refused() {
    refused(
        |exe| {
            let dir = exe.parent().unwrap();
            let s = script(dir, "fake", "#!/bin/sh\necho hello\n");
            std::fs::rename(s, exe).unwrap();
        },
        "is not a hot-restarter",
    );
}

#[test]
fn a_binary_that_exits_at_once_is_refused() {
    refused(
        |exe| replace(exe, Path::new("/bin/false")),
        "is not a hot-restarter",
    );
}

#[test]
fn an_older_hand_over_version_is_refused() {
    refused(
        |exe| {
            let dir = exe.parent().unwrap();
            let s = script(
                dir,
                "old",
                "#!/bin/sh\necho 'hot-restarter 0.0.1 reads handover versions 0 to 0' >&2\nexit 1\n",
            );
            std::fs::rename(s, exe).unwrap();
        },
        "reads hand-over version 1",
    );
}

#[test]
fn a_file_that_is_not_executable_is_refused() {
    refused(
        |exe| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(exe, std::fs::Permissions::from_mode(0o644)).unwrap();
        },
        "is not executable",
    );
}

/// A new binary that passes the check but cannot take over (here: it
/// refuses the wrapper's flags) executes the previous binary again, from
/// the descriptor that one opened at its start: the same children carry
/// on, and `reexec --wait` exits 1 with why.
#[test]
fn a_binary_that_cannot_take_over_falls_back_to_the_previous_one() {
    let mut w = start(&[]);
    w.signal(nix::sys::signal::Signal::SIGHUP);
    w.report(1);
    let before = status(&w);
    let original = file_identity(&exe(&w));
    assert_eq!(exe_identity(w.pid), original);
    let dir = w.path().to_path_buf();
    let real = dir.join("real");
    copy(std::path::Path::new(crate::support::BIN), &real);
    let s = script(
        &dir,
        "picky",
        &format!(
            "#!/bin/sh\n[ \"$1\" = --handover-check ] && exec {0} \"$@\"\nexec {0} --no-such-flag \"$@\"\n",
            real.display()
        ),
    );
    std::fs::rename(s, exe(&w)).unwrap();
    let (_, err) = ctl_ok(&w, &["reexec", "--wait"], 1);
    assert!(
        err.contains("could not take over") && err.contains("--no-such-flag"),
        "{err}"
    );
    assert!(err.contains("the previous binary"), "{err}");
    let after = status(&w);
    assert_eq!(kept(after.clone()), kept(before));
    assert_eq!(after["reexecs"], 0);
    assert_eq!(after["pid"].as_i64().unwrap() as i32, w.pid);
    // The process runs the original file again (renamed over, so only the
    // descriptor opened at start still reached it), not the new one.
    assert_eq!(exe_identity(w.pid), original);
    assert_ne!(file_identity(&exe(&w)), original);
    w.wait_for_text("cannot take over after reexec");
    w.wait_for_text("reexec failed, hot-restarter");
    // Both epochs are still its children, never signalled.
    for epoch in [0, 1] {
        assert_eq!(crate::support::ppid_of(w.pid_of(epoch)), Some(w.pid));
        assert_eq!(w.report(epoch).count("term"), 0);
    }
    // The fallen-back binary still acts, and a later reexec onto a good
    // binary works.
    ctl_ok(&w, &["reload", "--wait"], 0);
    replace(&exe(&w), std::path::Path::new(crate::support::BIN));
    ctl_ok(&w, &["reexec", "--wait"], 0);
    assert_eq!(status(&w)["reexecs"], 1);
    w.stop_cleanly();
}

/// A new binary whose check never answers is given up on after 5 s (it
/// and what it started are killed) and refused.
#[test]
fn a_binary_whose_check_hangs_is_refused() {
    let mut w = start(&[]);
    let dir = w.path().to_path_buf();
    let marker = dir.join("check-started");
    let s = script(
        &dir,
        "hangs",
        &format!(
            "#!/bin/sh\nsleep 1000 &\necho $! > {}\nwait\n",
            marker.display()
        ),
    );
    std::fs::rename(s, exe(&w)).unwrap();
    let wait = spawn_ctl(&w, &["reexec", "--wait"]);
    let sleep = || -> Option<i32> { std::fs::read_to_string(&marker).ok()?.trim().parse().ok() };
    assert!(crate::support::wait_until(crate::support::DEADLINE, || {
        sleep().is_some()
    }));
    let sleep = sleep().unwrap();
    // Killed should the test fail before the wrapper gives up on it.
    let _guard = crate::support::ProcessGuard::new(sleep);
    // The check runs with no signal blocked (the wrapper's blocked set is
    // not inherited), as every child of the wrapper does.
    let blocked = std::fs::read_to_string(format!("/proc/{sleep}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:").map(|v| v.trim().to_string()))
        .unwrap();
    assert_eq!(blocked, "0000000000000000");
    let out = wait.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(err.contains("did not answer within 5 s"), "{err}");
    assert!(
        crate::support::wait_until(crate::support::DEADLINE, || !crate::support::exists(sleep)),
        "the check's sleep {sleep} still runs"
    );
    assert_eq!(status(&w)["reexecs"], 0);
    ctl_ok(&w, &["reload", "--wait"], 0);
    w.stop_cleanly();
}
