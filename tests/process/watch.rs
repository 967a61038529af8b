//! `--watch`: a change of a watched file's contents is one reload, however
//! the file is changed (written in place, renamed over, `cp` + `mv`, a
//! kubelet AtomicWriter swap); a write that leaves the contents as they
//! were is none; a burst is folded; a file that vanishes is watched for its
//! return; a missing directory is refused at start; an idle wrapper with
//! watches does not wake up.
//!
//! Counting reloads without fixed sleeps: after the change under test the
//! test writes a second watched file, the marker. Its inotify events queue
//! behind the change's, so by the time the marker's reload is logged the
//! change has been looked at too; a reload for it would have been logged
//! first, or named in the same line.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;
use nix::sys::signal::Signal;

/// Each epoch records what the watched file read as when it started, then
/// becomes the reporter (whose report says it started).
const START: &str = r#"#!/bin/sh
cat "$REPORT_DIR/vol/envoy.yaml" > "$REPORT_DIR/seen-$RESTART_EPOCH" 2>&1
exec "$REPORT_DIR/reporter.sh"
"#;

struct Lab {
    w: Wrapper,
    /// The last epoch started.
    epoch: u32,
    /// How many times the marker was changed.
    marks: u32,
}

/// The watched configuration, as the start script reads it.
fn conf(w: &Wrapper) -> PathBuf {
    w.path().join("vol/envoy.yaml")
}

fn marker(w: &Wrapper) -> PathBuf {
    w.path().join("marker/file")
}

fn quoted(p: &Path) -> String {
    format!("{:?}", p.to_string_lossy())
}

/// A fresh test directory holding start.sh (START) and the reporter it runs.
fn with_scripts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "reporter.sh", REPORTER);
    script(dir.path(), "start.sh", START);
    dir
}

/// Start the wrapper on START watching `vol/envoy.yaml` and the marker;
/// `prepare` lays out `vol/` first (a plain file by default).
fn start_lab(extra: &[&str], prepare: impl FnOnce(&Path)) -> Lab {
    let dir = with_scripts();
    fs::create_dir(dir.path().join("vol")).unwrap();
    fs::create_dir(dir.path().join("marker")).unwrap();
    fs::write(dir.path().join("marker/file"), "0").unwrap();
    prepare(&dir.path().join("vol"));
    let mut cmd = command(dir.path());
    let (c, m) = (
        dir.path().join("vol/envoy.yaml"),
        dir.path().join("marker/file"),
    );
    cmd.arg("--watch")
        .arg(&c)
        .arg("--watch")
        .arg(&m)
        .args(extra)
        .arg("start.sh");
    let w = Wrapper::spawn(dir, cmd);
    w.report(0);
    Lab {
        w,
        epoch: 0,
        marks: 0,
    }
}

fn plain(vol: &Path) {
    fs::write(vol.join("envoy.yaml"), "version 0\n").unwrap();
}

impl Lab {
    /// What epoch `epoch` read when it started.
    fn seen(&self, epoch: u32) -> String {
        self.w.report(epoch);
        fs::read_to_string(self.w.path().join(format!("seen-{epoch}"))).unwrap()
    }

    /// The reload lines naming `path` (alone or with the other file).
    fn reloads_naming(&self, path: &Path) -> usize {
        let name = quoted(path);
        (self.w.log_lines().iter())
            .map(|l| message_of(l).to_string())
            .filter(|m| m.ends_with(" changed: restarting") && m.contains(&name))
            .count()
    }

    fn conf_reloads(&self) -> usize {
        self.reloads_naming(&conf(&self.w))
    }

    /// Writes the marker and waits for its reload to start; returns how
    /// many epochs started since the last call, the marker's included.
    /// Every epoch must have been begun by a line naming what changed.
    fn settle(&mut self) -> u32 {
        self.marks += 1;
        fs::write(marker(&self.w), self.marks.to_string()).unwrap();
        let m = marker(&self.w);
        let restarts = |w: &Wrapper| {
            (w.log_lines().iter())
                .filter(|l| message_of(l).ends_with(" changed: restarting"))
                .count()
        };
        // The marker's line, and the "forking" line that follows it (the
        // output arrives line by line).
        assert!(
            wait_until(DEADLINE, || {
                self.reloads_naming(&m) == self.marks as usize
                    && started_epochs(&self.w.lines()).len() > restarts(&self.w)
            }),
            "the marker's reload never came; output:\n{}",
            self.w.output()
        );
        let started = started_epochs(&self.w.lines());
        let last = *started.last().unwrap();
        self.w.report(last);
        let n = last - self.epoch;
        self.epoch = last;
        assert_eq!(
            (started.len(), restarts(&self.w)),
            (last as usize + 1, last as usize),
            "an epoch started without a change; output:\n{}",
            self.w.output()
        );
        n
    }

