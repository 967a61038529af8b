//! Test harness: runs the real binary in a temp dir with fixture scripts,
//! collects its log lines as they are written, and waits for events with
//! deadlines. Every process a test starts is killed when the test ends.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_hot-restarter");

/// The default deadline for anything a test waits for. Generous, because
/// these machines are shared and a deadline is only hit on failure.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A fixture child: reports what it saw to `$REPORT_DIR/epoch-$RESTART_EPOCH`
/// (its pid, argv, signal mask and what its descriptors point to, then every signal it gets)
/// and runs until SIGTERM, on which it exits with `$TERM_EXIT` (default 0).
/// `IGNORE_TERM=1` makes it ignore SIGTERM; `EXIT_AT_START=<code>` makes it
/// exit at once; `FAIL_EPOCH=<n>` makes epoch n exit 3 at once.
pub const REPORTER: &str = r#"#!/bin/sh
r="$REPORT_DIR/epoch-$RESTART_EPOCH"
{
  echo "pid=$$"
  echo "epoch=$RESTART_EPOCH"
  echo "argv0=$0"
  echo "args=$*"
  grep -E '^(SigBlk|SigIgn):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
  echo "fdtargets=$(for f in /proc/$$/fd/*; do readlink "$f"; done | tr '\n' ' ')"
} > "$r.tmp"
mv "$r.tmp" "$r"
if [ -n "$EXIT_AT_START" ]; then exit "$EXIT_AT_START"; fi
if [ "$FAIL_EPOCH" = "$RESTART_EPOCH" ]; then exit 3; fi
trap 'echo usr1 >> "$r"' USR1
if [ -n "$IGNORE_TERM" ]; then
  trap 'echo term >> "$r"' TERM
else
  trap 'echo term >> "$r"; exit ${TERM_EXIT:-0}' TERM
fi
while :; do sleep 0.02; done
"#;

