//! `--watch PATH`: notices when a watched file's contents change, however
//! the change is made (written in place, renamed over, a symlink swapped as
//! the kubelet does for ConfigMaps and Secrets), and says so after a quiet
//! period. One non-blocking inotify descriptor for the event loop to poll;
//! no thread and no timer while nothing happens.
//!
//! inotify watches the directories holding the path and every hop of its
//! symlink chain, never the file itself: a watch on a file follows its
//! inode, which a rename-over or a `..data` swap leaves behind. An event
//! counts only when it names one of those entries; the look that follows
//! re-resolves the chain (moving the watches) and hashes the contents, so a
//! `touch` or an identical rewrite is no change.

mod files;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

pub use files::{HASH_LIMIT, content_hash, deps};
pub use state::{Debouncer, MAX_WAIT_FACTOR, Snapshot, Tracked, WatchEvent, compare};

/// `--watch-debounce`'s default.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(500);

/// Entry events that can change what a watched name reads as. IN_MODIFY is
/// left out: it fires on every write(2), before the writer is done, while
/// IN_CLOSE_WRITE comes once the file is complete. IN_ATTRIB covers chmod
/// (readable or not) and `touch`; the hash then tells whether it matters.
fn entry_events() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// Watches a few files for content changes; see the module comment.
pub struct Watcher {
    inotify: Inotify,
    tracked: Vec<Tracked>,
    debouncer: Debouncer,
    /// The entries the paths depend on now.
    deps: BTreeSet<files::Dep>,
    dirs: HashMap<PathBuf, WatchDescriptor>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
}

impl Watcher {
    /// Starts watching `paths`. A path whose directory does not exist is an
    /// error naming it; a missing file is fine (watched for its arrival,
    /// which then counts as a change).
    pub fn new(paths: &[PathBuf], debounce: Duration) -> Result<Watcher> {
        if paths.is_empty() {
            bail!("--watch: no path given");
        }
        for path in paths {
            if path.file_name().is_none() {
                bail!("--watch {}: not a file path", path.display());
            }
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let meta = std::fs::metadata(parent).with_context(|| {
                format!("--watch {}: directory {}", path.display(), parent.display())
            })?;
            if !meta.is_dir() {
                bail!(
                    "--watch {}: {} is not a directory",
                    path.display(),
                    parent.display()
                );
            }
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .context("inotify_init1")?;
        let mut watcher = Watcher {
            inotify,
            tracked: Vec::new(),
            debouncer: Debouncer::new(debounce),
            deps: BTreeSet::new(),
            dirs: HashMap::new(),
            by_wd: HashMap::new(),
        };
        // Watches first, then the first look: a change in between is seen.
        let unseen = Snapshot::Missing(String::new());
        watcher.tracked = paths
            .iter()
            .map(|p| Tracked::new(p.clone(), &unseen))
            .collect();
        watcher.resync().context("--watch")?;
        watcher.tracked = paths
            .iter()
            .map(|p| Tracked::new(p.clone(), &files::snapshot(p)))
            .collect();
        Ok(watcher)
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// The watched paths, in the order given.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.tracked.iter().map(|t| t.path.as_path())
    }

    /// Paths that cannot be read now (for a warning at start).
    pub fn missing(&self) -> impl Iterator<Item = &Path> {
        self.tracked
            .iter()
            .filter(|t| !t.present())
            .map(|t| t.path.as_path())
    }

    /// The directories watched now (for status and tests).
    pub fn watched_dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.keys().map(PathBuf::as_path)
    }

    /// Drains the inotify descriptor; events that matter arm the deadline.
    pub fn on_readable(&mut self, now: Instant) -> Result<()> {
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("reading inotify events"),
            };
            for event in events {
                if self.matters(event.wd, event.mask, event.name.as_deref()) {
                    self.debouncer.event(now);
                }
            }
        }
    }

    fn matters(
        &mut self,
        wd: WatchDescriptor,
        mask: AddWatchFlags,
        name: Option<&std::ffi::OsStr>,
    ) -> bool {
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            return true;
        }
        if mask.contains(AddWatchFlags::IN_IGNORED) {
            // The kernel dropped a watch (its directory is gone). One that
            // `resync` removed itself is forgotten already: no new look.
            return match self.by_wd.remove(&wd) {
                Some(dir) => {
                    self.dirs.remove(&dir);
                    true
                }
                None => false,
            };
        }
        let Some(dir) = self.by_wd.get(&wd) else {
            // Queued before `resync` removed the watch.
            return false;
        };
        if mask.intersects(
            AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_UNMOUNT,
        ) {
            return true;
        }
        name.is_some_and(|name| self.deps.contains(&(dir.clone(), name.to_os_string())))
    }

    /// The next deadline, `None` while nothing is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.debouncer.poll_timeout()
    }

    /// At the deadline: moves the watches to the current symlink chains,
    /// hashes every path and reports what differs from the last look.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<WatchEvent> {
        if !self.debouncer.due(now) {
            return Vec::new();
        }
        if let Err(e) = self.resync() {
            // A directory that cannot be watched any more (removed, or out of
            // watches): the look below still reports what can be read.
            log::debug!("watch: {e:#}");
        }
        compare(&mut self.tracked, |p| files::snapshot(p))
    }

    /// Recomputes the entries the paths depend on and watches exactly their
    /// directories.
    fn resync(&mut self) -> Result<()> {
        self.deps = self.tracked.iter().flat_map(|t| deps(&t.path)).collect();
        let wanted: BTreeSet<PathBuf> = self.deps.iter().map(|(dir, _)| dir.clone()).collect();
        let stale: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|d| !wanted.contains(*d))
            .cloned()
            .collect();
        for dir in stale {
            if let Some(wd) = self.dirs.remove(&dir) {
                self.by_wd.remove(&wd);
                // EINVAL when the kernel already dropped it (directory gone).
                let _ = self.inotify.rm_watch(wd);
            }
        }
        let mut first_error = None;
        for dir in wanted {
            if self.dirs.contains_key(&dir) {
                continue;
            }
            match self.inotify.add_watch(&dir, entry_events()) {
                Ok(wd) => {
                    self.by_wd.insert(wd, dir.clone());
                    self.dirs.insert(dir, wd);
                }
                Err(e) => {
                    first_error
                        .get_or_insert_with(|| format!("cannot watch {}: {e}", dir.display()));
                }
            }
        }
        match first_error {
            Some(e) => bail!(e),
            None => Ok(()),
        }
    }
}
