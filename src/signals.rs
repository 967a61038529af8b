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
        Ok(Signals { fd })
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
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    if let Some(i) = HANDLED.iter().position(|s| *s as u32 == info.ssi_signo) {
                        seen[i] = true;
                    }
                }
                // EAGAIN: nothing more is queued.
                Ok(None) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("cannot read the signalfd"),
            }
        }
        Ok(HANDLED
            .iter()
            .zip(seen)
            .filter_map(|(sig, seen)| seen.then_some(*sig))
            .collect())
    }
}