    /// A change that must be exactly one reload, seen by its epoch.
    fn expect_one_reload(&mut self, what: &str, content: &str) {
        let before = self.conf_reloads();
        self.settle();
        assert_eq!(
            self.conf_reloads(),
            before + 1,
            "{what}: expected one reload; output:\n{}",
            self.w.output()
        );
        assert_eq!(self.seen(self.epoch), content, "{what}");
    }

    /// A write that must be no reload.
    fn expect_no_reload(&mut self, what: &str) {
        let before = self.conf_reloads();
        let n = self.settle();
        assert_eq!(
            (n, self.conf_reloads()),
            (1, before),
            "{what}: a reload came of it; output:\n{}",
            self.w.output()
        );
    }

    fn stop(mut self) {
        self.w.stop();
    }
}

#[test]
fn edits_renames_and_cp_mv_are_one_reload_each_touch_and_rewrites_none() {
    let mut lab = start_lab(&["--watch-debounce", "0.2"], plain);
    let path = conf(&lab.w);
    assert_eq!(lab.seen(0), "version 0\n");

    // In place, as `echo > file` or an editor that writes through.
    fs::write(&path, "version 1\n").unwrap();
    lab.expect_one_reload("a write in place", "version 1\n");

    // An editor that writes a new file and renames it over (vim, sed -i).
    let tmp = path.with_file_name(".envoy.yaml.swp");
    fs::write(&tmp, "version 2\n").unwrap();
    fs::rename(&tmp, &path).unwrap();
    lab.expect_one_reload("a rename over", "version 2\n");

    // cp + mv from elsewhere.
    let elsewhere = lab.w.path().join("new.yaml");
    fs::write(&elsewhere, "version 3\n").unwrap();
    let status = std::process::Command::new("cp")
        .arg(&elsewhere)
        .arg(lab.w.path().join("vol/envoy.yaml.new"))
        .status()
        .unwrap();
    assert!(status.success());
    let status = std::process::Command::new("mv")
        .arg(lab.w.path().join("vol/envoy.yaml.new"))
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    lab.expect_one_reload("cp + mv", "version 3\n");

    // touch: the times change, the contents do not.
    let status = std::process::Command::new("touch")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    lab.expect_no_reload("touch");

    // The same contents written again, in place and renamed over.
    fs::write(&path, "version 3\n").unwrap();
    lab.expect_no_reload("an identical rewrite");
    fs::write(&tmp, "version 3\n").unwrap();
    fs::rename(&tmp, &path).unwrap();
    lab.expect_no_reload("an identical rename over");

    // An unrelated file in the same directory.
    fs::write(lab.w.path().join("vol/other.yaml"), "x").unwrap();
    lab.expect_no_reload("another file in the directory");
    lab.stop();
}

/// The kubelet's AtomicWriter layout: the files in a timestamped directory,
/// `..data` a symlink to it, the user-visible names symlinks into `..data`.
fn atomic_writer(vol: &Path, stamp: &str, content: &str) {
    let ts = format!("..2026_12_05_03_00_{stamp}.000000001");
    fs::create_dir(vol.join(&ts)).unwrap();
    fs::write(vol.join(&ts).join("envoy.yaml"), content).unwrap();
    if vol.join("..data").symlink_metadata().is_err() {
        symlink(&ts, vol.join("..data")).unwrap();
        symlink("..data/envoy.yaml", vol.join("envoy.yaml")).unwrap();
        return;
    }
    // An update: the new directory, `..data_tmp` renamed over `..data`,
    // the old directory removed.
    let old = fs::read_link(vol.join("..data")).unwrap();
    symlink(&ts, vol.join("..data_tmp")).unwrap();
    fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
    fs::remove_dir_all(vol.join(old)).unwrap();
}

