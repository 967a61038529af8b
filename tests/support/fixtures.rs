//! The fixture child most tests run (the reporter script) and what it
//! reports, writing fixture scripts safely, and the children of the test
//! process that a subreaper must leave alone.
#![allow(dead_code)] // each test binary uses a part of it

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::wrapper::{DEADLINE, wait_until};

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
    copy(&source, &path);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(&source).unwrap();
    path
}

/// `cp FROM TO` by a child process, for the reason given at [`script`]:
/// also the way to copy the wrapper's binary before a test executes the copy.
pub fn copy(from: &Path, to: &Path) {
    let mut cp = Command::new("cp");
    cp.arg(from).arg(to).stdin(Stdio::null());
    let mut child = spawn_owned(&mut cp);
    let status = child.wait().expect("cannot wait for cp");
    unown(child.id() as i32);
    assert!(status.success(), "cp {from:?} {to:?} failed");
}

/// Children of the test process that a reaper thread (tests that make the
/// test process a subreaper, see support/supervisor.rs) must leave to
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

/// mkfifo(3) at `path`, mode 0600.
pub fn make_fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}
