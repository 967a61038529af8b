//! Unit tests of the parent module.

use super::*;
use crate::control::status::{ChildStatus, Counters};

fn status(phase: &str, children: &[(u32, &str)]) -> Status {
    Status {
        version: String::new(),
        exe: String::new(),
        reexecs: 0,
        pid: 10,
        phase: phase.to_string(),
        uptime_s: 1.0,
        children: children
            .iter()
            .map(|&(epoch, state)| ChildStatus {
                pid: 100 + epoch,
                epoch,
                generation: 0,
                state: state.to_string(),
            })
            .collect(),
        last_reload: None,
        counters: Counters::default(),
    }
}

#[test]
fn a_ready_child_serves_also_while_the_next_one_starts() {
    let s = status("starting", &[(0, "ready"), (1, "starting")]);
    assert_eq!(
        serving(&s),
        Ok("epoch 0 generation 0 (PID=100) serves".into())
    );
    let s = status("running", &[(0, "draining"), (1, "ready")]);
    assert_eq!(
        serving(&s),
        Ok("epoch 1 generation 0 (PID=101) serves".into())
    );
}

#[test]
fn none_serves_before_the_first_is_ready_or_when_all_are_gone() {
    let s = status("starting", &[(0, "starting")]);
    let why = serving(&s).unwrap_err();
    assert!(
        why.contains("epoch 0 generation 0 (PID=100) is not ready yet"),
        "{why}"
    );
    assert_eq!(
        serving(&status("running", &[])),
        Err("no child runs".into())
    );
    let s = status("running", &[(0, "draining")]);
    assert!(serving(&s).unwrap_err().contains("only draining"));
}

#[test]
fn a_stopping_wrapper_serves_no_more() {
    for phase in [
        "draining-for-stop",
        "shutting-down",
        "killing",
        "exiting",
        "done",
        "some-new-phase",
    ] {
        let s = status(phase, &[(0, "ready")]);
        let why = serving(&s).unwrap_err();
        assert!(why.contains("stopping") && why.contains(phase), "{why}");
    }
}
