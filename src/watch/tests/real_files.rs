//! The watcher against real files in a temporary directory, changed the
//! way editors, `cp` + `mv`, `touch` and the kubelet change them.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::*;
/// Runs the watcher's loop turn by turn (poll on its descriptor, bounded)
/// until it reports something or `limit` passes; returns what it reported.
fn settle(w: &mut Watcher, limit: Duration) -> Vec<WatchEvent> {
    use crate::os::poller::{Interest, wait};
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        let deadline = w.poll_timeout().map_or(end, |d| d.min(end));
        let ready = wait(
            &[Interest {
                fd: w.fd(),
                write: false,
                token: (),
            }],
            Some(deadline),
        )
        .unwrap();
        let now = Instant::now();
        if !ready.is_empty() {
            w.on_readable(now).unwrap();
        }
        out.extend(w.on_timeout(now));
        if (!out.is_empty() && w.poll_timeout().is_none()) || now >= end {
            return out;
        }
    }
}

/// What a quiet period brings: nothing pending and no event within
/// `QUIET` (long enough for a 20 ms debounce to have fired many times).
const QUIET: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(10);

fn watcher(paths: &[PathBuf]) -> Watcher {
    Watcher::new(paths, 20 * MS).unwrap()
}

/// A watcher (20 ms debounce) on one file, `name` with `contents`, in a
/// fresh directory: (the directory, the file, the watcher).
fn one_file(name: &str, contents: &str) -> (tempfile::TempDir, PathBuf, Watcher) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join(name);
    fs::write(&f, contents).unwrap();
    let w = watcher(std::slice::from_ref(&f));
    (dir, f, w)
}

fn changed(p: &Path) -> Vec<WatchEvent> {
    vec![WatchEvent::Changed(vec![p.to_path_buf()])]
}

/// `p` is back, with contents other than those it had last.
fn back_changed(p: &Path) -> Vec<WatchEvent> {
    vec![
        WatchEvent::Back(p.to_path_buf()),
        WatchEvent::Changed(vec![p.to_path_buf()]),
    ]
}

#[test]
fn write_in_place_touch_and_identical_rewrite() {
    let (_dir, f, mut w) = one_file("envoy.yaml", "a: 1\n");
    assert_eq!(w.poll_timeout(), None, "idle: no deadline");
    assert_eq!(settle(&mut w, QUIET), vec![], "idle: nothing");

    fs::write(&f, "a: 2\n").unwrap();
    assert_eq!(settle(&mut w, LONG), changed(&f));

    let touched = std::process::Command::new("touch")
        .arg(&f)
        .status()
        .unwrap();
    assert!(touched.success());
    assert_eq!(settle(&mut w, QUIET), vec![], "touch is no change");
    assert_eq!(w.poll_timeout(), None);

    fs::write(&f, "a: 2\n").unwrap();
    assert_eq!(
        settle(&mut w, QUIET),
        vec![],
        "identical rewrite is no change"
    );
}

#[test]
fn editor_rename_over_and_cp_mv() {
    let (dir, f, mut w) = one_file("envoy.yaml", "a: 1\n");

    // An editor: write a sibling, rename it over the file.
    let tmp = dir.path().join(".envoy.yaml.swp");
    fs::write(&tmp, "a: 2\n").unwrap();
    fs::rename(&tmp, &f).unwrap();
    assert_eq!(settle(&mut w, LONG), changed(&f));

    // cp into the directory, then mv over.
    let elsewhere = tempfile::tempdir().unwrap();
    let src = elsewhere.path().join("new.yaml");
    fs::write(&src, "a: 3\n").unwrap();
    let staged = dir.path().join("envoy.yaml.new");
    fs::copy(&src, &staged).unwrap();
    fs::rename(&staged, &f).unwrap();
    assert_eq!(settle(&mut w, LONG), changed(&f));

    // Unrelated files in the same directory wake nothing.
    fs::write(dir.path().join("other.txt"), "x").unwrap();
    assert_eq!(w.poll_timeout(), None);
    assert_eq!(settle(&mut w, QUIET), vec![]);
}

