//! A handoff racing with crashes, late answers and held work: the new
//! generation still takes over when the old one crashes under
//! --keep-serving, a late drain answer about an earlier generation leaves
//! the retiring one alone, a held handoff stays a handoff, and the
//! `--envoy-bin` probe never outlives the wrapper.
//!
//! The first part drives `Core` directly with events, as the driver would
//! (exact interleavings the real binary cannot be made to hit on cue);
//! the second runs the real binary with stand-in admins
//! (support/admin_lab.rs).

use std::fs;
use std::time::{Duration, Instant};

use crate::admin_lab::{Lab, initializing, live};
use crate::support::*;
use hot_restarter::core::{Action, Answer, ChildState, Core, Event, Job, JobKind, Query, Settings};
use hot_restarter::core::{Command, Exit, Reply, WaiterId};
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

    /// Feed `e`; a new generation's admin address is found free at once
    /// (nothing answers there), as the driver would answer.
    fn ev(&mut self, e: Event) -> Vec<Action> {
        let mut actions = self.core.handle(e, self.now);
        while let Some(query) = actions.iter().find_map(|a| match a {
            Action::Ask(q @ Query::Occupied { .. }) => Some(*q),
            _ => None,
        }) {
            actions.retain(|a| *a != Action::Ask(query));
            let free = Err("connection refused".to_string());
            actions.extend(self.core.handle(Event::Answered(query, free), self.now));
        }
        actions
    }

    /// Answer the spawn in `actions` (there must be exactly one) with `pid`.
    fn spawned(&mut self, actions: &[Action], pid: i32) -> Vec<Action> {
        let jobs = spawns(actions);
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
                uptime: None,
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

/// A core with --keep-serving and handoffs whose first child (PID=100)
/// is LIVE.
fn keep_serving_sim() -> Sim {
    let mut sim = Sim::new(Settings {
        keep_serving: true,
        ..handoff_settings()
    });
    first_live(&mut sim, 100);
    sim
}

/// The jobs `actions` start.
fn spawns(actions: &[Action]) -> Vec<Job> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn(j) => Some(*j),
            _ => None,
        })
        .collect()
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

// ----- --keep-serving: the old generation dies while the new one starts ----

/// With `--keep-serving`, the serving generation's only Envoy crashes
/// while a handoff's new generation is still initialising. The new
/// generation is then the only hope of serving again: once it is LIVE it
/// serves (generation 1, state ready). The crash of the old child is
/// judged as the old generation's, not as "a new epoch that died before
/// taking over": the handoff's work goes on and the new child's LIVE
/// answer is taken.
#[test]
fn with_keep_serving_a_new_generation_takes_over_after_the_old_one_crashed() {
    let mut sim = keep_serving_sim();
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

/// The same seen by a `handoff --wait` client: it is not told that a
/// "restart to epoch 0 failed" because the *old* generation crashed; it
/// is answered when generation 1 serves.
#[test]
fn a_handoff_wait_is_not_failed_by_the_old_generation_crashing() {
    let mut sim = keep_serving_sim();
    let a = sim.ev(Event::Control(WaiterId(7), Command::Handoff { wait: true }));
    sim.spawned(&a, 200);
    let a = sim.reaped(100, Exit::Code(1));
    let failed: Vec<&Action> = a
        .iter()
        .filter(|a| matches!(a, Action::Reply(WaiterId(7), Reply::Failed { .. })))
        .collect();
    assert!(
        failed.is_empty(),
        "the handoff client was told it failed while generation 1 still starts: {failed:?}"
    );
}

// ----- a late drain answer about an earlier generation ----------------------

/// Answers to `POST /drain_listeners` carry the generation they were asked
/// of, and only an answer about the generation retiring now counts. A
/// late (timed-out) drain answer for generation 0 that lands while
/// generation 1 retires is not taken as generation 1's admin refusing the
/// drain: generation 1 is not signalled, and drains with its requests in
/// flight.
#[test]
fn a_late_drain_answer_about_an_earlier_generation_leaves_the_retiring_one_alone() {
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

fn logged_within(w: &Wrapper, text: &str, timeout: Duration) -> bool {
    wait_until(timeout, || w.output().contains(text))
}

// ----- the same with the real binary ---------------------------------------

/// The operator's view: `--keep-serving`, SIGUSR2, the old Envoy crashes
/// while the new generation initialises; once the new one is LIVE the
/// wrapper logs it and makes it serve.
#[test]
fn with_keep_serving_the_new_generation_serves_after_the_old_one_crashed() {
    let mut lab = Lab::start(&["--keep-serving"], &[]);
    let old = lab.pid(0, 0);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={old}) is ready after"));
    lab.slot1.set(initializing(0));
    lab.w.signal(Signal::SIGUSR2);
    let new = lab.pid(1, 0);
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

// ----- the --envoy-bin probe stops with the wrapper -----------------------------

/// `--envoy-bin PATH --hot-restart-version` that hangs (a wrapper script
/// whose child blocks, an Envoy stuck on a slow filesystem). SIGTERM
/// arrives while the versions are being compared: the wrapper stops its
/// children, kills the probe's process group as it does a helper's, and
/// exits; nothing the probe started outlives it.
#[test]
fn a_hanging_envoy_bin_probe_is_stopped_with_the_wrapper() {
    const PROBE: &str = r#"#!/bin/sh
sleep 1000 &
echo $! > "$REPORT_DIR/probe-child"
wait
"#;
    let mut lab = Lab::with_scripts(&["--envoy-bin", "probe.sh"], &[("probe.sh", PROBE)]);
    let old = lab.pid(0, 0);
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

// ----- a held handoff stays a handoff ---------------------------------------

/// `--keep-serving --preflight` with the drain hold off: a preflight runs
/// for epoch 2 when SIGUSR2 arrives, so the handoff is held. Then the
/// serving epoch 1 crashes, which cancels the preflight and retries the
/// held work: the operator's handoff stays a handoff (a held handoff
/// absorbs a restart) and runs now, and a `handoff --wait` client gets
/// the handoff's result.
#[test]
fn a_held_handoff_stays_a_handoff_when_its_preflight_is_cancelled() {
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
    let spawned = spawns(&a);
    assert!(
        spawned.contains(&Job::new(JobKind::Preflight, 0, 1)),
        "the held handoff should run now (preflight for generation 1 epoch 0); \
         spawned instead: {spawned:?}"
    );
}
