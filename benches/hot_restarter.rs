//! `cargo bench`: hot-restarter's figures, each next to its floor measured in
//! the same run on the same fixture script.
//!
//! The fixture is a `#!/bin/sh` script that `exec`s this very binary in
//! fixture mode, the way `start_envoy.sh` execs Envoy. In fixture mode it
//! blocks SIGTERM and SIGUSR1, writes `ready <epoch> <pid> <ns>` to a FIFO
//! and then sleeps in `sigwait` (no wake-ups): SIGUSR1 writes `usr1 <pid>`,
//! SIGTERM exits 0. What makes the comparison fair: the floor runs the
//! *same* script with the same environment, working directory and stdio,
//! started the same way (`Command` for a launch, a bare `fork` + `execve`
//! for a restart), and both are timed by the same clock in this process up
//! to the same line on the same FIFO. Rounds alternate floor and wrapper so
//! that drift in the machine's load hits both alike. The difference is what
//! the wrapper adds.
//!
//! The control socket's figures have their own floor: this binary in
//! floor-server mode, answering every request with a line the wrapper gave,
//! through the same client (`common::floor_server`).
//!
//! `cargo bench` runs it (about 45 s on 2 cores). Fewer rounds:
//! `cargo bench --bench hot_restarter -- --quick` (20 rounds; the unit-test
//! harness `cargo bench` also runs would refuse the flag) or
//! `HOT_RESTARTER_BENCH_ROUNDS=N cargo bench`. Run without `--bench` (as
//! `cargo test --benches` does) it is a smoke run of two rounds on whatever
//! binary that build made, whose verdicts mean nothing.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use hot_restarter::control::client;
use hot_restarter::control::proto::{Reply, Request};

use common::fixture::{Direct, FIXTURE_ARG, Fixture, base, fixture, reap, signal};
use common::floor_server::{self, FLOOR_SERVER_ARG, FloorServer};
use common::procfs::{ProcStatus, idle_window, machine};
use common::table::{Table, signed_ms, stats, verdict};
use common::wrapper::Wrapper;
use common::{BIN, CTL, DEADLINE, monotonic_ns};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(FIXTURE_ARG) => fixture(args.get(2).expect("fixture FIFO path")),
        Some(FLOOR_SERVER_ARG) => match &args[2..] {
            [socket, fifo, reply] => floor_server::serve(socket, fifo, reply),
            _ => panic!("floor server: expected SOCKET FIFO REPLY"),
        },
        _ => {}
    }
    let config = BenchConfig::from_args(&args);
    // `cargo bench` may hand this process descriptors of its own (a
    // jobserver pipe): keep them from the wrapper, so that its descriptor
    // count is its own.
    hot_restarter::os::setup::close_inherited_descriptors()
        .expect("cannot mark descriptors close-on-exec");
    run(&config);
}

// ----- configuration ------------------------------------------------------

struct BenchConfig {
    /// Rounds for each timed figure.
    rounds: usize,
    /// Rounds of an in-process control-socket exchange (twice `rounds`).
    exchanges: usize,
    /// Rounds that spawn hot-restarter-ctl (two fifths of `rounds`).
    ctl_rounds: usize,
    /// The idle window for the wake-up count.
    idle: Duration,
    smoke: bool,
}

