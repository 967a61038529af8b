//! Property tests of the sans-IO core (`src/core`): random runs of signals,
//! exits in batches, spawn failures, stuck and deaf processes and the
//! passing of time, across random Settings, through a fake driver that
//! carries out the core's actions as `src/driver/` does. After every
//! event the core is checked against a model built from the events alone
//! (the numbered invariants, I1-I11, are listed below); each run is then
//! driven to its end (SIGTERM, every process dies, time passes) and must
//! reach Done with the exit code the model expects. The deterministic
//! regressions (scripted runs) are in `core_props/regressions.rs`.
//!
//! The Envoy-aware runs add Envoy's admin (`--envoy-admin`: readiness from
//! ServerInfo answers given late, never, or out of order), generations
//! (`--handoff-admin`, `--envoy-bin`: SIGUSR2, the drain, the listener
//! count, the hot-restart versions) and control-socket clients (reload,
//! handoff, stop and reexec with and without --wait, status, reopen-logs,
//! clients that hang up), with invariants A1-A3 (`core_props/admin.rs`),
//! H1-H7 (`core_props/handoff.rs`), C1-C4 and R1-R3 (`core_props/control.rs`:
//! a reexec only with nothing in flight, the core resumed from its snapshot
//! shows the same state) on top of I1-I11, which hold there as well (epochs
//! counted per generation).
//!
//! `cargo test` runs 3,000 plain runs of up to 60 steps and 2,500
//! Envoy-aware runs of up to 80 (about 10 s in a debug build, the two in
//! parallel); `cargo test --release --test core_props -- --ignored` runs
//! 50,000 of each, of up to 160 and 200 steps, and 50,000 focused on
//! handoffs (about a minute). Each failure prints the numbered invariant,
//! the last events and actions, and the shrunk steps; proptest keeps its
//! seed in `core_props.proptest-regressions` and replays it first (the
//! plain runs' strategy is kept as it was, so that the seeds stay valid).
//!
//! A hand-written model and driver rather than proptest-state-machine: the
//! transitions ("the 2nd running process exits 3") only mean something
//! against the fake world, whose pids and processes come from what the core
//! decided, so a `ReferenceStateMachine` that generates them up front would
//! have to re-implement the core. Plain `Vec<Step>` strategies resolved at
//! run time give the same shrinking without that.
//!
//! Invariants (checked after every event; the message names the number):
//! - I1 no Signal/KillGroup to a pid after its exit was handed to the core,
//!   with one exception: a helper that was running (not killed before) may
//!   get one KillGroup from the core's own handling of the Reaped batch that
//!   reaped it (its group is killed in the same turn, before any pid can be
//!   reused), not from a later event nor a nested Spawned. Signal only to
//!   children, KillGroup only to helpers, never to a pid the core did not
//!   start (orphans).
//! - I2 one restart at a time: at most one child Starting, at most one
//!   helper running that the core has not killed, no Spawn(Epoch) while a
//!   child is Starting, no restart while another is in flight.
//! - I3 epochs (of the serving generation; a new one's are H1): 0 first
//!   and once, then the one started last + 1, or a reuse (with
//!   --keep-serving only) after a failure of that epoch or a higher one
//!   since it last started; never at or below a live epoch; exactly: after
//!   a failed restart with --keep-serving, the newest epoch still serving +
//!   1, judged once the whole batch has left. A failure is a child exiting
//!   non-zero or by a signal before shutdown, an epoch not ready in time,
//!   or a start that failed.
//! - I4 no spawn once SIGTERM/SIGINT was taken or a teardown began.
//! - I5 the exit code is the model's: 0 when SIGTERM/SIGINT was taken while
//!   running and every child was reaped before the term wait was acted on
//!   (a Tick at or past its deadline), or when every child exited with no
//!   failure seen (a child exiting non-zero or by a signal before shutdown,
//!   an epoch not ready in time, a start that failed); 1 otherwise.
//! - I6 when done, every process was reaped or waited for until
//!   KILL_REAP_WAIT (stuck after SIGKILL); once done, nothing more happens;
//!   after SIGTERM the core always has a process or a deadline to wait for.
//! - I7 no panic; poll_timeout is None exactly when running with no restart
//!   in flight, or done; a Tick before poll_timeout changes nothing; no
//!   event leads to an endless run of actions; a failed ready check (an
//!   admin answer that was not LIVE) runs (is asked) again ready_interval
//!   later (poll_timeout says when, a Tick runs it).
//! - I8 SIGUSR1 goes to exactly the ready epochs (a retiring generation's
//!   too), never a Starting one.
//! - I9 children() (their states and generations), helpers() and phase()
//!   agree with the model.
//! - I10 held() is true exactly while a SIGHUP or SIGUSR2 (a reload or
//!   handoff request) is pending; a pending one waits only for a draining
//!   epoch (--hold-while-draining) or a killed epoch not reaped; no restart
//!   begins without one.
//! - I11 with --preflight an epoch starts only when its preflight passed;
//!   no restart while an older epoch drains (--hold-while-draining) or a
//!   killed epoch is not reaped.
//! - I12 no wait without a serving child: an awaited epoch N > 0 always
//!   has an older epoch of its generation alive (ready or draining).

