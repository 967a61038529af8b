//! `--drain-on-stop` (core/drain.rs), as random runs of the real core
//! through a small fake driver of its own (the main model runs without the
//! flag): a serving Envoy (one or two epochs, with or without handoff
//! slots), a stop, then random answers to the admin questions (counts,
//! errors), time, restart requests, child exits and second stops, then
//! the run is driven to its end. Invariants:
//! - D1 the stop always ends: once the stop was taken the run reaches Done
//!   within the drain time + the term wait + the kill wait (+ one poll),
//!   with no event but time and the exits of SIGTERMed/SIGKILLed children.
//! - D2 a second stop (SIGTERM, SIGINT or `stop`) during the drain ends it
//!   at once: SIGTERM to every child in the same call.
//! - D3 nothing restarts during the drain: no Spawn of any kind, restart
//!   requests are refused (a control `reload` gets a Failed reply).
//! - D4 the drain ends early (SIGTERM before its deadline) only after a
//!   second stop, or counts of 0 (and nothing else) for a quiet second;
//!   STOPPING=1 once, at its start; /healthcheck/fail and /drain_listeners
//!   asked of every generation.
//! - T1 every call of the core follows docs/architecture.md's table.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hot_restarter::core::{
    Action, Answer, Command, Core, Event, KILL_REAP_WAIT, Notify, PhaseName, Query, Reply,
    Settings, WaiterId,
};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::table;

#[derive(Debug, Clone)]
enum Op {
    /// Time passes (ms), then a Tick.
    Advance(u16),
    /// Answer the `pick`-th question out: 0 ⇒ error, 1-2 ⇒ a count of 0,
    /// else a count of `kind % 4`.
    Answer {
        pick: u8,
        kind: u8,
    },
    Hup,
    Reload,
    Term,
    Stop,
    /// The `pick`-th live child exits 0.
    Exit(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0..600u16).prop_map(Op::Advance),
        40 => (any::<u8>(), any::<u8>()).prop_map(|(pick, kind)| Op::Answer { pick, kind }),
        4 => Just(Op::Hup),
        4 => Just(Op::Reload),
        3 => Just(Op::Term),
        3 => Just(Op::Stop),
        3 => any::<u8>().prop_map(Op::Exit),
    ]
}

/// How long the counts must stay 0 (core/drain.rs DRAIN_QUIET).
const DRAIN_QUIET: Duration = Duration::from_secs(1);

struct Run {
    core: Core,
    now: Instant,
    next_pid: i32,
    /// Questions out, in the order asked.
    out: Vec<Query>,
    /// Children SIGTERMed or SIGKILLed (they exit when time passes).
    dying: Vec<Pid>,
    /// Children that ignore SIGTERM.
    deaf: bool,
    stopping_notified: u32,
    spawned_after_stop: bool,
    asked_fail: Vec<u32>,
    asked_drain: Vec<u32>,
    waiter: u64,
    /// The last reply to a control request.
    replies: Vec<Reply>,
    /// A SIGTERM went to a child during this call.
    termed: bool,
    stopped: bool,
}

impl Run {
    fn new(settings: Settings, deaf: bool) -> Run {
        let now = Instant::now();
        Run {
            core: Core::new(settings, now),
            now,
            next_pid: 100,
            out: Vec::new(),
            dying: Vec::new(),
            deaf,
            stopping_notified: 0,
            spawned_after_stop: false,
            asked_fail: Vec::new(),
            asked_drain: Vec::new(),
            waiter: 0,
            replies: Vec::new(),
            termed: false,
            stopped: false,
        }
    }

