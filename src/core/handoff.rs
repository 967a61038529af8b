//! Generations and the side-by-side handoff (Envoy's RFC #3804): a new
//! Envoy on the other slot's base-id and admin address starts at epoch 0,
//! listening beside the serving one (SO_REUSEPORT); once it is LIVE the old
//! generation is asked to drain its listeners, and is stopped once it has
//! closed them. This recovers from a wedged hot restart
//! (envoyproxy/envoy #33446) and crosses hot-restart versions (#3503).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::report::Outcome;
use super::transition::Settle;
use super::{
    Action, Answer, Awaiting, ChildState, Core, Helper, Job, JobKind, KILL_REAP_WAIT, Query,
    Retiring, Stage, Work, later, slot,
};

/// How long the old generation may keep its listeners open after the
/// drain request before it is stopped anyway (Envoy's default
/// `--drain-time-s` is 600).
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// How often the old generation's listening sockets are counted.
const LISTEN_POLL: Duration = Duration::from_millis(100);

/// How long the hot-restart versions may take to come back.
const VERSION_WAIT: Duration = Duration::from_secs(10);

impl Core {
    /// Hand off to a new generation.
    pub(super) fn begin_handoff(&mut self, why: &str) {
        let to = self.generation + 1;
        say!(
            self,
            Info,
            "handing off from generation {} to generation {to} (slot {}): {why}",
            self.generation,
            slot(to)
        );
        self.reload_is_handoff();
        // A leftover Envoy (or anything else) on the new slot's admin
        // address would answer for the new generation: it would look LIVE
        // at once, and the real one would fail to bind its admin.
        self.set_work(Work::Checking { generation: to }, Settle::Keep);
        self.actions
            .push(Action::Ask(Query::Occupied { generation: to }));
    }

    /// The new slot's admin address was asked: start the new generation if
    /// nothing answered there, else refuse the handoff and keep serving.
    pub(super) fn on_occupied(&mut self, query: Query, answer: Result<Answer, String>) {
        let Query::Occupied { generation } = query else {
            return;
        };
        if *self.work() != (Work::Checking { generation }) {
            return;
        }
        match answer {
            Ok(Answer::Answers(addr)) => {
                let reason = format!(
                    "handoff to generation {generation} refused because something already \
                     answers on {addr}"
                );
                say!(self, Error, "{reason}; {}", self.serving_description());
                self.set_work(Work::Idle, Settle::Ended(Outcome::Skipped(&reason)));
            }
            other => {
                if let Err(e) = other {
                    say!(
                        self,
                        Debug,
                        "nothing answers on generation {generation}'s admin address ({e})"
                    );
                }
                self.begin_restart_to(0, generation);
            }
        }
    }

    /// `--envoy-bin`: learn both hot-restart versions before choosing, the
    /// binary's from `--envoy-bin PATH --hot-restart-version` (a helper
    /// job), the running Envoy's from its admin.
    pub(super) fn begin_comparing(&mut self) {
        let now = self.now;
        let (epoch, generation) = (self.next_epoch, self.generation);
        self.reload_begun(epoch);
        self.set_work(
            Work::Comparing {
                started: now,
                deadline: later(now, VERSION_WAIT),
                probe: Helper::Spawning,
                binary: None,
                running: None,
            },
            Settle::Keep,
        );
        let job = Job::new(JobKind::VersionProbe, epoch, generation);
        self.actions.push(Action::Spawn(job));
        self.actions
            .push(Action::Ask(Query::HotRestartVersion { generation }));
    }

    /// The running Envoy's admin answered `/hot_restart_version`.
    pub(super) fn on_version(&mut self, query: Query, answer: Result<Answer, String>) {
        match query {
            Query::HotRestartVersion { generation } if generation == self.generation => {}
            _ => return,
        }
        let version = answer.and_then(|a| match a {
            Answer::Version(v) => Ok(v),
            other => Err(format!("unexpected answer {other:?}")),
        });
        self.version_known(None, Some(version));
    }

