//! Soak: thousands of restarts in a row, and signal storms. The wrapper must
//! not grow, leak descriptors, leave zombies or lose count of its epochs.
//!
//! The default run is the short form CI runs: `HOT_RESTARTER_SOAK_RESTARTS`
//! restarts (default 1,000), then 10,000 SIGUSR1 + 200 SIGHUP. The long
//! forms are ignored by default:
//! `cargo test --release --test soak -- --ignored --nocapture`.
//! Start and end figures are printed (visible with `--nocapture`).

#[path = "support/fifo.rs"]
mod fifo;
#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::fifo::ReadyFifo;
use crate::support::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One epoch of the soak. As Envoy's new epoch does once it has taken
/// over, epoch n makes epoch n-1 exit 0 (with `KILL_PREVIOUS=1`); every
/// epoch exits 0 on SIGTERM and counts its SIGUSR1s. It idles without a
/// timer or a child of its own: opening a FIFO that nobody writes blocks
/// until a signal interrupts it.
const SOAK_FIXTURE: &str = r#"#!/bin/sh
d="$REPORT_DIR"
trap 'exit 0' TERM
trap 'echo usr1 >> "$d/usr1-$RESTART_EPOCH"' USR1
echo $$ > "$d/pid-$RESTART_EPOCH"
if [ -n "$KILL_PREVIOUS" ] && [ "$RESTART_EPOCH" -gt 0 ]; then
  read previous < "$d/pid-$((RESTART_EPOCH - 1))"
  kill -TERM "$previous"
fi
echo "ready $RESTART_EPOCH $$" > "$d/ready.fifo"
while :; do read never < "$d/never.fifo"; done 2>/dev/null
"#;

/// Lines of output shown when a soak fails.
const TAIL: usize = 40;

struct Soak {
    w: Wrapper,
    fifo: ReadyFifo,
    /// Epochs that reported ready (through `next_ready`).
    ready: BTreeSet<u32>,
}

