//! Binaries a reexec refuses: the old one stays in charge, serving with
//! the same children, and `reexec --wait` exits 1 with the reason.

use std::path::Path;

use crate::harness::*;
use crate::support::script;

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