    /// One of the versions is known (`binary` from the probe, `running`
    /// from the admin); once both are, choose.
    pub(super) fn version_known(
        &mut self,
        binary: Option<Result<String, String>>,
        running: Option<Result<String, String>>,
    ) {
        let Work::Comparing {
            started,
            deadline,
            probe,
            binary: had_binary,
            running: had_running,
        } = self.work().clone()
        else {
            return;
        };
        let binary = binary.or(had_binary);
        let running = running.or(had_running);
        self.set_work(
            Work::Comparing {
                started,
                deadline,
                probe,
                binary: binary.clone(),
                running: running.clone(),
            },
            Settle::Keep,
        );
        if let (Some(binary), Some(running)) = (binary, running) {
            self.compared(binary, running);
        }
    }

    /// Both versions are in (or timed out): a hot restart when they match,
    /// else a handoff.
    pub(super) fn compared(
        &mut self,
        binary: Result<String, String>,
        running: Result<String, String>,
    ) {
        self.set_work(Work::Idle, Settle::Keep);
        if self.live().next().is_none() {
            // The serving epoch exited in the batch that ended the probe:
            // nothing to restart from, and the wrapper is about to end.
            return;
        }
        match (binary, running) {
            (Ok(b), Ok(r)) if b != r => {
                let (b, r) = (super::quoted(&b), super::quoted(&r));
                let why = format!(
                    "the Envoy binary's hot-restart version {b} differs from the running \
                     Envoy's {r}"
                );
                self.begin_handoff(&why);
            }
            (Ok(_), Ok(_)) => {
                let (epoch, generation) = (self.next_epoch, self.generation);
                self.begin_restart_to(epoch, generation);
            }
            (b, r) => {
                let error = [b.err(), r.err()].into_iter().flatten().collect::<Vec<_>>();
                say!(
                    self,
                    Warn,
                    "cannot compare hot-restart versions ({}); hot-restarting",
                    error.join("; ")
                );
                let (epoch, generation) = (self.next_epoch, self.generation);
                self.begin_restart_to(epoch, generation);
            }
        }
    }

    /// The new generation is LIVE: it serves now, and the old one drains.
    pub(super) fn handoff_live(&mut self, a: Awaiting) {
        let now = self.now;
        let from = self.generation;
        self.generation = a.generation;
        self.next_epoch = a.epoch + 1;
        self.wedged = false;
        for c in &mut self.children {
            if c.pid == a.pid {
                c.state = ChildState::Ready;
            } else if c.generation == from && c.state != ChildState::Abandoned {
                c.state = ChildState::Retiring;
            }
        }
        say!(
            self,
            Info,
            "generation {} epoch {} (PID={}) is LIVE after {} ms; generation {from} drains",
            a.generation,
            a.epoch,
            a.pid,
            now.saturating_duration_since(a.started).as_millis()
        );
        // The reload is done: the new generation serves (as a hot restart
        // is done once the new epoch is ready, while the old one drains).
        let detail = format!(
            "generation {} epoch {} (PID={}) is LIVE and serves; generation {from} drains",
            a.generation, a.epoch, a.pid
        );
        let retiring = Retiring {
            from,
            started: a.started,
            stage: Stage::Draining {
                limit: later(now, DRAIN_LIMIT),
            },
        };
        self.set_work(
            Work::Retiring(retiring),
            Settle::Ended(Outcome::Done(&detail)),
        );
        if self.retiring().next().is_none() {
            self.handoff_done();
            return;
        }
        self.actions
            .push(Action::Ask(Query::Drain { generation: from }));
    }

