//! systemd: the sd_notify protocol, seen from a datagram socket the test
//! binds and passes as NOTIFY_SOCKET (no systemd runs as PID 1 here), the
//! unit files in examples/systemd driven the way systemd would drive them,
//! and `systemd-analyze verify` on those unit files.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::components::*;
use crate::supervisor::*;
use crate::support::*;
use nix::sys::signal::{Signal, kill};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;

// ----- the receiving end of NOTIFY_SOCKET --------------------------------

/// One datagram and the pid the kernel says sent it (SCM_CREDENTIALS, as
/// systemd uses to enforce NotifyAccess=main).
#[derive(Debug)]
struct Notification {
    text: String,
    sender: Option<i32>,
}

/// A bound notification socket and the NOTIFY_SOCKET value naming it.
struct Listener {
    socket: UnixDatagram,
    value: String,
    _dir: Option<tempfile::TempDir>,
}

impl Listener {
    fn path() -> Listener {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        Listener::ready(socket, path.to_string_lossy().into_owned(), Some(dir))
    }

    fn abstract_name() -> Listener {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("hot-restarter-test-{}-{nanos}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        Listener::ready(socket, format!("@{name}"), None)
    }

    fn ready(socket: UnixDatagram, value: String, dir: Option<tempfile::TempDir>) -> Listener {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt on a valid socket with a pointer to a c_int
        // and its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_PASSCRED: {}", std::io::Error::last_os_error());
        Listener {
            socket,
            value,
            _dir: dir,
        }
    }

    /// The next datagram, or None after `timeout`.
    fn recv(&self, timeout: Duration) -> Option<Notification> {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        // u64s keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: a zeroed msghdr is valid; every pointer set below points
        // into a live local buffer of the given size.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: recvmsg on a valid socket with the msghdr built above.
        let n = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => return None,
                _ => panic!("recvmsg: {err}"),
            }
        }
        assert_eq!(msg.msg_flags & libc::MSG_TRUNC, 0, "datagram truncated");
        let mut sender = None;
        // SAFETY: the CMSG_* macros walk the control buffer recvmsg filled,
        // within msg_controllen; SCM_CREDENTIALS data is a struct ucred.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
                {
                    let cred: libc::ucred =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::ucred>());
                    sender = Some(cred.pid);
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Some(Notification {
            text: String::from_utf8_lossy(&buf[..n as usize]).into_owned(),
            sender,
        })
    }

    /// The next datagram; panics after the default deadline.
    fn expect(&self, w: &Wrapper, what: &str) -> Notification {
        self.recv(DEADLINE).unwrap_or_else(|| {
            panic!(
                "no notification ({what}) from the wrapper; output:\n{}",
                w.output()
            )
        })
    }

    /// Nothing more is queued.
    fn assert_empty(&self) {
        if let Some(extra) = self.recv(Duration::from_millis(100)) {
            panic!("unexpected notification {:?}", extra.text);
        }
    }
}

fn monotonic_usec() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).unwrap();
    t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000
}

/// A notification's lines, which must each end with a newline.
fn lines_of(n: &Notification) -> Vec<&str> {
    assert!(n.text.ends_with('\n'), "unterminated: {:?}", n.text);
    n.text.lines().collect()
}

/// Check `RELOADING=1`, `MONOTONIC_USEC=` within [from, to], `STATUS=`.
fn assert_reloading(n: &Notification, from: u64, to: u64, status: &str) {
    let lines = lines_of(n);
    assert_eq!(lines.len(), 3, "{:?}", n.text);
    assert_eq!(lines[0], "RELOADING=1", "{:?}", n.text);
    let usec: u64 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC: {:?}", n.text))
        .parse()
        .unwrap_or_else(|_| panic!("MONOTONIC_USEC is not a number: {:?}", n.text));
    // systemd (notify-reload) only counts a RELOADING=1 stamped no earlier
    // than its reload request.
    assert!(
        (from..=to).contains(&usec),
        "MONOTONIC_USEC={usec} outside [{from}, {to}]"
    );
    assert_eq!(lines[2], format!("STATUS={status}"), "{:?}", n.text);
}

