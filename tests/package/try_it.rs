//! examples/envoy/try.sh, the README's one-command try with real Envoy,
//! does what it shows: a hot restart, a broken config refused with the old
//! Envoy serving on, the status, no failed request, and nothing left behind.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::tools::{BIN, need, root, run, text};

#[test]
#[ignore = "needs Envoy ($ENVOY_BIN or the wheel .ci/run installs), curl and python3; .ci/run runs it"]
fn try_sh_hot_restarts_refuses_a_bad_config_and_cleans_up() {
    need("curl", "curl");
    need("python3", "python3");
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let out = run(
        Command::new(root().join("examples/envoy/try.sh")).env("HOT_RESTARTER_BIN_DIR", bin_dir),
        Duration::from_secs(300),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "hot-restarter-ctl start: admin 127.0.0.1:",
        "epoch 0 runs (PID=",
        "epoch 1 (PID=",
        "hot-restarter-ctl: reload failed: restart to epoch 2 skipped because its preflight \
         failed",
        "no such field: 'listenrs'",
        "the old Envoy still serves: ok from http://127.0.0.1:",
        "serving: epoch 1 generation 0",
        "reloads: 1 done, 1 skipped, 0 failed",
        " failed\n\n== hot-restarter-ctl stop --wait\nhot-restarter exited with code 0",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{all}");
    }
    let counts = stdout
        .split("== requests during all this: ")
        .nth(1)
        .and_then(|l| l.lines().next())
        .unwrap_or_else(|| panic!("no request counts:\n{all}"));
    let words: Vec<&str> = counts.split_whitespace().collect();
    let answered: u64 = words[0].parse().unwrap();
    assert!(answered >= 60, "{counts}");
    assert_eq!(words[3], "0", "requests failed: {counts}\n{all}");

    // The wrapper it started is gone, and so is the temporary directory
    // (its path shows in the preflight's error).
    let pid: i32 = stdout
        .split("hot-restarter started (PID=")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no wrapper pid:\n{all}"));
    // `stop --wait` returns on its last reply, just before it exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(pid) {
        assert!(
            Instant::now() < deadline,
            "the wrapper (PID={pid}) still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let config = stdout
        .split("error initializing configuration '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap_or_else(|| panic!("no config path:\n{all}"));
    let tmp = std::path::Path::new(config).parent().unwrap();
    assert!(!tmp.exists(), "{} is left behind", tmp.display());
}

/// Is `pid` alive (a zombie waiting for init to reap it is not)?
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}
