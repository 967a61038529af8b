//! The fake Envoy admin (and `--envoy-bin`): the questions the core asks,
//! answered at a later step, late or never, in any order (`Op::Answer`),
//! except those the driver answers at once (Listening); the version
//! probe (`--envoy-bin`, a helper whose exit and output are its answer); what each answer means for the model (readiness, the
//! version comparison, the old generation's drain). Invariants A1-A3:
//! - A1 with --envoy-admin an epoch is declared ready (Ready, then Draining
//!   or Retiring) only after an answer "LIVE at exactly its epoch" to a
//!   ServerInfo question about it (its generation, epoch and pid), asked
//!   while it was the awaited epoch, was delivered (checked after every
//!   call to the core, nested ones too), from an Envoy no older than the
//!   child: one whose uptime exceeds the child's age by more than Envoy's
//!   one-second rounding is another Envoy, and never makes it ready.
//! - A2 no question while nothing is awaited: ServerInfo only about the
//!   epoch awaited, not yet LIVE, once the probe is due (at its start, then
//!   ready_interval after an answer that was not LIVE); Drain and
//!   Listening only while the old generation retires, in that order;
//!   versions only while comparing. Idle means no Ask and poll_timeout
//!   None (I7).
//! - A3 at most one ServerInfo question about the awaited epoch out at a
//!   time (questions about epochs no longer awaited may still be out: the
//!   driver cannot take them back; their answers must change nothing).

use std::time::Duration;

use hot_restarter::core::{Answer, ChildState, Event, Query};
use nix::unistd::Pid;

use crate::handoff::ReadyProbe;
use crate::harness::Harness;
use crate::model::{Compare, RestartKind, Stage};
use crate::world::Kind;

/// The core's wait for both hot-restart versions (core/handoff.rs).
pub const VERSION_WAIT: Duration = Duration::from_secs(10);
/// How often the old generation's listeners are counted (core/handoff.rs).
pub const LISTEN_POLL: Duration = Duration::from_millis(100);

/// A question out.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub query: Query,
    /// ServerInfo: the child awaited when it was asked.
    pub about: Option<Pid>,
    /// Drain: the handoff it was asked in.
    pub round: u64,
}

impl Harness {
    /// A1, after each call to the core (nested ones too): a child declared
    /// ready was said LIVE at its epoch, in answer to a question about it.
    pub fn check_declared(&self) {
        if !self.s.envoy_admin {
            return;
        }
        for c in self.core.children() {
            let declared = matches!(
                c.state,
                ChildState::Ready | ChildState::Draining | ChildState::Retiring
            );
            let said = self.w.get(c.pid).is_some_and(|p| p.admin_ok);
            self.ensure(!declared || said, || {
                format!(
                    "A1: PID={} (generation {} epoch {}) is {:?}, but no answer LIVE at epoch \
                     {} was delivered to a question about it",
                    c.pid, c.generation, c.epoch, c.state, c.epoch
                )
            });
        }
    }

    /// The core asks; None when the answer comes at a later step.
    pub fn ask(&mut self, query: Query) -> Option<Event> {
        self.ensure(self.m.running(), || {
            format!("A2: {query:?} asked while {:?}", self.m.mode)
        });
        match query {
            Query::ServerInfo {
                generation,
                epoch,
                pid,
            } => {
                self.ask_server_info(generation, epoch, pid);
                None
            }
            // The model's new slot is always free: the refusal when it is
            // not is held by tests/faults (chain 4).
            Query::Occupied { .. } => Some(Event::Answered(
                query,
                Err("fake: connection refused".to_string()),
            )),
            Query::Drain { generation } => {
                let r = self.m.retire;
                match r {
                    Some(mut r)
                        if r.from == generation
                            && matches!(r.stage, Stage::Draining { asked: false, .. }) =>
                    {
                        if let Stage::Draining { asked, .. } = &mut r.stage {
                            *asked = true;
                        }
                        self.m.retire = Some(r);
                        self.asks.push(Asked {
                            query,
                            about: None,
                            round: r.round,
                        });
                    }
                    _ => self.fail(format!(
                        "A2/H2: {query:?} asked, but the model's handoff is {r:?}: the drain is \
                         asked once, of the old generation, once the new one is LIVE"
                    )),
                }
                None
            }
            Query::Listening { generation, pid } => Some(self.count_listening(generation, pid)),
            // The model runs without --drain-on-stop (core_props/drain.rs
            // covers the drain): these are never asked here.
            Query::HealthcheckFail { .. } | Query::InFlight { .. } => {
                self.fail(format!("{query:?} asked without --drain-on-stop"))
            }
            Query::HotRestartVersion { generation } => {
                let serving = self.m.serving;
                let ok = generation == serving && self.m.compare.as_ref().is_some_and(|c| !c.asked);
                self.ensure(ok, || {
                    format!(
                        "A2: {query:?} asked while the serving generation is {serving} and the \
                         comparison is {:?}",
                        self.m.compare
                    )
                });
                self.m.compare.as_mut().expect("checked").asked = true;
                self.asks.push(Asked {
                    query,
                    about: None,
                    round: 0,
                });
                None
            }
        }
    }

