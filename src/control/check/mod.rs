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
mod tests;
