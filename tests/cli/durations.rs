//! Durations the wrapper cannot honour are usage errors (exit 2) that name
//! the flag (or its variable) and the value, before any child starts. A
//! huge `--term-wait` is one: accepted, it would overflow `Instant +
//! Duration` at SIGTERM, and the wrapper would leave its children behind.

use std::path::Path;

use crate::support::*;

/// The four `SECONDS` options: flag name and environment variable.
const SECONDS_OPTIONS: [(&str, &str); 4] = [
    ("term-wait", "HOT_RESTARTER_TERM_WAIT"),
    ("preflight-timeout", "HOT_RESTARTER_PREFLIGHT_TIMEOUT"),
    ("ready-timeout", "HOT_RESTARTER_READY_TIMEOUT"),
    ("ready-interval", "HOT_RESTARTER_READY_INTERVAL"),
];

/// Run the wrapper on the reporter with `args` before the script and `env`
/// set, and return its stderr once it has exited 2 without starting
/// anything (a wrapper that accepts the value fails the test: see
/// `expect_refused_at_start`).
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let what = format!("{env:?} {args:?}");
    let setup = |dir: &Path| {
        script(dir, "start.sh", REPORTER);
    };
    let mut w = start_in(setup, args, |cmd| {
        for (_, var) in SECONDS_OPTIONS {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied()).arg("start.sh");
    });
    w.expect_refused_at_start(2, &what);
    let stderr = w.stderr_lines();
    assert_eq!(stderr.len(), 1, "{what}: one line expected: {stderr:?}");
    stderr[0].clone()
}

#[test]
fn a_huge_value_on_the_command_line_is_a_usage_error() {
    for (flag, _) in SECONDS_OPTIONS {
        let line = refused(&[&format!("--{flag}"), "1e19"], &[]);
        assert!(
            line.contains(&format!("'--{flag} <SECONDS>'")),
            "the flag is not named: {line}"
        );
        assert!(
            line.contains("'1e19' is too large: at most 31536000 seconds (365 days)"),
            "{line}"
        );
        assert!(!line.contains("non-negative"), "{line}");
    }
    // The bound itself is accepted, and its deadline is made at SIGTERM
    // without overflowing (a prompt child makes the wait irrelevant).
    let mut w = Wrapper::start(&["--term-wait", "31536000"]);
    w.report(0);
    w.stop();
}

#[test]
fn a_huge_value_in_the_environment_is_a_usage_error_naming_the_variable() {
    for (flag, var) in SECONDS_OPTIONS {
        let line = refused(&[], &[(var, "1e19")]);
        assert!(line.contains(&format!("'--{flag} <SECONDS>'")), "{line}");
        assert!(line.contains(&format!("(from {var})")), "{line}");
        assert!(line.contains("'1e19' is too large"), "{line}");
    }
}

#[test]
fn each_kind_of_bad_value_gets_its_own_reason() {
    // Infinity is too large, not "not a non-negative number".
    let line = refused(&["--term-wait", "inf"], &[]);
    assert!(line.contains("'inf' is too large"), "{line}");
    let line = refused(&["--ready-timeout=-1"], &[]);
    assert!(line.contains("'--ready-timeout <SECONDS>'"), "{line}");
    assert!(line.contains("'-1' is negative"), "{line}");
    assert!(!line.contains("non-negative"), "{line}");
    let line = refused(&[], &[("HOT_RESTARTER_PREFLIGHT_TIMEOUT", "soon")]);
    assert!(line.contains("'soon' is not a number of seconds"), "{line}");
    assert!(
        line.contains("(from HOT_RESTARTER_PREFLIGHT_TIMEOUT)"),
        "{line}"
    );
}