impl BenchConfig {
    fn from_args(args: &[String]) -> BenchConfig {
        let smoke = !args.iter().any(|a| a == "--bench");
        let quick = args.iter().any(|a| a == "--quick");
        let from_env = std::env::var("HOT_RESTARTER_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0);
        let rounds = match (from_env, smoke, quick) {
            (Some(n), _, _) => n,
            (None, true, _) => 2,
            (None, false, true) => 20,
            (None, false, false) => 500,
        };
        BenchConfig {
            rounds,
            exchanges: 2 * rounds,
            ctl_rounds: (2 * rounds / 5).max(2),
            idle: if smoke {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(2)
            },
            smoke,
        }
    }
}

// ----- the figures --------------------------------------------------------

fn run(cfg: &BenchConfig) {
    let started = Instant::now();
    let mut fx = Fixture::new();
    let mut table = Table::new();
    println!("{}", machine());
    println!(
        "binary: {BIN}\nrounds per figure: {}; control socket: {} in-process \
         exchanges, {} hot-restarter-ctl runs{}\n",
        cfg.rounds,
        cfg.exchanges,
        cfg.ctl_rounds,
        if cfg.smoke {
            " (smoke run: use `cargo bench` for figures)"
        } else {
            ""
        }
    );

    start_and_stop(cfg, &mut fx, &mut table);

    // Idle: memory, descriptors and wake-ups of a wrapper with one child.
    let w = Wrapper::launch(&mut fx);
    thread::sleep(Duration::from_millis(300));
    let (idle_before, idle_after) = idle_window(&w, cfg.idle);
    drop(w);

    let (epochs, (before, after)) = signals_and_restarts(cfg, &mut fx, &mut table);

    table.section("memory and idle (1 child, after start-up)");
    let idle = Idle::new(cfg);
    idle.memory(&mut table, idle_after, true);
    table.value("binary size (release, stripped)", size_kb(BIN), "");
    table.value(
        "open descriptors",
        idle_after.fds.to_string(),
        &format!("4 (0-2, signalfd): {}", verdict(idle_after.fds == 4)),
    );
    idle.wakeups(&mut table, idle_before, idle_after);

    table.section(&format!(
        "memory and idle (100 live children, after {epochs} epochs)"
    ));
    idle.memory(&mut table, after, false);
    table.value("open descriptors", after.fds.to_string(), "");
    idle.wakeups(&mut table, before, after);

    control_socket(cfg, &mut fx, &mut table);

    table.print();
    println!(
        "\nThe Python hot-restarter.py is not compared: it cannot be downloaded here \
         (issue 2 quotes ~30 ms added to launch, ~2 ms to a restart, ~1 s to SIGTERM, \
         7.9 MB RssAnon, 14.5 MB VmRSS for it; not measured)."
    );
    println!("bench took {:.1} s", started.elapsed().as_secs_f64());
}

/// Launch, and SIGTERM to exit with one and with ten children.
fn start_and_stop(cfg: &BenchConfig, fx: &mut Fixture, table: &mut Table) {
    // One wrapper (or one direct child) per round, floor and wrapper
    // alternating.
    let (mut launch, mut launch_floor) = (Vec::new(), Vec::new());
    let (mut term, mut term_floor) = (Vec::new(), Vec::new());
    for _ in 0..cfg.rounds {
        let t0 = Instant::now();
        let pid = fx.command().spawn().expect("cannot run the fixture").id() as i32;
        let ready = fx.fifo.ready();
        launch_floor.push(t0.elapsed());
        assert_eq!(ready.pid, pid);
        thread::sleep(Duration::from_millis(2));
        let t0 = Instant::now();
        signal(pid, libc::SIGTERM);
        let status = reap(pid);
        term_floor.push(t0.elapsed());
        assert_eq!(status, 0, "fixture exited with status {status}");

        let t0 = Instant::now();
        let w = Wrapper::launch(fx);
        launch.push(t0.elapsed());
        thread::sleep(Duration::from_millis(2));
        term.push(w.term());
    }
    let launch = stats(launch);
    let launch_floor = stats(launch_floor);
    let term = stats(term);
    let term_floor = stats(term_floor);
    table.section("start and stop (floor: the script run directly)");
    table.timed(
        "launch to the first child running",
        launch,
        Some(launch_floor),
        &format!(
            "<= 1.3x floor: {}",
            verdict(launch.median.as_secs_f64() <= 1.3 * launch_floor.median.as_secs_f64())
        ),
    );
    table.timed(
        "SIGTERM to wrapper exit (1 child exits at once)",
        term,
        Some(term_floor),
        &format!(
            "< 20 ms: {}",
            verdict(term.median < Duration::from_millis(20))
        ),
    );

    // SIGTERM with ten children, which all exit at once.
    let (mut term10, mut term10_floor) = (Vec::new(), Vec::new());
    for _ in 0..(cfg.rounds / 5).max(2) {
        let mut direct = Direct::default();
        for _ in 0..10 {
            direct.spawn(fx);
        }
        let t0 = Instant::now();
        for pid in &direct.pids {
            signal(*pid, libc::SIGTERM);
        }
        for pid in direct.pids.drain(..) {
            assert_eq!(reap(pid), 0);
        }
        term10_floor.push(t0.elapsed());
        let w = Wrapper::with_children(fx, 10);
        thread::sleep(Duration::from_millis(2));
        term10.push(w.term());
    }
    let term10 = stats(term10);
    table.timed(
        "SIGTERM to wrapper exit (10 children exit at once)",
        term10,
        Some(stats(term10_floor)),
        &format!(
            "< 20 ms: {}",
            verdict(term10.median < Duration::from_millis(20))
        ),
    );
}

/// SIGUSR1 fan-out and restarts with N live children; the floors are the
/// bench signalling N direct children itself, and a bare fork + exec.
/// Returns the epochs the last wrapper started and its idle window, with
/// 100 live children.
fn signals_and_restarts(
    cfg: &BenchConfig,
    fx: &mut Fixture,
    table: &mut Table,
) -> (u32, (ProcStatus, ProcStatus)) {
    let mut usr1_rows = Vec::new();
    let mut hup_rows = Vec::new();
    let mut after_restarts = None;
    for n in [1usize, 10, 100] {
        let mut w = Wrapper::with_children(fx, n);
        let mut direct = Direct::default();
        for _ in 0..n {
            direct.spawn(fx);
        }
        let direct_set: BTreeSet<i32> = direct.pids.iter().copied().collect();
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..cfg.rounds {
            let t0 = Instant::now();
            for pid in &direct.pids {
                signal(*pid, libc::SIGUSR1);
            }
            fx.fifo.usr1_from(&direct_set);
            floor.push(t0.elapsed());
            ours.push(w.usr1(fx));
        }
        usr1_rows.push((n, stats(ours), stats(floor)));
        drop(direct);

        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..cfg.rounds {
            let t0 = Instant::now();
            let pid = fx.fork_exec();
            let ready = fx.fifo.ready();
            floor.push(t0.elapsed());
            assert_eq!(ready.pid, pid);
            signal(pid, libc::SIGTERM);
            reap(pid);

            ours.push(w.hup(fx));
            w.retire_oldest();
        }
        hup_rows.push((n, stats(ours), stats(floor)));
        if n == 100 {
            thread::sleep(Duration::from_millis(300));
            after_restarts = Some((w.next_epoch, idle_window(&w, cfg.idle)));
        }
        let took = w.term();
        assert!(took < DEADLINE);
    }

    let (_, hup1, hup1_floor) = hup_rows[0];
    table.section("restart (floor: a bare fork + exec of the script by the bench)");
    table.timed(
        "SIGHUP to the new child running",
        hup1,
        Some(hup1_floor),
        &format!(
            "<= 1.2x floor: {}",
            verdict(hup1.median.as_secs_f64() <= 1.2 * hup1_floor.median.as_secs_f64())
        ),
    );
    table.section("SIGUSR1 reaching all N children (floor: the bench signals them itself)");
    for (n, ours, floor) in &usr1_rows {
        table.timed(&format!("SIGUSR1, N = {n}"), *ours, Some(*floor), "");
    }
    table.section("one restart with N live, draining children (should stay flat)");
    for (n, ours, floor) in &hup_rows {
        // The floor, measured in the same rounds, shows how much of a change
        // is the machine's rather than the wrapper's.
        let vs1 = ours.median.as_secs_f64() / hup1.median.as_secs_f64();
        let floor_vs1 = floor.median.as_secs_f64() / hup1_floor.median.as_secs_f64();
        table.timed(
            &format!("SIGHUP to new child, N = {n}"),
            *ours,
            Some(*floor),
            &format!("{vs1:.2}x the N = 1 cost (floor {floor_vs1:.2}x)"),
        );
    }
    after_restarts.expect("the N = 100 round")
}

/// The control socket: a `status` exchange in-process and through
/// hot-restarter-ctl, `reload --wait`, and a wrapper idling with its
/// socket open. One wrapper, one child at a time.
fn control_socket(cfg: &BenchConfig, fx: &mut Fixture, table: &mut Table) {
    let socket = fx.path("control.sock");
    let mut w = Wrapper::launch_with(fx, &[OsStr::new("--control-socket"), socket.as_os_str()]);
    // The wrapper's own replies, for the floor servers to give back.
    let status_line = exchange(&socket, &Request::Status);
    let reload_line = exchange(&socket, &Request::Reload { wait: true });
    w.await_epoch(fx);
    w.retire_oldest();
    let status_server = FloorServer::start(fx, "floor-status.sock", &status_line);
    let reload_server = FloorServer::start(fx, "floor-reload.sock", &reload_line);

    // `status` through the library's client, in this process.
    let (mut inproc, mut inproc_floor) = (Vec::new(), Vec::new());
    for _ in 0..cfg.exchanges {
        inproc_floor.push(status_exchange(status_server.path()));
        inproc.push(status_exchange(&socket));
    }
    // `hot-restarter-ctl status`, one process per exchange.
    let (mut ctl_status, mut ctl_status_floor) = (Vec::new(), Vec::new());
    for _ in 0..cfg.ctl_rounds {
        ctl_status_floor.push(ctl(status_server.path(), &["status"]).0);
        ctl_status.push(ctl(&socket, &["status"]).0);
    }
    // `hot-restarter-ctl reload --wait`: until it returns, and how that
    // compares with the moment the new child is running (its ready line).
    let (mut reload, mut reload_floor) = (Vec::new(), Vec::new());
    let (mut to_child, mut child_to_return) = (Vec::new(), Vec::new());
    for _ in 0..cfg.ctl_rounds {
        reload_floor.push(ctl(reload_server.path(), &["reload", "--wait"]).0);
        let t0 = monotonic_ns();
        let (took, returned) = ctl(&socket, &["reload", "--wait"]);
        let ready = w.await_epoch(fx);
        reload.push(took);
        to_child.push(Duration::from_nanos((ready.at_ns - t0) as u64));
        child_to_return.push(returned - ready.at_ns);
        w.retire_oldest();
    }
    drop((status_server, reload_server));

    // Idle with the socket open, after all those clients.
    thread::sleep(Duration::from_millis(300));
    let (before, after) = idle_window(&w, cfg.idle);
    // The timed ones, the two replies the floor servers give back, and one
    // per hot-restarter-ctl run.
    let exchanges = cfg.exchanges + 2 + cfg.ctl_rounds * 2;
    let epochs = w.next_epoch;
    let took = w.term();
    assert!(took < DEADLINE);

    table.section(
        "control socket, 1 child (floor: the same client against a minimal server \
         giving the same reply)",
    );
    let inproc = stats(inproc);
    let inproc_floor = stats(inproc_floor);
    table.timed(
        &format!(
            "status round trip, in-process client (median of {})",
            cfg.exchanges
        ),
        inproc,
        Some(inproc_floor),
        "",
    );
    table.timed(
        "hot-restarter-ctl status (one process each)",
        stats(ctl_status),
        Some(stats(ctl_status_floor)),
        "",
    );
    table.timed(
        "hot-restarter-ctl reload --wait, to its return",
        stats(reload),
        Some(stats(reload_floor)),
        "",
    );
    table.timed(
        "hot-restarter-ctl reload --wait, to the new child running",
        stats(to_child),
        None,
        "",
    );
    table.value(
        "the new child running to reload --wait returning",
        signed_ms(child_to_return),
        "< 0: it returns once the child is forked",
    );
    table.section(&format!(
        "memory and idle with the control socket open (1 child, after {exchanges} \
         exchanges and {epochs} epochs)"
    ));
    let idle = Idle::new(cfg);
    idle.memory(table, after, true);
    // The spare /dev/null lets the server refuse a client when the wrapper
    // is out of descriptors.
    table.value(
        "open descriptors",
        after.fds.to_string(),
        &format!(
            "6 (0-2, signalfd, socket, spare /dev/null): {}",
            verdict(after.fds == 6)
        ),
    );
    idle.wakeups(table, before, after);
    table.value("hot-restarter-ctl binary size", size_kb(CTL), "");
}

/// One `status` exchange through the library's client; returns its time.
fn status_exchange(socket: &Path) -> Duration {
    let t0 = Instant::now();
    let reply = client::request(socket, &Request::Status, Instant::now() + DEADLINE);
    let took = t0.elapsed();
    assert!(
        matches!(reply, Ok(Reply::Status(_))),
        "status failed: {reply:?}"
    );
    took
}

/// Run `hot-restarter-ctl --socket SOCKET ARGS...`; returns the time it took
/// and CLOCK_MONOTONIC (ns) when it was seen to exit.
fn ctl(socket: &Path, args: &[&str]) -> (Duration, i64) {
    let mut cmd = Command::new(CTL);
    base(&mut cmd).arg("--socket").arg(socket).args(args);
    let t0 = Instant::now();
    let status = cmd.status().expect("cannot run hot-restarter-ctl");
    let (took, at) = (t0.elapsed(), monotonic_ns());
    assert!(status.success(), "hot-restarter-ctl {args:?}: {status}");
    (took, at)
}

/// One exchange, returning the reply line exactly as the wrapper sent it.
fn exchange(socket: &Path, request: &Request) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = client::connect(socket, Instant::now() + DEADLINE).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request.to_line().as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    assert!(
        Reply::parse(line.as_bytes()).is_ok(),
        "unusable reply {line:?}"
    );
    line.trim_end().to_string()
}

