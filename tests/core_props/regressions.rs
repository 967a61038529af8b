//! Deterministic regressions, each a scripted run of the core: the
//! --keep-serving exit code, the batch judgement and a ready check left
//! running by a failed restart; then the defects the property tests found
//! with Envoy's admin, generations and control requests.

use std::time::Instant;

use hot_restarter::core::Exit;
use hot_restarter::core::WaiterId;
use hot_restarter::core::{
    Action, Answer, ChildState, Core, Event, Job, JobKind, PhaseName, Query, Settings,
};
use hot_restarter::core::{Command, Reply, StatusView};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A minimal driver: every spawn succeeds with the next pid (100, 101...);
/// a new generation's admin address is free unless `taken` names what
/// answers there.
pub(crate) struct Script {
    pub(crate) core: Core,
    pub(crate) now: Instant,
    next_pid: i32,
    taken: Option<String>,
    /// Leave the new slot's admin question unanswered, as a slow connect
    /// would, so that events can come between the question and its answer.
    pub(crate) defer_occupied: bool,
}

impl Script {
    pub(crate) fn new(settings: Settings) -> Script {
        let now = Instant::now();
        let mut s = Script {
            core: Core::new(settings, now),
            now,
            next_pid: 100,
            taken: None,
            defer_occupied: false,
        };
        s.feed(Event::Start);
        s
    }

    /// As `new`, then generation 0's admin says LIVE for epoch 0 (PID 100).
    pub(crate) fn serving(settings: Settings) -> Script {
        let mut s = Script::new(settings);
        s.live(0, 0, 100);
        s
    }

    pub(crate) fn feed(&mut self, event: Event) -> Vec<Action> {
        let mut done = Vec::new();
        let mut queue: std::collections::VecDeque<Action> =
            self.core.handle(event, self.now).into();
        while let Some(action) = queue.pop_front() {
            assert!(done.len() < 1000, "one event led to 1000 actions");
            let more = match &action {
                Action::Spawn(job) => {
                    let pid = Pid::from_raw(self.next_pid);
                    self.next_pid += 1;
                    self.core.handle(Event::Spawned(*job, Ok(pid)), self.now)
                }
                Action::Ask(Query::Occupied { .. }) if self.defer_occupied => Vec::new(),
                Action::Ask(query @ Query::Occupied { .. }) => {
                    let answer = match &self.taken {
                        Some(addr) => Ok(Answer::Answers(addr.clone())),
                        None => Err("connection refused".to_string()),
                    };
                    self.core.handle(Event::Answered(*query, answer), self.now)
                }
                _ => Vec::new(),
            };
            for a in more.into_iter().rev() {
                queue.push_front(a);
            }
            done.push(action);
        }
        done
    }

