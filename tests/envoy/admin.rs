//! `--envoy-admin` against real Envoy 1.40, with wrk load
//! on the listener: readiness from `/server_info` (LIVE at that very
//! epoch), SIGHUPs held and coalesced while a new epoch initialises, and
//! the drain hold that comes with it, with no other extension flag.
//!
//! Envoy runs from examples/start_envoy.sh as in envoy/hot_restart.rs (the lab in
//! tests/support/envoy_lab.rs: --drain-time-s 1, --parent-shutdown-time-s 2,
//! --concurrency 1, -l warning), through a shim that adds
//! `--component-log-level config:info`: Envoy's `config` logger then says
//! `all dependencies initialized. starting workers` when the epoch goes
//! LIVE. That line is logged on the main thread right after the init
//! manager is done, the moment `/server_info` starts to say LIVE; the admin
//! is served on the same thread, so no answer can say LIVE earlier.
//! (Measured with a tight poller: with a config that initialises at once,
//! the new admin answers nothing until `starting main dispatch loop`,
//! logged 0-1 ms after it, and its first answer is LIVE.) The tests
//! compare that line's timestamp with the wrapper's `is ready` line. Figures: `[envoy-admin ...]` lines on stderr (--nocapture);
//! `figures_*` is ignored on purpose (it asserts nothing about time):
//!
//!     cargo test --release --test envoy -- --ignored --nocapture figures
//!
//! Without Envoy, wrk or curl the tests skip with a printed reason, and
//! fail when CI=true.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::components::*;
use crate::envoy_lab::*;
use crate::support::*;
use nix::sys::signal::Signal;

/// What Envoy 1.40 logs (logger `config`, source/common/listener_manager/
/// listener_manager_impl.cc) right after its init manager is done, the
/// moment `/server_info` starts to say LIVE.
const LIVE_LINE: &str = "all dependencies initialized. starting workers";

/// The lab's Envoy with its `config` logger at info (the rest stays at
/// the lab's -l warning).
const INFO_ENVOY: &str = r#"#!/bin/sh
exec "$REAL_ENVOY" "$@" --component-log-level config:info
"#;

/// A lab whose wrapper gets `--envoy-admin 127.0.0.1:<admin port>` (first)
/// and `flags`, running Envoy through `INFO_ENVOY`.
fn lab(name: &'static str, index: u32, flags: &[&str]) -> Lab {
    lab_with_info_envoy(name, index, flags, true)
}

/// A lab running Envoy through `INFO_ENVOY`, with `flags`, and with
/// `--envoy-admin` on its admin port first when `admin`.
fn lab_with_info_envoy(name: &'static str, index: u32, flags: &[&str], admin: bool) -> Lab {
    let setup = Setup {
        tag: "envoy-admin",
        flags,
        start: Start::Example,
        handoff: false,
    };
    Lab::start_with(name, index, setup, |dir: &Path, cmd: &mut Command| {
        let shim = script(dir, "envoy", INFO_ENVOY);
        cmd.env("REAL_ENVOY", need_envoy()).env("ENVOY", &shim);
        if !admin {
            return;
        }
        let port = Lab::admin_port_of(cmd);
        cmd.arg("--envoy-admin").arg(format!("127.0.0.1:{port}"));
    })
}

// ----- timestamps --------------------------------------------------------------

/// Milliseconds since 1970 (local time, as printed) of a log line of the
/// wrapper or of Envoy (`stderr: ` first): both start with
/// `[YYYY-MM-DD HH:MM:SS.mmm]`, the same clock truncated to the ms.
fn stamp(line: &str) -> Option<i64> {
    let line = line.strip_prefix("stderr: ").unwrap_or(line);
    let s = line.strip_prefix('[')?.get(..23)?;
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some((((days * 24 + hh) * 60 + mm) * 60 + ss) * 1000 + ms)
}

/// One epoch's timeline, from the log: when the wrapper got the SIGHUP
/// that started it, when Envoy logged that it was LIVE, when the wrapper
/// said it was ready.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    epoch: u32,
    pid: i32,
    sighup: Option<i64>,
    live: i64,
    ready: i64,
}

impl Timeline {
    /// Envoy LIVE to the wrapper's `is ready`.
    fn lag(&self) -> i64 {
        self.ready - self.live
    }
}

