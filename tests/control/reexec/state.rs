//! What carries over a reexec, and when it happens.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::harness::*;
use crate::support::{BIN, DEADLINE, script, wait_until};

/// Children, epochs, counters, the last reload, the pid file and the
/// socket are the same after a reexec onto a binary renamed over the old
/// one; the process is the same and runs the new file; the next SIGHUP
/// starts the next epoch.
#[test]
fn state_carries_over_a_replaced_binary() {
    let mut w = start(&[]);
    w.signal(Signal::SIGHUP);
    w.report(1);
    let before = status(&w);
    assert_eq!(before["reexecs"], 0);
    assert_eq!(before["exe"].as_str().unwrap(), exe(&w).to_str().unwrap());
    replace(&exe(&w), Path::new(BIN));
    let (out, _) = ctl_ok(&w, &["reexec", "--wait"], 0);
    assert!(out.contains("took over"), "{out}");
    let after = status(&w);
    assert_eq!(after["reexecs"], 1);
    assert_eq!(kept(after.clone()), kept(before.clone()));
    assert_eq!(after["pid"].as_i64().unwrap() as i32, w.pid);
    assert_eq!(exe_identity(w.pid), file_identity(&exe(&w)));
    let pid_file = std::fs::read_to_string(w.path().join("pid")).unwrap();
    assert_eq!(pid_file.trim(), w.pid.to_string());
    w.wait_for_text("took over from");
    // Both epochs are still the wrapper's children, never signalled: the
    // exec is no death of the parent for PR_SET_PDEATHSIG (SIGTERM, which
    // the reporter would record).
    for epoch in [0, 1] {
        let pid = w.pid_of(epoch);
        assert_eq!(crate::support::ppid_of(pid), Some(w.pid));
        assert_eq!(w.report(epoch).count("term"), 0);
    }
    w.signal(Signal::SIGHUP);
    w.report(2);
    let (out, _) = ctl_ok(&w, &["reload", "--wait"], 0);
    assert!(out.contains("epoch 3"), "{out}");
    w.stop_cleanly();
}

/// A reexec asked for while a restart waits for its ready check is held,
/// then carried out once the epoch is ready.
#[test]
fn reexec_during_a_restart_is_held() {
    let (_dir, gate, check) = gated_script("ready.sh", |gate| {
        format!("#!/bin/sh\n[ \"$RESTART_EPOCH\" = 0 ] || [ -e {gate} ]\n")
    });
    let args = [
        "--ready-check",
        check.to_str().unwrap(),
        "--ready-timeout",
        "60",
    ];
    let mut w = start(&args);
    ctl_ok(&w, &["reload"], 0);
    w.report(1);
    reexec_held_until(&w, &gate);
    w.stop_cleanly();
}

/// SIGUSR1 sent in a tight loop across ten reexecs: a single one
/// unblocked for an instant would kill the wrapper (its default action);
/// the child gets SIGUSR1s relayed by the old and the new binaries.
#[test]
fn signals_during_the_exec_are_acted_on() {
    let mut w = start(&[]);
    let pid = w.pid;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                kill(Pid::from_raw(pid), Signal::SIGUSR1).unwrap();
                sent += 1;
            }
            sent
        })
    };
    for _ in 0..10 {
        ctl_ok(&w, &["reexec", "--wait"], 0);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    assert!(w.is_running(), "{}", w.tail(30));
    assert_eq!(status(&w)["reexecs"], 10);
    // A last one after the loop: relayed by the tenth binary.
    let before = w.report(0).count("usr1");
    w.signal(Signal::SIGUSR1);
    assert!(
        wait_until(DEADLINE, || w.report(0).count("usr1") > before),
        "{}",
        w.tail(30)
    );
    let lines = w.log_lines();
    let last_takeover = lines.iter().rposition(|l| l.contains("took over from"));
    let relayed_after = lines[last_takeover.unwrap()..]
        .iter()
        .filter(|l| l.contains("sending SIGUSR1"))
        .count();
    eprintln!(
        "{sent} SIGUSR1 sent during 10 reexecs; wrapper alive; {relayed_after} relayed by the last binary"
    );
    w.stop_cleanly();
}

