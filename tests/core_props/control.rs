//! Control-socket clients: each `Op::Control` is a fresh client with one
//! request (reload, handoff and stop with or without --wait, status,
//! reopen-logs), `Op::Gone` hangs one up. A request does what its signal
//! does (predict.rs); here the replies are checked. Invariants C1-C4:
//! - C1 every client gets exactly one Reply: in its own event for status,
//!   reopen-logs and any request without --wait (or refused at once), else
//!   when its reload or handoff ends; a client that hung up gets none
//!   after its ControlGone (which itself changes nothing and does nothing).
//!   By the end every waiting client not gone has had its Reply.
//! - C2 a reload --wait is answered Done only if an epoch became ready (or
//!   started, where readiness is not checked) since the request; a handoff
//!   --wait only if a new generation went LIVE since; neither once
//!   shutting down. And not Failed as the restart it waits for (the first
//!   to begin at or after its request) succeeds (its epoch is ready, its
//!   handoff done) while the wrapper runs on.
//! - C3 stop --wait is never answered by the core: at the end
//!   take_stop_waiters() holds exactly the stop --wait clients not gone,
//!   for the driver to answer after the exit.
//! - C4 status changes nothing: its event's only action is its Reply, and
//!   every view of the core is the same after it.
//!
//! A reexec request is answered in its event without --wait or once
//! shutting down (Failed); with --wait when the reexec is carried out (by
//! the fake driver, which refuses it now and then, as a refused binary
//! would) or refused by a shutdown. Invariants R1-R3:
//! - R1 Action::Reexec only while running with nothing in flight
//!   (`Core::snapshot` is Some), as the last action of its event (an
//!   action after it would be lost by the exec), and only after a request.
//! - R2 the core resumed from the snapshot (`Core::resume`) shows exactly
//!   what the old one did (children, phase, helpers, deadlines, held,
//!   epochs, generation, counters, last reload, uptime), one reexec more.
//! - R3 its waiters are those who asked with --wait and are not gone.

use hot_restarter::core::WaiterId;
use hot_restarter::core::{Action, Core, Event};
use hot_restarter::core::{Command, Reply, StatusView};

use crate::checks::Snapshot;
use crate::harness::Harness;

#[derive(Debug, Clone)]
pub struct Client {
    pub id: WaiterId,
    pub request: Command,
    /// Children ready and generations LIVE so far, when it asked.
    readies: u64,
    lives: u64,
    /// The restart it waits for (the next to begin, when it asked).
    restart: u64,
    replies: u32,
    gone: bool,
    /// Its request is the event being handled.
    asking: bool,
}

impl Client {
    /// Answered when its operation ends, not in its own event.
    fn waits(&self) -> bool {
        matches!(
            self.request,
            Command::Reload { wait: true }
                | Command::Handoff { wait: true }
                | Command::Reexec { wait: true }
        )
    }
}

impl Harness {
    pub fn control(&mut self, request: Command) {
        let id = WaiterId(self.clients.len() as u64 + 1);
        self.clients.push(Client {
            id,
            request,
            readies: self.m.readies,
            lives: self.m.lives,
            restart: self.m.begun + 1,
            replies: 0,
            gone: false,
            asking: true,
        });
        self.event(Event::Control(id, request));
        if let Some(c) = self.clients.last_mut() {
            c.asking = false;
        }
    }

    pub fn gone(&mut self, pick: u8) {
        if self.clients.is_empty() {
            return;
        }
        let i = usize::from(pick) % self.clients.len();
        self.clients[i].gone = true;
        let id = self.clients[i].id;
        self.event(Event::ControlGone(id));
    }

    /// The core's Reply, checked as it is carried out.
    pub fn reply(&mut self, id: WaiterId, reply: &Reply) {
        let Some(i) = self.clients.iter().position(|c| c.id == id) else {
            self.fail(format!("C1: a Reply to client {id:?}, which never asked"));
        };
        let c = self.clients[i].clone();
        let what = format!("{reply:?} to {:?} ({:?})", c.id, c.request);
        self.ensure(!c.gone, || format!("C1: {what} after it hung up"));
        self.ensure(c.replies == 0, || format!("C1: a second Reply, {what}"));
        self.clients[i].replies += 1;
        let done = matches!(reply, Reply::Done { .. });
        match c.request {
            Command::Stop { wait: true } => {
                self.fail(format!("C3: {what}: stop --wait is answered by the driver"))
            }
            Command::Status => self.ensure(matches!(reply, Reply::Status(_)), || {
                format!("C4: {what}, not a status")
            }),
            Command::Reload { wait: true } if done => {
                self.ensure(self.m.readies > c.readies && self.m.running(), || {
                    format!(
                        "C2: {what}, but no epoch became ready since the request (model: {:?})",
                        self.m.mode
                    )
                })
            }
            Command::Handoff { wait: true } if done => {
                self.ensure(self.m.lives > c.lives && self.m.running(), || {
                    format!(
                        "C2: {what}, but no generation went LIVE since the request (model: \
                         {:?})",
                        self.m.mode
                    )
                })
            }
            _ => {}
        }
        let failed = matches!(reply, Reply::Failed { .. });
        let succeeded = self.m.succeeded == Some(c.restart) && self.m.running();
        let restart = matches!(c.request, Command::Reload { .. } | Command::Handoff { .. });
        self.ensure(!(restart && c.waits() && failed && succeeded), || {
            format!("C2: {what}, as the restart in flight succeeded")
        });
        self.ensure(c.asking || c.waits(), || {
            format!("C1: {what} outside the event of its request")
        });
    }

