//! `--watch` with real Envoy 1.40 under wrk load: the bootstrap mounted as
//! the kubelet mounts a ConfigMap (a timestamped directory, `..data` a
//! symlink to it, `envoy.yaml -> ..data/envoy.yaml`), updated as the
//! kubelet's AtomicWriter does (a new timestamped directory, `..data_tmp`
//! renamed over `..data`, the old directory removed). Each update changes
//! the listener's direct_response body; the test measures from the swap to
//! the first fresh connection answered with the new body, and reports the
//! median and worst of 20 (`[envoy-watch ...]` lines, with --nocapture).
//! Then 20 different writes within a second: at most two reloads, the
//! last contents served.
//! An invalid update is refused by `--preflight` (`envoy --mode
//! validate`): the serving Envoy is untouched, and `hot-restarter-ctl
//! status` says why and which file changed.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::components::*;
use crate::envoy_lab::*;
use crate::support::*;

/// The ConfigMap volume, as the kubelet lays it out, in `vol`.
struct Volume {
    vol: PathBuf,
    updates: u32,
}

impl Volume {
    /// The first layout: the timestamped directory holds a link to the
    /// lab's own config (the lab writes it once its ports are chosen).
    fn create(dir: &Path) -> Volume {
        let vol = dir.join("vol");
        let ts = "..2026_12_05_00_00_00.000000000";
        fs::create_dir_all(vol.join(ts)).unwrap();
        symlink(dir.join("envoy.yaml"), vol.join(ts).join("envoy.yaml")).unwrap();
        symlink(ts, vol.join("..data")).unwrap();
        symlink("..data/envoy.yaml", vol.join("envoy.yaml")).unwrap();
        Volume { vol, updates: 0 }
    }

    /// What the wrapper watches and Envoy reads.
    fn path(&self) -> PathBuf {
        self.vol.join("envoy.yaml")
    }

    /// One AtomicWriter update.
    fn update(&mut self, text: &str) {
        self.updates += 1;
        let ts = format!(
            "..2026_12_05_00_00_{:02}.{:09}",
            self.updates % 60,
            self.updates
        );
        fs::create_dir(self.vol.join(&ts)).unwrap();
        fs::write(self.vol.join(&ts).join("envoy.yaml"), text).unwrap();
        let old = fs::read_link(self.vol.join("..data")).unwrap();
        symlink(&ts, self.vol.join("..data_tmp")).unwrap();
        fs::rename(self.vol.join("..data_tmp"), self.vol.join("..data")).unwrap();
        fs::remove_dir_all(self.vol.join(old)).unwrap();
    }
}

