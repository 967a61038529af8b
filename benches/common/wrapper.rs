//! The wrapper under test, running the fixture script.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::BIN;
use super::fixture::{Fixture, Ready, base, signal, wait_reaped};
use super::procfs::ProcStatus;

/// A running wrapper and its live children, oldest first.
pub struct Wrapper {
    child: Option<Child>,
    pub pid: i32,
    pub children: VecDeque<i32>,
    pub next_epoch: u32,
}

impl Wrapper {
    /// Start `hot-restarter FLAGS... SCRIPT`.
    fn spawn<S: AsRef<OsStr>>(fx: &Fixture, flags: &[S]) -> Wrapper {
        let mut cmd = Command::new(BIN);
        base(&mut cmd).args(flags).arg(&fx.script);
        let child = cmd.spawn().expect("cannot start hot-restarter");
        Wrapper {
            pid: child.id() as i32,
            child: Some(child),
            children: VecDeque::new(),
            next_epoch: 0,
        }
    }

    /// Wait for the next epoch's ready line.
    pub fn await_epoch(&mut self, fx: &mut Fixture) -> Ready {
        let ready = fx.fifo.ready();
        assert_eq!(
            ready.epoch,
            self.next_epoch.to_string(),
            "epochs out of order"
        );
        self.next_epoch += 1;
        self.children.push_back(ready.pid);
        ready
    }

    /// Start a wrapper and wait for its first child.
    pub fn launch(fx: &mut Fixture) -> Wrapper {
        Wrapper::launch_with(fx, &[] as &[&str])
    }

    /// Start a wrapper with `flags` and wait for its first child.
    pub fn launch_with<S: AsRef<OsStr>>(fx: &mut Fixture, flags: &[S]) -> Wrapper {
        let mut w = Wrapper::spawn(fx, flags);
        w.await_epoch(fx);
        w
    }

    /// A wrapper with `n` live children.
    pub fn with_children(fx: &mut Fixture, n: usize) -> Wrapper {
        let mut w = Wrapper::launch(fx);
        while w.children.len() < n {
            w.hup(fx);
        }
        w
    }

    /// SIGHUP and wait for the new child; returns the time it took.
    pub fn hup(&mut self, fx: &mut Fixture) -> Duration {
        let t0 = Instant::now();
        signal(self.pid, libc::SIGHUP);
        self.await_epoch(fx);
        t0.elapsed()
    }

    /// The oldest child finishes draining: it exits 0 and is reaped.
    pub fn retire_oldest(&mut self) {
        let pid = self.children.pop_front().expect("a child");
        signal(pid, libc::SIGTERM);
        wait_reaped(pid);
    }

    /// SIGUSR1 and wait until every child has it; returns the time it took.
    pub fn usr1(&mut self, fx: &mut Fixture) -> Duration {
        let pids: BTreeSet<i32> = self.children.iter().copied().collect();
        let t0 = Instant::now();
        signal(self.pid, libc::SIGUSR1);
        fx.fifo.usr1_from(&pids);
        t0.elapsed()
    }

    /// SIGTERM and wait for the wrapper's exit (0).
    pub fn term(mut self) -> Duration {
        let mut child = self.child.take().unwrap();
        let t0 = Instant::now();
        signal(self.pid, libc::SIGTERM);
        let status = child.wait().unwrap();
        let took = t0.elapsed();
        assert!(status.success(), "wrapper exited with {status}");
        for pid in self.children.drain(..) {
            wait_reaped(pid);
        }
        took
    }

    pub fn status(&self) -> ProcStatus {
        ProcStatus::read(self.pid)
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // PR_SET_PDEATHSIG takes the children down; make sure of it.
        for pid in self.children.drain(..) {
            // SAFETY: the pid was a live child of the wrapper just now.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
