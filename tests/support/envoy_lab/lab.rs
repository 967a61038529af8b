//! `Lab`: hot-restarter running examples/start_envoy.sh (real Envoy) with
//! its own free ports, --base-id and config, and wrk load against Envoy's
//! listener; what the wrapper logged and what Envoy's admin says. With
//! `Setup::handoff` the wrapper runs generations (`--envoy-admin` for slot
//! 0, `--handoff-admin` for slot 1, base-ids `base_id` and `base_id + 1`).

use std::collections::HashMap;
use std::env;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::MutexGuard;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::*;
use crate::components::need_tool;
use crate::support::*;

/// How a lab is started: the wrapper's flags, the start script, and
/// whether the wrapper runs generations.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The prefix of the figures printed to stderr: `[{tag} {name}]`.
    pub tag: &'static str,
    pub flags: &'a [&'a str],
    pub start: Start,
    /// Add `--envoy-admin 127.0.0.1:<admin> --handoff-admin
    /// 127.0.0.1:<handoff>`.
    pub handoff: bool,
}

/// What an Envoy admin's `/server_info` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub state: String,
    pub epoch: u32,
    pub base_id: u32,
    /// `hot_restart_initializing`: true once a child epoch died before it
    /// was ready (envoyproxy/envoy #33446); every later hot restart fails.
    pub hot_restart_initializing: bool,
}

impl ServerInfo {
    pub fn parse(body: &str) -> Option<ServerInfo> {
        let text = |key: &str| -> Option<String> {
            let rest = body.split(&format!("\"{key}\": ")).nth(1)?;
            let end = rest.find([',', '\n', '}'])?;
            Some(rest[..end].trim().trim_matches('"').to_string())
        };
        Some(ServerInfo {
            state: text("state")?,
            epoch: text("restart_epoch")?.parse().ok()?,
            base_id: text("base_id")?.parse().ok()?,
            hot_restart_initializing: text("hot_restart_initializing")? == "true",
        })
    }
}

/// hot-restarter running Envoy, and the wrk load against it. Dropping it
/// kills wrk, the wrapper and every Envoy of its base ids, and removes the
/// base ids' shared memory.
/// base id's shared memory.
pub struct Lab {
    pub name: &'static str,
    pub tag: &'static str,
    pub w: Wrapper,
    pub ports: Ports,
    /// Slot 0's --base-id (slot 1's is the next one).
    pub base_id: u32,
    /// Does the wrapper run generations (two admins, two base-ids)?
    pub handoff: bool,
    pub config: PathBuf,
    pub wrk: Option<Child>,
    pub started: Instant,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Start the wrapper with `flags` on the start script; None when the
    /// test must skip (Envoy, wrk or curl missing outside CI).
    pub fn start(name: &'static str, index: u32, flags: &[&str], start: Start) -> Lab {
        let setup = Setup {
            tag: "envoy",
            flags,
            start,
            handoff: false,
        };
        Lab::start_with(name, index, setup, |_, _| {})
    }