// ----- rows shared by the idle sections -----------------------------------

struct Idle {
    label: String,
}

impl Idle {
    fn new(cfg: &BenchConfig) -> Idle {
        Idle {
            label: format!("wake-ups over an idle {:.1} s", cfg.idle.as_secs_f64()),
        }
    }

    /// RssAnon (< 256 KB) and VmRSS (< 3 MB if `vm_target`).
    fn memory(&self, table: &mut Table, after: ProcStatus, vm_target: bool) {
        table.value(
            "idle private memory (RssAnon)",
            kb(after.rss_anon_kb),
            &format!("< 256 KB: {}", verdict(after.rss_anon_kb < 256)),
        );
        let vm = if vm_target {
            format!("< 3 MB: {}", verdict(after.vm_rss_kb < 3 * 1024))
        } else {
            String::new()
        };
        table.value("total resident memory (VmRSS)", kb(after.vm_rss_kb), &vm);
    }

    /// Context switches, runs and CPU ticks over the window (0).
    fn wakeups(&self, table: &mut Table, before: ProcStatus, after: ProcStatus) {
        table.value(
            &self.label,
            format!(
                "{} ctxt switches, {} runs, {} CPU ticks",
                after.ctxt_switches - before.ctxt_switches,
                after.sched_runs - before.sched_runs,
                after.cpu_ticks - before.cpu_ticks
            ),
            &format!(
                "0: {}",
                verdict(after.ctxt_switches == before.ctxt_switches)
            ),
        );
    }
}

fn kb(v: u64) -> String {
    format!("{v} KB")
}

fn size_kb(path: &str) -> String {
    format!("{} KB", fs::metadata(path).unwrap().len() / 1024)
}