#[test]
fn a_kubelet_configmap_update_is_one_reload() {
    let mut lab = start_lab(&["--watch-debounce", "0.2"], |vol| {
        atomic_writer(vol, "00", "version 0\n")
    });
    assert_eq!(lab.seen(0), "version 0\n");
    let vol = lab.w.path().join("vol");
    for (i, stamp) in ["01", "02", "03"].iter().enumerate() {
        let content = format!("version {}\n", i + 1);
        atomic_writer(&vol, stamp, &content);
        lab.expect_one_reload(&format!("AtomicWriter update {}", i + 1), &content);
    }
    // An update that leaves the file as it was (another key of the
    // ConfigMap changed) is no reload.
    atomic_writer(&vol, "04", "version 3\n");
    lab.expect_no_reload("an AtomicWriter update with the same contents");
    lab.stop();
}

#[test]
fn twenty_writes_in_a_second_are_at_most_two_reloads_of_the_last_contents() {
    let mut lab = start_lab(&[], plain);
    let path = conf(&lab.w);
    let began = Instant::now();
    for i in 1..=20 {
        let tmp = path.with_file_name(format!("envoy.yaml.{i}"));
        fs::write(&tmp, format!("version {i}\n")).unwrap();
        fs::rename(&tmp, &path).unwrap();
        // Pacing the writer, not waiting for the wrapper.
        std::thread::sleep(Duration::from_millis(40));
    }
    let took = began.elapsed();
    let before = lab.conf_reloads();
    lab.settle();
    let reloads = lab.conf_reloads() - before;
    eprintln!("[watch figures] 20 writes in {took:?}: {reloads} reload(s)");
    assert!(
        (1..=2).contains(&reloads),
        "{reloads} reloads for 20 writes in {took:?}; output:\n{}",
        lab.w.output()
    );
    assert_eq!(lab.seen(lab.epoch), "version 20\n");
    lab.stop();
}

#[test]
fn a_vanished_file_is_logged_and_its_return_with_new_contents_reloads() {
    let mut lab = start_lab(&["--watch-debounce", "0.2"], plain);
    let path = conf(&lab.w);
    fs::remove_file(&path).unwrap();
    let warning = lab.w.wait_for_text(&format!(
        "watched file {} cannot be read (No such file or directory",
        quoted(&path)
    ));
    assert_eq!(level_of(&warning), "WARNING", "{warning}");
    lab.expect_no_reload("the file removed");
    // Back as it was: no reload.
    fs::write(&path, "version 0\n").unwrap();
    lab.w
        .wait_for_text(&format!("watched file {} can be read now", quoted(&path)));
    lab.expect_no_reload("the file back as it was");
    fs::remove_file(&path).unwrap();
    lab.w.wait_for_count(
        &format!(
            "watched file {} cannot be read (No such file or directory (os error 2)): \
             keeping the running configuration and watching for its return",
            quoted(&path)
        ),
        2,
    );
    fs::write(&path, "version 1\n").unwrap();
    lab.expect_one_reload("the file back with new contents", "version 1\n");
    lab.stop();
}

#[test]
fn a_change_while_a_restart_is_held_is_coalesced_and_named_in_status() {
    // The preflight waits for a file, so the restart stays in flight.
    let mut lab = start_lab(
        &[
            "--watch-debounce",
            "0.1",
            "--preflight",
            "preflight.sh",
            "--control-socket",
            "ctl.sock",
        ],
        |vol| {
            plain(vol);
            script(
                vol.parent().unwrap(),
                "preflight.sh",
                "#!/bin/sh\nwhile [ ! -e \"$REPORT_DIR/go\" ]; do sleep 0.02; done\n",
            );
        },
    );
    let path = conf(&lab.w);
    fs::write(&path, "version 1\n").unwrap();
    lab.w
        .wait_for(&format!("{} changed: restarting", quoted(&path)));
    lab.w
        .wait_for_text("running preflight preflight.sh for epoch 1");
    fs::write(&path, "version 2\n").unwrap();
    lab.w.wait_for(&format!(
        "{} changed: holding the restart until the preflight for epoch 1 is done",
        quoted(&path)
    ));
    lab.w.signal(Signal::SIGHUP);
    lab.w.wait_for(
        "coalescing SIGHUP into the held restart (waiting until the preflight for epoch 1 is done)",
    );
    fs::write(lab.w.path().join("go"), "").unwrap();
    lab.w.report(2);
    assert_eq!(lab.seen(2), "version 2\n");
    assert_eq!(lab.w.count("starting the held restart"), 1);
    // The held restart answers to the change (a SIGHUP folded into it adds
    // nothing to name).
    let ctl = std::process::Command::new(env!("CARGO_BIN_EXE_hot-restarter-ctl"))
        .arg("--socket")
        .arg(lab.w.path().join("ctl.sock"))
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ctl.stdout);
    assert!(
        text.contains("last reload: epoch 2 done after")
            && text.contains(&format!("({} changed)", quoted(&path))),
        "{text}"
    );
    lab.epoch = 2;
    lab.stop();
}

