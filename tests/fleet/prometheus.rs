//! examples/prometheus with the real tools: textfile.sh writes
//! `hot-restarter-ctl status --prometheus` for three wrappers (one whose
//! last reload was refused, one with no ready child, one stopped), the
//! real prometheus-node-exporter serves each file with
//! `node_textfile_scrape_error 0`, and `promtool check rules` and
//! `promtool test rules` run alerts.yml on the series it served.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::hosts::Host;
use crate::tools::{CTL, need, root, run, text, wait_bounded};

const MINUTE: Duration = Duration::from_secs(60);

/// textfile.sh, once, for `host` into `dir`.
fn write_textfile(host: &Host, dir: &Path) {
    let out = run(
        Command::new(root().join("examples/prometheus/textfile.sh"))
            .arg(dir)
            .env("HOT_RESTARTER_CONTROL_SOCKET", &host.socket)
            .env("HOT_RESTARTER_CTL", CTL),
        MINUTE,
    );
    assert!(out.status.success(), "textfile.sh: {}", text(&out));
    let names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["hot-restarter.prom"],
        "textfile.sh left other files"
    );
}

/// Run node_exporter with only the textfile collector on `dir`, scrape
/// /metrics once, stop it.
fn scrape(node_exporter: &Path, dir: &Path) -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(node_exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .arg("--collector.textfile")
        .arg(format!("--collector.textfile.directory={}", dir.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Some(body) = get(port) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "node_exporter never answered on {port}"
        );
        assert!(child.try_wait().unwrap().is_none(), "node_exporter exited");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    wait_bounded(&mut child, Duration::from_secs(10));
    body
}

/// GET /metrics over HTTP/1.0, or None while nothing listens.
fn get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    Some(body.to_string())
}

/// The samples of `metrics` whose name starts with `prefix`, as
/// (name{labels}, value).
fn samples(metrics: &str, prefix: &str) -> Vec<(String, String)> {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.to_string())
        })
        .collect()
}

/// `series` with the labels a Prometheus scrape of `instance` adds.
fn scraped(series: &str, instance: &str) -> String {
    let extra = format!("instance=\"{instance}\",job=\"node\"");
    match series.strip_suffix('}') {
        Some(open) => format!("{open},{extra}}}"),
        None => format!("{series}{{{extra}}}"),
    }
}