// ----- the protocol --------------------------------------------------------

/// The reporter, after dumping its environment to `env-$RESTART_EPOCH`.
fn env_dumping_fixture() -> String {
    let rest = REPORTER.split_once('\n').unwrap().1;
    format!("#!/bin/sh\nenv > \"$REPORT_DIR/env-$RESTART_EPOCH\"\n{rest}")
}

/// Start, one hot restart, stop: the exact messages in order, each sent by
/// the wrapper itself, and NOTIFY_SOCKET kept from the children.
fn exact_sequence(listener: Listener) {
    let value = listener.value.clone();
    let mut w = Wrapper::start_with(&["--term-wait", "5"], &env_dumping_fixture(), |cmd| {
        cmd.env("NOTIFY_SOCKET", &value);
    });
    let ready = listener.expect(&w, "READY=1 for epoch 0");
    let pid0 = w.report(0).pid().unwrap();
    assert_eq!(
        ready.text,
        format!("READY=1\nSTATUS=serving epoch 0 (PID={pid0})\n")
    );
    assert_eq!(ready.sender, Some(w.pid), "not sent by the main process");

    let before = monotonic_usec();
    w.signal(Signal::SIGHUP);
    let reloading = listener.expect(&w, "RELOADING=1");
    let after = monotonic_usec();
    assert_reloading(&reloading, before, after, "restarting to epoch 1");
    assert_eq!(reloading.sender, Some(w.pid));
    let ready = listener.expect(&w, "READY=1 for epoch 1");
    let pid1 = w.report(1).pid().unwrap();
    assert_eq!(
        ready.text,
        format!("READY=1\nSTATUS=serving epoch 1 (PID={pid1})\n")
    );
    assert_eq!(ready.sender, Some(w.pid));

    w.signal(Signal::SIGTERM);
    let stopping = listener.expect(&w, "STOPPING=1");
    assert_eq!(stopping.text, "STOPPING=1\nSTATUS=stopping\n");
    assert_eq!(stopping.sender, Some(w.pid));
    assert_eq!(w.exit_code(), 0);
    w.assert_no_children_left();
    listener.assert_empty();

    // The children are not the service's main process: no NOTIFY_SOCKET.
    for epoch in 0..=1 {
        let env = fs::read_to_string(w.path().join(format!("env-{epoch}"))).unwrap();
        assert!(
            env.lines().any(|l| l == format!("RESTART_EPOCH={epoch}")),
            "{env}"
        );
        assert!(
            !env.lines().any(|l| l.starts_with("NOTIFY_SOCKET=")),
            "epoch {epoch} got NOTIFY_SOCKET:\n{env}"
        );
    }
}

#[test]
fn notifications_on_a_path_socket() {
    exact_sequence(Listener::path());
}

#[test]
fn notifications_on_an_abstract_socket() {
    exact_sequence(Listener::abstract_name());
}

#[test]
fn a_notify_socket_nobody_listens_on_is_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody-here");
    let mut w = Wrapper::start_with(&["--term-wait", "5"], REPORTER, |cmd| {
        cmd.env("NOTIFY_SOCKET", &missing);
    });
    let pid0 = w.report(0).pid().unwrap();
    let warning = w.wait_for_text("cannot notify systemd");
    assert_eq!(level_of(&warning), "WARNING", "{warning}");
    w.signal(Signal::SIGHUP);
    w.report(1);
    assert!(running(pid0));
    w.stop();
}

// ----- the unit files --------------------------------------------------------

const UNIT_BIN: &str = "/usr/local/bin/hot-restarter";
const UNIT_CTL: &str = "/usr/local/bin/hot-restarter-ctl";
const UNIT_SCRIPT: &str = "/etc/envoy/start_envoy.sh";
/// The control socket both units give hot-restarter (`%t`: /run).
const UNIT_SOCKET: &str = "%t/hot-restarter.sock";
const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");