/// The timeline of every epoch the wrapper said is ready, in order; the
/// nth SIGHUP goes with epoch n (one restart per SIGHUP).
fn timelines(lab: &Lab) -> Vec<Timeline> {
    let lines = lab.w.lines();
    let sighups: Vec<i64> = lines
        .iter()
        .filter(|l| message_of(l) == "got SIGHUP")
        .filter_map(|l| stamp(l))
        .collect();
    let mut out = Vec::new();
    for (epoch, pid) in lab.forked() {
        let wanted = format!("epoch {epoch} (PID={pid}) is ready after ");
        let Some(ready) = lines.iter().find(|l| message_of(l).starts_with(&wanted)) else {
            continue;
        };
        let envoy = format!("][{pid}][info][config] ");
        let live = lines
            .iter()
            .find(|l| l.starts_with("stderr: [") && l.contains(&envoy) && l.contains(LIVE_LINE))
            .unwrap_or_else(|| {
                panic!(
                    "the wrapper said epoch {epoch} (PID={pid}) is ready, but Envoy never \
                     logged {LIVE_LINE:?}; output:\n{}",
                    lab.w.output()
                )
            });
        out.push(Timeline {
            epoch,
            pid,
            sighup: epoch
                .checked_sub(1)
                .and_then(|i| sighups.get(i as usize).copied()),
            live: stamp(live).expect("Envoy's timestamp"),
            ready: stamp(ready).expect("the wrapper's timestamp"),
        });
    }
    out
}

/// No epoch is declared ready before Envoy said it was LIVE (1 ms for the
/// truncation of both timestamps).
fn assert_ready_not_before_live(lab: &Lab, timelines: &[Timeline]) {
    for t in timelines {
        assert!(
            t.ready + 1 >= t.live,
            "the wrapper said epoch {} (PID={}) is ready {} ms before Envoy went LIVE; \
             output:\n{}",
            t.epoch,
            t.pid,
            t.live - t.ready,
            lab.w.output()
        );
    }
}

fn position(lab: &Lab, pred: impl Fn(&str) -> bool) -> Option<usize> {
    lab.w.lines().iter().position(|l| pred(message_of(l)))
}

// ----- scenarios ----------------------------------------------------------------

/// Ten SIGHUPs within ~100 ms while every new epoch takes ~4 s to
/// initialise (slow_init.yaml), with `--envoy-admin` as the only extension
/// flag: one restart at a time, each after the previous epoch is LIVE and
/// its parent gone; nothing refused by Envoy, no failed request.
#[needs(envoy, wrk, curl)]
#[test]
fn a_sighup_burst_on_slow_epochs_is_coalesced() {
    let mut lab = lab("a 10 SIGHUPs, slow epochs", 0, &[]);
    let epoch0 = lab.wait_pid(0, 1);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={epoch0}) is ready after"));
    lab.start_wrk();

    lab.set_config(Cfg::SlowInit);
    let t = Instant::now();
    let took = burst(&lab.w, 10);
    lab.w.wait_for_count("got SIGHUP", 10);
    let epoch1 = lab.wait_pid(1, 1);
    // The burst is over; epoch 1 has barely begun its ~4 s.
    let mut state1 = None;
    wait_until(DEADLINE, || {
        state1 = lab.server_info().filter(|(_, e)| *e == 1);
        state1.is_some()
    });
    let state1 = state1.map(|(s, _)| s);
    assert!(
        state1.as_ref().is_some_and(|s| s != "LIVE"),
        "epoch 1 after the burst: {state1:?}; output:\n{}",
        lab.w.output()
    );
    let held = lab.lines_with("holding SIGHUP");
    let coalesced = lab.lines_with("coalescing SIGHUP");
    assert_eq!((held, coalesced), (1, 8), "{}", lab.w.output());

    let ready1 = lab
        .w
        .wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
    lab.w.wait_for(&format!("PID={epoch0} exited with code=0"));
    lab.w.wait_for("starting the held restart");
    let epoch2 = lab.wait_pid(2, 1);
    let ready2 = lab
        .w
        .wait_for_text(&format!("epoch 2 (PID={epoch2}) is ready after"));
    // The premise: each new epoch took over a second to initialise.
    for line in [&ready1, &ready2] {
        let after: u64 = message_of(line)
            .split("is ready after ")
            .nth(1)
            .and_then(|r| r.strip_suffix(" ms")?.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(after >= 1000, "{line}");
    }
    let last_ready = t.elapsed();
    // What serves now is the last epoch started, LIVE.
    let last = lab.forked().last().copied().unwrap();
    assert_eq!(last, (2, epoch2), "{}", lab.w.output());
    assert_eq!(lab.server_info(), Some(("LIVE".into(), 2)));
    lab.w.wait_for(&format!("PID={epoch1} exited with code=0"));
    lab.assert_serving("from epoch 2");
    let stats = lab.stop_wrk();

    let tl = timelines(&lab);
    assert_eq!(tl.len(), 3, "{tl:?}");
    assert_ready_not_before_live(&lab, &tl);
    // Each restart began only once its predecessor was ready and the
    // drain of the one before had ended (the drain hold, on by default).
    let fork = |e: u32| {
        position(&lab, |m| {
            m == format!("forking and execing new child process at epoch {e}")
        })
    };
    let ready = |e: u32, pid: i32| {
        position(&lab, |m| {
            m.starts_with(&format!("epoch {e} (PID={pid}) is ready after"))
        })
    };
    let exited = |pid: i32| position(&lab, |m| m == format!("PID={pid} exited with code=0"));
    assert!(ready(1, epoch1) < fork(2), "{}", lab.w.output());
    assert!(exited(epoch0) < fork(2), "{}", lab.w.output());
    lab.report(
        &stats,
        &format!(
            "10 SIGHUPs in {} ms while epoch 1 was {}: {held} held, {coalesced} \
             coalesced; epochs forked {:?}; {}; last epoch ready {} ms after the burst; \
             Envoy LIVE to ready: {:?} ms",
            ms(took),
            state1.unwrap_or_default(),
            lab.forked().iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            message_of(&ready2),
            ms(last_ready),
            tl.iter().map(Timeline::lag).collect::<Vec<_>>(),
        ),
    );
    assert_eq!(stats.socket_errors(), 0, "{}", stats.summary());
    assert_eq!(stats.non_2xx, 0, "{}", stats.summary());
    assert_eq!(lab.lines_with(STILL_INITIALIZING), 0, "{}", lab.w.output());
    lab.stop();
}

