//! The hot-restarter binary under test: started in its own temp dir on a
//! fixture script, its stdout and stderr collected line by line as they
//! are written, waited on with deadlines, killed (with every child it
//! reported) when the test ends.
#![allow(dead_code)] // each test binary uses a part of the harness

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::fixtures::{REPORTER, Report, script, spawn_owned, unown, wait_report_at};
use super::log_lines::{level_of, message_of};
use super::procfs::{caught_signals, exists, is_idle, running, signal_pid};

pub const BIN: &str = env!("CARGO_BIN_EXE_hot-restarter");

/// The default deadline for anything a test waits for. Generous, because
/// these machines are shared and a deadline is only hit on failure.
pub const DEADLINE: Duration = Duration::from_secs(20);

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

/// The test's own HOT_RESTARTER_* variables must not leak into a run.
pub fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOT_RESTARTER_") {
            cmd.env_remove(key);
        }
    }
}

/// What the test process's own environment must not pass on to a wrapper
/// (its HOT_RESTARTER_* settings, an epoch, a systemd socket, a log
/// level); stdin is /dev/null.
pub fn scrub(cmd: &mut Command) -> &mut Command {
    clean_env(cmd);
    cmd.env_remove("RESTART_EPOCH")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
}

/// Build a command for the binary, run in `dir` with `REPORT_DIR=dir`.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    scrub(&mut cmd)
        .current_dir(dir)
        .env("REPORT_DIR", dir)
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

    /// Start the wrapper on the reporter fixture with `args` and `env`
    /// added (`FAIL_EPOCH`, `TERM_EXIT`, ... steer the reporter).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Wrapper {
        Wrapper::start_with(args, REPORTER, |cmd| {
            cmd.envs(env.iter().copied());
        })
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
        // Owned: a subreaper's reaper thread (support/supervisor.rs) leaves
        // it to this harness's wait.
        let mut child = spawn_owned(&mut cmd);
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
        self.wait_lines(&format!("{count} x {message:?}"), |lines| {
            let seen = lines.iter().filter(|l| message_of(l) == message).count();
            (seen >= count).then(String::new)
        });
    }

    /// Wait for one line whose message is exactly `message`.
    pub fn wait_for(&self, message: &str) {
        self.wait_for_count(message, 1);
    }

    /// Wait for a line containing `text` anywhere; returns it.
    pub fn wait_for_text(&self, text: &str) -> String {
        self.wait_lines(&format!("{text:?}"), |lines| {
            lines.iter().find(|l| l.contains(text)).cloned()
        })
    }

    /// Wait (until `DEADLINE`) for `found` to find something in the output
    /// lines, as each one comes; panics naming `what`, with the whole
    /// output, otherwise.
    fn wait_lines(&self, what: &str, found: impl Fn(&[String]) -> Option<String>) -> String {
        let (lock, cv) = &*self.lines;
        let end = Instant::now() + DEADLINE;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(hit) = found(&lines) {
                return hit;
            }
            let now = Instant::now();
            if now >= end {
                panic!(
                    "timed out waiting for {what}; output:\n{}",
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
                unown(self.pid);
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

    /// Expect the wrapper to refuse to run: it exits with `code` before
    /// epoch 0 starts (no "forking ... epoch 0" line, no report). A wrapper
    /// that starts epoch 0 instead is stopped with SIGTERM, and the test
    /// fails saying so and how the wrapper then ended (`what` names the
    /// case).
    #[track_caller]
    pub fn expect_refused_at_start(&mut self, code: i32, what: &str) {
        let started = "forking and execing new child process at epoch 0";
        assert!(
            wait_until(DEADLINE, || !self.is_running() || self.count(started) > 0),
            "{what}: the wrapper neither exited nor started; output:\n{}",
            self.output()
        );
        if self.is_running() {
            self.report(0);
            self.signal(Signal::SIGTERM);
            let status = self.wait_exit(DEADLINE);
            panic!(
                "{what} was accepted and epoch 0 started (then {status} at SIGTERM); \
                 output:\n{}",
                self.output()
            );
        }
        assert_eq!(self.exit_code(), code, "{what}: output:\n{}", self.output());
        assert_eq!(self.count(started), 0, "{what}: output:\n{}", self.output());
        assert!(
            !self.path().join("epoch-0").exists(),
            "{what}: a child reported; output:\n{}",
            self.output()
        );
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

    /// Re-read epoch `epoch`'s report until `event` has been seen `n` times.
    pub fn wait_report_event(&self, epoch: u32, event: &str, n: usize) -> Report {
        let path = self.path().join(format!("epoch-{epoch}"));
        wait_report_at(&path, event, n, || self.output())
    }

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

    /// The pid of epoch 0's reporter once it is ready (see `ready_pid`) and
    /// the wrapper has logged its fork.
    pub fn first_child(&self) -> i32 {
        let pid = self.ready_pid(0);
        self.wait_for(&format!("forked new child process with PID={pid}"));
        pid
    }

    /// SIGTERM, and the clean end that follows: exit 0, "all children
    /// exited cleanly", no child left.
    pub fn stop_cleanly(&mut self) {
        self.stop();
        self.assert_logged("INFO", "all children exited cleanly");
    }

    /// SIGTERM: the wrapper exits 0 and leaves no child behind.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        assert_eq!(self.exit_code(), 0, "{}", self.output());
        self.assert_no_children_left();
    }

    /// Epochs 0 and 1 (see `start_epochs`), then epoch 0 ends its drain
    /// (exits 0 on SIGTERM from the test); returns both pids.
    pub fn epoch_0_drained(&self) -> Vec<i32> {
        let pids = self.start_epochs(1);
        signal_pid(pids[0], Signal::SIGTERM);
        self.wait_for(&format!("PID={} exited with code=0", pids[0]));
        pids
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
        let running = self.status.is_none()
            && self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().unwrap().is_none());
        if !running {
            unown(self.pid);
        }
        running
    }

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

impl Drop for Wrapper {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
            unown(self.pid);
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
