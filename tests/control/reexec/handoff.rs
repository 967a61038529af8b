//! A reexec asked for while a handed-off generation retires (with
//! stand-in admins, no Envoy needed) is held until that generation is gone.

use nix::sys::signal::Signal;

use super::harness::CTL;
use crate::admin_lab::Lab;
use crate::support::running;

/// Generation 0 ignores SIGTERM (it is SIGKILLed once --term-wait is over),
/// so the handoff's retiring stage lasts seconds.
const START: &str = r#"#!/bin/sh
g=${HOT_RESTARTER_GENERATION:-none}
if [ "$g" = 0 ]; then export IGNORE_TERM=1; fi
export RESTART_EPOCH="$g-$RESTART_EPOCH"
exec "$REPORT_DIR/reporter.sh" "$@"
"#;

#[test]
fn reexec_while_a_generation_retires_is_held_until_it_is_gone() {
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("ctl.sock");
    let flags = [
        "--control-socket",
        sock.to_str().unwrap(),
        "--term-wait",
        "3",
    ];
    let mut lab = Lab::with_scripts(&flags, &[("start.sh", START)]);
    let old = lab.pid(0, 0);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={old}) is ready after"));
    lab.w.signal(Signal::SIGUSR2);
    let new = lab.pid(1, 0);
    lab.w
        .wait_for_text(&format!("generation 1 epoch 0 (PID={new}) is LIVE after"));
    let wait = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            std::process::Command::new(CTL)
                .arg("--socket")
                .arg(sock)
                .args(["reexec", "--wait"])
                .output()
                .unwrap()
        })
    };
    lab.w.wait_for_text("holding the reexec until");
    let out = wait.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", lab.w.tail(30));
    // Carried out once generation 0 was gone, not before.
    assert!(!running(old));
    let lines = lab.w.log_lines();
    let gone = lines
        .iter()
        .position(|l| l.contains(&format!("PID={old}")) && l.contains("killed by"))
        .or_else(|| {
            lines
                .iter()
                .position(|l| l.contains("handoff from generation 0 done"))
        });
    let took = lines.iter().position(|l| l.contains("took over from"));
    assert!(
        gone.is_some() && took.is_some() && gone < took,
        "{}",
        lab.w.tail(30)
    );
    assert!(running(new));
    lab.w.stop();
}
