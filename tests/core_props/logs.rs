//! The log lines, the core's output as much as its actions: the Python
//! wrapper's lines are a promised interface. What each event must log is
//! worked out from the model before the event (`expect`), and checked
//! against every line the core wrote for it, nested calls included
//! (`check_log`). Invariants L1-L5:
//! - L1 a batch of exits logs "got SIGCHLD" once, at INFO while running
//!   when the batch holds a process other than a helper (a child, an
//!   orphan, a helper given up on), else at DEBUG.
//! - L2 each child of the batch that counts (running, not given up on,
//!   not handed off) logs "PID=N exited with code=0" (INFO), "exited with
//!   code=N" or "was killed with signal=N" (WARNING); no other child does.
//! - L3 "exiting due to lack of child processes" (WARNING) exactly when the
//!   last child is reaped while running or after a teardown, or when a
//!   handoff that outlived every child cannot start its new generation.
//! - L4 with readiness checked, one "is ready after" / "is LIVE after"
//!   line (INFO) per epoch that became ready, naming it.
//! - L5 "keeps serving" names the newest serving epoch of the serving
//!   generation (no ready one is newer) and its pid, as they were before
//!   the event started new ones.
//! - L6 a watched change (`Event::Changed`) logs one INFO line naming the
//!   files, quoted and escaped (a newline in a name stays "\n"), and says
//!   what it does: restarting, holding, coalescing or ignoring.

use hot_restarter::core::{Event, LogLine};
use log::Level;
use nix::unistd::Pid;

use crate::harness::Harness;
use crate::model::Mode;

/// What the event being handled must log, worked out before it.
#[derive(Debug, Default)]
pub struct Expect {
    /// L1: the level of "got SIGCHLD", for a batch.
    sigchld: Option<Level>,
    /// L2: the exit lines of the children that count.
    exits: Vec<(Level, String)>,
    /// L3: the end may come by reaping (after a teardown, or running).
    lack: bool,
    readies: u64,
    /// L6: the quoted paths of a watched change.
    changed: Option<String>,
}

impl Harness {
    pub fn expect(&self, ev: &Event) -> Expect {
        let Event::Reaped(batch) = ev else {
            // A handoff under way with no child left ends the run when
            // its new generation cannot start (preflight failed or timed
            // out, address taken): the line says why. A stop is a stop.
            let childless = self.w.children().next().is_none();
            let handing_off = (self.m.preflight).is_some_and(|f| f.generation != self.m.serving);
            let changed = match ev {
                Event::Changed(paths) if !paths.is_empty() => {
                    Some(hot_restarter::core::quoted_paths(paths))
                }
                _ => None,
            };
            return Expect {
                changed,
                readies: self.m.readies,
                lack: self.m.running()
                    && childless
                    && handing_off
                    && !matches!(ev, Event::Signal(_) | Event::Control(..)),
                ..Expect::default()
            };
        };
        let running = self.m.running();
        let helper = |pid: &Pid| {
            self.w
                .get(*pid)
                .is_some_and(|p| !p.is_child() && p.tracked())
        };
        let only_helpers = batch.iter().all(|(pid, _)| helper(pid));
        let sigchld = match running && !batch.is_empty() && !only_helpers {
            true => Level::Info,
            false => Level::Debug,
        };
        let mut exits = Vec::new();
        for (pid, exit) in batch {
            let Some(p) = self.w.get(*pid) else {
                continue;
            };
            if !p.is_child() || !p.tracked() || !running || p.abandoned || p.retiring {
                continue;
            }
            exits.push(match exit.is_clean() {
                true => (Level::Info, format!("PID={pid} exited with code=0")),
                false => (
                    Level::Warn,
                    format!("PID={pid} {}", hot_restarter::core::describe(*exit)),
                ),
            });
        }
        Expect {
            sigchld: Some(sigchld),
            exits,
            lack: running || (matches!(self.m.mode, Mode::Killing { .. }) && self.m.torn_down),
            readies: self.m.readies,
            changed: None,
        }
    }

