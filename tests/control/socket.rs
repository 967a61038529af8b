//! The control socket of the real wrapper (`--control-socket`), driven
//! with the real `hot-restarter-ctl` and, where the test is about the
//! wire, with raw `UnixStream`s: status in its three forms, `reload
//! --wait` done, skipped, failed and coalesced, `stop --wait`,
//! `reopen-logs` and `handoff`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use crate::support::*;
use nix::sys::signal::Signal;

use crate::harness::*;

// ----- status ----------------------------------------------------------------

/// One Prometheus text exposition, checked line by line: every family has
/// one `# HELP` and one `# TYPE` (gauge or counter) before its samples,
/// every name has the `hot_restarter_` prefix, a family's samples are
/// contiguous, and every value is a number. Returns the samples, keyed by
/// `name{labels}`.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let valid_name = |n: &str| {
        n.starts_with("hot_restarter_")
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut help = BTreeSet::new();
    let mut kind = BTreeMap::new();
    let mut finished = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut samples = BTreeMap::new();
    assert!(text.ends_with('\n'), "{text:?}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').expect("HELP without text");
            assert!(valid_name(name), "{line}");
            assert!(!doc.trim().is_empty(), "{line}");
            assert!(help.insert(name.to_string()), "second HELP: {line}");
            assert!(!kind.contains_key(name), "HELP after TYPE: {line}");
            if let Some(previous) = current.replace(name.to_string()) {
                finished.insert(previous);
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, k) = rest.split_once(' ').expect("TYPE without a type");
            assert!(help.contains(name), "TYPE before HELP: {line}");
            assert!(["gauge", "counter"].contains(&k), "{line}");
            assert!(
                kind.insert(name.to_string(), k.to_string()).is_none(),
                "second TYPE: {line}"
            );
        } else {
            assert!(!line.starts_with('#'), "unknown comment: {line}");
            let (series, value) = line.rsplit_once(' ').expect("sample without a value");
            let name = series.split('{').next().unwrap();
            assert!(valid_name(name), "{line}");
            assert!(
                kind.contains_key(name) && current.as_deref() == Some(name),
                "sample outside its family (HELP/TYPE first): {line}"
            );
            assert!(!finished.contains(name), "family split: {line}");
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("bad labels: {line}"));
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').expect("label without =");
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
            }
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            if kind[name] == "counter" {
                assert!(value >= 0.0, "negative counter: {line}");
            }
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "duplicate series: {line}"
            );
        }
    }
    assert_eq!(help.len(), kind.len(), "HELP without TYPE");
    samples
}