/// The example config with the listener answering `body`.
fn with_body(ports: Ports, cfg: Cfg, body: &str) -> String {
    replace_once(
        &render(ports, cfg),
        r#"inline_string: "ok\n""#,
        &format!(r#"inline_string: "{body}\n""#),
    )
}

/// The body a fresh connection to the listener gets (None: no answer).
fn body(lab: &Lab) -> Option<String> {
    let url = format!("http://127.0.0.1:{}/", lab.ports.listen);
    curl(&["-H", "Connection: close", &url]).map(|b| b.trim_end().to_string())
}

/// `hot-restarter-ctl status` (text).
fn status(lab: &Lab) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hot-restarter-ctl"))
        .arg("--socket")
        .arg(lab.path().join("ctl.sock"))
        .arg("status")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until fresh connections get `want`; returns how long after
/// `since` that was.
fn served_after(lab: &Lab, want: &str, since: Instant) -> Duration {
    let mut last = None;
    let served = wait_until(DEADLINE, || {
        last = body(lab);
        last.as_deref() == Some(want)
    });
    assert!(
        served,
        "{want:?} never served (last answer {last:?}); output:\n{}",
        lab.w.output()
    );
    since.elapsed()
}

#[needs(envoy, wrk, curl)]
#[test]
fn configmap_updates_are_served_without_a_failed_request_and_a_bad_one_is_refused() {
    let validate = example("envoy/validate.sh");
    let mut volume = None;
    let setup = Setup {
        tag: "envoy-watch",
        flags: &[
            "--preflight",
            &validate,
            "--keep-serving",
            "--control-socket",
            "ctl.sock",
        ],
        start: Start::Example,
        handoff: false,
    };
    let mut lab = Lab::start_with("a ConfigMap updates", 14, setup, |dir, cmd| {
        let v = Volume::create(dir);
        let admin = Lab::admin_port_of(cmd);
        cmd.env("ENVOY_CONFIG", v.path())
            .arg("--watch")
            .arg(v.path())
            .arg("--envoy-admin")
            .arg(format!("127.0.0.1:{admin}"));
        volume = Some(v);
    });
    let mut volume = volume.unwrap();
    let ports = lab.ports;
    let mut old = lab.serve_under_load();
    assert_eq!(body(&lab).as_deref(), Some("ok"));

    let mut took = Vec::new();
    for i in 1..=20u32 {
        let want = format!("v{i}");
        let t = Instant::now();
        volume.update(&with_body(ports, Cfg::Good, &want));
        took.push(served_after(&lab, &want, t));
        let pid = lab.wait_pid(i, 1);
        // The old epoch drains and exits before the next update, so that
        // each figure is one reload, not one held behind a drain.
        lab.w.wait_for(&format!("PID={old} exited with code=0"));
        old = pid;
    }
    let path = format!("{:?}", volume.path().to_string_lossy());
    assert_eq!(
        lab.w.count(&format!("{path} changed: restarting")),
        20,
        "{}",
        lab.w.output()
    );

    // An invalid update: refused before any Envoy starts.
    let t = Instant::now();
    volume.update(&with_body(ports, Cfg::Broken, "broken"));
    lab.w.wait_for(&format!(
        "restart to epoch 21 skipped because its preflight failed; \
         epoch 20 (PID={old}) keeps serving"
    ));
    let refused = t.elapsed();
    assert_eq!(lab.starts(21), 0, "{}", lab.w.output());
    assert!(running(old));
    assert_eq!(body(&lab).as_deref(), Some("v20"));
    let text = status(&lab);
    assert!(
        text.contains("last reload: epoch 21 skipped after")
            && text.contains(&format!("({path} changed)"))
            && text.contains("no_such_field"),
        "{text}"
    );

    // The next valid update is picked up.
    let t = Instant::now();
    volume.update(&with_body(ports, Cfg::Good, "fixed"));
    let fixed = served_after(&lab, "fixed", t);
    lab.wait_live(21);

    // The burst ends with a distinct update that must be served: the
    // wrapper handles changes in order, so every reload the burst asked
    // for has logged its "changed" line by then. (That a write leaving
    // the contents as they were is no reload needs no Envoy: see
    // tests/process/watch.rs.)
    let changed = |lab: &Lab| {
        (lab.w.lines().iter())
            .filter(|l| message_of(l).starts_with(&format!("{path} changed:")))
            .count()
    };
    // 20 different writes within a second: at most two reloads, and the
    // last contents served.
    let before = changed(&lab);
    let began = Instant::now();
    for i in 1..=20 {
        volume.update(&with_body(ports, Cfg::Good, &format!("b{i}")));
        // Pacing the writer, not waiting for the wrapper.
        std::thread::sleep(Duration::from_millis(45));
    }
    let burst = began.elapsed();
    served_after(&lab, "b20", began);
    volume.update(&with_body(ports, Cfg::Good, "mark2"));
    served_after(&lab, "mark2", Instant::now());
    let burst_reloads = changed(&lab) - before - 1;
    assert!(
        (1..=2).contains(&burst_reloads),
        "{burst_reloads} reloads for 20 writes in {burst:?}; output:\n{}",
        lab.w.output()
    );

    let stats = lab.stop_wrk();
    took.sort();
    let median = took[took.len() / 2];
    let within_2s = took
        .iter()
        .filter(|d| **d <= Duration::from_secs(2))
        .count();
    lab.report(
        &stats,
        &format!(
            "swap to served over 20 AtomicWriter updates: median {} ms, worst {} ms, {within_2s} \
             of 20 within 2 s; the invalid update refused {} ms after its swap; the fixed one \
             served {} ms after its swap; 20 writes in {} ms gave {burst_reloads} reload(s)",
            ms(median),
            ms(*took.last().unwrap()),
            ms(refused),
            ms(fixed),
            ms(burst)
        ),
    );
    eprintln!("[envoy-watch] status after the refused update:\n{text}");
    assert_eq!(stats.failed(), 0, "{}", stats.summary());
    lab.stop();
}