    /// After the event (and its checks): what it logged.
    pub fn check_log(&self, expect: &Expect, ended_now: bool) {
        let lines: Vec<&LogLine> = self.logged.iter().map(|(l, _)| l).collect();
        let with = |text: &str| -> Vec<&LogLine> {
            lines.iter().copied().filter(|l| l.text == text).collect()
        };
        if let Some(level) = expect.sigchld {
            let got = with("got SIGCHLD");
            self.ensure(got.len() == 1 && got[0].level == level, || {
                format!("L1: expected one \"got SIGCHLD\" at {level}, got {got:?}")
            });
        }
        for (level, text) in &expect.exits {
            let got = with(text);
            self.ensure(got.len() == 1 && got[0].level == *level, || {
                format!("L2: expected one {text:?} at {level}, got {got:?}")
            });
        }
        let exit_lines = (lines.iter())
            .filter(|l| l.level != Level::Debug)
            .filter(|l| l.text.starts_with("PID=") && !l.text.contains("handed off"))
            .filter(|l| {
                l.text.contains(" exited with code=") || l.text.contains(" was killed with")
            })
            .count();
        self.ensure(exit_lines == expect.exits.len(), || {
            format!(
                "L2: {exit_lines} child exit lines, expected {:?}",
                expect.exits
            )
        });
        let lack = with("exiting due to lack of child processes");
        let want = ended_now && expect.lack;
        self.ensure(lack.len() == usize::from(want), || {
            format!("L3: \"exiting due to lack of child processes\" {lack:?}, expected {want}")
        });
        self.ensure(lack.iter().all(|l| l.level == Level::Warn), || {
            format!("L3: {lack:?} not at WARNING")
        });
        self.check_ready_lines(expect);
        self.check_keeps_serving();
        if let Some(paths) = &expect.changed {
            let named: Vec<&&LogLine> = (lines.iter())
                .filter(|l| l.text.starts_with(&format!("{paths} changed: ")))
                .collect();
            self.ensure(named.len() == 1 && named[0].level == Level::Info, || {
                format!("L6: expected one INFO line \"{paths} changed: ...\", got {named:?}")
            });
            let said = ["restarting", "holding", "coalescing", "shutting down"];
            self.ensure(said.iter().any(|w| named[0].text.contains(w)), || {
                format!("L6: {:?} does not say what the change does", named[0])
            });
        }
        self.ensure(lines.iter().all(|l| !l.text.contains('\n')), || {
            format!("L6: a log line holds a raw newline: {lines:?}")
        });
    }

    fn check_ready_lines(&self, expect: &Expect) {
        if self.s.ready_check.is_none() && !self.s.envoy_admin {
            return;
        }
        let ready: Vec<&LogLine> = (self.logged.iter().map(|(l, _)| l))
            .filter(|l| l.text.contains(" is ready after ") || l.text.contains(" is LIVE after "))
            .collect();
        let became = self.m.readies - expect.readies;
        self.ensure(ready.len() as u64 == became, || {
            format!("L4: {became} epochs became ready, but the lines are {ready:?}")
        });
        for l in ready {
            let named = (self.w.procs.iter())
                .filter(|p| p.is_child() && p.ready)
                .any(|p| {
                    l.text
                        .contains(&format!("epoch {} (PID={})", p.epoch(), p.pid))
                });
            self.ensure(named && l.level == Level::Info, || {
                format!("L4: {l:?} names no epoch that became ready, or not at INFO")
            });
        }
    }

    fn check_keeps_serving(&self) {
        for (l, first_new) in
            (self.logged.iter()).filter(|(l, _)| l.text.contains(" keeps serving"))
        {
            // Children started later in the event (a held restart) were
            // not there when the line was written.
            let serving: Vec<_> = (self.w.serving(self.m.serving))
                .filter(|p| p.pid.as_raw() < *first_new)
                .collect();
            let named = serving.iter().find(|p| {
                l.text.contains(&format!(
                    "epoch {} (PID={}) keeps serving",
                    p.epoch(),
                    p.pid
                ))
            });
            let Some(named) = named else {
                self.fail(format!(
                    "L5: {l:?} names no live epoch of generation {} ({:?})",
                    self.m.serving,
                    serving
                        .iter()
                        .map(|p| (p.epoch(), p.pid))
                        .collect::<Vec<_>>()
                ));
            };
            let newer = (serving.iter()).find(|p| p.ready && p.epoch() > named.epoch());
            self.ensure(newer.is_none(), || {
                format!(
                    "L5: {l:?}, but epoch {:?} is newer and ready",
                    newer.map(|p| p.pid)
                )
            });
        }
    }
}
