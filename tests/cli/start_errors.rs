//! Bad input: a start script that cannot be executed (at epoch 0 and at a
//! later epoch), and usage errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::*;
use nix::sys::signal::Signal;

/// Start the wrapper on `script` after `setup`; it must exit 1 at once,
/// with an ERROR line naming `script` and `os_error`, and start nothing.
/// Returns that line.
fn fails_at_epoch_0(setup: impl FnOnce(&Path), script: &str, os_error: &str) -> String {
    let mut w = start_in(setup, &[script], |_| {});
    let status = w.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1), "{}", w.output());
    let errors: Vec<String> = w
        .log_lines()
        .into_iter()
        .filter(|l| level_of(l) == "ERROR")
        .collect();
    let error = errors
        .iter()
        .find(|l| l.contains(script) && l.contains(os_error))
        .unwrap_or_else(|| {
            panic!(
                "no ERROR line naming {script:?} and {os_error:?}; output:\n{}",
                w.output()
            )
        })
        .clone();
    assert_eq!(
        w.messages_starting("forked new child process").len(),
        0,
        "a child was started: {}",
        w.output()
    );
    assert!(!w.path().join("epoch-0").exists(), "the script ran");
    error
}

#[test]
fn a_missing_script_fails_at_once() {
    fails_at_epoch_0(|_| {}, "start.sh", "No such file or directory");
}

#[test]
fn a_script_that_is_not_executable_fails_at_once() {
    fails_at_epoch_0(
        |dir| {
            let path = script(dir, "start.sh", REPORTER);
            fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
        },
        "./start.sh",
        "Permission denied",
    );
}

/// `fails_at_epoch_0` with a start.sh holding `body`.
fn fails_with_body(body: &str, os_error: &str) -> String {
    fails_at_epoch_0(
        |dir| drop(script(dir, "start.sh", body)),
        "start.sh",
        os_error,
    )
}

#[test]
fn a_directory_fails_at_once() {
    fails_at_epoch_0(
        |dir| fs::create_dir(dir.join("start.sh")).unwrap(),
        "start.sh",
        "Permission denied",
    );
}

#[test]
fn a_missing_interpreter_fails_at_once() {
    let body = REPORTER.replacen("#!/bin/sh", "#!/no/such/interpreter", 1);
    fails_with_body(&body, "No such file or directory");
}

#[test]
fn a_script_with_crlf_line_endings_fails_at_once_saying_so() {
    // The kernel looks for the interpreter "/bin/sh\r": ENOENT, which is
    // not "/bin/sh cannot be found".
    let body = REPORTER.replace('\n', "\r\n");
    let error = fails_with_body(&body, "No such file or directory");
    assert!(
        message_of(&error).ends_with(
            "cannot start epoch 0: cannot execute start.sh: No such file or directory \
             (os error 2) (its #! line ends in a carriage return: the file has CRLF (DOS) \
             line endings)"
        ),
        "{error}"
    );
    assert!(!error.contains("cannot be found"), "{error}");
}

#[test]
fn a_script_without_a_shebang_fails_at_once() {
    // execvp would run it with /bin/sh; os.execl (execv) does not.
    let body = REPORTER.replacen("#!/bin/sh\n", "", 1);
    fails_with_body(&body, "Exec format error");
}

#[test]
fn a_bare_name_is_not_searched_on_path() {
    // `true` is on PATH but not in the working directory: like os.execl,
    // the wrapper must not find it.
    fails_at_epoch_0(|_| {}, "true", "No such file or directory");
}

#[test]
fn an_absolute_path_is_named_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere").join("start_envoy.sh");
    fails_at_epoch_0(
        |_| {},
        missing.to_str().unwrap(),
        "No such file or directory",
    );
}

