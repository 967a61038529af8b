//! examples/monit under a real monit daemon (`monit -I`, a 1 s cycle, its
//! control, state and log files and an HTTP interface on a unix socket, all
//! in a temp dir). The example control file is used as shipped, with only
//! its paths pointed into the temp dir: its start, stop and reload
//! programs run the built hot-restarter-ctl, which starts the built
//! hot-restarter beside it on the reporter fixture.
//!
//! monit needs its start program to exit, so the wrapper ends up orphaned:
//! this test process is made a child subreaper that reaps such orphans and
//! records how they exited (see support/supervisor.rs).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::components::*;
use crate::supervisor::*;
use crate::support::*;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

const SERVICE: &str = "hot-restarter";
const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

/// The example's installed paths, and where the tests put them.
fn replacements(dir: &Path) -> [(&'static str, PathBuf); 6] {
    [
        ("/usr/local/bin/hot-restarter-ctl", PathBuf::from(CTL)),
        ("/run/hot-restarter.pid", dir.join("hot-restarter.pid")),
        ("/run/hot-restarter.sock", dir.join("ctl.sock")),
        ("/var/log/hot-restarter.log", dir.join("hot-restarter.log")),
        ("/etc/envoy/start_envoy.sh", dir.join("start.sh")),
        ("/etc/envoy/envoy.yaml", dir.join("envoy.yaml")),
    ]
}

/// `text` with the example's installed paths pointed into `dir`.
fn in_temp_dir(text: &str, dir: &Path) -> String {
    let mut out = text.to_string();
    for (from, to) in replacements(dir) {
        assert!(text.contains(from), "the example no longer uses {from}");
        out = out.replace(from, &to.to_string_lossy());
    }
    out
}

/// The words of the example's `<which> program = "..."` (monit splits the
/// command at spaces; the example quotes nothing inside it).
fn program(rc: &str, which: &str) -> Vec<String> {
    let start = format!("{which} program = \"");
    let line = rc
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(start.as_str()))
        .unwrap_or_else(|| panic!("no {which} program"));
    let command = &line[..line.find('"').expect("unterminated program")];
    command.split_whitespace().map(str::to_string).collect()
}

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
        let body = in_temp_dir(&example, dir);
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
            .env("REPORT_DIR", dir)
            .env(TAG, &tag)
            .env_remove("HOT_RESTARTER_BIN")
            .env_remove("HOT_RESTARTER_CONTROL_SOCKET")
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

    fn socket(&self) -> PathBuf {
        self.dir().join("ctl.sock")
    }

    /// hot-restarter-ctl on the wrapper's socket, as an operator runs it.
    fn ctl(&self, args: &[&str]) -> Output {
        output_owned(
            Command::new(CTL)
                .arg("--socket")
                .arg(self.socket())
                .args(args),
        )
    }

    /// The pid in the wrapper's pid file, if there is one.
    fn wrapper_pid(&self) -> Option<i32> {
        fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Monit on the example control file, once it has started the wrapper
    /// (through hot-restarter-ctl; found through the pid file) and the
    /// wrapper its epoch 0: (monit, the wrapper's pid, epoch 0's pid).
    fn started() -> (Monit, i32, i32) {
        let m = Monit::start(&[]);
        let wrapper = m.wait_wrapper(None);
        let epoch0 = m.report_other_than(0, None).pid().unwrap();
        assert_eq!(ppid(epoch0), Some(wrapper));
        (m, wrapper, epoch0)
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
        assert!(!self.socket().exists(), "the socket outlived the wrapper");
        assert!(
            !self.monit_log().contains("failed to stop"),
            "{}",
            self.logs()
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

#[needs(monit)]
#[test]
fn monit_starts_the_wrapper_restarts_it_after_sigkill_and_stops_it() {
    let (m, first, child) = Monit::started();
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
    // The killed wrapper left its socket file behind; the new one found
    // nothing answering on it and replaced it.
    m.wait_wrapper_log(&format!(
        "removed stale control socket {}",
        m.socket().display()
    ));

    m.stop_cleanly(second, &[child2]);
    assert_eq!(m.wait_event(0, "term").pid(), Some(child2));
}

#[needs(monit)]
#[test]
fn a_config_change_hot_restarts_through_monit_exec() {
    let (m, wrapper, pid0) = Monit::started();
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

    // `if changed checksum then exec "hot-restarter-ctl ... reload"`.
    let pid1 = m.report_other_than(1, None).pid().unwrap();
    assert_eq!(ppid(pid1), Some(wrapper));
    m.wait_wrapper_log(r#"control socket: {"v":1,"cmd":"reload","wait":false}"#);
    assert!(running(pid0), "epoch 0 did not survive the reload");
    assert_eq!(Report::read(&m.dir().join("epoch-0")).count("term"), 0);
    assert_eq!(
        m.wrapper_pid(),
        Some(wrapper),
        "the reload restarted the wrapper"
    );

    // The same by hand, waiting for the result.
    let out = m.ctl(&["reload", "--wait", "--timeout", "20"]);
    assert!(out.status.success(), "{}", text(&out));
    let pid2 = m.report_other_than(2, None).pid().unwrap();
    assert_eq!(ppid(pid2), Some(wrapper));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("epoch 2 (PID={pid2}) runs\n")
    );
    let status = m.ctl(&["status", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["pid"], wrapper);
    assert_eq!(status["children"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(status["counters"]["reloads_done"], 2, "{status}");

    m.stop_cleanly(wrapper, &[pid0, pid1, pid2]);
    for epoch in 0..=2 {
        m.wait_event(epoch, "term");
    }
    // One change, one reload: monit did not exec again.
    assert!(!m.dir().join("epoch-3").exists());
}

#[test]
fn the_start_program_reports_a_wrapper_that_cannot_start() {
    // No monit needed: the example's start program alone, with a pid file
    // that cannot be written, must fail at once and show the log.
    become_subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    script(dir, "start.sh", REPORTER);
    let example = fs::read_to_string(examples().join("monit/hot-restarter.monitrc")).unwrap();
    let words = program(&in_temp_dir(&example, dir), "start");
    let pid_file = dir.join("hot-restarter.pid").to_string_lossy().into_owned();
    let missing = dir.join("missing-dir/hot-restarter.pid");
    let words: Vec<String> = words
        .into_iter()
        .map(|w| {
            if w == pid_file {
                missing.to_string_lossy().into_owned()
            } else {
                w
            }
        })
        .collect();
    assert!(words.contains(&missing.to_string_lossy().into_owned()));
    let tag = dir.to_string_lossy().into_owned();
    let _guard = Supervised {
        child: None,
        tag: tag.clone(),
    };
    let out = output_owned(
        Command::new(&words[0])
            .args(&words[1..])
            .env_remove("HOT_RESTARTER_BIN")
            .env_remove("HOT_RESTARTER_CONTROL_SOCKET")
            .env("REPORT_DIR", dir)
            .env(TAG, &tag),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let socket = dir.join("ctl.sock");
    let log = dir.join("hot-restarter.log");
    assert!(
        err.contains(&format!(
            "exited with code 1 before it answered on {}",
            socket.display()
        )) && err.contains(&format!("last lines of {}", log.display())),
        "{err}"
    );
    // The reason, from the wrapper's own log.
    assert!(
        err.contains("cannot write pid file") && err.contains("missing-dir"),
        "{err}"
    );
    let logged = fs::read_to_string(&log).unwrap();
    assert!(logged.contains("cannot write pid file"), "{logged}");
    assert!(!dir.join("epoch-0").exists(), "a child was started");
    assert!(!socket.exists(), "the socket outlived the wrapper");
}

#[test]
fn the_example_programs_share_one_socket_and_one_pid_file() {
    let example = fs::read_to_string(examples().join("monit/hot-restarter.monitrc")).unwrap();
    let start = program(&example, "start");
    let stop = program(&example, "stop");
    let socket = ["--socket", "/run/hot-restarter.sock"];
    for words in [&start, &stop] {
        assert_eq!(words[0], "/usr/local/bin/hot-restarter-ctl");
        assert_eq!(words[1..3], socket, "{words:?}");
    }
    assert_eq!(start[3], "start");
    assert_eq!(stop[3..], ["stop", "--wait", "--timeout", "25"]);
    let args = &start[start.iter().position(|w| w == "--").unwrap() + 1..];
    let pid_file = &args[args.iter().position(|w| w == "--pid-file").unwrap() + 1];
    assert!(
        example.contains(&format!(
            "check process hot-restarter with pidfile {pid_file}\n"
        )),
        "{pid_file}"
    );
    assert!(!args.iter().any(|w| w.starts_with("--control-socket")));
    // --term-wait < the stop program's --timeout < monit's timeout.
    let term_wait: u32 = args[args.iter().position(|w| w == "--term-wait").unwrap() + 1]
        .parse()
        .unwrap();
    assert!(term_wait < 25, "{term_wait}");
    assert!(example.contains("stop --wait --timeout 25\" with timeout 30 seconds"));
    let exec = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("if changed checksum then exec \""))
        .expect("no exec");
    assert!(
        exec.starts_with(
            "/usr/local/bin/hot-restarter-ctl --socket /run/hot-restarter.sock reload"
        ),
        "{exec}"
    );
}