impl Soak {
    fn start(kill_previous: bool) -> Soak {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "start.sh", SOAK_FIXTURE);
        make_fifo(&dir.path().join("never.fifo"));
        let fifo = ReadyFifo::create(&dir.path().join("ready.fifo"));
        let mut cmd = command(dir.path());
        cmd.arg("start.sh");
        if kill_previous {
            cmd.env("KILL_PREVIOUS", "1");
        }
        Soak {
            w: Wrapper::spawn(dir, cmd),
            fifo,
            ready: BTreeSet::new(),
        }
    }

    /// The next ready report: (epoch, pid).
    fn next_ready(&mut self, timeout: Duration) -> Option<(u32, i32)> {
        let line = self.fifo.line(timeout)?;
        let parsed = line.strip_prefix("ready ").and_then(|rest| {
            let (epoch, pid) = rest.split_once(' ')?;
            Some((epoch.parse().ok()?, pid.parse().ok()?))
        });
        Some(parsed.unwrap_or_else(|| panic!("unexpected report {line:?}")))
    }

    /// Wait for epoch `epoch` to be up; no other epoch may report first.
    fn await_ready(&mut self, epoch: u32) -> i32 {
        match self.next_ready(DEADLINE) {
            Some((e, pid)) if e == epoch && self.ready.insert(e) => pid,
            Some((e, _)) => panic!(
                "epoch {e} reported where epoch {epoch} was due; last output:\n{}",
                self.w.tail(TAIL)
            ),
            None => panic!(
                "epoch {epoch} never became ready; last output:\n{}",
                self.w.tail(TAIL)
            ),
        }
    }

    /// Wait until `live` are exactly the wrapper's children and it has
    /// handled every signal it was sent.
    fn settle(&self, live: &[i32]) {
        let want: BTreeSet<i32> = live.iter().copied().collect();
        let mut seen = BTreeSet::new();
        let ok = wait_until(DEADLINE, || {
            seen = children_of(self.w.pid).into_iter().collect();
            seen == want && idle_with_nothing_pending(self.w.pid)
        });
        assert!(
            ok,
            "the wrapper's children are {seen:?}, expected {want:?}; last output:\n{}",
            self.w.tail(TAIL)
        );
    }

    /// Once the wrapper is idle, wait until the reader thread has caught up
    /// with everything it wrote (no new line for 200 ms).
    fn output_caught_up(&self) {
        let mut last = usize::MAX;
        let mut still_since = Instant::now();
        let end = Instant::now() + DEADLINE;
        loop {
            let now = self.w.with_lines(|lines| lines.len());
            if now != last {
                last = now;
                still_since = Instant::now();
            } else if still_since.elapsed() >= Duration::from_millis(200) {
                return;
            }
            assert!(Instant::now() < end, "the wrapper's output never settled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.w
            .with_lines(|lines| lines.iter().filter(|l| pred(l)).count())
    }

    /// No warning, error or stderr line so far.
    fn assert_quiet(&self) {
        let bad = self.w.with_lines(|lines| {
            lines
                .iter()
                .filter(|l| l.starts_with("stderr: ") || matches!(level_of(l), "WARNING" | "ERROR"))
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
        });
        assert!(bad.is_empty(), "unexpected lines: {bad:#?}");
    }

    /// Started epochs are exactly 0..=last, each once and in order.
    fn assert_epochs_contiguous(&self, last: u32) {
        let epochs = self.w.with_lines(started_epochs);
        let skipped_or_repeated = epochs
            .iter()
            .enumerate()
            .find(|(i, e)| **e != *i as u32)
            .map(|(i, e)| format!("line {i} starts epoch {e}"));
        assert!(
            epochs.len() == last as usize + 1 && skipped_or_repeated.is_none(),
            "epochs are not 0..={last}: {} started, {:?}",
            epochs.len(),
            skipped_or_repeated
        );
    }

    /// SIGTERM: every child exits 0 at once, so the wrapper exits 0, and
    /// none of `children` (pid, start time) is left.
    fn stop(mut self, children: &[(i32, u64)]) {
        let t = Instant::now();
        self.w.signal(Signal::SIGTERM);
        let status = self.w.wait_exit(Duration::from_secs(60));
        eprintln!(
            "  SIGTERM with {} children: wrapper exited after {:.1} ms",
            children.len(),
            t.elapsed().as_secs_f64() * 1e3
        );
        assert_eq!(
            status.code(),
            Some(0),
            "last output:\n{}",
            self.w.tail(TAIL)
        );
        for &(pid, start) in children {
            assert!(
                wait_until(DEADLINE, || !still_running(pid, start)),
                "child PID={pid} outlived the wrapper"
            );
        }
    }
}

fn with_start_times(pids: &[i32]) -> Vec<(i32, u64)> {
    pids.iter()
        .map(|&pid| (pid, start_time(pid).expect("child is gone")))
        .collect()
}

fn restarts_from_env() -> u32 {
    match std::env::var("HOT_RESTARTER_SOAK_RESTARTS") {
        Ok(v) => v
            .parse()
            .expect("HOT_RESTARTER_SOAK_RESTARTS must be a number"),
        Err(_) => 1_000,
    }
}

/// `restarts` restarts in a row, each new epoch making the previous one
/// exit 0 as Envoy does.
fn restarts_in_a_row(restarts: u32) {
    let t0 = Instant::now();
    let mut s = Soak::start(true);
    let mut newest = s.await_ready(0);
    let warm_up = (restarts / 10).clamp(1, 100);
    let mut start = None;
    for epoch in 1..=restarts {
        s.w.signal(Signal::SIGHUP);
        newest = s.await_ready(epoch);
        if epoch == warm_up {
            s.settle(&[newest]);
            start = Some(ProcFigures::read(s.w.pid));
        }
        if epoch % 100 == 0 {
            // The newest and the one it just stopped, perhaps one more
            // not reaped yet on a busy machine: never a pile.
            let live = children_of(s.w.pid);
            assert!(live.len() <= 10, "children piling up: {live:?}");
        }
    }
    s.settle(&[newest]);
    let took = t0.elapsed();
    let end = ProcFigures::read(s.w.pid);
    let start = start.unwrap_or(end);
    eprintln!(
        "soak: {restarts} restarts in a row in {:.1} s ({:.2} ms each)\n  after {warm_up} warm-up restarts: {start}\n  after {restarts} restarts:        {end}",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e3 / f64::from(restarts)
    );

    assert!(
        end.vm_rss_kb < start.vm_rss_kb + 64 && end.rss_anon_kb < start.rss_anon_kb + 64,
        "the wrapper grew: {start} -> {end}"
    );
    assert_eq!(end.fds, start.fds, "descriptor count changed");
    assert_eq!(zombie_children(s.w.pid), Vec::<i32>::new(), "zombies left");
    s.assert_epochs_contiguous(restarts);
    // Every old epoch's exit was seen, as an expected exit 0.
    let exits_ok = wait_until(DEADLINE, || {
        s.count(|l| {
            let m = message_of(l);
            m.starts_with("PID=") && m.ends_with(" exited with code=0")
        }) == restarts as usize
    });
    assert!(
        exits_ok,
        "not every old epoch exited 0; last output:\n{}",
        s.w.tail(TAIL)
    );
    s.assert_quiet();
    s.stop(&with_start_times(&[newest]));
}

/// Send `sig` to `pid` `n` times as fast as possible: most of them
/// coalesce in the kernel. Returns how long sending took.
fn flood(pid: Pid, sig: Signal, n: usize) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        kill(pid, sig).unwrap_or_else(|e| panic!("the wrapper is gone after {i} x {sig}: {e}"));
    }
    t.elapsed()
}

