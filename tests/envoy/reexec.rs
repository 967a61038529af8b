//! Upgrading the wrapper under real Envoy and wrk load: the wrapper runs
//! from a copy of its binary in the lab's dir; a new copy is renamed over
//! it and `hot-restarter-ctl reexec --wait` makes the wrapper execute it.
//! Envoy is not touched (same pids, same start times), and the new binary
//! hot-restarts it afterwards (SIGHUP, then `reload --wait`), with no
//! failed request throughout; 100 more reexecs leave the wrapper's memory
//! and descriptors flat.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::components::*;
use crate::envoy_lab::*;
use crate::support::*;
use nix::sys::signal::Signal;

const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

fn ctl(lab: &Lab, args: &[&str]) -> (i32, String) {
    let out = Command::new(CTL)
        .arg("--socket")
        .arg(lab.path().join("ctl.sock"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn identity(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

#[needs(envoy, wrk, curl)]
#[test]
fn reexec_under_load_touches_no_envoy() {
    let setup = Setup {
        tag: "envoy",
        flags: &[],
        start: Start::Example,
        handoff: false,
    };
    let mut lab = Lab::start_with("reexec under load", 9, setup, |dir, cmd| {
        // Run the wrapper from a copy that the test can replace.
        let exe = dir.join("hr");
        copy(Path::new(BIN), &exe);
        let mut c = Command::new(&exe);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .arg("--control-socket")
            .arg(dir.join("ctl.sock"));
        *cmd = c;
    });
    let epoch0 = lab.serve_under_load();
    let envoys: Vec<(i32, Option<u64>)> = (lab.envoy_processes().into_iter())
        .map(|p| (p, start_time(p)))
        .collect();
    assert!(envoys.iter().any(|(p, _)| *p == epoch0), "{envoys:?}");

    let exe = lab.path().join("hr");
    let new = lab.path().join("hr.new");
    copy(Path::new(BIN), &new);
    std::fs::rename(&new, &exe).unwrap();
    let t = Instant::now();
    let (code, said) = ctl(&lab, &["reexec", "--wait"]);
    let took = t.elapsed();
    assert_eq!(code, 0, "{said}\n{}", lab.w.tail(30));
    assert!(said.contains("took over"), "{said}");
    let pid = lab.w.pid;
    assert!(running(pid));
    let running_exe = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        (running_exe.dev(), running_exe.ino()),
        identity(&exe),
        "/proc/{pid}/exe is not the new file"
    );
    let after: Vec<(i32, Option<u64>)> = (lab.envoy_processes().into_iter())
        .map(|p| (p, start_time(p)))
        .collect();
    assert_eq!(after, envoys, "Envoy's processes changed across the reexec");
    lab.assert_serving("after the reexec");

    // 100 more in a row, under the same load: the wrapper's memory and
    // descriptors stay flat, Envoy is untouched.
    let (rss0, fds0) = footprint(pid);
    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let (code, said) = ctl(&lab, &["reexec", "--wait"]);
        assert_eq!(code, 0, "{said}\n{}", lab.w.tail(30));
        times.push(t.elapsed());
    }
    let (rss1, fds1) = footprint(pid);
    assert_eq!(
        fds1, fds0,
        "the wrapper's descriptors grew over 100 reexecs"
    );
    let after: Vec<(i32, Option<u64>)> = (lab.envoy_processes().into_iter())
        .map(|p| (p, start_time(p)))
        .collect();
    assert_eq!(
        after, envoys,
        "Envoy's processes changed across 100 reexecs"
    );
    times.sort();
    let hundred = format!(
        "100 more reexecs: median {} ms, max {} ms; VmRSS {rss0} -> {rss1} KiB, descriptors \
         {fds0} -> {fds1}",
        times[50].as_millis(),
        times[99].as_millis()
    );

    // The new binary hot-restarts Envoy: SIGHUP, then reload --wait.
    lab.w.signal(Signal::SIGHUP);
    lab.wait_pid(1, 1);
    lab.wait_live(1);
    lab.w.wait_for(&format!("PID={epoch0} exited with code=0"));
    let (code, said) = ctl(&lab, &["reload", "--wait"]);
    assert_eq!(code, 0, "{said}\n{}", lab.w.tail(30));
    lab.wait_live(2);
    lab.assert_serving("after the reload");
    let stats = lab.stop_wrk();
    lab.report_no_failures(
        &stats,
        &format!(
            "reexec --wait answered in {} ms; {hundred}; Envoy pids and start times \
             unchanged; SIGHUP and reload --wait after it worked",
            took.as_millis()
        ),
    );
    lab.stop();
}

/// VmRSS in KiB and the number of descriptors of `pid`, once the last
/// control client's connection is closed (one socket left: the listener).
fn footprint(pid: i32) -> (u64, usize) {
    let sockets = || {
        (std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap())
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|t| t.to_string_lossy().starts_with("socket:"))
            .count()
    };
    assert!(wait_until(DEADLINE, || sockets() == 1));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (status_field(&status, "VmRSS:"), fds)
}
