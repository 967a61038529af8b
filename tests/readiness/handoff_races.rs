//! Defects found in review (adversarial testing of the core and the real
//! binary). Every test here fails until its defect is fixed; each names
//! the code at fault.
//!
//! The first part drives `Core` directly with events, as the driver would;
//! the second runs the real binary on the reporter fixture with stand-in
//! admins (tests/common/fake_admin.rs).


use std::fs;
use std::time::{Duration, Instant};

use crate::support::admin_lab::{FakeAdmin, initializing, live};
use crate::support::*;
use hot_restarter::control::proto::{Reply, Request};
use hot_restarter::control::server::ClientId;
use hot_restarter::core::{Action, Answer, ChildState, Core, Event, Job, JobKind, Query, Settings};
use hot_restarter::policy::Exit;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

// ----- core-level harness ---------------------------------------------------

struct Sim {
    core: Core,
    now: Instant,
}

impl Sim {
    fn new(s: Settings) -> Sim {
        let now = Instant::now();
        Sim {
            core: Core::new(s, now),
            now,
        }
    }

    fn ev(&mut self, e: Event) -> Vec<Action> {
        self.core.handle(e, self.now)
    }

    /// Answer the spawn in `actions` (there must be exactly one) with `pid`.
    fn spawned(&mut self, actions: &[Action], pid: i32) -> Vec<Action> {
        let jobs: Vec<Job> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Spawn(j) => Some(*j),
                _ => None,
            })
            .collect();
        assert_eq!(jobs.len(), 1, "expected one spawn in {actions:?}");
        self.ev(Event::Spawned(jobs[0], Ok(Pid::from_raw(pid))))
    }

    fn live(&mut self, generation: u32, epoch: u32) -> Vec<Action> {
        // The question is about the child of that generation and epoch.
        let pid = self
            .core
            .children()
            .iter()
            .rev()
            .find(|c| c.generation == generation && c.epoch == epoch)
            .map(|c| c.pid)
            .expect("a child of that generation and epoch");
        self.ev(Event::Answered(
            Query::ServerInfo {
                generation,
                epoch,
                pid,
            },
            Ok(Answer::ServerInfo {
                state: "LIVE".into(),
                restart_epoch: Some(epoch),
            }),
        ))
    }

    fn reaped(&mut self, pid: i32, exit: Exit) -> Vec<Action> {
        self.ev(Event::Reaped(vec![(Pid::from_raw(pid), exit)]))
    }

    fn state_of(&self, pid: i32) -> Option<ChildState> {
        self.core
            .children()
            .iter()
            .find(|c| c.pid == Pid::from_raw(pid))
            .map(|c| c.state)
    }
}

/// The settings `--envoy-admin A --handoff-admin B` give (drain hold on).
fn handoff_settings() -> Settings {
    Settings {
        envoy_admin: true,
        handoff: true,
        hold_while_draining: true,
        ready_interval: Duration::from_millis(20),
        ..Settings::plain()
    }
}

/// Generation 0 epoch 0 as `pid`, LIVE.
fn first_live(sim: &mut Sim, pid: i32) {
    let a = sim.ev(Event::Start);
    let a = sim.spawned(&a, pid);
    assert!(a.contains(&Action::Ask(Query::ServerInfo {
        generation: 0,
        epoch: 0,
        pid: Pid::from_raw(pid),
    })));
    sim.live(0, 0);
    assert_eq!(sim.state_of(pid), Some(ChildState::Ready));
}

fn signals(actions: &[Action], pid: i32) -> Vec<Signal> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal(p, s) if *p == Pid::from_raw(pid) => Some(*s),
            _ => None,
        })
        .collect()
}

// ----- 1. --keep-serving: the old generation dies while the new one starts --

