//! A wrapper under test in its own temp dir, its output collected line by
//! line, and the child scripts the tests start it with.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_hot-restarter");
pub const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");
/// How long anything may take before a test gives up (a bound, not a
/// speed assertion).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// An epoch that says nothing on stdout (every line there is the
/// wrapper's), records its pid in `pid-$RESTART_EPOCH`, exits 1 at once if
/// `fail-$RESTART_EPOCH` exists, takes SIGTERM as a request to stop that
/// it grants once `may-exit` exists, and ends with the wrapper.
pub const EPOCH: &str = r#"#!/bin/sh
[ -e "fail-$RESTART_EPOCH" ] && exit 1
echo $$ > "pid-$RESTART_EPOCH.tmp" && mv "pid-$RESTART_EPOCH.tmp" "pid-$RESTART_EPOCH"
term=
trap 'term=1' TERM
while kill -0 "$PPID" 2>/dev/null; do
  if [ -n "$term" ] && [ -e may-exit ]; then exit 0; fi
  sleep 0.05
done
"#;

/// A ready check that passes once the test creates `ready-$RESTART_EPOCH`.
pub const READY: &str = "#!/bin/sh\nexec test -e \"ready-$RESTART_EPOCH\"\n";

/// Poll `cond` until it holds or `DEADLINE` passes.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + DEADLINE;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A running hot-restarter. Dropping it stops it: SIGTERM with leave to
/// exit, then SIGKILL.
pub struct Wrapper {
    pub dir: tempfile::TempDir,
    pub pid: i32,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<thread::JoinHandle<()>>,
    code: Option<i32>,
}

impl Wrapper {
    /// Run `program` (the wrapper, or something that execs it) with `args`
    /// in a new temp dir holding `start.sh` (EPOCH) and `ready.sh` (READY).
    pub fn start(program: &str, args: &[&str], env: &[(&str, &str)]) -> Wrapper {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "start.sh", EPOCH);
        script(dir.path(), "ready.sh", READY);
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("RESTART_EPOCH")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("HOT_RESTARTER_LOG_FORMAT")
            .env_remove("HOT_RESTARTER_CONTROL_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot start hot-restarter");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            collect(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        Wrapper {
            pid: child.id() as i32,
            dir,
            child,
            stdout,
            stderr,
            readers,
            code: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn touch(&self, name: &str) {
        fs::write(self.path(name), "").unwrap();
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout().join("\n"),
            self.stderr().join("\n")
        )
    }

    /// Wait for a stdout line containing `text`.
    pub fn wait_for(&self, text: &str) -> String {
        let mut found = None;
        let ok = wait_until(|| {
            found = self.stdout().into_iter().find(|l| l.contains(text));
            found.is_some()
        });
        assert!(ok, "no line with {text:?}; {}", self.output());
        found.unwrap()
    }

    /// The pid epoch `epoch` recorded.
    pub fn epoch_pid(&self, epoch: u32) -> i32 {
        let path = self.path(&format!("pid-{epoch}"));
        assert!(
            wait_until(|| path.exists()),
            "epoch {epoch} never ran; {}",
            self.output()
        );
        fs::read_to_string(path).unwrap().trim().parse().unwrap()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid), signal).unwrap();
    }

    /// The exit code, once the wrapper has exited and its output is read.
    pub fn exit_code(&mut self) -> i32 {
        if let Some(code) = self.code {
            return code;
        }
        let mut status = None;
        let exited = wait_until(|| {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        assert!(exited, "the wrapper did not exit; {}", self.output());
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let code = status.unwrap().code().expect("the wrapper was killed");
        self.code = Some(code);
        code
    }

    /// Run hot-restarter-ctl with `args` on this wrapper's socket `ctl.sock`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(CTL)
            .args(args)
            .env("HOT_RESTARTER_CONTROL_SOCKET", self.path("ctl.sock"))
            .output()
            .expect("cannot run hot-restarter-ctl")
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = fs::write(self.path("may-exit"), "");
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        if !wait_until(|| self.child.try_wait().ok().flatten().is_some()) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(
    pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    })
}

/// The exit code and both outputs of a finished ctl, for messages.
pub fn shown(out: &Output) -> String {
    format!(
        "exit {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `CI=true`: a missing component fails the test that needs it.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
}
