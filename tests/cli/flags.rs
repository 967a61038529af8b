//! Every option has an environment variable with the same effect
//! (HOT_RESTARTER_TERM_WAIT for --term-wait, ...), a flag on the command
//! line wins over its variable, and `--help` names every variable.
//!
//! The equivalence is checked where it is decided, in the library's
//! parser (`Flags::try_parse_from`), for every option; the behaviour each
//! option selects is checked with its flag in tests/process. One run of
//! the real binary shows a variable taking effect end to end. The
//! environment is process-wide and the other tests of this binary start
//! processes, so a parse with variables set runs in a child process (this
//! test binary again, running only `parse_in_a_child`).

use std::process::Command;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use hot_restarter::config::{Flags, forget_empty_variables, one_line};
use nix::sys::signal::Signal;

use crate::support::*;

/// Every option: its long name, a value other than the default, and a
/// second value for "the flag wins over its variable" (switches take no
/// value on the command line; `None`).
const OPTIONS: &[(&str, Option<&str>, &str)] = &[
    ("term-wait", Some("0.5"), "60"),
    ("drain-on-stop", Some("2.5"), "30"),
    ("pid-file", Some("/run/w.pid"), "/run/other.pid"),
    ("preflight", Some("/bin/true"), "/bin/false"),
    ("preflight-timeout", Some("0.3"), "9"),
    ("keep-serving", None, "false"),
    ("ready-check", Some("/bin/true"), "/bin/false"),
    ("ready-timeout", Some("0.5"), "9"),
    ("ready-interval", Some("3600"), "0.2"),
    ("hold-while-draining", Some("false"), "true"),
    ("envoy-admin", Some("127.0.0.1:9901"), "[::1]:9902"),
    ("handoff-admin", Some("127.0.0.1:9902"), "/run/admin.sock"),
    ("envoy-bin", Some("/usr/bin/envoy"), "/opt/envoy"),
    ("control-socket", Some("/run/ctl.sock"), "/run/other.sock"),
    ("subreaper", None, "false"),
    ("log-format", Some("json"), "text"),
    // A list: ':' separates paths, on the command line as in the variable.
    (
        "watch",
        Some("/etc/envoy/envoy.yaml:/etc/envoy/cert.pem"),
        "/etc/x.yaml",
    ),
    ("watch-debounce", Some("2"), "0.1"),
];

/// `term-wait` -> `HOT_RESTARTER_TERM_WAIT`.
fn env_name(flag: &str) -> String {
    format!("HOT_RESTARTER_{}", flag.replace('-', "_").to_uppercase())
}

/// `--flag=value` (`=` because --hold-while-draining requires it), or
/// `--flag` for a switch.
fn flag_arg(flag: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("--{flag}={v}"),
        None => format!("--{flag}"),
    }
}

/// What the wrapper's front end makes of `args` (after the program name,
/// before the start script), as main does: empty variables forgotten,
/// then parsed; `Flags` in Debug form, or the one-line error.
fn parse_here(args: &[String]) -> String {
    let argv = ["hot-restarter".to_string()]
        .into_iter()
        .chain(args.iter().cloned())
        .chain(["start.sh".to_string()]);
    match Flags::try_parse_from(argv) {
        Ok(flags) => format!("{flags:?}"),
        Err(e) => format!("refused: {}", one_line(&e)),
    }
}

const CHILD_ARGS: &str = "CLI_TEST_PARSE_ARGS";

