//! The .deb installed, reinstalled, removed and purged by the real `dpkg`
//! in a throwaway copy of this machine: a private mount and PID namespace
//! whose root is made of overlays of the host's /usr, /etc and /var (the
//! writes land in a tmpfs that dies with the namespace), with a fresh
//! /proc, a few device nodes, and an empty /run (no /run/systemd/system:
//! a machine where systemd does not run). The host's own dpkg database and
//! /usr are never written.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::deb::deb;
use crate::docs::{bash_program, documented_words};
use crate::tools::{need, run, text, wait_bounded};

const MINUTE: Duration = Duration::from_secs(60);

/// Run inside the new namespaces as their PID 1 with the tmpfs mount point
/// as $1: builds the root under $1/root, says "ready", and holds the
/// namespaces until its stdin closes (the test ends or dies). Its exit
/// ends every process left in the PID namespace, and with the last of
/// them the mounts go.
const SETUP: &str = r#"set -eu
T=$1
mount -t tmpfs -o mode=0755 hot-restarter-dpkg "$T"
mkdir "$T/root" "$T/up" "$T/work"
for name in usr etc var opt bin sbin lib lib32 lib64 libx32; do
	if [ -L "/$name" ]; then
		ln -s "$(readlink "/$name")" "$T/root/$name"
	elif [ -d "/$name" ]; then
		mkdir "$T/root/$name" "$T/up/$name" "$T/work/$name"
		mount -t overlay overlay \
			-o "lowerdir=/$name,upperdir=$T/up/$name,workdir=$T/work/$name" \
			"$T/root/$name"
	fi
done
mkdir -m 0755 "$T/root/proc" "$T/root/dev" "$T/root/run" "$T/root/root"
mkdir -m 1777 "$T/root/tmp"
mount -t proc proc "$T/root/proc"
mount -t tmpfs -o mode=0755 tmpfs "$T/root/run"
mount -t tmpfs -o mode=1777 tmpfs "$T/root/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$T/root/dev"
for node in null zero full random urandom tty; do
	touch "$T/root/dev/$node"
	mount --bind "/dev/$node" "$T/root/dev/$node"
done
echo ready
read -r _ || true
"#;

/// Stand-ins put first on the root's PATH: they log their call to
/// /run/calls and hand over to the real tool (found on the PATH without
/// /usr/local), so the test sees every
/// systemctl and deb-systemd-invoke call of the maintainer scripts
/// (none are expected without systemd running) without changing what
/// they do.
const TRACER: &str = r#"#!/bin/sh
echo "$(basename "$0") $*" >> /run/calls
PATH=/usr/sbin:/usr/bin:/sbin:/bin exec "$(basename "$0")" "$@"
"#;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The throwaway machine: the namespaces' PID 1, and the root it built.
struct Machine {
    holder: Child,
    stdin: Option<ChildStdin>,
    /// PID 1 of the namespaces, as the host numbers it.
    init: u32,
    /// The root's path inside the namespace.
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Machine {
    fn start() -> Machine {
        // SAFETY: geteuid has no preconditions and cannot fail.
        assert!(
            unsafe { geteuid() } == 0,
            "installing with dpkg into an overlay root needs root (mounts, chroot)"
        );
        let filesystems = fs::read_to_string("/proc/filesystems").unwrap();
        assert!(
            filesystems.contains("\toverlay\n") || Path::new("/sys/module/overlay").exists(),
            "the kernel has no overlayfs (modprobe overlay): {filesystems}"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut holder = Command::new(need("unshare", "util-linux"))
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["--", "sh", "-c", SETUP, "sh"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = holder.stdin.take();
        let stdout = holder.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).ok();
            tx.send(line).ok();
        });
        let ready = rx.recv_timeout(MINUTE).unwrap_or_default();
        if ready.trim() != "ready" {
            drop(stdin);
            wait_bounded(&mut holder, MINUTE);
            let mut err = String::new();
            use std::io::Read;
            holder.stderr.take().unwrap().read_to_string(&mut err).ok();
            panic!("could not build the overlay root (unshare, overlayfs, tmpfs): {err}");
        }
        let init = child_of(holder.id()).expect("unshare's child, PID 1 of the namespaces");
        let machine = Machine {
            holder,
            stdin,
            init,
            root: dir.path().join("root"),
            _dir: dir,
        };
        let sbin = machine.path("/usr/local/sbin");
        fs::create_dir_all(&sbin).unwrap();
        for tool in ["systemctl", "deb-systemd-invoke"] {
            fs::write(sbin.join(tool), TRACER).unwrap();
            fs::set_permissions(sbin.join(tool), fs::Permissions::from_mode(0o755)).unwrap();
        }
        machine
    }

