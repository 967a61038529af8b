//! examples/runit under a real runsv: the service directory is copied
//! verbatim into a temp dir and pointed at the built binary and the
//! reporter fixture through its HOT_RESTARTER and START_ENVOY variables,
//! then driven with `sv` as an operator would.
//!
//! The test process is a child subreaper (see support/supervisor.rs), so that
//! whatever a killed runsv leaves behind is reaped here, not left to PID 1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::components::*;
use crate::supervisor::*;
use crate::support::*;

const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

/// A runsv supervising a copy of examples/runit/hot-restarter, with a
/// test-only `finish` script that records each exit of the wrapper.
struct Runit {
    // Dropped first: runsv and everything tagged below it are killed before
    // the temp dir goes.
    _runsv: Supervised,
    tmp: tempfile::TempDir,
    svc: PathBuf,
}

impl Runit {
    /// Start runsv on the example service (runit must be installed).
    fn start(env: &[(&str, &str)]) -> Runit {
        Runit::start_with(env, |_| Vec::new())
    }

    /// The same, after `setup` has prepared the temp dir; it returns more
    /// environment for runsv (paths into the temp dir).
    fn start_with(
        env: &[(&str, &str)],
        setup: impl FnOnce(&Path) -> Vec<(&'static str, PathBuf)>,
    ) -> Runit {
        for tool in ["runsv", "sv", "svlogd"] {
            need_tool(tool);
        }
        become_subreaper();
        let tmp = tempfile::tempdir().unwrap();
        let more = setup(tmp.path());
        let svc = tmp.path().join("service").join("hot-restarter");
        copy_tree(&examples().join("runit").join("hot-restarter"), &svc);
        script(tmp.path(), "start.sh", REPORTER);
        // runsv runs ./finish with the exit code and signal of ./run.
        script(
            &svc,
            "finish",
            "#!/bin/sh\necho \"$1 $2\" >> \"$REPORT_DIR/finish.log\"\n",
        );
        let tag = tmp.path().to_string_lossy().into_owned();
        let mut cmd = Command::new("runsv");
        scrub(&mut cmd)
            .arg(&svc)
            .env("HOT_RESTARTER", BIN)
            .env("START_ENVOY", tmp.path().join("start.sh"))
            .env("HOT_RESTARTER_CONTROL_SOCKET", tmp.path().join("ctl.sock"))
            .env("REPORT_DIR", tmp.path())
            .env(TAG, &tag)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        for (k, v) in more {
            cmd.env(k, v);
        }
        let child = spawn_owned(&mut cmd);
        let runit = Runit {
            _runsv: Supervised {
                child: Some(child),
                tag,
            },
            tmp,
            svc,
        };
        // sv talks to runsv through supervise/control and supervise/ok.
        assert!(
            wait_until(DEADLINE, || runit.sv(&["status"]).0),
            "runsv never answered sv status"
        );
        runit
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `sv ARGS... <service dir>` as an operator runs it: ./check finds
    /// the built hot-restarter-ctl and the wrapper's socket through the
    /// environment, as the run script does.
    fn sv_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("sv");
        cmd.args(args)
            .arg(&self.svc)
            .env_remove("SVWAIT")
            .env("HOT_RESTARTER_CTL", CTL)
            .env("HOT_RESTARTER_CONTROL_SOCKET", self.socket());
        cmd
    }

    /// Run `sv ARGS... <service dir>`: (success, output).
    fn sv(&self, args: &[&str]) -> (bool, String) {
        let out = output_owned(&mut self.sv_command(args));
        (out.status.success(), text(&out))
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("ctl.sock")
    }

    fn sv_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.sv(args);
        assert!(ok, "sv {args:?} failed: {out}\nlog:\n{}", self.log());
        out
    }