#[test]
fn status_in_json_text_and_prometheus_matches_the_wrapper() {
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    // The socket: the wrapper's user only.
    assert_eq!(mode_of(&socket), (true, 0o600));

    let s = status(&socket);
    assert_eq!(s["pid"], w.pid, "{s}");
    assert_eq!(s["phase"], "running", "{s}");
    let uptime = s["uptime_s"].as_f64().expect("uptime_s is a number");
    assert!((0.0..60.0).contains(&uptime), "{s}");
    assert_eq!(children(&s), [child(pid0, 0, "ready")], "{s}");
    assert!(s["last_reload"].is_null(), "before the first reload: {s}");
    assert_eq!(counters(&s), expected_counters(&[]));

    // One reload: two children, the older draining; last_reload filled in.
    let pid1 = reload_wait(&w, &socket, 1);
    let s = status(&socket);
    assert_eq!(
        children(&s),
        [child(pid0, 0, "draining"), child(pid1, 1, "ready")],
        "{s}"
    );
    let last = &s["last_reload"];
    assert_eq!(last["epoch"], 1, "{s}");
    assert_eq!(last["result"], "done", "{s}");
    assert!(last["reason"].is_null(), "{s}");
    // Asked for on the socket (`reload --wait`).
    assert_eq!(last["trigger"], "reload request", "{s}");
    let ms = last["ms"].as_u64().expect("ms is a whole number");
    assert!(ms < 20_000, "{s}");
    assert_eq!(counters(&s), expected_counters(&[("reloads_done", 1)]));

    // The same, as raw JSON on the wire.
    let reply = exchange(&socket, b"{\"v\":1,\"cmd\":\"status\"}\n");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(children(&reply["status"]), children(&s));
    assert_eq!(reply["status"]["last_reload"], s["last_reload"]);

    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"), "{s}");
    let bin = std::fs::canonicalize(env!("CARGO_BIN_EXE_hot-restarter")).unwrap();
    assert_eq!(s["exe"].as_str().unwrap(), bin.to_str().unwrap(), "{s}");
    assert_eq!(s["reexecs"], 0, "{s}");

    // Text, for a person.
    let out = ctl(&socket, &["status"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with(&format!("hot-restarter PID={}: running, up ", w.pid)),
        "{text}"
    );
    assert_eq!(
        lines[1],
        format!("serving: epoch 1 generation 0 (PID={pid1})"),
        "{text}"
    );
    assert_eq!(lines[2], "children:", "{text}");
    assert_eq!(
        lines[3],
        format!("  PID={pid0} epoch 0 generation 0 draining")
    );
    assert_eq!(lines[4], format!("  PID={pid1} epoch 1 generation 0 ready"));
    assert_eq!(
        lines[5],
        format!(
            "last reload: epoch 1 done after {:.3} s (reload request)",
            ms as f64 / 1000.0
        )
    );
    assert_eq!(
        lines[6],
        "reloads: 1 done, 0 skipped, 0 failed; handoffs: 0 done, 0 failed"
    );
    assert_eq!(
        lines[7],
        format!(
            "version: {} ({}), reexecs: 0",
            env!("CARGO_PKG_VERSION"),
            s["exe"].as_str().unwrap()
        )
    );
    assert_eq!(lines.len(), 8, "{text}");

    // Prometheus: well-formed, and the same figures as the JSON.
    let out = ctl(&socket, &["status", "--prometheus"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let samples = parse_prometheus(&stdout(&out));
    let build_info = format!(
        "hot_restarter_build_info{{version=\"{}\",exe=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        s["exe"].as_str().unwrap()
    );
    let expected: BTreeMap<&str, f64> = [
        ("hot_restarter_up", 1.0),
        (build_info.as_str(), 1.0),
        ("hot_restarter_reexecs_total", 0.0),
        ("hot_restarter_phase{phase=\"running\"}", 1.0),
        ("hot_restarter_children{state=\"starting\"}", 0.0),
        ("hot_restarter_children{state=\"ready\"}", 1.0),
        ("hot_restarter_children{state=\"draining\"}", 1.0),
        ("hot_restarter_serving_epoch", 1.0),
        ("hot_restarter_serving_generation", 0.0),
        ("hot_restarter_reloads_total{result=\"done\"}", 1.0),
        ("hot_restarter_reloads_total{result=\"skipped\"}", 0.0),
        ("hot_restarter_reloads_total{result=\"failed\"}", 0.0),
        ("hot_restarter_handoffs_total{result=\"done\"}", 0.0),
        ("hot_restarter_handoffs_total{result=\"failed\"}", 0.0),
        ("hot_restarter_last_reload_epoch", 1.0),
        ("hot_restarter_last_reload_success", 1.0),
        (
            "hot_restarter_last_reload_duration_seconds",
            ms as f64 / 1000.0,
        ),
    ]
    .into_iter()
    .collect();
    for (series, value) in &expected {
        assert_eq!(
            samples.get(*series),
            Some(value),
            "{series}; got {samples:?}"
        );
    }
    let uptime = samples["hot_restarter_uptime_seconds"];
    assert!(uptime >= s["uptime_s"].as_f64().unwrap(), "{samples:?}");
    let extra: Vec<&String> = samples
        .keys()
        .filter(|k| !expected.contains_key(k.as_str()) && *k != "hot_restarter_uptime_seconds")
        .collect();
    assert!(extra.is_empty(), "unexpected series {extra:?}");
}

// ----- reload --wait ---------------------------------------------------------

#[test]
fn reload_wait_returns_once_the_new_epoch_is_ready() {
    let (w, socket) = start(&["--ready-check", "ready.sh"], |dir| {
        script(dir, "ready.sh", GATED_READY);
    });
    let pid0 = ready(&w, 0);
    let mut reload = Ctl::spawn(&socket, &["reload", "--wait", "--timeout", "20"]);
    // Epoch 1 runs but is not ready: the reload is not done yet.
    let pid1 = w.ready_pid(1);
    let s = status(&socket);
    assert_eq!(s["phase"], "starting", "{s}");
    assert_eq!(
        children(&s),
        [child(pid0, 0, "ready"), child(pid1, 1, "starting")]
    );
    assert!(s["last_reload"].is_null(), "{s}");
    assert!(
        reload.running(),
        "reload --wait returned before epoch 1 was ready"
    );

    fs::write(w.path().join("ready-1"), "").unwrap();
    let out = reload.finish(DEADLINE);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("epoch 1 (PID={pid1}) is ready\n"));
    let s = status(&socket);
    assert_eq!(s["phase"], "running", "{s}");
    assert_eq!(
        children(&s),
        [child(pid0, 0, "draining"), child(pid1, 1, "ready")]
    );
    assert_eq!(s["last_reload"]["epoch"], 1, "{s}");
    assert_eq!(s["last_reload"]["result"], "done", "{s}");
    assert_eq!(counters(&s), expected_counters(&[("reloads_done", 1)]));
    // A reload without --wait answers at once; the restart follows.
    let out = ctl(&socket, &["reload"]);
    assert_eq!((code(&out), stdout(&out)), (0, "reload requested\n".into()));
    w.ready_pid(2);
}

#[test]
fn reload_wait_skipped_by_a_failing_preflight_reports_its_message() {
    let preflight = "#!/bin/sh\n\
        if [ -e \"$REPORT_DIR/reject\" ]; then\n\
          echo \"envoy.yaml: unknown field 'listenrs' (epoch $RESTART_EPOCH)\" >&2\n\
          exit 3\n\
        fi\n";
    let (w, socket) = start(&["--preflight", "preflight.sh"], |dir| {
        script(dir, "preflight.sh", preflight);
        fs::write(dir.join("reject"), "").unwrap();
    });
    let pid0 = up(&w);

    let out = ctl(&socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("hot-restarter-ctl: reload failed: "),
        "{err}"
    );
    assert!(err.contains("restart to epoch 1 skipped"), "{err}");
    // The preflight's own words, and how it ended.
    assert!(
        err.contains("envoy.yaml: unknown field 'listenrs' (epoch 1)"),
        "{err}"
    );
    assert!(err.contains("exited with code=3"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // The serving epoch is untouched: same pid, no signal, no epoch 1.
    let s = status(&socket);
    assert_eq!(children(&s), [child(pid0, 0, "ready")], "{s}");
    assert!(running(pid0));
    assert_eq!(w.report(0).count("term"), 0);
    assert!(!w.path().join("epoch-1").exists());
    let last = &s["last_reload"];
    assert_eq!(last["epoch"], 1, "{s}");
    assert_eq!(last["result"], "skipped", "{s}");
    let reason = last["reason"].as_str().expect("a reason");
    assert!(
        reason.contains("envoy.yaml: unknown field 'listenrs'"),
        "{s}"
    );
    assert!(
        err.contains(reason),
        "ctl said {err:?}, status says {reason:?}"
    );
    assert_eq!(counters(&s), expected_counters(&[("reloads_skipped", 1)]));
    let out = ctl(&socket, &["status", "--prometheus"]);
    let samples = parse_prometheus(&stdout(&out));
    assert_eq!(samples["hot_restarter_last_reload_success"], 0.0);
    assert_eq!(
        samples["hot_restarter_reloads_total{result=\"skipped\"}"],
        1.0
    );

    // Fixed: the next reload takes the epoch number the skip left free.
    fs::remove_file(w.path().join("reject")).unwrap();
    reload_wait(&w, &socket, 1);
    let s = status(&socket);
    assert_eq!(
        counters(&s),
        expected_counters(&[("reloads_done", 1), ("reloads_skipped", 1)])
    );
    assert_eq!(s["last_reload"]["result"], "done", "{s}");
    assert!(s["last_reload"]["reason"].is_null(), "{s}");
}

#[test]
fn reload_wait_that_is_not_ready_in_time_fails_and_keeps_serving() {
    let never_ready = "#!/bin/sh\n[ \"$RESTART_EPOCH\" = 0 ]\n";
    let (w, socket) = start(
        &[
            "--ready-check",
            "ready.sh",
            "--ready-timeout",
            "0.5",
            "--keep-serving",
        ],
        |dir| {
            script(dir, "ready.sh", never_ready);
        },
    );
    let pid0 = ready(&w, 0);
    let out = ctl(&socket, &["reload", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("hot-restarter-ctl: reload failed: ")
            && err.contains("restart to epoch 1 failed because it was not ready in time"),
        "{err}"
    );
    let pid1 = w.pid_of(1);
    w.wait_gone(pid1);
    let s = status(&socket);
    assert_eq!(s["phase"], "running", "{s}");
    assert_eq!(children(&s), [child(pid0, 0, "ready")], "{s}");
    assert_eq!(s["last_reload"]["result"], "failed", "{s}");
    assert_eq!(s["last_reload"]["epoch"], 1, "{s}");
    assert!(
        s["last_reload"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not ready in time")),
        "{s}"
    );
    assert_eq!(counters(&s), expected_counters(&[("reloads_failed", 1)]));
    assert!(running(pid0));
    assert_eq!(w.report(0).count("term"), 0);
}

#[test]
fn concurrent_reload_waits_coalesce_into_two_restarts_and_each_gets_its_answer() {
    const CALLS: usize = 6;
    let (w, socket) = start(&["--ready-check", "ready.sh"], |dir| {
        script(dir, "ready.sh", GATED_READY);
    });
    ready(&w, 0);
    let mut calls: Vec<Ctl> = (0..CALLS)
        .map(|_| Ctl::spawn(&socket, &["reload", "--wait", "--timeout", "20"]))
        .collect();
    // Every request has reached the wrapper while epoch 1 is not ready:
    // the first started epoch 1, the others wait in one held restart.
    w.wait_for_count(&logged_request(RELOAD_WAIT), CALLS);
    let pid1 = w.ready_pid(1);
    assert_eq!(
        w.messages_starting("holding SIGHUP until ").len(),
        1,
        "{}",
        w.output()
    );
    assert_eq!(
        w.messages_starting("coalescing SIGHUP into the held restart")
            .len(),
        CALLS - 2,
        "{}",
        w.output()
    );
    assert_eq!(unanswered(&mut calls), CALLS, "an answer came early");

    // Epoch 1 ready: the first caller is answered, the held restart starts
    // epoch 2 for the rest.
    fs::write(w.path().join("ready-1"), "").unwrap();
    let pid2 = w.ready_pid(2);
    let s = status(&socket);
    assert_eq!(s["last_reload"]["epoch"], 1, "{s}");
    assert_eq!(children(&s)[2], child(pid2, 2, "starting"), "{s}");
    // The first caller is answered; the others wait for epoch 2.
    assert!(
        wait_until(DEADLINE, || unanswered(&mut calls) < CALLS),
        "the first caller got no answer"
    );
    assert_eq!(
        unanswered(&mut calls),
        CALLS - 1,
        "callers of the held restart were answered before it was done"
    );
    fs::write(w.path().join("ready-2"), "").unwrap();
    let mut details = Vec::new();
    for call in calls {
        let out = call.finish(DEADLINE);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        details.push(stdout(&out));
    }
    let first = format!("epoch 1 (PID={pid1}) is ready\n");
    let held = format!("epoch 2 (PID={pid2}) is ready\n");
    assert_eq!(
        details.iter().filter(|d| **d == first).count(),
        1,
        "{details:?}"
    );
    assert_eq!(
        details.iter().filter(|d| **d == held).count(),
        CALLS - 1,
        "{details:?}"
    );
    // Two restarts for six requests.
    w.wait_for_text(&format!("epoch 2 (PID={pid2}) is ready after"));
    assert_eq!(w.with_lines(started_epochs), [0, 1, 2]);
    let s = status(&socket);
    assert_eq!(counters(&s), expected_counters(&[("reloads_done", 2)]));
    assert!(!w.path().join("epoch-3").exists());
}

// ----- stop, reopen-logs, handoff, not running ---------------------------

#[test]
fn stop_wait_returns_once_the_wrapper_has_exited_and_cleaned_up() {
    let (mut w, socket) = start(&["--pid-file", "w.pid"], |_| {});
    let pids = w.start_epochs(1);
    let pid_file = w.path().join("w.pid");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", w.pid)
    );

    let out = ctl(&socket, &["stop", "--wait", "--timeout", "20"]);
    // What stands when ctl returns: every child reaped, both files gone.
    let socket_left = socket.exists();
    let pid_file_left = pid_file.exists();
    let children_left: Vec<i32> = pids.iter().copied().filter(|p| exists(*p)).collect();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "hot-restarter exited with code 0\n");
    assert!(!socket_left, "the socket file outlived stop --wait");
    assert!(!pid_file_left, "the pid file outlived stop --wait");
    assert!(children_left.is_empty(), "not reaped: {children_left:?}");
    // The reply is the wrapper's last act: its exit follows at once.
    assert!(
        wait_until(Duration::from_secs(2), || !running(w.pid)),
        "the wrapper still runs after answering stop --wait"
    );
    assert_eq!(w.exit_code(), 0);
    w.assert_logged("INFO", "all children exited cleanly");

    // Nothing runs now.
    let out = ctl(&socket, &["status"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
}

#[test]
fn stop_wait_is_answered_only_after_the_pid_file_is_removed() {
    // The wrapper reads its pid file before removing it (it removes it
    // only if it still holds its pid). With a FIFO put in its place, that
    // read blocks until the test writes: a moment, held open, between the
    // wrapper's cleanup and its exit. No answer may have come by then.
    let (mut w, socket) = start(&["--pid-file", "w.pid"], |_| {});
    up(&w);
    let pid_file = w.path().join("w.pid");
    let fifo = w.path().join("w.pid.fifo");
    make_fifo(&fifo);
    fs::rename(&fifo, &pid_file).unwrap();

    let mut stop = connect(&socket);
    stop.write_all(b"{\"v\":1,\"cmd\":\"stop\",\"wait\":true}\n")
        .unwrap();
    let blocked = || {
        let wchan = fs::read_to_string(format!("/proc/{}/wchan", w.pid)).unwrap_or_default();
        wchan.contains("wait_for_partner") || wchan.contains("fifo")
    };
    assert!(
        wait_until(DEADLINE, blocked),
        "the wrapper never read its pid file; output:\n{}",
        w.output()
    );
    stop.set_nonblocking(true).unwrap();
    let mut early = [0u8; 256];
    let got = stop.read(&mut early);
    assert!(
        matches!(&got, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "stop --wait was answered before the pid file was removed: {:?}",
        got.map(|n| String::from_utf8_lossy(&early[..n]).into_owned())
    );
    stop.set_nonblocking(false).unwrap();

    // Let it read its own pid: it removes the file, then answers.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut writer = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&pid_file)
            .unwrap();
        writer.write_all(format!("{}\n", w.pid).as_bytes()).unwrap();
    }
    let reply = read_reply(&stop);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["detail"], "hot-restarter exited with code 0");
    assert!(!pid_file.exists(), "the pid file outlived the answer");
    assert!(!socket.exists(), "the socket outlived the answer");
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn stop_wait_says_when_children_had_to_be_killed() {
    let (mut w, socket) = start_env(&["--term-wait", "4"], &[("IGNORE_TERM", "1")], |_| {});
    let pid0 = up(&w);
    // stop without --wait answers at once; the wrapper is shutting down.
    let out = ctl(&socket, &["stop"]);
    assert_eq!((code(&out), stdout(&out)), (0, "stopping\n".into()));
    w.wait_report_event(0, "term", 1);
    let s = status(&socket);
    assert_eq!(s["phase"], "shutting-down", "{s}");
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    // Nothing else is acted on meanwhile.
    for (args, reason) in [
        (&["reload", "--wait"][..], "the wrapper is shutting down"),
        (&["reload"][..], "the wrapper is shutting down"),
        (&["reopen-logs"][..], "the wrapper is shutting down"),
    ] {
        let out = ctl(&socket, args);
        assert_eq!(code(&out), 1, "{args:?}");
        assert!(stderr(&out).contains(reason), "{args:?}: {}", stderr(&out));
    }
    let out = ctl(&socket, &["stop", "--wait", "--timeout", "20"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "hot-restarter-ctl: stop failed: hot-restarter exited with code 1\n"
    );
    assert_eq!(w.exit_code(), 1);
    assert!(!exists(pid0));
    assert!(!w.path().join("epoch-1").exists());
}

#[test]
fn reopen_logs_reaches_every_child() {
    let (w, socket) = start(&[], |_| {});
    w.start_epochs(1);
    let out = ctl(&socket, &["reopen-logs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "SIGUSR1 sent to 2 children\n");
    w.wait_report_event(0, "usr1", 1);
    w.wait_report_event(1, "usr1", 1);
    assert_eq!(w.report(0).count("term"), 0);
}

#[test]
fn handoff_without_generations_is_refused_with_the_reason() {
    let (w, socket) = start(&[], |_| {});
    let pid0 = up(&w);
    for args in [&["handoff"][..], &["handoff", "--wait", "--timeout", "20"]] {
        let out = ctl(&socket, args);
        assert_eq!(code(&out), 1, "{args:?}");
        assert_eq!(
            stderr(&out),
            "hot-restarter-ctl: handoff failed: handoff needs --envoy-admin and --handoff-admin\n"
        );
    }
    let s = status(&socket);
    assert_eq!(children(&s), [child(pid0, 0, "ready")]);
    assert!(s["last_reload"].is_null());
}

#[test]
fn nothing_running_is_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let check = |what: &str| {
        for args in [&["status"][..], &["reload", "--wait"], &["stop", "--wait"]] {
            let out = ctl(&socket, args);
            assert_eq!(code(&out), 3, "{what} {args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains("hot-restarter is not running"),
                "{}",
                stderr(&out)
            );
        }
        let out = ctl(&socket, &["status", "--prometheus"]);
        assert_eq!(code(&out), 3);
        let samples = parse_prometheus(&stdout(&out));
        assert_eq!(
            samples.into_iter().collect::<Vec<_>>(),
            [("hot_restarter_up".to_string(), 0.0)]
        );
    };
    check("no file");
    // A wrapper that has been and gone.
    let (mut w, socket2) = start(&[], |_| {});
    up(&w);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    assert!(!socket2.exists(), "the socket file outlived the wrapper");
    let out = ctl(&socket2, &["status"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // A stale socket file nothing listens on.
    drop(UnixListener::bind(&socket).unwrap());
    check("stale file");
}
