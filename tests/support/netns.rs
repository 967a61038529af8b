//! Runs one test inside a private network and mount namespace, so that it
//! can set `net.ipv4.tcp_migrate_req` (a sysctl of each network namespace)
//! and give Envoy a private /dev/shm and private abstract unix sockets
//! (its --base-id names them) without touching the host's.
//!
//! A test that must run inside carries `#[in_netns]` (from tests/needs),
//! which starts its body with `in_private_netns(module_path!(), name,
//! migrate_req)` and returns when that answers false:
//!
//! ```ignore
//! #[needs(netns)]
//! #[test]
//! #[in_netns]
//! fn a_handoff() {
//!     // ... runs inside: loopback only, tcp_migrate_req set, own /dev/shm
//! }
//! ```
//!
//! Outside, the call re-executes the test binary for exactly that test
//! (`--exact`) under `unshare --net --mount --propagation private`, after
//! `ip link set lo up`, the sysctl, and a tmpfs on /dev/shm; it waits (300 s
//! at most), forwards the inner output to stderr, asserts that the inner
//! run passed exactly one test and that the host's tcp_migrate_req did not
//! change, and answers false. Inside (the variable `INSIDE` names the
//! test) it answers true. The outer call holds `SERIAL`, so Envoy tests
//! still take turns. Not root: `unshare --map-root-user` (a user
//! namespace) is added. A namespace that cannot be set up fails the test:
//! `#[needs(netns)]` has already ignored it where that was known when the
//! tests were compiled.

use std::env;
use std::fs;
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

pub use hot_restarter_test_needs::in_netns;

use crate::components::need_tool;
use crate::envoy_lab::SERIAL;

/// Set, to the test's name, for the run inside the namespace.
pub const INSIDE: &str = "HOT_RESTARTER_TEST_NETNS";

/// `tcp_migrate_req` inside the namespace: 1 unless this variable is 0
/// (a contrast run: Linux then resets the connections still queued on a
/// closed SO_REUSEPORT listener).
pub const MIGRATE_REQ: &str = "HANDOFF_TEST_MIGRATE_REQ";

const SYSCTL: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// The longest an inner run may take before it is killed.
const INNER_DEADLINE: Duration = Duration::from_secs(300);

/// Runs inside the new namespaces, before the test binary.
const SETUP: &str = r#"set -e
ip link set lo up
if [ -n "$NETNS_MIGRATE_REQ" ]; then
  echo "$NETNS_MIGRATE_REQ" > /proc/sys/net/ipv4/tcp_migrate_req
fi
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
echo "netns: ready" >&2
exec "$@"
"#;

/// The value asked for with `HANDOFF_TEST_MIGRATE_REQ` (default 1).
pub fn migrate_req_wanted() -> u8 {
    match env::var(MIGRATE_REQ).as_deref() {
        Ok("0") => 0,
        _ => 1,
    }
}

/// `tcp_migrate_req` of this process's network namespace (None: the
/// kernel has no such sysctl, before Linux 5.14).
pub fn migrate_req() -> Option<u8> {
    fs::read_to_string(SYSCTL).ok()?.trim().parse().ok()
}

/// Run the calling test (function `name` in module `module`, as
/// `module_path!()` gives it) inside a private network and mount namespace
/// with tcp_migrate_req `wanted`. True: this is the inner run, go on.
/// False: the outer run, done (the inner run passed).
pub fn in_private_netns(module: &str, name: &str, wanted: u8) -> bool {
    // libtest's name of the test: the module path without the crate.
    let test = match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    };
    let test = test.as_str();
    if let Some(name) = env::var_os(INSIDE) {
        assert_eq!(
            name.to_string_lossy(),
            test,
            "inside the namespace of another test"
        );
        return true;
    }
    // libtest names a test's thread after the test: catch a wrong name
    // here rather than as "0 tests ran" inside.
    if let Some(thread) = thread::current().name().filter(|n| *n != "main") {
        assert_eq!(thread, test, "in_private_netns needs the test's own name");
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need_tool("unshare");
    need_tool("ip");
    let host_before = migrate_req();
    if host_before.is_none() && wanted == 1 {
        panic!("the kernel has no net.ipv4.tcp_migrate_req (Linux 5.14+)");
    }

    let mut log = tempfile::tempfile().expect("cannot create a temp file");
    let mut cmd = Command::new("unshare");
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--net", "--mount", "--propagation", "private", "--"])
        .args(["sh", "-c", SETUP, "sh"])
        .arg(env::current_exe().expect("cannot find the test binary"))
        .args([test, "--exact", "--nocapture", "--include-ignored"])
        .args(["--test-threads", "1"])
        .env(INSIDE, test)
        .env(
            "NETNS_MIGRATE_REQ",
            if host_before.is_some() {
                wanted.to_string()
            } else {
                String::new()
            },
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log.try_clone().unwrap())
        // Its own process group: the wrapper, Envoy and wrk inside join
        // it, and a timeout kills them all.
        .process_group(0);
    // SAFETY: prctl only, between fork and exec; it stays across exec.
    // The inner run dies with this thread if the test process is killed.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run unshare: {e}"));
    let group = Group(Pid::from_raw(child.id() as i32));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() >= INNER_DEADLINE {
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    drop(group);
    let _ = child.wait();
    let mut out = String::new();
    log.rewind().unwrap();
    log.read_to_string(&mut out).unwrap();
    eprintln!(
        "----- {test}, inside a private netns (tcp_migrate_req={wanted}), {:.1} s -----\n\
         {out}----- end of {test} -----",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        migrate_req(),
        host_before,
        "the host's tcp_migrate_req changed"
    );
    let Some(status) = status else {
        panic!("{test} did not finish inside its namespace within {INNER_DEADLINE:?}");
    };
    if !status.success() && !out.contains("netns: ready") {
        // unshare or the set-up failed (no user namespaces, say).
        panic!("cannot set up a private network namespace ({status}):\n{out}");
    }
    assert!(
        status.success(),
        "{test} failed inside its namespace ({status})"
    );
    assert!(
        out.contains("test result: ok. 1 passed"),
        "the inner run did not run {test} exactly once"
    );
    false
}

/// Kills a process group when dropped (the inner run and all it started:
/// after a timeout, or when the outer test panics).
struct Group(Pid);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}
