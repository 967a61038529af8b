//! Readiness of a new epoch: the `--ready-check` script and Envoy's admin
//! (`--envoy-admin`), each a probe that runs until it passes; the epoch is
//! ready once every configured probe has passed.

use std::time::Duration;

use super::{Action, Answer, Core, Helper, Job, JobKind, Phase, Probe, Query, later};

/// Envoy gives its uptime in whole seconds.
const UPTIME_SLACK: Duration = Duration::from_secs(1);

impl Core {
    /// Start every probe whose time has come.
    pub(super) fn run_due_probes(&mut self) {
        let now = self.now;
        let Some(a) = self.awaiting_mut() else {
            return;
        };
        let (epoch, generation, pid) = (a.epoch, a.generation, a.pid);
        let mut actions = Vec::new();
        if matches!(a.script, Probe::Due(at) if now >= at) {
            a.script = Probe::Running(Helper::Spawning);
            let job = Job::new(JobKind::ReadyCheck, epoch, generation);
            actions.push(Action::Spawn(job));
        }
        if matches!(a.admin, Probe::Due(at) if now >= at) {
            a.admin = Probe::Asking;
            let query = Query::ServerInfo {
                generation,
                epoch,
                pid,
            };
            actions.push(Action::Ask(query));
        }
        self.actions.extend(actions);
    }

    /// Envoy's admin answered (or did not). The epoch is LIVE when the
    /// admin says `LIVE` *and* names this epoch: for a moment after a
    /// restart the previous epoch's admin still answers on the same
    /// address, so `/ready` alone would be a lie.
    pub(super) fn on_answer(&mut self, query: Query, answer: Result<Answer, String>) {
        if let Phase::Draining(_) = self.phase {
            return self.on_stop_drain_answer(query, answer);
        }
        let now = self.now;
        let interval = self.s.ready_interval;
        let (generation, epoch, pid) = match query {
            Query::ServerInfo {
                generation,
                epoch,
                pid,
            } => (generation, epoch, pid),
            Query::Drain { .. } | Query::Listening { .. } => {
                return self.on_retiring_answer(query, answer);
            }
            Query::HotRestartVersion { .. } => {
                return self.on_version(query, answer);
            }
            Query::Occupied { .. } => return self.on_occupied(query, answer),
            // Only asked while draining for a stop.
            Query::HealthcheckFail { .. } | Query::InFlight { .. } => return,
        };
        let Some(a) = self.awaiting_mut() else {
            return;
        };
        let asked = (a.generation, a.epoch, a.pid) == (generation, epoch, pid);
        if !asked || a.admin != Probe::Asking {
            // The answer to a question about an epoch no longer awaited.
            return;
        }
        let said = match answer {
            Ok(Answer::ServerInfo {
                state,
                restart_epoch,
                uptime,
            }) => {
                // Envoy rounds its uptime to whole seconds: one second of
                // slack. An Envoy up for longer than the awaited child has
                // run is another one (a leftover on the same address).
                let age = now.saturating_duration_since(a.started);
                let foreign = uptime.filter(|u| *u > age + UPTIME_SLACK);
                if let (Some(up), true) = (foreign, state == "LIVE") {
                    let said = format!(
                        "an Envoy that has been up for {} s answers LIVE at epoch {} on its \
                         admin address, but epoch {epoch} (PID={pid}) started {} ms ago: \
                         another Envoy answers there",
                        up.as_secs(),
                        restart_epoch.map_or("(none)".to_owned(), |e| e.to_string()),
                        age.as_millis()
                    );
                    let news = a.admin_said.as_deref() != Some(said.as_str());
                    a.admin_said = Some(said.clone());
                    a.admin = Probe::Due(later(now, interval));
                    if news {
                        say!(self, Warn, "{said}");
                    }
                    return;
                }
                if state == "LIVE" && restart_epoch == Some(epoch) {
                    a.admin = Probe::Passed;
                    a.admin_said = None;
                    self.check_ready();
                    return;
                }
                let state = super::quoted(&state);
                match restart_epoch {
                    Some(e) => format!("state {state} at epoch {e}"),
                    None => format!("state {state}, no restart epoch"),
                }
            }
            Ok(other) => format!("an unexpected answer {other:?}"),
            Err(why) => why,
        };
        let news = a.admin_said.as_deref() != Some(said.as_str());
        a.admin_said = Some(said.clone());
        a.admin = Probe::Due(later(now, interval));
        if news {
            say!(self, Debug, "epoch {epoch} not LIVE yet: {said}");
        }
    }

    /// The awaited epoch is ready once every probe has passed.
    pub(super) fn check_ready(&mut self) {
        let now = self.now;
        let Some(a) = self.awaiting_mut() else {
            return;
        };
        let passed = |p: Probe| matches!(p, Probe::Passed | Probe::Off);
        if passed(a.script) && passed(a.admin) {
            let a = a.clone();
            if a.generation != self.generation {
                self.handoff_live(a);
                return;
            }
            say!(
                self,
                Info,
                "epoch {} (PID={}) is ready after {} ms",
                a.epoch,
                a.pid,
                now.saturating_duration_since(a.started).as_millis()
            );
            self.restart_done();
        }
    }
}
