//! The stand-in admin lab: a stand-in for Envoy's admin, on 127.0.0.1 or
//! a unix socket (it answers `GET /server_info` with the state and epoch
//! the test sets, or stays silent, and counts the requests it was sent),
//! and a `Lab` that runs the wrapper with `--envoy-admin` and
//! `--handoff-admin` on two of them, over a reporter child that records
//! its generation.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::support::fixtures::{REPORTER, script, wait_new_report};
use crate::support::wrapper::{DEADLINE, Wrapper, command, wait_until};

/// How the fake admin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `/server_info` with this state and restart epoch.
    Answer { state: String, epoch: u32 },
    /// Accept the connection and never answer.
    Silent,
}

pub fn live(epoch: u32) -> Mode {
    Mode::Answer {
        state: "LIVE".into(),
        epoch,
    }
}

pub fn initializing(epoch: u32) -> Mode {
    Mode::Answer {
        state: "INITIALIZING".into(),
        epoch,
    }
}

/// Whether an Envoy would be listening on the admin address now.
type Gate = Box<dyn Fn() -> bool + Send>;

struct Shared {
    mode: Mutex<Mode>,
    /// While it says no, connections are closed unanswered, as near as a
    /// bound listener comes to an address nothing listens on.
    gate: Mutex<Option<Gate>>,
    requests: AtomicUsize,
    /// Request lines seen, e.g. "GET /server_info HTTP/1.1".
    lines: Mutex<Vec<String>>,
    stop: AtomicBool,
}

pub struct FakeAdmin {
    shared: Arc<Shared>,
    /// The address to pass to --envoy-admin.
    pub addr: String,
    /// Silent connections are kept open here until the admin is dropped.
    _held: Arc<Mutex<Vec<Box<dyn Send>>>>,
}

impl FakeAdmin {
    /// A fake admin on a free port of 127.0.0.1.
    pub fn tcp(mode: Mode) -> FakeAdmin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        FakeAdmin::serve(addr, mode, move || match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                Some(Box::new(s) as Box<dyn Conn>)
            }
            Err(_) => None,
        })
    }

    /// A fake admin on a unix socket at `path` (Envoy's admin `pipe`).
    pub fn unix(path: &Path, mode: Mode) -> FakeAdmin {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = path.display().to_string();
        FakeAdmin::serve(addr, mode, move || match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                Some(Box::new(s) as Box<dyn Conn>)
            }
            Err(_) => None,
        })
    }

    fn serve(
        addr: String,
        mode: Mode,
        mut accept: impl FnMut() -> Option<Box<dyn Conn>> + Send + 'static,
    ) -> FakeAdmin {
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            gate: Mutex::new(None),
            requests: AtomicUsize::new(0),
            lines: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let held: Arc<Mutex<Vec<Box<dyn Send>>>> = Arc::default();
        let (s, h) = (shared.clone(), held.clone());
        thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                let Some(mut conn) = accept() else {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                };
                if s.gate.lock().unwrap().as_ref().is_some_and(|open| !open()) {
                    continue;
                }
                s.requests.fetch_add(1, Ordering::SeqCst);
                let mode = s.mode.lock().unwrap().clone();
                match mode {
                    Mode::Silent => h.lock().unwrap().push(Box::new(conn)),
                    Mode::Answer { state, epoch } => {
                        let line = read_head(&mut *conn);
                        s.lines.lock().unwrap().push(line.clone());
                        let body = if line.starts_with("GET /server_info ") {
                            format!(
                                "{{\"state\":\"{state}\",\"hot_restart_version\":\"11.104\",\
                                 \"command_line_options\":{{\"restart_epoch\":{epoch}}}}}"
                            )
                        } else if line.starts_with("GET /hot_restart_version ") {
                            "11.104".to_string()
                        } else {
                            "OK\n".to_string()
                        };
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                }
            }
        });
        FakeAdmin {
            shared,
            addr,
            _held: held,
        }
    }

    /// Answer only while `open` says an Envoy would listen here.
    pub fn only_while(&self, open: impl Fn() -> bool + Send + 'static) {
        *self.shared.gate.lock().unwrap() = Some(Box::new(open));
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Connections accepted so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The request lines of the answered requests.
    pub fn request_lines(&self) -> Vec<String> {
        self.shared.lines.lock().unwrap().clone()
    }
}

