//! The .deb that `cargo deb` builds (.ci/run builds it before the tests;
//! this test builds it when it is missing): its contents, its maintainer
//! scripts (installing or upgrading starts, enables and restarts nothing),
//! its man pages rendered by `man -l`, its unit through `systemd-analyze
//! verify` with the package's own binaries, and those binaries run from a
//! throwaway root with `dpkg-deb -x`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::assertions::assert_all_among;
use crate::tools::{BIN, need, root, run, text};

const MINUTE: Duration = Duration::from_secs(60);

/// target/debian/hot-restarter_<version>-1_<arch>.deb, built if missing.
pub(crate) fn deb() -> PathBuf {
    let dpkg = need("dpkg", "dpkg");
    let arch = run(Command::new(dpkg).arg("--print-architecture"), MINUTE);
    let arch = String::from_utf8(arch.stdout).unwrap();
    let target = Path::new(BIN).parent().unwrap().parent().unwrap();
    let deb = target.join(format!(
        "debian/hot-restarter_{}-1_{}.deb",
        env!("CARGO_PKG_VERSION"),
        arch.trim()
    ));
    if !deb.exists() {
        need("cargo-deb", "cargo-deb (cargo install --locked cargo-deb)");
        let out = run(
            Command::new(env!("CARGO"))
                .arg("deb")
                .current_dir(root())
                .env("CARGO_TARGET_DIR", target),
            20 * MINUTE,
        );
        assert!(out.status.success(), "cargo deb: {}", text(&out));
    }
    assert!(deb.exists(), "cargo deb did not write {}", deb.display());
    deb
}

/// `dpkg-deb ARGS DEB [INTO]`, which must succeed; its stdout.
fn dpkg_deb(args: &[&str], deb: &Path, into: Option<&Path>) -> String {
    let out = run(
        Command::new(need("dpkg-deb", "dpkg"))
            .args(args)
            .arg(deb)
            .args(into),
        MINUTE,
    );
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The package's contents, unpacked into a fresh directory.
fn unpack(deb: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    dpkg_deb(&["-x"], deb, Some(dir.path()));
    dir
}

fn gunzip(path: &Path) -> Vec<u8> {
    let out = run(Command::new("gzip").arg("-dc").arg(path), MINUTE);
    assert!(out.status.success(), "{}", text(&out));
    out.stdout
}

#[test]
#[ignore = "needs cargo-deb and dpkg-deb; .ci/run runs it"]
fn the_deb_holds_the_binaries_docs_completions_unit_and_conffile() {
    let deb = deb();
    let listing = dpkg_deb(&["-c"], &deb, None);
    let stale = "the .deb is older than the files it packages: run `cargo deb`";
    let mut files = Vec::new();
    for line in listing.lines() {
        // "-rwxr-xr-x 0/0   1012272 2026-12-04 00:00 ./usr/bin/hot-restarter"
        let mode = &line[..10];
        let path = line.rsplit(' ').next().unwrap().trim_start_matches('.');
        if !mode.starts_with('d') {
            files.push(format!("{} {path}", &mode[..10]));
        }
    }
    assert_all_among(
        &[
            "-rwxr-xr-x /usr/bin/hot-restarter",
            "-rwxr-xr-x /usr/bin/hot-restarter-ctl",
            "-rw-r--r-- /usr/share/man/man1/hot-restarter.1.gz",
            "-rw-r--r-- /usr/share/man/man1/hot-restarter-ctl.1.gz",
            "-rw-r--r-- /usr/share/bash-completion/completions/hot-restarter",
            "-rw-r--r-- /usr/share/bash-completion/completions/hot-restarter-ctl",
            "-rw-r--r-- /usr/share/zsh/vendor-completions/_hot-restarter",
            "-rw-r--r-- /usr/share/zsh/vendor-completions/_hot-restarter-ctl",
            "-rw-r--r-- /usr/share/fish/vendor_completions.d/hot-restarter.fish",
            "-rw-r--r-- /usr/share/fish/vendor_completions.d/hot-restarter-ctl.fish",
            "-rw-r--r-- /usr/lib/systemd/system/hot-restarter.service",
            "-rw-r--r-- /etc/default/hot-restarter",
            "-rw-r--r-- /usr/share/doc/hot-restarter/README.md",
            "-rw-r--r-- /usr/share/doc/hot-restarter/LICENSE",
            "-rw-r--r-- /usr/share/doc/hot-restarter/copyright",
            "-rwxr-xr-x /usr/share/hot-restarter/start_envoy.sh",
            "-rwxr-xr-x /usr/share/hot-restarter/validate.sh",
        ],
        &files,
        &listing,
    );

    let root_dir = unpack(&deb);
    let installed = root_dir.path();
    for (packaged, source) in [
        (
            "usr/lib/systemd/system/hot-restarter.service",
            "docs/debian/hot-restarter.service",
        ),
        (
            "etc/default/hot-restarter",
            "docs/debian/hot-restarter.default",
        ),
        (
            "usr/share/bash-completion/completions/hot-restarter-ctl",
            "docs/completions/hot-restarter-ctl.bash",
        ),
        (
            "usr/share/zsh/vendor-completions/_hot-restarter",
            "docs/completions/_hot-restarter",
        ),
        (
            "usr/share/fish/vendor_completions.d/hot-restarter-ctl.fish",
            "docs/completions/hot-restarter-ctl.fish",
        ),
    ] {
        let packaged_text = fs::read(installed.join(packaged)).unwrap();
        assert!(
            packaged_text == fs::read(root().join(source)).unwrap(),
            "{packaged}: {stale}"
        );
    }
    for page in ["hot-restarter", "hot-restarter-ctl"] {
        let packaged = gunzip(&installed.join(format!("usr/share/man/man1/{page}.1.gz")));
        let source = fs::read(root().join(format!("docs/man/{page}.1"))).unwrap();
        assert!(packaged == source, "{page}.1: {stale}");
    }

    let control = unpack_control(&deb);
    let conffiles = fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/default/hot-restarter");
    let fields = dpkg_deb(&["-f"], &deb, None);
    assert!(fields.contains("Package: hot-restarter\n"), "{fields}");
    assert!(fields.contains("Depends: libc6"), "{fields}");
}

fn unpack_control(deb: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    dpkg_deb(&["-e"], deb, Some(&dir.path().join("DEBIAN")));
    let inner = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(dir.path().join("DEBIAN")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), inner.path().join(entry.file_name())).unwrap();
    }
    inner
}