    pub(crate) fn hup(&mut self) {
        let actions = self.feed(Event::Signal(Signal::SIGHUP));
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Spawn(Job {
                kind: JobKind::Epoch,
                ..
            })
        )));
    }

    pub(crate) fn reap(&mut self, batch: &[(i32, Exit)]) -> Vec<Action> {
        let batch = batch.iter().map(|&(p, e)| (Pid::from_raw(p), e)).collect();
        self.feed(Event::Reaped(batch))
    }

    pub(crate) fn epochs(&self) -> Vec<(i32, u32)> {
        (self.core.children().iter())
            .map(|c| (c.pid.as_raw(), c.epoch))
            .collect()
    }

    pub(crate) fn answer(&mut self, query: Query, answer: Result<Answer, String>) -> Vec<Action> {
        self.feed(Event::Answered(query, answer))
    }

    /// Envoy's admin says LIVE at `epoch`, to the question about `pid`.
    pub(crate) fn live(&mut self, generation: u32, epoch: u32, pid: i32) -> Vec<Action> {
        let pid = Pid::from_raw(pid);
        let info = Answer::ServerInfo {
            state: "LIVE".into(),
            restart_epoch: Some(epoch),
            uptime: Some(std::time::Duration::ZERO),
        };
        let query = Query::ServerInfo {
            generation,
            epoch,
            pid,
        };
        self.answer(query, Ok(info))
    }

    pub(crate) fn control(&mut self, client: u64, request: Command) -> Vec<Action> {
        self.feed(Event::Control(WaiterId(client), request))
    }

    /// The core's status, as a client (number 99) is answered.
    pub(crate) fn status(&mut self) -> StatusView {
        let actions = self.control(99, Command::Status);
        match &actions[..] {
            [Action::Reply(WaiterId(99), Reply::Status(view))] => (**view).clone(),
            other => panic!("status did {other:?}"),
        }
    }

    fn replied(&self, actions: &[Action], client: u64) -> bool {
        (actions.iter()).any(|a| matches!(a, Action::Reply(WaiterId(c), _) if *c == client))
    }

    fn replied_done(&self, actions: &[Action], client: u64) -> bool {
        (actions.iter())
            .any(|a| matches!(a, Action::Reply(WaiterId(c), Reply::Done { .. }) if *c == client))
    }

    /// The last child, `pid`, exits 0 after a failure that --keep-serving
    /// kept: the wrapper still exits 1.
    #[track_caller]
    fn last_exits_0_after_a_kept_failure(&mut self, pid: i32) {
        self.reap(&[(pid, Exit::Code(0))]);
        assert_eq!(
            self.core.exit_code(),
            Some(1),
            "a kept failure still ends in 1"
        );
    }

    pub(crate) fn state(&self, pid: i32) -> Option<ChildState> {
        (self.core.children().iter())
            .find(|c| c.pid.as_raw() == pid)
            .map(|c| c.state)
    }
}

pub(crate) fn keep_serving() -> Settings {
    Settings {
        keep_serving: true,
        ..Settings::plain()
    }
}

#[test]
fn keep_serving_old_epoch_fails_then_new_one_exits_0_exits_1() {
    let mut s = Script::new(keep_serving());
    s.hup();
    assert_eq!(s.epochs(), [(100, 0), (101, 1)]);
    s.reap(&[(100, Exit::Code(7))]);
    assert_eq!(s.epochs(), [(101, 1)], "epoch 1 keeps serving");
    assert_eq!(s.core.exit_code(), None);
    s.last_exits_0_after_a_kept_failure(101);
}

#[test]
fn keep_serving_new_epoch_fails_then_old_one_exits_0_exits_1() {
    let mut s = Script::new(keep_serving());
    s.hup();
    s.reap(&[(101, Exit::Code(3))]);
    assert_eq!(s.epochs(), [(100, 0)], "epoch 0 keeps serving");
    assert_eq!(s.core.next_epoch(), 1, "the failed number is reused");
    s.last_exits_0_after_a_kept_failure(100);
}

#[test]
fn a_batch_of_exits_never_leaves_one_of_its_children_serving() {
    for batch in [
        [(102, Exit::Code(1)), (101, Exit::Code(0))],
        [(101, Exit::Code(0)), (102, Exit::Code(1))],
        [(102, Exit::Signal(11)), (101, Exit::Signal(9))],
    ] {
        let mut s = Script::new(keep_serving());
        s.hup();
        s.hup();
        assert_eq!(s.epochs(), [(100, 0), (101, 1), (102, 2)]);
        s.reap(&batch);
        assert_eq!(s.epochs(), [(100, 0)], "after {batch:?}");
        // Epoch 1 left in the same batch: the next restart follows epoch 0,
        // which is the one still serving, not epoch 1.
        assert_eq!(s.core.next_epoch(), 1, "after {batch:?}");
        assert_eq!(s.core.exit_code(), None, "epoch 0 keeps serving");
        s.hup();
        assert_eq!(s.epochs(), [(100, 0), (103, 1)]);
    }
}

