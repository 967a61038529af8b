//! Unit tests for the status renderings: text and Prometheus exposition.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn child(pid: u32, epoch: u32, generation: u32, state: &str) -> ChildStatus {
    ChildStatus {
        pid,
        epoch,
        generation,
        state: state.to_string(),
    }
}

/// A wrapper serving epoch 3 with epoch 2 draining and 4 starting, whose
/// last reload failed with a multi-line reason: the sample status of the
/// control module's tests (renderings, protocol lines, server replies).
pub(crate) fn sample_status() -> Status {
    Status {
        version: String::new(),
        exe: String::new(),
        reexecs: 0,
        pid: 4645,
        phase: "running".to_string(),
        uptime_s: 93784.25,
        children: vec![
            child(4690, 2, 0, child_state::DRAINING),
            child(4700, 3, 0, child_state::READY),
            child(4710, 4, 0, child_state::STARTING),
        ],
        last_reload: Some(LastReload {
            epoch: 4,
            result: reload_result::FAILED.to_string(),
            reason: Some("preflight for epoch 4 failed:\n  bad \"listener\"".to_string()),
            ms: 1500,
            trigger: None,
        }),
        counters: Counters {
            reloads_done: 3,
            reloads_skipped: 1,
            reloads_failed: 2,
            handoffs_done: 1,
            handoffs_failed: 0,
        },
    }
}

/// One metric of a parsed exposition.
#[derive(Default)]
struct Metric {
    help: bool,
    kind: String,
    /// (labels as written, value)
    samples: Vec<(String, f64)>,
}

type Metrics = BTreeMap<String, Metric>;

/// The exposition parsed back, by metric name. Panics on any line that is
/// not valid text format.
fn parse_exposition(text: &str) -> Metrics {
    let mut metrics = Metrics::new();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line in {text}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and text");
            assert!(!help.is_empty());
            let entry = metrics.entry(name.to_string()).or_default();
            assert!(!entry.help, "two HELP lines for {name}");
            entry.help = true;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and kind");
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            let entry = metrics.get_mut(name).expect("HELP before TYPE");
            assert!(
                entry.kind.is_empty() && entry.samples.is_empty(),
                "TYPE after samples: {line}"
            );
            entry.kind = kind.to_string();
        } else {
            assert!(!line.starts_with('#'), "unknown comment {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.find('{') {
                Some(i) => {
                    assert!(series.ends_with('}'), "{line}");
                    (&series[..i], series[i..].to_string())
                }
                None => (series, String::new()),
            };
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad metric name {name}"
            );
            let entry = metrics
                .get_mut(name)
                .unwrap_or_else(|| panic!("sample without HELP/TYPE: {line}"));
            assert!(!entry.kind.is_empty(), "sample before TYPE: {line}");
            assert!(
                !entry.samples.iter().any(|(l, _)| *l == labels),
                "duplicate series {line}"
            );
            entry.samples.push((labels, value));
        }
    }
    metrics
}

fn value(metrics: &Metrics, name: &str, labels: &str) -> f64 {
    let metric = metrics.get(name).unwrap_or_else(|| panic!("no {name}"));
    metric
        .samples
        .iter()
        .find(|(l, _)| l == labels)
        .unwrap_or_else(|| panic!("no {name}{labels}"))
        .1
}

