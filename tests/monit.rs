//! examples/monit under a real monit daemon (`monit -I`, a 1 s cycle, its
//! control, state and log files and an HTTP interface on a unix socket, all
//! in a temp dir). The example control file is used as shipped, with only
//! its paths pointed into the temp dir; hot-restarter-ctl runs from
//! examples/ and gets the built binary and the reporter fixture through
//! its environment, which monit passes on.
//!
//! monit needs its start program to exit, so the wrapper ends up orphaned:
//! this test process is made a child subreaper that reaps such orphans and
//! records how they exited (see supervisors_common).

mod common;
mod supervisors_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use supervisors_common::*;

const SERVICE: &str = "hot-restarter";

struct Monit {
    // Dropped first: monit, then everything tagged with the temp dir.
    _monit: Supervised,
    tmp: tempfile::TempDir,
    rc: PathBuf,
}

impl Monit {
    /// Start monit on the example control file (monit must be installed).
    fn start(fixture_env: &[(&str, &str)]) -> Monit {
        need_tool("monit");
        become_subreaper();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        script(dir, "start.sh", REPORTER);
        fs::write(dir.join("envoy.yaml"), "version: 1\n").unwrap();

        // The example as shipped, its paths pointed into the temp dir.
        let example = fs::read_to_string(examples().join("monit/hot-restarter.monitrc")).unwrap();
        let ctl = examples().join("monit/hot-restarter-ctl");
        let mut body = example.clone();
        for (from, to) in [
            ("/run/hot-restarter.pid", dir.join("hot-restarter.pid")),
            ("/usr/local/sbin/hot-restarter-ctl", ctl),
            ("/etc/envoy/envoy.yaml", dir.join("envoy.yaml")),
        ] {
            assert!(example.contains(from), "the example no longer uses {from}");
            body = body.replace(from, &to.to_string_lossy());
        }
        // What /etc/monit/monitrc would set, kept in the temp dir.
        let d = dir.display();
        let rc_text = format!(
            "set daemon 1\n\
             set logfile {d}/monit.log\n\
             set idfile {d}/monit.id\n\
             set statefile {d}/monit.state\n\
             set pidfile {d}/monit.pid\n\
             set httpd unixsocket {d}/monit.sock\n    allow localhost\n\n\
             {body}"
        );
        let rc = dir.join("monitrc");
        fs::write(&rc, rc_text).unwrap();
        // monit refuses a control file others may read.
        fs::set_permissions(&rc, fs::Permissions::from_mode(0o600)).unwrap();
        let check = output_owned(Command::new("monit").arg("-t").arg("-c").arg(&rc));
        assert!(
            check.status.success(),
            "monit -t rejects the control file: {}",
            text(&check)
        );

        let tag = dir.to_string_lossy().into_owned();
        let out = fs::File::create(dir.join("monit.out")).unwrap();
        let mut cmd = Command::new("monit");
        cmd.arg("-I")
            .arg("-c")
            .arg(&rc)
            .current_dir(dir)
            .env("HOT_RESTARTER", BIN)
            .env("START_ENVOY", dir.join("start.sh"))
            .env("HOT_RESTARTER_PID_FILE", dir.join("hot-restarter.pid"))
            .env("HOT_RESTARTER_TERM_WAIT", "5")
            .env("HOT_RESTARTER_LOG", dir.join("hot-restarter.log"))
            .env("HOT_RESTARTER_CTL_DEFAULTS", dir.join("no-defaults"))
            .env("REPORT_DIR", dir)
            .env(TAG, &tag)
            .env_remove("RESTART_EPOCH")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in fixture_env {
            cmd.env(k, v);
        }
        let child = spawn_owned(&mut cmd);
        Monit {
            _monit: Supervised {
                child: Some(child),
                tag,
            },
            tmp,
            rc,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn pid_file(&self) -> PathBuf {
        self.dir().join("hot-restarter.pid")
    }

    /// The pid in the wrapper's pid file, if there is one.
    fn wrapper_pid(&self) -> Option<i32> {
        fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Wait until the pid file names a running wrapper other than `not`.
    fn wait_wrapper(&self, not: Option<i32>) -> i32 {
        let mut pid = None;
        let ok = wait_until(DEADLINE, || {
            pid = self.wrapper_pid();
            pid.is_some_and(|p| Some(p) != not && running(p))
        });
        assert!(
            ok,
            "no new wrapper in the pid file ({pid:?}); {}",
            self.logs()
        );
        pid.unwrap()
    }

    /// `monit -c rc ARGS...`: (success, output).
    fn monit(&self, args: &[&str]) -> (bool, String) {
        let out = output_owned(Command::new("monit").arg("-c").arg(&self.rc).args(args));
        (out.status.success(), text(&out))
    }

    /// One field of `monit status NAME` (e.g. "pid", "monitoring status").
    fn status_field(&self, service: &str, field: &str) -> Option<String> {
        let (ok, out) = self.monit(&["status", service]);
        if !ok {
            return None;
        }
        out.lines().find_map(|line| {
            let rest = line.trim_start().strip_prefix(field)?;
            // Field names are padded with spaces up to the value.
            rest.starts_with("  ").then(|| rest.trim().to_string())
        })
    }

    fn wait_status(&self, service: &str, field: &str, value: &str) {
        let mut last = None;
        let ok = wait_until(DEADLINE, || {
            last = self.status_field(service, field);
            last.as_deref() == Some(value)
        });
        assert!(
            ok,
            "monit status {service}: {field} is {last:?}, not {value:?}; {}",
            self.logs()
        );
    }

    fn monit_log(&self) -> String {
        fs::read_to_string(self.dir().join("monit.log")).unwrap_or_default()
    }

    /// The wrapper's and the children's output (hot-restarter-ctl's log).
    fn wrapper_log(&self) -> String {
        fs::read_to_string(self.dir().join("hot-restarter.log")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "monit log:\n{}\nhot-restarter log:\n{}",
            self.monit_log(),
            self.wrapper_log()
        )
    }

    fn wait_wrapper_log(&self, text: &str) {
        assert!(
            wait_until(DEADLINE, || self.wrapper_log().contains(text)),
            "hot-restarter never logged {text:?}; {}",
            self.logs()
        );
    }

    /// The report of `epoch` once its pid differs from `not`.
    fn report_other_than(&self, epoch: u32, not: Option<i32>) -> Report {
        let path = self.dir().join(format!("epoch-{epoch}"));
        wait_new_report(&path, not, || self.logs())
    }

    fn wait_event(&self, epoch: u32, event: &str) -> Report {
        let path = self.dir().join(format!("epoch-{epoch}"));
        let mut last = Report { lines: vec![] };
        let ok = wait_until(DEADLINE, || {
            last = Report::read(&path);
            last.count(event) >= 1
        });
        assert!(ok, "epoch {epoch} never saw {event}: {:?}", last.lines);
        last
    }

    /// `monit stop`, then check that everything is gone and the wrapper
    /// exited 0 having removed its pid file.
    fn stop_cleanly(&self, wrapper: i32, children: &[i32]) {
        let (ok, out) = self.monit(&["stop", SERVICE]);
        assert!(ok, "monit stop failed: {out}");
        self.wait_status(SERVICE, "monitoring status", "Not monitored");
        assert!(
            !self.pid_file().exists(),
            "the pid file outlived the wrapper"
        );
        assert_eq!(
            wait_reaped(wrapper, DEADLINE),
            Some(WaitStatus::Exited(Pid::from_raw(wrapper), 0)),
            "the wrapper did not exit 0; {}",
            self.logs()
        );
        for &pid in children {
            assert!(wait_until(DEADLINE, || !running(pid)), "PID={pid} is left");
        }
        self.wait_wrapper_log(&format!("[{wrapper}][INFO][core]"));
        let log = self.wrapper_log();
        assert!(
            log.lines().any(|l| l.contains(&format!("[{wrapper}]"))
                && message_of(l) == "all children exited cleanly"),
            "{}",
            self.logs()
        );
        // Unmonitored: monit starts nothing again.
        assert!(self.wrapper_pid().is_none());
    }
}

#[test]
#[cfg_attr(
    not(has_monit),
    ignore = "needs monit: apt-get install monit, or run .ci/run"
)]
fn monit_starts_the_wrapper_restarts_it_after_sigkill_and_stops_it() {
    let m = Monit::start(&[]);
    // Started by monit through hot-restarter-ctl, found through the pid
    // file.
    let first = m.wait_wrapper(None);
    let child = m.report_other_than(0, None).pid().unwrap();
    assert_eq!(ppid(child), Some(first));
    m.wait_status(SERVICE, "pid", &first.to_string());
    m.wait_status(SERVICE, "status", "OK");

    // Killed outright: its pid file stays behind, stale. monit notices at
    // its next cycle and starts a new wrapper at epoch 0; the old child got
    // SIGTERM from the kernel when its parent died.
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    assert_eq!(
        wait_reaped(first, DEADLINE),
        Some(WaitStatus::Signaled(
            Pid::from_raw(first),
            Signal::SIGKILL,
            false
        ))
    );
    let second = m.wait_wrapper(Some(first));
    let fresh = m.report_other_than(0, Some(child));
    let child2 = fresh.pid().unwrap();
    assert_eq!(fresh.get("epoch").as_deref(), Some("0"));
    assert_eq!(ppid(child2), Some(second));
    assert!(wait_until(DEADLINE, || !running(child)), "old child left");
    m.wait_status(SERVICE, "pid", &second.to_string());
    assert!(
        m.monit_log()
            .contains("'hot-restarter' process is not running")
    );

    m.stop_cleanly(second, &[child2]);
    assert_eq!(m.wait_event(0, "term").pid(), Some(child2));
}

#[test]
#[cfg_attr(
    not(has_monit),
    ignore = "needs monit: apt-get install monit, or run .ci/run"
)]
fn a_config_change_hot_restarts_through_monit_exec() {
    let m = Monit::start(&[]);
    let wrapper = m.wait_wrapper(None);
    let pid0 = m.report_other_than(0, None).pid().unwrap();
    // monit has taken the file's first checksum once it reports one.
    let mut checksum = None;
    assert!(
        wait_until(DEADLINE, || {
            checksum = m.status_field("envoy-config", "checksum");
            checksum.is_some()
        }),
        "monit never checksummed the config; {}",
        m.logs()
    );
    fs::write(m.dir().join("envoy.yaml"), "version: 2\n").unwrap();

    // `if changed checksum then exec "hot-restarter-ctl reload"`: SIGHUP.
    let pid1 = m.report_other_than(1, None).pid().unwrap();
    assert_eq!(ppid(pid1), Some(wrapper));
    m.wait_wrapper_log("got SIGHUP");
    assert!(running(pid0), "epoch 0 did not survive the reload");
    assert_eq!(Report::read(&m.dir().join("epoch-0")).count("term"), 0);
    assert_eq!(
        m.wrapper_pid(),
        Some(wrapper),
        "the reload restarted the wrapper"
    );

    // The same by hand.
    let ctl = examples().join("monit/hot-restarter-ctl");
    let out = output_owned(
        Command::new(&ctl)
            .arg("reload")
            .env("HOT_RESTARTER_CTL_DEFAULTS", m.dir().join("no-defaults"))
            .env("HOT_RESTARTER_PID_FILE", m.pid_file()),
    );
    assert!(out.status.success(), "{}", text(&out));
    let pid2 = m.report_other_than(2, None).pid().unwrap();
    assert_eq!(ppid(pid2), Some(wrapper));
    let status = output_owned(
        Command::new(&ctl)
            .arg("status")
            .env("HOT_RESTARTER_CTL_DEFAULTS", m.dir().join("no-defaults"))
            .env("HOT_RESTARTER_PID_FILE", m.pid_file()),
    );
    assert_eq!(
        text(&status).trim(),
        format!("hot-restarter is running (PID={wrapper})")
    );

    m.stop_cleanly(wrapper, &[pid0, pid1, pid2]);
    for epoch in 0..=2 {
        m.wait_event(epoch, "term");
    }
    // One change, one reload: monit did not exec again.
    assert!(!m.dir().join("epoch-3").exists());
}