#[test]
fn a_ready_check_is_killed_when_its_epoch_fails_in_one_batch_with_an_older_one() {
    let pid = Pid::from_raw;
    let mut s = Script::new(Settings {
        keep_serving: true,
        ready_check: Some("/fake/ready".into()),
        ..Settings::plain()
    });
    s.reap(&[(101, Exit::Code(0))]); // epoch 0 (100) is ready
    s.hup();
    s.reap(&[(103, Exit::Code(0))]); // epoch 1 (102) is ready
    s.hup();
    assert_eq!(s.epochs(), [(100, 0), (102, 1), (104, 2)]);
    assert_eq!(s.core.helpers(), [pid(105)], "epoch 2's ready check runs");
    // Epoch 1 is judged first: its failure must not drop epoch 2's check.
    let actions = s.reap(&[(102, Exit::Code(1)), (104, Exit::Code(1))]);
    assert!(
        actions.contains(&Action::KillGroup(pid(105))),
        "{actions:?}"
    );
    assert_eq!(s.core.helpers(), [pid(105)], "killed, and waited for");
    assert_eq!(s.epochs(), [(100, 0)]);
    assert_eq!(s.core.next_epoch(), 1);
    s.reap(&[(105, Exit::Signal(9))]);
    assert!(s.core.helpers().is_empty());
}

// ----- how an exit is judged, by its log lines ------------------------------

impl Script {
    /// The lines logged since the last call, as (level, text).
    pub(crate) fn log(&mut self) -> Vec<(log::Level, String)> {
        (self.core.take_log().into_iter())
            .map(|l| (l.level, l.text))
            .collect()
    }

    /// The lines logged since the last call that `keep` picks, each as
    /// "LEVEL text".
    pub(crate) fn logged(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        (self.log().into_iter())
            .filter(|(_, l)| keep(l))
            .map(|(level, l)| format!("{level} {l}"))
            .collect()
    }
}

/// An older epoch failing while a newer one serves is no failed restart,
/// but it dooms the newer one (Envoy 1.40 aborts an epoch whose
/// hot-restart parent died): a warning says so, and the next restart
/// still follows the newest epoch.
#[test]
fn an_older_epoch_failing_while_a_newer_one_serves_dooms_it() {
    let mut s = Script::new(keep_serving());
    s.hup();
    s.log();
    let actions = s.reap(&[(100, Exit::Code(7))]);
    assert_eq!(s.core.next_epoch(), 2);
    assert!(actions.is_empty(), "{actions:?}");
    let warned = (log::Level::Warn, "PID=100 exited with code=7".to_string());
    let log = s.log();
    let doomed = "epoch 1 (PID=101) will abort: its hot-restart parent epoch 0 (PID=100) died";
    assert!(log.contains(&warned), "{log:?}");
    assert!(
        log.iter()
            .any(|(level, l)| *level == log::Level::Warn && l.starts_with(doomed)),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|(_, l)| l.starts_with("restart to epoch")),
        "{log:?}"
    );
    // Without --handoff-admin a hot restart of the doomed epoch is
    // refused, and a waiting client is told why.
    let actions = s.control(1, Command::Reload { wait: true });
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Spawn(_))),
        "{actions:?}"
    );
    let refused = actions.iter().any(
        |a| matches!(a, Action::Reply(_, Reply::Failed { reason }) if reason.contains(doomed)),
    );
    assert!(refused, "{actions:?}");
}

/// The serving epoch exits (even with code 0) while its hot-restart child
/// starts: the child can never be ready; it is killed at once, and with
/// --handoff-admin a new generation starts at once.
#[test]
fn a_starting_epoch_whose_parent_exits_is_killed_and_handed_off() {
    let mut s = Script::serving(handoff(false));
    s.hup(); // epoch 1: PID 101, awaited
    let actions = s.reap(&[(100, Exit::Code(0))]);
    let killed = Action::Signal(Pid::from_raw(101), Signal::SIGKILL);
    assert!(actions.contains(&killed), "{actions:?}");
    assert_spawns(&actions, JobKind::Epoch, 0, 1);
    let log = s.log();
    assert!(
        !log.iter()
            .any(|(_, l)| l.contains("PID=101) keeps serving")),
        "{log:?}"
    );
}