/// Send `sig` to `pid` `n` times, each as soon as the wrapper has taken the
/// previous one and gone back to sleep (its signalfd drained: a signal taken
/// in the same read would fold into the previous one), so that none
/// coalesces and the wrapper handles every one. Returns how long it took.
fn paced(pid: Pid, sig: Signal, n: usize) -> Duration {
    let t = Instant::now();
    for i in 0..n {
        kill(pid, sig).unwrap_or_else(|e| panic!("the wrapper is gone after {i} x {sig}: {e}"));
        let end = Instant::now() + DEADLINE;
        while signal_pending(pid.as_raw(), sig as i32) || !idle_with_nothing_pending(pid.as_raw()) {
            assert!(Instant::now() < end, "{sig} #{i} was never taken");
            std::thread::yield_now();
        }
    }
    t.elapsed()
}

/// SIGUSR1 and SIGHUP storms: `usr1` of each kind, then `hups` of each
/// kind. A flood is sent as fast as possible (the kernel coalesces most);
/// a paced storm sends each signal as soon as the wrapper has taken the
/// previous one, so it handles every one. SIGUSR1 must not reach a child
/// before its shell has set its trap (true of Envoy's start-up too), so the
/// SIGUSR1 storms end before the SIGHUP storms begin.
fn signal_storm(usr1: usize, hups: usize) {
    let t0 = Instant::now();
    let mut s = Soak::start(false);
    let wrapper = Pid::from_raw(s.w.pid);
    let mut pids = vec![s.await_ready(0)];
    for epoch in 1..=2 {
        s.w.signal(Signal::SIGHUP);
        pids.push(s.await_ready(epoch));
    }
    s.settle(&pids);
    let first = with_start_times(&pids);
    let before = ProcFigures::read(s.w.pid);
    let fan_outs = |s: &Soak| {
        let line = format!("sending SIGUSR1 to PID={}", pids[0]);
        s.count(|l| message_of(l) == line)
    };

    let usr1_flood = flood(wrapper, Signal::SIGUSR1, usr1);
    s.settle(&pids);
    s.output_caught_up();
    let flood_fan_outs = fan_outs(&s);
    assert!(flood_fan_outs >= 1, "no SIGUSR1 was passed on");
    let usr1_paced = paced(wrapper, Signal::SIGUSR1, usr1);
    s.settle(&pids);
    s.output_caught_up();
    assert_eq!(
        fan_outs(&s) - flood_fan_outs,
        usr1,
        "every paced SIGUSR1 is passed on once"
    );
    for &(pid, start) in &first {
        assert!(still_running(pid, start), "child PID={pid} did not survive");
    }
    for epoch in 0..=2 {
        let got = std::fs::read_to_string(s.w.path().join(format!("usr1-{epoch}")))
            .unwrap_or_default()
            .lines()
            .count();
        assert!(got >= 1, "epoch {epoch} never got SIGUSR1");
    }
    let after_usr1 = ProcFigures::read(s.w.pid);

    let hup_flood = flood(wrapper, Signal::SIGHUP, hups);
    let flood_epochs = collect_ready(&mut s, &mut pids);
    let hup_paced = paced(wrapper, Signal::SIGHUP, hups);
    let all_epochs = collect_ready(&mut s, &mut pids);
    assert_eq!(
        all_epochs - flood_epochs,
        hups,
        "every paced SIGHUP starts one epoch"
    );
    let last = all_epochs as u32 - 1;
    s.assert_epochs_contiguous(last);
    assert_eq!(
        s.count(|l| message_of(l) == "got SIGHUP"),
        last as usize,
        "each handled SIGHUP starts exactly one epoch"
    );
    s.settle(&pids);
    assert_eq!(zombie_children(s.w.pid), Vec::<i32>::new(), "zombies left");
    for &(pid, start) in &first {
        assert!(still_running(pid, start), "child PID={pid} did not survive");
    }
    s.assert_quiet();
    let after_hup = ProcFigures::read(s.w.pid);
    eprintln!(
        "storm: SIGUSR1 to 3 children: {usr1} flooded in {:.2} s ({flood_fan_outs} passed on), \
         {usr1} paced in {:.2} s (all passed on)\n  \
         SIGHUP: {hups} flooded in {:.3} s ({} epochs), {hups} paced in {:.2} s: epochs 0..={last}, \
         {} live children\n  \
         before:          {before}\n  after SIGUSR1s:  {after_usr1}\n  after SIGHUPs:   {after_hup}",
        usr1_flood.as_secs_f64(),
        usr1_paced.as_secs_f64(),
        hup_flood.as_secs_f64(),
        flood_epochs - 3,
        hup_paced.as_secs_f64(),
        pids.len(),
    );
    assert_eq!(after_hup.fds, before.fds, "descriptor count changed");
    let all = with_start_times(&pids);
    s.stop(&all);
    eprintln!("storm: done in {:.1} s", t0.elapsed().as_secs_f64());
}