#[test]
fn ctl_start_reports_a_wrapper_that_cannot_start() {
    // No monit needed: the start program alone, with a pid file that
    // cannot be written, must fail and point at the log. The settings come
    // from a defaults file, as /etc/default/hot-restarter would give them.
    become_subreaper();
    let tmp = tempfile::tempdir().unwrap();
    script(tmp.path(), "start.sh", REPORTER);
    let log = tmp.path().join("hot-restarter.log");
    let defaults = tmp.path().join("defaults");
    fs::write(
        &defaults,
        format!(
            "HOT_RESTARTER_PID_FILE={}\nHOT_RESTARTER_LOG={}\n",
            tmp.path().join("missing-dir/hot-restarter.pid").display(),
            log.display()
        ),
    )
    .unwrap();
    let tag = tmp.path().to_string_lossy().into_owned();
    let _guard = Supervised {
        child: None,
        tag: tag.clone(),
    };
    let out = output_owned(
        Command::new(examples().join("monit/hot-restarter-ctl"))
            .arg("start")
            .env("HOT_RESTARTER", BIN)
            .env("START_ENVOY", tmp.path().join("start.sh"))
            .env("HOT_RESTARTER_CTL_DEFAULTS", &defaults)
            .env_remove("HOT_RESTARTER_PID_FILE")
            .env_remove("HOT_RESTARTER_LOG")
            .env("REPORT_DIR", tmp.path())
            .env(TAG, &tag),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("see {}", log.display())),
        "{}",
        text(&out)
    );
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("cannot write pid file") && logged.contains("missing-dir"),
        "{logged}"
    );
    assert!(!tmp.path().join("epoch-0").exists(), "a child was started");
}
