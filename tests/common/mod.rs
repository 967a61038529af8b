//! Test harness: runs the real binary in a temp dir with fixture scripts,
//! collects its log lines as they are written, and waits for events with
//! deadlines. Every process a test starts is killed when the test ends.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
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
# Traps first: once the report exists, a signal is recorded, never fatal.
trap 'echo usr1 >> "$r"' USR1
if [ -n "$IGNORE_TERM" ]; then
  trap 'echo term >> "$r"' TERM
else
  trap 'echo term >> "$r"; exit ${TERM_EXIT:-0}' TERM
fi
{
  echo "pid=$$"
  echo "epoch=$RESTART_EPOCH"
  echo "argv0=$0"
  echo "args=$*"
  echo "cwd=$(pwd -P)"
  grep -E '^(SigBlk|SigIgn):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
  echo "fdtargets=$(for f in /proc/$$/fd/*; do readlink "$f"; done | tr '\n' ' ')"
} > "$r.tmp"
mv "$r.tmp" "$r"
if [ -n "$EXIT_AT_START" ]; then exit "$EXIT_AT_START"; fi
if [ "$FAIL_EPOCH" = "$RESTART_EPOCH" ]; then exit 3; fi
while :; do sleep 0.02; done
"#;

/// Write an executable script into `dir`.
///
/// The file is written by a `cp` process, not by the test process: if
/// another test thread forked while the test process held the file open for
/// writing, that child would keep the descriptor until it execs, and the
/// wrapper's `execve` of the script would fail with ETXTBSY meanwhile.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let source = dir.join(format!(".{name}.source"));
    fs::write(&source, body).unwrap();
    let path = dir.join(name);
    let mut cp = Command::new("cp");
    cp.arg(&source).arg(&path).stdin(Stdio::null());
    let mut child = spawn_owned(&mut cp);
    let status = child.wait().expect("cannot wait for cp");
    unown(child.id() as i32);
    assert!(status.success(), "cp {source:?} {path:?} failed");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(&source).unwrap();
    path
}

/// Children of the test process that a reaper thread (tests that make the
/// test process a subreaper, see tests/supervisors_common) must leave to
/// their own `wait`.
pub fn owned() -> &'static Mutex<HashSet<i32>> {
    static OWNED: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    OWNED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Start `cmd` as a child the reaper leaves alone: it is registered under
/// the lock the reaper holds while it scans.
pub fn spawn_owned(cmd: &mut Command) -> Child {
    let mut owned = owned().lock().unwrap();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    owned.insert(child.id() as i32);
    child
}

/// Forget a child started with `spawn_owned` once it has been waited for.
pub fn unown(pid: i32) {
    owned().lock().unwrap().remove(&pid);
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

/// Every process as (pid, state letter, parent pid), from /proc/PID/stat.
pub fn processes() -> Vec<(i32, char, i32)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command, which ends at the last ')'.
        let after: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        if let (Some(state), Some(Ok(ppid))) = (
            after.first().and_then(|s| s.chars().next()),
            after.get(1).map(|p| p.parse::<i32>()),
        ) {
            out.push((pid, state, ppid));
        }
    }
    out
}

