//! Log output: the Python wrapper's line shape, local time, RUST_LOG, lines
//! written at once, and every message hot-restarter.py writes, word for word, at
//! its level, in the situation that produces it.

use std::time::Duration;

use crate::support::*;
use nix::sys::signal::Signal;

/// The messages hot-restarter.py writes: (level, message template).
const PYTHON_MESSAGES: &[(&str, &str)] = &[
    ("INFO", "starting hot-restarter with target: {script}"),
    ("INFO", "forking and execing new child process at epoch {n}"),
    ("INFO", "forked new child process with PID={pid}"),
    ("INFO", "got SIGHUP"),
    ("WARNING", "got SIGTERM"),
    ("WARNING", "got SIGINT"),
    ("INFO", "got SIGCHLD"),
    ("INFO", "sending SIGUSR1 to PID={pid}"),
    ("ERROR", "error in SIGUSR1 to PID={pid} continuing"),
    ("INFO", "sending TERM to PID={pid}"),
    ("ERROR", "error sending TERM to PID={pid} continuing"),
    ("INFO", "all children exited cleanly"),
    ("INFO", "child PID={pid} did not exit cleanly, killing"),
    ("WARNING", "force killing PID={pid}"),
    ("ERROR", "error force killing PID={pid} continuing"),
    ("INFO", "PID={pid} exited with code=0"),
    ("WARNING", "PID={pid} exited with code={code}"),
    ("WARNING", "PID={pid} was killed with signal={sig}"),
    (
        "WARNING",
        "Due to abnormal exit, force killing all child processes and exiting",
    ),
    ("WARNING", "exiting due to lack of child processes"),
];

/// The messages a black-box test cannot provoke: `kill` on a child that
/// has not been reaped yet cannot fail (it is our child, so never EPERM;
/// unreaped, so never ESRCH). They are checked in the source instead.
const UNREACHABLE: &[&str] = &[
    "error in SIGUSR1 to PID={pid} continuing",
    "error sending TERM to PID={pid} continuing",
    "error force killing PID={pid} continuing",
];

/// Does `message` fit `template`? `{pid}`, `{n}`, `{sig}` are numbers,
/// `{code}` a non-zero number (code 0 has its own line), `{script}` any
/// text.
fn fits(template: &str, message: &str) -> bool {
    match template.find('{') {
        None => template == message,
        Some(open) => {
            let close = open + template[open..].find('}').unwrap();
            let (head, name, tail) = (
                &template[..open],
                &template[open + 1..close],
                &template[close + 1..],
            );
            let Some(rest) = message.strip_prefix(head) else {
                return false;
            };
            (1..=rest.len()).any(|n| {
                let (value, after) = rest.split_at(n);
                let ok = match name {
                    "script" => true,
                    "code" => value.bytes().all(|b| b.is_ascii_digit()) && value != "0",
                    _ => value.bytes().all(|b| b.is_ascii_digit()),
                };
                ok && fits(tail, after)
            })
        }
    }
}

/// Every stdout line has the Python wrapper's shape, with the wrapper's pid.
fn assert_shape(w: &Wrapper) {
    let lines = w.log_lines();
    assert!(!lines.is_empty(), "no log at all");
    for line in &lines {
        if let Err(e) = check_log_line(line, w.pid) {
            panic!("bad log line {line:?}: {e}\noutput:\n{}", w.output());
        }
    }
}

/// Every line that fits a template of PYTHON_MESSAGES is logged at that template's level.
fn assert_spec_levels(w: &Wrapper) {
    for line in w.log_lines() {
        let message = message_of(&line);
        for (level, template) in PYTHON_MESSAGES {
            if fits(template, message) {
                assert_eq!(level_of(&line), *level, "wrong level: {line}");
            }
        }
    }
}

/// Check a finished scenario: shape, levels, and the exact lines expected.
fn assert_messages(w: &Wrapper, expected: &[(&str, String)]) {
    assert_shape(w);
    assert_spec_levels(w);
    for (level, message) in expected {
        w.assert_logged(level, message);
    }
}

