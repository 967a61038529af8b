//! --pid-file: written at start with the wrapper's pid, removed at every
//! kind of exit, refused clearly when it cannot be written (and then no
//! child starts), and never redirected by a planted symlink.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::support::*;
use nix::sys::signal::Signal;

/// The wrapper on the reporter, with `--pid-file PATH` (`w.pid` in its temp
/// dir unless given), plus `args`.
fn start(pid_file: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> (Wrapper, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = pid_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.path().join("w.pid"));
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    cmd.arg("--pid-file").arg(&path).args(args).arg("start.sh");
    for (k, v) in env {
        cmd.env(k, v);
    }
    (Wrapper::spawn(dir, cmd), path)
}

/// `path` is a regular file (not a link) holding the wrapper's pid.
#[track_caller]
fn holds_the_pid_of(path: &Path, w: &Wrapper) {
    assert!(fs::symlink_metadata(path).unwrap().is_file(), "{path:?}");
    assert_eq!(fs::read_to_string(path).unwrap(), format!("{}\n", w.pid));
}

/// A file for a planted link to point at, in `dir`.
fn victim_in(dir: &Path) -> PathBuf {
    let victim = dir.join("victim");
    fs::write(&victim, "precious\n").unwrap();
    victim
}

/// The file a planted link pointed at still holds what it held.
#[track_caller]
fn untouched(victim: &Path) {
    assert_eq!(fs::read_to_string(victim).unwrap(), "precious\n");
}

/// Temporary files the pid file writer may have left beside `path`.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn written_at_start_and_removed_after_a_graceful_stop() {
    let (mut w, path) = start(None, &["--term-wait", "5"], &[]);
    let report = w.report(0);
    // Written before the first child starts.
    holds_the_pid_of(&path, &w);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        format!("{}\n", w.pid).len() as u64
    );
    assert!(leftovers(w.path()).is_empty(), "{:?}", leftovers(w.path()));
    assert!(running(report.pid().unwrap()));
    w.signal(Signal::SIGHUP);
    w.report(1);
    holds_the_pid_of(&path, &w);
    w.stop();
    assert!(!path.exists(), "pid file left after a graceful stop");
    w.assert_no_children_left();
}

#[test]
fn a_relative_path_is_relative_to_the_working_directory() {
    let (mut w, _) = start(Some(Path::new("rel.pid")), &[], &[]);
    w.report(0);
    let path = w.path().join("rel.pid");
    holds_the_pid_of(&path, &w);
    w.stop();
    assert!(!path.exists());
}

#[test]
fn removed_after_a_crash_teardown() {
    let (mut w, path) = start(None, &[], &[("FAIL_EPOCH", "1")]);
    w.report(0);
    assert!(path.exists());
    w.signal(Signal::SIGHUP);
    w.wait_for("Due to abnormal exit, force killing all child processes and exiting");
    assert_eq!(w.exit_code(), 1);
    assert!(!path.exists(), "pid file left after a crash teardown");
    w.assert_no_children_left();
}

#[test]
fn removed_when_the_last_child_exits_by_itself() {
    let (mut w, path) = start(None, &[], &[("EXIT_AT_START", "0")]);
    w.wait_for("exiting due to lack of child processes");
    assert_eq!(w.exit_code(), 0);
    assert!(!path.exists());
}

#[test]
fn removed_when_epoch_0_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.pid");
    let mut cmd = command(dir.path());
    cmd.arg("--pid-file").arg(&path).arg("./missing.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    w.wait_for_text("cannot start epoch 0");
    assert_eq!(w.exit_code(), 1);
    assert!(!path.exists(), "pid file left after a failed start");
}

#[test]
fn not_written_on_a_usage_error() {
    let (mut w, path) = start(None, &["--term-wait", "soon"], &[]);
    w.expect_refused_at_start(2, "--term-wait soon");
    assert!(!path.exists());
}