    /// --keep-serving: the serving generation's last live child (`dead`)
    /// failed while the generation it took over from drains. Unless that
    /// one has been sent SIGTERM, it serves again, and a fresh generation
    /// is started at once: the drain request cannot be taken back, and
    /// Envoy closes its listeners once its drain time is over. Returns
    /// whether it did (else the caller tears down, as before).
    pub(super) fn take_back_retiring(&mut self, dead: &super::Child) -> bool {
        let Work::Retiring(r) = self.work().clone() else {
            return false;
        };
        if matches!(r.stage, Stage::Stopping { .. }) || self.retiring().next().is_none() {
            return false;
        }
        for c in &mut self.children {
            if c.state == ChildState::Retiring && c.generation == r.from {
                c.state = ChildState::Ready;
            }
        }
        self.generation = r.from;
        self.next_epoch = self.serving().map(|c| c.epoch + 1).max().unwrap_or(0);
        say!(
            self,
            Warn,
            "generation {} epoch {} (PID={}) failed after it was LIVE; generation {} has not been \
             stopped and serves again (--keep-serving), but it was asked to drain and closes its \
             listeners once its drain time (--drain-time-s) is over: handing off again now",
            dead.generation,
            dead.epoch,
            dead.pid,
            r.from
        );
        self.set_work(Work::Idle, Settle::Keep);
        // Held, not begun: the rest of this batch of exits may still end
        // the run; the handoff starts once the batch has been judged.
        let why = format!(
            "generation {} failed after it was LIVE while generation {} drained",
            dead.generation, r.from
        );
        self.held = Some(super::Held::Handoff(why));
        true
    }

    fn retiring(&self) -> impl DoubleEndedIterator<Item = &super::Child> {
        self.children
            .iter()
            .filter(|c| c.state == ChildState::Retiring)
    }

    /// The old generation answered the drain request, or counted sockets.
    pub(super) fn on_retiring_answer(&mut self, query: Query, answer: Result<Answer, String>) {
        let now = self.now;
        let Work::Retiring(r) = self.work().clone() else {
            return;
        };
        let about = match query {
            Query::Drain { generation } | Query::Listening { generation, .. } => generation,
            _ => return,
        };
        if about != r.from {
            // A late answer about a generation retired before this one.
            return;
        }
        match (query, r.stage, answer) {
            (Query::Drain { .. }, Stage::Draining { limit }, Ok(_)) => {
                say!(
                    self,
                    Info,
                    "generation {} is draining its listeners (POST /drain_listeners?graceful)",
                    r.from
                );
                self.count_listeners(r, limit);
            }
            (Query::Drain { .. }, Stage::Draining { .. }, Err(e)) => {
                say!(
                    self,
                    Warn,
                    "generation {}'s admin did not take the drain ({e}); stopping it with \
                     SIGTERM now: requests in flight on it may be cut",
                    r.from
                );
                self.stop_retiring(r);
            }
            (Query::Listening { .. }, Stage::Counting { limit }, Ok(Answer::Listening(0))) => {
                say!(self, Info, "generation {} has closed its listeners", r.from);
                self.stop_retiring(r);
                let _ = limit;
            }
            (Query::Listening { .. }, Stage::Counting { limit }, other) => {
                if let Err(e) = other {
                    say!(
                        self,
                        Debug,
                        "cannot count generation {}'s listeners: {e}",
                        r.from
                    );
                }
                self.set_work(
                    Work::Retiring(Retiring {
                        stage: Stage::Watching {
                            next: later(now, LISTEN_POLL),
                            limit,
                        },
                        ..r
                    }),
                    Settle::Keep,
                );
            }
            _ => {}
        }
    }

    fn count_listeners(&mut self, r: Retiring, limit: Instant) {
        // The newest epoch of the old generation holds its listeners.
        let Some(pid) = self.retiring().last().map(|c| c.pid) else {
            return;
        };
        self.set_work(
            Work::Retiring(Retiring {
                stage: Stage::Counting { limit },
                ..r
            }),
            Settle::Keep,
        );
        self.actions.push(Action::Ask(Query::Listening {
            generation: r.from,
            pid,
        }));
    }

