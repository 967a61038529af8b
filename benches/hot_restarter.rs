//! `cargo bench`: hot-restarter's figures, each next to its floor measured in
//! the same run on the same fixture script.
//!
//! The fixture is a `#!/bin/sh` script that `exec`s this very binary in
//! fixture mode, the way `start_envoy.sh` execs Envoy. In fixture mode it
//! blocks SIGTERM and SIGUSR1, writes `ready <epoch> <pid>` to a FIFO and then
//! sleeps in `sigwait` (no wake-ups): SIGUSR1 writes `usr1 <pid>`, SIGTERM
//! exits 0. What makes the comparison fair: the floor runs the *same* script
//! with the same environment, working directory and stdio, started the same
//! way (`Command` for a launch, a bare `fork` + `execve` for a restart), and
//! both are timed by the same clock in this process up to the same line on
//! the same FIFO. Rounds alternate floor and wrapper so that drift in the
//! machine's load hits both alike. The difference is what the wrapper adds.
//!
//! `cargo bench` runs it (about 40 s on 2 cores). Fewer rounds:
//! `cargo bench --bench hot_restarter -- --quick` (20 rounds; the unit-test
//! harness `cargo bench` also runs would refuse the flag) or
//! `HOT_RESTARTER_BENCH_ROUNDS=N cargo bench`. Run without `--bench` (as
//! `cargo test --benches` does) it is a smoke run of two rounds on whatever
//! binary that build made, whose verdicts mean nothing.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hot-restarter");
const FIXTURE_ARG: &str = "--hot-restarter-bench-fixture";
/// Anything the bench waits for; only reached when something is broken.
const DEADLINE: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(FIXTURE_ARG) {
        fixture(args.get(2).expect("fixture FIFO path"));
    }
    let config = BenchConfig::from_args(&args);
    // `cargo bench` may hand this process descriptors of its own (a
    // jobserver pipe): keep them from the wrapper, so that its descriptor
    // count is its own.
    hot_restarter::setup::close_inherited_descriptors()
        .expect("cannot mark descriptors close-on-exec");
    run(&config);
}

// ----- the fixture (this binary, exec'd by the fixture script) -----------

