//! The `status` answer: the wrapper's state as the control socket reports
//! it, its JSON form (serde derive), and the text and Prometheus renderings
//! `hot-restarter-ctl status` prints. Re-exported by [`super::proto`].

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::core::{self, ChildState, PhaseName, ReloadResult};

/// The states a child is reported in ([`ChildStatus::state`]).
pub mod child_state {
    /// Started, not ready yet (readiness is checked) or not yet judged.
    pub const STARTING: &str = "starting";
    /// Running and, where readiness is checked, ready.
    pub const READY: &str = "ready";
    /// Superseded by a newer epoch or generation, still running.
    pub const DRAINING: &str = "draining";
}

/// The results a reload is reported with ([`LastReload::result`]).
pub mod reload_result {
    pub const DONE: &str = "done";
    pub const SKIPPED: &str = "skipped";
    pub const FAILED: &str = "failed";
}

/// The wrapper's state, as the answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The wrapper's pid.
    pub pid: u32,
    /// What the wrapper is doing, e.g. `running`, `shutting-down`.
    pub phase: String,
    /// Seconds since the wrapper started.
    pub uptime_s: f64,
    /// The live children, in start order.
    pub children: Vec<ChildStatus>,
    /// The last reload that finished; `null` before the first.
    pub last_reload: Option<LastReload>,
    #[serde(default)]
    pub counters: Counters,
    /// The wrapper's version (of the binary now running).
    #[serde(default)]
    pub version: String,
    /// The path the wrapper was started from (and reexecs run).
    #[serde(default)]
    pub exe: String,
    /// Reexecs that took over since the wrapper was first started.
    #[serde(default)]
    pub reexecs: u64,
}

/// One live child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStatus {
    pub pid: u32,
    /// `RESTART_EPOCH` (inside its generation).
    pub epoch: u32,
    /// 0 unless `--handoff-admin` started newer generations.
    pub generation: u32,
    /// One of [`child_state`].
    pub state: String,
}

/// How the last reload ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastReload {
    /// The epoch it started (or would have started, if skipped).
    pub epoch: u32,
    /// One of [`reload_result`].
    pub result: String,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// How long it took, in milliseconds.
    pub ms: u64,
    /// What asked for it: "SIGHUP", "reload request", or `"PATH" changed`
    /// (`--watch`); absent for a reload the wrapper began itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

/// Totals since the wrapper started. Absent fields read as 0, so that a
/// later version can add counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub reloads_done: u64,
    pub reloads_skipped: u64,
    pub reloads_failed: u64,
    pub handoffs_done: u64,
    pub handoffs_failed: u64,
}

/// A phase as `status` names it ([`Status::phase`]); the state × event
/// table of docs/architecture.md uses the same names.
pub fn phase_name(phase: PhaseName) -> &'static str {
    match phase {
        PhaseName::Running => "running",
        PhaseName::Preflight => "preflight",
        PhaseName::Starting => "starting",
        PhaseName::HandingOff => "handing-off",
        PhaseName::DrainingForStop => "draining-for-stop",
        PhaseName::ShuttingDown => "shutting-down",
        PhaseName::Killing => "killing",
        PhaseName::Exiting => "exiting",
        PhaseName::Done => "done",
    }
}

impl From<&core::StatusView> for Status {
    fn from(view: &core::StatusView) -> Status {
        let phase = phase_name(view.phase);
        let last_reload = view.last_reload.as_ref().map(|r| LastReload {
            epoch: r.epoch,
            result: match r.result {
                ReloadResult::Done => reload_result::DONE,
                ReloadResult::Skipped => reload_result::SKIPPED,
                ReloadResult::Failed => reload_result::FAILED,
            }
            .to_string(),
            reason: r.reason.clone(),
            ms: r.ms,
            trigger: r.trigger.clone(),
        });
        let n = &view.counters;
        Status {
            pid: view.pid,
            phase: phase.to_string(),
            uptime_s: view.uptime.as_secs_f64(),
            children: view.children.iter().map(ChildStatus::from).collect(),
            last_reload,
            counters: Counters {
                reloads_done: n.reloads_done,
                reloads_skipped: n.reloads_skipped,
                reloads_failed: n.reloads_failed,
                handoffs_done: n.handoffs_done,
                handoffs_failed: n.handoffs_failed,
            },
            version: env!("CARGO_PKG_VERSION").to_string(),
            exe: crate::os::reexec::exe_path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            reexecs: view.reexecs,
        }
    }
}