    /// SIGTERM the old generation; its exits are expected.
    fn stop_retiring(&mut self, r: Retiring) {
        let now = self.now;
        let pids: Vec<(Pid, u32)> = self.retiring().map(|c| (c.pid, c.epoch)).collect();
        for (pid, epoch) in pids {
            say!(
                self,
                Info,
                "sending TERM to PID={pid} (generation {} epoch {epoch}, handed off)",
                r.from
            );
            self.actions.push(Action::Signal(pid, Signal::SIGTERM));
        }
        self.set_work(
            Work::Retiring(Retiring {
                stage: Stage::Stopping {
                    deadline: later(now, self.s.term_wait),
                },
                ..r
            }),
            Settle::Keep,
        );
    }

    /// Deadlines of the old generation's way out.
    pub(super) fn retiring_deadlines(&mut self, r: Retiring) {
        let now = self.now;
        match r.stage {
            Stage::Draining { limit }
            | Stage::Watching { limit, .. }
            | Stage::Counting { limit }
                if now >= limit =>
            {
                say!(
                    self,
                    Warn,
                    "generation {} still listens {} s after the drain request; stopping it",
                    r.from,
                    DRAIN_LIMIT.as_secs()
                );
                self.stop_retiring(r);
            }
            Stage::Watching { next, limit } if now >= next => self.count_listeners(r, limit),
            Stage::Stopping { deadline } if now >= deadline => {
                let pids: Vec<Pid> = self.retiring().map(|c| c.pid).collect();
                for pid in pids {
                    say!(
                        self,
                        Warn,
                        "force killing PID={pid} (generation {}, handed off)",
                        r.from
                    );
                    self.actions.push(Action::Signal(pid, Signal::SIGKILL));
                }
                self.set_work(
                    Work::Retiring(Retiring {
                        stage: Stage::Stopping {
                            deadline: later(now, KILL_REAP_WAIT.max(self.s.term_wait)),
                        },
                        ..r
                    }),
                    Settle::Keep,
                );
            }
            _ => {}
        }
    }

    /// A child of the old generation has exited; its exit decides nothing.
    pub(super) fn retired(&mut self, child: super::Child, exit: crate::core::policy::Exit) {
        say!(
            self,
            Info,
            "PID={} (generation {} epoch {}, handed off) {}",
            child.pid,
            child.generation,
            child.epoch,
            super::describe(exit)
        );
    }

    /// After a batch of exits: the handoff is done once no child of the old
    /// generation is left, unless the batch tore everything down (its new
    /// generation failed in the same batch).
    pub(super) fn check_retired(&mut self) {
        if self.retiring().next().is_none()
            && let Work::Retiring(_) = self.work()
        {
            self.handoff_done();
        }
    }

    fn handoff_done(&mut self) {
        let now = self.now;
        let Work::Retiring(r) = self.work().clone() else {
            return;
        };
        let ms = now.saturating_duration_since(r.started).as_millis();
        let detail = match self.serving().last() {
            Some(c) => format!(
                "generation {} epoch {} (PID={}) serves; generation {} has exited",
                c.generation, c.epoch, c.pid, r.from
            ),
            None => format!("generation {} has exited", r.from),
        };
        say!(
            self,
            Info,
            "handoff from generation {} done in {ms} ms: {detail}",
            r.from
        );
        self.set_work(Work::Idle, Settle::Keep);
    }

    /// The new generation did not make it: it is killed (if it still runs)
    /// and the old one keeps serving. Whether a child *failed* (which makes
    /// the final exit code 1, as under --keep-serving) is the caller's to
    /// say: an Envoy that exits 0 before it is LIVE has not.
    pub(super) fn handoff_failed(&mut self, generation: u32, why: &str) {
        let reason = format!("handoff to generation {generation} failed because {why}");
        say!(self, Error, "{reason}; {}", self.serving_description());
        self.set_work(Work::Idle, Settle::Ended(Outcome::Failed(&reason)));
    }
}
