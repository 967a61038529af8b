//! Pure decisions, kept apart from processes so they can be tested alone:
//! what an exit means, which code the wrapper exits with, which epoch comes
//! next, and what a SIGHUP does in each state.

/// How one child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl Exit {
    /// Exit code 0 is an epoch that finished draining; anything else is a
    /// failure that, by default, takes the whole wrapper down.
    pub fn is_clean(self) -> bool {
        self == Exit::Code(0)
    }
}

/// Why the wrapper is stopping, which decides its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every child exited 0 by itself.
    NoChildrenLeft,
    /// SIGTERM/SIGINT and every child exited within the term wait.
    GracefulShutdown,
    /// SIGTERM/SIGINT, but some children had to be SIGKILLed.
    ForcedShutdown,
    /// A child failed, or a start failed.
    Failure,
}

impl Ending {
    pub fn exit_code(self) -> i32 {
        match self {
            Ending::NoChildrenLeft | Ending::GracefulShutdown => 0,
            Ending::ForcedShutdown | Ending::Failure => 1,
        }
    }
}

/// The epoch the next restart uses after a restart to `failed` did not
/// take, given the epochs still running. Envoy's epoch n talks to epoch
/// n-1, so the next try must follow the newest live epoch: the failed
/// number is reused, never skipped.
pub fn next_epoch_after_failure(live: impl IntoIterator<Item = u32>, failed: u32) -> u32 {
    match live.into_iter().max() {
        Some(newest) => newest + 1,
        None => failed,
    }
}

/// What to do with a SIGHUP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HupAction {
    /// Begin a restart now.
    Restart,
    /// A restart is in progress (preflight running, or the newest epoch not
    /// ready yet): remember that one more is wanted.
    Hold,
    /// One is already held: this SIGHUP folds into it.
    Coalesce,
    /// Shutting down or tearing down: log and ignore.
    Ignore,
}

/// Decide a SIGHUP from the wrapper's state.
pub fn on_hup(stopping: bool, restart_in_progress: bool, already_held: bool) -> HupAction {
    if stopping {
        HupAction::Ignore
    } else if !restart_in_progress {
        HupAction::Restart
    } else if already_held {
        HupAction::Coalesce
    } else {
        HupAction::Hold
    }
}

/// The last few lines of what a helper wrote, for a one-line reason:
/// at most three, joined with " / ", the last 1000 characters, control
/// characters escaped.
pub fn last_words(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    let chars: Vec<char> = tail.chars().collect();
    let tail = if chars.len() > 1000 {
        chars[chars.len() - 1000..].iter().collect()
    } else {
        tail
    };
    super::escape_controls(&tail)
}

#[cfg(test)]
mod tests;