    fn ask_server_info(&mut self, generation: u32, epoch: u32, pid: Pid) {
        self.ensure(self.s.envoy_admin, || {
            "A2: ServerInfo asked without --envoy-admin".into()
        });
        let Some(c) = self.w.awaited().cloned() else {
            self.fail(format!(
                "A2: ServerInfo(generation {generation}, epoch {epoch}) asked while no epoch is \
                 awaited"
            ));
        };
        self.ensure(
            (c.generation, c.epoch(), c.pid) == (generation, epoch, pid),
            || {
                format!(
                    "A2: ServerInfo(generation {generation}, epoch {epoch}, PID={pid}) asked while \
                 generation {} epoch {} (PID={}) is awaited",
                    c.generation,
                    c.epoch(),
                    c.pid
                )
            },
        );
        self.ensure(!c.admin_ok, || {
            format!(
                "A2: ServerInfo asked again for PID={} after it was LIVE",
                c.pid
            )
        });
        let out: Vec<_> = (self.asks.iter())
            .filter(|a| a.about == Some(c.pid))
            .collect();
        self.ensure(out.is_empty(), || {
            format!(
                "A3: a second ServerInfo question about PID={} while {out:?} is out",
                c.pid
            )
        });
        let due = self.m.admin_due.take();
        self.ensure(due.is_some_and(|d| d <= self.now), || {
            format!("A2: ServerInfo asked before it was due ({due:?})")
        });
        self.asks.push(Asked {
            query: Query::ServerInfo {
                generation,
                epoch,
                pid,
            },
            about: Some(c.pid),
            round: 0,
        });
    }

    /// Listening is answered at once (the driver reads /proc).
    fn count_listening(&mut self, generation: u32, pid: Pid) -> Event {
        let query = Query::Listening { generation, pid };
        let r = self.m.retire;
        let limit = match r {
            Some(r) if r.from == generation => match r.stage {
                Stage::Counting { limit } => Some(limit),
                _ => None,
            },
            _ => None,
        };
        let Some(limit) = limit else {
            self.fail(format!(
                "A2/H2: {query:?} asked, but the model's handoff is {r:?}: listeners are \
                 counted after the drain was taken, and every {LISTEN_POLL:?} after"
            ));
        };
        let newest = self.w.retiring().last().map(|p| p.pid);
        self.ensure(newest == Some(pid), || {
            format!("{query:?}: the newest retiring child is {newest:?}")
        });
        let answer = match self.answer_at_once() {
            1 => Ok(Answer::Listening(2)),
            2 => Err("fake: cannot read the sockets".to_string()),
            _ => Ok(Answer::Listening(0)),
        };
        match answer {
            Ok(Answer::Listening(0)) => self.stop_retiring(),
            _ => self.set_stage(Stage::Watching {
                next: self.now + LISTEN_POLL,
                limit,
            }),
        }
        Event::Answered(query, answer)
    }

    /// The kind (0-3) of the next answer given at once in this event.
    fn answer_at_once(&mut self) -> u8 {
        let i = self.at_once % 4;
        self.at_once += 1;
        (self.luck.answer >> (2 * i)) & 3
    }

    /// Answer one question out, as `kind` says.
    pub fn answer(&mut self, pick: u8, kind: u8) {
        if self.asks.is_empty() {
            return;
        }
        let asked = self.asks.remove(usize::from(pick) % self.asks.len());
        let answer = match asked.query {
            Query::ServerInfo { epoch, .. } => {
                let info = |state: &str, restart_epoch| {
                    Ok(Answer::ServerInfo {
                        state: state.to_string(),
                        restart_epoch,
                        uptime: Some(Duration::ZERO),
                    })
                };
                match kind % 8 {
                    0..=2 => info("LIVE", Some(epoch)),
                    // Another Envoy on the same address, up for an hour.
                    3 => Ok(Answer::ServerInfo {
                        state: "LIVE".into(),
                        restart_epoch: Some(epoch),
                        uptime: Some(Duration::from_secs(3600)),
                    }),
                    // The previous epoch's admin, still answering.
                    4 => info("LIVE", epoch.checked_sub(1)),
                    5 => info("INITIALIZING", Some(epoch)),
                    6 => info("DRAINING", Some(epoch)),
                    _ => Err("fake: connection refused".to_string()),
                }
            }
            Query::Drain { .. } => match kind % 3 {
                2 => Err("fake: HTTP 503".to_string()),
                _ => Ok(Answer::Ok),
            },
            Query::HotRestartVersion { .. } => match kind % 4 {
                0 | 1 => Ok(Answer::Version("11.104".into())),
                2 => Ok(Answer::Version("11.105".into())),
                _ => Err("fake: no version".to_string()),
            },
            Query::Listening { .. } | Query::Occupied { .. } => {
                unreachable!("answered at once")
            }
            Query::HealthcheckFail { .. } | Query::InFlight { .. } => {
                unreachable!("never asked without --drain-on-stop")
            }
        };
        self.answering = Some(asked);
        self.event(Event::Answered(asked.query, answer));
    }

