//! The wrapper's signals, read synchronously from a signalfd.
//!
//! The five signals the wrapper acts on are blocked and read from a
//! signalfd, so no code runs in a signal handler (the Python wrapper forks
//! from inside its handlers, which is how rapid SIGHUPs wedge it,
//! envoyproxy/envoy #7861); the event loop polls the signalfd beside its
//! sockets and wakes for the next signal or deadline, never in between.

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals the wrapper handles, in the order a batch is handled: reap
/// first (a crash decides everything after it), then a stop request, then
/// log reopening, then restarts.
pub const HANDLED: [Signal; 5] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGHUP,
];

pub struct Signals {
    fd: SignalFd,
    set: SigSet,
}

impl Signals {
    /// Block the handled signals and open a signalfd for them. Must run
    /// before the first child is started so that no SIGCHLD is lost.
    pub fn new() -> Result<Signals> {
        let mut set = SigSet::empty();
        for sig in HANDLED {
            set.add(sig);
            // A disposition inherited as SIG_IGN survives exec. For SIGCHLD
            // that is fatal: the kernel then reaps children by itself and
            // waitpid never reports a crash. (Blocked signals are queued
            // even when ignored, but the default is the honest state.)
            // SAFETY: SIG_DFL installs no handler, so no code can run in
            // signal context.
            unsafe { signal(sig, SigHandler::SigDfl) }
                .with_context(|| format!("cannot reset the disposition of {}", sig.as_str()))?;
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("cannot block signals")?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("cannot create a signalfd")?;
        Ok(Signals { fd, set })
    }

    /// Handle SIGUSR2 too (the handoff trigger, with --handoff-admin only:
    /// without it SIGUSR2 keeps its default action, as with the Python
    /// wrapper).
    pub fn add_usr2(&mut self) -> Result<()> {
        let mut one = SigSet::empty();
        one.add(Signal::SIGUSR2);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&one), None).context("cannot block SIGUSR2")?;
        self.set.add(Signal::SIGUSR2);
        self.fd
            .set_mask(&self.set)
            .context("cannot add SIGUSR2 to the signalfd")
    }

    /// The signalfd, for the event loop's poll: readable when a handled
    /// signal is pending.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Read every queued signal without blocking, in handling order (each
    /// at most once: standard signals coalesce in the kernel anyway).
    pub fn read(&self) -> Result<Vec<Signal>> {
        let mut seen = [false; HANDLED.len()];
        let mut usr2 = false;
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    if let Some(i) = HANDLED.iter().position(|s| *s as u32 == info.ssi_signo) {
                        seen[i] = true;
                    } else if info.ssi_signo == Signal::SIGUSR2 as u32 {
                        usr2 = true;
                    }
                }
                // EAGAIN: nothing more is queued.
                Ok(None) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("cannot read the signalfd"),
            }
        }
        let mut pending: Vec<Signal> = HANDLED
            .iter()
            .zip(seen)
            .filter_map(|(sig, seen)| seen.then_some(*sig))
            .collect();
        if usr2 {
            pending.push(Signal::SIGUSR2);
        }
        Ok(pending)
    }
}
