//! examples/kubernetes: the manifests pass kubernetes-validate in strict
//! mode against the schemas it ships (no network: it validates offline),
//! a manifest with an unknown field does not, and the wrapper and probe
//! flags the Deployment uses are flags the binaries know.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::harness::{BIN, CTL, in_ci};

/// The Kubernetes version whose schemas the manifests must match.
const KUBERNETES: &str = "1.37.0";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/kubernetes")
        .join(name)
}

/// kubernetes-validate from the venv .ci/run installs
/// (`${HOT_RESTARTER_CACHE:-$HOME/.cache/hot-restarter}/envoy-venv`), else
/// on PATH.
fn kubernetes_validate() -> PathBuf {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let cache = nonempty("HOT_RESTARTER_CACHE")
        .map(PathBuf::from)
        .or_else(|| nonempty("HOME").map(|h| Path::new(&h).join(".cache/hot-restarter")));
    let venv = cache.map(|c| c.join("envoy-venv/bin/kubernetes-validate"));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubernetes-validate"))
            .find(|p| p.is_file())
    });
    venv.filter(|p| p.is_file()).or(on_path).unwrap_or_else(|| {
        panic!(
            "kubernetes-validate is not installed (pip install kubernetes-validate into the \
             envoy venv, as .ci/run does){}",
            if in_ci() { "; CI=true requires it" } else { "" }
        )
    })
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new(kubernetes_validate())
        .args(["--strict", "--kubernetes-version", KUBERNETES])
        .args(files)
        .output()
        .expect("cannot run kubernetes-validate")
}

#[test]
#[ignore = "needs kubernetes-validate; .ci/run runs it"]
fn the_kubernetes_example_passes_strict_validation() {
    let files = [example("deployment.yaml"), example("configmap.yaml")];
    let out = validate(&files);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for resource in ["deployment/envoy", "configmap/envoy-config"] {
        assert!(
            text.contains(&format!("passed for resource {resource}")),
            "{text}"
        );
    }

    // Strict mode refuses what the schema does not have: the check can fail.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let manifest = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&bad, manifest.replace("sizeLimit:", "sizeLimits:")).unwrap();
    let out = validate(&[bad]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("'sizeLimits' was unexpected"),
        "{out:?}"
    );
}

/// The `--long` words of the YAML list under `key:` (up to the next key at
/// the same indentation).
fn listed_flags(manifest: &str, key: &str) -> Vec<String> {
    let mut lines = manifest.lines().skip_while(|l| l.trim() != key);
    let indent = lines
        .next()
        .map(|l| l.len() - l.trim_start().len())
        .expect(key);
    lines
        .take_while(|l| l.len() - l.trim_start().len() > indent || l.trim_start().starts_with('-'))
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|w| w.split('=').next().unwrap().to_string())
        .collect()
}

fn help(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deployment_uses_flags_the_binaries_know() {
    let manifest = std::fs::read_to_string(example("deployment.yaml")).unwrap();
    // Up to the start script: the words after it are Envoy's.
    let wrapper: Vec<String> = listed_flags(&manifest, "args:");
    let wrapper_help = help(BIN, &[]);
    let mut known = 0;
    for flag in wrapper.iter().take_while(|f| !f.starts_with("concurrency")) {
        assert!(
            wrapper_help.contains(&format!("--{flag}")),
            "hot-restarter has no --{flag}"
        );
        known += 1;
    }
    assert!(known >= 5, "{wrapper:?}");
    let probe = listed_flags(&manifest, "command:");
    assert_eq!(probe, ["socket", "timeout"], "{manifest}");
    assert!(
        manifest.contains("- hot-restarter-ctl\n            - check\n"),
        "{manifest}"
    );
    let check_help = help(CTL, &["check"]);
    for flag in probe {
        assert!(
            check_help.contains(&format!("--{flag}")),
            "check has no --{flag}"
        );
    }
}