type Scenario = (Wrapper, Vec<(&'static str, String)>);

/// Start, restart, reopen logs, an old epoch drains, then SIGTERM.
fn lifecycle(rust_log: Option<&str>) -> Scenario {
    let mut w = Wrapper::start_with(&[], REPORTER, |cmd| {
        if let Some(level) = rust_log {
            cmd.env("RUST_LOG", level);
        }
    });
    let pids = w.start_epochs(1);
    w.signal(Signal::SIGUSR1);
    w.wait_report_event(1, "usr1", 1);
    w.wait_report_event(0, "usr1", 1);
    signal_pid(pids[0], Signal::SIGTERM);
    w.wait_for(&format!("PID={} exited with code=0", pids[0]));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    let (e0, e1) = (pids[0], pids[1]);
    let expected = vec![
        (
            "INFO",
            "starting hot-restarter with target: start.sh".to_string(),
        ),
        (
            "INFO",
            "forking and execing new child process at epoch 0".to_string(),
        ),
        ("INFO", format!("forked new child process with PID={e0}")),
        ("INFO", "got SIGHUP".to_string()),
        (
            "INFO",
            "forking and execing new child process at epoch 1".to_string(),
        ),
        ("INFO", format!("forked new child process with PID={e1}")),
        ("INFO", format!("sending SIGUSR1 to PID={e0}")),
        ("INFO", format!("sending SIGUSR1 to PID={e1}")),
        ("INFO", "got SIGCHLD".to_string()),
        ("INFO", format!("PID={e0} exited with code=0")),
        ("WARNING", "got SIGTERM".to_string()),
        ("INFO", format!("sending TERM to PID={e1}")),
        ("INFO", "all children exited cleanly".to_string()),
    ];
    (w, expected)
}

fn sigint() -> Scenario {
    let mut w = Wrapper::start(&[]);
    let pid = w.first_child();
    w.signal(Signal::SIGINT);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    let expected = vec![
        ("WARNING", "got SIGINT".to_string()),
        ("INFO", format!("sending TERM to PID={pid}")),
        ("INFO", "all children exited cleanly".to_string()),
    ];
    (w, expected)
}

fn forced_shutdown() -> Scenario {
    let mut w = Wrapper::start_env(&["--term-wait", "0.3"], &[("IGNORE_TERM", "1")]);
    let pid = w.first_child();
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    let expected = vec![
        ("WARNING", "got SIGTERM".to_string()),
        (
            "INFO",
            format!("child PID={pid} did not exit cleanly, killing"),
        ),
        ("WARNING", format!("force killing PID={pid}")),
    ];
    (w, expected)
}

fn crash() -> Scenario {
    let mut w = Wrapper::start_env(&[], &[("FAIL_EPOCH", "1")]);
    let e0 = w.first_child();
    w.signal(Signal::SIGHUP);
    let e1 = w.pid_of(1);
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    let expected = vec![
        ("INFO", "got SIGCHLD".to_string()),
        ("WARNING", format!("PID={e1} exited with code=3")),
        (
            "WARNING",
            "Due to abnormal exit, force killing all child processes and exiting".to_string(),
        ),
        ("WARNING", format!("force killing PID={e0}")),
    ];
    (w, expected)
}

fn killed_by_signal() -> Scenario {
    let mut w = Wrapper::start(&[]);
    let pids = w.start_epochs(1);
    signal_pid(pids[1], Signal::SIGKILL);
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    let expected = vec![
        (
            "WARNING",
            format!("PID={} was killed with signal=9", pids[1]),
        ),
        (
            "WARNING",
            "Due to abnormal exit, force killing all child processes and exiting".to_string(),
        ),
        ("WARNING", format!("force killing PID={}", pids[0])),
    ];
    (w, expected)
}

fn no_child_left() -> Scenario {
    let mut w = Wrapper::start_env(&[], &[("EXIT_AT_START", "0")]);
    let pid = w.pid_of(0);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    let expected = vec![
        ("INFO", format!("PID={pid} exited with code=0")),
        (
            "WARNING",
            "exiting due to lack of child processes".to_string(),
        ),
    ];
    (w, expected)
}

/// One test per situation: its messages, in order, at their levels.
macro_rules! situation_tests {
    ($($test:ident: $situation:expr;)*) => {$(
        #[test]
        fn $test() {
            let (w, expected) = $situation;
            assert_messages(&w, &expected);
        }
    )*};
}

situation_tests! {
    start_restart_usr1_drain_and_stop_messages: lifecycle(None);
    sigint_messages: sigint();
    forced_shutdown_messages: forced_shutdown();
    crash_messages: crash();
    signal_death_messages: killed_by_signal();
    last_child_exit_messages: no_child_left();
}

#[test]
fn every_spec_message_is_produced_by_some_situation() {
    let scenarios = [
        lifecycle(None),
        sigint(),
        forced_shutdown(),
        crash(),
        killed_by_signal(),
        no_child_left(),
    ];
    for (level, template) in PYTHON_MESSAGES {
        if UNREACHABLE.contains(template) {
            continue;
        }
        let seen = scenarios.iter().any(|(w, _)| {
            w.log_lines()
                .iter()
                .any(|l| level_of(l) == *level && fits(template, message_of(l)))
        });
        assert!(seen, "no scenario logged [{level}] {template:?}");
    }
}

#[test]
fn the_template_matcher_tells_messages_apart() {
    assert!(fits(
        "PID={pid} exited with code={code}",
        "PID=12 exited with code=3"
    ));
    assert!(!fits(
        "PID={pid} exited with code={code}",
        "PID=12 exited with code=0"
    ));
    assert!(fits(
        "PID={pid} exited with code=0",
        "PID=12 exited with code=0"
    ));
    assert!(!fits("force killing PID={pid}", "force killing PID=12 now"));
    assert!(!fits("force killing PID={pid}", "force killing PID="));
    assert!(fits(
        "starting hot-restarter with target: {script}",
        "starting hot-restarter with target: ./a b.sh"
    ));
}

#[test]
fn messages_that_need_a_failing_kill_are_kept_word_for_word_in_the_source() {
    fn read_tree(dir: &std::path::Path, text: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_dir() {
                read_tree(&entry.path(), text);
            } else {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut text = String::new();
    read_tree(&src, &mut text);
    // The same words with `{}` or `{name}` for the pid, as the argument of
    // an error-level log macro.
    for template in UNREACHABLE {
        let (head, tail) = template.split_once("{pid}").unwrap();
        let found = text.match_indices(&format!("\"{head}{{")).any(|(at, _)| {
            let after = &text[at + head.len() + 1..];
            let close = after.find('}').unwrap_or(0);
            let before = &text[at.saturating_sub(40)..at];
            after[close + 1..].starts_with(&format!("{tail}\"")) && before.contains("error!(")
        });
        assert!(found, "no error!(\"{template}\") in src/");
    }
}

#[test]
fn every_line_has_the_python_shape_at_every_level() {
    let (w, _) = lifecycle(Some("debug"));
    assert_shape(&w);
    let levels: Vec<String> = w
        .log_lines()
        .iter()
        .map(|l| level_of(l).to_string())
        .collect();
    for level in ["INFO", "WARNING"] {
        assert!(levels.iter().any(|l| l == level), "no {level} line");
    }
    // An ERROR line too: a start that fails.
    let mut w = start_in(|_| {}, &["missing.sh"], |_| {});
    assert_eq!(w.exit_code(), 1);
    assert_shape(&w);
    assert!(w.log_lines().iter().any(|l| level_of(l) == "ERROR"));
}

#[test]
fn timestamps_are_local_time_with_milliseconds() {
    // A zone 5:30 east of UTC, so that UTC passed off as local time shows.
    let mut w = Wrapper::start_env(&[], &[("TZ", "<+0530>-05:30")]);
    let line = w.wait_for_text("forked new child process with PID=");
    let expected = chrono::Utc::now().naive_utc() + chrono::Duration::minutes(330);
    let logged = chrono::NaiveDateTime::parse_from_str(&line[1..24], "%Y-%m-%d %H:%M:%S%.3f")
        .unwrap_or_else(|e| panic!("bad timestamp in {line}: {e}"));
    let off = (logged - expected).num_milliseconds().abs();
    assert!(
        off < 10_000,
        "logged {logged}, local time is {expected}: {line}"
    );
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn rust_log_warn_hides_info_lines() {
    let mut w = Wrapper::start_env(&[], &[("RUST_LOG", "warn")]);
    w.report(0);
    w.signal(Signal::SIGHUP);
    w.report(1);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    w.assert_logged("WARNING", "got SIGTERM");
    assert_shape(&w);
    let shown: Vec<String> = w
        .log_lines()
        .into_iter()
        .filter(|l| matches!(level_of(l), "INFO" | "DEBUG"))
        .collect();
    assert!(shown.is_empty(), "RUST_LOG=warn shows {shown:?}");
}

#[test]
fn lines_are_written_at_once_into_a_pipe() {
    // stdout is a pipe here: a buffered logger would hold these lines until
    // the wrapper exits, and the waits below would time out.
    let mut w = Wrapper::start(&[]);
    let line = w.wait_for_text("forked new child process with PID=");
    assert!(w.is_running(), "the wrapper had exited: {line}");
    w.signal(Signal::SIGHUP);
    let pid = w.ready_pid(1);
    w.wait_for("got SIGHUP");
    w.wait_for(&format!("forked new child process with PID={pid}"));
    assert!(w.is_running());
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn the_shape_check_rejects_near_misses() {
    let good = "[2026-11-25 03:09:35.536][4645][INFO][core] [src/main.rs:42] forking";
    assert_eq!(check_log_line(good, 4645), Ok(()));
    for bad in [
        "[2026-11-25 03:09:35.536][4646][INFO][core] [src/main.rs:42] wrong pid",
        "[2026-11-25 03:09:35.536][4645][WARN][core] [src/main.rs:42] rust level name",
        "[2026-11-25 03:09:35][4645][INFO][core] [src/main.rs:42] no milliseconds",
        "[2026-11-25T03:09:35.536][4645][INFO][core] [src/main.rs:42] iso T",
        "[2026-11-25 03:09:35.536][4645][INFO][main] [src/main.rs:42] logger name",
        "[2026-11-25 03:09:35.536][4645][INFO][core] [main.rs:42] no src/",
        "[2026-11-25 03:09:35.536][4645][INFO][core] [src/Main.rs:42] capital",
        "[2026-11-25 03:09:35.536][4645][INFO][core] [src/main.rs:] no line",
        "[2026-11-25 03:09:35.536][4645][INFO][core] [src/main.rs:42]no space",
        "forking and execing new child process at epoch 0",
    ] {
        assert!(check_log_line(bad, 4645).is_err(), "accepted {bad:?}");
    }
}