    /// After each event: a request that is not waited for has its Reply;
    /// status and ControlGone change nothing.
    pub fn check_control(&self, ev: &Event, before: &Snapshot) {
        match ev {
            Event::Control(id, request) => {
                let c = self.clients.iter().find(|c| c.id == *id).expect("asked");
                let waiting = c.waits() || *request == (Command::Stop { wait: true });
                self.ensure(waiting || c.replies == 1, || {
                    format!("C1: {request:?} from {id:?} was not answered in its event")
                });
                if *request == Command::Status {
                    let after = self.snapshot();
                    self.ensure(self.acted == 1 && after == *before, || {
                        format!(
                            "C4: status did {} actions, or changed the core:\n  before \
                             {before:?}\n  after {after:?}",
                            self.acted
                        )
                    });
                }
            }
            Event::ControlGone(id) => {
                let after = self.snapshot();
                self.ensure(self.acted == 0 && after == *before, || {
                    format!("C1: ControlGone({id:?}) did or changed something")
                });
            }
            _ => {}
        }
    }

    /// Once done: every client not gone has had its Reply, except stop
    /// --wait ones, left to the driver.
    pub fn check_clients_at_end(&mut self) {
        for c in &self.clients {
            let stop = c.request == (Command::Stop { wait: true });
            self.ensure(c.gone || stop || c.replies == 1, || {
                format!(
                    "C1: {:?} ({:?}) never had its Reply by the end",
                    c.id, c.request
                )
            });
        }
        let mut expected: Vec<WaiterId> = (self.clients.iter())
            .filter(|c| !c.gone && c.request == (Command::Stop { wait: true }))
            .map(|c| c.id)
            .collect();
        let mut waiters = self.core.take_stop_waiters();
        expected.sort_by_key(|c| c.0);
        waiters.sort_by_key(|c| c.0);
        self.ensure(waiters == expected, || {
            format!("C3: take_stop_waiters() is {waiters:?}, the stop --wait clients not gone are {expected:?}")
        });
    }

    /// Carry out `Action::Reexec` as the driver does: refused now and then
    /// (the old core carries on, told by `ReexecFailed`), else the core is
    /// replaced by one resumed from its snapshot and the waiters are told
    /// it took over (R1-R3).
    pub fn reexec(&mut self, waiters: Vec<WaiterId>) -> Option<Event> {
        let Some(snapshot) = self.core.snapshot() else {
            self.fail(format!(
                "R1: Reexec while work is in flight ({:?})",
                self.core.phase()
            ));
        };
        self.ensure(self.m.running(), || {
            format!("R1: Reexec while {:?}", self.m.mode)
        });
        self.ensure(
            self.clients
                .iter()
                .any(|c| matches!(c.request, Command::Reexec { .. })),
            || "R1: Reexec with no reexec request".into(),
        );
        let mut expected: Vec<WaiterId> = (self.clients.iter())
            .filter(|c| c.request == (Command::Reexec { wait: true }) && !c.gone && c.replies == 0)
            .map(|c| c.id)
            .collect();
        let mut got = waiters.clone();
        expected.sort_by_key(|c| c.0);
        got.sort_by_key(|c| c.0);
        self.ensure(got == expected, || {
            format!("R3: Reexec for {got:?}, the reexec --wait clients waiting are {expected:?}")
        });
        if crate::ops::Luck::bit(self.luck.fail, 7) {
            for w in waiters {
                self.reply(
                    w,
                    &Reply::Failed {
                        reason: "fake: refused".into(),
                    },
                );
            }
            return Some(Event::ReexecFailed("fake: refused".into()));
        }
        let before = self.snapshot();
        let status = self.status_view();
        let mut resumed = Core::resume(self.s.clone(), snapshot.clone(), self.now);
        resumed.took_over();
        self.core = resumed;
        let after = self.snapshot();
        self.ensure(after == before, || {
            format!("R2: the resumed core differs:\n  before {before:?}\n  after {after:?}")
        });
        let mut now = self.status_view();
        now.reexecs -= 1;
        self.ensure(now == status, || {
            format!("R2: the resumed core's status differs:\n  before {status:?}\n  after {now:?}")
        });
        let again = self.core.snapshot();
        let mut expected = snapshot;
        expected.reexecs += 1;
        self.ensure(again.as_ref() == Some(&expected), || {
            format!("R2: the resumed core's snapshot is {again:?}, expected {expected:?}")
        });
        for w in waiters {
            self.reply(
                w,
                &Reply::Done {
                    detail: "fake: took over".into(),
                },
            );
        }
        None
    }

    /// The core's status, asked for outside the run (C4: it changes
    /// nothing).
    fn status_view(&mut self) -> StatusView {
        let id = WaiterId(u64::MAX);
        let actions = self
            .core
            .handle(Event::Control(id, Command::Status), self.now);
        match &actions[..] {
            [Action::Reply(_, Reply::Status(view))] => (**view).clone(),
            other => self.fail(format!("C4: status did {other:?}")),
        }
    }

    /// Replies go to the checks above; notifications are not modelled.
    pub fn act_control(&mut self, action: &Action) {
        if let Action::Reply(id, reply) = action {
            self.reply(*id, reply);
        }
    }
}