#[test]
fn delete_and_return() {
    let (_dir, f, mut w) = one_file("cert.pem", "one");
    fs::remove_file(&f).unwrap();
    let events = settle(&mut w, LONG);
    assert!(
        matches!(&events[..], [WatchEvent::Gone { path, why }] if *path == f && why.contains("os error 2")),
        "{events:?}"
    );
    fs::write(&f, "one").unwrap();
    assert_eq!(
        settle(&mut w, LONG),
        vec![WatchEvent::Back(f.clone())],
        "back unchanged"
    );
    fs::remove_file(&f).unwrap();
    assert_eq!(settle(&mut w, LONG).len(), 1);
    fs::write(&f, "two").unwrap();
    assert_eq!(settle(&mut w, LONG), back_changed(&f));
}

/// What the kubelet's AtomicWriter does for a ConfigMap or Secret volume:
/// files in a timestamped directory, `..data` pointing at it, and the
/// user-visible names pointing into `..data`.
struct Volume {
    dir: PathBuf,
    generation: u32,
}

impl Volume {
    fn new(dir: &Path, files: &[(&str, &str)]) -> Volume {
        let mut v = Volume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        v.update(files);
        for (name, _) in files {
            symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        v
    }

    fn ts_dir(&self, generation: u32) -> String {
        format!("..2026_12_04_18_{generation:02}_00.{}", 100 + generation)
    }

    /// A new timestamped directory, `..data_tmp` pointing at it, renamed
    /// over `..data`, then the old directory removed.
    fn update(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let new = self.dir.join(self.ts_dir(self.generation));
        fs::create_dir(&new).unwrap();
        for (name, text) in files {
            fs::write(new.join(name), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(self.ts_dir(self.generation), &tmp).unwrap();
        fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if self.generation > 1 {
            fs::remove_dir_all(self.dir.join(self.ts_dir(self.generation - 1))).unwrap();
        }
    }
}

#[test]
fn kubelet_atomic_writer_swap() {
    let dir = tempfile::tempdir().unwrap();
    let mut vol = Volume::new(dir.path(), &[("envoy.yaml", "v: 1\n"), ("other", "o1")]);
    let f = dir.path().join("envoy.yaml");
    let mut w = watcher(std::slice::from_ref(&f));
    assert!(
        w.watched_dirs().any(|d| d.ends_with(vol.ts_dir(1))),
        "watches the data directory too"
    );

    vol.update(&[("envoy.yaml", "v: 2\n"), ("other", "o1")]);
    assert_eq!(settle(&mut w, LONG), changed(&f));
    assert!(
        w.watched_dirs().any(|d| d.ends_with(vol.ts_dir(2))),
        "the watch moved to the new directory"
    );
    assert!(!w.watched_dirs().any(|d| d.ends_with(vol.ts_dir(1))));

    // Only a sibling key changes: a look, but no change for this file.
    vol.update(&[("envoy.yaml", "v: 2\n"), ("other", "o2")]);
    assert_eq!(settle(&mut w, QUIET), vec![]);

    vol.update(&[("envoy.yaml", "v: 3\n"), ("other", "o2")]);
    assert_eq!(settle(&mut w, LONG), changed(&f));
}

#[test]
fn symlink_to_another_directory_swapped() {
    // certbot's layout: live/name.pem -> ../archive/name3.pem, and the
    // watched path links to live/ by an absolute path.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let (live, archive, conf) = (root.join("live"), root.join("archive"), root.join("conf"));
    for d in [&live, &archive, &conf] {
        fs::create_dir(d).unwrap();
    }
    fs::write(archive.join("cert1.pem"), "c1").unwrap();
    symlink("../archive/cert1.pem", live.join("cert.pem")).unwrap();
    let f = conf.join("cert.pem");
    symlink(live.join("cert.pem"), &f).unwrap();
    let mut w = watcher(std::slice::from_ref(&f));

    fs::write(archive.join("cert2.pem"), "c2").unwrap();
    symlink("../archive/cert2.pem", live.join("cert.pem.new")).unwrap();
    fs::rename(live.join("cert.pem.new"), live.join("cert.pem")).unwrap();
    assert_eq!(settle(&mut w, LONG), changed(&f));
}

#[test]
fn missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("nope").join("envoy.yaml");
    let err = format!(
        "{:#}",
        Watcher::new(std::slice::from_ref(&bad), 20 * MS)
            .err()
            .unwrap()
    );
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("os error 2"),
        "{err}"
    );
    let file = dir.path().join("plain");
    fs::write(&file, "").unwrap();
    let under_file = file.join("x");
    let err = format!("{:#}", Watcher::new(&[under_file], 20 * MS).err().unwrap());
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn a_missing_file_is_watched_for_its_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("later.yaml");
    let mut w = watcher(std::slice::from_ref(&f));
    assert_eq!(w.missing().collect::<Vec<_>>(), vec![f.as_path()]);
    fs::write(&f, "x").unwrap();
    assert_eq!(settle(&mut w, LONG), back_changed(&f));
}

#[test]
fn big_files_hash_only_the_first_bytes_plus_size() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big");
    let mut data = vec![b'x'; HASH_LIMIT as usize + 10];
    fs::write(&f, &data).unwrap();
    let h1 = content_hash(&f).unwrap();
    *data.last_mut().unwrap() = b'y';
    data.push(b'z');
    fs::write(&f, &data).unwrap();
    assert_ne!(
        content_hash(&f).unwrap(),
        h1,
        "size (and mtime) cover the tail"
    );
    assert!(
        content_hash(dir.path()).is_err(),
        "a directory is not contents"
    );
}