impl From<&core::Child> for ChildStatus {
    fn from(c: &core::Child) -> ChildStatus {
        let state = match c.state {
            ChildState::Starting => child_state::STARTING,
            ChildState::Ready => child_state::READY,
            // An epoch given up on is not reported; were it, it would be
            // on its way out like a draining one.
            ChildState::Draining | ChildState::Retiring | ChildState::Abandoned => {
                child_state::DRAINING
            }
        };
        ChildStatus {
            pid: c.pid.as_raw() as u32,
            epoch: c.epoch,
            generation: c.generation,
            state: state.to_string(),
        }
    }
}

impl Status {
    /// The child that serves: the newest ready one (highest generation,
    /// then highest epoch).
    pub fn serving(&self) -> Option<&ChildStatus> {
        self.children
            .iter()
            .filter(|c| c.state == child_state::READY)
            .max_by_key(|c| (c.generation, c.epoch))
    }

    /// A few lines for a person, each ending in `\n`.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "hot-restarter PID={}: {}, up {}\n",
            self.pid,
            self.phase,
            human_duration(self.uptime_s)
        );
        match self.serving() {
            Some(c) => writeln!(
                text,
                "serving: epoch {} generation {} (PID={})",
                c.epoch, c.generation, c.pid
            ),
            None => writeln!(text, "serving: no ready child"),
        }
        .expect("writing to a String");
        if self.children.is_empty() {
            text.push_str("children: none\n");
        } else {
            text.push_str("children:\n");
        }
        for c in &self.children {
            writeln!(
                text,
                "  PID={} epoch {} generation {} {}",
                c.pid, c.epoch, c.generation, c.state
            )
            .expect("writing to a String");
        }
        match &self.last_reload {
            None => text.push_str("last reload: none\n"),
            Some(r) => {
                write!(
                    text,
                    "last reload: epoch {} {} after {:.3} s",
                    r.epoch,
                    r.result,
                    r.ms as f64 / 1000.0
                )
                .expect("writing to a String");
                if let Some(trigger) = &r.trigger {
                    write!(text, " ({})", one_line(trigger)).expect("writing to a String");
                }
                if let Some(reason) = &r.reason {
                    write!(text, ": {}", one_line(reason)).expect("writing to a String");
                }
                text.push('\n');
            }
        }
        let n = &self.counters;
        writeln!(
            text,
            "reloads: {} done, {} skipped, {} failed; handoffs: {} done, {} failed",
            n.reloads_done, n.reloads_skipped, n.reloads_failed, n.handoffs_done, n.handoffs_failed
        )
        .expect("writing to a String");
        if !self.version.is_empty() {
            writeln!(
                text,
                "version: {} ({}), reexecs: {}",
                self.version,
                one_line(&self.exe),
                self.reexecs
            )
            .expect("writing to a String");
        }
        text
    }

    /// Prometheus text exposition format (version 0.0.4), e.g. for
    /// node_exporter's textfile collector. Every metric has `# HELP` and
    /// `# TYPE` lines and the `hot_restarter_` prefix.
    pub fn to_prometheus(&self) -> String {
        let mut out = Exposition::up(1.0);
        out.metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the wrapper started.",
        )
        .sample("", self.uptime_s);
        out.metric("phase", "gauge", "The wrapper's current phase (always 1).")
            .sample(&label("phase", &self.phase), 1.0);

        out.metric("children", "gauge", "Live children by state.");
        let mut states = vec![
            child_state::STARTING,
            child_state::READY,
            child_state::DRAINING,
        ];
        for c in &self.children {
            if !states.contains(&c.state.as_str()) {
                states.push(&c.state);
            }
        }
        for state in states {
            let n = self.children.iter().filter(|c| c.state == state).count();
            out.sample(&label("state", state), n as f64);
        }

        let serving = self.serving();
        for (name, what, value) in [
            ("serving_epoch", "Restart epoch", serving.map(|c| c.epoch)),
            (
                "serving_generation",
                "Generation",
                serving.map(|c| c.generation),
            ),
        ] {
            let help = format!("{what} of the newest ready child (absent while none is ready).");
            out.metric(name, "gauge", &help);
            if let Some(v) = value {
                out.sample("", v.into());
            }
        }

        let n = &self.counters;
        out.metric("reloads_total", "counter", "Reloads by result.");
        for (result, count) in [
            (reload_result::DONE, n.reloads_done),
            (reload_result::SKIPPED, n.reloads_skipped),
            (reload_result::FAILED, n.reloads_failed),
        ] {
            out.sample(&label("result", result), count as f64);
        }
        out.metric(
            "handoffs_total",
            "counter",
            "Generation handoffs by result.",
        );
        for (result, count) in [
            (reload_result::DONE, n.handoffs_done),
            (reload_result::FAILED, n.handoffs_failed),
        ] {
            out.sample(&label("result", result), count as f64);
        }

        if let Some(r) = &self.last_reload {
            out.metric(
                "last_reload_duration_seconds",
                "gauge",
                "How long the last finished reload took.",
            )
            .sample("", r.ms as f64 / 1000.0);
            out.metric(
                "last_reload_epoch",
                "gauge",
                "Epoch of the last finished reload.",
            )
            .sample("", r.epoch.into());
            out.metric(
                "last_reload_success",
                "gauge",
                "1 if the last finished reload was done, 0 if it was skipped or failed.",
            )
            .sample(
                "",
                if r.result == reload_result::DONE {
                    1.0
                } else {
                    0.0
                },
            );
        }
        if !self.version.is_empty() {
            out.metric(
                "build_info",
                "gauge",
                "The running wrapper's version and the path it was started from (always 1).",
            )
            .sample(
                &format!(
                    "{},{}",
                    label("version", &self.version).trim_end_matches('}'),
                    label("exe", &self.exe).trim_start_matches('{')
                ),
                1.0,
            );
        }
        out.metric(
            "reexecs_total",
            "counter",
            "Reexecs of the wrapper's binary that took over.",
        )
        .sample("", self.reexecs as f64);
        out.text
    }

    /// What `status --prometheus` prints when nothing answers on the
    /// socket, so that a collector sees the wrapper down rather than the
    /// last file it was given.
    pub fn prometheus_down() -> String {
        Exposition::up(0.0).text
    }
}

