//! `--watch` glue: drains the inotify descriptor when it is readable, and
//! at the watcher's deadline turns what it found into log lines (a file
//! gone, back) and `Event::Changed` for the core.

use std::time::Instant;

use crate::core::{Event, quoted};
use crate::watch::WatchEvent;

use super::Driver;

impl Driver {
    pub(super) fn on_watch_ready(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        if let Err(e) = watcher.on_readable(Instant::now()) {
            // The descriptor would stay readable and the loop spin on it:
            // give the watches up, loudly; SIGHUP still reloads.
            log::error!("--watch: {e:#}; no longer watching any file");
            self.watcher = None;
        }
    }

    /// At the watcher's deadline: look at the files, say what is gone or
    /// back, and hand a change of contents to the core.
    pub(super) fn watch_timeouts(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        if watcher.poll_timeout().is_none_or(|at| at > Instant::now()) {
            return;
        }
        for event in watcher.on_timeout(Instant::now()) {
            match event {
                WatchEvent::Gone { path, why } => log::warn!(
                    "watched file {} cannot be read ({why}): keeping the running \
                     configuration and watching for its return",
                    quoted(&path.to_string_lossy()),
                ),
                WatchEvent::Back(path) => {
                    log::info!(
                        "watched file {} can be read now",
                        quoted(&path.to_string_lossy())
                    )
                }
                WatchEvent::Changed(paths) => self.feed(Event::Changed(paths)),
            }
        }
    }
}