fn unit(name: &str) -> String {
    fs::read_to_string(examples().join("systemd").join(name)).unwrap()
}

/// The value of `key=` in a unit file (the last one, as systemd takes it).
fn unit_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .next_back()
}

/// ExecStart's words (the examples use no quoting).
fn exec_start(text: &str) -> Vec<String> {
    unit_value(text, "ExecStart")
        .expect("no ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The value of `--term-wait` on ExecStart, in seconds.
fn term_wait(text: &str) -> f64 {
    let words = exec_start(text);
    let i = words
        .iter()
        .position(|w| w == "--term-wait")
        .expect("ExecStart sets no --term-wait");
    words[i + 1].parse().unwrap()
}

/// A systemd time span such as `30`, `30s`, `1min 30s`, in seconds.
fn timespan(text: &str) -> f64 {
    let mut total = 0.0;
    for part in text.split_whitespace() {
        let digits = part.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &part[digits.len()..];
        let n: f64 = digits.parse().unwrap();
        total += n * match unit {
            "" | "s" | "sec" => 1.0,
            "ms" | "msec" => 0.001,
            "m" | "min" => 60.0,
            "h" | "hr" => 3600.0,
            other => panic!("unknown time unit {other:?}"),
        };
    }
    total
}

#[test]
fn the_units_stop_through_the_wrapper_within_their_timeout() {
    for name in ["hot-restarter.service", "hot-restarter-notify.service"] {
        let text = unit(name);
        // SIGTERM to hot-restarter alone; SIGKILL to the rest only after
        // TimeoutStopSec, which leaves the wrapper its whole term wait.
        assert_eq!(
            unit_value(&text, "KillMode").as_deref(),
            Some("mixed"),
            "{name}"
        );
        let timeout = timespan(&unit_value(&text, "TimeoutStopSec").expect("TimeoutStopSec"));
        let wait = term_wait(&text);
        assert!(
            timeout > wait,
            "{name}: TimeoutStopSec={timeout} is not above --term-wait {wait}"
        );
        assert_eq!(unit_value(&text, "NotifyAccess").as_deref(), Some("main"));
        assert_eq!(exec_start(&text)[0], UNIT_BIN, "{name}");
        assert_eq!(exec_start(&text).last().unwrap(), UNIT_SCRIPT, "{name}");
        assert_eq!(unit_value(&text, "Restart").as_deref(), Some("on-failure"));
    }
    let reload = unit("hot-restarter.service");
    assert_eq!(
        unit_value(&reload, "Type").as_deref(),
        Some("notify-reload")
    );
    assert_eq!(
        unit_value(&reload, "ReloadSignal").as_deref(),
        Some("SIGHUP")
    );
    assert_eq!(unit_value(&reload, "ExecReload"), None);
    let notify = unit("hot-restarter-notify.service");
    assert_eq!(unit_value(&notify, "Type").as_deref(), Some("notify"));
    // systemctl reload waits for the reload's result, on the socket the
    // wrapper serves.
    assert_eq!(
        unit_value(&notify, "ExecReload"),
        Some(format!("{UNIT_CTL} --socket {UNIT_SOCKET} reload --wait"))
    );
    assert_eq!(exec_start(&reload), exec_start(&notify));
    let words = exec_start(&notify);
    let i = words
        .iter()
        .position(|w| w == "--control-socket")
        .expect("ExecStart gives no --control-socket");
    assert_eq!(words[i + 1], UNIT_SOCKET);
}

/// A unit's word as systemd would run it here: the built binaries, and
/// the wrapper's temp dir as the runtime directory `%t`.
fn unit_word(word: &str, runtime_dir: &Path) -> String {
    let word = if word == UNIT_CTL {
        CTL.to_string()
    } else if word == UNIT_BIN {
        BIN.to_string()
    } else {
        word.to_string()
    };
    word.replace("%t", &runtime_dir.to_string_lossy())
}

/// Run a unit's ExecStart as systemd would (NOTIFY_SOCKET set), on the
/// reporter fixture and the built binary, with `extra` flags before the
/// start script.
fn start_unit_with(text: &str, listener: &Listener, extra: &[&str]) -> Wrapper {
    let words = exec_start(text);
    let dir = tempfile::tempdir().unwrap();
    let fixture = script(dir.path(), "start.sh", REPORTER);
    let mut cmd = command(dir.path());
    cmd.env_remove("HOT_RESTARTER_CONTROL_SOCKET");
    for word in &words[1..] {
        if word == UNIT_SCRIPT {
            cmd.args(extra).arg(&fixture);
        } else {
            cmd.arg(unit_word(word, dir.path()));
        }
    }
    cmd.env("NOTIFY_SOCKET", &listener.value);
    Wrapper::spawn(dir, cmd)
}

fn start_unit(text: &str, listener: &Listener) -> Wrapper {
    start_unit_with(text, listener, &[])
}

/// Run the unit's ExecReload as systemd would for the wrapper `w`
/// (`$MAINPID` is its pid), bounded by `DEADLINE`.
fn exec_reload(text: &str, w: &Wrapper) -> std::process::Output {
    let line = unit_value(text, "ExecReload").expect("no ExecReload");
    let words: Vec<String> = line
        .split_whitespace()
        .map(|word| unit_word(word, w.path()).replace("$MAINPID", &w.pid.to_string()))
        .collect();
    let mut cmd = Command::new(&words[0]);
    cmd.args(&words[1..])
        .env_remove("HOT_RESTARTER_CONTROL_SOCKET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (ended, out) = finish_owned(spawn_owned(&mut cmd));
    assert!(
        ended,
        "ExecReload {line} did not end; output:\n{}",
        w.output()
    );
    out
}

/// `systemctl reload` and `systemctl stop` as systemd carries them out for
/// `text`: `reload` does what the unit's reload does to the wrapper.
fn unit_lifecycle(text: &str, reload: impl Fn(&Wrapper)) {
    let listener = Listener::path();
    let mut w = start_unit(text, &listener);
    let pid0 = w.report(0).pid().unwrap();
    let ready = listener.expect(&w, "READY=1");
    assert_eq!(
        ready.text,
        format!("READY=1\nSTATUS=serving epoch 0 (PID={pid0})\n")
    );

    let before = monotonic_usec();
    reload(&w);
    let reloading = listener.expect(&w, "RELOADING=1");
    assert_reloading(
        &reloading,
        before,
        monotonic_usec(),
        "restarting to epoch 1",
    );
    let ready = listener.expect(&w, "READY=1 after the reload");
    let pid1 = w.report(1).pid().unwrap();
    assert_eq!(
        ready.text,
        format!("READY=1\nSTATUS=serving epoch 1 (PID={pid1})\n")
    );
    assert!(running(pid0), "the reload touched epoch 0");
    for n in [&ready, &reloading] {
        assert_eq!(n.sender, Some(w.pid), "NotifyAccess=main would drop it");
    }

    // KillMode=mixed: SIGTERM to the main process only.
    let stop = Instant::now();
    w.signal(Signal::SIGTERM);
    let stopping = listener.expect(&w, "STOPPING=1");
    assert_eq!(stopping.text, "STOPPING=1\nSTATUS=stopping\n");
    let timeout = timespan(&unit_value(text, "TimeoutStopSec").unwrap());
    let status = w.wait_exit(Duration::from_secs_f64(timeout));
    assert_eq!(status.code(), Some(0), "output:\n{}", w.output());
    assert!(stop.elapsed() < Duration::from_secs_f64(timeout));
    w.assert_no_children_left();
    listener.assert_empty();
}

#[test]
fn notify_reload_unit_reloads_with_its_reload_signal_and_stops() {
    let text = unit("hot-restarter.service");
    let signal = Signal::from_str(&unit_value(&text, "ReloadSignal").unwrap()).unwrap();
    unit_lifecycle(&text, |w| {
        kill(Pid::from_raw(w.pid), signal).unwrap();
    });
}

#[test]
fn notify_unit_reloads_with_its_exec_reload_and_stops() {
    let unit_text = unit("hot-restarter-notify.service");
    unit_lifecycle(&unit_text, |w| {
        let out = exec_reload(&unit_text, w);
        assert!(out.status.success(), "ExecReload: {}", text(&out));
        // It returned with the restart done: epoch 1 runs.
        let pid1 = w.pid_of(1);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("epoch 1 (PID={pid1}) runs\n")
        );
    });
}

#[test]
fn notify_units_exec_reload_fails_when_the_reload_is_skipped() {
    // With a --preflight that rejects the configuration, ExecReload (and
    // so `systemctl reload`) fails with the preflight's reason; the unit
    // keeps serving on the old epoch, and systemd hears READY=1 again.
    let unit_text = unit("hot-restarter-notify.service");
    let listener = Listener::path();
    let preflight = "#!/bin/sh\n\
        if [ -e \"$REPORT_DIR/reject\" ]; then\n\
          echo \"envoy.yaml: no such cluster 'backend'\" >&2\n\
          exit 1\n\
        fi\n";
    let dir = tempfile::tempdir().unwrap();
    let preflight = script(dir.path(), "preflight.sh", preflight);
    let preflight = preflight.to_string_lossy().into_owned();
    let mut w = start_unit_with(&unit_text, &listener, &["--preflight", &preflight]);
    let pid0 = w.report(0).pid().unwrap();
    listener.expect(&w, "READY=1 for epoch 0");

    let out = exec_reload(&unit_text, &w);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pid1 = w.pid_of(1);
    listener.expect(&w, "RELOADING=1 for epoch 1");
    listener.expect(&w, "READY=1 for epoch 1");

    fs::write(w.path().join("reject"), "").unwrap();
    let out = exec_reload(&unit_text, &w);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("restart to epoch 2 skipped")
            && err.contains("envoy.yaml: no such cluster 'backend'"),
        "{err}"
    );
    let reloading = listener.expect(&w, "RELOADING=1 for epoch 2");
    assert!(
        reloading.text.contains("STATUS=restarting to epoch 2"),
        "{reloading:?}"
    );
    let ready = listener.expect(&w, "READY=1 after the skip");
    assert_eq!(
        ready.text,
        format!("READY=1\nSTATUS=serving epoch 1 (PID={pid1})\n")
    );
    assert!(running(pid0) && running(pid1));
    assert!(!w.path().join("epoch-2").exists());

    w.signal(Signal::SIGTERM);
    listener.expect(&w, "STOPPING=1");
    assert_eq!(w.exit_code(), 0);
    w.assert_no_children_left();
    listener.assert_empty();
}

// ----- systemd-analyze verify -------------------------------------------------

/// `systemd-analyze verify` of the given unit alone (`systemd_verify`).
fn verify(path: &Path) -> (bool, String) {
    let out = output_owned(&mut found::systemd_verify(path));
    (out.status.success(), text(&out))
}

/// A copy of `text` named `name` in `dir`, pointing at binaries that exist.
fn unit_copy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let text = text.replace(UNIT_CTL, CTL).replace(UNIT_BIN, BIN);
    fs::write(&path, text).unwrap();
    path
}