#[path = "core_props/actions.rs"]
mod actions;
#[path = "core_props/admin.rs"]
mod admin;
#[path = "core_props/chains.rs"]
mod chains;
#[path = "core_props/checks.rs"]
mod checks;
#[path = "core_props/control.rs"]
mod control;
#[path = "core_props/drain.rs"]
mod drain;
#[path = "core_props/handoff.rs"]
mod handoff;
#[path = "core_props/harness.rs"]
mod harness;
#[path = "core_props/logs.rs"]
mod logs;
#[path = "core_props/model.rs"]
mod model;
#[path = "core_props/ops.rs"]
mod ops;
#[path = "core_props/predict.rs"]
mod predict;
#[path = "core_props/regressions.rs"]
mod regressions;
#[path = "core_props/retiring.rs"]
mod retiring;
#[path = "core_props/status.rs"]
mod status;
#[path = "core_props/stop_drain.rs"]
mod stop_drain;
#[path = "core_props/table.rs"]
mod table;
#[path = "core_props/words.rs"]
mod words;
#[path = "core_props/world.rs"]
mod world;

use proptest::prelude::*;

use harness::Harness;
use ops::Case;

/// `CORE_PROPS_CASES=N` runs N cases of each property instead (the
/// mutation run uses a few hundred to try each change quickly).
fn cases(default: u32) -> u32 {
    std::env::var("CORE_PROPS_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn run(case: &Case) {
    let mut h = Harness::start(case.settings.clone(), case.start);
    for step in &case.steps {
        h.step(step);
    }
    h.finish();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), ..ProptestConfig::default() })]

    #[test]
    fn the_core_keeps_its_invariants(case in ops::case(60)) {
        run(&case);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2500), ..ProptestConfig::default() })]

    #[test]
    fn the_envoy_aware_core_keeps_its_invariants(case in ops::envoy_case(80)) {
        run(&case);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 50_000, ..ProptestConfig::default() })]

    #[test]
    #[ignore = "long form: cargo test --release --test core_props -- --ignored"]
    fn the_core_keeps_its_invariants_long(case in ops::case(160)) {
        run(&case);
    }

    #[test]
    #[ignore = "long form: cargo test --release --test core_props -- --ignored"]
    fn the_envoy_aware_core_keeps_its_invariants_long(case in ops::envoy_case(200)) {
        run(&case);
    }

    #[test]
    #[ignore = "long form: cargo test --release --test core_props -- --ignored"]
    fn the_core_keeps_its_invariants_through_handoffs_long(case in ops::handoff_case(200)) {
        run(&case);
    }
}