#[test]
fn prometheus_text_is_valid_and_complete() {
    let metrics = parse_exposition(&sample_status().to_prometheus());
    for (name, metric) in &metrics {
        assert!(name.starts_with("hot_restarter_"), "{name}");
        assert!(
            metric.help && !metric.kind.is_empty(),
            "{name} lacks HELP or TYPE"
        );
        if metric.kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name}");
        }
    }
    assert_eq!(value(&metrics, "hot_restarter_up", ""), 1.0);
    assert_eq!(
        value(&metrics, "hot_restarter_uptime_seconds", ""),
        93784.25
    );
    assert_eq!(
        value(&metrics, "hot_restarter_phase", r#"{phase="running"}"#),
        1.0
    );
    for state in ["starting", "ready", "draining"] {
        let labels = format!(r#"{{state="{state}"}}"#);
        assert_eq!(value(&metrics, "hot_restarter_children", &labels), 1.0);
    }
    assert_eq!(value(&metrics, "hot_restarter_serving_epoch", ""), 3.0);
    assert_eq!(value(&metrics, "hot_restarter_serving_generation", ""), 0.0);
    let reloads = "hot_restarter_reloads_total";
    assert_eq!(value(&metrics, reloads, r#"{result="done"}"#), 3.0);
    assert_eq!(value(&metrics, reloads, r#"{result="skipped"}"#), 1.0);
    assert_eq!(value(&metrics, reloads, r#"{result="failed"}"#), 2.0);
    let handoffs = "hot_restarter_handoffs_total";
    assert_eq!(value(&metrics, handoffs, r#"{result="done"}"#), 1.0);
    assert_eq!(value(&metrics, handoffs, r#"{result="failed"}"#), 0.0);
    assert_eq!(
        value(&metrics, "hot_restarter_last_reload_duration_seconds", ""),
        1.5
    );
    assert_eq!(value(&metrics, "hot_restarter_last_reload_epoch", ""), 4.0);
    assert_eq!(
        value(&metrics, "hot_restarter_last_reload_success", ""),
        0.0
    );
}

#[test]
fn prometheus_before_any_reload_and_with_no_ready_child() {
    let fresh = Status {
        version: String::new(),
        exe: String::new(),
        reexecs: 0,
        children: vec![child(10, 0, 0, child_state::STARTING)],
        last_reload: None,
        counters: Counters::default(),
        ..sample_status()
    };
    let metrics = parse_exposition(&fresh.to_prometheus());
    assert!(!metrics.contains_key("hot_restarter_last_reload_duration_seconds"));
    assert!(
        metrics["hot_restarter_serving_epoch"].samples.is_empty(),
        "no sample while none is ready"
    );
    assert_eq!(
        value(&metrics, "hot_restarter_children", r#"{state="ready"}"#),
        0.0
    );
    assert_eq!(
        value(
            &metrics,
            "hot_restarter_reloads_total",
            r#"{result="done"}"#
        ),
        0.0
    );
}

#[test]
fn prometheus_label_values_are_escaped() {
    let odd = Status {
        version: String::new(),
        exe: String::new(),
        reexecs: 0,
        phase: "a\"b\\c\nd".to_string(),
        children: vec![child(1, 0, 0, "weird\"state")],
        ..sample_status()
    };
    let text = odd.to_prometheus();
    assert!(
        text.contains(r#"hot_restarter_phase{phase="a\"b\\c\nd"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"hot_restarter_children{state="weird\"state"} 1"#),
        "{text}"
    );
    parse_exposition(&text);
}

#[test]
fn prometheus_down_says_up_0() {
    let metrics = parse_exposition(&Status::prometheus_down());
    assert_eq!(value(&metrics, "hot_restarter_up", ""), 0.0);
    assert_eq!(metrics.len(), 1);
}

#[test]
fn text_names_the_serving_child_every_child_and_the_last_reload() {
    let text = sample_status().to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "hot-restarter PID=4645: running, up 1d 2h 03m 04s"
    );
    assert_eq!(lines[1], "serving: epoch 3 generation 0 (PID=4700)");
    assert!(lines.contains(&"  PID=4690 epoch 2 generation 0 draining"));
    assert!(lines.contains(&"  PID=4710 epoch 4 generation 0 starting"));
    assert!(
        lines.contains(
            &"last reload: epoch 4 failed after 1.500 s: preflight for epoch 4 failed: bad \"listener\""
        ),
        "{text}"
    );
    assert_eq!(
        *lines.last().unwrap(),
        "reloads: 3 done, 1 skipped, 2 failed; handoffs: 1 done, 0 failed"
    );
}

#[test]
fn text_before_any_reload_and_without_children() {
    let empty = Status {
        version: String::new(),
        exe: String::new(),
        reexecs: 0,
        uptime_s: 5.9,
        children: vec![],
        last_reload: None,
        ..sample_status()
    };
    let text = empty.to_text();
    assert!(
        text.starts_with("hot-restarter PID=4645: running, up 5s\n"),
        "{text}"
    );
    for line in [
        "serving: no ready child",
        "children: none",
        "last reload: none",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in {text}");
    }
}

#[test]
fn serving_prefers_the_newest_generation_then_epoch() {
    let s = Status {
        version: String::new(),
        exe: String::new(),
        reexecs: 0,
        children: vec![
            child(1, 5, 0, child_state::READY),
            child(2, 0, 1, child_state::READY),
            child(3, 1, 1, child_state::STARTING),
        ],
        ..sample_status()
    };
    assert_eq!(s.serving().map(|c| c.pid), Some(2));
    let states: BTreeSet<&str> = s.children.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states.len(), 2);
}

#[test]
fn text_says_what_asked_for_the_last_reload() {
    let mut s = sample_status();
    if let Some(r) = &mut s.last_reload {
        r.trigger = Some("\"/etc/envoy/envoy.yaml\" changed".to_string());
    }
    let text = s.to_text();
    assert!(
        text.lines().any(|l| l
            == "last reload: epoch 4 failed after 1.500 s (\"/etc/envoy/envoy.yaml\" changed): \
                preflight for epoch 4 failed: bad \"listener\""),
        "{text}"
    );
    // In JSON only when there is one (older clients see nothing new).
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json["last_reload"]["trigger"],
        "\"/etc/envoy/envoy.yaml\" changed"
    );
    let json = serde_json::to_value(sample_status()).unwrap();
    assert!(json["last_reload"].get("trigger").is_none(), "{json}");
}
