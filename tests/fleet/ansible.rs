//! examples/ansible/roll.yml with real ansible-core against four local
//! "hosts" (ansible_connection=local, one wrapper and control socket
//! each): a good change reaches every host in order; a change the
//! preflight refuses stops the roll at the first host with the reason,
//! puts that host's previous config back and leaves the others untouched.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::hosts::{GOOD, Host};
use crate::tools::{CTL, root, run, text};

const HOSTS: usize = 4;

/// ansible-playbook on PATH, else in the cache virtualenv .ci/run
/// installs ansible-core into.
fn ansible_playbook() -> PathBuf {
    let cache = std::env::var_os("HOT_RESTARTER_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var_os("HOME").unwrap()).join(".cache/hot-restarter")
        });
    let venv = cache.join("envoy-venv/bin/ansible-playbook");
    if venv.is_file() {
        return venv;
    }
    crate::tools::need(
        "ansible-playbook",
        "ansible-core (pip, into the cache virtualenv)",
    )
}

/// An inventory of `hosts`, all local, each with its own socket and config.
fn inventory(dir: &Path, hosts: &[Host], playbook: &Path) -> PathBuf {
    let python = playbook.parent().unwrap().join("python3");
    let mut ini = String::from("[envoy]\n");
    for host in hosts {
        writeln!(
            ini,
            "{} envoy_config={} hot_restarter_socket={}",
            host.name,
            host.config.display(),
            host.socket.display()
        )
        .unwrap();
    }
    writeln!(ini, "\n[envoy:vars]\nansible_connection=local").unwrap();
    if python.is_file() {
        writeln!(ini, "ansible_python_interpreter={}", python.display()).unwrap();
    }
    writeln!(ini, "hot_restarter_ctl={CTL}").unwrap();
    // The stand-in's configs are not Envoy's: the upload is only checked
    // for being YAML-ish; the wrapper's preflight is the real gate here.
    writeln!(ini, "envoy_validate=\"grep -q '^version:' %s\"").unwrap();
    let path = dir.join("inventory.ini");
    fs::write(&path, ini).unwrap();
    path
}

fn roll(playbook: &Path, inventory: &Path, config: &Path, home: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let out = run(
        Command::new(playbook)
            .arg("-i")
            .arg(inventory)
            .arg(root().join("examples/ansible/roll.yml"))
            .arg("-e")
            .arg(format!("envoy_config_src={}", config.display()))
            .env("ANSIBLE_HOME", home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("LC_ALL", "C.UTF-8"),
        Duration::from_secs(300),
    );
    (out, started.elapsed())
}

fn reloads_done(host: &Host) -> String {
    let status = host.status(&[]);
    status
        .lines()
        .find(|l| l.starts_with("reloads: "))
        .unwrap_or_else(|| panic!("{}: no reloads line: {status}", host.name))
        .to_string()
}

#[test]
#[ignore = "needs ansible-core (in the cache virtualenv); .ci/run runs it"]
fn a_good_change_rolls_host_by_host_and_a_bad_one_stops_at_the_first_host() {
    let playbook = ansible_playbook();
    let hosts: Vec<Host> = (1..=HOSTS)
        .map(|i| Host::start(&format!("host{i}")))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let inventory = inventory(work.path(), &hosts, &playbook);

    // A good change reaches every host, one after the other.
    let good = work.path().join("good.yaml");
    fs::write(&good, format!("{GOOD}# change 1\n")).unwrap();
    let (out, took) = roll(&playbook, &inventory, &good, work.path());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let mut last = 0;
    for host in &hosts {
        assert_eq!(
            fs::read(&host.config).unwrap(),
            fs::read(&good).unwrap(),
            "{}",
            host.name
        );
        host.wait_status(|s| s.contains("serving: epoch 1 "));
        assert_eq!(
            reloads_done(host),
            "reloads: 1 done, 0 skipped, 0 failed; handoffs: 0 done, 0 failed"
        );
        // serial: 1 -- each host's reload shows in the output after the
        // previous host's.
        let at = all
            .find(&format!("{}: epoch 1 (PID=", host.name))
            .unwrap_or_else(|| panic!("{} not reloaded in:\n{all}", host.name));
        assert!(at > last, "hosts out of order:\n{all}");
        last = at;
    }
    // One reload --wait alone, for comparison (host1, epoch 2).
    let started = Instant::now();
    hosts[0].reload(true);
    let one = started.elapsed();
    eprintln!(
        "ansible roll over {HOSTS} local hosts: {:.2} s, {:.2} s per host; one reload --wait: {:.3} s",
        took.as_secs_f64(),
        took.as_secs_f64() / HOSTS as f64,
        one.as_secs_f64()
    );
    hosts[0].wait_status(|s| s.contains("serving: epoch 2 "));

    // A change the preflight refuses: the roll stops at host1, with the
    // reason, host1 gets its previous config back, the rest are untouched.
    let before: Vec<(Vec<u8>, String)> = hosts
        .iter()
        .map(|h| (fs::read(&h.config).unwrap(), reloads_done(h)))
        .collect();
    let bad = work.path().join("bad.yaml");
    fs::write(&bad, "version: 1\nlistenrs: []\n").unwrap();
    let (out, _) = roll(&playbook, &inventory, &bad, work.path());
    let all = text(&out);
    assert!(!out.status.success(), "the bad change rolled:\n{all}");
    let reason = "roll stopped at host1: hot-restarter-ctl: reload failed: restart to epoch 3 \
                  skipped because its preflight failed (PID=";
    assert!(all.contains(reason), "no reason in:\n{all}");
    assert!(all.contains("has no listeners: section"), "{all}");
    assert!(
        !all.contains("host2"),
        "the roll went on past host1:\n{all}"
    );
    assert_eq!(
        fs::read(&hosts[0].config).unwrap(),
        before[0].0,
        "host1's config not restored"
    );
    assert_eq!(
        reloads_done(&hosts[0]),
        "reloads: 2 done, 1 skipped, 0 failed; handoffs: 0 done, 0 failed"
    );
    hosts[0].wait_status(|s| s.contains("serving: epoch 2 "));
    for (host, (config, reloads)) in hosts.iter().zip(&before).skip(1) {
        assert_eq!(
            &fs::read(&host.config).unwrap(),
            config,
            "{} touched",
            host.name
        );
        assert_eq!(&reloads_done(host), reloads, "{} reloaded", host.name);
    }
}