    fn call(&mut self, ev: Event) -> Result<(), String> {
        let mut queue: VecDeque<Event> = VecDeque::from([ev]);
        while let Some(ev) = queue.pop_front() {
            let from = self.core.phase();
            let actions = self.core.handle(ev.clone(), self.now);
            table::allows(&ev, from, self.core.phase())?;
            self.core.take_log();
            for a in actions {
                match a {
                    Action::Spawn(job) => {
                        if self.stopped {
                            self.spawned_after_stop = true;
                        }
                        let pid = Pid::from_raw(self.next_pid);
                        self.next_pid += 1;
                        queue.push_back(Event::Spawned(job, Ok(pid)));
                    }
                    Action::Signal(pid, Signal::SIGTERM) => {
                        self.termed = true;
                        if !self.deaf {
                            self.dying.push(pid);
                        }
                    }
                    Action::Signal(pid, Signal::SIGKILL) => self.dying.push(pid),
                    Action::Signal(..) | Action::KillGroup(_) => {}
                    Action::Notify(Notify::Stopping) => self.stopping_notified += 1,
                    Action::Notify(_) => {}
                    Action::Reply(_, reply) => self.replies.push(reply),
                    // These runs never ask for one.
                    Action::Reexec(_) => return Err("a reexec nobody asked for".into()),
                    Action::Ask(q) => {
                        match q {
                            Query::HealthcheckFail { generation } => {
                                self.asked_fail.push(generation)
                            }
                            Query::Drain { generation } => self.asked_drain.push(generation),
                            Query::Occupied { .. } => {
                                queue.push_back(Event::Answered(q, Err("refused".into())));
                                continue;
                            }
                            _ => {}
                        }
                        self.out.push(q);
                    }
                }
            }
        }
        Ok(())
    }

    /// Answer every ServerInfo question LIVE at its epoch (the set-up).
    fn answer_live(&mut self) -> Result<(), String> {
        while let Some(i) = self
            .out
            .iter()
            .position(|q| matches!(q, Query::ServerInfo { .. }))
        {
            let q = self.out.remove(i);
            let Query::ServerInfo { epoch, .. } = q else {
                unreachable!()
            };
            let live = Answer::ServerInfo {
                state: "LIVE".into(),
                restart_epoch: Some(epoch),
                uptime: Some(Duration::ZERO),
            };
            self.call(Event::Answered(q, Ok(live)))?;
        }
        Ok(())
    }

    fn advance(&mut self, d: Duration) -> Result<(), String> {
        self.now += d;
        self.reap()?;
        self.call(Event::Tick)
    }

    /// The processes told to die do.
    fn reap(&mut self) -> Result<(), String> {
        let live: Vec<Pid> = self.core.children().iter().map(|c| c.pid).collect();
        let batch: Vec<_> = std::mem::take(&mut self.dying)
            .into_iter()
            .filter(|p| live.contains(p))
            .map(|p| (p, hot_restarter::core::Exit::Code(0)))
            .collect();
        match batch.is_empty() {
            true => Ok(()),
            false => self.call(Event::Reaped(batch)),
        }
    }

    fn control(&mut self, command: Command) -> Result<(), String> {
        self.waiter += 1;
        self.call(Event::Control(WaiterId(self.waiter), command))
    }
}