/// The zombies whose parent is `ppid`.
pub fn zombie_children(ppid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, state, parent)| *state == 'Z' && *parent == ppid)
        .map(|(pid, _, _)| pid)
        .collect()
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

    /// Wait for the wrapper to exit (panics after `timeout`), then for its
    /// output to end. A process that outlives the wrapper and keeps its
    /// stdout open (a child it failed to stop) makes this fail after
    /// `DEADLINE` instead of hanging: the output only ends once every
    /// process holding the wrapper's stdout and stderr has closed them.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let child = self.child.as_mut().unwrap();
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= end {
                panic!(
                    "wrapper did not exit within {timeout:?}; output:\n{}",
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(5));
        };
        self.status = Some(status);
        let ended = wait_until(DEADLINE, || {
            self.reader.as_ref().is_none_or(|r| r.is_finished())
        });
        assert!(
            ended,
            "the wrapper exited ({status}) but its stdout is still open: something it \
             started outlived it; output:\n{}",
            self.output()
        );
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
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
        // Only processes of this test: a reported pid that was reaped may
        // have been reused by another test's process meanwhile.
        for pid in self.reported_pids() {
            if started_in(pid, self.path()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Does `pid` run with `REPORT_DIR=dir` in its environment (a process
/// started for the test that owns `dir`)?
pub fn started_in(pid: i32, dir: &Path) -> bool {
    let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let wanted = format!("REPORT_DIR={}", dir.display());
    environ
        .split(|b| *b == 0)
        .any(|entry| entry == wanted.as_bytes())
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

/// Re-read the report at `path` until `event` has been seen `n` times;
/// on a timeout, panic with what it holds and `output()`.
pub fn wait_report_at(path: &Path, event: &str, n: usize, output: impl Fn() -> String) -> Report {
    let mut last = Report { lines: vec![] };
    let ok = wait_until(DEADLINE, || {
        last = Report::read(path);
        last.count(event) >= n
    });
    assert!(
        ok,
        "{} never saw {n} x {event}: {:?}; output:\n{}",
        path.display(),
        last.lines,
        output()
    );
    last
}

/// The report at `path` once it names a pid other than `not` (a new
/// epoch 0 after a restart overwrites the old report); on a timeout, panic
/// with `output()`.
pub fn wait_new_report(path: &Path, not: Option<i32>, output: impl Fn() -> String) -> Report {
    let mut last = Report { lines: vec![] };
    let ok = wait_until(DEADLINE, || {
        last = Report::read(path);
        last.pid().is_some() && last.pid() != not
    });
    assert!(ok, "no new report at {}; {}", path.display(), output());
    last
}

impl Wrapper {
    /// Re-read epoch `epoch`'s report until `event` has been seen `n` times.
    pub fn wait_report_event(&self, epoch: u32, event: &str, n: usize) -> Report {
        let path = self.path().join(format!("epoch-{epoch}"));
        wait_report_at(&path, event, n, || self.output())
    }
}

/// Where tests find the real components they drive (shared with build.rs).
pub mod components;
pub mod fake_admin;

/// Why a test whose component is missing runs at all, for its failure
/// message: build.rs found the component (or CI=true requires it).
pub fn why_required() -> &'static str {
    if components::in_ci() {
        "CI=true requires every component (.ci/run installs them)"
    } else {
        "build.rs found it when the tests were built, so this test is not ignored: \
         restore it, or \
         `touch build.rs` so that the next build ignores the test"
    }
}

/// The Envoy binary (see components::find_envoy). The tests that call
/// this are ignored unless build.rs found Envoy or CI=true, so a missing
/// Envoy fails them.
#[track_caller]
pub fn need_envoy() -> PathBuf {
    match components::find_envoy() {
        Ok(path) => path,
        Err(why) => panic!("{why}; {}", why_required()),
    }
}

/// `tool` on PATH. Tests that call this are ignored unless build.rs found
/// the tool (their `has_*` cfg) or CI=true, so a missing tool fails them.
#[track_caller]
pub fn need_tool(tool: &str) -> PathBuf {
    match components::find_tool(tool) {
        Some(path) => path,
        None => panic!("{tool} is not on PATH; {}", why_required()),
    }
}

// ----- additions for the core suite (signals, shutdown, failures, start
// errors, log messages, orphans) -----------------------------------------

/// Start the wrapper in a fresh temp dir after `setup` has prepared it
/// (scripts, directories), with exactly `args` on the command line, and a
/// chance to adjust the command. Nothing is written for the test unless
/// `setup` writes it.
pub fn start_in(
    setup: impl FnOnce(&Path),
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> Wrapper {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut cmd = command(dir.path());
    cmd.args(args);
    adjust(&mut cmd);
    Wrapper::spawn(dir, cmd)
}

/// Make processes started by `cmd` (the wrapper and so its children) dump
/// no core file, for tests that kill a child with SIGSEGV or SIGABRT.
pub fn no_core_dumps(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; this runs in the forked
    // child just before exec, on a stack value.
    unsafe {
        cmd.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            Ok(())
        });
    }
}

/// Send `sig` to any process (a child, an orphan).
pub fn signal_pid(pid: i32, sig: Signal) {
    kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("cannot send {sig} to {pid}: {e}"));
}

/// The parent pid of `pid`, if it exists.
pub fn ppid_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    after.get(1)?.parse().ok()
}

