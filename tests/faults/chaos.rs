//! The chaos test: real Envoy under wrk through `--envoy-admin
//! --handoff-admin --keep-serving --preflight --control-socket`, driven by
//! a seeded sequence of faults for a bounded time: reload bursts (SIGHUP,
//! `hot-restarter-ctl reload --wait`), handoffs (SIGUSR2, `handoff
//! --wait`), configs that fail validation, configs that pass it but make
//! a new Envoy die at start (a second listener on a port the test holds
//! without SO_REUSEPORT), kill -9 of draining and of starting Envoys.
//! Afterwards: the wrapper is alive, its status matches the real
//! processes, every `--wait` answer was what the test expected, the
//! listener was never refused for more than 1 s, every failed request is
//! explained by a kill the test made, and a clean stop leaves nothing.
//!
//! Seeds: CHAOS_SEEDS (comma-separated, default 1,2,3), one test per
//! position; seconds per seed: CHAOS_SECS (default 60).

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::common::*;
use crate::envoy_chains::{
    ENVOY_ABORT, WRK_CONNECTIONS, assert_client_contract, faults_lab, socket,
};
use crate::envoy_lab::*;
use crate::probe::{CtlAnswer, Probe, ctl};

pub const DEFAULT_SEEDS: [u64; 3] = [1, 2, 3];
const DEFAULT_SECS: u64 = 60;

/// How long one `--wait` request may take before it counts as not
/// answered (below the default --ready-timeout of 60 s).
const WAIT_LIMIT: Duration = Duration::from_secs(40);

/// The seed at `position` of CHAOS_SEEDS (None: the list is shorter).
pub fn seed(position: usize) -> Option<u64> {
    match env::var("CHAOS_SEEDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .nth(position)
            .map(|s| s.trim().parse().expect("CHAOS_SEEDS: numbers")),
        _ => DEFAULT_SEEDS.get(position).copied(),
    }
}

fn secs() -> u64 {
    env::var("CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS)
}

/// xorshift64*: a few random numbers, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The status the wrapper reports: (phase, [(pid, state)]).
fn status(lab: &Lab) -> Option<(String, Vec<(i32, String)>)> {
    let a = ctl(&socket(lab), &["status", "--json"], Duration::from_secs(5));
    if !a.ok() {
        return None;
    }
    let v: Value = serde_json::from_str(&a.stdout).ok()?;
    let phase = v["phase"].as_str()?.to_string();
    let children = v["children"]
        .as_array()?
        .iter()
        .filter_map(|c| Some((c["pid"].as_i64()? as i32, c["state"].as_str()?.to_string())))
        .collect();
    Some((phase, children))
}

/// A pid of a child in `state`, polling for up to `within`.
fn child_in(lab: &Lab, state: &str, within: Duration) -> Option<i32> {
    let mut pid = None;
    wait_until(within, || {
        pid = status(lab).and_then(|(_, c)| c.into_iter().find(|(_, s)| s == state).map(|c| c.0));
        pid.is_some() || !running(lab.w.pid)
    });
    pid
}

/// The example config plus a listener on `held`, a port the test holds
/// without SO_REUSEPORT: `--mode validate` passes, Envoy dies at start.
fn dying_config(lab: &Lab, held: u16) -> String {
    let good = render(lab.ports, Cfg::Good);
    let at = good
        .find("  - name: http\n")
        .expect("the listener in the template");
    let second = good[at..].replacen("name: http", "name: held", 1).replacen(
        &format!("port_value: {} }}", lab.ports.listen),
        &format!("port_value: {held} }}"),
        1,
    );
    format!("{good}{second}")
}

fn write_text(lab: &Lab, text: &str) {
    let tmp = lab.config.with_extension("yaml.new");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, &lab.config).unwrap();
}

/// What one run saw.
#[derive(Default)]
struct Run {
    actions: Vec<String>,
    /// Each `--wait` answer and whether it was the expected one.
    waits: Vec<(CtlAnswer, bool)>,
    kills: u64,
    wrapper_exit: Option<String>,
}

impl Run {
    fn wait(&mut self, lab: &Lab, args: &[&str], expect_ok: bool) {
        let a = ctl(&socket(lab), args, WAIT_LIMIT);
        let as_expected = a.code.is_some() && a.ok() == expect_ok;
        self.waits.push((a, as_expected));
    }

    fn kill_child(&mut self, lab: &Lab, state: &str, within: Duration) -> bool {
        match child_in(lab, state, within) {
            Some(pid) => {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                self.kills += 1;
                self.actions.push(format!("kill -9 {state} PID={pid}"));
                true
            }
            None => false,
        }
    }
}