/// The same, with the doomed child reaped before the new slot's admin
/// address has been checked: no child is left for a moment, yet the
/// handoff is under way, so the wrapper must not exit (a CI run caught it
/// exiting "due to lack of child processes" with nothing serving).
#[test]
fn no_child_left_while_the_new_slot_is_checked_is_no_exit() {
    let mut s = Script::serving(handoff(true));
    s.hup(); // epoch 1: PID 101
    s.defer_occupied = true;
    let actions = s.reap(&[(100, Exit::Signal(9))]);
    let killed = Action::Signal(Pid::from_raw(101), Signal::SIGKILL);
    assert!(actions.contains(&killed), "{actions:?}");
    let asked = Query::Occupied { generation: 1 };
    assert!(actions.contains(&Action::Ask(asked)), "{actions:?}");
    s.reap(&[(101, Exit::Signal(9))]);
    assert_eq!(s.core.exit_code(), None, "{:?}", s.log());
    assert_eq!(s.core.phase(), PhaseName::Preflight);
    let actions = s.answer(asked, Err("connection refused".into()));
    assert_spawns(&actions, JobKind::Epoch, 0, 1);
}

/// The same without --handoff-admin: the Python behaviour, a teardown and
/// exit 1, at once rather than at the ready timeout.
#[test]
fn a_starting_epoch_whose_parent_dies_without_handoff_tears_down() {
    let mut s = Script::serving(Settings {
        envoy_admin: true,
        ..keep_serving()
    });
    s.feed(Event::Signal(Signal::SIGHUP)); // epoch 1: PID 101
    let actions = s.reap(&[(100, Exit::Signal(9))]);
    let killed = Action::Signal(Pid::from_raw(101), Signal::SIGKILL);
    assert!(actions.contains(&killed), "{actions:?}");
    assert_eq!(s.core.phase(), PhaseName::Killing);
    s.reap(&[(101, Exit::Signal(9))]);
    assert_eq!(s.core.exit_code(), Some(1));
}

/// --keep-serving with a ready check: epoch 0 (PID 100) is ready, epoch 1
/// (102) waits for its ready check (103).
pub(crate) fn epoch_1_awaiting_its_ready_check() -> Script {
    let mut s = Script::new(Settings {
        keep_serving: true,
        ready_check: Some("/fake/ready".into()),
        ..Settings::plain()
    });
    s.reap(&[(101, Exit::Code(0))]); // epoch 0 (100) is ready
    s.hup(); // epoch 1 (102), its ready check (103)
    s
}

/// An epoch given up on (not ready in time, SIGKILLed) decides nothing
/// when it is reaped, while running: no failure, no teardown, its exit
/// logged at DEBUG only.
#[test]
fn the_exit_of_an_epoch_given_up_on_decides_nothing() {
    let mut s = epoch_1_awaiting_its_ready_check();
    s.now += Settings::plain().ready_timeout;
    let actions = s.feed(Event::Tick);
    assert!(
        actions.contains(&Action::Signal(Pid::from_raw(102), Signal::SIGKILL)),
        "{actions:?}"
    );
    assert_eq!(s.state(102), Some(ChildState::Abandoned));
    s.log();
    let actions = s.reap(&[(102, Exit::Signal(9))]);
    assert!(actions.is_empty(), "{actions:?}");
    assert_eq!(s.core.exit_code(), None);
    assert_eq!(s.core.next_epoch(), 1);
    let log = s.log();
    let judged = (
        log::Level::Debug,
        "PID=102 (epoch 1): was killed with signal=9".to_string(),
    );
    let sigchld = (log::Level::Info, "got SIGCHLD".to_string());
    assert_eq!(log, [sigchld, judged]);
    // It no longer holds the restart back.
    s.hup();
    assert_eq!(s.epochs(), [(100, 0), (104, 1)]);
}

// ----- Envoy's admin, generations, control requests -------------------------

/// Envoy-aware settings: --envoy-admin and --handoff-admin.
pub(crate) fn handoff(keep_serving: bool) -> Settings {
    Settings {
        keep_serving,
        envoy_admin: true,
        handoff: true,
        ..Settings::plain()
    }
}