/// Three reloads under load, each once the previous one is done: every new
/// epoch is declared ready only once Envoy has said it is LIVE, and before
/// the next SIGHUP.
#[needs(envoy, wrk, curl)]
#[test]
fn b_each_epoch_is_ready_only_once_envoy_says_live() {
    let mut lab = lab("b 3 spaced reloads", 1, &[]);
    let mut old = lab.wait_pid(0, 1);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={old}) is ready after"));
    lab.start_wrk();
    for epoch in 1..=3 {
        lab.w.signal(Signal::SIGHUP);
        let pid = lab.wait_pid(epoch, 1);
        lab.w
            .wait_for_text(&format!("epoch {epoch} (PID={pid}) is ready after"));
        // Whatever the admin says from now on is this epoch, LIVE.
        assert_eq!(lab.server_info(), Some(("LIVE".into(), epoch)));
        lab.w.wait_for(&format!("PID={old} exited with code=0"));
        old = pid;
    }
    lab.assert_serving("from epoch 3");
    let stats = lab.stop_wrk();
    let tl = timelines(&lab);
    assert_eq!(
        tl.iter().map(|t| t.epoch).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "{tl:?}"
    );
    assert_ready_not_before_live(&lab, &tl);
    lab.report(
        &stats,
        &tl.iter()
            .map(|t| {
                let live = match t.sighup {
                    Some(s) => format!("LIVE {} ms after SIGHUP", t.live - s),
                    None => "LIVE".to_string(),
                };
                format!("epoch {}: {live}, ready {} ms later", t.epoch, t.lag())
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    // Spaced: nothing was held.
    assert_eq!(lab.lines_with("holding SIGHUP"), 0, "{}", lab.w.output());
    lab.stop();
}

// ----- figures (not checks) ------------------------------------------------------------

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(-1)
}

fn spread(v: &[i64]) -> String {
    format!(
        "median {} ms, worst {} ms",
        median(v.to_vec()),
        v.iter().max().copied().unwrap_or(-1)
    )
}

/// The wrapper's counters that move when it wakes up or reads or writes:
/// voluntary and involuntary context switches, read and write syscalls.
fn wakeups(pid: i32) -> [u64; 4] {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    [
        status_field(&status, "voluntary_ctxt_switches:"),
        status_field(&status, "nonvoluntary_ctxt_switches:"),
        status_field(&io, "syscr:"),
        status_field(&io, "syscw:"),
    ]
}

/// Requests Envoy's admin has served (this one included).
fn admin_requests(lab: &Lab) -> u64 {
    let url = format!(
        "http://127.0.0.1:{}/stats?filter=^http.admin.downstream_rq_total$",
        lab.ports.admin
    );
    curl(&[&url])
        .and_then(|b| b.split(": ").nth(1)?.trim().parse().ok())
        .expect("the admin's request count")
}

/// `restarts` spaced restarts (each once the previous epoch has exited)
/// with `flags` besides `--envoy-admin` or instead of it; prints Envoy
/// LIVE to ready and SIGHUP to ready. Returns the lab, idle.
fn restart_figures(name: &'static str, index: u32, flags: &[&str], restarts: u32) -> Lab {
    // The ready check stands in for --envoy-admin; otherwise it is added.
    let admin = !flags.contains(&"--ready-check");
    let lab = lab_with_info_envoy(name, index, flags, admin);
    let mut old = lab.wait_pid(0, 1);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={old}) is ready after"));
    eprintln!(
        "[envoy-admin {name}] epoch 0 ready: {}",
        ProcFigures::read(lab.w.pid)
    );
    for epoch in 1..=restarts {
        lab.w.signal(Signal::SIGHUP);
        let pid = lab.wait_pid(epoch, 1);
        lab.w
            .wait_for_text(&format!("epoch {epoch} (PID={pid}) is ready after"));
        lab.w.wait_for(&format!("PID={old} exited with code=0"));
        old = pid;
    }
    let tl: Vec<Timeline> = timelines(&lab).into_iter().skip(1).collect();
    assert_eq!(tl.len(), restarts as usize);
    let lag: Vec<i64> = tl.iter().map(Timeline::lag).collect();
    let total: Vec<i64> = tl.iter().map(|t| t.ready - t.sighup.unwrap()).collect();
    let to_live: Vec<i64> = tl.iter().map(|t| t.live - t.sighup.unwrap()).collect();
    eprintln!(
        "[envoy-admin {name}] {restarts} restarts; Envoy LIVE to wrapper ready: {} (all: \
         {lag:?}); SIGHUP to ready: {}; SIGHUP to Envoy LIVE: {}",
        spread(&lag),
        spread(&total),
        spread(&to_live)
    );
    lab
}

