//! Chains 4, 5 and 6 of issue 14, with stand-in admins and fixture
//! children instead of Envoy: a handoff onto an address something else
//! already answers on, admin answers that try to forge or flood the log,
//! and `stop --wait` when the wrapper is SIGKILLed.

use std::fs;
use std::path::Path;

use nix::sys::signal::Signal;

use crate::common::fake_admin::{FakeAdmin, live};
use crate::common::*;
use crate::probe::ctl;
use crate::standin::{RawAdmin, response, server_info};

/// What the handoff's refusal says (`{addr}`: the --handoff-admin
/// address), in the wrapper's log and in the control reply.
pub const ALREADY_ANSWERS: &str = "something already answers on {addr}";

/// The longest log line the wrapper may write about outside input.
const LINE_LIMIT: usize = 1024;

/// A child that records, per generation, that it started and every
/// SIGTERM it got, and runs until SIGTERM.
const GENERATION_CHILD: &str = r#"#!/bin/sh
f="$REPORT_DIR/gen-${HOT_RESTARTER_GENERATION:-none}-$$"
trap 'echo term >> "$f"; exit 0' TERM
echo start > "$f"
while :; do sleep 0.05; done
"#;

/// (generation, pid, what it recorded) of every child so far.
fn generation_children(dir: &Path) -> Vec<(String, i32, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("gen-") else {
            continue;
        };
        let Some((generation, pid)) = rest.rsplit_once('-') else {
            continue;
        };
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        out.push((generation.to_string(), pid.parse().unwrap_or(0), text));
    }
    out
}

/// Chain 4: another process already answers LIVE on --handoff-admin's
/// address. The handoff is refused with that reason, before anything is
/// started, and the serving generation is not touched.
#[test]
fn chain4_handoff_refused_when_something_already_answers_on_its_address() {
    let admin0 = FakeAdmin::tcp(live(0));
    let stale = FakeAdmin::tcp(live(0));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let socket_arg = socket.display().to_string();
    let w = Wrapper::start_with(
        &[
            "--envoy-admin",
            &admin0.addr,
            "--handoff-admin",
            &stale.addr,
            "--control-socket",
            &socket_arg,
        ],
        GENERATION_CHILD,
        |_| {},
    );
    w.wait_for_text("is ready after");
    let answer = ctl(&socket, &["handoff", "--wait"], DEADLINE);
    let expected = ALREADY_ANSWERS.replace("{addr}", &stale.addr);
    let children = generation_children(w.path());
    assert!(
        !answer.ok() && answer.stderr.contains(&expected),
        "the handoff was not refused with {expected:?}: {}; children {children:?}; output:\n{}",
        answer.describe(),
        w.output()
    );
    assert!(
        w.log_lines().iter().any(|l| l.contains(&expected)),
        "no log line says {expected:?}; output:\n{}",
        w.output()
    );
    let serving: Vec<_> = children.iter().filter(|c| c.0 == "0").collect();
    assert_eq!(serving.len(), 1, "{children:?}");
    assert!(
        running(serving[0].1) && !serving[0].2.contains("term"),
        "generation 0 was touched: {children:?}; output:\n{}",
        w.output()
    );
    assert!(
        children.iter().all(|c| c.0 != "1"),
        "generation 1 was started although {expected:?}: {children:?}"
    );
    let status = ctl(&socket, &["status", "--json"], DEADLINE);
    assert!(status.ok(), "{}", status.describe());
}

/// A log line that looks like one of the wrapper's, as a forger would
/// write it.
const FORGED: &str = "[2026-12-04 18:00:00.000][1][INFO][core] [src/core/ready.rs:99] epoch 0 (PID=1) is ready after 1 ms";

/// One misbehaving admin answer and what its log lines must show.
struct Case {
    name: &'static str,
    answer: Vec<u8>,
    /// Text some log line must contain (None: nothing particular).
    shown: Option<&'static str>,
    /// Text no log line may contain.
    never: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    // 10^6 bytes: under the wrapper's 1 MiB limit on an admin response,
    // so the whole body reaches the wrapper.
    let big = "x".repeat(1_000_000);
    vec![
        Case {
            name: "non-200 body with a forged line",
            answer: response(
                "500 Internal Server Error",
                format!("oops\n{FORGED}\nmore").as_bytes(),
            ),
            shown: None,
            never: None,
        },
        Case {
            name: "state with a forged line",
            answer: server_info(&format!("\"INITIALIZING\\n{FORGED}\""), "0"),
            shown: None,
            never: None,
        },
        Case {
            name: "10^6-byte non-200 body",
            answer: response("503 Service Unavailable", big.as_bytes()),
            shown: None,
            never: None,
        },
        Case {
            name: "10^6-byte state",
            answer: server_info(&format!("\"{big}\""), "0"),
            shown: None,
            never: None,
        },
        Case {
            name: "state LIVE with a trailing space",
            answer: server_info("\"LIVE \"", "0"),
            shown: Some("\"LIVE \""),
            never: None,
        },
        Case {
            name: "epoch 2^64",
            answer: server_info("\"LIVE\"", "18446744073709551616"),
            shown: Some("out of range"),
            never: Some("a fraction"),
        },
    ]
}