pub(crate) fn spawns(actions: &[Action], kind: JobKind, epoch: u32, generation: u32) -> bool {
    actions.contains(&Action::Spawn(Job::new(kind, epoch, generation)))
}

/// `actions` start a `kind` job for `epoch` of `generation`.
#[track_caller]
pub(crate) fn assert_spawns(actions: &[Action], kind: JobKind, epoch: u32, generation: u32) {
    assert!(
        spawns(actions, kind, epoch, generation),
        "no {kind:?} job for epoch {epoch} of generation {generation} started: {actions:?}"
    );
}

/// Found by tests/core_props.rs (A1): a question about epoch 1 that died
/// was answered after a new epoch 1 had started, and counted for it.
#[test]
fn an_answer_about_an_earlier_child_with_the_same_epoch_does_not_count() {
    let mut s = Script::serving(Settings {
        keep_serving: true,
        envoy_admin: true,
        ..Settings::plain()
    });
    s.hup(); // epoch 1: PID 101
    s.reap(&[(101, Exit::Code(1))]);
    s.hup(); // epoch 1 again: PID 102
    assert_eq!(s.epochs(), [(100, 0), (102, 1)]);
    s.live(0, 1, 101); // the late answer to the question about PID 101
    assert_eq!(s.state(102), Some(ChildState::Starting));
    s.live(0, 1, 102);
    assert_eq!(s.state(102), Some(ChildState::Ready));
}

/// Found by tests/core_props.rs (C2): a handoff requested while the
/// versions were compared was answered with the hot restart's result.
#[test]
fn a_handoff_held_while_versions_are_compared_gets_its_own_result() {
    let mut s = Script::serving(Settings {
        envoy_bin: true,
        ..handoff(false)
    });
    s.feed(Event::Signal(Signal::SIGHUP)); // compares the versions: probe PID 101
    s.control(1, Command::Handoff { wait: true }); // held
    s.feed(Event::HelperOutput(Pid::from_raw(101), "11.104\n".into()));
    s.reap(&[(101, Exit::Code(0))]);
    let v = Ok(Answer::Version("11.104".into()));
    s.answer(Query::HotRestartVersion { generation: 0 }, v); // equal: hot
    let actions = s.live(0, 1, 102);
    assert!(!s.replied(&actions, 1), "{actions:?}");
    assert_spawns(&actions, JobKind::Epoch, 0, 1);
    let actions = s.reap(&[(103, Exit::Code(1))]); // the new generation fails
    assert!(
        matches!(
            &actions[..],
            [.., Action::Reply(WaiterId(1), Reply::Failed { .. }), _]
        ),
        "{actions:?}"
    );
}

/// Found by tests/core_props.rs (I7): with --keep-serving, the serving
/// generation's failure dropped the handoff in flight, leaving the new
/// generation starting with nothing awaiting it.
#[test]
fn keep_serving_a_handoff_goes_on_when_the_serving_generation_fails() {
    let mut s = Script::serving(handoff(true));
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1: PID 101
    s.reap(&[(100, Exit::Code(1))]);
    assert_eq!(s.core.phase(), PhaseName::Starting);
    assert!(s.core.poll_timeout().is_some(), "the ready timeout applies");
    s.live(1, 0, 101);
    assert_eq!(s.core.generation(), 1);
    assert_eq!(s.state(101), Some(ChildState::Ready));
    s.last_exits_0_after_a_kept_failure(101);
}

/// Found by tests/core_props.rs (C2): `reload --wait` was answered done
/// (naming the old epoch as ready) when the new epoch exited 0 before it
/// was ever ready.
#[test]
fn a_reload_whose_epoch_exits_0_before_it_is_ready_fails() {
    let mut s = Script::new(Settings {
        ready_check: Some("/fake/ready".into()),
        ..Settings::plain()
    });
    s.reap(&[(101, Exit::Code(0))]); // epoch 0 (PID 100) is ready
    s.control(1, Command::Reload { wait: true }); // epoch 1: PID 102
    let actions = s.reap(&[(102, Exit::Code(0))]);
    let failed = actions.iter().any(|a| {
        matches!(a, Action::Reply(WaiterId(1), Reply::Failed { reason })
            if reason.contains("exited with code=0 before it was ready"))
    });
    assert!(failed, "{actions:?}");
    assert_eq!(s.core.exit_code(), None, "epoch 0 serves on");
}

