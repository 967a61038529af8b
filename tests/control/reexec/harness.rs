//! A wrapper started from a copy of the binary in its temp dir, and the
//! ctl commands the reexec tests use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{BIN, REPORTER, Wrapper, script, scrub, spawn_owned, unown};

pub const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

/// `cp FROM TO` by a child process (see `support::script` on ETXTBSY).
pub fn copy(from: &Path, to: &Path) {
    let mut cp = Command::new("cp");
    cp.arg(from).arg(to).stdin(Stdio::null());
    let mut child = spawn_owned(&mut cp);
    let status = child.wait().unwrap();
    unown(child.id() as i32);
    assert!(status.success(), "cp {from:?} {to:?} failed");
}

/// Put `from` at `path` the way a package manager does: a new file
/// renamed over the old name.
pub fn replace(path: &Path, from: &Path) {
    let tmp = path.with_extension("new");
    copy(from, &tmp);
    std::fs::rename(&tmp, path).unwrap();
}

/// The wrapper, started from `$dir/hr` (a copy of the binary) with
/// `--control-socket $dir/ctl.sock --pid-file $dir/pid` and `args`.
pub fn start(args: &[&str]) -> Wrapper {
    start_env(args, &[])
}

/// [`start`], with `env` added to the wrapper's environment (the
/// reporter's switches, e.g. `IGNORE_TERM`).
pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Wrapper {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let exe = dir.path().join("hr");
    copy(Path::new(BIN), &exe);
    let mut cmd = Command::new(&exe);
    scrub(&mut cmd)
        .current_dir(dir.path())
        .env("REPORT_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .arg("--control-socket")
        .arg(dir.path().join("ctl.sock"))
        .arg("--pid-file")
        .arg(dir.path().join("pid"))
        .envs(env.iter().copied())
        .args(args)
        .arg("start.sh");
    let w = Wrapper::spawn(dir, cmd);
    w.report(0);
    w
}

/// Put a new binary at the wrapper's path whose `--handover-check`
/// touches `checking` and then waits for the test to create `gate`: the
/// old binary's driver is busy meanwhile (its check is synchronous), so
/// what happens then stays pending across the exec (it gives up after
/// about 10 s, so that nothing is left should the test fail). Returns both
/// paths.
pub fn slow_check(w: &Wrapper) -> (PathBuf, PathBuf) {
    let dir = w.path();
    let real = dir.join("real");
    copy(Path::new(crate::support::BIN), &real);
    let (checking, gate) = (dir.join("checking"), dir.join("gate"));
    let slow = script(
        dir,
        "slow",
        &format!(
            "#!/bin/sh\nif [ \"$1\" = --handover-check ]; then\n  : > {c}\n  i=0\n  \
             while [ ! -e {g} ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done\nfi\n\
             exec {r} \"$@\"\n",
            c = checking.display(),
            g = gate.display(),
            r = real.display()
        ),
    );
    std::fs::rename(slow, exe(w)).unwrap();
    (checking, gate)
}

pub fn exe(w: &Wrapper) -> PathBuf {
    w.path().join("hr")
}

pub fn socket(w: &Wrapper) -> PathBuf {
    w.path().join("ctl.sock")
}

pub fn ctl(w: &Wrapper, args: &[&str]) -> Output {
    Command::new(CTL)
        .arg("--socket")
        .arg(socket(w))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `ctl ARGS` in a thread, for a request answered later (`--wait`).
pub fn spawn_ctl(w: &Wrapper, args: &[&str]) -> std::thread::JoinHandle<Output> {
    let socket = socket(w);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    std::thread::spawn(move || {
        Command::new(CTL)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
}

/// `ctl ARGS`, which must exit `code`; returns stdout and stderr.
pub fn ctl_ok(w: &Wrapper, args: &[&str], code: i32) -> (String, String) {
    let out = ctl(w, args);
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "hot-restarter-ctl {args:?}: stdout {o:?} stderr {e:?}\n{}",
        w.tail(30)
    );
    (o, e)
}

pub fn status(w: &Wrapper) -> Value {
    let (out, _) = ctl_ok(w, &["status", "--json"], 0);
    serde_json::from_str(&out).unwrap()
}

/// The status without what a reexec changes by design.
pub fn kept(mut status: Value) -> Value {
    let o = status.as_object_mut().unwrap();
    o.remove("uptime_s");
    o.remove("reexecs");
    status
}

/// The (device, inode) of the file a process executes.
pub fn exe_identity(pid: i32) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    (m.dev(), m.ino())
}

pub fn file_identity(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

/// What the descriptors of `pid` point to.
pub fn fd_targets(pid: i32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

/// VmRSS in KiB and the number of open descriptors of `pid`, once the
/// last control client's connection is closed (one socket left: the
/// listener).
pub fn footprint(pid: i32) -> (u64, usize) {
    crate::support::wait_until(crate::support::DEADLINE, || {
        fd_targets(pid)
            .iter()
            .filter(|t| t.starts_with("socket:"))
            .count()
            == 1
    });
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = crate::support::status_field(&status, "VmRSS:");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}
