//! One wait for the event loop: `poll(2)` over every registered descriptor
//! and the nearest deadline.
//!
//! `poll` rather than mio: the loop watches a handful of descriptors (the
//! signalfd, a few admin requests, the control socket and its clients),
//! rebuilt each turn from the sources that exist at that moment, so
//! registering and removing is just being in the list or not. A set that
//! small costs nothing to scan, and the wrapper stays free of a dependency
//! and of the bookkeeping that edge-triggered registration needs.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// One descriptor to watch, and what it stands for.
pub struct Interest<'a, T> {
    pub fd: BorrowedFd<'a>,
    /// Watch for writability (a connect or a send in progress) rather than
    /// readability.
    pub write: bool,
    pub token: T,
}

/// Wait until a descriptor is ready or `deadline` passes; returns the
/// tokens of the ready descriptors (none when the deadline passed).
/// Errors and hang-ups count as ready: the owner finds out by trying.
pub fn wait<T: Copy>(interests: &[Interest<'_, T>], deadline: Option<Instant>) -> Result<Vec<T>> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up so that a wake-up never comes before the deadline
                // and turns into a busy loop.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds: Vec<PollFd> = interests
            .iter()
            .map(|i| {
                let flags = if i.write {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::POLLIN
                };
                PollFd::new(i.fd, flags)
            })
            .collect();
        match poll(&mut fds, timeout) {
            // EINTR: a signal outside the blocked set (SIGSTOP/SIGCONT).
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("cannot wait for events (poll)"),
            Ok(0) => return Ok(Vec::new()),
            Ok(_) => {}
        }
        return Ok(fds
            .iter()
            .zip(interests)
            .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, i)| i.token)
            .collect());
    }
}
