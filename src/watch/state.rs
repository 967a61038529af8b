//! The pure half of `--watch`: when to look again (quiescence debounce with
//! a cap) and what a fresh look at each file means (changed, gone, back).
//! No I/O and no clock: `now` and the file snapshots are passed in.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What one look at a watched file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// The file could be read; a hash of its contents (see `content_hash`).
    Content(u64),
    /// The file (or a link on the way to it) is missing or cannot be read:
    /// the OS error as text, for the log line.
    Missing(String),
}

/// What the owner of the watcher hears after a quiet period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// These files now hold contents different from the last ones seen
    /// (a file coming back with new contents counts).
    Changed(Vec<PathBuf>),
    /// The file cannot be read any more; it stays watched for its return.
    Gone { path: PathBuf, why: String },
    /// A file reported gone can be read again.
    Back(PathBuf),
}

/// Each event pushes the look to `now + debounce` (quiescence), but never
/// past `MAX_WAIT_FACTOR × debounce` after the first event of the burst, so
/// a file rewritten without pause is still looked at every few seconds.
pub const MAX_WAIT_FACTOR: u32 = 10;

/// When to look again: nothing armed while nothing happens.
#[derive(Debug, Clone)]
pub struct Debouncer {
    debounce: Duration,
    /// (first event of the burst, current deadline)
    pending: Option<(Instant, Instant)>,
}

impl Debouncer {
    pub fn new(debounce: Duration) -> Self {
        Debouncer {
            debounce,
            pending: None,
        }
    }

    /// Something that may matter happened at `now`.
    pub fn event(&mut self, now: Instant) {
        let first = self.pending.map_or(now, |(first, _)| first);
        let cap = first + self.debounce * MAX_WAIT_FACTOR;
        self.pending = Some((first, (now + self.debounce).min(cap)));
    }

    /// The next deadline, `None` when idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.map(|(_, deadline)| deadline)
    }

    /// Whether the deadline has passed at `now`; disarms it when it has.
    pub fn due(&mut self, now: Instant) -> bool {
        match self.pending {
            Some((_, deadline)) if now >= deadline => {
                self.pending = None;
                true
            }
            _ => false,
        }
    }
}

/// The last thing seen of one watched file.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub path: PathBuf,
    /// The hash of the last contents seen, kept while the file is gone so
    /// that a return with the same contents is no change.
    last: Option<u64>,
    present: bool,
}

impl Tracked {
    /// Starts from a first look; no event for it.
    pub fn new(path: PathBuf, first: &Snapshot) -> Self {
        match first {
            Snapshot::Content(hash) => Tracked {
                path,
                last: Some(*hash),
                present: true,
            },
            Snapshot::Missing(_) => Tracked {
                path,
                last: None,
                present: false,
            },
        }
    }

    pub fn present(&self) -> bool {
        self.present
    }

    /// Compares a fresh look with the last one: pushes `Gone`/`Back` onto
    /// `events` and returns whether the contents changed.
    pub fn update(&mut self, now: &Snapshot, events: &mut Vec<WatchEvent>) -> bool {
        match now {
            Snapshot::Missing(why) => {
                if self.present {
                    self.present = false;
                    events.push(WatchEvent::Gone {
                        path: self.path.clone(),
                        why: why.clone(),
                    });
                }
                false
            }
            Snapshot::Content(hash) => {
                if !self.present {
                    self.present = true;
                    events.push(WatchEvent::Back(self.path.clone()));
                }
                let changed = self.last != Some(*hash);
                self.last = Some(*hash);
                changed
            }
        }
    }
}

/// Looks at every tracked file once (`look` does the reading) and says what
/// differs: `Gone`/`Back` first, then one `Changed` naming every file whose
/// contents changed.
pub fn compare(
    tracked: &mut [Tracked],
    mut look: impl FnMut(&PathBuf) -> Snapshot,
) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    let mut changed = Vec::new();
    for t in tracked.iter_mut() {
        let snapshot = look(&t.path);
        if t.update(&snapshot, &mut events) {
            changed.push(t.path.clone());
        }
    }
    if !changed.is_empty() {
        events.push(WatchEvent::Changed(changed));
    }
    events
}