/// Found by tests/core_props.rs (C2): the old generation's last exit and
/// the new generation's crash in one batch answered the handoff done
/// before the teardown.
#[test]
fn a_handoff_is_not_done_in_the_batch_where_its_new_generation_fails() {
    let mut s = Script::serving(handoff(false));
    s.control(1, Command::Handoff { wait: true }); // generation 1: PID 101
    // The handoff is done (and answered) once generation 1 is LIVE, as a
    // hot restart is once its epoch is ready; generation 0 drains.
    let live = s.live(1, 0, 101);
    assert!(s.replied_done(&live, 1), "{live:?}");
    let actions = s.reap(&[(100, Exit::Code(0)), (101, Exit::Code(1))]);
    assert!(!s.replied(&actions, 1), "answered twice: {actions:?}");
    assert_eq!(s.core.exit_code(), Some(1));
}

/// Found by tests/core_props.rs (A2): the answer to an earlier handoff's
/// drain request was taken for the current one's.
#[test]
fn an_answer_to_an_earlier_handoffs_drain_does_not_count() {
    let mut s = Script::serving(handoff(false));
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1: PID 101
    s.live(1, 0, 101); // Drain { generation: 0 } is out
    s.reap(&[(100, Exit::Code(0))]); // handed off
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 2: PID 102
    s.live(2, 0, 102); // Drain { generation: 1 } is out
    let stale = s.answer(Query::Drain { generation: 0 }, Err("timed out".into()));
    assert!(stale.is_empty(), "{stale:?}");
    assert_eq!(s.core.phase(), PhaseName::HandingOff);
    let actions = s.answer(Query::Drain { generation: 1 }, Ok(Answer::Ok));
    let pid = Pid::from_raw(101);
    let query = Query::Listening { generation: 1, pid };
    assert_eq!(actions, [Action::Ask(query)]);
}

/// Found by tests/core_props.rs (H1): a handoff held during a preflight
/// became a hot restart when the preflight was cancelled and retried.
#[test]
fn a_handoff_held_during_a_preflight_stays_a_handoff_when_it_is_retried() {
    let mut s = Script::serving(Settings {
        preflight: Some("/fake/preflight".into()),
        ..handoff(true)
    });
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight PID 101
    s.reap(&[(101, Exit::Code(0))]); // epoch 1: PID 102
    s.live(0, 1, 102);
    s.feed(Event::Signal(Signal::SIGHUP)); // preflight PID 103, for epoch 2
    s.feed(Event::Signal(Signal::SIGUSR2)); // held
    let actions = s.reap(&[(102, Exit::Code(1))]); // the restart is retried
    assert_spawns(&actions, JobKind::Preflight, 0, 1); // the held handoff
}

/// Found by tests/core_props.rs (H1): a new epoch that died in one batch
/// with an older one judged first did not mark hot restart as wedged.
#[test]
fn a_new_epoch_failing_with_an_older_one_still_wedges_hot_restart() {
    let mut s = Script::serving(handoff(true));
    s.hup(); // epoch 1: PID 101
    s.live(0, 1, 101);
    s.hup(); // epoch 2: PID 102
    s.reap(&[(101, Exit::Code(1)), (102, Exit::Code(1))]);
    let actions = s.feed(Event::Signal(Signal::SIGHUP));
    assert_spawns(&actions, JobKind::Epoch, 0, 1); // a handoff
}

