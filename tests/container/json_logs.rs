//! `--log-format json` / `HOT_RESTARTER_LOG_FORMAT=json`: every line the
//! wrapper writes is one JSON object with pilot-agent's keys, on every
//! path: a run with a SIGHUP restart and a teardown, refused command lines,
//! a refused configuration, a start script that cannot start.

use nix::sys::signal::Signal;
use serde_json::Value;

use super::harness::{BIN, Wrapper};

/// Parse one line and check its keys and their shapes; returns the object.
fn parse(line: &str, pid: i32) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["caller", "level", "msg", "pid", "scope", "time"],
        "{line}"
    );
    assert!(
        ["debug", "info", "warn", "error"].contains(&v["level"].as_str().unwrap()),
        "{line}"
    );
    assert_eq!(v["scope"], "hot-restarter", "{line}");
    assert_eq!(v["pid"], pid, "{line}");
    let caller = v["caller"].as_str().unwrap();
    let (file, at) = caller.rsplit_once(':').unwrap();
    assert!(file.starts_with("src/") && file.ends_with(".rs"), "{line}");
    assert!(at.parse::<u32>().is_ok_and(|n| n > 0), "{line}");
    // 2026-12-04T18:49:32.891123Z
    let time = v["time"].as_str().unwrap();
    let shape = time.len() == 27
        && time.ends_with('Z')
        && time.as_bytes()[10] == b'T'
        && time.as_bytes()[19] == b'.'
        && time[20..26].bytes().all(|b| b.is_ascii_digit());
    assert!(shape, "not RFC 3339 UTC with microseconds: {line}");
    v
}

fn messages(lines: &[String], pid: i32) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| {
            let v = parse(l, pid);
            (
                v["level"].as_str().unwrap().to_string(),
                v["msg"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_run_with_a_restart_and_a_teardown_logs_only_json() {
    let mut w = Wrapper::start(BIN, &["--log-format", "json", "start.sh"], &[]);
    w.epoch_pid(0);
    w.signal(Signal::SIGHUP);
    let epoch1 = w.epoch_pid(1);
    // A failed child without --keep-serving: the teardown.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(epoch1), Signal::SIGKILL).unwrap();
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    assert_eq!(w.stderr(), Vec::<String>::new(), "{}", w.output());
    let got = messages(&w.stdout(), w.pid);
    let first = &got[0];
    assert_eq!(first.0, "info");
    assert!(
        first
            .1
            .starts_with("starting hot-restarter with target: start.sh"),
        "{first:?}"
    );
    for (level, msg) in [
        ("info", "forking and execing new child process at epoch 1"),
        ("info", "got SIGHUP"),
        ("warn", "was killed with signal=9"),
        (
            "warn",
            "Due to abnormal exit, force killing all child processes and exiting",
        ),
    ] {
        assert!(
            got.iter().any(|(l, m)| l == level && m.contains(msg)),
            "no {level} line with {msg:?}; {}",
            w.output()
        );
    }
}

#[test]
fn the_variable_chooses_json_and_the_flag_wins_over_it() {
    let mut w = Wrapper::start(BIN, &["start.sh"], &[("HOT_RESTARTER_LOG_FORMAT", "json")]);
    w.epoch_pid(0);
    w.signal(Signal::SIGTERM);
    w.touch("may-exit");
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    let got = messages(&w.stdout(), w.pid);
    assert!(
        got.iter().any(|(_, m)| m == "all children exited cleanly"),
        "{got:?}"
    );

    // The default and `--log-format text` keep the Python wrapper's line.
    let args = ["--log-format", "text", "start.sh"];
    let mut w = Wrapper::start(BIN, &args, &[("HOT_RESTARTER_LOG_FORMAT", "json")]);
    let line = w.wait_for("starting hot-restarter with target: start.sh");
    let head = format!("][{}][INFO][core] [src/main.rs:", w.pid);
    assert!(line.starts_with("[20") && line.contains(&head), "{line}");
    w.signal(Signal::SIGTERM);
    w.touch("may-exit");
    assert_eq!(w.exit_code(), 0, "{}", w.output());
}

/// A refused command line: exit 2 and one JSON error line on stderr.
fn refused(args: &[&str], env: &[(&str, &str)], says: &str) {
    let mut w = Wrapper::start(BIN, args, env);
    assert_eq!(w.exit_code(), 2, "{args:?}: {}", w.output());
    assert_eq!(w.stdout(), Vec::<String>::new(), "{args:?}: {}", w.output());
    let got = messages(&w.stderr(), w.pid);
    assert_eq!(got.len(), 1, "{args:?}: {}", w.output());
    assert_eq!(got[0].0, "error");
    assert!(got[0].1.contains(says), "{args:?}: {got:?}");
}

#[test]
fn usage_errors_are_json_lines_when_json_is_chosen_before_the_script() {
    refused(
        &["--log-format", "json", "--bogus", "start.sh"],
        &[],
        "'--bogus'",
    );
    refused(
        &["--term-wait", "x", "--log-format=json", "start.sh"],
        &[],
        "'x'",
    );
    let json = [("HOT_RESTARTER_LOG_FORMAT", "json")];
    refused(&["--bogus", "start.sh"], &json, "'--bogus'");
    refused(&[], &json, "required");
    // Read from the environment: the line names the variable.
    let env = [json[0], ("HOT_RESTARTER_TERM_WAIT", "soon")];
    refused(&["start.sh"], &env, "HOT_RESTARTER_TERM_WAIT");
    // After the validation by clap: a configuration the wrapper refuses.
    let missing = [
        "--log-format",
        "json",
        "--preflight",
        "/nonexistent/check",
        "start.sh",
    ];
    let mut w = Wrapper::start(BIN, &missing, &[]);
    assert_eq!(w.exit_code(), 2, "{}", w.output());
    let got = messages(&w.stdout(), w.pid);
    assert!(
        got.iter().any(|(l, m)| l == "error"
            && m.contains("/nonexistent/check")
            && m.contains("os error 2")),
        "{}",
        w.output()
    );
}

#[test]
fn a_log_format_after_the_script_belongs_to_the_script() {
    // `--log-format json` after the script is the script's: the wrapper
    // stays text, also for its usage error.
    let mut w = Wrapper::start(BIN, &["--bogus", "start.sh", "--log-format", "json"], &[]);
    assert_eq!(w.exit_code(), 2, "{}", w.output());
    let err = w.stderr().join("\n");
    assert!(
        err.starts_with("hot-restarter: unexpected argument '--bogus'"),
        "{err}"
    );
    // An option's value is not taken for the script, and a switch takes
    // no value.
    for before in [
        &["--pid-file", "p"][..],
        &["--keep-serving"],
        &["--hold-while-draining"],
    ] {
        let args = [before, &["--log-format", "json", "--bogus", "start.sh"]].concat();
        refused(&args, &[], "'--bogus'");
    }
}

#[test]
fn a_start_script_that_cannot_start_is_reported_in_json() {
    let mut w = Wrapper::start(BIN, &["--log-format", "json", "./missing.sh"], &[]);
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    let got = messages(&w.stdout(), w.pid);
    assert!(
        got.iter()
            .any(|(l, m)| l == "error" && m.contains("missing.sh")),
        "{}",
        w.output()
    );
    let stderr = w.stderr();
    for line in &stderr {
        parse(line, w.pid);
    }
}
