//! Scripted runs of an old generation's way out after a handoff: its
//! listeners counted until none is left, then SIGTERM; its children's
//! exits named as handed off.

use hot_restarter::core::{Action, Answer, Event, Exit, Query};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::regressions::{Script, handoff};

/// Generation 1 (PID 101) has taken over from generation 0 (PID 100),
/// whose admin took the drain request: its listeners are being counted.
fn counting() -> Script {
    let mut s = Script::serving(handoff(false));
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1: PID 101
    s.live(1, 0, 101); // Drain { generation: 0 } is out
    let actions = s.answer(Query::Drain { generation: 0 }, Ok(Answer::Ok));
    assert_eq!(actions, [Action::Ask(listening())]);
    s
}

fn listening() -> Query {
    Query::Listening {
        generation: 0,
        pid: Pid::from_raw(100),
    }
}

fn sigterms(actions: &[Action]) -> Vec<i32> {
    (actions.iter())
        .filter_map(|a| match a {
            Action::Signal(pid, Signal::SIGTERM) => Some(pid.as_raw()),
            _ => None,
        })
        .collect()
}

/// While the old generation still listens (or cannot be counted), it is
/// counted again a poll later; once it listens on nothing it is stopped,
/// long before the drain limit.
#[test]
fn an_old_generation_is_counted_again_until_its_listeners_are_closed() {
    let mut s = counting();
    for answer in [Ok(Answer::Listening(2)), Err("timed out".to_string())] {
        let actions = s.answer(listening(), answer);
        assert!(actions.is_empty(), "{actions:?}");
        s.now += std::time::Duration::from_millis(100);
        let actions = s.feed(Event::Tick);
        assert_eq!(actions, [Action::Ask(listening())]);
    }
    let actions = s.answer(listening(), Ok(Answer::Listening(0)));
    assert_eq!(sigterms(&actions), [100]);
}

/// The old generation's exit is logged with its generation and epoch and
/// "handed off", and decides nothing.
#[test]
fn a_handed_off_childs_exit_is_named_as_such() {
    let mut s = counting();
    s.answer(listening(), Ok(Answer::Listening(0)));
    s.log();
    s.reap(&[(100, Exit::Signal(15))]);
    assert_eq!(
        s.logged(|l| l.starts_with("PID=100")),
        ["INFO PID=100 (generation 0 epoch 0, handed off) was killed with signal=15"]
    );
    assert!(s.core.children().iter().all(|c| c.pid.as_raw() == 101));
}