fn check(
    drain_ms: u64,
    term_ms: u64,
    handoff: bool,
    hups: u8,
    deaf: bool,
    ops: Vec<Op>,
) -> Result<(), String> {
    let drain = Duration::from_millis(drain_ms);
    let settings = Settings {
        envoy_admin: true,
        handoff,
        term_wait: Duration::from_millis(term_ms),
        drain_on_stop: Some(drain),
        ..Settings::plain()
    };
    let mut r = Run::new(settings, deaf);
    r.call(Event::Start)?;
    r.answer_live()?;
    for _ in 0..hups {
        let sig = match handoff {
            true => Signal::SIGUSR2,
            false => Signal::SIGHUP,
        };
        r.call(Event::Signal(sig))?;
        r.answer_live()?;
    }
    let gens: Vec<u32> = {
        let mut g: Vec<u32> = r.core.children().iter().map(|c| c.generation).collect();
        g.sort_unstable();
        g.dedup();
        g
    };
    // The stop.
    r.out.clear();
    r.asked_fail.clear();
    r.asked_drain.clear();
    r.stopped = true;
    let stop_at = r.now;
    r.call(Event::Signal(Signal::SIGTERM))?;
    if r.core.phase() != PhaseName::DrainingForStop {
        return Err(format!(
            "D4: the stop led to {:?}, not a drain",
            r.core.phase()
        ));
    }
    if r.termed {
        return Err("D4: SIGTERM to a child at the start of the drain".into());
    }
    let (mut fail, mut drained) = (r.asked_fail.clone(), r.asked_drain.clone());
    fail.sort_unstable();
    drained.sort_unstable();
    if fail != gens || drained != gens {
        return Err(format!(
            "D4: generations {gens:?}, healthcheck/fail asked of {fail:?}, drain of {drained:?}"
        ));
    }
    let deadline = stop_at + drain;
    // Since when every count delivered was 0 (an error or a count above 0
    // starts it again).
    let mut zero_since: Option<Instant> = None;
    for op in ops {
        let draining = r.core.phase() == PhaseName::DrainingForStop;
        r.termed = false;
        r.replies.clear();
        let mut second_stop = false;
        match op {
            Op::Advance(ms) => r.advance(Duration::from_millis(u64::from(ms)))?,
            Op::Answer { pick, kind } => {
                if r.out.is_empty() {
                    continue;
                }
                let q = r.out.remove(usize::from(pick) % r.out.len());
                let answer = match (q, kind % 6) {
                    (_, 0) => Err("fake: connection refused \"\n".to_string()),
                    (Query::InFlight { .. }, 1 | 2) => Ok(Answer::InFlight(0)),
                    (Query::InFlight { .. }, k) => Ok(Answer::InFlight(u64::from(k % 4))),
                    _ => Ok(Answer::Ok),
                };
                if let Query::InFlight { .. } = q {
                    match answer {
                        Ok(Answer::InFlight(0)) => {
                            zero_since.get_or_insert(r.now);
                        }
                        _ => zero_since = None,
                    }
                }
                r.call(Event::Answered(q, answer))?;
            }
            Op::Hup => r.call(Event::Signal(Signal::SIGHUP))?,
            Op::Reload => {
                r.control(Command::Reload { wait: false })?;
                let refused = r.replies.iter().all(|x| matches!(x, Reply::Failed { .. }));
                if draining && !refused {
                    return Err(format!(
                        "D3: reload during the drain answered {:?}",
                        r.replies
                    ));
                }
            }
            Op::Term => {
                second_stop = true;
                r.call(Event::Signal(Signal::SIGTERM))?
            }
            Op::Stop => {
                second_stop = true;
                r.control(Command::Stop { wait: false })?
            }
            Op::Exit(pick) => {
                let n = r.core.children().len();
                if n > 0 {
                    let pid = r.core.children()[usize::from(pick) % n].pid;
                    r.call(Event::Reaped(vec![(
                        pid,
                        hot_restarter::core::Exit::Code(0),
                    )]))?;
                }
            }
        }
        if r.spawned_after_stop {
            return Err("D3: a Spawn after the stop".into());
        }
        let left = draining && r.core.phase() != PhaseName::DrainingForStop;
        if draining && second_stop {
            let all_children = !r.core.children().is_empty();
            if r.core.phase() != PhaseName::ShuttingDown && all_children {
                return Err(format!("D2: a second stop led to {:?}", r.core.phase()));
            }
            if all_children && !r.termed {
                return Err("D2: a second stop sent no SIGTERM".into());
            }
        } else if left
            && !r.core.children().is_empty()
            && r.now < deadline
            && zero_since.is_none_or(|z| r.now.saturating_duration_since(z) < DRAIN_QUIET)
        {
            return Err(format!(
                "D4: the drain ended before its deadline without a quiet second (only 0s \
                 since {:?})",
                zero_since.map(|z| r.now.saturating_duration_since(z))
            ));
        }
    }
    if r.stopping_notified != 1 {
        return Err(format!("D4: STOPPING=1 sent {} times", r.stopping_notified));
    }
    // D1: nothing but time and deaths from here on.
    let bound = stop_at.max(r.now)
        + drain
        + Duration::from_millis(term_ms)
        + KILL_REAP_WAIT
        + Duration::from_secs(1);
    for _ in 0..10_000 {
        if r.core.exit_code().is_some() {
            return Ok(());
        }
        let next = r.core.poll_timeout();
        let step = match next {
            Some(at) => at
                .saturating_duration_since(r.now)
                .max(Duration::from_millis(1)),
            None if !r.dying.is_empty() => Duration::from_millis(1),
            None => {
                return Err(format!(
                    "D1: stuck in {:?} with no deadline",
                    r.core.phase()
                ));
            }
        };
        r.advance(step)?;
        if r.now > bound {
            return Err(format!("D1: still {:?} past the bound", r.core.phase()));
        }
    }
    Err(format!(
        "D1: not done after 10,000 steps ({:?})",
        r.core.phase()
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::cases(1500), ..ProptestConfig::default() })]

    #[test]
    fn the_drain_before_a_stop_always_ends(
        drain_ms in 0..3000u64,
        term_ms in 0..500u64,
        handoff in any::<bool>(),
        hups in 0..3u8,
        deaf in any::<bool>(),
        ops in vec(op(), 0..60),
    ) {
        if let Err(why) = check(drain_ms, term_ms, handoff, hups, deaf, ops) {
            prop_assert!(false, "{}", why);
        }
    }
}
