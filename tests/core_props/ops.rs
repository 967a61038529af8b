//! What a random run is made of: the Settings, and steps that the fake
//! driver resolves against its world when it takes them (so a step says
//! "the 2nd and 3rd running process exit", never a pid, and every sequence
//! is valid whatever the core did before). Shrinking removes steps and
//! turns masks, statuses and delays towards zero, the plain case.

use std::path::PathBuf;
use std::time::Duration;

use hot_restarter::core::Settings;
use hot_restarter::policy::Exit;
use proptest::collection::vec;
use proptest::prelude::*;

/// How the spawns of one step go: bit i applies to the i-th spawn the core
/// asks for while the step is handled (spawns past the 8th are plain).
#[derive(Debug, Clone, Copy, Default)]
pub struct Luck {
    /// The spawn fails (ENOENT, EACCES...).
    pub fail: u8,
    /// The process never dies once SIGKILLed.
    pub stuck: u8,
    /// The process ignores SIGTERM.
    pub deaf: u8,
}

impl Luck {
    pub fn bit(mask: u8, i: u32) -> bool {
        i < 8 && mask & (1 << i) != 0
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Hup,
    Usr1,
    Term,
    Int,
    /// One SIGCHLD: bit i of `children` (of `helpers`) picks the i-th
    /// child (helper) that can still exit, in start order. A signalled
    /// process exits as its signal says, the others with `statuses[i % len]`
    /// (i counted over the whole batch); `orphan` adds a process the core
    /// never started.
    Exit {
        children: u8,
        helpers: u8,
        statuses: Vec<Exit>,
        orphan: Option<Exit>,
    },
    /// Every signalled process exits, in one batch.
    ReapDying,
    /// The oldest child exits 0, if a newer one runs (its drain is over).
    Drained,
    /// Time passes (ms), then a Tick.
    Advance(u16),
    /// Time jumps to the core's next deadline plus this (ms), then a Tick.
    PastDeadline(u16),
}

#[derive(Debug, Clone)]
pub struct Step {
    pub op: Op,
    pub luck: Luck,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub settings: Settings,
    /// For epoch 0's spawn.
    pub start: Luck,
    pub steps: Vec<Step>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Mostly long enough for a few checks, sometimes too short for any.
fn timeout() -> impl Strategy<Value = u64> {
    prop_oneof![1 => 1..20u64, 3 => 20..300u64]
}

pub fn settings() -> impl Strategy<Value = Settings> {
    (any::<[bool; 4]>(), 0..40u64, timeout(), timeout(), 1..15u64).prop_map(
        |([keep, pre, ready, hold], tw, pt, rt, ri)| Settings {
            keep_serving: keep,
            preflight: pre.then(|| PathBuf::from("/fake/preflight")),
            ready_check: ready.then(|| PathBuf::from("/fake/ready")),
            hold_while_draining: hold,
            term_wait: ms(tw),
            preflight_timeout: ms(pt),
            ready_timeout: ms(rt),
            ready_interval: ms(ri),
            ..Settings::plain()
        },
    )
}

pub fn exit_status() -> impl Strategy<Value = Exit> {
    prop_oneof![
        6 => Just(Exit::Code(0)),
        2 => (1..=255i32).prop_map(Exit::Code),
        1 => (1..=31i32).prop_map(Exit::Signal),
    ]
}

fn mask(rare: u32) -> impl Strategy<Value = u8> {
    prop_oneof![rare => Just(0u8), 1 => any::<u8>()]
}

pub fn luck() -> impl Strategy<Value = Luck> {
    (mask(8), mask(16), mask(6)).prop_map(|(fail, stuck, deaf)| Luck { fail, stuck, deaf })
}

/// Mostly nobody, else mostly one of the first few, sometimes anyone.
fn pick_children() -> impl Strategy<Value = u8> {
    prop_oneof![
        50 => Just(0u8),
        3 => (0..3u32).prop_map(|i| 1u8 << i),
        1 => any::<u8>(),
    ]
}

/// Mostly the oldest helper (usually the only one that runs), sometimes
/// none or any.
fn pick_helpers() -> impl Strategy<Value = u8> {
    prop_oneof![1 => Just(0u8), 6 => Just(1u8), 2 => any::<u8>()]
}

pub fn op() -> impl Strategy<Value = Op> {
    let exit = (
        pick_children(),
        pick_helpers(),
        vec(exit_status(), 1..4),
        proptest::option::weighted(0.1, exit_status()),
    )
        .prop_map(|(children, helpers, statuses, orphan)| Op::Exit {
            children,
            helpers,
            statuses,
            orphan,
        });
    prop_oneof![
        20 => Just(Op::Hup),
        6 => Just(Op::Usr1),
        1 => Just(Op::Term),
        1 => Just(Op::Int),
        32 => exit,
        8 => Just(Op::ReapDying),
        6 => Just(Op::Drained),
        20 => (0..20u16).prop_map(Op::Advance),
        2 => (0..5u16).prop_map(Op::PastDeadline),
    ]
}

pub fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    (
        settings(),
        luck(),
        vec(
            (op(), luck()).prop_map(|(op, luck)| Step { op, luck }),
            0..=max_steps,
        ),
    )
        .prop_map(|(settings, start, steps)| Case {
            settings,
            start,
            steps,
        })
}
