//! `--drain-on-stop`: the drain before a stop. The serving Envoys are told
//! to fail their health check and drain their listeners, their requests in
//! flight are counted through the admin until none is left (or the time
//! runs out), and only then does the usual shutdown (SIGTERM, term wait)
//! begin. See docs/draining.md for the Envoy facts this rests on.

use std::time::{Duration, Instant};

use super::{Answer, ChildState, Core, Phase, Query, later, quoted};

/// How often the requests in flight are counted while draining: a loopback
/// `/stats` request every quarter second, only during a drain.
pub const DRAIN_POLL: Duration = Duration::from_millis(250);

/// How long the count must stay 0 before the drain is over: a graceful
/// drain still accepts connections, so a single 0 may fall between two
/// requests of a client that has not moved away yet.
pub const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// The drain before a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StopDrain {
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    /// When to count again; `None` while a count is out.
    pub(super) next: Option<Instant>,
    /// `/stats` questions of the current count still unanswered.
    pub(super) out: u32,
    /// The current count's sum so far.
    pub(super) sum: u64,
    /// Some admin of the current count gave no usable answer.
    pub(super) unknown: bool,
    /// Since when every count has been 0.
    pub(super) quiet_since: Option<Instant>,
    /// The last complete count (none yet, or the last one failed: `None`).
    pub(super) in_flight: Option<u64>,
}

impl Core {
    /// The generations with children that may hold requests: every one
    /// not given up on (a handed-off generation still drains too).
    fn drain_generations(&self) -> Vec<u32> {
        let mut gens: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.state != ChildState::Abandoned)
            .map(|c| c.generation)
            .collect();
        gens.sort_unstable();
        gens.dedup();
        gens
    }

    /// A stop while running: drain first when `--drain-on-stop` is set.
    /// Returns false when there is nothing to drain through.
    pub(super) fn begin_stop_drain(&mut self) -> bool {
        let Some(limit) = self.s.drain_on_stop else {
            return false;
        };
        let gens = self.drain_generations();
        if !self.s.envoy_admin || gens.is_empty() {
            return false;
        }
        let epochs: Vec<String> = self
            .children
            .iter()
            .filter(|c| c.state != ChildState::Abandoned)
            .map(|c| match self.s.handoff {
                true => format!(
                    "generation {} epoch {} (PID={})",
                    c.generation, c.epoch, c.pid
                ),
                false => format!("epoch {} (PID={})", c.epoch, c.pid),
            })
            .collect();
        say!(
            self,
            Info,
            "draining Envoy ({}) for up to {} s before stopping (--drain-on-stop)",
            epochs.join(", "),
            seconds(limit)
        );
        let drain = StopDrain {
            started: self.now,
            deadline: later(self.now, limit),
            next: Some(later(self.now, DRAIN_POLL)),
            out: 0,
            sum: 0,
            unknown: false,
            quiet_since: None,
            in_flight: None,
        };
        self.set_state(Phase::Draining(drain), super::transition::Settle::Keep);
        for generation in gens {
            self.ask(Query::HealthcheckFail { generation });
            self.ask(Query::Drain { generation });
        }
        true
    }

    fn ask(&mut self, query: Query) {
        self.actions.push(super::Action::Ask(query));
    }

    fn drain_mut(&mut self) -> Option<&mut StopDrain> {
        match &mut self.phase {
            Phase::Draining(d) => Some(d),
            _ => None,
        }
    }

    /// A second stop during the drain: stop now.
    pub(super) fn skip_stop_drain(&mut self) {
        say!(
            self,
            Warn,
            "stop requested again while draining: skipping the rest of the drain"
        );
        self.shutdown();
    }

    /// The drain's deadlines: count again, or give up waiting.
    pub(super) fn stop_drain_time(&mut self) {
        let now = self.now;
        let Some(d) = self.drain_mut() else { return };
        let d = *d;
        if now >= d.deadline {
            let left = match d.in_flight {
                Some(n) => format!("{n} requests in flight"),
                None => "an unknown number of requests in flight".to_string(),
            };
            say!(
                self,
                Warn,
                "drain deadline passed after {} s with {left}; stopping",
                seconds(now.saturating_duration_since(d.started))
            );
            self.shutdown();
            return;
        }
        if d.next.is_some_and(|next| now >= next) {
            let gens: Vec<u32> = self
                .live_or_retiring()
                .map(|c| c.generation)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let n = gens.len() as u32;
            if let Some(d) = self.drain_mut() {
                d.next = None;
                d.out = n;
                d.sum = 0;
                d.unknown = false;
            }
            for generation in gens {
                self.ask(Query::InFlight { generation });
            }
            if n == 0
                && let Some(d) = self.drain_mut()
            {
                d.next = Some(later(now, DRAIN_POLL));
            }
        }
    }

    fn live_or_retiring(&self) -> impl Iterator<Item = &super::Child> {
        self.children
            .iter()
            .filter(|c| c.state != ChildState::Abandoned)
    }

    /// An admin answer while draining for a stop. Errors are logged and
    /// the drain goes on: the deadline ends it whatever the admins say.
    pub(super) fn on_stop_drain_answer(&mut self, query: Query, answer: Result<Answer, String>) {
        let now = self.now;
        match (query, answer) {
            (Query::HealthcheckFail { generation }, Err(e)) => say!(
                self,
                Warn,
                "POST /healthcheck/fail to generation {generation}'s admin failed: {}",
                quoted(&e)
            ),
            (Query::Drain { generation }, Err(e)) => say!(
                self,
                Warn,
                "POST /drain_listeners?graceful to generation {generation}'s admin failed: {}",
                quoted(&e)
            ),
            (Query::InFlight { generation }, answer) => {
                let Some(d) = self.drain_mut() else { return };
                if d.out == 0 {
                    return;
                }
                d.out -= 1;
                let failed = match answer {
                    Ok(Answer::InFlight(n)) => {
                        d.sum += n;
                        None
                    }
                    Ok(other) => Some(format!("unexpected answer {other:?}")),
                    Err(e) => Some(e),
                };
                if failed.is_some() {
                    d.unknown = true;
                }
                if let Some(e) = failed {
                    say!(
                        self,
                        Warn,
                        "cannot count the requests in flight of generation {generation}: {}",
                        quoted(&e)
                    );
                }
                self.stop_drain_counted(now);
            }
            _ => {}
        }
    }

    /// A count may be complete: end the drain after a quiet second, or
    /// count again later.
    fn stop_drain_counted(&mut self, now: Instant) {
        let Some(d) = self.drain_mut() else { return };
        if d.out > 0 {
            return;
        }
        d.next = Some(later(now, DRAIN_POLL));
        if d.unknown {
            d.in_flight = None;
            d.quiet_since = None;
            return;
        }
        let before = d.in_flight;
        d.in_flight = Some(d.sum);
        if d.sum > 0 {
            d.quiet_since = None;
            let (sum, started) = (d.sum, d.started);
            if before != Some(sum) {
                say!(
                    self,
                    Info,
                    "draining: {sum} requests in flight after {} s",
                    seconds(now.saturating_duration_since(started))
                );
            }
            return;
        }
        let since = *d.quiet_since.get_or_insert(now);
        let started = d.started;
        if now.saturating_duration_since(since) >= DRAIN_QUIET {
            say!(
                self,
                Info,
                "drained: no request in flight after {} s; stopping",
                seconds(now.saturating_duration_since(started))
            );
            self.shutdown();
        }
    }
}

/// Seconds with one decimal, for log lines.
fn seconds(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}