#[test]
#[ignore = "needs prometheus-node-exporter and promtool (Debian's prometheus); .ci/run runs it"]
fn node_exporter_serves_the_textfile_and_the_alerts_fire_on_real_series() {
    let node_exporter = need("prometheus-node-exporter", "prometheus-node-exporter (apt)");
    let promtool = need("promtool", "prometheus (apt)");
    let rules = root().join("examples/prometheus/alerts.yml");
    let check = run(
        Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(&rules),
        MINUTE,
    );
    assert!(check.status.success(), "{}", text(&check));

    // host1: one reload done, then a config the preflight refuses.
    let host1 = Host::start("host1");
    host1.reload(true);
    fs::write(&host1.config, "version: 1\nlistenrs: []\n").unwrap();
    host1.reload(false);
    // host2: its epoch never passes the ready check.
    let host2 = Host::start_with(
        "host2",
        &["--ready-check", "/bin/false", "--ready-timeout", "3600"],
        |s| s.contains("PID=") && s.contains("epoch 0"),
    );
    // host3: stopped.
    let host3 = Host::start("host3");
    host3.stop();

    let mut series = String::new();
    let mut mtimes = String::new();
    let mut files = Vec::new();
    for host in [&host1, &host2, &host3] {
        let dir = tempfile::tempdir().unwrap();
        write_textfile(host, dir.path());
        let metrics = scrape(&node_exporter, dir.path());
        let error = samples(&metrics, "node_textfile_scrape_error");
        assert_eq!(
            error,
            [("node_textfile_scrape_error".into(), "0".into())],
            "{metrics}"
        );
        let ours = samples(&metrics, "hot_restarter_");
        let up = if host.name == "host3" { "0" } else { "1" };
        assert!(
            ours.contains(&("hot_restarter_up".into(), up.into())),
            "{}: {metrics}",
            host.name
        );
        if host.name == "host1" {
            for expected in [
                ("hot_restarter_reloads_total{result=\"done\"}", "1"),
                ("hot_restarter_reloads_total{result=\"skipped\"}", "1"),
                ("hot_restarter_last_reload_success", "0"),
                ("hot_restarter_children{state=\"ready\"}", "1"),
                ("hot_restarter_handoffs_total{result=\"failed\"}", "0"),
            ] {
                let pair = (expected.0.to_string(), expected.1.to_string());
                assert!(ours.contains(&pair), "{expected:?}: {metrics}");
            }
        }
        // Constant over the test's 20 minutes, as a steady state would be.
        for (name, value) in ours {
            writeln!(
                series,
                "      - series: '{}'\n        values: '{value}x20'",
                scraped(&name, &host.name)
            )
            .unwrap();
        }
        // The file's mtime series, as node_exporter labels it; its value
        // is made 0 (written at the test's start, never again) to drive
        // the staleness alert.
        for (name, _) in samples(&metrics, "node_textfile_mtime_seconds") {
            let file = name.split('"').nth(1).unwrap().to_string();
            files.push((host.name.clone(), file));
            writeln!(
                mtimes,
                "      - series: '{}'\n        values: '0x20'",
                scraped(&name, &host.name)
            )
            .unwrap();
        }
    }
    assert!(
        series.contains("host3") && mtimes.contains("hot-restarter.prom"),
        "{series}{mtimes}"
    );

    let alert = |name: &str, host: &str, extra: &str, summary: &str| {
        format!(
            "          - exp_labels: {{severity: {sev}, instance: {host}, job: node{extra}}}\n            exp_annotations: {{summary: \"{summary}\"}}\n",
            sev = if matches!(name, "down" | "ready") {
                "critical"
            } else {
                "warning"
            },
        )
    };
    let tests = format!(
        "rule_files: ['{rules}']\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n{series}{mtimes}    alert_rule_test:\n\
         \x20     - eval_time: 5m\n        alertname: HotRestarterDown\n        exp_alerts:\n{down}\
         \x20     - eval_time: 5m\n        alertname: HotRestarterReloadFailed\n        exp_alerts:\n{reload}\
         \x20     - eval_time: 5m\n        alertname: HotRestarterNoReadyChild\n        exp_alerts:\n{ready}\
         \x20     - eval_time: 5m\n        alertname: HotRestarterHandoffFailed\n        exp_alerts: []\n\
         \x20     - eval_time: 1m\n        alertname: HotRestarterStatusStale\n        exp_alerts: []\n\
         \x20     - eval_time: 5m\n        alertname: HotRestarterStatusStale\n        exp_alerts:\n{stale}\
         {handoff}",
        rules = rules.display(),
        down = alert("down", "host3", "", "hot-restarter on host3 is not running"),
        reload = alert(
            "reload",
            "host1",
            "",
            "the last reload on host1 did not take effect (hot-restarter-ctl status says why)"
        ),
        ready = alert(
            "ready",
            "host2",
            ", state: ready",
            "hot-restarter on host2 has no ready Envoy"
        ),
        stale = files
            .iter()
            .map(|(host, file)| stale_alert(host, file))
            .collect::<String>(),
        handoff = handoff_test(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts_test.yml");
    fs::write(&file, &tests).unwrap();
    let out = run(
        Command::new(&promtool).args(["test", "rules"]).arg(&file),
        MINUTE,
    );
    assert!(
        out.status.success(),
        "promtool test rules:\n{}\n{tests}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SUCCESS"),
        "{}",
        text(&out)
    );
}

/// The staleness alert for `host` after 5 minutes without a write.
fn stale_alert(host: &str, file: &str) -> String {
    format!(
        "          - exp_labels: {{severity: warning, instance: {host}, job: node, file: '{file}'}}\n            exp_annotations: {{summary: \"hot-restarter's status on {host} is 5m 0s old\"}}\n",
    )
}

/// A second test case: host1's real handoff counter, one failed handoff
/// added at minute 2.
fn handoff_test() -> String {
    "  - interval: 1m\n    input_series:\n      - series: 'hot_restarter_handoffs_total{result=\"failed\",instance=\"host1\",job=\"node\"}'\n        values: '0 0 1 1 1 1'\n    alert_rule_test:\n      - eval_time: 4m\n        alertname: HotRestarterHandoffFailed\n        exp_alerts:\n          - exp_labels: {severity: warning, instance: host1, job: node, result: failed}\n            exp_annotations: {summary: \"a generation handoff failed on host1\"}\n".to_string()
}