/// The signals pending for `pid` (its own and process-wide), as a mask.
pub fn pending_signals(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
        })
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap_or(u64::MAX))
        .fold(0, |a, b| a | b)
}

/// The signals `pid` has a handler for (SigCgt), as a mask.
pub fn caught_signals(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Is `pid` asleep in its event wait (poll on the signalfd, or a read of
/// it, or sigtimedwait) with no signal pending? Then it has finished
/// handling everything sent to it so far.
pub fn is_idle(pid: i32) -> bool {
    let state = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s[s.rfind(')')? + 1..]
                .split_whitespace()
                .next()
                .map(str::to_string)
        });
    if state.as_deref() != Some("S") || pending_signals(pid) != 0 {
        return false;
    }
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    ["poll", "signalfd", "sigtimedwait"]
        .iter()
        .any(|w| wchan.contains(w))
}

/// Check one stdout line against the shape of SPEC section 5, i.e. the
/// regular expression
/// `^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\]\[PID\]\[(DEBUG|INFO|WARNING|ERROR)\]\[core\] \[src/[a-z_]+\.rs:\d+\] `
/// written out by hand (there is no regex crate). Returns what is wrong.
pub fn check_log_line(line: &str, wrapper_pid: i32) -> Result<(), String> {
    fn lit<'a>(rest: &'a str, text: &str, what: &str) -> Result<&'a str, String> {
        rest.strip_prefix(text)
            .ok_or_else(|| format!("expected {text:?} ({what}) at {rest:?}"))
    }
    fn digits<'a>(rest: &'a str, n: Option<usize>, what: &str) -> Result<&'a str, String> {
        let count = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ok = match n {
            Some(n) => count >= n,
            None => count >= 1,
        };
        if !ok {
            return Err(format!("expected digits ({what}) at {rest:?}"));
        }
        Ok(&rest[n.unwrap_or(count)..])
    }
    let r = lit(line, "[", "timestamp")?;
    let r = digits(r, Some(4), "year")?;
    let r = lit(r, "-", "date")?;
    let r = digits(r, Some(2), "month")?;
    let r = lit(r, "-", "date")?;
    let r = digits(r, Some(2), "day")?;
    let r = lit(r, " ", "date and time")?;
    let r = digits(r, Some(2), "hour")?;
    let r = lit(r, ":", "time")?;
    let r = digits(r, Some(2), "minute")?;
    let r = lit(r, ":", "time")?;
    let r = digits(r, Some(2), "second")?;
    let r = lit(r, ".", "milliseconds")?;
    let r = digits(r, Some(3), "milliseconds")?;
    let r = lit(r, "][", "after the timestamp")?;
    let r = lit(r, &wrapper_pid.to_string(), "the wrapper's pid")?;
    let r = lit(r, "][", "after the pid")?;
    let r = ["DEBUG", "INFO", "WARNING", "ERROR"]
        .iter()
        .find_map(|level| r.strip_prefix(level))
        .ok_or_else(|| format!("expected a level at {r:?}"))?;
    let r = lit(r, "][core] [src/", "logger name and source file")?;
    let name_len = r
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || *b == b'_' || *b == b'/')
        .count();
    if name_len == 0 {
        return Err(format!("expected a source file name at {r:?}"));
    }
    let r = lit(&r[name_len..], ".rs:", "source file extension")?;
    let r = digits(r, None, "line number")?;
    lit(r, "] ", "end of the source location")?;
    Ok(())
}

