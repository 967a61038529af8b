//! What the client sees: a thread that connects to Envoy's listener every
//! few milliseconds and records when connections were refused, and a
//! runner for `hot-restarter-ctl` that keeps what it answered.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The hot-restarter-ctl built with the wrapper.
pub const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

/// Pause between two connects of the listener probe.
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// How long one connect may take before it counts as down.
const CONNECT_LIMIT: Duration = Duration::from_millis(500);

/// The listener's outages, as the probe saw them.
#[derive(Debug, Clone, Default)]
pub struct Outages {
    pub attempts: u64,
    pub failed: u64,
    /// (from the start of the probe, length) of every run of failed
    /// connects, from the first failure to the next success.
    pub down: Vec<(Duration, Duration)>,
}

impl Outages {
    pub fn longest(&self) -> Duration {
        self.down.iter().map(|d| d.1).max().unwrap_or_default()
    }

    pub fn total(&self) -> Duration {
        self.down.iter().map(|d| d.1).sum()
    }

    pub fn summary(&self) -> String {
        let first: Vec<String> = self
            .down
            .iter()
            .take(8)
            .map(|(at, len)| format!("{:.1} s at {:.1} s", len.as_secs_f64(), at.as_secs_f64()))
            .collect();
        format!(
            "listener probe: {} connects, {} failed, down {:.1} s in all, longest {:.1} s ({} \
             outages: {}{})",
            self.attempts,
            self.failed,
            self.total().as_secs_f64(),
            self.longest().as_secs_f64(),
            self.down.len(),
            first.join(", "),
            if self.down.len() > first.len() {
                ", ..."
            } else {
                ""
            }
        )
    }
}

/// Connects to 127.0.0.1:`port` in a loop until `finish`.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Outages>>,
}

impl Probe {
    pub fn start(port: u16) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let thread = thread::spawn(move || {
            let begun = Instant::now();
            let mut out = Outages::default();
            let mut down_since: Option<Instant> = None;
            while !flag.load(Ordering::SeqCst) {
                out.attempts += 1;
                let ok = TcpStream::connect_timeout(&addr, CONNECT_LIMIT).is_ok();
                let now = Instant::now();
                match (ok, down_since) {
                    (false, None) => {
                        out.failed += 1;
                        down_since = Some(now);
                    }
                    (false, Some(_)) => out.failed += 1,
                    (true, Some(since)) => {
                        out.down.push((since - begun, now - since));
                        down_since = None;
                    }
                    (true, None) => {}
                }
                thread::sleep(PROBE_EVERY);
            }
            if let Some(since) = down_since {
                out.down.push((since - begun, Instant::now() - since));
            }
            out
        });
        Probe {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Outages {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What one `hot-restarter-ctl` run answered.
#[derive(Debug, Clone)]
pub struct CtlAnswer {
    pub args: Vec<String>,
    /// The exit code (None: killed by a signal or by our time limit).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl CtlAnswer {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe(&self) -> String {
        format!(
            "hot-restarter-ctl {} -> exit {:?} after {} ms; stdout {:?}; stderr {:?}",
            self.args.join(" "),
            self.code,
            self.took.as_millis(),
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// Run `hot-restarter-ctl --socket SOCKET args...`, killed after `limit`.
pub fn ctl(socket: &Path, args: &[&str], limit: Duration) -> CtlAnswer {
    let t = Instant::now();
    let mut cmd = Command::new(CTL);
    cmd.arg("--socket").arg(socket).args(args);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run hot-restarter-ctl");
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if t.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    CtlAnswer {
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t.elapsed(),
    }
}

/// `ctl` in a thread of its own.
pub fn ctl_in_background(socket: &Path, args: &[&str], limit: Duration) -> JoinHandle<CtlAnswer> {
    let socket: PathBuf = socket.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(&socket, &args, limit)
    })
}