    /// Start the wrapper as `setup` says; `adjust` gets the test dir and
    /// the command before the flags are added (to add environment or
    /// leading flags). None when the test must skip.
    pub fn start_with(
        name: &'static str,
        index: u32,
        setup: Setup,
        adjust: impl FnOnce(&Path, &mut Command),
    ) -> Lab {
        let Setup {
            tag,
            flags,
            start,
            handoff,
        } = setup;
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
            Start::Recording => script(dir.path(), "start.sh", RECORDING_START),
        };
        let mut cmd = command(dir.path());
        cmd.env("ENVOY", &envoy)
            .env("ENVOY_CONFIG", &config)
            .env("ENVOY_BASE_ID", base_id.to_string())
            .env("ENVOY_DRAIN_S", DRAIN_S)
            .env("ENVOY_PARENT_SHUTDOWN_S", PARENT_SHUTDOWN_S)
            .env("ENVOY_ADMIN_PORT", ports.admin.to_string())
            .env("START_ENVOY", &start_envoy);
        if handoff {
            cmd.arg("--envoy-admin")
                .arg(format!("127.0.0.1:{}", ports.admin))
                .arg("--handoff-admin")
                .arg(format!("127.0.0.1:{}", ports.handoff));
        }
        adjust(dir.path(), &mut cmd);
        cmd.args(flags)
            .arg(&script)
            .args(["--concurrency", "1", "-l", "warning"]);
        eprintln!(
            "[{tag} {name}] base-id {base_id}, admin :{}{}, listener :{}, flags {flags:?}",
            ports.admin,
            if handoff {
                format!(
                    " (slot 1: base-id {}, admin :{})",
                    base_id + 1,
                    ports.handoff
                )
            } else {
                String::new()
            },
            ports.listen
        );
        write_config(&config, ports, Cfg::Good);
        let w = Wrapper::spawn(dir, cmd);
        Lab {
            name,
            tag,
            w,
            ports,
            base_id,
            handoff,
            config,
            wrk: None,
            started: Instant::now(),
            _serial: serial,
        }
    }

    /// The admin port the lab gave Envoy (`ENVOY_ADMIN_PORT` in `cmd`),
    /// for an `adjust` closure of `start_with` that adds `--envoy-admin`
    /// itself or renders its own config.
    pub fn admin_port_of(cmd: &Command) -> String {
        cmd.get_envs()
            .find(|(k, _)| *k == "ENVOY_ADMIN_PORT")
            .and_then(|(_, v)| v)
            .expect("the lab sets ENVOY_ADMIN_PORT")
            .to_string_lossy()
            .into_owned()
    }

    /// Replace the config in place.
    pub fn set_config(&self, cfg: Cfg) {
        write_config(&self.config, self.ports, cfg);
    }

    pub fn path(&self) -> &Path {
        self.w.path()
    }

    // ----- what the wrapper did -----

    /// (epoch, pid) of every child forked so far, in order.
    pub fn forked(&self) -> Vec<(u32, i32)> {
        let mut out = Vec::new();
        let mut epoch = None;
        for line in self.w.lines() {
            if line.starts_with("stderr: ") {
                continue;
            }
            // The number at the start: a suffix (a generation) may follow.
            let number = |s: &str| -> Option<i64> {
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            };
            let msg = message_of(&line);
            if let Some(e) = msg.strip_prefix("forking and execing new child process at epoch ") {
                epoch = number(e).map(|e| e as u32);
            } else if let Some(p) = msg.strip_prefix("forked new child process with PID=")
                && let Some(e) = epoch.take()
            {
                out.push((e, number(p).unwrap() as i32));
            }
        }
        out
    }

    /// The pid of the `nth` (1-based) child forked for `epoch`.
    pub fn wait_pid(&self, epoch: u32, nth: usize) -> i32 {
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
    pub fn lines_with(&self, text: &str) -> usize {
        self.w.lines().iter().filter(|l| l.contains(text)).count()
    }

    /// Wait for epoch 0 to be LIVE, then start wrk's load on it; returns
    /// epoch 0's pid.
    pub fn serve_under_load(&mut self) -> i32 {
        let epoch0 = self.wait_pid(0, 1);
        self.wait_live(0);
        self.start_wrk();
        epoch0
    }

    /// How many times the wrapper started an Envoy at `epoch`.
    pub fn starts(&self, epoch: u32) -> usize {
        self.w.count(&format!(
            "forking and execing new child process at epoch {epoch}"
        ))
    }

    /// How many lines Envoy wrote to stderr that contain `text` (the
    /// wrapper's own lines, such as its #33446 hint, do not count).
    pub fn envoy_said(&self, text: &str) -> usize {
        self.w
            .lines()
            .iter()
            .filter(|l| l.starts_with("stderr: ") && l.contains(text))
            .count()
    }

    /// Wait until Envoy has written a stderr line containing `text`.
    pub fn wait_envoy_said(&self, text: &str) {
        assert!(
            wait_until(DEADLINE, || self.envoy_said(text) > 0),
            "Envoy never said {text:?}; output:\n{}",
            self.w.output()
        );
    }

    /// The distinct lines Envoy wrote to stderr, without their timestamp
    /// and pid, leaving out the warning every Envoy prints at start-up and
    /// backtraces.
    pub fn envoy_errors(&self) -> Vec<String> {
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

    /// The --base-ids of this lab: one, or one per slot.
    pub fn base_ids(&self) -> Vec<u32> {
        if self.handoff {
            vec![self.base_id, self.base_id + 1]
        } else {
            vec![self.base_id]
        }
    }

    /// Every running process started with one of our --base-ids (Envoys,
    /// whoever started them).
    pub fn envoy_processes(&self) -> Vec<i32> {
        let wanted: Vec<String> = self
            .base_ids()
            .iter()
            .map(|id| format!("\0--base-id\0{id}\0"))
            .collect();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline);
            let cmdline = format!("\0{cmdline}");
            if wanted.iter().any(|w| cmdline.contains(w)) && running(pid) {
                pids.push(pid);
            }
        }
        pids
    }

    pub fn assert_no_envoy_left(&self) {
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
    pub fn server_info(&self) -> Option<(String, u32)> {
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
    pub fn wait_live(&self, epoch: u32) {
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
    pub fn get(&self) -> Option<u16> {
        let url = format!("http://127.0.0.1:{}/", self.ports.listen);
        curl(&["-o", "/dev/null", "-w", "%{http_code}", &url])?
            .trim()
            .parse()
            .ok()
            .filter(|code| *code != 0)
    }

    pub fn assert_serving(&self, when: &str) {
        assert_eq!(
            self.get(),
            Some(200),
            "the listener does not serve {when}; output:\n{}",
            self.w.output()
        );
    }

    /// http.ingress.downstream_rq_2xx (counters carry over hot restarts,
    /// not handoffs): the sum over the admins that answer.
    pub fn ingress_2xx(&self) -> u64 {
        self.admin_ports()
            .into_iter()
            .map(|port| self.ingress_2xx_on(port))
            .sum()
    }

    /// http.ingress.downstream_rq_2xx of the admin on `port` (0 if it does
    /// not answer).
    pub fn ingress_2xx_on(&self, port: u16) -> u64 {
        let url = format!("http://127.0.0.1:{port}/stats?filter=http.ingress.downstream_rq_2xx");
        curl(&[&url])
            .and_then(|body| {
                body.lines().find_map(|l| {
                    l.strip_prefix("http.ingress.downstream_rq_2xx: ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    /// The admin port of `slot` (0: --envoy-admin, 1: --handoff-admin).
    pub fn admin_port(&self, slot: u8) -> u16 {
        match slot {
            0 => self.ports.admin,
            _ => self.ports.handoff,
        }
    }

    fn admin_ports(&self) -> Vec<u16> {
        if self.handoff {
            vec![self.ports.admin, self.ports.handoff]
        } else {
            vec![self.ports.admin]
        }
    }

    /// `/server_info` of the admin of `slot`, if it answers.
    pub fn info(&self, slot: u8) -> Option<ServerInfo> {
        let port = self.admin_port(slot);
        ServerInfo::parse(&curl(&[&format!("http://127.0.0.1:{port}/server_info")])?)
    }

    /// Wait until the Envoy on `slot`'s admin is LIVE at `epoch`.
    pub fn wait_live_on(&self, slot: u8, epoch: u32) -> ServerInfo {
        let mut last = None;
        let live = wait_until(DEADLINE, || {
            last = self.info(slot);
            matches!(&last, Some(i) if i.state == "LIVE" && i.epoch == epoch)
        });
        assert!(
            live,
            "slot {slot} never went LIVE at epoch {epoch} (last /server_info: {last:?}); \
             output:\n{}",
            self.w.output()
        );
        last.unwrap()
    }

    /// What a child started by `Start::Recording` got: RESTART_EPOCH and
    /// the HOT_RESTARTER_* variables (written before it execs Envoy, so
    /// this works for a child that died at once as well).
    pub fn recorded_env(&self, pid: i32) -> HashMap<String, String> {
        let path = self.path().join(format!("child-{pid}"));
        assert!(
            wait_until(DEADLINE, || path.exists()),
            "PID={pid} never recorded its environment; output:\n{}",
            self.w.output()
        );
        fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // ----- load -----

    /// Start wrk (1 thread, 10 connections) and wait until Envoy has served
    /// some of its requests.
    pub fn start_wrk(&mut self) {
        self.start_wrk_with(&[]);
    }

    /// `start_wrk` with more wrk arguments, e.g. `-H 'Connection: close'`.
    pub fn start_wrk_with(&mut self, extra: &[&str]) {
        let url = format!("http://127.0.0.1:{}/", self.ports.listen);
        let before = self.ingress_2xx();
        let child = Command::new("wrk")
            .args(["-t1", "-c10", "-d600s", "--timeout", "2s"])
            .args(extra)
            .arg(&url)
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
    pub fn stop_wrk(&mut self) -> WrkStats {
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
    /// `report`, then assert that wrk saw no failed request.
    pub fn report_no_failures(&self, stats: &WrkStats, notes: &str) {
        self.report(stats, notes);
        assert_eq!(stats.failed(), 0, "{}", stats.summary());
    }

    pub fn report(&self, stats: &WrkStats, notes: &str) {
        eprintln!(
            "[{} {}] wrk: {}; scenario {:.1} s{}{}",
            self.tag,
            self.name,
            stats.summary(),
            self.started.elapsed().as_secs_f64(),
            if notes.is_empty() { "" } else { "; " },
            notes
        );
    }

    /// SIGTERM: the wrapper exits 0 and no Envoy is left.
    pub fn stop(&mut self) {
        self.w.signal(Signal::SIGTERM);
        assert_eq!(self.w.exit_code(), 0, "{}", self.w.output());
        self.assert_no_envoy_left();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if env::var_os("ENVOY_TEST_DUMP").is_some() {
            eprintln!("[{} {}] output:\n{}", self.tag, self.name, self.w.output());
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
        for id in self.base_ids() {
            let _ = fs::remove_file(format!(
                "/dev/shm/envoy_shared_memory_{}",
                u64::from(id) * 10
            ));
        }
    }
}

/// Send `n` SIGHUPs as fast as the wrapper takes them: each one once the
/// wrapper has logged the previous one. Standard signals do not queue:
/// SIGHUPs sent while the wrapper is busy (forking, on a loaded machine)
/// merge into one in the kernel, and the test would measure that instead
/// of the wrapper. Returns how long the burst took.
pub fn burst(w: &Wrapper, n: usize) -> Duration {
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

pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}