/// 100 reexecs in a row: memory and descriptors stay flat; the figures
/// are printed (time to the new binary's answer, RSS, descriptors).
#[test]
fn a_hundred_reexecs_stay_flat() {
    let mut w = start(&[]);
    ctl_ok(&w, &["reexec", "--wait"], 0);
    let (rss0, fds0) = footprint(w.pid);
    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        ctl_ok(&w, &["reexec", "--wait"], 0);
        times.push(t.elapsed());
    }
    let (rss1, fds1) = footprint(w.pid);
    times.sort();
    eprintln!(
        "100 reexecs: median {:?} (min {:?}, max {:?}) from request to the new binary's answer; \
         VmRSS {rss0} -> {rss1} KiB; descriptors {fds0} -> {fds1}",
        times[50], times[0], times[99]
    );
    assert_eq!(fds1, fds0, "descriptors leak: {:?}", fd_targets(w.pid));
    assert_eq!(status(&w)["reexecs"], 101);
    assert_eq!(w.pid_of(0), w.report(0).pid().unwrap());
    w.stop_cleanly();
}

/// Clients asking for the status in a tight loop while the wrapper
/// re-executes itself twenty times: each is answered (by the old or the
/// new binary), none is refused or left without a reply.
#[test]
fn the_control_socket_answers_across_the_exec() {
    let mut w = start(&[]);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let askers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let socket = socket(&w);
            thread::spawn(move || {
                let mut failures = Vec::new();
                let mut asked = 0;
                while !stop.load(Ordering::Relaxed) {
                    let out = std::process::Command::new(CTL)
                        .arg("--socket")
                        .arg(&socket)
                        .arg("status")
                        .output()
                        .unwrap();
                    asked += 1;
                    if !out.status.success() {
                        failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
                    }
                }
                (asked, failures)
            })
        })
        .collect();
    for _ in 0..20 {
        ctl_ok(&w, &["reexec", "--wait"], 0);
    }
    stop.store(true, Ordering::Relaxed);
    let mut asked = 0;
    for asker in askers {
        let (n, failures) = asker.join().unwrap();
        asked += n;
        assert!(failures.is_empty(), "{failures:?}");
    }
    eprintln!("{asked} status requests during 20 reexecs, all answered");
    w.stop_cleanly();
}

/// A reexec asked for while a preflight runs is held until the restart it
/// guards is over.
#[test]
fn reexec_during_a_preflight_is_held() {
    let (_dir, gate, preflight) = gated_script("preflight.sh", |gate| {
        format!("#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.01; done\n")
    });
    let mut w = start(&["--preflight", preflight.to_str().unwrap()]);
    ctl_ok(&w, &["reload"], 0);
    assert!(wait_until(DEADLINE, || status(&w)["phase"] == "preflight"));
    reexec_held_until(&w, &gate);
    w.report(1);
    w.stop_cleanly();
}

/// A reexec held (behind a restart) when a shutdown begins is answered
/// with a refusal; the wrapper stops as usual.
#[test]
fn a_held_reexec_is_refused_by_a_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let check = script(
        dir.path(),
        "ready.sh",
        "#!/bin/sh\n[ \"$RESTART_EPOCH\" = 0 ]\n",
    );
    let args = [
        "--ready-check",
        check.to_str().unwrap(),
        "--ready-timeout",
        "60",
        "--term-wait",
        "20",
    ];
    let mut w = start(&args);
    ctl_ok(&w, &["reload"], 0);
    w.report(1);
    let held = spawn_ctl(&w, &["reexec", "--wait"]);
    w.wait_for_text("holding the reexec");
    let stop = spawn_ctl(&w, &["stop", "--wait"]);
    let out = held.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("shutting down"),
        "{out:?}"
    );
    assert_eq!(stop.join().unwrap().status.code(), Some(0));
    assert_eq!(w.exit_code(), 0);
}

