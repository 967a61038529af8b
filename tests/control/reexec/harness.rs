//! A wrapper started from a copy of the binary in its temp dir, and the
//! ctl commands the reexec tests use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sys::signal::Signal;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{BIN, DEADLINE, REPORTER, Wrapper, copy, script, scrub, wait_until};

pub const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

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

/// `reexec --wait` while the old binary checks the new one ([`slow_check`]):
/// `during` runs once the check has begun, then the check goes on; the
/// client must be answered with success. Returns its output.
pub fn reexec_during_a_slow_check(w: &Wrapper, during: impl FnOnce(&Wrapper)) -> Output {
    let (checking, gate) = slow_check(w);
    let wait = spawn_ctl(w, &["reexec", "--wait"]);
    assert!(wait_until(DEADLINE, || checking.exists()));
    during(w);
    std::fs::write(&gate, "").unwrap();
    let out = wait.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", w.tail(30));
    out
}

/// Send `signal` to the wrapper, which is busy (see [`slow_check`]): it
/// must stay pending.
pub fn signal_left_pending(w: &Wrapper, signal: Signal) {
    w.signal(signal);
    assert!(wait_until(DEADLINE, || crate::support::signal_pending(
        w.pid,
        signal as i32
    )));
}

/// A script `name` in a new temp dir, its body made by `body` from the
/// path of a gate file that the test creates later to let it go on.
/// Returns the dir (to keep while the script may run), the gate and the
/// script.
pub fn gated_script(name: &str, body: impl FnOnce(&str) -> String) -> (TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let path = script(dir.path(), name, &body(&gate.display().to_string()));
    (dir, gate, path)
}

/// `reexec --wait` asked for while a restart is under way is held (and
/// nothing re-executed) until the test creates `gate`; then carried out
/// once the restart is over, which was the first reload.
pub fn reexec_held_until(w: &Wrapper, gate: &Path) {
    let wait = spawn_ctl(w, &["reexec", "--wait"]);
    w.wait_for_text("holding the reexec");
    assert_eq!(status(w)["reexecs"], 0);
    std::fs::write(gate, "").unwrap();
    let out = wait.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", w.tail(30));
    let s = status(w);
    assert_eq!(s["reexecs"], 1);
    assert_eq!(s["counters"]["reloads_done"], 1);
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