/// With `--keep-serving`, the serving generation's only Envoy crashes
/// while a handoff's new generation is still initialising. The new
/// generation is the only hope of serving again: once it is LIVE it must
/// serve (generation 1, state ready).
///
/// Fault: `judge_exit` (src/core/exits.rs) counts only the serving
/// generation, so the crashed old child looks like "a new epoch that died
/// before taking over": it calls `restart_failed`, which kills the
/// handoff's work (`set_work(Idle)`), reports the handoff as a failed
/// *restart to epoch 0*, and leaves the new generation's child `Starting`
/// for ever. Its LIVE answer is then ignored (`on_answer` finds no
/// `Awaiting`), the generation never moves, SIGUSR1 never reaches it, and
/// the next SIGHUP starts epoch 0 of generation 0 beside it.
#[test]
fn keep_serving_old_generation_dying_during_handoff_leaves_new_generation_orphaned() {
    let mut sim = Sim::new(Settings {
        keep_serving: true,
        ..handoff_settings()
    });
    first_live(&mut sim, 100);
    let a = sim.ev(Event::Signal(Signal::SIGUSR2));
    assert!(a.contains(&Action::Spawn(Job::new(JobKind::Epoch, 0, 1))));
    sim.spawned(&a, 200);
    // The old generation crashes while generation 1 initialises.
    sim.reaped(100, Exit::Signal(11));
    // Generation 1 goes LIVE.
    sim.live(1, 0);
    assert_eq!(
        sim.state_of(200),
        Some(ChildState::Ready),
        "generation 1 was LIVE but is still {:?}; children: {:?}",
        sim.state_of(200),
        sim.core.children()
    );
    assert_eq!(sim.core.generation(), 1, "generation 1 never took over");
}

/// The same with a clean report: the handoff's `--wait` client must not be
/// told that a "restart to epoch 0 failed" because the *old* generation
/// crashed; it is answered when generation 1 serves.
#[test]
fn keep_serving_handoff_wait_is_not_failed_by_the_old_generation_crashing() {
    let mut sim = Sim::new(Settings {
        keep_serving: true,
        ..handoff_settings()
    });
    first_live(&mut sim, 100);
    let a = sim.ev(Event::Control(ClientId(7), Request::Handoff { wait: true }));
    sim.spawned(&a, 200);
    let a = sim.reaped(100, Exit::Code(1));
    let failed: Vec<&Action> = a
        .iter()
        .filter(|a| matches!(a, Action::Reply(ClientId(7), Reply::Failed { .. })))
        .collect();
    assert!(
        failed.is_empty(),
        "the handoff client was told it failed while generation 1 still starts: {failed:?}"
    );
}

// ----- 2. a late drain answer for an earlier generation ----------------------

/// Answers to `POST /drain_listeners` carry the generation they were asked
/// of, but `on_retiring_answer` (src/core/handoff.rs) never compares it
/// with the generation retiring now. A late (timed-out) drain answer for
/// generation 0 that lands while generation 1 retires is taken as
/// generation 1's admin refusing the drain: generation 1 is SIGTERMed at
/// once, cutting its requests in flight, instead of draining.
/// (`on_answer` checks generation and epoch for `/server_info`; the
/// drain's answer needs the same check, and so does `HotRestartVersion` in
/// `on_version`.)
#[test]
fn a_stale_drain_answer_for_an_earlier_generation_stops_the_one_retiring_now() {
    let mut sim = Sim::new(handoff_settings());
    first_live(&mut sim, 100);
    // Handoff 0 -> 1.
    let a = sim.ev(Event::Signal(Signal::SIGUSR2));
    sim.spawned(&a, 200);
    let a = sim.live(1, 0);
    assert!(a.contains(&Action::Ask(Query::Drain { generation: 0 })));
    // Generation 0 exits before its drain request is answered.
    sim.reaped(100, Exit::Code(0));
    assert_eq!(sim.core.generation(), 1);
    // Handoff 1 -> 2.
    let a = sim.ev(Event::Signal(Signal::SIGUSR2));
    sim.spawned(&a, 300);
    let a = sim.live(2, 0);
    assert!(a.contains(&Action::Ask(Query::Drain { generation: 1 })));
    // The late answer to generation 0's drain request.
    let a = sim.ev(Event::Answered(
        Query::Drain { generation: 0 },
        Err("timed out after 1 s".into()),
    ));
    assert!(
        signals(&a, 200).is_empty(),
        "generation 1 (PID=200) was signalled {:?} on an answer about generation 0",
        signals(&a, 200)
    );
}

