//! Scripted runs of the hot-restart chain rules (src/core/doom.rs): which
//! epoch a death dooms, how the warning names the dead one, and when a
//! doomed generation's replacement is held for later rather than started
//! or asked for twice.

use hot_restarter::core::{Event, Exit, JobKind, Settings};
use nix::sys::signal::Signal;

use crate::regressions::{Script, handoff, keep_serving, spawns};

/// The warnings of `s` since the last look that say an epoch will abort.
fn doom_warnings(s: &mut Script) -> Vec<String> {
    (s.log().into_iter())
        .filter(|(level, l)| *level == log::Level::Warn && l.contains(" will abort: "))
        .map(|(_, l)| l)
        .collect()
}

/// A handoff script (with --keep-serving) whose generation 0 has epochs 0
/// and 1 (PIDs 100, 101) live.
fn two_live_epochs() -> Script {
    let mut s = Script::new(handoff(true));
    s.live(0, 0, 100);
    s.hup(); // epoch 1: PID 101
    s.live(0, 1, 101);
    s
}

/// As `two_live_epochs`, with a preflight: epochs 0 and 1 are PIDs 100
/// and 102 (101 was epoch 1's preflight).
fn two_live_epochs_with_preflight() -> Script {
    let mut s = Script::new(Settings {
        preflight: Some("/fake/preflight".into()),
        ..handoff(true)
    });
    s.live(0, 0, 100);
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight: PID 101
    s.reap(&[(101, Exit::Code(0))]); // epoch 1: PID 102
    s.live(0, 1, 102);
    s
}

/// With epochs 0 and 1 draining and 2 serving (PIDs 100, 101, 102), the
/// death of the serving epoch's own parent is named as such, even while
/// an older epoch still runs; an older epoch's death dooms the newest
/// through the epoch between them, and the warning says it is not the
/// parent.
#[test]
fn a_doom_warning_names_the_dead_epoch_as_parent_or_older_epoch() {
    let cases = [
        (101, "its hot-restart parent epoch 1 (PID=101) died"),
        (
            100,
            "an older epoch of its hot-restart chain, epoch 0 (PID=100) died",
        ),
    ];
    for (dead, named) in cases {
        let mut s = Script::new(keep_serving());
        s.hup();
        s.hup();
        assert_eq!(s.epochs(), [(100, 0), (101, 1), (102, 2)]);
        s.log();
        s.reap(&[(dead, Exit::Signal(9))]);
        let warnings = doom_warnings(&mut s);
        let want = format!("epoch 2 (PID=102) will abort: {named}");
        assert!(
            warnings.len() == 1 && warnings[0].starts_with(&want),
            "PID={dead} died: {warnings:?}"
        );
    }
}

/// A doom found while a preflight of the doomed generation runs: the
/// handoff is held, and once the preflight is over it starts instead of
/// the restart, whose epoch could never be ready.
#[test]
fn a_doom_during_a_preflight_holds_a_handoff_for_after_it() {
    let mut s = two_live_epochs_with_preflight();
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight: PID 103
    assert_eq!(s.core.helpers().len(), 1);
    s.log();
    s.reap(&[(100, Exit::Signal(9))]);
    assert_eq!(doom_warnings(&mut s).len(), 1);
    assert!(s.core.held(), "the handoff waits for the preflight");
    let actions = s.reap(&[(103, Exit::Code(0))]);
    // The new generation's own preflight.
    assert!(spawns(&actions, JobKind::Preflight, 0, 1), "{actions:?}");
    assert!(!spawns(&actions, JobKind::Epoch, 2, 0), "{actions:?}");
    let log = s.log();
    assert!(
        log.iter().any(|(_, l)| l
            .starts_with("restart to epoch 2 skipped because epoch 1 (PID=102) will abort")),
        "{log:?}"
    );
}