impl Wrapper {
    /// The stdout lines only (the log).
    pub fn log_lines(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| !l.starts_with("stderr: "))
            .collect()
    }

    /// The stderr lines only, without their `stderr: ` prefix.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter_map(|l| l.strip_prefix("stderr: ").map(str::to_string))
            .collect()
    }

    /// The messages of every log line whose message starts with `prefix`.
    pub fn messages_starting(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .iter()
            .map(|l| message_of(l))
            .filter(|m| m.starts_with(prefix))
            .map(str::to_string)
            .collect()
    }

    /// Assert that a line with exactly `message` was logged at `level`.
    pub fn assert_logged(&self, level: &str, message: &str) {
        let lines = self.lines();
        let found: Vec<&String> = lines.iter().filter(|l| message_of(l) == message).collect();
        assert!(
            !found.is_empty(),
            "{message:?} was never logged; output:\n{}",
            lines.join("\n")
        );
        for line in found {
            assert_eq!(
                level_of(line),
                level,
                "{message:?} logged at the wrong level: {line}"
            );
        }
    }

    /// Assert that no line carries exactly `message`.
    pub fn assert_not_logged(&self, message: &str) {
        assert_eq!(
            self.count(message),
            0,
            "{message:?} should not be logged; output:\n{}",
            self.output()
        );
    }

    /// The pid of `epoch`'s child, from its report.
    pub fn pid_of(&self, epoch: u32) -> i32 {
        self.report(epoch).pid().expect("report without a pid")
    }

    /// The pid of `epoch`'s reporter child once the kernel shows its
    /// SIGTERM and SIGUSR1 traps in place (the reporter sets them before it
    /// reports; this checks it from the outside).
    pub fn ready_pid(&self, epoch: u32) -> i32 {
        let pid = self.pid_of(epoch);
        let wanted = (1u64 << (libc::SIGTERM - 1)) | (1u64 << (libc::SIGUSR1 - 1));
        assert!(
            wait_until(DEADLINE, || caught_signals(pid) & wanted == wanted),
            "epoch {epoch} (PID={pid}) never set its traps; output:\n{}",
            self.output()
        );
        pid
    }

    /// Start epochs 1..=`last` with SIGHUP, one after another, and return
    /// the pids of epochs 0..=`last` (each is up, has reported, and has
    /// set its traps: see `ready_pid`).
    pub fn start_epochs(&self, last: u32) -> Vec<i32> {
        self.wait_for_text("forked new child process with PID=");
        let mut pids = vec![self.ready_pid(0)];
        for epoch in 1..=last {
            self.signal(Signal::SIGHUP);
            let pid = self.ready_pid(epoch);
            self.wait_for(&format!("forked new child process with PID={pid}"));
            pids.push(pid);
        }
        pids
    }

    /// Wait until `pid` no longer exists at all (reaped, not a zombie).
    pub fn wait_gone(&self, pid: i32) {
        assert!(
            wait_until(DEADLINE, || !exists(pid)),
            "PID={pid} is still there; output:\n{}",
            self.output()
        );
    }

    /// Wait until the wrapper has handled every signal sent to it so far.
    pub fn wait_idle(&self) {
        assert!(
            wait_until(DEADLINE, || is_idle(self.pid)),
            "the wrapper never went idle; output:\n{}",
            self.output()
        );
    }

    /// Is the wrapper process still running (not exited, not reaped)?
    pub fn is_running(&mut self) -> bool {
        self.status.is_none()
            && self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

// ----- soak helpers (appended for tests/soak.rs) ----------------------------

/// A FIFO that fixtures write one-line reports to. The test holds it open
/// read-write, so a fixture's open never blocks and no writer closing it
/// ever reads as end of file.
pub struct ReadyFifo {
    pub path: PathBuf,
    fd: std::os::fd::OwnedFd,
    buf: Vec<u8>,
}

impl ReadyFifo {
    /// Make a FIFO at `path` and open it.
    pub fn create(path: &Path) -> ReadyFifo {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        make_fifo(path);
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; the descriptor is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0, "cannot open FIFO {}", path.display());
        ReadyFifo {
            path: path.to_path_buf(),
            // SAFETY: fd was just opened and nothing else owns it.
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            buf: Vec::new(),
        }
    }

    /// The next line, or `None` if none came within `timeout`.
    pub fn line(&mut self, timeout: Duration) -> Option<String> {
        use std::os::fd::AsRawFd;
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            let mut chunk = [0u8; 4096];
            // SAFETY: reading into a local buffer of the given length.
            let n = unsafe { libc::read(pfd.fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n > 0 {
                self.buf.extend_from_slice(&chunk[..n as usize]);
            }
        }
    }
}

/// mkfifo(3) at `path`, mode 0600.
pub fn make_fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// A process's memory and descriptors, from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcFigures {
    pub vm_rss_kb: u64,
    pub rss_anon_kb: u64,
    pub fds: usize,
}

