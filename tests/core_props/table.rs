//! The state × event table of docs/architecture.md, checked against the
//! core: every call of the core (nested ones too) must lead from its phase
//! to one of the phases the table lists for that phase and event (T1).

use std::collections::HashMap;
use std::sync::OnceLock;

use hot_restarter::control::proto::phase_name as name;
use hot_restarter::core::{Command, Event, PhaseName};
use nix::sys::signal::Signal;

use crate::harness::Harness;

type Table = HashMap<(String, String), Vec<String>>;

/// The table, read once from the document.
fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/architecture.md");
        let doc = std::fs::read_to_string(path).expect("docs/architecture.md");
        let begin = doc
            .find("<!-- transitions:begin -->")
            .expect("begin marker");
        let end = doc.find("<!-- transitions:end -->").expect("end marker");
        let cells = |row: &str| -> Vec<String> {
            let row = row.trim().trim_start_matches('|').trim_end_matches('|');
            row.split('|').map(|c| c.trim().to_string()).collect()
        };
        let mut rows = doc[begin..end].lines().filter(|l| l.starts_with('|'));
        let header = cells(rows.next().expect("header"));
        let mut table = Table::new();
        for row in rows.skip(1) {
            let row = cells(row);
            for (event, to) in header.iter().zip(&row).skip(1) {
                let to = to.split(',').map(|s| s.trim().to_string()).collect();
                table.insert((row[0].clone(), event.clone()), to);
            }
        }
        assert_eq!(table.len(), 9 * 9, "9 states × 9 events in the table");
        table
    })
}

/// The table's column for an event.
fn column(ev: &Event) -> &'static str {
    match ev {
        Event::Start => "start",
        Event::Signal(Signal::SIGHUP | Signal::SIGUSR2)
        | Event::Changed(_)
        | Event::Control(_, Command::Reload { .. } | Command::Handoff { .. }) => "restart",
        Event::Signal(Signal::SIGUSR1) | Event::Control(_, Command::ReopenLogs) => "usr1",
        Event::Signal(_) | Event::Control(_, Command::Stop { .. }) => "stop",
        Event::Control(_, Command::Status | Command::Reexec { .. })
        | Event::ControlGone(_)
        | Event::HelperOutput(..)
        | Event::ReexecFailed(_) => "other",
        Event::Reaped(_) => "reaped",
        Event::Spawned(..) => "spawned",
        Event::Answered(..) => "answered",
        Event::Tick => "tick",
    }
}

/// T1 for one call of the core: Err names the cell that forbids it.
pub fn allows(ev: &Event, from: PhaseName, to: PhaseName) -> Result<(), String> {
    let key = (name(from).to_string(), column(ev).to_string());
    let allowed = &table()[&key];
    match allowed.iter().any(|a| a == name(to)) {
        true => Ok(()),
        false => Err(format!(
            "T1: {ev:?} led from {} to {}; docs/architecture.md allows {allowed:?}",
            key.0,
            name(to)
        )),
    }
}

impl Harness {
    /// T1, after each call of the core.
    pub fn check_table(&self, ev: &Event, from: PhaseName, to: PhaseName) {
        let key = (name(from).to_string(), column(ev).to_string());
        let allowed = &table()[&key];
        self.ensure(allowed.iter().any(|a| a == name(to)), || {
            format!(
                "T1: {ev:?} led from {} to {}; docs/architecture.md allows {allowed:?}",
                key.0,
                name(to)
            )
        });
    }
}