/// A doom found while the handoff's new slot is being checked asks for
/// no second handoff: the one under way is the way out.
#[test]
fn a_doom_during_a_handoff_asks_for_no_second_one() {
    let mut s = two_live_epochs();
    s.defer_occupied = true;
    s.feed(Event::Signal(Signal::SIGUSR2)); // the new slot is checked
    s.log();
    s.reap(&[(100, Exit::Signal(9))]);
    assert_eq!(doom_warnings(&mut s).len(), 1);
    assert!(!s.core.held(), "a second handoff was held");
}

/// The awaited epoch and an older one die in one batch: the serving epoch
/// between them is doomed, and a new generation is started (held while
/// the failed restart is judged, at the latest).
#[test]
fn a_doom_in_the_batch_of_a_failed_restart_hands_off() {
    let mut s = two_live_epochs();
    s.hup(); // epoch 2: PID 102, awaited
    s.log();
    let actions = s.reap(&[(100, Exit::Signal(9)), (102, Exit::Code(1))]);
    assert!(!doom_warnings(&mut s).is_empty());
    assert!(spawns(&actions, JobKind::Epoch, 0, 1), "{actions:?}");
    // The new generation is not doomed: once it serves, SIGHUP hot-restarts
    // it again, with no further handoff.
    s.live(1, 0, 103);
    s.reap(&[(101, Exit::Code(0))]); // generation 0 retired
    let actions = s.feed(Event::Signal(Signal::SIGHUP));
    assert!(spawns(&actions, JobKind::Epoch, 1, 1), "{actions:?}");
}

/// The serving epoch fails while the preflight of a handoff runs: the
/// preflight is cancelled, as for any restart whose epoch numbers moved,
/// and retried for the handoff, not turned into a hot restart.
#[test]
fn a_handoff_preflight_cancelled_by_a_failure_is_retried_as_a_handoff() {
    let mut s = two_live_epochs_with_preflight();
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1's preflight: PID 103
    s.log();
    let actions = s.reap(&[(102, Exit::Code(1))]);
    assert!(spawns(&actions, JobKind::Preflight, 0, 1), "{actions:?}");
    assert!(!spawns(&actions, JobKind::Preflight, 1, 0), "{actions:?}");
    let log = s.log();
    assert!(
        log.iter()
            .any(|(_, l)| l == "cancelled the preflight for epoch 0; the restart will be retried"),
        "{log:?}"
    );
}

/// Without --handoff-admin, a hot restart of a doomed generation is
/// refused, and systemd hears of it as of any skipped reload: RELOADING=1,
/// then READY=1 with the epoch that still serves.
#[test]
fn a_refused_restart_of_a_doomed_generation_still_ends_a_systemd_reload() {
    use hot_restarter::core::{Action, Notify};
    let mut s = Script::new(keep_serving());
    s.hup(); // epoch 1: PID 101
    s.reap(&[(100, Exit::Signal(9))]); // epoch 1 is doomed
    let actions = s.feed(Event::Signal(Signal::SIGHUP));
    let notes: Vec<&Notify> = (actions.iter())
        .filter_map(|a| match a {
            Action::Notify(n) => Some(n),
            _ => None,
        })
        .collect();
    assert!(
        matches!(notes[..], [Notify::Reloading(_), Notify::Ready(_)]),
        "{actions:?}"
    );
}

/// A generation taken back after its successor failed once LIVE goes on
/// from its own newest epoch: should the new handoff fail too, its next
/// hot restart is the epoch after that one.
#[test]
fn a_generation_taken_back_counts_on_from_its_newest_epoch() {
    let mut s = Script::new(handoff(true));
    s.live(0, 0, 100);
    s.hup(); // epoch 1: PID 101
    s.live(0, 1, 101);
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1: PID 102
    s.live(1, 0, 102); // generation 0 retires
    s.reap(&[(102, Exit::Code(1))]); // taken back; handing off again: PID 103
    assert_eq!(s.core.generation(), 0);
    assert_eq!(s.core.next_epoch(), 2);
}
