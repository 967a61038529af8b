//! Every option has an environment variable with the same effect
//! (HOT_RESTARTER_TERM_WAIT for --term-wait, ...), a flag on the command
//! line wins over its variable, and `--help` names every variable. Each
//! behaviour is checked twice, once through the flag and once through the
//! variable, with everything else the same.


use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy)]
enum Via {
    Flag,
    Env,
}

/// Set one option on `cmd`: `--flag value` or `HOT_RESTARTER_X=value`. A
/// boolean flag (`value` None) is set in the environment as `true`.
fn set(cmd: &mut Command, via: Via, flag: &str, value: Option<&str>) {
    match via {
        Via::Flag => {
            cmd.arg(format!("--{flag}"));
            if let Some(v) = value {
                cmd.arg(v);
            }
        }
        Via::Env => {
            cmd.env(env_name(flag), value.unwrap_or("true"));
        }
    }
}

/// `term-wait` -> `HOT_RESTARTER_TERM_WAIT`.
fn env_name(flag: &str) -> String {
    format!("HOT_RESTARTER_{}", flag.replace('-', "_").to_uppercase())
}

/// The test's own HOT_RESTARTER_* variables must not leak into a run.
fn clean(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOT_RESTARTER_") {
            cmd.env_remove(key);
        }
    }
}

/// The wrapper on `body` (start.sh), with one option set `via`, and
/// `extra` flags given before the script.
fn start(
    via: Via,
    flag: &str,
    value: Option<&str>,
    extra: &[&str],
    body: &str,
    env: &[(&str, &str)],
) -> Wrapper {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", body);
    let mut cmd = command(dir.path());
    clean(&mut cmd);
    set(&mut cmd, via, flag, value);
    cmd.args(extra).arg("start.sh");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Wrapper::spawn(dir, cmd)
}

/// A helper script at an absolute path (preflight, ready check).
fn helper(dir: &Path, name: &str, body: &str) -> String {
    script(dir, name, body).to_string_lossy().into_owned()
}

// ----- --term-wait ------------------------------------------------------------

fn term_wait(via: Via) {
    let mut w = start(
        via,
        "term-wait",
        Some("0.5"),
        &[],
        REPORTER,
        &[("IGNORE_TERM", "1")],
    );
    let pid = w.report(0).pid().unwrap();
    let asked = Instant::now();
    w.signal(Signal::SIGTERM);
    // Far below the default 30 s.
    let status = w.wait_exit(Duration::from_secs(10));
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(1), "output:\n{}", w.output());
    assert!(took >= Duration::from_millis(500), "killed after {took:?}");
    assert_eq!(
        w.count(&format!("child PID={pid} did not exit cleanly, killing")),
        1
    );
    w.assert_no_children_left();
}

#[test]
fn term_wait_flag() {
    term_wait(Via::Flag);
}

#[test]
fn term_wait_env() {
    term_wait(Via::Env);
}

#[test]
fn a_flag_wins_over_its_variable() {
    let mut w = start(
        Via::Flag,
        "term-wait",
        Some("0.5"),
        &[],
        REPORTER,
        &[("IGNORE_TERM", "1"), ("HOT_RESTARTER_TERM_WAIT", "60")],
    );
    w.report(0);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(10)).code(), Some(1));
    w.assert_no_children_left();
}

#[test]
fn a_bad_value_in_a_variable_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    clean(&mut cmd);
    cmd.env("HOT_RESTARTER_TERM_WAIT", "soon").arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    assert_eq!(w.exit_code(), 2);
    let out = w.output();
    assert!(
        out.contains("'soon'") && out.contains("--term-wait"),
        "{out}"
    );
    // The operator set a variable, not the flag: the message says which.
    assert!(out.contains("(from HOT_RESTARTER_TERM_WAIT)"), "{out}");
    assert_eq!(out.lines().count(), 1, "not one line: {out}");
    assert!(!w.path().join("epoch-0").exists());
}

#[test]
fn empty_variables_mean_unset() {
    // `Environment=HOT_RESTARTER_PID_FILE=` clears a setting in systemd.
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    clean(&mut cmd);
    for var in [
        "HOT_RESTARTER_TERM_WAIT",
        "HOT_RESTARTER_PID_FILE",
        "HOT_RESTARTER_PREFLIGHT",
        "HOT_RESTARTER_KEEP_SERVING",
        "HOT_RESTARTER_READY_CHECK",
    ] {
        cmd.env(var, "");
    }
    cmd.arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    w.report(0);
    // Defaults apply: no pid file, no preflight on a restart.
    w.signal(Signal::SIGHUP);
    w.report(1);
    assert_eq!(w.count("running preflight"), 0);
    assert!(!w.output().contains("pid file"), "{}", w.output());
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
}

// ----- --pid-file ---------------------------------------------------------------

fn pid_file(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.pid");
    let mut w = start(
        via,
        "pid-file",
        Some(&path.to_string_lossy()),
        &[],
        REPORTER,
        &[],
    );
    w.report(0);
    assert_eq!(fs::read_to_string(&path).unwrap(), format!("{}\n", w.pid));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    assert!(!path.exists());
}