fn systemd_version() -> u32 {
    let out = output_owned(Command::new("systemd-analyze").arg("--version"));
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    first
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the systemd version from {first:?}"))
}

#[needs(systemd_analyze)]
#[test]
fn unit_files_pass_systemd_analyze_verify() {
    need_tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    // Controls: verify must pass a minimal unit and fail a broken one, or
    // it cannot run here and proves nothing.
    let good = unit_copy(
        dir.path(),
        "control-good.service",
        "[Service]\nExecStart=/bin/true\n",
    );
    let (ok, out) = verify(&good);
    assert!(
        ok,
        "systemd-analyze verify cannot run here: {out}; {}",
        why_required()
    );
    let bad = unit_copy(
        dir.path(),
        "control-bad.service",
        "[Service]\nExecStart=/bin/true\nKillMode=bogus\n",
    );
    assert!(!verify(&bad).0, "verify accepts a bad KillMode");

    let notify = unit_copy(
        dir.path(),
        "hot-restarter-notify.service",
        &unit("hot-restarter-notify.service"),
    );
    let (ok, out) = verify(&notify);
    assert!(ok && out.trim().is_empty(), "{out}");

    let text = unit("hot-restarter.service");
    let reload = unit_copy(dir.path(), "hot-restarter.service", &text);
    let (ok, out) = verify(&reload);
    let version = systemd_version();
    if version >= 253 {
        assert!(ok && out.trim().is_empty(), "systemd {version}: {out}");
    } else {
        // Type=notify-reload and ReloadSignal= came with systemd 253: older
        // ones warn about exactly those two lines and nothing else ...
        let unknown: Vec<&str> = out
            .lines()
            .filter(|l| {
                !l.ends_with("Failed to parse service type, ignoring: notify-reload")
                    && !l.ends_with("Unknown key 'ReloadSignal' in section [Service], ignoring.")
            })
            .collect();
        assert!(unknown.is_empty(), "systemd {version}: {out}");
        assert_eq!(out.lines().count(), 2, "systemd {version}: {out}");
        // ... and the rest of the unit is clean once they are taken out.
        let older: String = text
            .lines()
            .filter(|l| !l.starts_with("ReloadSignal="))
            .map(|l| {
                if l == "Type=notify-reload" {
                    "Type=notify\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert_ne!(older, text);
        let copy = unit_copy(dir.path(), "hot-restarter-older.service", &older);
        let (ok, out) = verify(&copy);
        assert!(ok && out.trim().is_empty(), "{out}");
    }
}

#[test]
fn a_held_reload_says_reloading_at_once_and_ready_only_when_done() {
    // Under Type=notify-reload systemd waits for RELOADING=1 after its
    // SIGHUP; a SIGHUP held by --hold-while-draining must still answer it,
    // and READY=1 must wait for the held restart itself.
    let listener = Listener::path();
    let value = listener.value.clone();
    let mut w = Wrapper::start_with(&["--hold-while-draining"], REPORTER, |cmd| {
        cmd.env("NOTIFY_SOCKET", &value);
    });
    listener.expect(&w, "READY=1 for epoch 0");
    let pid0 = w.report(0).pid().unwrap();
    w.signal(Signal::SIGHUP);
    listener.expect(&w, "RELOADING=1 for epoch 1");
    listener.expect(&w, "READY=1 for epoch 1");
    let pid1 = w.report(1).pid().unwrap();

    // Epoch 0 still drains: this SIGHUP is held.
    let before = monotonic_usec();
    w.signal(Signal::SIGHUP);
    let held = listener.expect(&w, "RELOADING=1 for the held restart");
    assert_reloading(&held, before, monotonic_usec(), "restart held");
    listener.assert_empty();

    // Epoch 0 finishes draining: the held restart runs, then READY=1.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid0), Signal::SIGTERM).unwrap();
    let reloading = listener.expect(&w, "RELOADING=1 for epoch 2");
    assert!(
        reloading.text.contains("STATUS=restarting to epoch 2"),
        "{reloading:?}"
    );
    let ready = listener.expect(&w, "READY=1 for epoch 2");
    let pid2 = w.report(2).pid().unwrap();
    assert_eq!(
        ready.text,
        format!("READY=1\nSTATUS=serving epoch 2 (PID={pid2})\n")
    );
    assert_ne!(pid1, pid2);
    w.signal(Signal::SIGTERM);
    listener.expect(&w, "STOPPING=1");
    assert_eq!(w.exit_code(), 0);
}