/// Write an executable script into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Is `pid` a process that has not been reaped (zombies count as alive)?
pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Is `pid` running (present and not a zombie)?
pub fn running(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the last ')' (the command may contain one).
            let after = &stat[stat.rfind(')').unwrap() + 1..];
            !matches!(after.trim_start().chars().next(), Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

/// Poll `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The zombies whose parent is `ppid`.
pub fn zombie_children(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        if after.len() > 1 && after[0] == "Z" && after[1] == ppid.to_string() {
            out.push(pid);
        }
    }
    out
}

type Lines = Arc<(Mutex<Vec<String>>, Condvar)>;

/// A running hot-restarter under test, in its own temp dir.
pub struct Wrapper {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub pid: i32,
    lines: Lines,
    reader: Option<thread::JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// Build a command for the binary, run in `dir` with `REPORT_DIR=dir`.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env("REPORT_DIR", dir)
        .env_remove("RESTART_EPOCH")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Wrapper {
    /// Start the wrapper on the reporter fixture (`start.sh`) with `args`
    /// before the script name.
    pub fn start(args: &[&str]) -> Wrapper {
        Wrapper::start_with(args, REPORTER, |_| {})
    }

    /// Start the wrapper with `args`, a `start.sh` holding `body`, and a
    /// chance to adjust the command (environment, extra arguments).
    pub fn start_with(args: &[&str], body: &str, adjust: impl FnOnce(&mut Command)) -> Wrapper {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "start.sh", body);
        let mut cmd = command(dir.path());
        cmd.args(args).arg("start.sh");
        adjust(&mut cmd);
        Wrapper::spawn(dir, cmd)
    }

    /// Run a prepared command (which must pipe stdout) in `dir`.
    pub fn spawn(dir: tempfile::TempDir, mut cmd: Command) -> Wrapper {
        let mut child = cmd.spawn().expect("cannot start hot-restarter");
        let pid = child.id() as i32;
        let lines: Lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        let reader = thread::spawn(move || {
            let sink2 = sink.clone();
            let err = thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let (lock, cv) = &*sink2;
                    lock.lock().unwrap().push(format!("stderr: {line}"));
                    cv.notify_all();
                }
            });
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let (lock, cv) = &*sink;
                lock.lock().unwrap().push(line);
                cv.notify_all();
            }
            let _ = err.join();
        });
        Wrapper {
            dir,
            child: Some(child),
            pid,
            lines,
            reader: Some(reader),
            status: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// All output lines so far (stderr lines are prefixed `stderr: `).
    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// How many log lines end with `message` (the text after the source
    /// location).
    pub fn count(&self, message: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| message_of(l) == message)
            .count()
    }

    /// Wait until `count` lines carry exactly `message`; panics with the
    /// whole output otherwise.
    pub fn wait_for_count(&self, message: &str, count: usize) {
        let (lock, cv) = &*self.lines;
        let end = Instant::now() + DEADLINE;
        let mut lines = lock.lock().unwrap();
        loop {
            if lines.iter().filter(|l| message_of(l) == message).count() >= count {
                return;
            }
            let now = Instant::now();
            if now >= end {
                panic!(
                    "timed out waiting for {count} x {message:?}; output:\n{}",
                    lines.join("\n")
                );
            }
            lines = cv.wait_timeout(lines, end - now).unwrap().0;
        }
    }

    /// Wait for one line whose message is exactly `message`.
    pub fn wait_for(&self, message: &str) {
        self.wait_for_count(message, 1);
    }

    /// Wait for a line containing `text` anywhere; returns it.
    pub fn wait_for_text(&self, text: &str) -> String {
        let (lock, cv) = &*self.lines;
        let end = Instant::now() + DEADLINE;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            let now = Instant::now();
            if now >= end {
                panic!(
                    "timed out waiting for {text:?}; output:\n{}",
                    lines.join("\n")
                );
            }
            lines = cv.wait_timeout(lines, end - now).unwrap().0;
        }
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig).expect("cannot signal the wrapper");
    }

    /// The report file of `epoch`, once it has been written.
    pub fn report(&self, epoch: u32) -> Report {
        let path = self.path().join(format!("epoch-{epoch}"));
        assert!(
            wait_until(DEADLINE, || path.exists()),
            "epoch {epoch} never reported; output:\n{}",
            self.output()
        );
        Report::read(&path)
    }

    /// Wait for the wrapper to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let child = self.child.as_mut().unwrap();
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.status = Some(status);
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return status;
            }
            if Instant::now() >= end {
                panic!(
                    "wrapper did not exit within {timeout:?}; output:\n{}",
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for the wrapper's exit code.
    pub fn exit_code(&mut self) -> i32 {
        self.wait_exit(DEADLINE)
            .code()
            .expect("wrapper killed by a signal")
    }

    /// Every pid any epoch reported.
    pub fn reported_pids(&self) -> BTreeSet<i32> {
        let mut pids = BTreeSet::new();
        for entry in fs::read_dir(self.path()).unwrap().flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("epoch-")
                && !name.ends_with(".tmp")
                && let Some(pid) = Report::read(&entry.path()).pid()
            {
                pids.insert(pid);
            }
        }
        pids
    }

    /// Assert that no process any epoch reported is left (bounded wait:
    /// SIGKILLed processes take a moment to disappear after their parent
    /// exits).
    pub fn assert_no_children_left(&self) {
        for pid in self.reported_pids() {
            assert!(
                wait_until(DEADLINE, || !running(pid)),
                "child PID={pid} outlived the wrapper; output:\n{}",
                self.output()
            );
        }
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        for pid in self.reported_pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The text after `] ` that follows the source location, for a log line in
/// the `[time][pid][LEVEL][core] [file:line] message` shape.
pub fn message_of(line: &str) -> &str {
    match line.find("][core] [") {
        Some(i) => {
            let rest = &line[i + "][core] [".len()..];
            match rest.find("] ") {
                Some(j) => &rest[j + 2..],
                None => "",
            }
        }
        None => "",
    }
}

/// The level of a log line (`INFO`, `WARNING`, ...).
pub fn level_of(line: &str) -> &str {
    let parts: Vec<&str> = line.splitn(5, ']').collect();
    if parts.len() >= 4 {
        parts[2].trim_start_matches('[')
    } else {
        ""
    }
}

/// What a fixture child reported.
#[derive(Debug, Clone)]
pub struct Report {
    pub lines: Vec<String>,
}

impl Report {
    pub fn read(path: &Path) -> Report {
        Report {
            lines: fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}=");
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    pub fn pid(&self) -> Option<i32> {
        self.get("pid")?.parse().ok()
    }

    pub fn count(&self, event: &str) -> usize {
        self.lines.iter().filter(|l| *l == event).count()
    }
}

impl Wrapper {
    /// Re-read epoch `epoch`'s report until `event` has been seen `n` times.
    pub fn wait_report_event(&self, epoch: u32, event: &str, n: usize) -> Report {
        let path = self.path().join(format!("epoch-{epoch}"));
        let mut last = Report { lines: vec![] };
        let ok = wait_until(DEADLINE, || {
            last = Report::read(&path);
            last.count(event) >= n
        });
        assert!(
            ok,
            "epoch {epoch} never saw {n} x {event}: {:?}; output:\n{}",
            last.lines,
            self.output()
        );
        last
    }
}

/// Is `tool` on PATH? In CI (CI=true) a missing tool is a failure; outside
/// CI the caller skips with a printed reason.
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some_and(|v| v == OsStr::new("true")) {
            panic!("{tool} is required in CI but is not installed");
        }
        eprintln!("skipping: {tool} is not installed (CI would fail here)");
    }
    found
}
