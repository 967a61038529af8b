//! The fixture: a `#!/bin/sh` script that `exec`s the bench binary in
//! fixture mode, the FIFO it reports to, and the processes the bench starts
//! directly for the floors.

use std::collections::BTreeSet;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::DEADLINE;

/// The first argument that puts the bench binary in fixture mode.
pub const FIXTURE_ARG: &str = "--hot-restarter-bench-fixture";

/// Fixture mode: signal readiness on `fifo`, then wait for signals without
/// waking up. The ready line is `ready <epoch> <pid> <ns>`, `ns` being
/// CLOCK_MONOTONIC when it was written.
pub fn fixture(fifo: &str) -> ! {
    // SAFETY: plain system calls on local, initialised memory; the process
    // is single-threaded.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        // Die with whoever started us (the wrapper, or the bench for a
        // floor), so that nothing outlives a failed bench.
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0,
            0,
            0,
        );
        let path = CString::new(fifo).unwrap();
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            libc::_exit(3);
        }
        let pid = libc::getpid();
        let epoch = std::env::var("RESTART_EPOCH").unwrap_or_default();
        let say = |text: String| {
            // One write of less than PIPE_BUF bytes: atomic on a FIFO.
            if libc::write(fd, text.as_ptr().cast(), text.len()) < 0 {
                libc::_exit(4);
            }
        };
        say(format!("ready {epoch} {pid} {}\n", super::monotonic_ns()));
        loop {
            let mut sig = 0;
            if libc::sigwait(&set, &mut sig) != 0 {
                continue;
            }
            match sig {
                libc::SIGTERM => libc::_exit(0),
                libc::SIGUSR1 => say(format!("usr1 {pid}\n")),
                _ => {}
            }
        }
    }
}

// ----- the FIFO every fixture reports to ----------------------------------

/// A `ready` line.
pub struct Ready {
    /// RESTART_EPOCH as the fixture saw it (a word of the floor server's
    /// choosing for that).
    pub epoch: String,
    pub pid: i32,
    /// CLOCK_MONOTONIC (ns) when the line was written.
    pub at_ns: i64,
}

/// The read side of the fixtures' FIFO. Held open read-write, so that a
/// fixture's open never blocks and a closed writer never means EOF.
pub struct Fifo {
    pub path: PathBuf,
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Fifo {
    fn create(path: PathBuf) -> Fifo {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path; the descriptor is owned below.
        let fd = unsafe {
            assert_eq!(libc::mkfifo(c.as_ptr(), 0o600), 0, "mkfifo failed");
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0, "cannot open the FIFO");
        // SAFETY: fd was just opened and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Fifo {
            path,
            fd,
            buf: Vec::new(),
        }
    }

    /// The next line, waiting at most until `end`.
    fn line(&mut self, end: Instant) -> String {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for a fixture line");
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n <= 0 {
                continue;
            }
            let mut chunk = [0u8; 4096];
            // SAFETY: reading into a local buffer of the given size.
            let got =
                unsafe { libc::read(self.fd.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if got > 0 {
                self.buf.extend_from_slice(&chunk[..got as usize]);
            }
        }
    }

    /// Wait for the next `ready <epoch> <pid> <ns>`.
    pub fn ready(&mut self) -> Ready {
        let line = self.line(Instant::now() + DEADLINE);
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("ready"), "unexpected line {line:?}");
        let epoch = words.next().unwrap_or("").to_string();
        let mut number = || {
            words
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("malformed line {line:?}"))
        };
        let pid = number() as i32;
        let at_ns = number();
        Ready { epoch, pid, at_ns }
    }

    /// Wait for `usr1 <pid>` from each of `pids` (in any order).
    pub fn usr1_from(&mut self, pids: &BTreeSet<i32>) {
        let end = Instant::now() + DEADLINE;
        let mut seen = BTreeSet::new();
        while seen.len() < pids.len() {
            let line = self.line(end);
            let pid: i32 = line
                .strip_prefix("usr1 ")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            assert!(pids.contains(&pid), "SIGUSR1 reached a stranger {pid}");
            assert!(seen.insert(pid), "SIGUSR1 reached {pid} twice");
        }
    }
}

