//! The start-up warning about /dev/shm, in a private mount namespace
//! (`unshare -m`) where the test mounts its own tmpfs there: read-only, it
//! gets one warning line naming the path and the OS error, and the wrapper
//! runs on (the start script may not use hot restart); writable, none.
//! The host's /dev/shm is never touched.

use nix::sys::signal::Signal;

use super::harness::{BIN, Wrapper, in_ci};

/// Start the wrapper (JSON lines) in a new mount namespace whose /dev/shm
/// is a fresh tmpfs mounted with `options`.
fn in_namespace(options: &str) -> Wrapper {
    let can = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        can,
        "unshare -m fails here (needs util-linux's unshare and CAP_SYS_ADMIN){}",
        if in_ci() {
            " and CI=true requires it"
        } else {
            ""
        }
    );
    // unshare and sh exec: the pid is the wrapper's.
    let shell = format!(
        "mount -t tmpfs -o {options},size=64k tmpfs /dev/shm && exec \"$0\" --log-format json start.sh"
    );
    Wrapper::start(
        "unshare",
        &["-m", "--propagation", "private", "sh", "-c", &shell, BIN],
        &[],
    )
}

fn warnings(w: &Wrapper) -> Vec<String> {
    w.stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "warn")
        .map(|v| v["msg"].as_str().unwrap().to_string())
        .collect()
}

#[test]
#[cfg_attr(not(has_netns), ignore = "needs unshare --mount (CAP_SYS_ADMIN)")]
fn a_read_only_dev_shm_is_named_in_one_warning_and_the_wrapper_runs_on() {
    let mut w = in_namespace("ro");
    w.epoch_pid(0);
    let warned = warnings(&w);
    assert_eq!(warned.len(), 1, "{}", w.output());
    assert!(
        warned[0].starts_with(
            "/dev/shm cannot hold Envoy's shared memory (Read-only file system (os error 30))"
        ),
        "{warned:?}"
    );
    assert!(warned[0].contains("envoy_shared_memory_"), "{warned:?}");
    w.signal(Signal::SIGTERM);
    w.touch("may-exit");
    assert_eq!(w.exit_code(), 0, "{}", w.output());
}

#[test]
#[cfg_attr(not(has_netns), ignore = "needs unshare --mount (CAP_SYS_ADMIN)")]
fn a_writable_dev_shm_gets_no_warning_and_keeps_no_file() {
    let mut w = in_namespace("rw");
    w.epoch_pid(0);
    let shm = std::fs::read_dir(format!("/proc/{}/root/dev/shm", w.pid))
        .unwrap()
        .count();
    assert_eq!(shm, 0, "the probe left a file");
    assert_eq!(warnings(&w), Vec::<String>::new(), "{}", w.output());
    w.signal(Signal::SIGTERM);
    w.touch("may-exit");
    assert_eq!(w.exit_code(), 0, "{}", w.output());
}