    /// `path` of the root, as the host can reach it (through PID 1's
    /// view of the mounts).
    fn path(&self, path: &str) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.init))
            .join(self.root.strip_prefix("/").unwrap())
            .join(path.trim_start_matches('/'))
    }

    /// `args` run in the root, in the namespaces, with a clean environment.
    fn run(&self, args: &[&str]) -> Output {
        run(
            Command::new(need("nsenter", "util-linux"))
                .arg("--target")
                .arg(self.init.to_string())
                .args(["--mount", "--pid", "--"])
                .arg(need("chroot", "coreutils"))
                .arg(&self.root)
                .args(["/usr/bin/env", "-i"])
                .arg(format!("PATH={PATH}"))
                .args([
                    "HOME=/root",
                    "LC_ALL=C",
                    "TERM=dumb",
                    "MANWIDTH=200",
                    "DEBIAN_FRONTEND=noninteractive",
                ])
                .args(args),
            5 * MINUTE,
        )
    }

    fn sh(&self, script: &str) -> Output {
        self.run(&["sh", "-c", script])
    }

    /// The processes of the PID namespace other than its PID 1 and the
    /// lister itself: whatever the last step left running.
    fn leftovers(&self) -> String {
        let out = self.sh("for p in /proc/[0-9]*; do n=${p#/proc/}; \
             [ \"$n\" = 1 ] || [ \"$n\" = $$ ] || [ ! -e \"$p\" ] || \
             echo \"$n $(tr '\\0' ' ' < \"$p/cmdline\" 2>/dev/null)\"; done");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `dpkg -s hot-restarter`'s Status line in the root, or its error.
    fn status(&self) -> String {
        let out = self.run(&["dpkg", "-s", "hot-restarter"]);
        dpkg_status(&out)
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // Closing its stdin ends PID 1; the kernel then kills whatever is
        // left in the namespace.
        drop(self.stdin.take());
        if wait_bounded(&mut self.holder, MINUTE).is_none() {
            eprintln!("the namespace holder did not exit: killed");
        }
    }
}

fn dpkg_status(out: &Output) -> String {
    let all = text(out);
    all.lines()
        .find(|l| l.starts_with("Status: "))
        .map(str::to_string)
        .unwrap_or(all)
}

/// The PID of `parent`'s child (unshare forks one: PID 1 of the new
/// namespace).
fn child_of(parent: u32) -> Option<u32> {
    for entry in fs::read_dir("/proc").ok()? {
        let name = entry.ok()?.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        if status
            .lines()
            .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(&parent.to_string()))
        {
            return Some(pid);
        }
    }
    None
}

/// Host processes in the mount namespace `ns` (an inode of /proc/*/ns/mnt).
fn in_namespace(ns: u64) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if fs::metadata(format!("/proc/{pid}/ns/mnt")).is_ok_and(|m| m.ino() == ns) {
            found.push(pid);
        }
    }
    found
}

fn host_state() -> (String, bool) {
    let out = run(
        Command::new("dpkg")
            .args(["-s", "hot-restarter"])
            .env("LC_ALL", "C"),
        MINUTE,
    );
    (
        dpkg_status(&out),
        Path::new("/usr/bin/hot-restarter").exists(),
    )
}