#[test]
fn pid_file_flag() {
    pid_file(Via::Flag);
}

#[test]
fn pid_file_env() {
    pid_file(Via::Env);
}

// ----- --preflight and --preflight-timeout ----------------------------------------

fn preflight(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let check = helper(
        dir.path(),
        "preflight.sh",
        "#!/bin/sh\necho \"$RESTART_EPOCH\" >> \"$REPORT_DIR/preflight-ran\"\nexit 1\n",
    );
    let mut w = start(via, "preflight", Some(&check), &[], REPORTER, &[]);
    let pid0 = w.report(0).pid().unwrap();
    w.signal(Signal::SIGHUP);
    w.wait_for_text("restart to epoch 1 skipped because its preflight failed");
    // Run before the restart only, with the would-be epoch.
    assert_eq!(
        fs::read_to_string(w.path().join("preflight-ran")).unwrap(),
        "1\n"
    );
    assert!(!w.path().join("epoch-1").exists());
    assert!(running(pid0));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn preflight_flag() {
    preflight(Via::Flag);
}

#[test]
fn preflight_env() {
    preflight(Via::Env);
}

fn preflight_timeout(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let check = helper(dir.path(), "slow.sh", "#!/bin/sh\nexec sleep 30\n");
    let mut w = start(
        via,
        "preflight-timeout",
        Some("0.3"),
        &["--preflight", &check],
        REPORTER,
        &[],
    );
    w.report(0);
    w.signal(Signal::SIGHUP);
    let line = w.wait_for_text("timed out after");
    assert!(line.contains("timed out after 0.3 s"), "{line}");
    w.wait_for_text("restart to epoch 1 skipped because its preflight timed out");
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn preflight_timeout_flag() {
    preflight_timeout(Via::Flag);
}

#[test]
fn preflight_timeout_env() {
    preflight_timeout(Via::Env);
}

// ----- --keep-serving ---------------------------------------------------------------

fn keep_serving(via: Via) {
    let mut w = start(
        via,
        "keep-serving",
        None,
        &[],
        REPORTER,
        &[("FAIL_EPOCH", "1")],
    );
    let pid0 = w.report(0).pid().unwrap();
    w.signal(Signal::SIGHUP);
    let pid1 = w.report(1).pid().unwrap();
    w.wait_for(&format!("PID={pid1} exited with code=3"));
    w.wait_for_text("(--keep-serving)");
    assert_eq!(
        w.count("Due to abnormal exit, force killing all child processes and exiting"),
        0
    );
    assert!(running(pid0), "epoch 0 was taken down");
    assert!(running(w.pid), "the wrapper exited");
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    w.assert_no_children_left();
}

#[test]
fn keep_serving_flag() {
    keep_serving(Via::Flag);
}

#[test]
fn keep_serving_env() {
    keep_serving(Via::Env);
}

/// Boolean variables as operators write them in unit files and envdirs.
#[test]
fn boolean_variables_accept_1_and_0() {
    for (value, keeps) in [("1", true), ("yes", true), ("on", true), ("0", false)] {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "start.sh", REPORTER);
        let mut cmd = command(dir.path());
        clean(&mut cmd);
        cmd.env("HOT_RESTARTER_KEEP_SERVING", value)
            .env("FAIL_EPOCH", "1")
            .arg("start.sh");
        let mut w = Wrapper::spawn(dir, cmd);
        let report = w.path().join("epoch-0");
        wait_until(DEADLINE, || report.exists() || !running(w.pid));
        assert!(
            report.exists(),
            "HOT_RESTARTER_KEEP_SERVING={value} refused:\n{}",
            w.output()
        );
        let pid0 = w.report(0).pid().unwrap();
        w.signal(Signal::SIGHUP);
        let pid1 = w.report(1).pid().unwrap();
        w.wait_for(&format!("PID={pid1} exited with code=3"));
        if keeps {
            w.wait_for_text("(--keep-serving)");
            assert!(running(pid0), "HOT_RESTARTER_KEEP_SERVING={value}");
            w.signal(Signal::SIGTERM);
            assert_eq!(w.exit_code(), 0, "HOT_RESTARTER_KEEP_SERVING={value}");
        } else {
            assert_eq!(w.exit_code(), 1, "HOT_RESTARTER_KEEP_SERVING={value}");
        }
    }
}

// ----- --ready-check, --ready-timeout, --ready-interval ---------------------------------

fn ready_check(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let check = helper(
        dir.path(),
        "ready.sh",
        "#!/bin/sh\ntest -e \"$REPORT_DIR/epoch-$RESTART_EPOCH\"\n",
    );
    let mut w = start(via, "ready-check", Some(&check), &[], REPORTER, &[]);
    let pid0 = w.report(0).pid().unwrap();
    w.wait_for_text(&format!("epoch 0 (PID={pid0}) is ready after"));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn ready_check_flag() {
    ready_check(Via::Flag);
}

#[test]
fn ready_check_env() {
    ready_check(Via::Env);
}

fn ready_timeout(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let never = helper(dir.path(), "never.sh", "#!/bin/sh\nexit 1\n");
    let mut w = start(
        via,
        "ready-timeout",
        Some("0.5"),
        &["--ready-check", &never],
        REPORTER,
        &[],
    );
    let pid0 = w.report(0).pid().unwrap();
    w.wait_for_text(&format!(
        "epoch 0 (PID={pid0}) not ready after 0.5 s, killing it"
    ));
    assert_eq!(w.exit_code(), 1);
    w.assert_no_children_left();
}

#[test]
fn ready_timeout_flag() {
    ready_timeout(Via::Flag);
}

#[test]
fn ready_timeout_env() {
    ready_timeout(Via::Env);
}

fn ready_interval(via: Via) {
    // An interval longer than the timeout: the check runs exactly once
    // (the default 0.1 s would run it about ten times).
    let dir = tempfile::tempdir().unwrap();
    let counting = helper(
        dir.path(),
        "count.sh",
        "#!/bin/sh\necho run >> \"$REPORT_DIR/checks\"\nexit 1\n",
    );
    let mut w = start(
        via,
        "ready-interval",
        Some("3600"),
        &["--ready-check", &counting, "--ready-timeout", "1"],
        REPORTER,
        &[],
    );
    w.wait_for_text("not ready after 1 s, killing it");
    assert_eq!(w.exit_code(), 1);
    assert_eq!(
        fs::read_to_string(w.path().join("checks")).unwrap(),
        "run\n"
    );
}

#[test]
fn ready_interval_flag() {
    ready_interval(Via::Flag);
}

#[test]
fn ready_interval_env() {
    ready_interval(Via::Env);
}

// ----- --subreaper -------------------------------------------------------------------

/// Kills the orphan a subreaper test leaves, whatever happens.
struct KillOnDrop(Option<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn subreaper(via: Via) {
    // A background process whose parent exits at once: an orphan, which
    // goes to the nearest subreaper.
    let rest = REPORTER.split_once('\n').unwrap().1;
    let body = format!(
        "#!/bin/sh\n\
         if [ \"$RESTART_EPOCH\" = 0 ]; then\n\
         (sleep 30 & echo $! > \"$REPORT_DIR/orphan.tmp\"; mv \"$REPORT_DIR/orphan.tmp\" \"$REPORT_DIR/orphan\")\n\
         fi\n{rest}"
    );
    let mut w = start(via, "subreaper", None, &[], &body, &[]);
    w.report(0);
    let orphan_file = w.path().join("orphan");
    assert!(wait_until(DEADLINE, || orphan_file.exists()));
    let orphan: i32 = fs::read_to_string(&orphan_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = KillOnDrop(Some(orphan));
    let parent = || {
        let stat = fs::read_to_string(format!("/proc/{orphan}/stat")).ok()?;
        stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .nth(1)?
            .parse::<i32>()
            .ok()
    };
    assert!(
        wait_until(DEADLINE, || parent() == Some(w.pid)),
        "the orphan's parent is {:?}, not the wrapper {}",
        parent(),
        w.pid
    );
    // The wrapper reaps it silently; it changes nothing.
    kill(Pid::from_raw(orphan), Signal::SIGKILL).unwrap();
    assert!(
        wait_until(DEADLINE, || !exists(orphan)),
        "orphan not reaped"
    );
    assert!(running(w.pid));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
    w.assert_no_children_left();
}

#[test]
fn subreaper_flag() {
    subreaper(Via::Flag);
}

#[test]
fn subreaper_env() {
    subreaper(Via::Env);
}

// ----- --help ------------------------------------------------------------------

#[test]
fn help_names_the_variable_of_every_option() {
    let mut cmd = Command::new(BIN);
    clean(&mut cmd);
    let out = cmd.arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // Every long option clap lists, from the help text itself, so that a
    // new option without a variable fails here.
    let mut options = Vec::new();
    let mut entries: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("--") || trimmed.starts_with("-h,") || trimmed.starts_with("-V,") {
            entries.push(trimmed.to_string());
        } else if let Some(last) = entries.last_mut() {
            // A wrapped description continues the entry above.
            last.push(' ');
            last.push_str(trimmed);
        }
    }
    for entry in &entries {
        let long = entry
            .split_whitespace()
            .find_map(|w| w.strip_prefix("--"))
            .unwrap()
            .trim_end_matches(',')
            // `--hold-while-draining[=<BOOL>]`: an optional value.
            .split('[')
            .next()
            .unwrap()
            .to_string();
        if long == "help" || long == "version" {
            continue;
        }
        let var = env_name(&long);
        assert!(
            entry.contains(&format!("[env: {var}=")),
            "--{long} does not name {var} in --help:\n{entry}"
        );
        options.push(long);
    }
    for expected in [
        "term-wait",
        "pid-file",
        "preflight",
        "preflight-timeout",
        "keep-serving",
        "ready-check",
        "ready-timeout",
        "ready-interval",
        "hold-while-draining",
        "envoy-admin",
        "subreaper",
    ] {
        assert!(
            options.iter().any(|o| o == expected),
            "--{expected} missing from --help:\n{help}"
        );
    }
}
