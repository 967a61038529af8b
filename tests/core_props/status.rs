//! Scripted runs of what the status tells: each reload counted once by
//! its result, the children it lists, and requests that wait for a
//! cancelled restart answered by its retry.

use hot_restarter::core::{Action, Command, Counters, Event, Exit, ReloadResult, Reply, Settings};
use hot_restarter::core::{ChildState, WaiterId};
use nix::sys::signal::Signal;

use crate::regressions::{Script, epoch_1_awaiting_its_ready_check, handoff};

/// The result of the last reload, and the counters.
fn tally(s: &mut Script) -> (Option<ReloadResult>, Counters) {
    let view = s.status();
    (view.last_reload.map(|r| r.result), view.counters)
}

/// A hot restart done, skipped by its preflight, and failed (with
/// --keep-serving, so the wrapper runs on) each count once, as their own.
#[test]
fn each_reload_is_counted_once_by_its_result() {
    let mut s = Script::new(Settings {
        preflight: Some("/fake/preflight".into()),
        ready_check: Some("/fake/ready".into()),
        keep_serving: true,
        ..Settings::plain()
    });
    s.reap(&[(101, Exit::Code(0))]); // epoch 0 (100) is ready
    assert_eq!(tally(&mut s), (None, Counters::default()));
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight: 102
    s.reap(&[(102, Exit::Code(0))]); // epoch 1 (103), its ready check (104)
    s.reap(&[(104, Exit::Code(0))]);
    let mut want = Counters {
        reloads_done: 1,
        ..Counters::default()
    };
    assert_eq!(tally(&mut s), (Some(ReloadResult::Done), want.clone()));
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight: 105
    s.reap(&[(105, Exit::Code(1))]);
    want.reloads_skipped = 1;
    assert_eq!(tally(&mut s), (Some(ReloadResult::Skipped), want.clone()));
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight: 106
    s.reap(&[(106, Exit::Code(0))]); // epoch 2 (107), its ready check (108)
    s.reap(&[(107, Exit::Code(1))]);
    want.reloads_failed = 1;
    assert_eq!(tally(&mut s), (Some(ReloadResult::Failed), want.clone()));
    assert_eq!(s.core.exit_code(), None);
}

/// A handoff done and one whose new generation fails count as handoffs,
/// not as reloads.
#[test]
fn each_handoff_is_counted_once_by_its_result() {
    let mut s = Script::serving(handoff(false));
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1: PID 101
    s.live(1, 0, 101);
    let mut want = Counters {
        handoffs_done: 1,
        ..Counters::default()
    };
    assert_eq!(tally(&mut s), (Some(ReloadResult::Done), want.clone()));
    s.reap(&[(100, Exit::Code(0))]); // generation 0 is gone
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 2: PID 102
    s.reap(&[(102, Exit::Code(1))]);
    want.handoffs_failed = 1;
    assert_eq!(tally(&mut s), (Some(ReloadResult::Failed), want));
    assert_eq!(s.core.exit_code(), None);
}

/// The status lists the children in start order, without an epoch given
/// up on (killed, not reaped yet).
#[test]
fn the_status_lists_the_children_but_not_one_given_up_on() {
    let mut s = epoch_1_awaiting_its_ready_check();
    let pids = |s: &mut Script| -> Vec<i32> {
        (s.status().children.iter())
            .map(|c| c.pid.as_raw())
            .collect()
    };
    assert_eq!(pids(&mut s), [100, 102]);
    s.now += Settings::plain().ready_timeout;
    s.feed(Event::Tick); // epoch 1 is given up on and killed
    assert_eq!(s.state(102), Some(ChildState::Abandoned));
    assert_eq!(pids(&mut s), [100]);
}

/// Two `reload --wait` clients, one waiting for the restart whose
/// preflight runs and one for the restart held behind it: when the
/// serving epoch fails and the preflight is cancelled, one retry answers
/// both, alike.
#[test]
fn a_cancelled_restart_and_the_one_held_behind_it_share_the_retry() {
    let mut s = Script::new(Settings {
        preflight: Some("/fake/preflight".into()),
        keep_serving: true,
        ..Settings::plain()
    });
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight: 101
    s.reap(&[(101, Exit::Code(0))]); // epoch 1: 102
    s.control(1, Command::Reload { wait: true }); // preflight: 103
    s.control(2, Command::Reload { wait: true }); // held
    s.reap(&[(102, Exit::Code(1))]); // the preflight for epoch 2 is cancelled
    s.reap(&[(103, Exit::Signal(9))]); // the retry's preflight: 104
    let actions = s.reap(&[(104, Exit::Code(0))]); // epoch 1 again: 105
    let replies: Vec<(u64, &Reply)> = (actions.iter())
        .filter_map(|a| match a {
            Action::Reply(WaiterId(c), reply) => Some((*c, reply)),
            _ => None,
        })
        .collect();
    let done = Reply::Done {
        detail: "epoch 1 (PID=105) runs".into(),
    };
    assert_eq!(replies, [(1, &done), (2, &done)], "{actions:?}");
    assert!(!s.core.held(), "a second restart is held");
}

/// What a held reload answers to adds up while it is held: a change
/// outweighs the SIGHUP held before it, the changed files are joined
/// without repeats, and the status names four of them and counts the rest.
#[test]
fn a_held_reloads_trigger_adds_up_the_changes_held() {
    let mut s = Script::serving(Settings {
        envoy_admin: true,
        ..Settings::plain()
    });
    let changed = |paths: &[&str]| Event::Changed(paths.iter().map(Into::into).collect());
    s.feed(changed(&["/a"])); // epoch 1: PID 101, not LIVE yet
    s.feed(Event::Signal(Signal::SIGHUP)); // held
    s.feed(changed(&["/b", "/a"]));
    s.feed(changed(&["/a", "/c", "/d", "/e", "/f"]));
    s.live(0, 1, 101); // the held reload: epoch 2, PID 102
    s.live(0, 2, 102);
    let trigger = s.status().last_reload.and_then(|r| r.trigger);
    assert_eq!(
        trigger.as_deref(),
        Some(r#""/b", "/a", "/c", "/d", and 2 more changed"#)
    );
    // Four files are all named, with no count after them.
    s.feed(changed(&["/a", "/b", "/c", "/d"])); // epoch 3: PID 103
    s.live(0, 3, 103);
    let trigger = s.status().last_reload.and_then(|r| r.trigger);
    assert_eq!(
        trigger.as_deref(),
        Some(r#""/a", "/b", "/c", "/d" changed"#)
    );
}