/// One seeded run; prints the figures, then asserts the contract.
pub fn chaos(name: &'static str, seed: u64) {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let validate = example("envoy/validate.sh");
    let flags = ["--keep-serving", "--preflight", validate.as_str()];
    let mut lab = faults_lab(name, true, &flags, &[]);
    lab.wait_live_on(0, 0);
    lab.start_wrk();
    let probe = Probe::start(lab.ports.listen);
    let mut rng = Rng::new(seed);
    let mut run = Run::default();
    let duration = Duration::from_secs(secs());
    let t = Instant::now();
    while t.elapsed() < duration {
        if run.wrapper_exit.is_none() && !running(lab.w.pid) {
            run.wrapper_exit = Some(format!("exited at {:.1} s", t.elapsed().as_secs_f64()));
            run.actions.push("the wrapper exited".into());
        }
        if run.wrapper_exit.is_some() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let (at, before) = (t.elapsed(), run.actions.len());
        match rng.below(9) {
            0 => {
                let n = 1 + rng.below(3) as usize;
                burst(&lab.w, n);
                run.actions.push(format!("{n} x SIGHUP"));
            }
            1 => {
                run.wait(&lab, &["reload", "--wait"], true);
                run.actions.push("reload --wait".into());
            }
            2 => {
                run.wait(&lab, &["handoff", "--wait"], true);
                run.actions.push("handoff --wait".into());
            }
            3 => {
                lab.w.signal(Signal::SIGUSR2);
                run.actions.push("SIGUSR2".into());
            }
            4 => {
                lab.set_config(Cfg::Broken);
                run.wait(&lab, &["reload", "--wait"], false);
                lab.set_config(Cfg::Good);
                run.actions.push("bad config, reload --wait".into());
            }
            5 => {
                write_text(&lab, &dying_config(&lab, held_port));
                run.wait(&lab, &["reload", "--wait"], false);
                lab.set_config(Cfg::Good);
                run.actions.push("dying config, reload --wait".into());
            }
            6 => {
                lab.w.signal(Signal::SIGHUP);
                if !run.kill_child(&lab, "draining", Duration::from_secs(3)) {
                    run.actions.push("SIGHUP (nothing draining to kill)".into());
                }
            }
            7 => {
                lab.set_config(Cfg::SlowInit);
                lab.w.signal(Signal::SIGHUP);
                if !run.kill_child(&lab, "starting", Duration::from_secs(3)) {
                    run.actions.push("SIGHUP (nothing starting to kill)".into());
                }
                lab.set_config(Cfg::Good);
            }
            _ => {
                let ms = 200 + rng.below(1500);
                std::thread::sleep(Duration::from_millis(ms));
                run.actions.push(format!("pause {ms} ms"));
            }
        }
        for a in &mut run.actions[before..] {
            *a = format!("{:.1}s {a}", at.as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(rng.below(400)));
    }
    // Let the last restart finish before comparing.
    let alive = running(lab.w.pid);
    let mut matched = None;
    if alive {
        wait_until(Duration::from_secs(30), || {
            let Some((phase, children)) = status(&lab) else {
                return false;
            };
            let said: BTreeSet<i32> = children.iter().map(|c| c.0).collect();
            let real: BTreeSet<i32> = lab.envoy_processes().into_iter().collect();
            matched = Some((phase.clone(), said.clone(), real.clone()));
            phase == "running" && said == real && !said.is_empty()
        });
    }
    let stats = lab.stop_wrk();
    let outages = probe.finish();
    let aborts = lab.envoy_said(ENVOY_ABORT) as u64;
    let explained = WRK_CONNECTIONS * (run.kills + aborts.min(run.kills));
    let unexpected: Vec<String> = run
        .waits
        .iter()
        .filter(|w| !w.1)
        .map(|w| w.0.describe())
        .collect();
    let stopped = if alive {
        let a = ctl(&socket(&lab), &["stop", "--wait"], Duration::from_secs(60));
        Some(a)
    } else {
        None
    };
    // The exit status without waiting for the output to end (an Envoy
    // that outlived the wrapper would hold it open).
    let exit = wait_until(Duration::from_secs(10), || !running(lab.w.pid))
        .then(|| {
            lab.w
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
        })
        .flatten()
        .and_then(|s| s.code());
    eprintln!(
        "[faults chaos seed {seed}] {} s: requests {}, failed {} (explained: <= {explained} by \
         {} kills and {aborts} Envoy aborts), listener down {:.1} s (longest {:.1} s, {} \
         outages), wrapper: {}, exit {exit:?}; --wait answers {} ({} unexpected); status vs \
         processes: {matched:?}",
        duration.as_secs(),
        stats.requests,
        stats.failed(),
        run.kills,
        outages.total().as_secs_f64(),
        outages.longest().as_secs_f64(),
        outages.down.len(),
        run.wrapper_exit.as_deref().unwrap_or("alive"),
        run.waits.len(),
        unexpected.len(),
    );
    eprintln!("[faults chaos seed {seed}] wrk: {}", stats.summary());
    eprintln!("[faults chaos seed {seed}] {}", outages.summary());
    eprintln!(
        "[faults chaos seed {seed}] actions: {}",
        run.actions.join(", ")
    );
    let warnings: Vec<String> = lab
        .w
        .log_lines()
        .into_iter()
        .filter(|l| matches!(level_of(l), "WARNING" | "ERROR"))
        .map(|l| format!("{} {}", &l[12..23], message_of(&l)))
        .collect();
    eprintln!(
        "[faults chaos seed {seed}] the wrapper's warnings and errors ({}):\n  {}",
        warnings.len(),
        warnings.join("\n  ")
    );
    for u in &unexpected {
        eprintln!("[faults chaos seed {seed}] unexpected answer: {u}");
    }
    assert!(
        alive,
        "the wrapper exited during the run; output:\n{}",
        lab.w.tail(80)
    );
    let (phase, said, real) = matched.clone().unwrap_or_default();
    assert!(
        phase == "running" && said == real,
        "status ({phase}, {said:?}) does not match the Envoy processes {real:?}"
    );
    assert!(
        unexpected.is_empty(),
        "unexpected --wait answers: {unexpected:?}"
    );
    assert_client_contract(&outages, &stats, explained);
    let stopped = stopped.unwrap();
    assert!(stopped.ok(), "{}", stopped.describe());
    assert_eq!(exit, Some(0), "{}", lab.w.tail(40));
    lab.assert_no_envoy_left();
    drop(held);
}
