//! Scripted runs of `--drain-on-stop`: who is named as drained, when the
//! requests in flight are counted (every quarter second, one count out at
//! a time), and the core's own guard against a drain without an admin.

use std::time::Duration;

use hot_restarter::core::{Action, Answer, Event, Notify, PhaseName, Query, Settings};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::regressions::Script;

fn drain_on_stop() -> Settings {
    Settings {
        envoy_admin: true,
        drain_on_stop: Some(Duration::from_secs(30)),
        ..Settings::plain()
    }
}

/// Epochs 0 and 1 (PIDs 100, 101) live, then SIGTERM: draining.
fn draining() -> Script {
    let mut s = Script::serving(drain_on_stop());
    s.hup(); // epoch 1: PID 101
    s.live(0, 1, 101);
    s.log();
    let actions = s.feed(Event::Signal(Signal::SIGTERM));
    assert_eq!(
        actions,
        [
            Action::Notify(Notify::Stopping),
            Action::Ask(Query::HealthcheckFail { generation: 0 }),
            Action::Ask(Query::Drain { generation: 0 }),
        ]
    );
    assert_eq!(s.core.phase(), PhaseName::DrainingForStop);
    s
}

/// The drain's line names every epoch it drains.
#[test]
fn a_drain_before_a_stop_names_the_epochs_it_drains() {
    let mut s = draining();
    assert_eq!(
        s.logged(|l| l.starts_with("draining Envoy")),
        [
            "INFO draining Envoy (epoch 0 (PID=100), epoch 1 (PID=101)) for up to 30.0 s \
             before stopping (--drain-on-stop)"
        ]
    );
}

/// The requests in flight are counted a quarter second after the drain
/// begins, and not asked again while that count is out.
#[test]
fn requests_in_flight_are_counted_one_count_at_a_time() {
    let mut s = draining();
    let count = [Action::Ask(Query::InFlight { generation: 0 })];
    s.now += Duration::from_millis(250);
    assert_eq!(s.feed(Event::Tick), count);
    for _ in 0..3 {
        s.now += Duration::from_millis(250);
        assert_eq!(s.feed(Event::Tick), [], "a count is still out");
    }
    let actions = s.answer(Query::InFlight { generation: 0 }, Ok(Answer::InFlight(3)));
    assert_eq!(actions, []);
    s.now += Duration::from_millis(250);
    assert_eq!(s.feed(Event::Tick), count);
}

/// Without an admin to ask there is no drain: a stop sends SIGTERM at
/// once, even with a drain time set.
#[test]
fn no_drain_without_an_admin() {
    let mut s = Script::new(Settings {
        envoy_admin: false,
        ..drain_on_stop()
    });
    let actions = s.feed(Event::Signal(Signal::SIGTERM));
    let sigterm = Action::Signal(Pid::from_raw(100), Signal::SIGTERM);
    assert_eq!(actions, [Action::Notify(Notify::Stopping), sigterm]);
    assert_eq!(s.core.phase(), PhaseName::ShuttingDown);
}

/// At `at` after the drain began (`t0`), a tick starts a count, and the
/// admin answers it with `answer`; the lines logged meanwhile.
fn count(
    s: &mut Script,
    t0: std::time::Instant,
    at: f64,
    answer: Result<Answer, String>,
) -> Vec<String> {
    s.now = t0 + Duration::from_secs_f64(at);
    let asked = s.feed(Event::Tick);
    assert_eq!(asked, [Action::Ask(Query::InFlight { generation: 0 })]);
    s.answer(Query::InFlight { generation: 0 }, answer);
    s.logged(|_| true)
}

/// What the drain says: failed admin requests, each new count, a count
/// that failed, and the quiet second that ends it.
#[test]
fn a_drain_says_what_it_counts_and_when_it_is_over() {
    let mut s = draining();
    let t0 = s.now;
    s.log();
    s.answer(
        Query::HealthcheckFail { generation: 0 },
        Err("refused".into()),
    );
    s.answer(Query::Drain { generation: 0 }, Err("timed out".into()));
    assert_eq!(
        s.logged(|_| true),
        [
            "WARN POST /healthcheck/fail to generation 0's admin failed: \"refused\"",
            "WARN POST /drain_listeners?graceful to generation 0's admin failed: \"timed out\"",
        ]
    );
    let n = |n| Ok(Answer::InFlight(n));
    assert_eq!(
        count(&mut s, t0, 0.5, n(3)),
        ["INFO draining: 3 requests in flight after 0.5 s"]
    );
    assert_eq!(count(&mut s, t0, 1.0, n(3)), [] as [&str; 0]);
    assert_eq!(
        count(&mut s, t0, 1.5, Err("reset".into())),
        ["WARN cannot count the requests in flight of generation 0: \"reset\""]
    );
    assert_eq!(count(&mut s, t0, 2.0, n(0)), [] as [&str; 0]);
    assert_eq!(count(&mut s, t0, 2.5, n(0)), [] as [&str; 0]);
    assert_eq!(s.core.phase(), PhaseName::DrainingForStop);
    let lines = count(&mut s, t0, 3.0, n(0));
    assert_eq!(
        lines[0],
        "INFO drained: no request in flight after 3.0 s; stopping"
    );
    assert_eq!(s.core.phase(), PhaseName::ShuttingDown);
}

/// At the deadline the drain gives up, saying how many requests it last
/// counted, or that it does not know.
#[test]
fn a_drain_that_runs_out_of_time_says_what_is_left() {
    for (answer, left) in [
        (Ok(Answer::InFlight(2)), "2 requests in flight"),
        (
            Err("reset".to_string()),
            "an unknown number of requests in flight",
        ),
    ] {
        let mut s = draining();
        let t0 = s.now;
        count(&mut s, t0, 0.5, answer);
        s.now = t0 + Duration::from_secs(30);
        s.feed(Event::Tick);
        let want = format!("WARN drain deadline passed after 30.0 s with {left}; stopping");
        assert_eq!(s.logged(|l| l.starts_with("drain deadline")), [want]);
        assert_eq!(s.core.phase(), PhaseName::ShuttingDown);
    }
}

/// With two generations (one handed off, still draining its own
/// requests), a count is complete only once both have answered: a quiet
/// second is not ended by one generation's 0 while the other is out.
#[test]
fn a_count_over_two_generations_waits_for_both() {
    let mut s = Script::serving(Settings {
        handoff: true,
        ..drain_on_stop()
    });
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1: PID 101
    s.live(1, 0, 101); // generation 0 retires
    s.feed(Event::Signal(Signal::SIGTERM));
    assert_eq!(s.core.phase(), PhaseName::DrainingForStop);
    let t0 = s.now;
    let both = [0, 1].map(|generation| Action::Ask(Query::InFlight { generation }));
    let n = |n| Ok(Answer::InFlight(n));
    for (at, answers) in [(0.5, [0, 0]), (1.5, [0, 5])] {
        s.now = t0 + Duration::from_secs_f64(at);
        assert_eq!(s.feed(Event::Tick), both);
        s.answer(Query::InFlight { generation: 0 }, n(answers[0]));
        assert_eq!(s.core.phase(), PhaseName::DrainingForStop, "at {at} s");
        s.log();
        s.answer(Query::InFlight { generation: 1 }, n(answers[1]));
    }
    assert_eq!(s.core.phase(), PhaseName::DrainingForStop);
    assert_eq!(
        s.logged(|l| l.starts_with("draining:")),
        ["INFO draining: 5 requests in flight after 1.5 s"]
    );
}
