//! The model: what the core should be doing, derived from the events and
//! the fake world alone (never from the core's views), and the epoch
//! bookkeeping behind invariant 3.

use std::collections::HashMap;
use std::time::Instant;

use nix::unistd::Pid;

/// What the wrapper should be doing, coarser than the core's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Serving, maybe restarting.
    Running,
    /// SIGTERM/SIGINT taken; children have until `deadline`.
    Terminating { deadline: Instant },
    /// Every child SIGKILLed (a teardown, or the term wait ran out).
    Killing { deadline: Instant },
    /// No child left since `at`; the run ends with `code` once the killed
    /// helpers are reaped (or at `at + KILL_REAP_WAIT`).
    Ended { at: Instant, code: i32 },
}

/// A preflight in flight, for an epoch of `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flight {
    pub begun: Instant,
    pub pid: Pid,
    pub generation: u32,
}

/// What a restart that begins must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartKind {
    /// The next epoch of the serving generation.
    Hot,
    /// Epoch 0 of the serving generation + 1.
    Handoff,
    /// `--envoy-bin`: both hot-restart versions are asked first.
    Compare,
}

/// `--envoy-bin`: the versions being compared, until `deadline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub deadline: Instant,
    /// The version probe, once it runs.
    pub probe: Option<Pid>,
    pub binary: Option<Result<String, String>>,
    pub running: Option<Result<String, String>>,
    /// HotRestartVersion was asked.
    pub asked: bool,
}

/// The old generation's way out after a handoff, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retire {
    pub from: u32,
    /// Which handoff (questions asked in an earlier one are stale).
    pub round: u64,
    pub stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The drain request is (to be) asked.
    Draining { limit: Instant, asked: bool },
    /// The listening sockets are to be counted in this event.
    Counting { limit: Instant },
    /// Counted again at `next`.
    Watching { next: Instant, limit: Instant },
    /// SIGTERMed; SIGKILLed at `deadline`.
    Stopping { deadline: Instant },
}

pub struct Model {
    pub mode: Mode,
    /// A child failed (exited non-zero or by a signal before shutdown, was
    /// not ready in time) or an epoch could not start.
    pub failure_seen: bool,
    /// A SIGHUP taken while running that no restart has consumed yet.
    pub hup_pending: bool,
    pub preflight: Option<Flight>,
    /// The epoch (and generation) whose preflight passed in the batch
    /// being handled: it must be spawned in the same turn.
    pub preflight_passed: Option<(u32, u32)>,
    /// When the awaited epoch's next ready check is due (at its start, then
    /// `ready_interval` after a check failed or could not be spawned).
    pub check_due: Option<Instant>,
    /// The event being handled is the SIGTERM/SIGINT that began shutdown.
    pub term_event: bool,
    /// Children that must get SIGUSR1 during this event.
    pub usr1_due: Vec<Pid>,
    /// Epochs of the serving generation.
    pub epochs: Epochs,
    // ----- Envoy's admin and generations --------------------------------
    /// The serving generation.
    pub serving: u32,
    /// The pending request (`hup_pending`) is a handoff.
    pub pending_handoff: bool,
    /// Hot restart is wedged: a new epoch of the serving generation died or
    /// was killed before it was ready (the next restart hands off).
    pub wedged: bool,
    /// The serving epoch of this generation will abort: an older epoch of
    /// its hot-restart chain died; hot restarts of it are refused (handed
    /// off with --handoff-admin).
    pub doomed: Option<u32>,
    /// A hot-restart chain broke in this event (see `chain_exits`).
    pub rescue_now: bool,
    /// When the awaited epoch's next admin question is due.
    pub admin_due: Option<Instant>,
    pub compare: Option<Compare>,
    /// The kind of the restart the comparison chose, to begin in this
    /// event.
    pub decided: Option<RestartKind>,
    pub retire: Option<Retire>,
    /// The retiring generation's epochs, should it serve again (its
    /// successor failed after LIVE, --keep-serving).
    pub retired_epochs: Option<Epochs>,
    pub rounds: u64,
    /// Children the handoff must SIGTERM (SIGKILL) in this event.
    pub term_due: Vec<Pid>,
    pub kill_due: Vec<Pid>,
    /// A new generation failed (exited, not LIVE in time, did not start)
    /// during this event; a child of a retiring generation exited.
    pub handoff_failed_now: bool,
    pub retired_now: bool,
    /// Restarts begun so far (a comparison and the restart it chooses are
    /// one); a control client waits for the next one to begin.
    pub begun: u64,
    /// The restart (by number) that succeeded during this event (its epoch
    /// is ready, or its handoff is done), if no other has begun since.
    pub succeeded: Option<u64>,
    /// Children that became ready, and generations that went LIVE, so far.
    pub readies: u64,
    pub lives: u64,
    /// A teardown began (a child failed): the wrapper exits 1.
    pub torn_down: bool,
}