/// dpkg -i, then the checks that it started nothing and called no
/// systemctl or deb-systemd-invoke.
fn install(machine: &Machine, deb: &str, step: &str) {
    let out = machine.run(&["dpkg", "-i", deb]);
    assert!(out.status.success(), "{step}: dpkg -i: {}", text(&out));
    assert_eq!(
        machine.status(),
        "Status: install ok installed",
        "{step}: {}",
        text(&out)
    );
    started_nothing(machine, step);
}

fn started_nothing(machine: &Machine, step: &str) {
    let left = machine.leftovers();
    assert!(left.is_empty(), "{step} left running:\n{left}");
    let calls = fs::read_to_string(machine.path("/run/calls")).unwrap_or_default();
    assert!(
        calls.is_empty(),
        "{step}: the maintainer scripts called, with no systemd running:\n{calls}"
    );
}

#[test]
#[ignore = "needs root, overlayfs, unshare, nsenter, dpkg, man and cargo-deb; .ci/run runs it"]
fn dpkg_installs_reinstalls_removes_and_purges_the_deb_in_a_throwaway_root() {
    let began = Instant::now();
    let deb_file = deb();
    need("dpkg", "dpkg");
    need("man", "man-db");
    let host_before = host_state();
    let mut times = Vec::new();
    let mut lap = Instant::now();
    let mut took = |step: &'static str| {
        times.push((step, lap.elapsed()));
        lap = Instant::now();
    };

    let machine = Machine::start();
    took("build the root");
    let ns = fs::metadata(format!("/proc/{}/ns/mnt", machine.init))
        .unwrap()
        .ino();
    assert!(
        !machine.path("/run/systemd/system").exists(),
        "the root's /run is not empty"
    );
    assert_eq!(
        machine.status(),
        host_before.0,
        "the root starts as a copy of the host's dpkg database"
    );
    fs::copy(&deb_file, machine.path("/tmp/hot-restarter.deb")).unwrap();
    let deb = "/tmp/hot-restarter.deb";

    // Install.
    install(&machine, deb, "install");
    took("dpkg -i");
    for binary in ["hot-restarter", "hot-restarter-ctl"] {
        let out = machine.run(&[binary, "--version"]);
        assert!(out.status.success(), "{binary} --version: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{binary} {}\n", env!("CARGO_PKG_VERSION"))
        );
        let out = machine.run(&["dpkg", "-S", &format!("/usr/bin/{binary}")]);
        assert!(out.status.success(), "dpkg -S {binary}: {}", text(&out));
    }
    for file in [
        "/usr/lib/systemd/system/hot-restarter.service",
        "/etc/default/hot-restarter",
        "/usr/share/bash-completion/completions/hot-restarter-ctl",
        "/usr/share/man/man1/hot-restarter.1.gz",
    ] {
        assert!(machine.path(file).is_file(), "{file} not installed");
    }
    let out = machine.run(&["dpkg-query", "-W", "-f", "${Conffiles}", "hot-restarter"]);
    let conffiles = String::from_utf8_lossy(&out.stdout);
    assert!(
        conffiles
            .trim_start()
            .starts_with("/etc/default/hot-restarter "),
        "conffiles: {}",
        text(&out)
    );

    // `man hot-restarter` in the root renders, and names every word of
    // `--help` that the page checks of tests/package/docs.rs look for.
    for (page, helps, some) in [
        (
            "hot-restarter",
            vec![vec!["hot-restarter".to_string()]],
            ["--term-wait", "HOT_RESTARTER_SUBREAPER", "[default: 30]"],
        ),
        (
            "hot-restarter-ctl",
            ctl_helps(&machine),
            ["--socket", "HOT_RESTARTER_CONTROL_SOCKET", "--prometheus"],
        ),
    ] {
        let out = machine.run(&["man", page]);
        assert!(out.status.success(), "man {page}: {}", text(&out));
        let rendered = String::from_utf8_lossy(&out.stdout);
        let rendered = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(rendered.contains("SYNOPSIS"), "man {page}: {rendered}");
        let mut missing = Vec::new();
        let mut checked = BTreeSet::new();
        for args in helps {
            let mut call: Vec<&str> = args.iter().map(String::as_str).collect();
            call.push("--help");
            let out = machine.run(&call);
            assert!(out.status.success(), "{call:?}: {}", text(&out));
            for word in documented_words(&String::from_utf8_lossy(&out.stdout)) {
                checked.insert(word.clone());
                if !rendered.contains(&word) {
                    missing.push(format!("{word} ({})", args.join(" ")));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "in --help, not in `man {page}`: {missing:?}"
        );
        for word in some {
            assert!(checked.contains(word), "{word} not in --help: {checked:?}");
        }
    }

    // bash completes `hot-restarter-ctl <TAB>` from the installed file,
    // found by the command's name where bash-completion looks.
    let completion = "/usr/share/bash-completion/completions/hot-restarter-ctl";
    let program = bash_program(completion, &["hot-restarter-ctl", ""]);
    let out = machine.run(&["bash", "--norc", "-c", &program]);
    assert!(out.status.success(), "{}", text(&out));
    let offered: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    for command in ["status", "reload", "stop", "start"] {
        assert!(
            offered.iter().any(|o| o == command),
            "{command}: {offered:?}"
        );
    }

    took("check the binaries, files, man pages, completion");

    // Reinstall over an edited conffile: still nothing started, the
    // edit kept.
    let default = machine.path("/etc/default/hot-restarter");
    fs::OpenOptions::new()
        .append(true)
        .open(&default)
        .unwrap()
        .write_all(b"# edited by the admin\n")
        .unwrap();
    install(&machine, deb, "reinstall");
    took("dpkg -i again");
    assert!(
        fs::read_to_string(&default)
            .unwrap()
            .ends_with("# edited by the admin\n"),
        "the reinstall replaced the edited conffile"
    );

    // Remove: the binaries go, the conffile stays.
    let out = machine.run(&["dpkg", "-r", "hot-restarter"]);
    assert!(out.status.success(), "dpkg -r: {}", text(&out));
    assert_eq!(machine.status(), "Status: deinstall ok config-files");
    started_nothing(&machine, "remove");
    took("dpkg -r");
    for file in [
        "/usr/bin/hot-restarter",
        "/usr/bin/hot-restarter-ctl",
        "/usr/lib/systemd/system/hot-restarter.service",
    ] {
        assert!(!machine.path(file).exists(), "{file} left after dpkg -r");
    }
    assert!(default.is_file(), "dpkg -r removed the conffile");

    // Purge: the conffile goes, and dpkg forgets the package.
    let out = machine.run(&["dpkg", "-P", "hot-restarter"]);
    assert!(out.status.success(), "dpkg -P: {}", text(&out));
    started_nothing(&machine, "purge");
    took("dpkg -P");
    assert!(!default.exists(), "dpkg -P left the conffile");
    let status = machine.status();
    assert!(status.contains("is not installed"), "after purge: {status}");

    drop(machine);
    // Nothing of the namespace is left, and the host is as it was.
    let deadline = Instant::now() + MINUTE;
    while !in_namespace(ns).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left in the namespace: {:?}",
            in_namespace(ns)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(host_state(), host_before, "the host's dpkg or /usr changed");
    took("tear down, check the host");
    eprintln!(
        "dpkg in an overlay root: {:.1?} in all ({})",
        began.elapsed(),
        times
            .iter()
            .map(|(step, time)| format!("{step} {time:.1?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The ctl's `--help` calls: the top level and each command.
fn ctl_helps(machine: &Machine) -> Vec<Vec<String>> {
    let out = machine.run(&["hot-restarter-ctl", "--help"]);
    let top = String::from_utf8_lossy(&out.stdout).into_owned();
    let commands = &top[top.find("Commands:").unwrap()..top.find("Options:").unwrap()];
    let ctl = "hot-restarter-ctl".to_string();
    let mut helps = vec![vec![ctl.clone()]];
    for command in commands.lines().skip(1) {
        let Some(name) = command.split_whitespace().next() else {
            continue;
        };
        if name != "help" {
            helps.push(vec![ctl.clone(), name.to_string()]);
        }
    }
    helps
}

unsafe extern "C" {
    fn geteuid() -> u32;
}
