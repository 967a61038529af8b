//! `hot-restarter-ctl check`: whether a ready child serves, judged on the
//! client's side from the `status` reply, for exec probes (Kubernetes,
//! monit's `check program`, runit's `check`).

use super::status::{Status, child_state};

/// The phases in which the wrapper keeps its children serving; any other
/// (shutting down, killing, exiting, or one this client does not know)
/// means the wrapper is stopping.
const SERVING_PHASES: [&str; 4] = ["running", "preflight", "starting", "handing-off"];

/// `Ok` with a line naming the serving child while a ready one serves
/// (during a reload the older epoch still does; after a failed reload that
/// `--keep-serving` survived, the one that stayed); `Err` with the reason
/// while none does.
pub fn serving(status: &Status) -> Result<String, String> {
    if !SERVING_PHASES.contains(&status.phase.as_str()) {
        return Err(format!("hot-restarter is stopping ({})", status.phase));
    }
    if let Some(c) = status.serving() {
        return Ok(format!(
            "epoch {} generation {} (PID={}) serves",
            c.epoch, c.generation, c.pid
        ));
    }
    let starting = status
        .children
        .iter()
        .filter(|c| c.state == child_state::STARTING)
        .max_by_key(|c| (c.generation, c.epoch));
    Err(match starting {
        Some(c) => format!(
            "no ready child: epoch {} generation {} (PID={}) is not ready yet",
            c.epoch, c.generation, c.pid
        ),
        None if status.children.is_empty() => "no child runs".to_string(),
        None => "no ready child: only draining ones run".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::status::{ChildStatus, Counters};

    fn status(phase: &str, children: &[(u32, &str)]) -> Status {
        Status {
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
}
