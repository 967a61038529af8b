//! Scripted runs of what the core says where the model predicts only the
//! kind of answer: the reasons and counts in control replies (a refused
//! handoff, reopen-logs, a failed preflight's last words), and the debug
//! line about a reaped process nobody tracks.

use hot_restarter::core::Event;
use hot_restarter::core::{Action, Command, Exit, Reply, Settings, WaiterId};
use nix::sys::signal::Signal;

use crate::regressions::{Script, handoff};

/// The text of the one reply to `client` in `actions`.
fn reply_to(actions: &[Action], client: u64) -> String {
    let replies: Vec<String> = (actions.iter())
        .filter_map(|a| match a {
            Action::Reply(WaiterId(c), Reply::Done { detail }) if *c == client => {
                Some(format!("done: {detail}"))
            }
            Action::Reply(WaiterId(c), Reply::Failed { reason }) if *c == client => {
                Some(format!("failed: {reason}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1, "{actions:?}");
    replies[0].clone()
}

/// A handoff request names the flags it needs when they are not given,
/// and says the wrapper is stopping when it is.
#[test]
fn a_refused_handoff_says_why() {
    let mut s = Script::new(Settings::plain());
    let actions = s.control(1, Command::Handoff { wait: true });
    assert_eq!(
        reply_to(&actions, 1),
        "failed: handoff needs --envoy-admin and --handoff-admin"
    );
    let mut s = Script::serving(handoff(false));
    s.feed(Event::Signal(Signal::SIGTERM));
    let actions = s.control(2, Command::Handoff { wait: true });
    assert_eq!(
        reply_to(&actions, 2),
        "failed: the wrapper is shutting down"
    );
}

/// `reopen-logs` counts the children it signalled.
#[test]
fn reopen_logs_counts_the_children_signalled() {
    let mut s = Script::new(Settings::plain());
    s.hup();
    s.hup();
    let actions = s.control(1, Command::ReopenLogs);
    assert_eq!(reply_to(&actions, 1), "done: SIGUSR1 sent to 3 children");
}

/// A reaped process that is neither a child nor a helper is said so (at
/// debug level); a helper's exit is not.
#[test]
fn an_untracked_process_is_named_when_reaped() {
    let mut s = Script::new(Settings {
        ready_check: Some("/fake/ready".into()),
        ..Settings::plain()
    });
    s.log();
    s.reap(&[(101, Exit::Code(0))]); // epoch 0's ready check passes
    s.reap(&[(999, Exit::Code(0))]);
    assert_eq!(
        s.logged(|l| l.contains("not a child we track")),
        ["DEBUG reaped PID=999 (exited with code=0), not a child we track"]
    );
}

/// A failed preflight's reason carries its last words when it said
/// something, and nothing after the exit when it said nothing.
#[test]
fn a_failed_preflight_is_reported_with_its_last_words() {
    for (output, ending) in [
        (
            "checking\nbad config\n",
            "(PID=101 exited with code=1): checking / bad config",
        ),
        ("\n\n", "(PID=101 exited with code=1)"),
    ] {
        let mut s = Script::new(Settings {
            preflight: Some("/fake/preflight".into()),
            ..Settings::plain()
        });
        s.control(1, Command::Reload { wait: true }); // preflight: PID 101
        s.feed(Event::HelperOutput(
            nix::unistd::Pid::from_raw(101),
            output.into(),
        ));
        let actions = s.reap(&[(101, Exit::Code(1))]);
        let reply = reply_to(&actions, 1);
        assert!(
            reply.starts_with("failed: restart to epoch 1 skipped because its preflight failed")
                && reply.ends_with(ending),
            "{output:?}: {reply}"
        );
    }
}

/// The words of an earlier helper (a preflight that passed, saying
/// something) are not a later failed preflight's.
#[test]
fn a_failed_preflight_is_not_given_an_earlier_helpers_words() {
    let mut s = Script::new(Settings {
        preflight: Some("/fake/preflight".into()),
        ..Settings::plain()
    });
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight: PID 101
    s.feed(Event::HelperOutput(
        nix::unistd::Pid::from_raw(101),
        "all fine\n".into(),
    ));
    s.reap(&[(101, Exit::Code(0))]); // epoch 1: PID 102
    s.control(1, Command::Reload { wait: true }); // preflight: PID 103
    let actions = s.reap(&[(103, Exit::Code(1))]);
    let reply = reply_to(&actions, 1);
    assert!(reply.ends_with("(PID=103 exited with code=1)"), "{reply}");
}

/// A done reload says the new epoch "is ready" when readiness is checked,
/// and only that it "runs" when it is not.
#[test]
fn a_done_reload_says_ready_only_when_readiness_is_checked() {
    let mut s = Script::new(Settings::plain());
    let actions = s.control(1, Command::Reload { wait: true }); // epoch 1: PID 101
    assert_eq!(reply_to(&actions, 1), "done: epoch 1 (PID=101) runs");

    let mut s = Script::new(Settings {
        ready_check: Some("/fake/ready".into()),
        ..Settings::plain()
    });
    s.reap(&[(101, Exit::Code(0))]); // epoch 0 (100) is ready
    s.control(1, Command::Reload { wait: true }); // epoch 1 (102), its check (103)
    let actions = s.reap(&[(103, Exit::Code(0))]);
    assert_eq!(reply_to(&actions, 1), "done: epoch 1 (PID=102) is ready");
}

/// With --hold-while-draining, a SIGHUP held behind a draining epoch
/// names that epoch.
#[test]
fn a_sighup_held_behind_a_draining_epoch_names_it() {
    let mut s = Script::new(Settings {
        hold_while_draining: true,
        ..Settings::plain()
    });
    s.hup(); // epoch 1: PID 101; epoch 0 (100) drains
    s.log();
    s.feed(Event::Signal(Signal::SIGHUP));
    let log: Vec<String> = s.log().into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        log,
        [
            "got SIGHUP",
            "holding SIGHUP until epoch 0 (PID=100) has drained and exited"
        ]
    );
}

/// A skipped restart's log line names the epoch that keeps serving, with
/// its generation when generations are in use (--handoff-admin).
#[test]
fn a_skipped_restart_names_the_epoch_that_keeps_serving() {
    let cases = [
        (Settings::plain(), "epoch 0 (PID=100) keeps serving"),
        (
            handoff(false),
            "generation 0 epoch 0 (PID=100) keeps serving",
        ),
    ];
    for (settings, serving) in cases {
        let mut s = Script::new(Settings {
            preflight: Some("/fake/preflight".into()),
            ..settings
        });
        s.live(0, 0, 100);
        s.feed(Event::Signal(Signal::SIGHUP)); // preflight: PID 101
        s.log();
        s.reap(&[(101, Exit::Code(1))]);
        let skipped = s.logged(|l| l.starts_with("restart to epoch 1 skipped"));
        let want =
            format!("ERROR restart to epoch 1 skipped because its preflight failed; {serving}");
        assert_eq!(skipped, [want]);
    }
}

/// A preflight's last words are cut to their last 1000 characters.
#[test]
fn a_failed_preflights_last_words_are_cut_to_1000_characters() {
    let mut s = Script::new(Settings {
        preflight: Some("/fake/preflight".into()),
        ..Settings::plain()
    });
    s.control(1, Command::Reload { wait: true }); // preflight: PID 101
    let said = format!("one\ntwo\n{}{}\n", "a".repeat(500), "b".repeat(1000));
    s.feed(Event::HelperOutput(nix::unistd::Pid::from_raw(101), said));
    let actions = s.reap(&[(101, Exit::Code(1))]);
    let reply = reply_to(&actions, 1);
    let want = format!("(PID=101 exited with code=1): {}", "b".repeat(1000));
    assert!(reply.ends_with(&want), "{reply}");
}

/// A reexec held behind work says what it waits for: the restart in
/// flight, or a restart held behind a draining epoch; one asked for with
/// nothing in flight is not held.
#[test]
fn a_held_reexec_says_what_it_waits_for() {
    let holding = |s: &mut Script| {
        s.logged(|l| l.starts_with("holding the reexec") || l.starts_with("re-executing"))
    };
    // A restart in flight: epoch 1's ready check runs.
    let mut s = Script::new(Settings {
        ready_check: Some("/fake/ready".into()),
        ..Settings::plain()
    });
    s.reap(&[(101, Exit::Code(0))]); // epoch 0 (100) is ready
    s.hup(); // epoch 1 (102), its ready check (103) runs
    s.log();
    s.control(1, Command::Reexec { wait: true });
    assert_eq!(
        holding(&mut s),
        ["INFO holding the reexec until the restart in flight is over"]
    );
    // A SIGHUP held behind a draining epoch.
    let mut s = Script::new(Settings {
        hold_while_draining: true,
        ..Settings::plain()
    });
    s.hup(); // epoch 1: PID 101; epoch 0 (100) drains
    s.feed(Event::Signal(Signal::SIGHUP)); // held
    s.log();
    s.control(1, Command::Reexec { wait: true });
    assert_eq!(
        holding(&mut s),
        ["INFO holding the reexec until the held restart is over"]
    );
    // Nothing in flight.
    let mut s = Script::new(Settings::plain());
    s.log();
    s.control(1, Command::Reexec { wait: true });
    assert_eq!(holding(&mut s), ["INFO re-executing the wrapper's binary"]);
}

/// A reexec the driver could not carry out is said, quoted, at warning
/// level.
#[test]
fn a_refused_reexec_is_said_with_its_reason() {
    let mut s = Script::new(Settings::plain());
    s.log();
    s.feed(Event::ReexecFailed("no such file\n".into()));
    assert_eq!(
        s.logged(|l| l.starts_with("reexec refused")),
        ["WARN reexec refused, this binary stays in charge: \"no such file\\n\""]
    );
}

/// Generations take the two admin slots in turn, and the log says which.
#[test]
fn a_handoff_names_the_slot_of_the_new_generation() {
    let mut s = Script::serving(handoff(false));
    let slots = |s: &mut Script| {
        s.logged(|l| l.starts_with("handing off") || l.starts_with("epoch 0 is of"))
    };
    s.log();
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1: PID 101
    assert_eq!(
        slots(&mut s),
        [
            "INFO handing off from generation 0 to generation 1 (slot 1): SIGUSR2",
            "INFO epoch 0 is of generation 1 (slot 1)"
        ]
    );
    s.live(1, 0, 101);
    s.reap(&[(100, Exit::Code(0))]); // generation 0 is gone
    s.log();
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 2: PID 102
    assert_eq!(
        slots(&mut s),
        [
            "INFO handing off from generation 1 to generation 2 (slot 0): SIGUSR2",
            "INFO epoch 0 is of generation 2 (slot 0)"
        ]
    );
}