/// A reexec asked for while the wrapper is shutting down (its child
/// ignores SIGTERM until `--term-wait` is over) is refused, with or without
/// `--wait`; the shutdown carries on and ends as it would have.
#[test]
fn reexec_while_shutting_down_is_refused() {
    let mut w = start_env(&["--term-wait", "4"], &[("IGNORE_TERM", "1")]);
    let (out, _) = ctl_ok(&w, &["stop"], 0);
    assert_eq!(out, "stopping\n");
    w.wait_report_event(0, "term", 1);
    assert_eq!(status(&w)["phase"], "shutting-down");
    for args in [&["reexec", "--wait"][..], &["reexec"][..]] {
        let (_, err) = ctl_ok(&w, args, 1);
        assert!(err.contains("shutting down"), "{args:?}: {err}");
    }
    w.wait_for_text("shutting down, ignoring the reexec request");
    let s = status(&w);
    assert_eq!(s["reexecs"], 0);
    assert_eq!(s["phase"], "shutting-down");
    // Killed at the end of --term-wait, as without the requests.
    assert_eq!(w.exit_code(), 1);
}

/// NOTIFY_SOCKET carries over (the new binary tells systemd about the next
/// restart, sends nothing at its own start), and nothing of the hand-over
/// reaches a child it starts: neither the variables nor the descriptors.
#[test]
fn notify_socket_carries_over_and_children_see_no_hand_over() {
    use std::os::unix::net::UnixDatagram;
    let notify_dir = tempfile::tempdir().unwrap();
    let notify = notify_dir.path().join("notify");
    let socket = UnixDatagram::bind(&notify).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let next = || {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("no notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut w = start_env(&[], &[("NOTIFY_SOCKET", notify.to_str().unwrap())]);
    assert!(next().starts_with("READY=1\n"));
    ctl_ok(&w, &["reexec", "--wait"], 0);
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        socket.recv(&mut buf).is_err(),
        "the new binary notified at its start"
    );
    socket.set_nonblocking(false).unwrap();
    w.signal(Signal::SIGHUP);
    let pid1 = w.pid_of(1);
    assert!(next().starts_with("RELOADING=1\n"));
    let ready = next();
    assert!(
        ready.starts_with("READY=1\n") && ready.contains(&format!("epoch 1 (PID={pid1})")),
        "{ready}"
    );
    let environ = std::fs::read(format!("/proc/{pid1}/environ")).unwrap();
    for variable in environ.split(|b| *b == 0) {
        let variable = String::from_utf8_lossy(variable);
        assert!(
            !variable.starts_with("HOT_RESTARTER_HANDOVER")
                && !variable.starts_with("HOT_RESTARTER_PREVIOUS_EXE")
                && !variable.starts_with("HOT_RESTARTER_REEXEC_FAILED")
                && !variable.starts_with("NOTIFY_SOCKET"),
            "epoch 1 got {variable}"
        );
    }
    let fds = w.report(1).get("fdtargets").unwrap();
    assert!(
        !fds.contains("memfd:") && !fds.contains(exe(&w).to_str().unwrap()),
        "epoch 1 inherited {fds}"
    );
    w.stop_cleanly();
}

/// A child that exits while the old binary checks the new one (the
/// driver is busy, its SIGCHLD stays pending across the exec) is reaped by
/// the new binary at once: no zombie, the status no longer shows it.
#[test]
fn a_child_that_exits_during_the_reexec_is_reaped_by_the_new_binary() {
    let mut w = start(&[]);
    w.signal(Signal::SIGHUP);
    let pid0 = w.pid_of(0);
    w.report(1);
    reexec_during_a_slow_check(&w, |w| {
        // Epoch 0 ends its drain now; the wrapper cannot reap it yet.
        kill(Pid::from_raw(pid0), Signal::SIGTERM).unwrap();
        assert!(
            wait_until(DEADLINE, || crate::support::zombie_children(w.pid)
                .contains(&pid0)),
            "epoch 0 did not become a zombie"
        );
    });
    assert!(
        wait_until(DEADLINE, || !crate::support::exists(pid0)),
        "epoch 0 left a zombie\n{}",
        w.tail(30)
    );
    let s = status(&w);
    assert_eq!(s["reexecs"], 1);
    let children = s["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "{s}");
    assert_eq!(children[0]["epoch"], 1, "{s}");
    let lines = w.log_lines();
    let took = lines.iter().position(|l| l.contains("took over from"));
    let exited = (lines.iter()).position(|l| l.contains(&format!("PID={pid0} exited with code=0")));
    assert!(took.is_some() && exited > took, "{}", w.tail(30));
    w.stop_cleanly();
}

/// A SIGHUP sent while the old binary checks the new one stays pending
/// across the exec; the new binary takes over, then acts on it.
#[test]
fn a_sighup_sent_during_the_reexec_is_acted_on_by_the_new_binary() {
    let mut w = start(&[]);
    reexec_during_a_slow_check(&w, |w| signal_left_pending(w, Signal::SIGHUP));
    w.report(1);
    let lines = w.log_lines();
    let took = lines.iter().position(|l| l.contains("took over from"));
    let hup = lines.iter().position(|l| l.contains("got SIGHUP"));
    assert!(took.is_some() && hup > took, "{}", w.tail(30));
    assert_eq!(status(&w)["reexecs"], 1);
    w.stop_cleanly();
}

/// A SIGTERM sent while the old binary checks the new one: the new binary
/// takes over, answers `reexec --wait`, then stops as on any SIGTERM.
#[test]
fn a_sigterm_sent_during_the_reexec_stops_the_new_binary() {
    let mut w = start(&[]);
    let pid0 = w.pid_of(0);
    let out = reexec_during_a_slow_check(&w, |w| signal_left_pending(w, Signal::SIGTERM));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("took over"),
        "{out:?}"
    );
    assert_eq!(w.exit_code(), 0, "{}", w.tail(30));
    assert_eq!(w.report(0).count("term"), 1);
    assert!(!crate::support::exists(pid0));
    w.wait_for_text("got SIGTERM");
}

/// The failure fact carries over: with --keep-serving a failed epoch
/// makes the wrapper exit 1 once its last child exits by itself, also
/// when the failure was seen by the binary before a reexec.
#[test]
fn a_failure_seen_before_a_reexec_still_decides_the_exit_code() {
    let mut w = start_env(&["--keep-serving"], &[("FAIL_EPOCH", "1")]);
    w.signal(Signal::SIGHUP);
    w.wait_for_text("restart to epoch 1 failed because PID=");
    ctl_ok(&w, &["reexec", "--wait"], 0);
    assert_eq!(status(&w)["reexecs"], 1);
    // Epoch 0, the last child, ends by itself (exit 0 on its SIGTERM).
    kill(Pid::from_raw(w.pid_of(0)), Signal::SIGTERM).unwrap();
    assert_eq!(w.exit_code(), 1, "{}", w.tail(30));
}

/// `--watch` goes on after a reexec: the new binary watches the files
/// afresh, and the next change of contents is a reload.
#[test]
fn watched_files_are_watched_after_a_reexec() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("envoy.yaml");
    std::fs::write(&conf, "version 0\n").unwrap();
    let conf_arg = conf.to_str().unwrap();
    let mut w = start(&["--watch", conf_arg, "--watch-debounce", "0.1"]);
    ctl_ok(&w, &["reexec", "--wait"], 0);
    assert_eq!(status(&w)["reexecs"], 1);
    std::fs::write(&conf, "version 1\n").unwrap();
    w.wait_for_text(&format!("{:?} changed: restarting", conf_arg));
    w.report(1);
    w.stop_cleanly();
}