// ----- processes ----------------------------------------------------------

pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this bench started and has not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Wait until `pid` has been reaped by its parent (no /proc entry left).
pub fn wait_reaped(pid: i32) {
    let end = Instant::now() + DEADLINE;
    let path = format!("/proc/{pid}");
    while Path::new(&path).exists() {
        assert!(Instant::now() < end, "PID={pid} was never reaped");
        thread::sleep(Duration::from_micros(100));
    }
}

/// waitpid(2) for a child of this bench; returns the raw status.
pub fn reap(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid({pid}) failed");
    status
}

/// The fixture script, and what it takes to run it directly.
pub struct Fixture {
    dir: tempfile::TempDir,
    pub script: PathBuf,
    pub fifo: Fifo,
    /// A prepared `execve` of the script, for the fork + exec floor.
    program: CString,
    envp: Vec<CString>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let fifo = Fifo::create(dir.path().join("ready.fifo"));
        let me = std::env::current_exe().unwrap();
        let script = dir.path().join("start_fixture.sh");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec '{}' {FIXTURE_ARG} '{}'\n",
                me.display(),
                fifo.path.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let program = CString::new(script.as_os_str().as_bytes()).unwrap();
        let envp = child_env()
            .map(|(k, v)| {
                let mut e = k.as_bytes().to_vec();
                e.push(b'=');
                e.extend_from_slice(v.as_bytes());
                CString::new(e).unwrap()
            })
            .chain(std::iter::once(CString::new("RESTART_EPOCH=0").unwrap()))
            .collect();
        Fixture {
            dir,
            script,
            fifo,
            program,
            envp,
        }
    }

    /// A path for a file of the bench's own (a socket) in the fixture's
    /// temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The floor of a launch: run the script directly, as the wrapper is
    /// run, with RESTART_EPOCH=0 as the wrapper would set it.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.script);
        base(&mut cmd).env("RESTART_EPOCH", "0");
        cmd
    }

    /// The floor of a restart: a bare fork + execve of the script.
    pub fn fork_exec(&self) -> i32 {
        let argv = [self.program.as_ptr(), std::ptr::null()];
        let envp = hot_restarter::os::spawn::null_terminated(&self.envp);
        // SAFETY: this process is single-threaded; the child only calls
        // execve and _exit on memory prepared before the fork.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                libc::execve(self.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
            assert!(pid > 0, "fork failed");
            pid
        }
    }
}

/// The environment a child gets: ours, less what would change the wrapper's
/// (or hot-restarter-ctl's) behaviour (its flags' variables, RUST_LOG,
/// NOTIFY_SOCKET, an epoch).
fn child_env() -> impl Iterator<Item = (OsString, OsString)> {
    std::env::vars_os().filter(|(k, _)| !dropped_var(k))
}

fn dropped_var(key: &OsStr) -> bool {
    let k = key.as_bytes();
    k.starts_with(b"HOT_RESTARTER_")
        || k == b"RUST_LOG"
        || k == b"NOTIFY_SOCKET"
        || k == b"RESTART_EPOCH"
}

/// The environment and stdio every process the bench starts gets.
pub fn base(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .envs(child_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
}

/// Children the bench started directly (floors); killed and reaped on drop.
#[derive(Default)]
pub struct Direct {
    pub pids: Vec<i32>,
}

impl Direct {
    pub fn spawn(&mut self, fx: &mut Fixture) {
        let pid = fx.command().spawn().expect("cannot run the fixture").id() as i32;
        let ready = fx.fifo.ready();
        assert_eq!(ready.pid, pid);
        self.pids.push(pid);
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        for pid in self.pids.drain(..) {
            // SAFETY: kill/waitpid on our own unreaped children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}
