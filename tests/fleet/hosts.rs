//! A "host" of the fleet on this machine: a directory with its config
//! file, a hot-restarter with its own control socket running the demo
//! stand-in for Envoy (examples/demo/start_demo.sh), and a preflight that
//! refuses a config without `listeners:`. Dropping it stops the wrapper
//! and kills whatever is left of its process group.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::tools::{BIN, CTL, root, run, text, wait_bounded};

pub const GOOD: &str = "version: 1\nlisteners: []\n";
pub const PREFLIGHT: &str = r#"#!/bin/sh
grep -q '^listeners:' "$CONFIG" && exit 0
echo "$CONFIG has no listeners: section" >&2
exit 1
"#;

pub struct Host {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    wrapper: Child,
}

impl Host {
    pub fn start(name: &str) -> Host {
        Host::start_with(name, &[], |s| s.contains("serving: epoch 0 "))
    }

    /// A host whose wrapper gets `extra` flags too, once `started` passes
    /// its status.
    pub fn start_with(name: &str, extra: &[&str], started: impl Fn(&str) -> bool) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let config = dir.path().join("envoy.yaml");
        fs::write(&config, GOOD).unwrap();
        let preflight = dir.path().join("preflight.sh");
        fs::write(&preflight, PREFLIGHT).unwrap();
        fs::set_permissions(&preflight, fs::Permissions::from_mode(0o755)).unwrap();
        let log = fs::File::create(dir.path().join("wrapper.log")).unwrap();
        let wrapper = Command::new(BIN)
            .arg("--control-socket")
            .arg(&socket)
            .arg("--preflight")
            .arg(&preflight)
            .args(["--term-wait", "5"])
            .args(extra)
            .arg(root().join("examples/demo/start_demo.sh"))
            .env("DEMO_STATE_DIR", dir.path())
            .env("DEMO_PARENT_SHUTDOWN_S", "0.2")
            .env("CONFIG", &config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let host = Host {
            name: name.to_string(),
            dir,
            socket,
            config,
            wrapper,
        };
        host.wait_status(started);
        host
    }

    /// `hot-restarter-ctl status` with these extra flags, as text.
    pub fn status(&self, flags: &[&str]) -> String {
        let out = run(
            Command::new(CTL)
                .arg("--socket")
                .arg(&self.socket)
                .arg("status")
                .args(flags),
            Duration::from_secs(20),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait (bounded) until the status text passes `check`.
    pub fn wait_status(&self, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status(&[]);
            if check(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: status never matched: {status}\nlog: {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("wrapper.log")).unwrap_or_default()
    }

    /// `hot-restarter-ctl reload --wait`, as the roll runs it; it must
    /// succeed or fail as `ok` says.
    pub fn reload(&self, ok: bool) -> std::process::Output {
        let out = self.ctl(&["reload", "--wait"], Duration::from_secs(60));
        assert_eq!(out.status.success(), ok, "{}", text(&out));
        out
    }

    /// Stop the wrapper (`stop --wait`), leaving the directory.
    pub fn stop(&self) {
        let out = self.ctl(&["stop", "--wait"], Duration::from_secs(30));
        assert!(out.status.success(), "{}", text(&out));
    }

    /// `hot-restarter-ctl --socket <this host's> ARGS`, bounded by `limit`.
    fn ctl(&self, args: &[&str], limit: Duration) -> std::process::Output {
        run(
            Command::new(CTL)
                .arg("--socket")
                .arg(&self.socket)
                .args(args),
            limit,
        )
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.wrapper.id() as i32);
        let _ = nix::sys::signal::kill(group, Signal::SIGTERM);
        if wait_bounded(&mut self.wrapper, Duration::from_secs(10)).is_none() {
            eprintln!("{}: the wrapper ignored SIGTERM: killed", self.name);
        }
        // The stand-in's background `sleep; kill` may outlive it.
        let _ = killpg(group, Signal::SIGKILL);
    }
}