/// A stand-in for the maintainer scripts' helpers (deb-systemd-helper,
/// deb-systemd-invoke, systemctl): it logs its arguments, says "not
/// enabled" to was-enabled unless ENABLED=1, and succeeds.
const RECORDER: &str = r#"#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$1" in
--quiet) [ "$2" = was-enabled ] && [ "${ENABLED:-0}" = 1 ] || { [ "$2" = was-enabled ] && exit 1; } ;;
esac
exit 0
"#;

#[test]
#[ignore = "needs cargo-deb and dpkg-deb; .ci/run runs it"]
fn installing_or_upgrading_the_deb_starts_enables_and_restarts_nothing() {
    let deb = deb();
    let control = unpack_control(&deb);
    let bin = tempfile::tempdir().unwrap();
    for helper in ["deb-systemd-helper", "deb-systemd-invoke", "systemctl"] {
        let path = bin.path().join(helper);
        fs::write(&path, RECORDER).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let calls = bin.path().join("calls");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    // (script, arguments, the unit was enabled by the admin before)
    let steps: [(&str, &[&str], bool); 5] = [
        ("postinst", &["configure"], false),
        ("prerm", &["upgrade", "0.1.1-1"], true),
        ("postinst", &["configure", "0.1.0-1"], true),
        ("postinst", &["configure", "0.1.0-1"], false),
        ("postrm", &["upgrade", "0.1.1-1"], true),
    ];
    for (script, args, enabled) in steps {
        let _ = fs::remove_file(&calls);
        let out = run(
            Command::new("sh")
                .arg(control.path().join(script))
                .args(args)
                .env("PATH", &path)
                .env("CALLS", &calls)
                .env("ENABLED", if enabled { "1" } else { "0" }),
            MINUTE,
        );
        assert!(out.status.success(), "{script} {args:?}: {}", text(&out));
        let log = fs::read_to_string(&calls).unwrap_or_default();
        for line in log.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let acts = words.iter().any(|w| {
                [
                    "start",
                    "restart",
                    "try-restart",
                    "reload-or-restart",
                    "stop",
                ]
                .contains(w)
            });
            assert!(
                !acts && !line.starts_with("deb-systemd-invoke"),
                "{script} {args:?} acts on the service: {line}"
            );
            // `enable` only re-creates the links of a unit the admin had
            // enabled already.
            if words.contains(&"enable") {
                assert!(enabled, "{script} {args:?} enables the unit: {log}");
            }
        }
    }
    let postinst = fs::read_to_string(control.path().join("postinst")).unwrap();
    assert!(
        postinst.contains("hot-restarter-ctl reexec --wait"),
        "{postinst}"
    );
}