/// Chain 5: whatever the admin answers, every log line stays one line of
/// the wrapper's own shape, at most 1 KiB; a forged line never starts a
/// line; a state is shown quoted; 2^64 is "out of range".
#[test]
fn chain5_admin_answers_cannot_forge_or_flood_the_log() {
    let mut problems = Vec::new();
    for case in cases() {
        let admin = RawAdmin::tcp(case.answer);
        let mut w = Wrapper::start(&["--envoy-admin", &admin.addr, "--ready-timeout", "0.5"]);
        // Epoch 0 is never LIVE: killed at the ready timeout, exit 1.
        let status = w.wait_exit(DEADLINE);
        let lines = w.log_lines();
        let said = lines
            .iter()
            .find(|l| l.contains("not ready after"))
            .map(|l| l.chars().take(300).collect::<String>());
        for line in &lines {
            if let Err(why) = check_log_line(line, w.pid) {
                problems.push(format!(
                    "{}: not a log line of the wrapper ({why}): {:?}",
                    case.name,
                    line.chars().take(200).collect::<String>()
                ));
            }
            if line.len() > LINE_LIMIT {
                problems.push(format!(
                    "{}: a log line of {} bytes: {:?}...",
                    case.name,
                    line.len(),
                    line.chars().take(200).collect::<String>()
                ));
            }
            if let Some(never) = case.never
                && line.contains(never)
            {
                problems.push(format!("{}: {never:?} in {line:?}", case.name));
            }
        }
        if lines.iter().any(|l| l.starts_with(&FORGED[..26])) {
            problems.push(format!("{}: the forged line starts a line", case.name));
        }
        if let Some(shown) = case.shown
            && !lines.iter().any(|l| l.contains(shown))
        {
            problems.push(format!(
                "{}: no log line shows {shown:?} (the line: {said:?})",
                case.name
            ));
        }
        eprintln!(
            "[faults chain 5] {}: exit {status}, {} log lines, the longest {} bytes",
            case.name,
            lines.len(),
            lines.iter().map(String::len).max().unwrap_or(0)
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Chain 6: `stop --wait` while a child ignores SIGTERM, then the wrapper
/// is SIGKILLed: the client exits 1 saying it got no reply, never 0.
/// Five times: how the client sees the wrapper die is a race (the
/// listening socket may close before or after the connection).
#[test]
fn chain6_stop_wait_is_not_success_when_the_wrapper_is_killed() {
    for round in 1..=5 {
        let answer = stop_wait_then_sigkill();
        eprintln!("[faults chain 6] round {round}: {}", answer.describe());
        assert_eq!(
            answer.code,
            Some(1),
            "stop --wait after the wrapper was killed (round {round}): {}",
            answer.describe()
        );
        assert!(
            answer
                .stderr
                .contains("closed the connection without a reply"),
            "{}",
            answer.describe()
        );
    }
}

/// Start a wrapper whose child ignores SIGTERM, send `stop --wait`,
/// SIGKILL the wrapper once the child got its SIGTERM; what the client
/// answered.
fn stop_wait_then_sigkill() -> crate::probe::CtlAnswer {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let socket_arg = socket.display().to_string();
    let w = Wrapper::start_with(
        &["--control-socket", &socket_arg, "--term-wait", "30"],
        REPORTER,
        |cmd| {
            cmd.env("IGNORE_TERM", "1");
        },
    );
    let child = w.ready_pid(0);
    let _guard = ProcessGuard::new(child);
    let stop = crate::probe::ctl_in_background(&socket, &["stop", "--wait"], DEADLINE);
    let report = w.path().join("epoch-0");
    assert!(
        wait_until(DEADLINE, || fs::read_to_string(&report)
            .is_ok_and(|t| t.contains("term"))),
        "the child never got SIGTERM; output:\n{}",
        w.output()
    );
    w.signal(Signal::SIGKILL);
    assert!(wait_until(DEADLINE, || !running(w.pid)));
    stop.join().unwrap()
}
