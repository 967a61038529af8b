//! What the driver, the status and the tests may read of the core:
//! read-only accessors, none of which changes anything.

use nix::unistd::Pid;

use super::{Child, Core, Phase, PhaseName, Work};

impl Core {
    /// Live children in start order.
    pub fn children(&self) -> &[Child] {
        &self.children
    }

    pub fn phase(&self) -> PhaseName {
        match &self.phase {
            Phase::Running(Work::Idle) => PhaseName::Running,
            Phase::Running(Work::Forking { .. }) => PhaseName::Starting,
            Phase::Running(Work::Comparing { .. }) => PhaseName::Preflight,
            Phase::Running(Work::Preflight { .. } | Work::Checking { .. }) => PhaseName::Preflight,
            Phase::Running(Work::Awaiting { .. }) => PhaseName::Starting,
            Phase::Running(Work::Retiring { .. }) => PhaseName::HandingOff,
            Phase::Draining(_) => PhaseName::DrainingForStop,
            Phase::ShuttingDown { .. } => PhaseName::ShuttingDown,
            Phase::Killing { .. } => PhaseName::Killing,
            Phase::Exiting { .. } => PhaseName::Exiting,
            Phase::Done(_) => PhaseName::Done,
        }
    }

    /// Every helper process not reaped yet (running or killed).
    pub fn helpers(&self) -> Vec<Pid> {
        let mut pids = self.killed_helpers.clone();
        pids.extend(self.helper_pid());
        pids
    }

    /// The epoch the next restart will use.
    pub fn next_epoch(&self) -> u32 {
        self.next_epoch
    }

    /// Whether a restart request is held.
    pub fn held(&self) -> bool {
        self.held.is_some()
    }

    /// The serving generation.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// How many changes of state were refused as senseless: always 0
    /// unless the core has a bug (debug builds panic at the first).
    pub fn refused(&self) -> u32 {
        self.refused
    }
}