/// Issue 14, chain 4: something already answers on the new generation's
/// admin address. The handoff is refused before anything is started, its
/// waiting client is told why, and generation 0 is not signalled.
#[test]
fn a_handoff_is_refused_when_something_answers_on_its_admin_address() {
    let mut s = Script::serving(handoff(true));
    s.taken = Some("127.0.0.1:9902".into());
    let actions = s.control(1, Command::Handoff { wait: true });
    let refused = actions.iter().any(|a| {
        matches!(a, Action::Reply(WaiterId(1), Reply::Failed { reason })
            if reason.contains("something already answers on 127.0.0.1:9902"))
    });
    assert!(refused, "{actions:?}");
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Spawn(_) | Action::Signal(..))),
        "{actions:?}"
    );
    assert_eq!(s.epochs(), [(100, 0)]);
    assert_eq!(s.state(100), Some(ChildState::Ready));
    // Once the address is free, the next handoff goes ahead.
    s.taken = None;
    let actions = s.control(2, Command::Handoff { wait: true });
    assert_spawns(&actions, JobKind::Epoch, 0, 1);
}

/// Issue 14, chain 3: with --keep-serving, a new generation that dies
/// after LIVE while the old one drains (not SIGTERMed yet) takes nothing
/// down: the old generation serves again, unsignalled, and a fresh
/// generation is started at once (its drain cannot be taken back).
#[test]
fn keep_serving_a_generation_dying_after_live_gives_the_draining_one_back() {
    let mut s = Script::serving(handoff(true));
    s.feed(Event::Signal(Signal::SIGUSR2)); // generation 1: PID 101
    s.live(1, 0, 101); // generation 0 drains
    assert_eq!(s.state(100), Some(ChildState::Retiring));
    let actions = s.reap(&[(101, Exit::Signal(11))]);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Signal(..))),
        "{actions:?}"
    );
    assert_eq!(s.state(100), Some(ChildState::Ready));
    assert_spawns(&actions, JobKind::Epoch, 0, 1);
    assert_eq!(s.core.exit_code(), None);
    // The fresh generation takes over; generation 0 retires again.
    let live = s.live(1, 0, 102);
    assert!(
        live.contains(&Action::Ask(Query::Drain { generation: 0 })),
        "{live:?}"
    );
}

/// Issue 14: LIVE counts only from the Envoy the wrapper started. An
/// answer from an Envoy whose current epoch has been up for longer than
/// the awaited child has run (a leftover on the same admin address) is
/// another Envoy's: a warning, and the child is still awaited; the real
/// one's answer then counts.
#[test]
fn live_from_an_envoy_older_than_the_child_does_not_count() {
    let mut s = Script::new(Settings {
        envoy_admin: true,
        ..Settings::plain()
    });
    let query = Query::ServerInfo {
        generation: 0,
        epoch: 0,
        pid: Pid::from_raw(100),
    };
    let answer = |secs: u64| {
        Ok(Answer::ServerInfo {
            state: "LIVE".into(),
            restart_epoch: Some(0),
            uptime: Some(std::time::Duration::from_secs(secs)),
        })
    };
    s.log();
    s.answer(query, answer(100));
    assert_eq!(s.state(100), Some(ChildState::Starting));
    let log = s.log();
    let warned = log.iter().any(|(level, l)| {
        *level == log::Level::Warn && l.contains("up for 100 s") && l.contains("another Envoy")
    });
    assert!(warned, "{log:?}");
    // Within Envoy's one-second rounding, the answer is the child's own.
    s.now += Settings::plain().ready_interval;
    let actions = s.feed(Event::Tick);
    assert!(actions.contains(&Action::Ask(query)), "{actions:?}");
    s.answer(query, answer(1));
    assert_eq!(s.state(100), Some(ChildState::Ready));
}

/// The trigger of the last reload in `status`.
fn last_trigger(s: &mut Script) -> Option<String> {
    s.status().last_reload.and_then(|r| r.trigger)
}

