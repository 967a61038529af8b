//! Helpers for the tests that run hot-restarter under real supervisors
//! (runit, monit) and check the files in examples/: copying an example into
//! a temp dir, tagging every process a test starts so that all of them can
//! be found and killed at the end, and reaping the orphans a supervisor
//! leaves behind.
#![allow(dead_code)]

use std::collections::HashMap;

use crate::support::{DEADLINE, owned, spawn_owned, unown, zombie_children};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::{Mutex, Once, OnceLock};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The environment variable that tags every process a test starts (its
/// value is the test's unique temp dir). Supervisors and the wrapper pass
/// their environment on, so it reaches every descendant.
pub const TAG: &str = "SUPERVISOR_TEST_TAG";

/// The repository's examples/ directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Copy a directory tree, keeping file modes (runit needs `run` to stay
/// executable).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).unwrap();
        if meta.is_dir() {
            copy_tree(&src, &dst);
        } else if meta.is_file() {
            fs::copy(&src, &dst).unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.permissions().mode()))
                .unwrap();
        }
    }
}

/// The parent of `pid`, from /proc.
pub fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    after.get(1)?.parse().ok()
}

/// Every process but this one whose environment holds `TAG=tag`.
pub fn tagged(tag: &str) -> Vec<i32> {
    let needle = format!("{TAG}={tag}");
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Gone, a zombie (empty environ) or a kernel thread: skip.
        let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|e| e == needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// SIGKILL every process tagged `tag`, again and again until none is left
/// (a dying supervisor may still fork), for at most a few seconds.
pub fn kill_tagged(tag: &str) {
    for _ in 0..500 {
        let pids = tagged(tag);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        thread::sleep(Duration::from_millis(10));
    }
    eprintln!("warning: processes tagged {tag} survived SIGKILL");
}

/// A direct child of the test (a supervisor) that is SIGKILLed and reaped
/// when dropped, after which every process carrying its tag is killed too:
/// nothing a test starts outlives it, even when it panics.
pub struct Supervised {
    pub child: Option<Child>,
    pub tag: String,
}

impl Supervised {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // The supervisor first, so that it restarts nothing meanwhile.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            unown(child.id() as i32);
        }
        kill_tagged(&self.tag);
        settle_orphans();
    }
}

// ----- orphans ----------------------------------------------------------
//
// A supervisor that needs its start program to exit (monit) leaves the
// wrapper orphaned. Orphans go to PID 1, which on these machines does not
// reap them, so a killed wrapper would stay a zombie and look alive. The
// test process therefore becomes a child subreaper and reaps, in a thread,
// every zombie child that it did not start itself through `spawn_owned`.

/// How each orphan the reaper collected ended.
fn reaped() -> &'static Mutex<HashMap<i32, WaitStatus>> {
    static REAPED: OnceLock<Mutex<HashMap<i32, WaitStatus>>> = OnceLock::new();
    REAPED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// How orphan `pid` ended, once the reaper has collected it.
pub fn wait_reaped(pid: i32, timeout: Duration) -> Option<WaitStatus> {
    let mut status = None;
    crate::support::wait_until(timeout, || {
        status = reaped().lock().unwrap().get(&pid).copied();
        status.is_some()
    });
    status
}

/// Make this test process a child subreaper with a reaper thread. Every
/// later child must be started with `spawn_owned`/`output_owned`, or the
/// reaper may collect it before its `wait`.
static SUBREAPER: Once = Once::new();

pub fn become_subreaper() {
    SUBREAPER.call_once(|| {
        nix::sys::prctl::set_child_subreaper(true).expect("cannot become a child subreaper");
        thread::spawn(|| {
            let me = std::process::id() as i32;
            loop {
                {
                    // Holding the lock: no owned child is being started.
                    let owned = owned().lock().unwrap();
                    for pid in zombie_children(me) {
                        if !owned.contains(&pid)
                            && let Ok(status) =
                                waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))
                            && status != WaitStatus::StillAlive
                        {
                            reaped().lock().unwrap().insert(pid, status);
                        }
                    }
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
    });
}

/// When this process is a subreaper, wait (briefly) until the reaper has
/// collected every orphan that died, so that none is handed on to PID 1
/// as a zombie when the test process exits.
fn settle_orphans() {
    if !SUBREAPER.is_completed() {
        return;
    }
    let me = std::process::id() as i32;
    crate::support::wait_until(Duration::from_secs(2), || {
        let owned = owned().lock().unwrap();
        zombie_children(me).iter().all(|pid| owned.contains(pid))
    });
}

/// Wait up to `DEADLINE` for `child` (started with `spawn_owned`), kill it
/// if it has not ended by then, and collect its output. Returns (whether
/// it ended by itself, its output).
pub fn finish_owned(mut child: Child) -> (bool, Output) {
    let ended = crate::support::wait_until(DEADLINE, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    let pid = child.id() as i32;
    let out = child.wait_with_output().unwrap();
    unown(pid);
    (ended, out)
}

/// `cmd.output()` for a process that may run while the reaper is active.
pub fn output_owned(cmd: &mut Command) -> Output {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = spawn_owned(cmd);
    let pid = child.id() as i32;
    let out = child.wait_with_output().unwrap();
    unown(pid);
    out
}

/// Both output streams of a finished command, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
