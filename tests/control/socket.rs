//! The control socket of the real wrapper (`--control-socket`), driven
//! with the real `hot-restarter-ctl` and, where the test is about the
//! wire, with raw `UnixStream`s: status in its three forms, `reload
//! --wait` done, skipped, failed and coalesced, `stop --wait`,
//! `reopen-logs`, `handoff`, and the faults a socket server must survive
//! (garbage, an overlong line, silent clients, a hundred clients at once,
//! a waiter that hangs up, and what may already be at the socket path).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

/// A ready check that passes for epoch 0 and, for a later epoch N, once
/// the test has created `$REPORT_DIR/ready-N`: the test decides when a
/// restart is done.
const GATED_READY: &str = "#!/bin/sh\n\
    [ \"$RESTART_EPOCH\" = 0 ] || [ -e \"$REPORT_DIR/ready-$RESTART_EPOCH\" ]\n";

/// The log line of a control request.
fn logged_request(line: &str) -> String {
    format!("control socket: {line}")
}

const RELOAD_WAIT: &str = r#"{"v":1,"cmd":"reload","wait":true}"#;

// ----- starting the wrapper ---------------------------------------------

/// The wrapper on the reporter fixture with `--control-socket
/// <dir>/ctl.sock` and `args`, after `setup` has written its helper
/// scripts into the temp dir (they are named relative to it: the wrapper
/// runs there).
fn start(args: &[&str], setup: impl FnOnce(&Path)) -> (Wrapper, PathBuf) {
    start_env(args, &[], setup)
}