#[test]
fn a_watched_change_reloads_as_sighup_and_the_status_names_it() {
    let mut s = Script::serving(Settings {
        envoy_admin: true,
        ..Settings::plain()
    });
    s.core.take_log();
    let changed = |p: &str| Event::Changed(vec![p.into()]);
    // Running: a restart at once, logged naming the file.
    let actions = s.feed(changed("/etc/envoy/a.yaml"));
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Spawn(Job {
            kind: JobKind::Epoch,
            epoch: 1,
            ..
        })
    )));
    let log: Vec<String> = s.core.take_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        log[0], "\"/etc/envoy/a.yaml\" changed: restarting",
        "{log:?}"
    );
    // Epoch 1 is not LIVE yet: the next change is held, a SIGHUP folds in.
    s.feed(changed("/etc/envoy/b.yaml"));
    assert!(s.core.held());
    s.feed(Event::Signal(Signal::SIGHUP));
    let log: Vec<String> = s.core.take_log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        log,
        [
            "\"/etc/envoy/b.yaml\" changed: holding the restart until epoch 1 (PID=101) is ready",
            "got SIGHUP",
            "coalescing SIGHUP into the held restart (waiting until epoch 1 (PID=101) is ready)",
        ]
    );
    s.live(0, 1, 101);
    assert_eq!(
        last_trigger(&mut s).as_deref(),
        Some("\"/etc/envoy/a.yaml\" changed")
    );
    // The held restart (epoch 2) answers to the change it was held for.
    s.live(0, 2, 102);
    assert_eq!(s.epochs().last(), Some(&(102, 2)));
    assert_eq!(
        last_trigger(&mut s).as_deref(),
        Some("\"/etc/envoy/b.yaml\" changed")
    );
    // While stopping, a change is ignored (and says so).
    s.core.take_log();
    s.feed(Event::Signal(Signal::SIGTERM));
    s.feed(changed("/etc/envoy/a.yaml"));
    let log: Vec<String> = s.core.take_log().into_iter().map(|l| l.text).collect();
    assert!(
        log.contains(&"\"/etc/envoy/a.yaml\" changed: shutting down, ignoring it".to_string()),
        "{log:?}"
    );
}

/// Epoch 0 ready and epoch 1 waiting for its ready check (PID 103), two
/// `reexec --wait` clients (1 and 2) held behind that restart, then client
/// `gone` hung up: nothing is answered or done on any of these events.
fn two_held_reexecs(gone: u64) -> Script {
    let mut s = Script::new(Settings {
        ready_check: Some("/fake/ready".into()),
        ..Settings::plain()
    });
    s.reap(&[(101, Exit::Code(0))]); // epoch 0 (100) is ready
    s.hup(); // epoch 1 (102), its ready check (103) runs
    for client in [1, 2] {
        let actions = s.control(client, Command::Reexec { wait: true });
        assert!(actions.is_empty(), "held: {actions:?}");
    }
    assert!(s.feed(Event::ControlGone(WaiterId(gone))).is_empty());
    s
}

/// Found by R-checks (C1): a `reexec --wait` client that hung up while its
/// reexec was held stayed among the waiters, and was answered when a stop
/// refused the reexec (or would have been handed to the driver).
#[test]
fn a_held_reexec_does_not_answer_a_client_that_hung_up() {
    let mut s = two_held_reexecs(1);
    let actions = s.feed(Event::Signal(Signal::SIGTERM));
    assert!(!s.replied(&actions, 1), "{actions:?}");
    assert!(
        (actions.iter()).any(|a| matches!(
            a,
            Action::Reply(WaiterId(2), Reply::Failed { reason }) if reason.contains("shutting down")
        )),
        "{actions:?}"
    );
}

/// A held reexec goes to the driver once the restart is over, with only
/// the waiters still connected, as the last action of that event.
#[test]
fn a_held_reexec_is_handed_to_the_driver_once_the_restart_is_over() {
    let mut s = two_held_reexecs(2);
    assert!(s.core.snapshot().is_none(), "a restart is in flight");
    let actions = s.reap(&[(103, Exit::Code(0))]); // epoch 1 is ready
    assert_eq!(
        actions.last(),
        Some(&Action::Reexec(vec![WaiterId(1)])),
        "{actions:?}"
    );
    let snapshot = s.core.snapshot().expect("quiescent");
    assert_eq!(snapshot.next_epoch, 2);
    assert_eq!(snapshot.children.len(), 2);
}