#[test]
fn the_watch_list_comes_from_the_environment_too() {
    let dir = with_scripts();
    fs::create_dir(dir.path().join("vol")).unwrap();
    plain(&dir.path().join("vol"));
    fs::write(dir.path().join("b"), "b").unwrap();
    let list = format!(
        "{}:{}",
        dir.path().join("vol/envoy.yaml").display(),
        dir.path().join("b").display()
    );
    let mut cmd = command(dir.path());
    cmd.env("HOT_RESTARTER_WATCH", &list)
        .env("HOT_RESTARTER_WATCH_DEBOUNCE", "0.1")
        .arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    w.report(0);
    fs::write(w.path().join("b"), "changed").unwrap();
    w.wait_for(&format!(
        "{} changed: restarting",
        quoted(&w.path().join("b"))
    ));
    w.report(1);
    fs::write(conf(&w), "version 1\n").unwrap();
    w.wait_for(&format!("{} changed: restarting", quoted(&conf(&w))));
    w.report(2);
    w.stop();
}

#[test]
fn a_watched_path_in_a_missing_directory_is_refused_at_start() {
    let dir = with_scripts();
    let missing = dir.path().join("no-such-dir/envoy.yaml");
    let mut cmd = command(dir.path());
    cmd.arg("--watch").arg(&missing).arg("start.sh");
    let mut w = Wrapper::spawn(dir, cmd);
    w.expect_refused_at_start(2, "--watch in a missing directory");
    let out = w.output();
    assert!(
        out.contains(&format!(
            "--watch {}: directory {}: No such file or directory (os error 2)",
            missing.display(),
            missing.parent().unwrap().display()
        )),
        "{out}"
    );
}

/// A number field of /proc/PID/status (`voluntary_ctxt_switches:`,
/// `RssAnon:` in kB).
fn status_field(pid: i32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

fn voluntary_switches(pid: i32) -> u64 {
    status_field(pid, "voluntary_ctxt_switches:")
}

/// How often an idle wrapper on a sleeping child wakes up in `window`,
/// and its RssAnon (kB) after it.
fn idle_wakeups(flags: &[&str], window: Duration) -> (u64, u64) {
    let mut w = Wrapper::start_with(flags, "#!/bin/sh\nexec sleep 600\n", |_| {});
    w.wait_for_text("forked new child process with PID=");
    w.wait_idle();
    let before = voluntary_switches(w.pid);
    let until = Instant::now() + window;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let woke = voluntary_switches(w.pid) - before;
    let rss = status_field(w.pid, "RssAnon:");
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.output());
    (woke, rss)
}

#[test]
fn an_idle_wrapper_with_watches_does_not_wake_up() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    fs::write(&a, "a").unwrap();
    let (a, missing) = (
        a.to_string_lossy().into_owned(),
        dir.path().join("later.yaml").to_string_lossy().into_owned(),
    );
    let window = Duration::from_secs(5);
    let (without, rss_without) = idle_wakeups(&[], window);
    let (with, rss_with) = idle_wakeups(&["--watch", &a, "--watch", &missing], window);
    eprintln!(
        "[watch figures] idle {window:?}: {without} voluntary context switches without \
         --watch, {with} with two watched files (one missing); RssAnon {rss_without} kB \
         without, {rss_with} kB with"
    );
    assert_eq!(with, 0, "an idle wrapper with --watch woke up {with} times");
}

#[test]
fn a_file_missing_at_start_is_a_warning_and_its_arrival_a_reload() {
    let mut lab = start_lab(&["--watch-debounce", "0.1"], |_| {});
    let path = conf(&lab.w);
    let warning = lab.w.wait_for_text(&format!(
        "watched file {} cannot be read yet: watching for its arrival",
        quoted(&path)
    ));
    assert_eq!(level_of(&warning), "WARNING", "{warning}");
    fs::write(&path, "version 1\n").unwrap();
    lab.expect_one_reload("the file's arrival", "version 1\n");
    lab.stop();
}
