//! hot-restarter-ctl against a fake wrapper: a thread in the test that
//! answers on a unix socket in a temp dir with canned reply lines. Exit
//! codes, output, and `start` with a fake hot-restarter script.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::support::{DEADLINE, wait_until};

const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

/// What the fake wrapper does with one connection.
enum Answer {
    /// Write this reply line.
    Line(String),
    /// Read the request, then never reply (until the client hangs up).
    Silent,
    /// Read the request, remove the socket file and close without a reply,
    /// as a wrapper that exits.
    Vanish,
}

/// A fake wrapper serving one connection per answer, in order. `join`
/// returns the request lines it read.
struct Fake {
    thread: JoinHandle<Vec<String>>,
}

impl Fake {
    fn serve(path: &Path, answers: Vec<Answer>) -> Fake {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let path = path.to_path_buf();
        let thread = thread::spawn(move || {
            let mut requests = Vec::new();
            for answer in answers {
                let mut stream = accept(&listener);
                stream.set_read_timeout(Some(DEADLINE)).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                requests.push(line.trim_end().to_string());
                match answer {
                    Answer::Line(reply) => stream.write_all(reply.as_bytes()).unwrap(),
                    Answer::Silent => {
                        // Returns at the client's hang-up (or the deadline).
                        let _ = reader.read_line(&mut line);
                    }
                    Answer::Vanish => std::fs::remove_file(&path).unwrap(),
                }
            }
            requests
        });
        Fake { thread }
    }

    fn join(self) -> Vec<String> {
        self.thread.join().expect("the fake wrapper failed")
    }
}

fn accept(listener: &UnixListener) -> UnixStream {
    let mut got = None;
    let ok = wait_until(DEADLINE, || match listener.accept() {
        Ok((stream, _)) => {
            got = Some(stream);
            true
        }
        Err(_) => false,
    });
    assert!(ok, "hot-restarter-ctl never connected");
    let stream = got.unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

fn ctl(socket: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(CTL);
    cmd.env_remove("HOT_RESTARTER_CONTROL_SOCKET");
    if let Some(socket) = socket {
        cmd.env("HOT_RESTARTER_CONTROL_SOCKET", socket);
    }
    cmd.args(args).output().expect("run hot-restarter-ctl")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    (dir, socket)
}

const STATUS: &str = r#"{"v":1,"ok":true,"status":{"pid":4645,"phase":"running","uptime_s":75.5,
"children":[{"pid":4690,"epoch":2,"generation":0,"state":"draining"},
{"pid":4700,"epoch":3,"generation":0,"state":"ready"}],
"last_reload":{"epoch":3,"result":"done","reason":null,"ms":850},
"counters":{"reloads_done":3,"reloads_skipped":0,"reloads_failed":1,"handoffs_done":0,"handoffs_failed":0}}}"#;

fn status_line() -> String {
    format!("{}\n", STATUS.replace('\n', ""))
}