fn rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What a watcher costs in memory: a few watched files in a kubelet volume,
/// looked at once. The figure is printed (run with `--nocapture`); the bound
/// is loose because other tests run in the same process.
#[test]
fn a_watcher_costs_little_memory_and_sleeps_while_idle() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, String)> = (0..4)
        .map(|i| (format!("f{i}"), "x".repeat(4096)))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut vol = Volume::new(dir.path(), &refs);
    let paths: Vec<PathBuf> = files.iter().map(|(n, _)| dir.path().join(n)).collect();
    // A first watcher pages in the code; the second shows the data it costs.
    let mut warm = watcher(&paths);
    vol.update(&refs);
    let _ = settle(&mut warm, QUIET);
    let before = rss_kib();
    let mut w = watcher(&paths);
    vol.update(&refs);
    let _ = settle(&mut w, QUIET);
    let after = rss_kib();
    eprintln!(
        "watcher RSS: {before} KiB -> {after} KiB (+{} KiB)",
        after.saturating_sub(before)
    );
    assert!(
        after.saturating_sub(before) < 512,
        "{before} -> {after} KiB"
    );
    // Idle: no deadline and nothing to read, so the loop's poll sleeps.
    assert_eq!(w.poll_timeout(), None);
    use crate::os::poller::{Interest, wait};
    let ready = wait(
        &[Interest {
            fd: w.fd(),
            write: false,
            token: (),
        }],
        Some(Instant::now() + QUIET),
    )
    .unwrap();
    assert!(ready.is_empty(), "nothing wakes an idle watcher");
}

#[test]
fn a_fifo_is_not_read_and_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = content_hash(&fifo).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

/// Twenty different writes of a real file within one (simulated) second,
/// with the default debounce: inotify queues each event when the write
/// returns, so the clock can be passed in and the count is exact.
#[test]
fn twenty_real_writes_in_a_second_give_one_change_with_the_final_contents() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("envoy.yaml");
    fs::write(&f, "gen: 0\n").unwrap();
    let mut w = Watcher::new(std::slice::from_ref(&f), DEFAULT_DEBOUNCE).unwrap();
    let t0 = Instant::now();
    let mut events = Vec::new();
    for i in 1..=20u32 {
        let now = t0 + i * 50 * MS;
        fs::write(&f, format!("gen: {i}\n")).unwrap();
        w.on_readable(now).unwrap();
        events.extend(w.on_timeout(now));
    }
    assert_eq!(events, vec![], "nothing while the writes go on");
    let deadline = w.poll_timeout().expect("armed");
    assert_eq!(deadline, t0 + 1000 * MS + DEFAULT_DEBOUNCE);
    events.extend(w.on_timeout(deadline));
    assert_eq!(events, changed(&f));
    assert_eq!(fs::read_to_string(&f).unwrap(), "gen: 20\n");
    assert_eq!(w.poll_timeout(), None);
    // The look took the final contents: writing them again is no change.
    fs::write(&f, "gen: 20\n").unwrap();
    let later = deadline + DEFAULT_DEBOUNCE * 4;
    w.on_readable(later).unwrap();
    assert_eq!(w.on_timeout(later + DEFAULT_DEBOUNCE), vec![]);
}