// ----- binary-level harness ---------------------------------------------------

/// A reporter that records its generation (files `epoch-G-E`).
const GEN_START: &str = r#"#!/bin/sh
export RESTART_EPOCH="${HOT_RESTARTER_GENERATION:-none}-$RESTART_EPOCH"
exec "$REPORT_DIR/reporter.sh" "$@"
"#;

struct Lab {
    w: Wrapper,
    slot0: FakeAdmin,
    slot1: FakeAdmin,
}

/// The wrapper with `--envoy-admin` and `--handoff-admin` on stand-in
/// admins; `extra` scripts are written into its directory first.
fn lab(flags: &[&str], extra: &[(&str, &str)]) -> Lab {
    let slot0 = FakeAdmin::tcp(live(0));
    let slot1 = FakeAdmin::tcp(live(0));
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "reporter.sh", REPORTER);
    script(dir.path(), "start.sh", GEN_START);
    for (name, body) in extra {
        script(dir.path(), name, body);
    }
    let mut cmd = command(dir.path());
    cmd.args(["--envoy-admin", &slot0.addr, "--handoff-admin", &slot1.addr])
        .args(flags)
        .arg("start.sh");
    let w = Wrapper::spawn(dir, cmd);
    Lab { w, slot0, slot1 }
}

fn pid_of(lab: &Lab, generation: u32, epoch: u32) -> i32 {
    let path = lab.w.path().join(format!("epoch-{generation}-{epoch}"));
    wait_new_report(&path, None, || lab.w.output())
        .pid()
        .unwrap()
}

fn logged_within(w: &Wrapper, text: &str, timeout: Duration) -> bool {
    wait_until(timeout, || w.output().contains(text))
}

// ----- 1 again, with the real binary ----------------------------------------

/// The operator's view of finding 1: `--keep-serving`, SIGUSR2, the old
/// Envoy crashes while the new generation initialises; the new one then
/// goes LIVE but the wrapper never makes it serve (no "is LIVE" line,
/// status says `serving: no ready child`, the child stays `starting`).
#[test]
fn binary_keep_serving_new_generation_never_serves_after_old_one_crashed() {
    let mut lab = lab(&["--keep-serving"], &[]);
    let old = pid_of(&lab, 0, 0);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={old}) is ready after"));
    lab.slot1.set(initializing(0));
    lab.w.signal(Signal::SIGUSR2);
    let new = pid_of(&lab, 1, 0);
    signal_pid(old, Signal::SIGKILL);
    lab.w
        .wait_for(&format!("PID={old} was killed with signal=9"));
    lab.slot1.set(live(0));
    let took_over = logged_within(
        &lab.w,
        &format!("generation 1 epoch 0 (PID={new}) is LIVE after"),
        Duration::from_secs(3),
    );
    assert!(
        took_over,
        "generation 1 went LIVE but never took over; output:\n{}",
        lab.w.output()
    );
    lab.w.signal(Signal::SIGTERM);
    lab.w.exit_code();
    lab.w.assert_no_children_left();
    drop(lab.slot0);
}

// ----- 3. the --envoy-bin probe outlives the wrapper ---------------------------

