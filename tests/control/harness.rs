//! What the control tests share: starting the wrapper with a control
//! socket, running `hot-restarter-ctl`, reading `status`, and the raw
//! wire (connect, exchange, replies).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::Value;

pub(crate) const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

/// A ready check that passes for epoch 0 and, for a later epoch N, once
/// the test has created `$REPORT_DIR/ready-N`: the test decides when a
/// restart is done.
pub(crate) const GATED_READY: &str = "#!/bin/sh\n\
    [ \"$RESTART_EPOCH\" = 0 ] || [ -e \"$REPORT_DIR/ready-$RESTART_EPOCH\" ]\n";

/// The log line of a control request.
pub(crate) fn logged_request(line: &str) -> String {
    format!("control socket: {line}")
}

pub(crate) const RELOAD_WAIT: &str = r#"{"v":1,"cmd":"reload","wait":true}"#;

// ----- starting the wrapper ---------------------------------------------

/// The wrapper on the reporter fixture with `--control-socket
/// <dir>/ctl.sock` and `args`, after `setup` has written its helper
/// scripts into the temp dir (they are named relative to it: the wrapper
/// runs there).
pub(crate) fn start(args: &[&str], setup: impl FnOnce(&Path)) -> (Wrapper, PathBuf) {
    start_env(args, &[], setup)
}

pub(crate) fn start_env(
    args: &[&str],
    env: &[(&str, &str)],
    setup: impl FnOnce(&Path),
) -> (Wrapper, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    setup(dir.path());
    let socket = dir.path().join("ctl.sock");
    let mut cmd = command(dir.path());
    cmd.env_remove("HOT_RESTARTER_CONTROL_SOCKET")
        .arg("--control-socket")
        .arg(&socket)
        .args(args)
        .arg("start.sh");
    for (k, v) in env {
        cmd.env(k, v);
    }
    (Wrapper::spawn(dir, cmd), socket)
}

/// Wait until epoch 0 runs, has set its traps and, where readiness is
/// checked, is ready; returns its pid.
pub(crate) fn up(w: &Wrapper) -> i32 {
    w.first_child()
}

/// Wait until `epoch` is ready (with a ready check); returns its pid.
pub(crate) fn ready(w: &Wrapper, epoch: u32) -> i32 {
    let pid = w.ready_pid(epoch);
    w.wait_for_text(&format!("epoch {epoch} (PID={pid}) is ready after"));
    pid
}

// ----- hot-restarter-ctl --------------------------------------------------

/// hot-restarter-ctl, running in the background; killed if the test ends
/// before it does.
pub(crate) struct Ctl {
    child: Option<Child>,
    out: Option<thread::JoinHandle<(Vec<u8>, Vec<u8>)>>,
    args: Vec<String>,
}

impl Ctl {
    pub(crate) fn spawn(socket: &Path, args: &[&str]) -> Ctl {
        let mut child = Command::new(CTL)
            .env_remove("HOT_RESTARTER_CONTROL_SOCKET")
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run hot-restarter-ctl");
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = thread::spawn(move || {
            let err = thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = stderr.read_to_end(&mut buf);
                buf
            });
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            (buf, err.join().unwrap())
        });
        Ctl {
            child: Some(child),
            out: Some(out),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Still running (not exited)?
    pub(crate) fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Wait for it to exit (panics after `timeout`).
    pub(crate) fn finish(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + timeout;
        let status: ExitStatus = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "hot-restarter-ctl {:?} did not exit within {timeout:?}",
                    self.args
                );
            }
            thread::sleep(Duration::from_millis(5));
        };
        let (stdout, stderr) = self.out.take().unwrap().join().unwrap();
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How many of `calls` have not exited yet.
pub(crate) fn unanswered(calls: &mut [Ctl]) -> usize {
    calls.iter_mut().map(Ctl::running).filter(|r| *r).count()
}

/// Run hot-restarter-ctl to its end (bounded by `DEADLINE`).
pub(crate) fn ctl(socket: &Path, args: &[&str]) -> Output {
    Ctl::spawn(socket, args).finish(DEADLINE)
}

pub(crate) fn code(out: &Output) -> i32 {
    out.status
        .code()
        .expect("hot-restarter-ctl killed by a signal")
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `hot-restarter-ctl reload --wait`, which must succeed with epoch
/// `epoch` running; returns its pid.
pub(crate) fn reload_wait(w: &Wrapper, socket: &Path, epoch: u32) -> i32 {
    let out = ctl(socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pid = w.ready_pid(epoch);
    assert_eq!(stdout(&out), format!("epoch {epoch} (PID={pid}) runs\n"));
    pid
}

/// `status --json`, parsed.
pub(crate) fn status(socket: &Path) -> Value {
    let out = ctl(socket, &["status", "--json"]);
    assert_eq!(code(&out), 0, "status --json: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", stdout(&out)))
}

/// The children of a status as (pid, epoch, generation, state).
pub(crate) fn children(status: &Value) -> Vec<(i64, i64, i64, String)> {
    status["children"]
        .as_array()
        .expect("children is an array")
        .iter()
        .map(|c| {
            (
                c["pid"].as_i64().unwrap(),
                c["epoch"].as_i64().unwrap(),
                c["generation"].as_i64().unwrap(),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub(crate) fn child(pid: i32, epoch: i64, state: &str) -> (i64, i64, i64, String) {
    (pid.into(), epoch, 0, state.to_string())
}

/// The counters of a status, by name.
pub(crate) fn counters(status: &Value) -> BTreeMap<String, u64> {
    status["counters"]
        .as_object()
        .expect("counters is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

/// Counters with the given ones set and every other one 0.
pub(crate) fn expected_counters(set: &[(&str, u64)]) -> BTreeMap<String, u64> {
    let mut all: BTreeMap<String, u64> = [
        "reloads_done",
        "reloads_skipped",
        "reloads_failed",
        "handoffs_done",
        "handoffs_failed",
    ]
    .into_iter()
    .map(|k| (k.to_string(), 0))
    .collect();
    for (k, v) in set {
        all.insert(k.to_string(), *v);
    }
    all
}

// ----- the raw wire --------------------------------------------------------

pub(crate) fn connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()));
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// Read one reply line, then check that the wrapper closes the
/// connection (one request per connection).
pub(crate) fn read_reply(stream: &UnixStream) -> Value {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("no reply line");
    assert!(line.ends_with('\n'), "unterminated reply {line:?}");
    let mut rest = Vec::new();
    // ECONNRESET is possible when the wrapper closed with our bytes unread.
    let _ = reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "more after the reply: {rest:?}");
    let reply: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line:?}"));
    assert_eq!(reply["v"], 1, "{line}");
    reply
}

/// Send `request` as is on a new connection and return the reply.
pub(crate) fn exchange(socket: &Path, request: &[u8]) -> Value {
    let mut stream = connect(socket);
    stream.write_all(request).unwrap();
    read_reply(&stream)
}

/// The `error` of an `ok: false` reply.
pub(crate) fn error_of(reply: &Value) -> String {
    assert_eq!(reply["ok"], false, "{reply}");
    reply["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {reply}"))
        .to_string()
}

pub(crate) fn mode_of(path: &Path) -> (bool, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (
        meta.file_type().is_socket(),
        meta.permissions().mode() & 0o7777,
    )
}

pub(crate) fn fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}