/// `parse_here(args)` in a child process whose environment holds exactly
/// `env`.
fn parse_with_env(args: &[String], env: &[(String, &str)]) -> String {
    let test = format!(
        "{}::parse_in_a_child",
        module_path!().split_once("::").unwrap().1
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            &test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), *v)))
        .env(CHILD_ARGS, args.join("\n"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{test} failed: {stdout}");
    stdout
        .lines()
        .find_map(|l| Some(l.split_once("parsed: ")?.1))
        .unwrap_or_else(|| panic!("{test} printed no result: {stdout}"))
        .to_string()
}

/// The child side of `parse_with_env`; run only by it.
#[test]
#[ignore = "a helper of the tests in this module, run by them in a child process"]
fn parse_in_a_child() {
    let args = std::env::var(CHILD_ARGS).expect("run only by parse_with_env");
    let args: Vec<String> = args
        .split('\n')
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    forget_empty_variables();
    println!("parsed: {}", parse_here(&args));
}

#[test]
fn the_table_holds_every_option_and_each_has_its_variable() {
    let command = Flags::command();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        assert!(
            OPTIONS.iter().any(|(flag, _, _)| *flag == long),
            "--{long} is missing from OPTIONS"
        );
        assert_eq!(
            arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            Some(env_name(long)),
            "--{long}"
        );
    }
}

#[test]
fn every_variable_parses_as_its_flag() {
    let default = parse_here(&[]);
    for (flag, value, _) in OPTIONS {
        let by_flag = parse_here(&[flag_arg(flag, *value)]);
        assert_ne!(by_flag, default, "--{flag} changed nothing");
        let by_env = parse_with_env(&[], &[(env_name(flag), value.unwrap_or("true"))]);
        assert_eq!(by_env, by_flag, "{} differs from --{flag}", env_name(flag));
    }
}

#[test]
fn a_flag_wins_over_its_variable() {
    for (flag, value, other) in OPTIONS {
        let args = [flag_arg(flag, *value)];
        let both = parse_with_env(&args, &[(env_name(flag), other)]);
        assert_eq!(
            both,
            parse_here(&args),
            "{}={other} won over --{flag}",
            env_name(flag)
        );
    }
}

/// Boolean variables as operators write them in unit files and envdirs.
#[test]
fn boolean_variables_accept_1_yes_on_and_0_no_off() {
    let on = parse_here(&["--keep-serving".into()]);
    let off = parse_here(&[]);
    for (value, wanted) in [
        ("1", &on),
        ("yes", &on),
        ("on", &on),
        ("true", &on),
        ("0", &off),
        ("no", &off),
        ("off", &off),
        ("false", &off),
    ] {
        let var = env_name("keep-serving");
        assert_eq!(
            &parse_with_env(&[], &[(var.clone(), value)]),
            wanted,
            "{var}={value}"
        );
    }
}

#[test]
fn empty_variables_parse_as_unset() {
    // `Environment=HOT_RESTARTER_PID_FILE=` clears a setting in systemd.
    let env: Vec<(String, &str)> = OPTIONS
        .iter()
        .map(|(flag, _, _)| (env_name(flag), ""))
        .collect();
    assert_eq!(parse_with_env(&[], &env), parse_here(&[]));
}

/// The one run of the real binary: a variable (here the term wait) takes
/// effect, as its flag does in tests/process/shutdown.rs.
#[test]
fn a_variable_takes_effect_in_the_binary() {
    let mut w = Wrapper::start_with(&[], REPORTER, |cmd| {
        cmd.env("HOT_RESTARTER_TERM_WAIT", "0.5")
            .env("IGNORE_TERM", "1");
    });
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
fn a_bad_value_in_a_variable_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    cmd.env("HOT_RESTARTER_TERM_WAIT", "soon").arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    w.expect_refused_at_start(2, "HOT_RESTARTER_TERM_WAIT=soon");
    let out = w.output();
    assert!(
        out.contains("'soon'") && out.contains("--term-wait"),
        "{out}"
    );
    // The operator set a variable, not the flag: the message says which.
    assert!(out.contains("(from HOT_RESTARTER_TERM_WAIT)"), "{out}");
    assert_eq!(out.lines().count(), 1, "not one line: {out}");
}

#[test]
fn empty_variables_mean_unset() {
    // `Environment=HOT_RESTARTER_PID_FILE=` clears a setting in systemd.
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
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

// ----- --help ------------------------------------------------------------------

#[test]
fn help_names_the_variable_of_every_option() {
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd);
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
    assert_all_among(
        &[
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
        ],
        &options,
        &help,
    );
}
