//! The fake world the fake driver runs: processes that the core asked for,
//! with fresh pids, that exit when a step says so or some time after the
//! core signalled them, and what the model knows about each of them.

use std::time::Instant;

use hot_restarter::core::Exit;
use nix::unistd::Pid;

/// What a fake process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The start script for this epoch.
    Child(u32),
    /// A preflight for this would-be epoch.
    Preflight(u32),
    /// A ready check of `child`, an epoch that has started.
    ReadyCheck { epoch: u32, child: Pid },
    /// `--envoy-bin --hot-restart-version` before a restart to this epoch.
    Probe(u32),
}

#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: Pid,
    pub kind: Kind,
    /// The generation of the job (with --handoff-admin; else 0).
    pub generation: u32,
    pub born: Instant,
    /// Once SIGKILLed it never exits (uninterruptible sleep): only the
    /// core's KILL_REAP_WAIT deadline ends the wait for it.
    pub stuck: bool,
    /// Ignores SIGTERM.
    pub deaf: bool,
    /// Signalled to death: exits with this at some later step.
    pub dying: Option<Exit>,
    /// The core sent it SIGTERM.
    pub termed: bool,
    /// The core sent it SIGKILL (a child) or KillGroup (a helper).
    pub killed: bool,
    /// Its exit was handed to the core.
    pub reaped: bool,
    /// The core gave up waiting for it (past KILL_REAP_WAIT); the model
    /// no longer counts it.
    pub given_up: bool,
    /// Model: a child whose readiness is established (every configured
    /// probe passed, or readiness is not checked).
    pub ready: bool,
    /// Model: its ready check passed (or there is none).
    pub script_ok: bool,
    /// Model: Envoy's admin said LIVE for its epoch and generation, to a
    /// question asked about it (or --envoy-admin is off).
    pub admin_ok: bool,
    /// Model: of a generation handed off (draining, then stopped).
    pub retiring: bool,
    /// Model: a child the core SIGKILLed because it was not ready in time.
    pub abandoned: bool,
    /// What it writes before it exits (the version probe's answer).
    pub output: String,
}

impl Proc {
    pub fn is_child(&self) -> bool {
        matches!(self.kind, Kind::Child(_))
    }

    pub fn epoch(&self) -> u32 {
        match self.kind {
            Kind::Child(e)
            | Kind::Preflight(e)
            | Kind::ReadyCheck { epoch: e, .. }
            | Kind::Probe(e) => e,
        }
    }

    /// Not reaped and not given up: the core must still know it.
    pub fn tracked(&self) -> bool {
        !self.reaped && !self.given_up
    }

    /// Can still exit (a stuck process that was SIGKILLed never does).
    pub fn can_exit(&self) -> bool {
        let hung = self.stuck && self.killed;
        !self.reaped && !hung
    }
}

pub struct World {
    /// Every process ever started, in start order (pids grow).
    pub procs: Vec<Proc>,
    next_pid: i32,
}

impl World {
    pub fn new() -> World {
        World {
            procs: Vec::new(),
            next_pid: 1000,
        }
    }

    /// The pid the next process will get.
    pub fn peek_pid(&self) -> i32 {
        self.next_pid + 1
    }

    /// A pid never used before (also for orphans the core never started).
    pub fn fresh_pid(&mut self) -> Pid {
        self.next_pid += 1;
        Pid::from_raw(self.next_pid)
    }

    pub fn spawn(
        &mut self,
        kind: Kind,
        generation: u32,
        born: Instant,
        stuck: bool,
        deaf: bool,
    ) -> Pid {
        let pid = self.fresh_pid();
        self.procs.push(Proc {
            pid,
            kind,
            generation,
            born,
            stuck,
            deaf,
            dying: None,
            termed: false,
            killed: false,
            reaped: false,
            given_up: false,
            ready: false,
            script_ok: false,
            admin_ok: false,
            retiring: false,
            abandoned: false,
            output: String::new(),
        });
        pid
    }

    pub fn get(&self, pid: Pid) -> Option<&Proc> {
        self.procs.iter().find(|p| p.pid == pid)
    }

    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut Proc> {
        self.procs.iter_mut().find(|p| p.pid == pid)
    }

    /// Children the core must still list, in start order.
    pub fn children(&self) -> impl DoubleEndedIterator<Item = &Proc> {
        self.procs.iter().filter(|p| p.is_child() && p.tracked())
    }

    /// Children that count (the core's `live()`): not given up on, not of
    /// a generation handed off.
    pub fn live_children(&self) -> impl DoubleEndedIterator<Item = &Proc> {
        self.children().filter(|p| !p.abandoned && !p.retiring)
    }

    /// The live children of generation `generation`.
    pub fn serving(&self, generation: u32) -> impl DoubleEndedIterator<Item = &Proc> {
        self.live_children()
            .filter(move |p| p.generation == generation)
    }

    /// Children of a generation handed off, not reaped yet.
    pub fn retiring(&self) -> impl DoubleEndedIterator<Item = &Proc> {
        self.children().filter(|p| p.retiring)
    }

    /// The epoch whose readiness is awaited (at most one).
    pub fn awaited(&self) -> Option<&Proc> {
        self.live_children().find(|p| !p.ready)
    }

    /// Helpers not reaped nor given up.
    pub fn helpers(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter().filter(|p| !p.is_child() && p.tracked())
    }

    /// The core's SIGKILL (or a KillGroup): dies later, unless stuck.
    pub fn kill(&mut self, pid: Pid) {
        let p = self.get_mut(pid).expect("known pid");
        p.killed = true;
        if !p.stuck {
            p.dying = Some(Exit::Signal(libc_sigkill()));
        }
    }

    /// The core's SIGTERM: Envoy exits 0 on it, unless this one is deaf.
    pub fn term(&mut self, pid: Pid) {
        let p = self.get_mut(pid).expect("known pid");
        p.termed = true;
        if !p.deaf && p.dying.is_none() {
            p.dying = Some(Exit::Code(0));
        }
    }
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}
