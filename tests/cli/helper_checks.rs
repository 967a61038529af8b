//! A --preflight or --ready-check script the kernel cannot run is refused
//! at start-up (exit 2, before any child starts) with the flag, the path
//! and the reason: a `#!` line ending in a carriage return, a `#!`
//! interpreter that does not exist, no `#!` line at all. Accepted, each
//! would make every restart fail later.

use std::path::Path;

use crate::support::*;
use nix::sys::signal::Signal;

/// Run the wrapper on the reporter with `args` and `env`, after writing the
/// helper `name` with `body` into its directory (the `{helper}` in `args`
/// and `env` values becomes its absolute path). The wrapper must exit 2
/// without starting a child; returns its ERROR line and the helper's path.
/// A wrapper that accepts the helper is stopped and the test fails.
fn refused(name: &str, body: &str, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "start.sh", REPORTER);
    let helper = script(dir.path(), name, body).display().to_string();
    let fill = |s: &str| s.replace("{helper}", &helper);
    let mut cmd = command(dir.path());
    cmd.args(args.iter().map(|a| fill(a)));
    for (k, v) in env {
        cmd.env(k, fill(v));
    }
    cmd.arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    w.expect_refused_at_start(2, &format!("{name} ({body:?})"));
    let errors: Vec<String> = w
        .log_lines()
        .into_iter()
        .filter(|l| level_of(l) == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR line expected:\n{}", w.output());
    (message_of(&errors[0]).to_string(), helper)
}

/// `flag` given the script `name` holding `body` (on the command line, or
/// through its variable when `via_env`: the message still names the flag)
/// is refused, with exactly "FLAG PATH: cannot execute: `reason`".
fn assert_refused(flag: &str, name: &str, body: &str, via_env: bool, reason: &str) {
    let var = format!(
        "HOT_RESTARTER_{}",
        flag[2..].replace('-', "_").to_uppercase()
    );
    let (line, path) = if via_env {
        refused(name, body, &[], &[(&var, "{helper}")])
    } else {
        refused(name, body, &[flag, "{helper}"], &[])
    };
    assert_eq!(line, format!("{flag} {path}: cannot execute: {reason}"));
}

#[test]
fn a_preflight_with_crlf_line_endings_is_refused() {
    assert_refused(
        "--preflight",
        "preflight.sh",
        "#!/bin/sh\r\nexit 0\r\n",
        false,
        "its #! line ends in a carriage return: the file has CRLF (DOS) line endings",
    );
}

#[test]
fn a_ready_check_whose_interpreter_is_missing_is_refused() {
    assert_refused(
        "--ready-check",
        "ready.sh",
        "#!/no/such/interpreter\nexit 0\n",
        false,
        "its interpreter /no/such/interpreter cannot be found",
    );
}

#[test]
fn a_ready_check_without_a_shebang_is_refused_but_a_binary_is_accepted() {
    assert_refused(
        "--ready-check",
        "ready.sh",
        "exit 0\n",
        true,
        "it has no #! line and is not an ELF binary",
    );

    // An ELF binary has no #! line and is fine.
    let truth = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("no true(1)");
    let mut w = Wrapper::start(&["--ready-check", truth, "--preflight", truth]);
    let pid0 = w.ready_pid(0);
    w.wait_for_text(&format!("epoch 0 (PID={pid0}) is ready after "));
    w.signal(Signal::SIGHUP);
    let pid1 = w.ready_pid(1);
    w.wait_for_text(&format!("epoch 1 (PID={pid1}) is ready after "));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
}

#[test]
fn a_preflight_with_an_empty_shebang_is_refused() {
    assert_refused(
        "--preflight",
        "preflight.sh",
        "#!\nexit 0\n",
        true,
        "its #! line names no interpreter",
    );
}