/// Start with a pid file that cannot be written: a start-up error naming
/// the path and the OS error, exit 1, and no child.
fn refused(path_in: impl FnOnce(&Path) -> PathBuf, os_error: &str) {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let path = path_in(dir.path());
    let mut cmd = command(dir.path());
    cmd.arg("--pid-file").arg(&path).arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    assert_eq!(w.exit_code(), 1, "output:\n{}", w.output());
    let error = w
        .lines()
        .into_iter()
        .find(|l| level_of(l) == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR line:\n{}", w.output()));
    let message = message_of(&error);
    assert!(
        message.contains(&format!("cannot write pid file {}", path.display())),
        "{error}"
    );
    assert!(message.contains(os_error), "{error}");
    assert_eq!(
        w.count("forking and execing new child process at epoch 0"),
        0,
        "a child was started:\n{}",
        w.output()
    );
    assert!(!w.path().join("epoch-0").exists(), "a child was started");
    assert!(leftovers(w.path()).is_empty(), "{:?}", leftovers(w.path()));
}

#[test]
fn a_missing_directory_is_a_clear_start_up_error() {
    refused(
        |dir| dir.join("no-such-dir").join("w.pid"),
        "No such file or directory (os error 2)",
    );
}

#[test]
fn a_path_under_a_regular_file_is_a_clear_start_up_error() {
    refused(
        |dir| {
            fs::write(dir.join("plain"), "x").unwrap();
            dir.join("plain").join("w.pid")
        },
        "Not a directory (os error 20)",
    );
}

#[test]
fn a_directory_in_the_way_is_a_clear_start_up_error() {
    refused(
        |dir| {
            fs::create_dir(dir.join("w.pid")).unwrap();
            dir.join("w.pid")
        },
        "Is a directory (os error 21)",
    );
}

#[test]
fn a_symlink_planted_at_the_temporary_name_is_not_followed() {
    // The temporary name is `.w.pid.<wrapper pid>.tmp`: plant the link from
    // the wrapper's own process, just before it execs, when the pid is
    // known and nothing has been written yet.
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let victim = victim_in(dir.path());
    let path = dir.path().join("w.pid");
    let prefix = dir.path().join(".w.pid.").as_os_str().as_bytes().to_vec();
    let target = std::ffi::CString::new(victim.as_os_str().as_bytes()).unwrap();
    assert!(prefix.len() < 400);
    let mut cmd = command(dir.path());
    cmd.arg("--pid-file").arg(&path).arg("start.sh");
    // SAFETY: runs in the forked child before exec; it only uses getpid
    // and symlink (async-signal-safe) on a stack buffer and memory prepared
    // before the fork, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let mut buf = [0u8; 512];
            buf[..prefix.len()].copy_from_slice(&prefix);
            let mut at = prefix.len();
            let mut digits = [0u8; 12];
            let mut n = libc::getpid() as u32;
            let mut len = 0;
            loop {
                digits[len] = b'0' + (n % 10) as u8;
                len += 1;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for i in (0..len).rev() {
                buf[at] = digits[i];
                at += 1;
            }
            buf[at..at + 4].copy_from_slice(b".tmp");
            libc::symlink(target.as_ptr(), buf.as_ptr().cast());
            Ok(())
        });
    }
    let mut w = Wrapper::spawn(dir, cmd);
    w.report(0);
    let planted = w.path().join(format!(".w.pid.{}.tmp", w.pid));
    untouched(&victim);
    holds_the_pid_of(&path, &w);
    assert!(
        fs::symlink_metadata(&planted).is_err(),
        "the planted link is still there"
    );
    w.stop();
    assert!(!path.exists());
    untouched(&victim);
}

#[test]
fn a_symlink_at_the_pid_file_path_is_replaced_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = victim_in(dir.path());
    let path = dir.path().join("w.pid");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let (mut w, path) = start(Some(&path), &[], &[]);
    w.report(0);
    holds_the_pid_of(&path, &w);
    untouched(&victim);
    w.stop();
    assert!(fs::symlink_metadata(&path).is_err());
    untouched(&victim);
}

#[test]
fn a_stale_pid_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.pid");
    fs::write(&path, "999999\n").unwrap();
    let (mut w, path) = start(Some(&path), &[], &[]);
    w.report(0);
    holds_the_pid_of(&path, &w);
    w.stop();
    assert!(!path.exists());
    drop(dir);
}

#[test]
fn a_pid_file_taken_over_by_another_instance_is_left_alone() {
    let (mut w, path) = start(None, &[], &[]);
    w.report(0);
    fs::write(&path, "424242\n").unwrap();
    w.stop();
    assert_eq!(fs::read_to_string(&path).unwrap(), "424242\n");
    assert!(
        w.output().contains(&format!(
            "pid file {} now holds another pid, leaving it",
            path.display()
        )),
        "{}",
        w.output()
    );
}