impl Drop for FakeAdmin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

pub trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Read a request head (bounded) and return its first line.
fn read_head(conn: &mut dyn Conn) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// A reporter that also records what the wrapper told it about its
/// generation, into `env-G-E`, and reports as `epoch-G-E`; with
/// `FAIL_SLOT=S` a child of slot S exits 1 at once (a start script that
/// ignores the slot).
const GENERATION_START: &str = r#"#!/bin/sh
g=${HOT_RESTARTER_GENERATION:-none}
echo "$HOT_RESTARTER_GENERATION $HOT_RESTARTER_SLOT $HOT_RESTARTER_ENVOY_ADMIN" \
  > "$REPORT_DIR/env-$g-$RESTART_EPOCH"
if [ -n "$FAIL_SLOT" ] && [ "$FAIL_SLOT" = "$HOT_RESTARTER_SLOT" ]; then exit 1; fi
export RESTART_EPOCH="$g-$RESTART_EPOCH"
exec "$REPORT_DIR/reporter.sh" "$@"
"#;

/// The wrapper with `--envoy-admin` and `--handoff-admin` on two stand-in
/// admins (both LIVE at epoch 0 to begin with).
pub struct Lab {
    pub w: Wrapper,
    pub slot0: FakeAdmin,
    pub slot1: FakeAdmin,
}

impl Lab {
    /// The lab with `flags` before the start script and `env` added.
    pub fn start(flags: &[&str], env: &[(&str, &str)]) -> Lab {
        Lab::launch(flags, env, &[])
    }

    /// The lab with `scripts` (name, body) written into its directory.
    pub fn with_scripts(flags: &[&str], scripts: &[(&str, &str)]) -> Lab {
        Lab::launch(flags, &[], scripts)
    }

    fn launch(flags: &[&str], env: &[(&str, &str)], scripts: &[(&str, &str)]) -> Lab {
        let slot0 = FakeAdmin::tcp(live(0));
        let slot1 = FakeAdmin::tcp(live(0));
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "reporter.sh", REPORTER);
        script(dir.path(), "start.sh", GENERATION_START);
        for (name, body) in scripts {
            script(dir.path(), name, body);
        }
        let mut cmd = command(dir.path());
        cmd.args(["--envoy-admin", &slot0.addr, "--handoff-admin", &slot1.addr])
            .args(flags)
            .arg("start.sh")
            .envs(env.iter().copied());
        // A real Envoy's admin answers only while that Envoy runs: before
        // a handoff starts it, the new slot's address is free.
        for (slot, admin) in [(0, &slot0), (1, &slot1)] {
            let dir = dir.path().to_path_buf();
            admin.only_while(move || slot_runs(&dir, slot));
        }
        let w = Wrapper::spawn(dir, cmd);
        Lab { w, slot0, slot1 }
    }

    /// The pid of `generation`'s `epoch`, once it has reported.
    pub fn pid(&self, generation: u32, epoch: u32) -> i32 {
        let path = self.w.path().join(format!("epoch-{generation}-{epoch}"));
        wait_new_report(&path, None, || self.w.output())
            .pid()
            .unwrap()
    }

    /// "GENERATION SLOT ENVOY_ADMIN" as `generation`'s `epoch` saw them.
    pub fn env_of(&self, generation: u32, epoch: u32) -> String {
        let path = self.w.path().join(format!("env-{generation}-{epoch}"));
        assert!(wait_until(DEADLINE, || path.exists()));
        fs::read_to_string(path).unwrap().trim().to_string()
    }
}

/// Whether a child of `slot` (one whose generation G has G % 2 == slot)
/// has reported and still runs.
fn slot_runs(dir: &Path, slot: u32) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let of_slot = (name.strip_prefix("epoch-"))
            .and_then(|rest| rest.split('-').next()?.parse::<u32>().ok())
            .is_some_and(|g| g % 2 == slot);
        of_slot
            && fs::read_to_string(e.path()).is_ok_and(|report| {
                (report.lines())
                    .find_map(|l| l.strip_prefix("pid=")?.parse::<i32>().ok())
                    .is_some_and(|pid| {
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                    })
            })
    })
}
