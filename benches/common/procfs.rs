//! Figures read from /proc: a process's memory, descriptors and wake-ups,
//! and the machine the bench runs on.

use std::fs;
use std::thread;
use std::time::Duration;

use super::wrapper::Wrapper;

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStatus {
    pub rss_anon_kb: u64,
    pub vm_rss_kb: u64,
    pub ctxt_switches: u64,
    /// The third field of /proc/PID/schedstat: times the task was run.
    pub sched_runs: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub fds: usize,
}

impl ProcStatus {
    pub fn read(pid: i32) -> ProcStatus {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        // Fields 14 and 15 (utime, stime) are 11 and 12 after the ')'.
        let cpu_ticks = after[11].parse::<u64>().unwrap() + after[12].parse::<u64>().unwrap();
        let sched_runs = fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(0);
        ProcStatus {
            rss_anon_kb: field("RssAnon:"),
            vm_rss_kb: field("VmRSS:"),
            ctxt_switches: field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:"),
            sched_runs,
            cpu_ticks,
            fds: fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count(),
        }
    }
}

/// /proc figures at the start and end of an idle window.
pub fn idle_window(w: &Wrapper, window: Duration) -> (ProcStatus, ProcStatus) {
    let before = w.status();
    thread::sleep(window);
    let after = w.status();
    (before, after)
}

pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    format!("machine: {cpus} x {cpu}, Linux {kernel}, load average {load} at start")
}