/// A text exposition being written: the current metric's name and the text.
#[derive(Default)]
struct Exposition {
    name: String,
    text: String,
}

impl Exposition {
    /// A new exposition that starts with `hot_restarter_up`.
    fn up(value: f64) -> Exposition {
        let mut out = Exposition::default();
        out.metric(
            "up",
            "gauge",
            "1 if the wrapper answered on its control socket.",
        )
        .sample("", value);
        out
    }

    fn metric(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        self.name = format!("hot_restarter_{name}");
        writeln!(self.text, "# HELP {} {help}", self.name).expect("writing to a String");
        writeln!(self.text, "# TYPE {} {kind}", self.name).expect("writing to a String");
        self
    }

    /// One sample of the current metric; `labels` is `{...}` or empty.
    fn sample(&mut self, labels: &str, value: f64) {
        writeln!(self.text, "{}{labels} {}", self.name, number(value))
            .expect("writing to a String");
    }
}

/// `{name="value"}` with the value escaped as the format requires.
fn label(name: &str, value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            ch => escaped.push(ch),
        }
    }
    format!("{{{name}=\"{escaped}\"}}")
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        value.to_string()
    }
}

/// `3d 4h 05m 06s`, leaving out leading zero units.
fn human_duration(seconds: f64) -> String {
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (d, h, m, s) = (
        total / 86400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h}h {m:02}m {s:02}s"),
    }
}

/// A reason (possibly a preflight's multi-line output) on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod tests; // its `sample_status` serves the protocol's and the server's tests too