/// Figures for the README and the issue: readiness latency over 20
/// restarts (`--envoy-admin`, then `--ready-check ready.sh
/// --hold-while-draining` at its default interval and at 20 ms), idle
/// wake-ups, admin requests and memory. Asserts nothing about time.
#[needs(envoy, wrk, curl)]
#[test]
#[ignore = "figures, not a check: cargo test --release --test envoy -- --ignored --nocapture figures"]
fn figures_readiness_latency_idle_wake_ups_and_memory() {
    let mut lab = restart_figures("figures --envoy-admin", 2, &[], 20);
    let pid = lab.w.pid;
    assert!(
        wait_until(DEADLINE, || idle_with_nothing_pending(pid)),
        "the wrapper is not idle"
    );
    let before = (wakeups(pid), admin_requests(&lab));
    thread::sleep(Duration::from_secs(10)); // the window measured, not a wait
    let after = (wakeups(pid), admin_requests(&lab));
    let mem = ProcFigures::read(pid);
    eprintln!(
        "[envoy-admin figures] idle 10 s with --envoy-admin: voluntary/involuntary context \
         switches {:?} -> {:?}, syscr/syscw {:?} -> {:?}; admin requests by others than \
         this test: {}; after 20 restarts: {mem}",
        &before.0[..2],
        &after.0[..2],
        &before.0[2..],
        &after.0[2..],
        after.1 as i64 - before.1 as i64 - 1,
    );
    lab.stop();
    drop(lab);

    let ready = example("envoy/ready.sh");
    for (name, interval) in [
        ("figures --ready-check, default interval", None),
        ("figures --ready-check, --ready-interval 0.02", Some("0.02")),
    ] {
        let mut flags = vec!["--ready-check", &ready, "--hold-while-draining"];
        if let Some(i) = interval {
            flags.extend(["--ready-interval", i]);
        }
        let mut lab = restart_figures(name, 3, &flags, 20);
        eprintln!("[envoy-admin {name}] {}", ProcFigures::read(lab.w.pid));
        lab.stop();
    }
}