    /// The pid runsv started (the wrapper, since `run` execs it).
    fn wrapper_pid(&self) -> Option<i32> {
        fs::read_to_string(self.svc.join("supervise/pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn stat(&self) -> String {
        fs::read_to_string(self.svc.join("supervise/stat"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// What svlogd has written so far.
    fn log(&self) -> String {
        fs::read_to_string(self.svc.join("log/main/current")).unwrap_or_default()
    }

    fn wait_log(&self, text: &str) {
        assert!(
            wait_until(DEADLINE, || self.log().contains(text)),
            "svlogd never logged {text:?}; log:\n{}",
            self.log()
        );
    }

    /// Each exit of the wrapper as "CODE SIGNAL", from the finish script.
    fn finishes(&self) -> Vec<String> {
        fs::read_to_string(self.dir().join("finish.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn wait_finishes(&self, n: usize) -> Vec<String> {
        assert!(
            wait_until(DEADLINE, || self.finishes().len() >= n),
            "the wrapper did not exit {n} time(s): {:?}; log:\n{}",
            self.finishes(),
            self.log()
        );
        self.finishes()
    }

    /// The report of `epoch` once its pid differs from `not` (a new epoch 0
    /// after a restart overwrites the old report).
    fn report_other_than(&self, epoch: u32, not: Option<i32>) -> Report {
        let path = self.dir().join(format!("epoch-{epoch}"));
        wait_new_report(&path, not, || self.log())
    }

    fn report(&self, epoch: u32) -> Report {
        self.report_other_than(epoch, None)
    }

    fn wait_event(&self, epoch: u32, event: &str, n: usize) -> Report {
        let path = self.dir().join(format!("epoch-{epoch}"));
        wait_report_at(&path, event, n, || self.log())
    }

    fn assert_gone(&self, pids: &[i32]) {
        for &pid in pids {
            assert!(
                wait_until(DEADLINE, || !running(pid)),
                "PID={pid} is still running; log:\n{}",
                self.log()
            );
        }
    }
}

#[needs(runit)]
#[test]
fn sv_hup_1_and_down_map_to_sighup_sigusr1_and_sigterm() {
    let rt = Runit::start(&[]);
    let first = rt.report(0);
    let pid0 = first.pid().unwrap();
    let wrapper = rt.wrapper_pid().expect("runsv wrote no pid");
    // `run` execs the wrapper: runsv's signals reach it directly.
    assert_eq!(
        ppid(pid0),
        Some(wrapper),
        "epoch 0 is not the wrapper's child"
    );
    assert_eq!(rt.stat(), "run");

    rt.sv_ok(&["hup"]);
    let pid1 = rt.report(1).pid().unwrap();
    assert_eq!(ppid(pid1), Some(wrapper));
    rt.wait_log("forking and execing new child process at epoch 1");
    assert!(running(pid0), "epoch 0 did not survive sv hup");
    let untouched = rt.report(0);
    assert_eq!(untouched.count("term"), 0, "{untouched:?}");
    assert_eq!(untouched.count("usr1"), 0, "{untouched:?}");

    rt.sv_ok(&["1"]);
    rt.wait_event(0, "usr1", 1);
    rt.wait_event(1, "usr1", 1);
    rt.wait_log(&format!("sending SIGUSR1 to PID={pid0}"));
    rt.wait_log(&format!("sending SIGUSR1 to PID={pid1}"));

    // -v: wait (up to 7 s) until runsv reports the service down.
    let out = rt.sv_ok(&["-v", "down"]);
    assert!(out.starts_with("ok: down: "), "{out}");
    rt.wait_event(0, "term", 1);
    rt.wait_event(1, "term", 1);
    rt.assert_gone(&[pid0, pid1, wrapper]);
    assert_eq!(
        rt.wait_finishes(1),
        vec!["0 0"],
        "the wrapper did not exit 0"
    );
    rt.wait_log("all children exited cleanly");
    let (_, status) = rt.sv(&["status"]);
    assert!(status.starts_with("down: "), "{status}");
    assert_eq!(rt.stat(), "down");
    // Down means down: runsv does not start it again.
    assert_eq!(rt.finishes().len(), 1);
    assert_eq!(rt.report(0).pid(), Some(pid0));
}

#[needs(runit)]
#[test]
fn a_crashing_epoch_makes_runsv_start_afresh_at_epoch_0() {
    let rt = Runit::start(&[("FAIL_EPOCH", "1")]);
    let pid0 = rt.report(0).pid().unwrap();
    let wrapper = rt.wrapper_pid().unwrap();
    rt.sv_ok(&["hup"]);
    // Epoch 1 exits 3: the wrapper kills epoch 0 and exits 1 ...
    let pid1 = rt.report(1).pid().unwrap();
    assert_eq!(rt.wait_finishes(1)[0], "1 0", "the wrapper did not exit 1");
    rt.wait_log(&format!("PID={pid1} exited with code=3"));
    rt.wait_log("Due to abnormal exit, force killing all child processes and exiting");
    rt.wait_log(&format!("force killing PID={pid0}"));
    // ... and runsv starts a new wrapper, at epoch 0, with nothing left of
    // the old one.
    let fresh = rt.report_other_than(0, Some(pid0));
    let new0 = fresh.pid().unwrap();
    assert_eq!(fresh.get("epoch").as_deref(), Some("0"));
    rt.assert_gone(&[pid0, pid1, wrapper]);
    let new_wrapper = rt.wrapper_pid().unwrap();
    assert_ne!(new_wrapper, wrapper);
    assert_eq!(ppid(new0), Some(new_wrapper));
    assert!(running(new0));
    let (_, status) = rt.sv(&["status"]);
    assert!(
        status.starts_with(&format!("run: {}: (pid {new_wrapper})", rt.svc.display())),
        "{status}"
    );

    let out = rt.sv_ok(&["-v", "down"]);
    assert!(out.starts_with("ok: down: "), "{out}");
    rt.assert_gone(&[new0, new_wrapper]);
    assert_eq!(rt.wait_finishes(2), vec!["1 0", "0 0"]);
}

#[needs(runit)]
#[test]
fn term_wait_5_fits_inside_runits_7_second_force_stop() {
    // Children that ignore SIGTERM: the wrapper must kill them itself and
    // exit before sv force-stop's 7 s are up and runit SIGKILLs it.
    let rt = Runit::start(&[("IGNORE_TERM", "1")]);
    let pid0 = rt.report(0).pid().unwrap();
    rt.sv_ok(&["hup"]);
    let pid1 = rt.report(1).pid().unwrap();
    let wrapper = rt.wrapper_pid().unwrap();

    let started = Instant::now();
    let out = rt.sv_ok(&["force-stop"]);
    let took = started.elapsed();
    assert!(out.starts_with("ok: down: "), "runit had to kill: {out}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(7),
        "force-stop took {took:?}"
    );
    rt.wait_event(0, "term", 1);
    rt.wait_event(1, "term", 1);
    rt.wait_log(&format!("child PID={pid0} did not exit cleanly, killing"));
    rt.wait_log(&format!("child PID={pid1} did not exit cleanly, killing"));
    // Exit 1 (children had to be killed), not runit's SIGKILL.
    assert_eq!(rt.wait_finishes(1), vec!["1 0"]);
    rt.assert_gone(&[pid0, pid1, wrapper]);
    assert_eq!(rt.stat(), "down");
}

#[needs(runit)]
#[test]
fn the_check_script_makes_sv_wait_until_an_epoch_is_ready() {
    // Epoch N is ready once the test creates ready-N: until then ./check
    // (hot-restarter-ctl status) says the service is not available.
    let rt = Runit::start_with(&[], |dir| {
        let ready = "#!/bin/sh\n[ -e \"$REPORT_DIR/ready-$RESTART_EPOCH\" ]\n";
        vec![("HOT_RESTARTER_READY_CHECK", script(dir, "ready.sh", ready))]
    });
    let pid0 = rt.report(0).pid().unwrap();
    let wrapper = rt.wrapper_pid().unwrap();
    // Runs, but is not ready: `sv check` times out (after its 1 s).
    let (ok, out) = rt.sv(&["-w", "1", "check"]);
    assert!(!ok, "sv check passed before epoch 0 was ready: {out}");
    assert!(out.starts_with("timeout: run: "), "{out}");
    fs::write(rt.dir().join("ready-0"), "").unwrap();
    let out = rt.sv_ok(&["-w", "10", "check"]);
    assert!(out.starts_with("ok: run: "), "{out}");

    // `sv restart` waits for the new wrapper's epoch 0 to be ready.
    fs::remove_file(rt.dir().join("ready-0")).unwrap();
    let mut restart = rt.sv_command(&["-w", "15", "restart"]);
    restart.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut restart = spawn_owned(&mut restart);
    let fresh = rt.report_other_than(0, Some(pid0)).pid().unwrap();
    let new_wrapper = rt.wrapper_pid().unwrap();
    assert_ne!(new_wrapper, wrapper);
    rt.assert_gone(&[pid0, wrapper]);
    assert!(
        restart.try_wait().unwrap().is_none(),
        "sv restart returned before the new epoch 0 was ready"
    );
    fs::write(rt.dir().join("ready-0"), "").unwrap();
    let (ended, out) = finish_owned(restart);
    assert!(ended, "sv restart never returned");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("ok: run: "), "{}", text(&out));
    assert!(running(fresh));
    rt.wait_log(&format!("epoch 0 (PID={fresh}) is ready after"));

    let out = rt.sv_ok(&["-v", "down"]);
    assert!(out.starts_with("ok: down: "), "{out}");
    rt.assert_gone(&[fresh, new_wrapper]);
    assert_eq!(rt.wait_finishes(2), vec!["0 0", "0 0"]);
    assert!(!rt.socket().exists(), "the socket outlived the wrapper");
}

#[needs(runit)]
#[test]
fn hot_restarter_ctl_talks_to_the_wrapper_runsv_started() {
    let rt = Runit::start(&[]);
    let pid0 = rt.report(0).pid().unwrap();
    let wrapper = rt.wrapper_pid().unwrap();
    let ctl = |args: &[&str]| {
        output_owned(
            Command::new(CTL)
                .env("HOT_RESTARTER_CONTROL_SOCKET", rt.socket())
                .args(args),
        )
    };
    let out = ctl(&["reload", "--wait", "--timeout", "20"]);
    assert!(out.status.success(), "{}", text(&out));
    let pid1 = rt.report(1).pid().unwrap();
    assert_eq!(text(&out), format!("epoch 1 (PID={pid1}) runs\n"));
    assert_eq!(ppid(pid1), Some(wrapper));
    let out = ctl(&["status"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).starts_with(&format!("hot-restarter PID={wrapper}: running")),
        "{}",
        text(&out)
    );
    let out = ctl(&["reopen-logs"]);
    assert!(out.status.success(), "{}", text(&out));
    rt.wait_event(0, "usr1", 1);
    rt.wait_event(1, "usr1", 1);
    assert!(running(pid0));
    let out = rt.sv_ok(&["-v", "down"]);
    assert!(out.starts_with("ok: down: "), "{out}");
    rt.assert_gone(&[pid0, pid1, wrapper]);
    assert!(!rt.socket().exists());
    // runsv keeps it down: nothing answers.
    let out = ctl(&["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}
