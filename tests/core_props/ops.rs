//! What a random run is made of: the Settings, and steps that the fake
//! driver resolves against its world when it takes them (so a step says
//! "the 2nd and 3rd running process exit", never a pid, and every sequence
//! is valid whatever the core did before). Shrinking removes steps and
//! turns masks, statuses and delays towards zero, the plain case.

use std::path::PathBuf;
use std::time::Duration;

use hot_restarter::core::Command;
use hot_restarter::core::Exit;
use hot_restarter::core::Settings;
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
    /// Questions the fake driver answers at once (Listening, and
    /// BinaryVersion when --envoy-bin cannot run): bits 2i and 2i+1 are the
    /// kind of answer to the i-th such question (see admin.rs); 0 is the
    /// plain one (no listener left, the binary ran).
    pub answer: u8,
}

impl Luck {
    pub fn bit(mask: u8, i: u32) -> bool {
        i < 8 && mask & (1 << i) != 0
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Hup,
    /// `--watch`: watched files changed (one or two of them).
    Changed(u8),
    Usr1,
    Term,
    Int,
    /// One SIGCHLD: bit i of `children` (of `helpers`) picks the i-th
    /// child (helper) that can still exit, in start order (children from
    /// the newest with `newest`), reaped in start order. A signalled
    /// process exits as its signal says, the others with `statuses[i % len]`
    /// (i counted over the whole batch); `orphan` adds a process the core
    /// never started.
    Exit {
        children: u8,
        newest: bool,
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
    Usr2,
    /// Envoy's admin (or `--envoy-bin`) answers the `pick`-th question
    /// out (modulo how many are out), as `kind` says (see admin.rs).
    Answer {
        pick: u8,
        kind: u8,
    },
    /// A control client (a fresh one) sends a request.
    Control(Command),
    /// The `pick`-th control client so far hangs up.
    Gone(u8),
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
    (mask(8), mask(16), mask(6)).prop_map(|(fail, stuck, deaf)| Luck {
        fail,
        stuck,
        deaf,
        answer: 0,
    })
}

/// With answers given at once that are not the plain ones.
pub fn envoy_luck() -> impl Strategy<Value = Luck> {
    (luck(), mask(2)).prop_map(|(luck, answer)| Luck { answer, ..luck })
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

/// A control request, any of them.
pub fn request() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => any::<bool>().prop_map(|wait| Command::Reload { wait }),
        2 => any::<bool>().prop_map(|wait| Command::Handoff { wait }),
        1 => any::<bool>().prop_map(|wait| Command::Stop { wait }),
        2 => Just(Command::Status),
        1 => Just(Command::ReopenLogs),
        1 => any::<bool>().prop_map(|wait| Command::Reexec { wait }),
    ]
}

/// The steps of the plain runs (unchanged, so that the seeds kept in
/// core_props.proptest-regressions replay the same cases).
pub fn op() -> impl Strategy<Value = Op> {
    signals_time_and(exit_op())
}

/// With Envoy's admin, generations and control clients: answers are
/// frequent (a question is out most of the time a restart is).
pub fn envoy_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        60 => signals_time_and(envoy_exit(pick_helpers())),
        8 => Just(Op::Usr2),
        30 => (any::<u8>(), any::<u8>()).prop_map(|(pick, kind)| Op::Answer { pick, kind }),
        8 => request().prop_map(Op::Control),
        2 => any::<u8>().prop_map(Op::Gone),
    ]
}

/// Children as `pick_children`, or now and then the newest two (a new
/// epoch failing with the one before it), counted from either end.
fn envoy_exit(helpers: impl Strategy<Value = u8>) -> impl Strategy<Value = Op> {
    let children = prop_oneof![50 => pick_children(), 2 => Just(0b11u8)];
    (
        children,
        any::<bool>(),
        helpers,
        vec(exit_status(), 1..4),
        proptest::option::weighted(0.1, exit_status()),
    )
        .prop_map(|(children, newest, helpers, statuses, orphan)| Op::Exit {
            children,
            newest,
            helpers,
            statuses,
            orphan,
        })
}

fn exit_op() -> impl Strategy<Value = Op> {
    (
        pick_children(),
        pick_helpers(),
        vec(exit_status(), 1..4),
        proptest::option::weighted(0.1, exit_status()),
    )
        .prop_map(|(children, helpers, statuses, orphan)| Op::Exit {
            children,
            newest: false,
            helpers,
            statuses,
            orphan,
        })
}

fn signals_time_and(exit: impl Strategy<Value = Op>) -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => Just(Op::Hup),
        4 => (1..3u8).prop_map(Op::Changed),
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

/// Envoy-aware settings: --envoy-admin mostly, --handoff-admin two times
/// in three, --envoy-bin sometimes (each needs the one before, as on the
/// command line), over the plain switches.
/// --keep-serving two times in three: its kept failures are where a
/// restart in flight meets the serving generation's failures.
pub fn envoy_settings() -> impl Strategy<Value = Settings> {
    (settings(), 0..8u8, 0..3u8, 0..3u8, 0..3u8).prop_map(|(s, admin, handoff, bin, keep)| {
        let envoy_admin = admin != 0;
        let handoff = envoy_admin && handoff != 0;
        Settings {
            keep_serving: keep != 0,
            envoy_admin,
            handoff,
            envoy_bin: handoff && bin == 0,
            ..s
        }
    })
}

pub fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    case_of(settings(), op(), luck, max_steps)
}

pub fn envoy_case(max_steps: usize) -> impl Strategy<Value = Case> {
    case_of(envoy_settings(), envoy_op(), envoy_luck, max_steps)
}

/// Focused on handoffs (the long form): --handoff-admin always, mostly
/// with --keep-serving, SIGUSR2 twice as often, helpers slower to exit.
pub fn handoff_case(max_steps: usize) -> impl Strategy<Value = Case> {
    let settings = (envoy_settings(), 0..4u8).prop_map(|(s, keep)| Settings {
        envoy_admin: true,
        handoff: true,
        keep_serving: keep != 0,
        ..s
    });
    // Helpers exit less often: preflights stay in flight for longer.
    let lazy = prop_oneof![3 => Just(0u8), 2 => Just(1u8), 1 => any::<u8>()];
    let op = prop_oneof![
        60 => signals_time_and(envoy_exit(lazy)),
        16 => Just(Op::Usr2),
        30 => (any::<u8>(), any::<u8>()).prop_map(|(pick, kind)| Op::Answer { pick, kind }),
        8 => request().prop_map(Op::Control),
        2 => any::<u8>().prop_map(Op::Gone),
    ];
    case_of(settings, op, envoy_luck, max_steps)
}

fn case_of<L: Strategy<Value = Luck>>(
    settings: impl Strategy<Value = Settings>,
    op: impl Strategy<Value = Op>,
    luck: fn() -> L,
    max_steps: usize,
) -> impl Strategy<Value = Case> {
    (
        settings,
        luck(),
        vec(
            (op, luck()).prop_map(|(op, luck)| Step { op, luck }),
            0..=max_steps,
        ),
    )
        .prop_map(|(settings, start, steps)| Case {
            settings,
            start,
            steps,
        })
}
