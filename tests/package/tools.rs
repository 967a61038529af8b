//! Finding the tools an ignored test needs, and running commands with a
//! bound. A test marked `#[ignore]` runs only when asked for
//! (`--include-ignored`, as `.ci/run` does), so a missing tool fails it
//! with the tool's name and how to get it.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hot-restarter");
pub const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

/// `tool` on PATH (or beside cargo, for cargo subcommands), else a panic
/// naming it and where `.ci/run` gets it.
pub fn need(tool: &str, from: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(Path::new(&home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("missing {tool}: install {from} (.ci/run does)"))
}

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run `cmd` to completion within `limit`, killing it (and failing) past
/// that; stdout and stderr are collected.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        out.read_to_end(&mut text).ok();
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        err.read_to_end(&mut text).ok();
        text
    });
    let status = wait_bounded(&mut child, limit)
        .unwrap_or_else(|| panic!("{what} still runs after {limit:?}: killed"));
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Wait for `child` up to `limit`; past it, SIGTERM its process group
/// (a script's trap then cleans up what it started in other sessions),
/// SIGKILL it 5 s later, and return None.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    use nix::sys::signal::{Signal, killpg};
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let exited = |child: &mut Child, limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if let Some(status) = exited(child, limit) {
        return Some(status);
    }
    killpg(group, Signal::SIGTERM).ok();
    if exited(child, Duration::from_secs(5)).is_none() {
        killpg(group, Signal::SIGKILL).ok();
        child.wait().ok();
    }
    None
}

/// stdout and stderr as text, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