/// Collect ready reports until every epoch started has reported and the
/// wrapper has nothing left to handle; returns the number of epochs so far
/// and adds the new children to `pids` (`pids[n]` is not epoch n: epochs
/// started together become ready in any order). Each epoch reports once,
/// and together they are 0..n.
fn collect_ready(s: &mut Soak, pids: &mut Vec<i32>) -> usize {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        while let Some((epoch, pid)) = s.next_ready(Duration::from_millis(50)) {
            assert!(s.ready.insert(epoch), "epoch {epoch} reported twice");
            pids.push(pid);
        }
        let started = s.count(|l| {
            message_of(l).starts_with("forking and execing new child process at epoch ")
        });
        if started == pids.len() && idle_with_nothing_pending(s.w.pid) {
            assert_eq!(
                s.ready.iter().copied().collect::<Vec<_>>(),
                (0..started as u32).collect::<Vec<_>>(),
                "the epochs that reported are not 0..{started}"
            );
            return started;
        }
        assert!(
            Instant::now() < end,
            "{started} epochs started, {} ready; last output:\n{}",
            pids.len(),
            s.w.tail(TAIL)
        );
    }
}

#[test]
fn restarts_in_a_row_leave_no_trace() {
    restarts_in_a_row(restarts_from_env());
}

#[test]
#[ignore = "long: 10,000 restarts"]
fn ten_thousand_restarts_in_a_row() {
    restarts_in_a_row(10_000);
}

#[test]
fn storms_of_sigusr1_and_sighup() {
    signal_storm(10_000, 200);
}

#[test]
#[ignore = "long: 100,000 SIGUSR1 and 1,000 SIGHUP"]
fn big_storms_of_sigusr1_and_sighup() {
    signal_storm(100_000, 1_000);
}
