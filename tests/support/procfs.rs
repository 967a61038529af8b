//! What the tests read of other processes in /proc: state, parent, start
//! time (one parser of /proc/PID/stat), signal masks, memory and
//! descriptors, children; and a guard that kills a process the harness
//! does not track.
#![allow(dead_code)] // a toolbox: each test binary uses a part of it

use std::fs;
use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The fields of /proc/PID/stat that the tests read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// R, S, D, Z, X, ...
    pub state: char,
    pub ppid: i32,
    /// The session id.
    pub session: i32,
    /// In clock ticks since boot: tells a process apart from a later one
    /// that reuses its pid.
    pub start_time: u64,
}

/// /proc/PID/stat of `pid`, if it exists.
pub fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command, which ends at the last ')' (the
    // command may contain one): state is field 3, start time field 22.
    let after: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some(Stat {
        state: after.first()?.chars().next()?,
        ppid: after.get(1)?.parse().ok()?,
        session: after.get(3)?.parse().ok()?,
        start_time: after.get(19)?.parse().ok()?,
    })
}

/// Is `pid` a process that has not been reaped (zombies count as alive)?
pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Is `pid` running (present and not a zombie)?
pub fn running(pid: i32) -> bool {
    stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
}

/// The parent pid of `pid`, if it exists.
pub fn ppid_of(pid: i32) -> Option<i32> {
    stat(pid).map(|s| s.ppid)
}

/// The start time of `pid` (see `Stat::start_time`).
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// Is the process that had `start` as its start time still running (not
/// a zombie, and not a newer process that reuses the pid)?
pub fn still_running(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start) && running(pid)
}

/// Every process as (pid, stat).
pub fn processes() -> Vec<(i32, Stat)> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// The zombies whose parent is `ppid`.
pub fn zombie_children(ppid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, s)| s.state == 'Z' && s.ppid == ppid)
        .map(|(pid, _)| pid)
        .collect()
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
        .filter(|(_, s)| s.ppid == ppid)
        .map(|(pid, _)| pid)
        .collect()
}

/// The value of field `name` (e.g. `SigPnd:`) in /proc/PID/status, trimmed.
fn status_value(pid: i32, name: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field(&status, name).map(str::to_string)
}

/// The value after `name` in a `name: value` text of /proc, trimmed.
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
}

/// The first number after `name` in a /proc/PID/status (or io) text (0
/// if absent).
pub fn status_field(text: &str, name: &str) -> u64 {
    field(text, name)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn status_mask(pid: i32, name: &str) -> u64 {
    status_value(pid, name)
        .map(|v| u64::from_str_radix(&v, 16).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The signals pending for `pid` (its own and process-wide), as a mask.
pub fn pending_signals(pid: i32) -> u64 {
    status_mask(pid, "SigPnd:") | status_mask(pid, "ShdPnd:")
}

/// Is signal `signo` pending for `pid` (sent, not yet taken by the process)?
pub fn signal_pending(pid: i32, signo: i32) -> bool {
    pending_signals(pid) & (1u64 << (signo - 1)) != 0
}

/// The signals `pid` has a handler for (SigCgt), as a mask.
pub fn caught_signals(pid: i32) -> u64 {
    status_mask(pid, "SigCgt:")
}

/// Is `pid` asleep with no signal pending (it has handled everything it
/// was sent)?
pub fn idle_with_nothing_pending(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state == 'S') && exists(pid) && pending_signals(pid) == 0
}

/// Is `pid` asleep in its event wait (poll on the signalfd, or a read of
/// it, or sigtimedwait) with no signal pending? Then it has finished
/// handling everything sent to it so far.
pub fn is_idle(pid: i32) -> bool {
    if !idle_with_nothing_pending(pid) {
        return false;
    }
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    ["poll", "signalfd", "sigtimedwait"]
        .iter()
        .any(|w| wchan.contains(w))
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

/// Send `sig` to any process (a child, an orphan).
pub fn signal_pid(pid: i32, sig: Signal) {
    kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("cannot send {sig} to {pid}: {e}"));
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