    /// What the answer being delivered means for the model.
    pub fn predict_answer(&mut self, answer: &Result<Answer, String>) {
        let Some(asked) = self.answering else {
            return;
        };
        if !self.m.running() {
            return;
        }
        match asked.query {
            Query::ServerInfo { epoch, .. } => {
                let awaited = self.w.awaited().map(|c| c.pid);
                if asked.about.is_none() || asked.about != awaited {
                    return; // about an epoch no longer awaited
                }
                let pid = awaited.expect("checked");
                let age = self.now - self.w.get(pid).expect("child").born;
                let own = |uptime: &Option<Duration>| {
                    uptime.is_none_or(|u| u <= age + Duration::from_secs(1))
                };
                let live = matches!(answer, Ok(Answer::ServerInfo { state, restart_epoch, uptime })
                    if state == "LIVE" && *restart_epoch == Some(epoch) && own(uptime));
                self.probe_ended(pid, ReadyProbe::Admin, live);
            }
            Query::Drain { generation } => {
                let Some(r) = self.m.retire else {
                    return;
                };
                let current = matches!(r.stage, Stage::Draining { asked: true, .. });
                // An earlier round's answer about the same generation (a
                // handoff retried after its new generation failed) is the
                // same POST to the same Envoy: the core cannot tell them
                // apart, and need not.
                let same = r.round == asked.round || generation == r.from;
                if !same || !current {
                    return; // from an earlier handoff
                }
                let Stage::Draining { limit, .. } = r.stage else {
                    unreachable!()
                };
                match answer {
                    Ok(_) => self.set_stage(Stage::Counting { limit }),
                    Err(_) => self.stop_retiring(),
                }
            }
            // An answer about a generation that no longer serves (asked by
            // a comparison that timed out before a handoff) says nothing
            // about the serving Envoy's version.
            Query::HotRestartVersion { generation } if generation != self.m.serving => {}
            Query::HotRestartVersion { .. } => {
                let version = answer.clone().and_then(|a| match a {
                    Answer::Version(v) => Ok(v),
                    other => Err(format!("{other:?}")),
                });
                self.versions_known(None, Some(version));
            }
            Query::Listening { .. }
            | Query::Occupied { .. }
            | Query::HealthcheckFail { .. }
            | Query::InFlight { .. } => {}
        }
    }

    /// The version probe starts: the comparison begins.
    pub fn probe_spawned(
        &mut self,
        n: u32,
        g: u32,
        fail: bool,
        stuck: bool,
        deaf: bool,
    ) -> Result<Pid, String> {
        self.restart_begins("a comparison of versions", RestartKind::Compare);
        self.m.compare = Some(Compare {
            deadline: self.now + VERSION_WAIT,
            probe: None,
            binary: None,
            running: None,
            asked: false,
        });
        if fail {
            let why = "fake: cannot run --envoy-bin".to_string();
            self.versions_known(Some(Err(why.clone())), None);
            return Err(why);
        }
        let pid = self.w.spawn(Kind::Probe(n), g, self.now, stuck, deaf);
        self.w.get_mut(pid).expect("new").output = match self.answer_at_once() {
            0 | 1 => "[warning] a line before\n11.104\n".to_string(),
            2 => "11.105".to_string(),
            _ => String::new(),
        };
        self.m.compare.as_mut().expect("set above").probe = Some(pid);
        Ok(pid)
    }

    /// The version probe exited (its output was handed over just before).
    pub fn probe_exited(&mut self, pid: Pid, exit: hot_restarter::core::Exit) {
        if (self.m.compare.as_ref()).is_none_or(|c| c.probe != Some(pid)) {
            return;
        }
        let output = self.w.get(pid).expect("probe").output.clone();
        let last = output.lines().map(str::trim).rfind(|l| !l.is_empty());
        let version = match last {
            Some(v) if exit.is_clean() => Ok(v.to_string()),
            _ => Err(format!("fake: {exit:?}")),
        };
        self.versions_known(Some(version), None);
    }

    /// A version came back: with both in, the comparison chooses (a
    /// handoff when they differ, else a hot restart).
    fn versions_known(
        &mut self,
        binary: Option<Result<String, String>>,
        running: Option<Result<String, String>>,
    ) {
        let Some(c) = self.m.compare.as_mut() else {
            return;
        };
        if binary.is_some() {
            c.binary = binary;
        }
        if running.is_some() {
            c.running = running;
        }
        if let (Some(b), Some(r)) = (&c.binary, &c.running) {
            let differ = matches!((b, r), (Ok(b), Ok(r)) if b != r);
            if self.w.live_children().next().is_none() {
                // The serving epoch exited in the same batch: nothing to
                // restart from, the run ends.
                self.m.compare = None;
                return;
            }
            self.m.decided = Some(match differ {
                true => RestartKind::Handoff,
                false => RestartKind::Hot,
            });
            self.m.compare = None;
        }
    }
}