#[test]
fn nothing_answering_is_exit_3() {
    let (_dir, socket) = dir();
    let out = ctl(Some(&socket), &["status"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hot-restarter is not running"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&socket.display().to_string()));
    // A stale socket file: nothing listens on it.
    drop(UnixListener::bind(&socket).unwrap());
    for args in [&["reload"][..], &["stop", "--wait"], &["reopen-logs"]] {
        let out = ctl(Some(&socket), args);
        assert_eq!(code(&out), 3, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("Connection refused"),
            "{}",
            stderr(&out)
        );
    }
    let out = ctl(Some(&socket), &["status", "--prometheus"]);
    assert_eq!(code(&out), 3);
    assert!(
        stdout(&out).lines().any(|l| l == "hot_restarter_up 0"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn usage_errors_are_exit_2() {
    let (_dir, socket) = dir();
    let s = socket.to_str().unwrap();
    let cases: [(Option<&Path>, &[&str], &str); 8] = [
        (None, &["status"], "no control socket: give --socket PATH"),
        (
            None,
            &["--socket", s, "explode"],
            "unrecognized subcommand 'explode'",
        ),
        (
            None,
            &["--socket", s, "status", "--json", "--prometheus"],
            "cannot be used with",
        ),
        (
            None,
            &["--socket", s, "reload", "--timeout", "soon"],
            "'soon' is not a number",
        ),
        (None, &["--socket", s, "reload", "--timeout", "-1"], "'-1'"),
        (
            None,
            &["--socket", s, "reload", "--wait", "--timeout", "1e19"],
            "'1e19' is too large",
        ),
        (Some(&socket), &["start"], "HOT_RESTARTER_ARGS"),
        (None, &["start", "--", "start.sh"], "no control socket"),
    ];
    for (env, args, expected) in cases {
        let out = ctl(env, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("hot-restarter-ctl: ") && err.contains(expected),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // An empty variable is no socket either.
    let out = Command::new(CTL)
        .env("HOT_RESTARTER_CONTROL_SOCKET", "")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn a_failed_reply_is_exit_1_with_the_reason() {
    let (_dir, socket) = dir();
    let reason = "preflight for epoch 2 failed: bad listener";
    let reply = format!("{{\"v\":1,\"ok\":false,\"error\":\"{reason}\"}}\n");
    let fake = Fake::serve(&socket, vec![Answer::Line(reply)]);
    let out = ctl(Some(&socket), &["reload", "--wait"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        format!("hot-restarter-ctl: reload failed: {reason}\n")
    );
    assert_eq!(fake.join(), [r#"{"v":1,"cmd":"reload","wait":true}"#]);
}

#[test]
fn a_done_reply_is_exit_0_with_the_detail() {
    let (_dir, socket) = dir();
    let done = |d: &str| Answer::Line(format!("{{\"v\":1,\"ok\":true,\"detail\":\"{d}\"}}\n"));
    let fake = Fake::serve(
        &socket,
        vec![
            done("epoch 3 (PID=123) is ready"),
            done("stopping"),
            done("sent"),
            done("ok"),
        ],
    );
    let s = socket.to_str().unwrap();
    let out = ctl(None, &["--socket", s, "reload", "--wait"]);
    assert_eq!(
        (code(&out), stdout(&out)),
        (0, "epoch 3 (PID=123) is ready\n".into())
    );
    let out = ctl(Some(&socket), &["stop"]);
    assert_eq!((code(&out), stdout(&out)), (0, "stopping\n".into()));
    let out = ctl(Some(&socket), &["reopen-logs"]);
    assert_eq!(code(&out), 0);
    let out = ctl(Some(&socket), &["handoff", "--socket", s]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        fake.join(),
        [
            r#"{"v":1,"cmd":"reload","wait":true}"#,
            r#"{"v":1,"cmd":"stop","wait":false}"#,
            r#"{"v":1,"cmd":"reopen-logs"}"#,
            r#"{"v":1,"cmd":"handoff","wait":false}"#,
        ]
    );
}

#[test]
fn status_as_text_json_and_prometheus() {
    let (_dir, socket) = dir();
    let fake = Fake::serve(
        &socket,
        (0..3).map(|_| Answer::Line(status_line())).collect(),
    );
    let text = ctl(Some(&socket), &["status"]);
    assert_eq!(code(&text), 0, "{}", stderr(&text));
    let text = stdout(&text);
    assert!(
        text.starts_with("hot-restarter PID=4645: running, up 1m 15s\n"),
        "{text}"
    );
    assert!(
        text.contains("serving: epoch 3 generation 0 (PID=4700)\n"),
        "{text}"
    );
    assert!(
        text.contains("  PID=4690 epoch 2 generation 0 draining\n"),
        "{text}"
    );

    let json = ctl(Some(&socket), &["status", "--json"]);
    assert_eq!(code(&json), 0);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["pid"], 4645);
    assert_eq!(value["children"][1]["state"], "ready");
    assert_eq!(value["last_reload"]["ms"], 850);
    assert_eq!(value["counters"]["reloads_failed"], 1);

    let prom = ctl(Some(&socket), &["status", "--prometheus"]);
    assert_eq!(code(&prom), 0);
    let prom = stdout(&prom);
    for line in [
        "hot_restarter_up 1",
        "hot_restarter_serving_epoch 3",
        "hot_restarter_children{state=\"draining\"} 1",
        "hot_restarter_reloads_total{result=\"failed\"} 1",
        "hot_restarter_last_reload_duration_seconds 0.85",
    ] {
        assert!(prom.lines().any(|l| l == line), "{line} missing in {prom}");
    }
    assert_eq!(fake.join().len(), 3);
}

#[test]
fn another_protocol_version_is_told_apart() {
    let (_dir, socket) = dir();
    let fake = Fake::serve(
        &socket,
        vec![
            Answer::Line("{\"v\":2,\"ok\":true,\"detail\":\"fine\"}\n".into()),
            Answer::Line("{\"ok\":true}\n".into()),
            Answer::Line("not json\n".into()),
        ],
    );
    let out = ctl(Some(&socket), &["reload"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "hot-restarter-ctl: the wrapper speaks protocol version 2, this hot-restarter-ctl speaks 1\n"
    );
    for complaint in [
        "names no protocol version",
        "malformed reply from the wrapper",
    ] {
        let out = ctl(Some(&socket), &["status"]);
        assert_eq!(code(&out), 1);
        assert!(stderr(&out).contains(complaint), "{}", stderr(&out));
    }
    fake.join();
}

#[test]
fn a_wait_that_runs_out_is_exit_1_and_hangs_up() {
    let (_dir, socket) = dir();
    let fake = Fake::serve(&socket, vec![Answer::Silent]);
    let started = Instant::now();
    let out = ctl(Some(&socket), &["reload", "--wait", "--timeout", "0.3"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "hot-restarter-ctl: timed out after 0.3 s waiting for the reload\n"
    );
    assert!(started.elapsed() < DEADLINE);
    // The fake saw the hang-up (its read returned), so join returns.
    assert_eq!(fake.join(), [r#"{"v":1,"cmd":"reload","wait":true}"#]);
}

#[test]
fn stop_wait_is_not_success_without_a_reply() {
    // Only a reply says the children were stopped: a wrapper that vanished
    // (SIGKILL, OOM) may have left them running.
    let (_dir, socket) = dir();
    let fake = Fake::serve(&socket, vec![Answer::Vanish]);
    let out = ctl(Some(&socket), &["stop", "--wait"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("closed the connection without a reply"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(fake.join(), [r#"{"v":1,"cmd":"stop","wait":true}"#]);
}

/// A fake hot-restarter for `start`: records its pid, arguments, socket
/// variable, session and stdin, prints a line, then runs (or exits with
/// $FAKE_EXIT).
const FAKE_WRAPPER: &str = r#"#!/bin/sh
{
  echo "pid=$$"
  echo "args=$*"
  echo "socket=$HOT_RESTARTER_CONTROL_SOCKET"
  echo "sid=$(cut -d' ' -f6 /proc/$$/stat)"
  echo "stdin=$(readlink /proc/$$/fd/0)"
} > "$FAKE_REPORT.tmp"
mv "$FAKE_REPORT.tmp" "$FAKE_REPORT"
echo "fake wrapper says hello"
if [ -n "$FAKE_EXIT" ]; then echo "fake wrapper fails" >&2; exit "$FAKE_EXIT"; fi
exec sleep 60
"#;

/// Kills the fake wrapper `start` left running.
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn report(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn field(report: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    report
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .to_string()
}

#[test]
fn start_runs_the_wrapper_detached_and_returns_once_it_answers() {
    let (dir, socket) = dir();
    let bin = crate::support::script(dir.path(), "fake-hot-restarter", FAKE_WRAPPER);
    let report_path = dir.path().join("report");
    let log = dir.path().join("wrapper.log");
    // Answers on the socket only once the fake wrapper runs, with its pid.
    let (sock, rep) = (socket.clone(), report_path.clone());
    let answering = thread::spawn(move || {
        assert!(
            wait_until(DEADLINE, || report(&rep).is_some()),
            "the fake never ran"
        );
        let pid = field(&report(&rep).unwrap(), "pid");
        let line = status_line().replace("\"pid\":4645", &format!("\"pid\":{pid}"));
        Fake::serve(&sock, vec![Answer::Line(line)]).join()
    });
    let out = Command::new(CTL)
        .env("HOT_RESTARTER_CONTROL_SOCKET", &socket)
        .env("HOT_RESTARTER_BIN", &bin)
        .env("FAKE_REPORT", &report_path)
        .args(["start", "--log"])
        .arg(&log)
        .args(["--", "--term-wait", "5", "start_envoy.sh"])
        .output()
        .unwrap();
    let seen = report(&report_path).unwrap_or_default();
    let _kill = KillOnDrop(
        seen.lines()
            .find_map(|l| l.strip_prefix("pid=")?.parse().ok()),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pid = field(&seen, "pid");
    assert!(
        stdout(&out).contains(&format!("hot-restarter started (PID={pid})")),
        "{}",
        stdout(&out)
    );
    assert_eq!(answering.join().unwrap(), [r#"{"v":1,"cmd":"status"}"#]);
    assert_eq!(field(&seen, "args"), "--term-wait 5 start_envoy.sh");
    assert_eq!(field(&seen, "socket"), socket.display().to_string());
    assert_eq!(field(&seen, "sid"), pid, "a session of its own");
    assert_eq!(field(&seen, "stdin"), "/dev/null");
    assert!(wait_until(DEADLINE, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("fake wrapper says hello"))
    }));
    assert!(
        crate::support::running(pid.parse().unwrap()),
        "left running"
    );
}

#[test]
fn start_reports_a_wrapper_that_exits_with_its_code_and_log() {
    let (dir, socket) = dir();
    let bin = crate::support::script(dir.path(), "fake-hot-restarter", FAKE_WRAPPER);
    let log = dir.path().join("wrapper.log");
    std::fs::write(&log, "an older line\n").unwrap();
    let out = Command::new(CTL)
        .env("HOT_RESTARTER_BIN", &bin)
        .env("FAKE_REPORT", dir.path().join("report"))
        .env("FAKE_EXIT", "4")
        .arg("--socket")
        .arg(&socket)
        .args(["start", "--timeout", "20", "--log"])
        .arg(&log)
        .args(["--", "start_envoy.sh"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains(") exited with code 4 before it answered on"),
        "{err}"
    );
    assert!(
        err.contains("fake wrapper says hello") && err.contains("fake wrapper fails"),
        "{err}"
    );
    assert!(
        err.contains("an older line"),
        "appended, not truncated: {err}"
    );
}

#[test]
fn start_leaves_a_running_wrapper_alone() {
    let (dir, socket) = dir();
    let fake = Fake::serve(&socket, vec![Answer::Line(status_line())]);
    let out = Command::new(CTL)
        .env("HOT_RESTARTER_BIN", dir.path().join("must-not-run"))
        .args(["start", "--", "--control-socket"])
        .arg(&socket)
        .arg("start_envoy.sh")
        .env_remove("HOT_RESTARTER_CONTROL_SOCKET")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "hot-restarter is already running (PID=4645)\n"
    );
    fake.join();
    // --socket and the wrapper's --control-socket must agree.
    let out = ctl(
        Some(&socket),
        &["start", "--", "--control-socket=/elsewhere", "x"],
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("differs from the wrapper's --control-socket /elsewhere"));
}