impl Model {
    pub fn new() -> Model {
        Model {
            mode: Mode::Running,
            retired_epochs: None,
            failure_seen: false,
            hup_pending: false,
            preflight: None,
            preflight_passed: None,
            check_due: None,
            term_event: false,
            usr1_due: Vec::new(),
            epochs: Epochs::default(),
            serving: 0,
            pending_handoff: false,
            wedged: false,
            doomed: None,
            rescue_now: false,
            admin_due: None,
            compare: None,
            decided: None,
            retire: None,
            rounds: 0,
            term_due: Vec::new(),
            kill_due: Vec::new(),
            handoff_failed_now: false,
            retired_now: false,
            begun: 0,
            succeeded: None,
            readies: 0,
            lives: 0,
            torn_down: false,
        }
    }

    pub fn running(&self) -> bool {
        self.mode == Mode::Running
    }
}

/// Which epochs were started and which failed, in order, for invariant 3.
#[derive(Default)]
pub struct Epochs {
    /// An epoch spawn was attempted (epoch 0 comes first, once).
    attempted: bool,
    /// The epoch started last.
    last: Option<u32>,
    /// The number the next restart must use: the one started last + 1, or
    /// after a restart failed with --keep-serving, the newest epoch still
    /// serving + 1 (Envoy's epoch n talks to n-1), judged once the whole
    /// batch has left.
    next: u32,
    /// When each epoch number last started (a logical clock).
    last_start: HashMap<u32, u64>,
    /// Failed epochs: a child that exited non-zero or by a signal before
    /// shutdown, was not ready in time, or whose start failed.
    failures: Vec<(u32, u64)>,
    clock: u64,
    /// Every epoch started, in order (for messages).
    pub started: Vec<u32>,
}

impl Epochs {
    /// A new generation's: its epoch 0 has started.
    pub fn new_generation() -> Epochs {
        let mut e = Epochs {
            attempted: true,
            ..Epochs::default()
        };
        e.started(0);
        e
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    pub fn started(&mut self, epoch: u32) {
        let t = self.tick();
        self.last_start.insert(epoch, t);
        self.last = Some(epoch);
        self.next = epoch + 1;
        self.started.push(epoch);
    }

    pub fn failed(&mut self, epoch: u32) {
        let t = self.tick();
        self.failures.push((epoch, t));
    }

    /// A restart failed and --keep-serving keeps `newest` serving.
    pub fn restart_failed(&mut self, newest: u32) {
        self.next = newest + 1;
    }

    /// Invariant 3 for a spawn of `epoch`, given the epochs of the children
    /// still running. Contiguous: epoch 0 first and only once; then each
    /// epoch is the one started last + 1, or (with --keep-serving only) a
    /// number at or below it, reused after a failure of that number or a
    /// higher one since that number last started (after a reuse the count
    /// goes on from the reused number). Never at or below a live epoch
    /// (Envoy's epoch n talks to n-1). And exactly: the model's next number.
    pub fn check_spawn(
        &mut self,
        epoch: u32,
        keep_serving: bool,
        live: &[u32],
    ) -> Result<(), String> {
        let first = !self.attempted;
        self.attempted = true;
        if first {
            return match epoch {
                0 => Ok(()),
                _ => Err(format!("I3: the first epoch started is {epoch}, not 0")),
            };
        }
        if epoch == 0 {
            return Err("I3: epoch 0 started a second time".into());
        }
        if let Some(e) = live.iter().find(|&&e| e >= epoch) {
            return Err(format!(
                "I3: epoch {epoch} started while epoch {e} still runs (started so far: {:?})",
                self.started
            ));
        }
        let next = self.last.map_or(0, |m| m + 1);
        if epoch > next {
            return Err(format!(
                "I3: epoch {epoch} skips numbers: the one started last is {:?} (started so far: \
                 {:?})",
                self.last, self.started
            ));
        }
        if epoch < next {
            if !keep_serving {
                return Err(format!(
                    "I3: epoch {epoch} reused without --keep-serving (started so far: {:?})",
                    self.started
                ));
            }
            let since = self.last_start.get(&epoch).copied().unwrap_or(0);
            if !self.failures.iter().any(|&(e, t)| e >= epoch && t > since) {
                return Err(format!(
                    "I3: epoch {epoch} reused, but no epoch >= {epoch} failed since it last \
                     started (started so far: {:?}, failures: {:?})",
                    self.started, self.failures
                ));
            }
        }
        if epoch != self.next {
            return Err(format!(
                "I3: epoch {epoch} started, the model expects {}: the one started last + 1, \
                 or after a kept failure the newest epoch still serving + 1 (started so far: \
                 {:?}, failures: {:?})",
                self.next, self.started, self.failures
            ));
        }
        Ok(())
    }
}