fn start_env(args: &[&str], env: &[(&str, &str)], setup: impl FnOnce(&Path)) -> (Wrapper, PathBuf) {
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
fn up(w: &Wrapper) -> i32 {
    let pid = w.first_child();
    pid
}

/// Wait until `epoch` is ready (with a ready check); returns its pid.
fn ready(w: &Wrapper, epoch: u32) -> i32 {
    let pid = w.ready_pid(epoch);
    w.wait_for_text(&format!("epoch {epoch} (PID={pid}) is ready after"));
    pid
}

// ----- hot-restarter-ctl --------------------------------------------------

/// hot-restarter-ctl, running in the background; killed if the test ends
/// before it does.
struct Ctl {
    child: Option<Child>,
    out: Option<thread::JoinHandle<(Vec<u8>, Vec<u8>)>>,
    args: Vec<String>,
}

impl Ctl {
    fn spawn(socket: &Path, args: &[&str]) -> Ctl {
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
    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Wait for it to exit (panics after `timeout`).
    fn finish(mut self, timeout: Duration) -> Output {
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
fn still_running(calls: &mut [Ctl]) -> usize {
    calls.iter_mut().map(Ctl::running).filter(|r| *r).count()
}

/// Run hot-restarter-ctl to its end (bounded by `DEADLINE`).
fn ctl(socket: &Path, args: &[&str]) -> Output {
    Ctl::spawn(socket, args).finish(DEADLINE)
}

fn code(out: &Output) -> i32 {
    out.status
        .code()
        .expect("hot-restarter-ctl killed by a signal")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `hot-restarter-ctl reload --wait`, which must succeed with epoch
/// `epoch` running; returns its pid.
fn reload_wait(w: &Wrapper, socket: &Path, epoch: u32) -> i32 {
    let out = ctl(socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pid = w.ready_pid(epoch);
    assert_eq!(stdout(&out), format!("epoch {epoch} (PID={pid}) runs\n"));
    pid
}

/// `status --json`, parsed.
fn status(socket: &Path) -> Value {
    let out = ctl(socket, &["status", "--json"]);
    assert_eq!(code(&out), 0, "status --json: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", stdout(&out)))
}

/// The children of a status as (pid, epoch, generation, state).
fn children(status: &Value) -> Vec<(i64, i64, i64, String)> {
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

fn child(pid: i32, epoch: i64, state: &str) -> (i64, i64, i64, String) {
    (pid.into(), epoch, 0, state.to_string())
}

/// The counters of a status, by name.
fn counters(status: &Value) -> BTreeMap<String, u64> {
    status["counters"]
        .as_object()
        .expect("counters is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

/// Counters with the given ones set and every other one 0.
fn expected_counters(set: &[(&str, u64)]) -> BTreeMap<String, u64> {
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

fn connect(socket: &Path) -> UnixStream {
    let stream = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()));
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// Read one reply line, then check that the wrapper closes the
/// connection (one request per connection).
fn read_reply(stream: &UnixStream) -> Value {
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
fn exchange(socket: &Path, request: &[u8]) -> Value {
    let mut stream = connect(socket);
    stream.write_all(request).unwrap();
    read_reply(&stream)
}

/// The `error` of an `ok: false` reply.
fn error_of(reply: &Value) -> String {
    assert_eq!(reply["ok"], false, "{reply}");
    reply["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {reply}"))
        .to_string()
}

fn mode_of(path: &Path) -> (bool, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (
        meta.file_type().is_socket(),
        meta.permissions().mode() & 0o7777,
    )
}

fn fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

// ----- status ----------------------------------------------------------------

/// One Prometheus text exposition, checked line by line: every family has
/// one `# HELP` and one `# TYPE` (gauge or counter) before its samples,
/// every name has the `hot_restarter_` prefix, a family's samples are
/// contiguous, and every value is a number. Returns the samples, keyed by
/// `name{labels}`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |n: &str| {
        n.starts_with("hot_restarter_")
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut help = BTreeSet::new();
    let mut kind = BTreeMap::new();
    let mut finished = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut samples = BTreeMap::new();
    assert!(text.ends_with('\n'), "{text:?}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').expect("HELP without text");
            assert!(valid_name(name), "{line}");
            assert!(!doc.trim().is_empty(), "{line}");
            assert!(help.insert(name.to_string()), "second HELP: {line}");
            assert!(!kind.contains_key(name), "HELP after TYPE: {line}");
            if let Some(previous) = current.replace(name.to_string()) {
                finished.insert(previous);
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, k) = rest.split_once(' ').expect("TYPE without a type");
            assert!(help.contains(name), "TYPE before HELP: {line}");
            assert!(["gauge", "counter"].contains(&k), "{line}");
            assert!(
                kind.insert(name.to_string(), k.to_string()).is_none(),
                "second TYPE: {line}"
            );
        } else {
            assert!(!line.starts_with('#'), "unknown comment: {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample without a value");
            let name = series.split('{').next().unwrap();
            assert!(valid_name(name), "{line}");
            assert!(
                kind.contains_key(name) && current.as_deref() == Some(name),
                "sample outside its family (HELP/TYPE first): {line}"
            );
            assert!(!finished.contains(name), "family split: {line}");
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("bad labels: {line}"));
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').expect("label without =");
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
            }
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            if kind[name] == "counter" {
                assert!(value >= 0.0, "negative counter: {line}");
            }
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "duplicate series: {line}"
            );
        }
    }
    assert_eq!(help.len(), kind.len(), "HELP without TYPE");
    samples
}

#[test]
fn status_in_json_text_and_prometheus_matches_the_wrapper() {
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    // The socket: the wrapper's user only.
    assert_eq!(mode_of(&socket), (true, 0o600));

    let s = status(&socket);
    assert_eq!(s["pid"], w.pid, "{s}");
    assert_eq!(s["phase"], "running", "{s}");
    let uptime = s["uptime_s"].as_f64().expect("uptime_s is a number");
    assert!((0.0..60.0).contains(&uptime), "{s}");
    assert_eq!(children(&s), [child(pid0, 0, "ready")], "{s}");
    assert!(s["last_reload"].is_null(), "before the first reload: {s}");
    assert_eq!(counters(&s), expected_counters(&[]));

    // One reload: two children, the older draining; last_reload filled in.
    let pid1 = reload_wait(&w, &socket, 1);
    let s = status(&socket);
    assert_eq!(
        children(&s),
        [child(pid0, 0, "draining"), child(pid1, 1, "ready")],
        "{s}"
    );
    let last = &s["last_reload"];
    assert_eq!(last["epoch"], 1, "{s}");
    assert_eq!(last["result"], "done", "{s}");
    assert!(last["reason"].is_null(), "{s}");
    let ms = last["ms"].as_u64().expect("ms is a whole number");
    assert!(ms < 20_000, "{s}");
    assert_eq!(counters(&s), expected_counters(&[("reloads_done", 1)]));

    // The same, as raw JSON on the wire.
    let reply = exchange(&socket, b"{\"v\":1,\"cmd\":\"status\"}\n");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(children(&reply["status"]), children(&s));
    assert_eq!(reply["status"]["last_reload"], s["last_reload"]);

    // Text, for a person.
    let out = ctl(&socket, &["status"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("hot-restarter PID={}: running, up ", w.pid)),
        "{text}"
    );
    assert_eq!(
        lines[1],
        format!("serving: epoch 1 generation 0 (PID={pid1})"),
        "{text}"
    );
    assert_eq!(lines[2], "children:", "{text}");
    assert_eq!(
        lines[3],
        format!("  PID={pid0} epoch 0 generation 0 draining")
    );
    assert_eq!(lines[4], format!("  PID={pid1} epoch 1 generation 0 ready"));
    assert_eq!(
        lines[5],
        format!(
            "last reload: epoch 1 done after {:.3} s",
            ms as f64 / 1000.0
        )
    );
    assert_eq!(
        lines[6],
        "reloads: 1 done, 0 skipped, 0 failed; handoffs: 0 done, 0 failed"
    );
    assert_eq!(lines.len(), 7, "{text}");

    // Prometheus: well-formed, and the same figures as the JSON.
    let out = ctl(&socket, &["status", "--prometheus"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let samples = parse_prometheus(&stdout(&out));
    let expected: BTreeMap<&str, f64> = [
        ("hot_restarter_up", 1.0),
        ("hot_restarter_phase{phase=\"running\"}", 1.0),
        ("hot_restarter_children{state=\"starting\"}", 0.0),
        ("hot_restarter_children{state=\"ready\"}", 1.0),
        ("hot_restarter_children{state=\"draining\"}", 1.0),
        ("hot_restarter_serving_epoch", 1.0),
        ("hot_restarter_serving_generation", 0.0),
        ("hot_restarter_reloads_total{result=\"done\"}", 1.0),
        ("hot_restarter_reloads_total{result=\"skipped\"}", 0.0),
        ("hot_restarter_reloads_total{result=\"failed\"}", 0.0),
        ("hot_restarter_handoffs_total{result=\"done\"}", 0.0),
        ("hot_restarter_handoffs_total{result=\"failed\"}", 0.0),
        ("hot_restarter_last_reload_epoch", 1.0),
        ("hot_restarter_last_reload_success", 1.0),
        (
            "hot_restarter_last_reload_duration_seconds",
            ms as f64 / 1000.0,
        ),
    ]
    .into_iter()
    .collect();
    for (series, value) in &expected {
        assert_eq!(
            samples.get(*series),
            Some(value),
            "{series}; got {samples:?}"
        );
    }
    let uptime = samples["hot_restarter_uptime_seconds"];
    assert!(uptime >= s["uptime_s"].as_f64().unwrap(), "{samples:?}");
    let extra: Vec<&String> = samples
        .keys()
        .filter(|k| !expected.contains_key(k.as_str()) && *k != "hot_restarter_uptime_seconds")
        .collect();
    assert!(extra.is_empty(), "unexpected series {extra:?}");
}

// ----- reload --wait ---------------------------------------------------------

#[test]
fn reload_wait_returns_once_the_new_epoch_is_ready() {
    let (w, socket) = start(&["--ready-check", "ready.sh"], |dir| {
        script(dir, "ready.sh", GATED_READY);
    });
    let pid0 = ready(&w, 0);
    let mut reload = Ctl::spawn(&socket, &["reload", "--wait", "--timeout", "20"]);
    // Epoch 1 runs but is not ready: the reload is not done yet.
    let pid1 = w.ready_pid(1);
    let s = status(&socket);
    assert_eq!(s["phase"], "starting", "{s}");
    assert_eq!(
        children(&s),
        [child(pid0, 0, "ready"), child(pid1, 1, "starting")]
    );
    assert!(s["last_reload"].is_null(), "{s}");
    assert!(
        reload.running(),
        "reload --wait returned before epoch 1 was ready"
    );

    fs::write(w.path().join("ready-1"), "").unwrap();
    let out = reload.finish(DEADLINE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("epoch 1 (PID={pid1}) is ready\n"));
    let s = status(&socket);
    assert_eq!(s["phase"], "running", "{s}");
    assert_eq!(
        children(&s),
        [child(pid0, 0, "draining"), child(pid1, 1, "ready")]
    );
    assert_eq!(s["last_reload"]["epoch"], 1, "{s}");
    assert_eq!(s["last_reload"]["result"], "done", "{s}");
    assert_eq!(counters(&s), expected_counters(&[("reloads_done", 1)]));
    // A reload without --wait answers at once; the restart follows.
    let out = ctl(&socket, &["reload"]);
    assert_eq!((code(&out), stdout(&out)), (0, "reload requested\n".into()));
    w.ready_pid(2);
}

#[test]
fn reload_wait_skipped_by_a_failing_preflight_reports_its_message() {
    let preflight = "#!/bin/sh\n\
        if [ -e \"$REPORT_DIR/reject\" ]; then\n\
          echo \"envoy.yaml: unknown field 'listenrs' (epoch $RESTART_EPOCH)\" >&2\n\
          exit 3\n\
        fi\n";
    let (w, socket) = start(&["--preflight", "preflight.sh"], |dir| {
        script(dir, "preflight.sh", preflight);
        fs::write(dir.join("reject"), "").unwrap();
    });
    let pid0 = up(&w);

    let out = ctl(&socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("hot-restarter-ctl: reload failed: "),
        "{err}"
    );
    assert!(err.contains("restart to epoch 1 skipped"), "{err}");
    // The preflight's own words, and how it ended.
    assert!(
        err.contains("envoy.yaml: unknown field 'listenrs' (epoch 1)"),
        "{err}"
    );
    assert!(err.contains("exited with code=3"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // The serving epoch is untouched: same pid, no signal, no epoch 1.
    let s = status(&socket);
    assert_eq!(children(&s), [child(pid0, 0, "ready")], "{s}");
    assert!(running(pid0));
    assert_eq!(w.report(0).count("term"), 0);
    assert!(!w.path().join("epoch-1").exists());
    let last = &s["last_reload"];
    assert_eq!(last["epoch"], 1, "{s}");
    assert_eq!(last["result"], "skipped", "{s}");
    let reason = last["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("envoy.yaml: unknown field 'listenrs'"),
        "{s}"
    );
    assert!(
        err.contains(reason),
        "ctl said {err:?}, status says {reason:?}"
    );
    assert_eq!(counters(&s), expected_counters(&[("reloads_skipped", 1)]));
    let out = ctl(&socket, &["status", "--prometheus"]);
    let samples = parse_prometheus(&stdout(&out));
    assert_eq!(samples["hot_restarter_last_reload_success"], 0.0);
    assert_eq!(
        samples["hot_restarter_reloads_total{result=\"skipped\"}"],
        1.0
    );

    // Fixed: the next reload takes the epoch number the skip left free.
    fs::remove_file(w.path().join("reject")).unwrap();
    reload_wait(&w, &socket, 1);
    let s = status(&socket);
    assert_eq!(
        counters(&s),
        expected_counters(&[("reloads_done", 1), ("reloads_skipped", 1)])
    );
    assert_eq!(s["last_reload"]["result"], "done", "{s}");
    assert!(s["last_reload"]["reason"].is_null(), "{s}");
}

#[test]
fn reload_wait_that_is_not_ready_in_time_fails_and_keeps_serving() {
    let never_ready = "#!/bin/sh\n[ \"$RESTART_EPOCH\" = 0 ]\n";
    let (w, socket) = start(
        &[
            "--ready-check",
            "ready.sh",
            "--ready-timeout",
            "0.5",
            "--keep-serving",
        ],
        |dir| {
            script(dir, "ready.sh", never_ready);
        },
    );
    let pid0 = ready(&w, 0);
    let out = ctl(&socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("hot-restarter-ctl: reload failed: ")
            && err.contains("restart to epoch 1 failed because it was not ready in time"),
        "{err}"
    );
    let pid1 = w.pid_of(1);
    w.wait_gone(pid1);
    let s = status(&socket);
    assert_eq!(s["phase"], "running", "{s}");
    assert_eq!(children(&s), [child(pid0, 0, "ready")], "{s}");
    assert_eq!(s["last_reload"]["result"], "failed", "{s}");
    assert_eq!(s["last_reload"]["epoch"], 1, "{s}");
    assert!(
        s["last_reload"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not ready in time")),
        "{s}"
    );
    assert_eq!(counters(&s), expected_counters(&[("reloads_failed", 1)]));
    assert!(running(pid0));
    assert_eq!(w.report(0).count("term"), 0);
}

#[test]
fn concurrent_reload_waits_coalesce_into_two_restarts_and_each_gets_its_answer() {
    const CALLS: usize = 6;
    let (w, socket) = start(&["--ready-check", "ready.sh"], |dir| {
        script(dir, "ready.sh", GATED_READY);
    });
    ready(&w, 0);
    let mut calls: Vec<Ctl> = (0..CALLS)
        .map(|_| Ctl::spawn(&socket, &["reload", "--wait", "--timeout", "20"]))
        .collect();
    // Every request has reached the wrapper while epoch 1 is not ready:
    // the first started epoch 1, the others wait in one held restart.
    w.wait_for_count(&logged_request(RELOAD_WAIT), CALLS);
    let pid1 = w.ready_pid(1);
    assert_eq!(
        w.messages_starting("holding SIGHUP until ").len(),
        1,
        "{}",
        w.output()
    );
    assert_eq!(
        w.messages_starting("coalescing SIGHUP into the held restart")
            .len(),
        CALLS - 2,
        "{}",
        w.output()
    );
    assert_eq!(still_running(&mut calls), CALLS, "an answer came early");

    // Epoch 1 ready: the first caller is answered, the held restart starts
    // epoch 2 for the rest.
    fs::write(w.path().join("ready-1"), "").unwrap();
    let pid2 = w.ready_pid(2);
    let s = status(&socket);
    assert_eq!(s["last_reload"]["epoch"], 1, "{s}");
    assert_eq!(children(&s)[2], child(pid2, 2, "starting"), "{s}");
    // The first caller is answered; the others wait for epoch 2.
    assert!(
        wait_until(DEADLINE, || still_running(&mut calls) < CALLS),
        "the first caller got no answer"
    );
    assert_eq!(
        still_running(&mut calls),
        CALLS - 1,
        "callers of the held restart were answered before it was done"
    );
    fs::write(w.path().join("ready-2"), "").unwrap();
    let mut details = Vec::new();
    for call in calls {
        let out = call.finish(DEADLINE);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        details.push(stdout(&out));
    }
    let first = format!("epoch 1 (PID={pid1}) is ready\n");
    let held = format!("epoch 2 (PID={pid2}) is ready\n");
    assert_eq!(
        details.iter().filter(|d| **d == first).count(),
        1,
        "{details:?}"
    );
    assert_eq!(
        details.iter().filter(|d| **d == held).count(),
        CALLS - 1,
        "{details:?}"
    );
    // Two restarts for six requests.
    w.wait_for_text(&format!("epoch 2 (PID={pid2}) is ready after"));
    assert_eq!(w.with_lines(started_epochs), [0, 1, 2]);
    let s = status(&socket);
    assert_eq!(counters(&s), expected_counters(&[("reloads_done", 2)]));
    assert!(!w.path().join("epoch-3").exists());
}

// ----- stop, reopen-logs, handoff, not running ---------------------------

#[test]
fn stop_wait_returns_once_the_wrapper_has_exited_and_cleaned_up() {
    let (mut w, socket) = start(&["--pid-file", "w.pid"], |_| {});
    let pids = w.start_epochs(1);
    let pid_file = w.path().join("w.pid");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", w.pid)
    );

    let out = ctl(&socket, &["stop", "--wait", "--timeout", "20"]);
    // What stands when ctl returns: every child reaped, both files gone.
    let socket_left = socket.exists();
    let pid_file_left = pid_file.exists();
    let children_left: Vec<i32> = pids.iter().copied().filter(|p| exists(*p)).collect();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "hot-restarter exited with code 0\n");
    assert!(!socket_left, "the socket file outlived stop --wait");
    assert!(!pid_file_left, "the pid file outlived stop --wait");
    assert!(children_left.is_empty(), "not reaped: {children_left:?}");
    // The reply is the wrapper's last act: its exit follows at once.
    assert!(
        wait_until(Duration::from_secs(2), || !running(w.pid)),
        "the wrapper still runs after answering stop --wait"
    );
    assert_eq!(w.exit_code(), 0);
    w.assert_logged("INFO", "all children exited cleanly");

    // Nothing runs now.
    let out = ctl(&socket, &["status"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
}

#[test]
fn stop_wait_is_answered_only_after_the_pid_file_is_removed() {
    // The wrapper reads its pid file before removing it (it removes it
    // only if it still holds its pid). With a FIFO put in its place, that
    // read blocks until the test writes: a moment, held open, between the
    // wrapper's cleanup and its exit. No answer may have come by then.
    let (mut w, socket) = start(&["--pid-file", "w.pid"], |_| {});
    up(&w);
    let pid_file = w.path().join("w.pid");
    let fifo = w.path().join("w.pid.fifo");
    make_fifo(&fifo);
    fs::rename(&fifo, &pid_file).unwrap();

    let mut stop = connect(&socket);
    stop.write_all(b"{\"v\":1,\"cmd\":\"stop\",\"wait\":true}\n")
        .unwrap();
    let blocked = || {
        let wchan = fs::read_to_string(format!("/proc/{}/wchan", w.pid)).unwrap_or_default();
        wchan.contains("wait_for_partner") || wchan.contains("fifo")
    };
    assert!(
        wait_until(DEADLINE, blocked),
        "the wrapper never read its pid file; output:\n{}",
        w.output()
    );
    stop.set_nonblocking(true).unwrap();
    let mut early = [0u8; 256];
    let got = stop.read(&mut early);
    assert!(
        matches!(&got, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "stop --wait was answered before the pid file was removed: {:?}",
        got.map(|n| String::from_utf8_lossy(&early[..n]).into_owned())
    );
    stop.set_nonblocking(false).unwrap();

    // Let it read its own pid: it removes the file, then answers.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut writer = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&pid_file)
            .unwrap();
        writer.write_all(format!("{}\n", w.pid).as_bytes()).unwrap();
    }
    let reply = read_reply(&stop);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["detail"], "hot-restarter exited with code 0");
    assert!(!pid_file.exists(), "the pid file outlived the answer");
    assert!(!socket.exists(), "the socket outlived the answer");
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn stop_wait_says_when_children_had_to_be_killed() {
    let (mut w, socket) = start_env(&["--term-wait", "4"], &[("IGNORE_TERM", "1")], |_| {});
    let pid0 = up(&w);
    // stop without --wait answers at once; the wrapper is shutting down.
    let out = ctl(&socket, &["stop"]);
    assert_eq!((code(&out), stdout(&out)), (0, "stopping\n".into()));
    w.wait_report_event(0, "term", 1);
    let s = status(&socket);
    assert_eq!(s["phase"], "shutting-down", "{s}");
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    // Nothing else is acted on meanwhile.
    for (args, reason) in [
        (&["reload", "--wait"][..], "the wrapper is shutting down"),
        (&["reload"][..], "the wrapper is shutting down"),
        (&["reopen-logs"][..], "the wrapper is shutting down"),
    ] {
        let out = ctl(&socket, args);
        assert_eq!(code(&out), 1, "{args:?}");
        assert!(stderr(&out).contains(reason), "{args:?}: {}", stderr(&out));
    }
    let out = ctl(&socket, &["stop", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "hot-restarter-ctl: stop failed: hot-restarter exited with code 1\n"
    );
    assert_eq!(w.exit_code(), 1);
    assert!(!exists(pid0));
    assert!(!w.path().join("epoch-1").exists());
}

#[test]
fn reopen_logs_reaches_every_child() {
    let (w, socket) = start(&[], |_| {});
    w.start_epochs(1);
    let out = ctl(&socket, &["reopen-logs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "SIGUSR1 sent to 2 children\n");
    w.wait_report_event(0, "usr1", 1);
    w.wait_report_event(1, "usr1", 1);
    assert_eq!(w.report(0).count("term"), 0);
}

#[test]
fn handoff_without_generations_is_refused_with_the_reason() {
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    for args in [&["handoff"][..], &["handoff", "--wait", "--timeout", "20"]] {
        let out = ctl(&socket, args);
        assert_eq!(code(&out), 1, "{args:?}");
        assert_eq!(
            stderr(&out),
            "hot-restarter-ctl: handoff failed: handoff needs --envoy-admin and --handoff-admin\n"
        );
    }
    let s = status(&socket);
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    assert!(s["last_reload"].is_null());
}

#[test]
fn nothing_running_is_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let check = |what: &str| {
        for args in [&["status"][..], &["reload", "--wait"], &["stop", "--wait"]] {
            let out = ctl(&socket, args);
            assert_eq!(code(&out), 3, "{what} {args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("hot-restarter is not running"),
                "{}",
                stderr(&out)
            );
        }
        let out = ctl(&socket, &["status", "--prometheus"]);
        assert_eq!(code(&out), 3);
        let samples = parse_prometheus(&stdout(&out));
        assert_eq!(
            samples.into_iter().collect::<Vec<_>>(),
            [("hot_restarter_up".to_string(), 0.0)]
        );
    };
    check("no file");
    // A wrapper that has been and gone.
    let (mut w, socket2) = start(&[], |_| {});
    up(&w);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    assert!(!socket2.exists(), "the socket file outlived the wrapper");
    let out = ctl(&socket2, &["status"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // A stale socket file nothing listens on.
    drop(UnixListener::bind(&socket).unwrap());
    check("stale file");
}

// ----- bad input and faults ------------------------------------------------

#[test]
fn garbage_gets_an_error_reply_and_changes_nothing() {
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    let cases: [(&[u8], &str); 10] = [
        (b"hello\n", "malformed request: not JSON"),
        (b"[1,2]\n", "not a JSON object"),
        (b"{}\n", "no protocol version"),
        (b"{\"cmd\":\"reload\"}\n", "no protocol version"),
        (
            b"{\"v\":2,\"cmd\":\"reload\"}\n",
            "unsupported protocol version 2",
        ),
        (b"{\"v\":1}\n", "no command"),
        (
            b"{\"v\":1,\"cmd\":\"explode\"}\n",
            "unknown command \"explode\"",
        ),
        (
            b"{\"v\":1,\"cmd\":\"reload\",\"wait\":\"yes\"}\n",
            "\"wait\" must be true or false",
        ),
        (
            b"{\"v\":1,\"cmd\":\"status\",\"wait\":true}\n",
            "status takes no \"wait\"",
        ),
        (b"\xff\xfe{\"v\":1,\"cmd\":\"reload\"}\n", "not JSON"),
    ];
    for (request, expected) in cases {
        let reply = exchange(&socket, request);
        let error = error_of(&reply);
        assert!(
            error.contains(expected),
            "{:?}: {error:?}",
            String::from_utf8_lossy(request)
        );
    }
    // A request without a newline, ended by the client's end of file, is
    // read; one cut short is malformed.
    let mut half = connect(&socket);
    half.write_all(b"{\"v\":1,\"cmd\":\"rel").unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(error_of(&read_reply(&half)).contains("not JSON"));

    // Nothing happened: no restart, no signal, no log line for a request.
    let s = status(&socket);
    assert_eq!(children(&s), [child(pid0, 0, "ready")], "{s}");
    assert!(s["last_reload"].is_null());
    assert_eq!(counters(&s), expected_counters(&[]));
    assert!(!w.path().join("epoch-1").exists());
    assert_eq!(w.report(0).count("usr1") + w.report(0).count("term"), 0);
    assert!(
        w.messages_starting("control socket: ").is_empty(),
        "{}",
        w.output()
    );
    assert_eq!(w.count("got SIGHUP"), 0);
}

#[test]
fn an_overlong_line_is_refused_without_being_held() {
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    // Warm up: the first status allocates what every later one reuses.
    status(&socket);
    w.wait_idle();
    let before = ProcFigures::read(w.pid);

    // Four clients at once, each sending 1 MB without a newline, and
    // staying connected: a wrapper that buffered the line would hold 4 MB
    // now. It reads 8 KiB of each, answers and hangs up, and the writes
    // fail (EPIPE, ECONNRESET).
    const CLIENTS: usize = 4;
    let sent = Arc::new(Barrier::new(CLIENTS + 1));
    let measured = Arc::new(Barrier::new(CLIENTS + 1));
    let senders: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = socket.clone();
            let (sent, measured) = (sent.clone(), measured.clone());
            thread::spawn(move || {
                let stream = connect(&socket);
                let mut writer = stream.try_clone().unwrap();
                let _ = writer.write_all(&vec![b'x'; 1 << 20]);
                sent.wait();
                measured.wait();
                let _ = writer.write_all(b"\n");
                error_of(&read_reply(&stream))
            })
        })
        .collect();
    sent.wait();
    w.wait_idle();
    let during = ProcFigures::read(w.pid);
    measured.wait();
    for sender in senders {
        let error = sender.join().unwrap();
        assert_eq!(error, "request too long (over 8192 bytes)");
    }
    w.wait_idle();
    let after = ProcFigures::read(w.pid);
    // Had it kept even one line, it would have grown by 1 MB.
    for figures in [during, after] {
        assert!(
            figures.vm_rss_kb < before.vm_rss_kb + 512,
            "before: {before}; while the clients were connected: {during}; after: {after}"
        );
    }
    assert!(
        wait_until(DEADLINE, || fds(w.pid) == before.fds),
        "descriptors: {} before, {} after",
        before.fds,
        fds(w.pid)
    );
    // Still serving.
    let s = status(&socket);
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    let out = ctl(&socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn silent_clients_delay_no_signal() {
    let (mut w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    // One client says nothing, one stops halfway through its request.
    let silent = connect(&socket);
    let mut partial = connect(&socket);
    partial.write_all(b"{\"v\":1,\"cmd\":").unwrap();
    let connected = Instant::now();
    // Both are still connected and unanswered: a read would block.
    let still_connected = |s: &UnixStream| {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let r = (&*s).read(&mut buf);
        s.set_nonblocking(false).unwrap();
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    };

    w.signal(Signal::SIGHUP);
    let pid1 = w.ready_pid(1);
    w.wait_for(&format!("forked new child process with PID={pid1}"));
    let hup_took = connected.elapsed();
    // The wrapper drops a client that sends no request within 5 s: the
    // SIGHUP was acted on long before, while both clients were connected.
    assert!(still_connected(&silent) && still_connected(&partial));

    w.signal(Signal::SIGTERM);
    let status = w.wait_exit(DEADLINE);
    let stop_took = connected.elapsed();
    assert_eq!(status.code(), Some(0), "{}", w.output());
    assert!(
        hup_took < Duration::from_secs(3) && stop_took < Duration::from_secs(4),
        "SIGHUP took {hup_took:?}, SIGTERM {stop_took:?} with silent clients connected"
    );
    for pid in [pid0, pid1] {
        assert!(!exists(pid));
    }
    // The wrapper closed them as it exited.
    for s in [&silent, &partial] {
        let mut rest = Vec::new();
        let _ = (&*s).read_to_end(&mut rest);
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
}

#[test]
fn a_hundred_clients_at_once_are_all_answered() {
    const CLIENTS: usize = 100;
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    w.wait_idle();
    let before = fds(w.pid);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let socket = socket.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut stream = connect(&socket);
                // Every client connected before any sends.
                barrier.wait();
                stream.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n").unwrap();
                read_reply(&stream)
            })
        })
        .collect();
    for client in clients {
        let reply = client.join().unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["status"]["pid"], w.pid);
        assert_eq!(children(&reply["status"]), [child(pid0, 0, "ready")]);
    }
    assert!(
        wait_until(DEADLINE, || fds(w.pid) == before),
        "descriptors: {before} before, {} after",
        fds(w.pid)
    );
    assert_eq!(w.messages_starting("control socket: ").len(), 0);
}

#[test]
fn a_waiter_that_hangs_up_is_forgotten() {
    let (mut w, socket) = start(&["--ready-check", "ready.sh"], |dir| {
        script(dir, "ready.sh", GATED_READY);
    });
    ready(&w, 0);
    // A reload --wait whose client leaves while epoch 1 is not ready.
    let mut leaver = connect(&socket);
    leaver
        .write_all(format!("{RELOAD_WAIT}\n").as_bytes())
        .unwrap();
    let pid1 = w.ready_pid(1);
    drop(leaver);
    // One that leaves before its request is even read.
    let mut quick = connect(&socket);
    quick
        .write_all(format!("{RELOAD_WAIT}\n").as_bytes())
        .unwrap();
    drop(quick);
    w.wait_for_count(&logged_request(RELOAD_WAIT), 2);

    fs::write(w.path().join("ready-1"), "").unwrap();
    w.wait_for_text(&format!("epoch 1 (PID={pid1}) is ready after"));
    // The second request was held, and runs once epoch 1 is ready.
    let pid2 = w.ready_pid(2);
    fs::write(w.path().join("ready-2"), "").unwrap();
    w.wait_for_text(&format!("epoch 2 (PID={pid2}) is ready after"));
    assert!(w.is_running());
    let s = status(&socket);
    assert_eq!(s["phase"], "running", "{s}");
    assert_eq!(s["last_reload"]["epoch"], 2, "{s}");
    assert_eq!(counters(&s), expected_counters(&[("reloads_done", 2)]));
    // A stop --wait that leaves: the wrapper still stops, and cleanly.
    let mut stopper = connect(&socket);
    stopper
        .write_all(b"{\"v\":1,\"cmd\":\"stop\",\"wait\":true}\n")
        .unwrap();
    drop(stopper);
    assert_eq!(w.exit_code(), 0);
    assert!(!socket.exists());
}

// ----- what is at the socket path --------------------------------------------

#[test]
fn a_socket_in_a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("missing/ctl.sock");
    let mut w = on_socket(dir, &socket, &[]);
    assert_eq!(w.exit_code(), 1);
    let output = w.output();
    assert!(
        output.contains(&format!(
            "cannot create control socket {}",
            socket.display()
        )) && output.contains("No such file or directory"),
        "{output}"
    );
    assert_eq!(
        started_epochs(&w.lines()),
        Vec::<u32>::new(),
        "a child was started"
    );
    assert!(!w.path().join("epoch-0").exists());
}

#[test]
fn a_symlink_at_the_socket_path_is_refused_and_left_alone() {
    for dangling in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "start.sh", REPORTER);
        let target = dir.path().join("precious");
        if !dangling {
            fs::write(&target, "keep me").unwrap();
        }
        let socket = dir.path().join("ctl.sock");
        std::os::unix::fs::symlink(&target, &socket).unwrap();
        let mut cmd = command(dir.path());
        cmd.arg("--control-socket").arg(&socket).arg("start.sh");
        let mut w = Wrapper::spawn(dir, cmd);
        assert_eq!(w.exit_code(), 1, "dangling={dangling}");
        let output = w.output();
        assert!(
            output.contains(&format!(
                "control socket path {} is a symlink",
                socket.display()
            )),
            "{output}"
        );
        assert!(
            fs::symlink_metadata(&socket)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_link(&socket).unwrap(), target);
        if dangling {
            assert!(!target.exists(), "created through the link");
        } else {
            assert_eq!(fs::read_to_string(&target).unwrap(), "keep me");
        }
        assert!(!w.path().join("epoch-0").exists(), "a child was started");
    }
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    // What a wrapper killed with SIGKILL leaves: a socket file nothing
    // listens on.
    drop(UnixListener::bind(&socket).unwrap());
    // A second name keeps the stale inode from being reused by the new
    // socket, so that the two can be told apart.
    let old = dir.path().join("old.sock");
    fs::hard_link(&socket, &old).unwrap();
    let stale = fs::symlink_metadata(&socket).unwrap().ino();
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    cmd.arg("--control-socket").arg(&socket).arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    let pid0 = up(&w);
    w.wait_for(&format!(
        "removed stale control socket {}",
        socket.display()
    ));
    assert_ne!(fs::symlink_metadata(&socket).unwrap().ino(), stale);
    assert_eq!(mode_of(&socket), (true, 0o600));
    let s = status(&socket);
    assert_eq!(s["pid"], w.pid);
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    assert!(!socket.exists());
}

#[test]
fn a_live_wrappers_socket_is_not_taken_over() {
    let (w1, socket) = start(&[], |_| {});
    let pid0 = up(&w1);
    let inode = fs::symlink_metadata(&socket).unwrap().ino();

    // A second wrapper, in a directory of its own, given the same socket.
    second_wrapper_refused(&socket, &[]);

    // The first is unaffected: the same socket file, still serving.
    assert_eq!(fs::symlink_metadata(&socket).unwrap().ino(), inode);
    assert_eq!(mode_of(&socket), (true, 0o600));
    let s = status(&socket);
    assert_eq!(s["pid"], w1.pid);
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    let out = ctl(&socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    w1.ready_pid(1);
}

/// The wrapper on the reporter in `dir`, with `--control-socket socket`
/// and `extra` flags.
fn on_socket(dir: tempfile::TempDir, socket: &Path, extra: &[&std::ffi::OsStr]) -> Wrapper {
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    cmd.arg("--control-socket")
        .arg(socket)
        .args(extra)
        .arg("start.sh");
    Wrapper::spawn(dir, cmd)
}

/// A second wrapper, in a directory of its own, given `socket` (which a
/// running wrapper serves) and `extra` flags: it exits 1 before epoch 0,
/// saying that another process answers there.
fn second_wrapper_refused(socket: &Path, extra: &[&std::ffi::OsStr]) -> Wrapper {
    let mut w = on_socket(tempfile::tempdir().unwrap(), socket, extra);
    w.expect_refused_at_start(1, "a second wrapper on the same socket");
    assert!(
        w.output()
            .contains(&format!("another process answers on {}", socket.display())),
        "{}",
        w.output()
    );
    w
}

#[test]
fn a_second_wrapper_refused_at_the_socket_leaves_the_first_ones_pid_file() {
    // Both given the same --pid-file, as a supervisor's start program run
    // twice would: the refused one must not have replaced (and, exiting,
    // removed) the pid file of the one that runs.
    let (w1, socket) = start(&["--pid-file", "w.pid"], |_| {});
    up(&w1);
    let pid_file = w1.path().join("w.pid");
    let w2 = second_wrapper_refused(&socket, &["--pid-file".as_ref(), pid_file.as_os_str()]);
    assert_eq!(
        fs::read_to_string(&pid_file).ok(),
        Some(format!("{}\n", w1.pid)),
        "the first wrapper's pid file; the second wrapper said:\n{}",
        w2.output()
    );
}

#[test]
fn a_pid_file_that_cannot_be_written_leaves_no_socket_behind() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let mut w = on_socket(
        dir,
        &socket,
        &["--pid-file".as_ref(), "missing/w.pid".as_ref()],
    );
    assert_eq!(w.exit_code(), 1);
    assert!(
        w.output().contains("cannot write pid file missing/w.pid"),
        "{}",
        w.output()
    );
    assert!(!socket.exists(), "the socket file outlived the wrapper");
    assert!(!w.path().join("epoch-0").exists(), "a child was started");
}