impl ProcFigures {
    pub fn read(pid: i32) -> ProcFigures {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        ProcFigures {
            vm_rss_kb: status_field(&status, "VmRSS:"),
            rss_anon_kb: status_field(&status, "RssAnon:"),
            fds: fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count(),
        }
    }
}

impl std::fmt::Display for ProcFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {} KB, RssAnon {} KB, {} descriptors",
            self.vm_rss_kb, self.rss_anon_kb, self.fds
        )
    }
}

/// The first number after `name` in a /proc/PID/status text (0 if absent).
pub fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The live (unreaped) children of `ppid`, zombies included.
pub fn children_of(ppid: i32) -> Vec<i32> {
    if let Ok(text) = fs::read_to_string(format!("/proc/{ppid}/task/{ppid}/children")) {
        return text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    }
    // Kernels without CONFIG_PROC_CHILDREN: scan /proc.
    processes()
        .into_iter()
        .filter(|(_, _, parent)| *parent == ppid)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// The start time of `pid` (field 22 of /proc/PID/stat), which tells a
/// process apart from a later one that reuses its pid.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Is the process that had `start` as its start time still running (not
/// a zombie, and not a newer process that reuses the pid)?
pub fn still_running(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start) && running(pid)
}

/// Is `pid` asleep with no signal pending (it has handled everything it
/// was sent)?
pub fn idle_with_nothing_pending(pid: i32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    field("State:").starts_with('S')
        && field("SigPnd:").trim_start_matches('0').is_empty()
        && field("ShdPnd:").trim_start_matches('0').is_empty()
}

/// The epoch numbers of every "forking and execing new child process at
/// epoch N" line, in log order.
pub fn started_epochs(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| {
            message_of(l)
                .strip_prefix("forking and execing new child process at epoch ")?
                .parse()
                .ok()
        })
        .collect()
}

impl Wrapper {
    /// Look at the output lines so far without copying them (soak runs
    /// collect hundreds of thousands).
    pub fn with_lines<R>(&self, f: impl FnOnce(&[String]) -> R) -> R {
        f(&self.lines.0.lock().unwrap())
    }

    /// The last `n` output lines, for failure messages of long runs.
    pub fn tail(&self, n: usize) -> String {
        self.with_lines(|lines| lines[lines.len().saturating_sub(n)..].join("\n"))
    }
}

/// Is signal `signo` pending for `pid` (sent, not yet taken by the process)?
pub fn signal_pending(pid: i32, signo: i32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (signo - 1);
    ["SigPnd:", "ShdPnd:"].iter().any(|name| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|mask| mask & bit != 0)
    })
}

/// Kills a process the harness does not track (an orphan, a grandchild)
/// when the test ends, but only if it is still that process: its pid may
/// have been reaped and reused by another test's process meanwhile.
pub struct ProcessGuard {
    pub pid: i32,
    start: Option<u64>,
}

impl ProcessGuard {
    pub fn new(pid: i32) -> ProcessGuard {
        ProcessGuard {
            pid,
            start: start_time(pid),
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if self.start.is_some() && start_time(self.pid) == self.start {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}
