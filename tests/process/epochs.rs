//! Epochs: RESTART_EPOCH, argv, script arguments, SIGHUP, and the child's
//! inherited state (signal mask, dispositions, descriptors).

use crate::support::*;
use nix::sys::signal::Signal;

#[test]
fn sighup_starts_contiguous_epochs_and_leaves_older_ones_alone() {
    let mut w = Wrapper::start(&["--term-wait", "5"]);
    w.wait_for("forking and execing new child process at epoch 0");
    let first = w.report(0);
    assert_eq!(first.get("epoch").as_deref(), Some("0"));
    assert_eq!(first.get("argv0").as_deref(), Some("start.sh"));
    // The wrapper's working directory is the child's (a bare script name
    // is found there).
    let cwd = w.path().canonicalize().unwrap();
    assert_eq!(first.get("cwd").as_deref(), cwd.to_str());
    for epoch in 1..=3 {
        w.signal(Signal::SIGHUP);
        w.wait_for_count("got SIGHUP", epoch as usize);
        let report = w.report(epoch);
        assert_eq!(report.get("epoch"), Some(epoch.to_string()));
        let pid = report.pid().unwrap();
        w.wait_for(&format!("forked new child process with PID={pid}"));
        w.wait_for(&format!(
            "forking and execing new child process at epoch {epoch}"
        ));
    }
    // Older epochs are untouched: all four still run, none got a signal.
    for epoch in 0..=3 {
        let report = w.report(epoch);
        assert!(running(report.pid().unwrap()), "epoch {epoch} is gone");
        assert_eq!(report.count("term"), 0, "epoch {epoch} was signalled");
    }
    w.stop();
}

#[test]
fn script_arguments_are_passed_on() {
    let mut w = Wrapper::start_with(&[], REPORTER, |cmd| {
        cmd.args(["--flag", "two words", "-x"]);
    });
    let report = w.report(0);
    assert_eq!(report.get("args").as_deref(), Some("--flag two words -x"));
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}

#[test]
fn children_start_with_a_clean_signal_state_and_only_stdio() {
    use std::os::unix::process::CommandExt;
    // The wrapper itself inherits a descriptor (fd 7, not close-on-exec)
    // and an ignored SIGPIPE, SIGXFSZ and SIGUSR2, the way a careless
    // supervisor might start it; none of it may reach a child.
    let leak =
        std::fs::File::create(std::env::temp_dir().join("hot-restarter-leak-marker")).unwrap();
    let mut w = Wrapper::start_with(&[], REPORTER, |cmd| {
        use std::os::fd::AsRawFd;
        let raw = leak.as_raw_fd();
        // SAFETY: dup2 and signal are async-signal-safe; this runs in the
        // forked child just before exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::dup2(raw, 7);
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                libc::signal(libc::SIGUSR2, libc::SIG_IGN);
                Ok(())
            });
        }
    });
    w.report(0);
    w.signal(Signal::SIGHUP);
    for epoch in 0..=1 {
        let r = w.report(epoch);
        assert_eq!(
            r.get("SigBlk").as_deref(),
            Some("0000000000000000"),
            "{r:?}"
        );
        assert_eq!(
            r.get("SigIgn").as_deref(),
            Some("0000000000000000"),
            "{r:?}"
        );
        let targets = r.get("fdtargets").unwrap();
        assert!(
            !targets.contains("hot-restarter-leak-marker"),
            "leaked: {targets}"
        );
        assert!(
            !targets.contains("signalfd"),
            "leaked the wrapper's signalfd: {targets}"
        );
        assert!(
            !targets.contains("anon_inode"),
            "leaked a wrapper descriptor: {targets}"
        );
    }
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0);
}