/// `--envoy-bin PATH --hot-restart-version` that hangs (a wrapper script
/// whose child blocks, an Envoy stuck on a slow filesystem). SIGTERM
/// arrives while the versions are being compared: the wrapper stops its
/// children and exits, but never kills the probe's process group, so what
/// the probe started outlives the wrapper. Helpers (preflight, ready
/// check) get `KillGroup` and are waited for at shutdown; the probe is
/// invisible to the core (`Driver::version_probe`,
/// src/driver/jobs.rs) and `Driver::exit` does not touch it.
#[test]
fn a_hanging_envoy_bin_probe_is_left_behind_when_the_wrapper_stops() {
    const PROBE: &str = r#"#!/bin/sh
sleep 1000 &
echo $! > "$REPORT_DIR/probe-child"
wait
"#;
    let mut lab = lab(&["--envoy-bin", "probe.sh"], &[("probe.sh", PROBE)]);
    let old = pid_of(&lab, 0, 0);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={old}) is ready after"));
    lab.w.signal(Signal::SIGHUP);
    let marker = lab.w.path().join("probe-child");
    assert!(wait_until(DEADLINE, || marker.exists()
        && !fs::read_to_string(&marker).unwrap().trim().is_empty()));
    let grandchild: i32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    let _guard = ProcessGuard::new(grandchild);
    lab.w.signal(Signal::SIGTERM);
    assert_eq!(lab.w.exit_code(), 0);
    assert!(
        wait_until(Duration::from_secs(2), || !running(grandchild)),
        "PID={grandchild}, started by the --envoy-bin probe, outlived the wrapper; output:\n{}",
        lab.w.output()
    );
    drop(lab.slot1);
}

// ----- 4. a held handoff turned into a hot restart --------------------------

/// `--keep-serving --preflight` with the drain hold off: a preflight runs
/// for epoch 2 when SIGUSR2 arrives, so the handoff is held. Then the
/// serving epoch 1 crashes. `restart_failed` (src/core/restart.rs) cancels
/// the preflight and sets `held` to `Held::Restart` because the preflight
/// was for the serving generation, overwriting the held
/// `Held::Handoff`: the operator's handoff silently becomes a hot restart
/// (and a `handoff --wait` client gets the hot restart's result). It
/// should keep the handoff (a held handoff absorbs a restart, as
/// `on_handoff` does).
#[test]
fn a_held_handoff_is_not_downgraded_to_a_restart_when_a_preflight_is_cancelled() {
    let mut sim = Sim::new(Settings {
        keep_serving: true,
        hold_while_draining: false,
        preflight: Some("/bin/true".into()),
        ..handoff_settings()
    });
    first_live(&mut sim, 100);
    // Hot restart to epoch 1, through its preflight.
    let a = sim.ev(Event::Signal(Signal::SIGHUP));
    assert!(a.contains(&Action::Spawn(Job::new(JobKind::Preflight, 1, 0))));
    sim.spawned(&a, 900);
    let a = sim.reaped(900, Exit::Code(0));
    sim.spawned(&a, 101);
    sim.live(0, 1);
    assert_eq!(sim.state_of(101), Some(ChildState::Ready));
    // The preflight for epoch 2 runs when SIGUSR2 comes: held.
    let a = sim.ev(Event::Signal(Signal::SIGHUP));
    assert!(a.contains(&Action::Spawn(Job::new(JobKind::Preflight, 2, 0))));
    sim.spawned(&a, 901);
    sim.ev(Event::Signal(Signal::SIGUSR2));
    assert!(sim.core.held());
    // Epoch 1 crashes: the preflight is cancelled and the held work retried.
    let a = sim.reaped(101, Exit::Code(1));
    let spawned: Vec<Job> = a
        .iter()
        .filter_map(|a| match a {
            Action::Spawn(j) => Some(*j),
            _ => None,
        })
        .collect();
    assert!(
        spawned.contains(&Job::new(JobKind::Preflight, 0, 1)),
        "the held handoff should run now (preflight for generation 1 epoch 0); \
         spawned instead: {spawned:?}"
    );
}