/// Epoch 0 runs; `break_script` makes `start.sh` unusable; SIGHUP must then
/// be a failed child: epoch 0 SIGKILLed, exit 1.
fn fails_at_epoch_1(break_script: impl FnOnce(&Path), os_error: &str) {
    let mut w = Wrapper::start(&[]);
    let first = w.first_child();
    break_script(&w.path().join("start.sh"));
    w.signal(Signal::SIGHUP);
    assert_eq!(w.exit_code(), 1, "{}", w.output());
    let error = w
        .log_lines()
        .into_iter()
        .find(|l| l.contains("start.sh") && l.contains(os_error))
        .unwrap_or_else(|| panic!("no line naming start.sh and {os_error:?}:\n{}", w.output()));
    assert_eq!(level_of(&error), "ERROR", "{error}");
    assert!(error.contains("epoch 1"), "the epoch is not named: {error}");
    w.assert_logged(
        "WARNING",
        "Due to abnormal exit, force killing all child processes and exiting",
    );
    w.assert_logged("WARNING", &format!("force killing PID={first}"));
    assert!(!running(first), "epoch 0 outlived the wrapper");
    assert!(!w.path().join("epoch-1").exists(), "epoch 1 ran");
    w.assert_no_children_left();
}

#[test]
fn a_later_epoch_that_is_not_executable_takes_everything_down() {
    fails_at_epoch_1(
        |path| fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap(),
        "Permission denied",
    );
}

#[test]
fn a_later_epoch_whose_script_is_gone_takes_everything_down() {
    fails_at_epoch_1(
        |path| fs::remove_file(path).unwrap(),
        "No such file or directory",
    );
}

/// Run the wrapper with `args`; it must exit 2 at once with one line on
/// stderr, nothing on stdout, and no child. Returns that line.
fn usage_error(args: &[&str]) -> String {
    let mut w = start_in(
        |dir| {
            script(dir, "start.sh", REPORTER);
        },
        args,
        |_| {},
    );
    w.expect_refused_at_start(2, &format!("{args:?}"));
    assert_eq!(w.log_lines(), Vec::<String>::new(), "stdout is not empty");
    let stderr = w.stderr_lines();
    assert_eq!(stderr.len(), 1, "not one line: {stderr:?}");
    stderr[0].clone()
}

#[test]
fn no_argument_is_a_usage_error() {
    let line = usage_error(&[]);
    assert!(line.contains("START_SCRIPT"), "{line}");
}

#[test]
fn a_non_numeric_term_wait_is_a_usage_error_naming_the_value() {
    let line = usage_error(&["--term-wait", "soon", "start.sh"]);
    assert!(line.contains("soon"), "{line}");
    assert!(line.contains("--term-wait"), "{line}");
}

#[test]
fn a_negative_term_wait_is_a_usage_error() {
    let line = usage_error(&["--term-wait=-1", "start.sh"]);
    assert!(line.contains("-1"), "{line}");
}

#[test]
fn a_term_wait_without_a_value_is_a_usage_error() {
    usage_error(&["--term-wait"]);
}

#[test]
fn an_unknown_flag_is_a_usage_error_naming_it() {
    let line = usage_error(&["--bogus", "start.sh"]);
    assert!(line.contains("--bogus"), "{line}");
}

#[test]
fn help_and_version_exit_0() {
    for (flag, expected) in [
        ("--help", "START_SCRIPT"),
        ("--version", env!("CARGO_PKG_VERSION")),
    ] {
        let mut w = start_in(|_| {}, &[flag], |_| {});
        let status = w.wait_exit(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "{flag}: {}", w.output());
        assert!(
            w.log_lines().iter().any(|l| l.contains(expected)),
            "{flag}: {}",
            w.output()
        );
    }
}

#[test]
fn every_word_after_the_script_goes_to_the_script() {
    // `hot-restarter.py start_envoy.sh --help` runs start_envoy.sh; words
    // after START_SCRIPT are the script's, even when they look like ours.
    let mut w = start_in(
        |dir| {
            script(dir, "start.sh", REPORTER);
        },
        &["start.sh", "--help", "--term-wait", "soon", "--version"],
        |_| {},
    );
    let report = w.report(0);
    assert_eq!(
        report.get("args").as_deref(),
        Some("--help --term-wait soon --version")
    );
    w.ready_pid(0);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
}