#[test]
#[ignore = "needs cargo-deb, dpkg-deb, man and systemd-analyze; .ci/run runs it"]
fn the_unpacked_deb_runs_renders_its_pages_and_its_unit_verifies() {
    let deb = deb();
    let root_dir = unpack(&deb);
    let installed = root_dir.path();

    for page in ["hot-restarter", "hot-restarter-ctl"] {
        let file = installed.join(format!("usr/share/man/man1/{page}.1.gz"));
        let out = run(
            Command::new(need("man", "man-db"))
                .args(["--warnings", "-l"])
                .arg(&file)
                .env("MANWIDTH", "100"),
            MINUTE,
        );
        let rendered = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man -l {page}: {}", text(&out));
        assert!(out.stderr.is_empty(), "man -l {page} warns: {}", text(&out));
        for heading in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "EXIT STATUS",
            "SIGNALS",
            "ENVIRONMENT",
        ] {
            assert!(
                rendered.contains(&format!("\n{heading}\n")),
                "{heading}: {rendered}"
            );
        }
    }

    // The unit, verified against the unpacked binaries and default file.
    let units = tempfile::tempdir().unwrap();
    let unit = fs::read_to_string(installed.join("usr/lib/systemd/system/hot-restarter.service"))
        .unwrap()
        .replace("/usr/bin/", &format!("{}/usr/bin/", installed.display()))
        .replace(
            "/etc/default/",
            &format!("{}/etc/default/", installed.display()),
        );
    let copy = units.path().join("hot-restarter.service");
    fs::write(&copy, &unit).unwrap();
    let (ok, out) = verify(&copy);
    assert!(ok && out.trim().is_empty(), "{out}");
    // Control: verify notices a missing binary, so it did look at them.
    let broken = units.path().join("broken.service");
    fs::write(
        &broken,
        unit.replace("/usr/bin/hot-restarter ", "/usr/bin/missing "),
    )
    .unwrap();
    let (ok, out) = verify(&broken);
    assert!(!ok, "verify accepts a missing ExecStart binary: {out}");

    // The unpacked binaries run: a wrapper with a control socket, asked by
    // the unpacked ctl, stopped by it.
    let bin = installed.join("usr/bin/hot-restarter");
    let ctl = installed.join("usr/bin/hot-restarter-ctl");
    for binary in [&bin, &ctl] {
        let out = run(Command::new(binary).arg("--version"), MINUTE);
        let version = String::from_utf8_lossy(&out.stdout);
        assert!(
            version.ends_with(&format!(" {}\n", env!("CARGO_PKG_VERSION"))),
            "{version}"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("start.sh");
    fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let socket = work.path().join("control.sock");
    let log = work.path().join("log");
    let out = run(
        Command::new(&ctl)
            .arg("--socket")
            .arg(&socket)
            .args(["start", "--timeout", "20", "--log"])
            .arg(&log)
            .arg("--")
            .arg(&script)
            .env("HOT_RESTARTER_BIN", &bin),
        MINUTE,
    );
    assert!(out.status.success(), "start: {}", text(&out));
    let status = run(
        Command::new(&ctl)
            .arg("--socket")
            .arg(&socket)
            .arg("status"),
        MINUTE,
    );
    let stop = run(
        Command::new(&ctl)
            .arg("--socket")
            .arg(&socket)
            .args(["stop", "--wait"]),
        MINUTE,
    );
    assert!(status.status.success(), "status: {}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("epoch 0"),
        "{}",
        text(&status)
    );
    assert!(stop.status.success(), "stop: {}", text(&stop));
    let mut wrapper_log = String::new();
    fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut wrapper_log)
        .unwrap();
    assert!(
        wrapper_log.contains("forked new child process"),
        "{wrapper_log}"
    );

    // The shipped /etc/default/hot-restarter, as the unit's environment
    // (its /usr/share paths moved into the unpacked root, the socket into
    // the work directory): every value is one the wrapper accepts and its
    // preflight script exists, so the wrapper gets as far as starting the
    // child (which exits 0 at once, before --envoy-admin sees it ready;
    // every child having exited 0, the wrapper exits 0, not 2 for usage).
    let defaults = fs::read_to_string(installed.join("etc/default/hot-restarter")).unwrap();
    let quick = work.path().join("quick.sh");
    fs::write(&quick, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&quick, fs::Permissions::from_mode(0o755)).unwrap();
    let mut wrapper = Command::new(&bin);
    wrapper.env_clear().env("PATH", "/usr/bin:/bin");
    for line in defaults.lines().filter(|l| !l.starts_with('#')) {
        if let Some((key, value)) = line.split_once('=') {
            let value = value.replace(
                "/usr/share/",
                &format!("{}/usr/share/", installed.display()),
            );
            wrapper.env(key, value);
        }
    }
    wrapper
        .env(
            "HOT_RESTARTER_CONTROL_SOCKET",
            work.path().join("defaults.sock"),
        )
        .arg(&quick);
    let out = run(&mut wrapper, MINUTE);
    let all = text(&out);
    assert!(all.contains("forked new child process"), "{all}");
    assert!(
        all.contains("exited with code=0 before it was ready"),
        "{all}"
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
}

/// `systemd-analyze verify` on one unit file: (passed, its output).
fn verify(unit: &Path) -> (bool, String) {
    let out = run(
        Command::new(need("systemd-analyze", "systemd"))
            .args([
                "verify",
                "--man=no",
                "--generators=no",
                "--recursive-errors=no",
            ])
            .arg(unit),
        MINUTE,
    );
    (
        out.status.success(),
        text(&out).replace("\n--- stderr ---\n", ""),
    )
}