/// Signal readiness on `fifo`, then wait for signals without waking up.
fn fixture(fifo: &str) -> ! {
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
        say(format!("ready {epoch} {pid}\n"));
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

// ----- configuration ------------------------------------------------------

struct BenchConfig {
    /// Rounds for each timed figure.
    rounds: usize,
    /// The idle window for the wake-up count.
    idle: Duration,
    smoke: bool,
}

impl BenchConfig {
    fn from_args(args: &[String]) -> BenchConfig {
        let smoke = !args.iter().any(|a| a == "--bench");
        let quick = args.iter().any(|a| a == "--quick");
        let from_env = std::env::var("HOT_RESTARTER_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0);
        let rounds = match (from_env, smoke, quick) {
            (Some(n), _, _) => n,
            (None, true, _) => 2,
            (None, false, true) => 20,
            (None, false, false) => 500,
        };
        BenchConfig {
            rounds,
            idle: if smoke {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(2)
            },
            smoke,
        }
    }
}

// ----- the FIFO every fixture reports to ----------------------------------

/// The read side of the fixtures' FIFO. Held open read-write, so that a
/// fixture's open never blocks and a closed writer never means EOF.
struct Fifo {
    path: PathBuf,
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

    /// Wait for `ready <epoch> <pid>`; returns (epoch, pid).
    fn ready(&mut self) -> (String, i32) {
        let line = self.line(Instant::now() + DEADLINE);
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("ready"), "unexpected line {line:?}");
        let epoch = words.next().unwrap_or("").to_string();
        let pid = words.next().and_then(|p| p.parse().ok()).expect("pid");
        (epoch, pid)
    }

    /// Wait for `usr1 <pid>` from each of `pids` (in any order).
    fn usr1_from(&mut self, pids: &BTreeSet<i32>) {
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

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid this bench started and has not reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Wait until `pid` has been reaped by its parent (no /proc entry left).
fn wait_reaped(pid: i32) {
    let end = Instant::now() + DEADLINE;
    let path = format!("/proc/{pid}");
    while Path::new(&path).exists() {
        assert!(Instant::now() < end, "PID={pid} was never reaped");
        thread::sleep(Duration::from_micros(100));
    }
}

/// waitpid(2) for a child of this bench; returns the raw status.
fn reap(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid({pid}) failed");
    status
}

/// The fixture script, and what it takes to run it directly.
struct Fixture {
    _dir: tempfile::TempDir,
    script: PathBuf,
    fifo: Fifo,
    /// A prepared `execve` of the script, for the fork + exec floor.
    program: CString,
    envp: Vec<CString>,
}

impl Fixture {
    fn new() -> Fixture {
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
            _dir: dir,
            script,
            fifo,
            program,
            envp,
        }
    }

    /// The floor of a launch: run the script directly, as the wrapper is
    /// run, with RESTART_EPOCH=0 as the wrapper would set it.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.script);
        base(&mut cmd).env("RESTART_EPOCH", "0");
        cmd
    }

    /// The floor of a restart: a bare fork + execve of the script.
    fn fork_exec(&self) -> i32 {
        let argv = [self.program.as_ptr(), std::ptr::null()];
        let envp: Vec<*const libc::c_char> = self
            .envp
            .iter()
            .map(|e| e.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
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
/// behaviour (its flags' variables, RUST_LOG, NOTIFY_SOCKET, an epoch).
fn child_env() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os().filter(|(k, _)| !dropped_var(k))
}

fn dropped_var(key: &OsStr) -> bool {
    let k = key.as_bytes();
    k.starts_with(b"HOT_RESTARTER_")
        || k == b"RUST_LOG"
        || k == b"NOTIFY_SOCKET"
        || k == b"RESTART_EPOCH"
}

fn base(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .envs(child_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
}

/// Children the bench started directly (floors); TERMed and reaped on drop.
#[derive(Default)]
struct Direct {
    pids: Vec<i32>,
}

impl Direct {
    fn spawn(&mut self, fx: &mut Fixture) {
        let pid = fx.command().spawn().expect("cannot run the fixture").id() as i32;
        let (_, ready) = fx.fifo.ready();
        assert_eq!(ready, pid);
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

/// A running wrapper and its live children, oldest first.
struct Wrapper {
    child: Option<Child>,
    pid: i32,
    children: VecDeque<i32>,
    next_epoch: u32,
}

impl Wrapper {
    fn spawn(fx: &Fixture) -> Wrapper {
        let mut cmd = Command::new(BIN);
        base(&mut cmd).arg(&fx.script);
        let child = cmd.spawn().expect("cannot start hot-restarter");
        Wrapper {
            pid: child.id() as i32,
            child: Some(child),
            children: VecDeque::new(),
            next_epoch: 0,
        }
    }

    /// Wait for the next epoch's ready line.
    fn await_epoch(&mut self, fx: &mut Fixture) {
        let (epoch, pid) = fx.fifo.ready();
        assert_eq!(epoch, self.next_epoch.to_string(), "epochs out of order");
        self.next_epoch += 1;
        self.children.push_back(pid);
    }

    /// Start a wrapper and wait for its first child.
    fn launch(fx: &mut Fixture) -> Wrapper {
        let mut w = Wrapper::spawn(fx);
        w.await_epoch(fx);
        w
    }

    /// A wrapper with `n` live children.
    fn with_children(fx: &mut Fixture, n: usize) -> Wrapper {
        let mut w = Wrapper::launch(fx);
        while w.children.len() < n {
            w.hup(fx);
        }
        w
    }

    /// SIGHUP and wait for the new child; returns the time it took.
    fn hup(&mut self, fx: &mut Fixture) -> Duration {
        let t0 = Instant::now();
        signal(self.pid, libc::SIGHUP);
        self.await_epoch(fx);
        t0.elapsed()
    }

    /// The oldest child finishes draining: it exits 0 and is reaped.
    fn retire_oldest(&mut self) {
        let pid = self.children.pop_front().expect("a child");
        signal(pid, libc::SIGTERM);
        wait_reaped(pid);
    }

    fn usr1(&mut self, fx: &mut Fixture) -> Duration {
        let pids: BTreeSet<i32> = self.children.iter().copied().collect();
        let t0 = Instant::now();
        signal(self.pid, libc::SIGUSR1);
        fx.fifo.usr1_from(&pids);
        t0.elapsed()
    }

    /// SIGTERM and wait for the wrapper's exit (0).
    fn term(mut self) -> Duration {
        let mut child = self.child.take().unwrap();
        let t0 = Instant::now();
        signal(self.pid, libc::SIGTERM);
        let status = child.wait().unwrap();
        let took = t0.elapsed();
        assert!(status.success(), "wrapper exited with {status}");
        for pid in self.children.drain(..) {
            wait_reaped(pid);
        }
        took
    }

    fn status(&self) -> ProcStatus {
        ProcStatus::read(self.pid)
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // PR_SET_PDEATHSIG takes the children down; make sure of it.
        for pid in self.children.drain(..) {
            // SAFETY: the pid was a live child of the wrapper just now.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

// ----- /proc figures ------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct ProcStatus {
    rss_anon_kb: u64,
    vm_rss_kb: u64,
    ctxt_switches: u64,
    /// The third field of /proc/PID/schedstat: times the task was run.
    sched_runs: u64,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    fds: usize,
}

impl ProcStatus {
    fn read(pid: i32) -> ProcStatus {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        // Fields 14 and 15 (utime, stime) are 11 and 12 after the ')'.
        let cpu_ticks = after[11].parse::<u64>().unwrap() + after[12].parse::<u64>().unwrap();
        let sched_runs = fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(0);
        ProcStatus {
            rss_anon_kb: field("RssAnon:"),
            vm_rss_kb: field("VmRSS:"),
            ctxt_switches: field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:"),
            sched_runs,
            cpu_ticks,
            fds: fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count(),
        }
    }
}

// ----- statistics and the table -------------------------------------------

#[derive(Clone, Copy)]
struct Stats {
    median: Duration,
    p90: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    assert!(!v.is_empty());
    v.sort();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    let p90 = v[((n * 9).div_ceil(10)).saturating_sub(1)];
    Stats { median, p90 }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

struct Table {
    rows: Vec<[String; 5]>,
}

impl Table {
    fn new() -> Table {
        Table { rows: Vec::new() }
    }

    fn section(&mut self, title: &str) {
        self.rows.push([
            format!("-- {title}"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }

    /// A timed figure next to its floor.
    fn timed(&mut self, what: &str, ours: Stats, floor: Option<Stats>, target: &str) {
        let (floor_text, ratio) = match floor {
            Some(f) => (
                format!("{} / {}", ms(f.median), ms(f.p90)),
                format!(
                    "{:.2}x ({:+.3} ms)",
                    ours.median.as_secs_f64() / f.median.as_secs_f64(),
                    (ours.median.as_secs_f64() - f.median.as_secs_f64()) * 1e3
                ),
            ),
            None => ("-".into(), "-".into()),
        };
        self.rows.push([
            what.into(),
            format!("{} / {}", ms(ours.median), ms(ours.p90)),
            floor_text,
            ratio,
            target.into(),
        ]);
    }

    fn value(&mut self, what: &str, value: String, target: &str) {
        self.rows
            .push([what.into(), value, "-".into(), "-".into(), target.into()]);
    }

    fn print(&self) {
        let header = [
            "figure".to_string(),
            "hot-restarter median / p90 (ms)".to_string(),
            "floor median / p90 (ms)".to_string(),
            "vs floor".to_string(),
            "target".to_string(),
        ];
        let mut widths = [0usize; 5];
        for row in std::iter::once(&header).chain(&self.rows) {
            if row[0].starts_with("-- ") {
                continue;
            }
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |row: &[String; 5]| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&header);
        println!(
            "|{}|",
            widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in &self.rows {
            if let Some(title) = row[0].strip_prefix("-- ") {
                let mut r: [String; 5] = Default::default();
                r[0] = format!("**{title}**");
                line(&r);
            } else {
                line(row);
            }
        }
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

// ----- the figures --------------------------------------------------------

fn run(cfg: &BenchConfig) {
    let started = Instant::now();
    let rounds = cfg.rounds;
    let mut fx = Fixture::new();
    let mut table = Table::new();
    println!("{}", machine());
    println!(
        "binary: {BIN}\nrounds per figure: {rounds}{}\n",
        if cfg.smoke {
            " (smoke run: use `cargo bench` for figures)"
        } else {
            ""
        }
    );

    // Launch, and SIGTERM to exit, one wrapper (or one direct child) per
    // round, floor and wrapper alternating.
    let (mut launch, mut launch_floor) = (Vec::new(), Vec::new());
    let (mut term, mut term_floor) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t0 = Instant::now();
        let pid = fx.command().spawn().expect("cannot run the fixture").id() as i32;
        let (_, ready) = fx.fifo.ready();
        launch_floor.push(t0.elapsed());
        assert_eq!(ready, pid);
        thread::sleep(Duration::from_millis(2));
        let t0 = Instant::now();
        signal(pid, libc::SIGTERM);
        let status = reap(pid);
        term_floor.push(t0.elapsed());
        assert_eq!(status, 0, "fixture exited with status {status}");

        let t0 = Instant::now();
        let w = Wrapper::launch(&mut fx);
        launch.push(t0.elapsed());
        thread::sleep(Duration::from_millis(2));
        term.push(w.term());
    }
    let launch = stats(launch);
    let launch_floor = stats(launch_floor);
    let term = stats(term);
    let term_floor = stats(term_floor);
    table.section("start and stop (floor: the script run directly)");
    table.timed(
        "launch to the first child running",
        launch,
        Some(launch_floor),
        &format!(
            "<= 1.3x floor: {}",
            verdict(launch.median.as_secs_f64() <= 1.3 * launch_floor.median.as_secs_f64())
        ),
    );
    table.timed(
        "SIGTERM to wrapper exit (1 child exits at once)",
        term,
        Some(term_floor),
        &format!(
            "< 20 ms: {}",
            verdict(term.median < Duration::from_millis(20))
        ),
    );

    // SIGTERM with ten children, which all exit at once.
    let (mut term10, mut term10_floor) = (Vec::new(), Vec::new());
    for _ in 0..(rounds / 5).max(2) {
        let mut direct = Direct::default();
        for _ in 0..10 {
            direct.spawn(&mut fx);
        }
        let t0 = Instant::now();
        for pid in &direct.pids {
            signal(*pid, libc::SIGTERM);
        }
        for pid in direct.pids.drain(..) {
            assert_eq!(reap(pid), 0);
        }
        term10_floor.push(t0.elapsed());
        let w = Wrapper::with_children(&mut fx, 10);
        thread::sleep(Duration::from_millis(2));
        term10.push(w.term());
    }
    let term10 = stats(term10);
    table.timed(
        "SIGTERM to wrapper exit (10 children exit at once)",
        term10,
        Some(stats(term10_floor)),
        &format!(
            "< 20 ms: {}",
            verdict(term10.median < Duration::from_millis(20))
        ),
    );

    // Idle: memory, descriptors and wake-ups of a wrapper with one child.
    let w = Wrapper::launch(&mut fx);
    thread::sleep(Duration::from_millis(300));
    let (idle_before, idle_after) = idle_window(&w, cfg.idle);
    drop(w);
    let size = fs::metadata(BIN).unwrap().len();

    // SIGUSR1 fan-out and restarts with N live children; the floors are the
    // bench signalling N direct children itself, and a bare fork + exec.
    let mut usr1_rows = Vec::new();
    let mut hup_rows = Vec::new();
    let mut after_restarts = None;
    for n in [1usize, 10, 100] {
        let mut w = Wrapper::with_children(&mut fx, n);
        let mut direct = Direct::default();
        for _ in 0..n {
            direct.spawn(&mut fx);
        }
        let direct_set: BTreeSet<i32> = direct.pids.iter().copied().collect();
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t0 = Instant::now();
            for pid in &direct.pids {
                signal(*pid, libc::SIGUSR1);
            }
            fx.fifo.usr1_from(&direct_set);
            floor.push(t0.elapsed());
            ours.push(w.usr1(&mut fx));
        }
        usr1_rows.push((n, stats(ours), stats(floor)));
        drop(direct);

        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t0 = Instant::now();
            let pid = fx.fork_exec();
            let (_, ready) = fx.fifo.ready();
            floor.push(t0.elapsed());
            assert_eq!(ready, pid);
            signal(pid, libc::SIGTERM);
            reap(pid);

            ours.push(w.hup(&mut fx));
            w.retire_oldest();
        }
        hup_rows.push((n, stats(ours), stats(floor)));
        if n == 100 {
            thread::sleep(Duration::from_millis(300));
            after_restarts = Some((w.next_epoch, idle_window(&w, cfg.idle)));
        }
        let took = w.term();
        assert!(took < DEADLINE);
    }

    let (_, hup1, hup1_floor) = hup_rows[0];
    table.section("restart (floor: a bare fork + exec of the script by the bench)");
    table.timed(
        "SIGHUP to the new child running",
        hup1,
        Some(hup1_floor),
        &format!(
            "<= 1.2x floor: {}",
            verdict(hup1.median.as_secs_f64() <= 1.2 * hup1_floor.median.as_secs_f64())
        ),
    );
    table.section("SIGUSR1 reaching all N children (floor: the bench signals them itself)");
    for (n, ours, floor) in &usr1_rows {
        table.timed(&format!("SIGUSR1, N = {n}"), *ours, Some(*floor), "");
    }
    table.section("one restart with N live, draining children (should stay flat)");
    for (n, ours, floor) in &hup_rows {
        // The floor, measured in the same rounds, shows how much of a change
        // is the machine's rather than the wrapper's.
        let vs1 = ours.median.as_secs_f64() / hup1.median.as_secs_f64();
        let floor_vs1 = floor.median.as_secs_f64() / hup1_floor.median.as_secs_f64();
        table.timed(
            &format!("SIGHUP to new child, N = {n}"),
            *ours,
            Some(*floor),
            &format!("{vs1:.2}x the N = 1 cost (floor {floor_vs1:.2}x)"),
        );
    }
    table.section("memory and idle (1 child, after start-up)");
    let kb = |v: u64| format!("{v} KB");
    table.value(
        "idle private memory (RssAnon)",
        kb(idle_after.rss_anon_kb),
        &format!("< 256 KB: {}", verdict(idle_after.rss_anon_kb < 256)),
    );
    table.value(
        "total resident memory (VmRSS)",
        kb(idle_after.vm_rss_kb),
        &format!("< 3 MB: {}", verdict(idle_after.vm_rss_kb < 3 * 1024)),
    );
    table.value(
        "binary size (release, stripped)",
        format!("{} KB", size / 1024),
        "",
    );
    table.value(
        "open descriptors",
        idle_after.fds.to_string(),
        &format!("4 (0-2, signalfd): {}", verdict(idle_after.fds == 4)),
    );
    let wakeups = |before: ProcStatus, after: ProcStatus| {
        format!(
            "{} ctxt switches, {} runs, {} CPU ticks",
            after.ctxt_switches - before.ctxt_switches,
            after.sched_runs - before.sched_runs,
            after.cpu_ticks - before.cpu_ticks
        )
    };
    let idle_label = format!("wake-ups over an idle {:.1} s", cfg.idle.as_secs_f64());
    table.value(
        &idle_label,
        wakeups(idle_before, idle_after),
        &format!(
            "0: {}",
            verdict(idle_after.ctxt_switches == idle_before.ctxt_switches)
        ),
    );
    if let Some((epochs, (before, after))) = after_restarts {
        table.section(&format!(
            "memory and idle (100 live children, after {epochs} epochs)"
        ));
        table.value(
            "idle private memory (RssAnon)",
            kb(after.rss_anon_kb),
            &format!("< 256 KB: {}", verdict(after.rss_anon_kb < 256)),
        );
        table.value("total resident memory (VmRSS)", kb(after.vm_rss_kb), "");
        table.value("open descriptors", after.fds.to_string(), "");
        table.value(
            &idle_label,
            wakeups(before, after),
            &format!(
                "0: {}",
                verdict(after.ctxt_switches == before.ctxt_switches)
            ),
        );
    }
    table.print();
    println!(
        "\nThe Python hot-restarter.py is not compared: it cannot be downloaded here \
         (issue 2 quotes ~30 ms added to launch, ~2 ms to a restart, ~1 s to SIGTERM, \
         7.9 MB RssAnon, 14.5 MB VmRSS for it; not measured)."
    );
    println!("bench took {:.1} s", started.elapsed().as_secs_f64());
}

/// /proc figures at the start and end of an idle window.
fn idle_window(w: &Wrapper, window: Duration) -> (ProcStatus, ProcStatus) {
    let before = w.status();
    thread::sleep(window);
    let after = w.status();
    (before, after)
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    format!("machine: {cpus} x {cpu}, Linux {kernel}, load average {load} at start")
}
