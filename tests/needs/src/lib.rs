//! Test-only attributes for the integration tests that drive real
//! components (Envoy, wrk, curl, runit, monit, systemd-analyze, Linux
//! namespaces).
//!
//! `#[needs(envoy, wrk, curl)]`, above `#[test]`, looks for the
//! components when the test crate compiles. Outside CI, a test whose component is missing gets
//! `#[ignore = "needs ...: <why>"]`, so `cargo test` lists it as ignored
//! with the reason. With `CI=true` nothing is added: the test runs, and a
//! missing component fails it (the test finds it again when it runs).
//!
//! `#[in_netns]` (or `#[in_netns(migrate_req = 0)]`) makes the test run
//! inside a private network and mount namespace: the outer run re-executes
//! the test binary for that one test under `unshare` and checks its
//! result (the expansion calls `crate::netns`, tests/support/netns.rs).
//!
//! A proc-macro crate, used only as a dev-dependency: `cargo build` and
//! `cargo install` of hot-restarter never compile it, so they never run
//! `unshare` or `systemd-analyze`.

#[path = "components.rs"]
mod components;

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

/// Finds a component, or says why it is missing.
type Probe = fn() -> Result<(), String>;

/// The components a test may name, each with its probe.
const COMPONENTS: [(&str, Probe); 9] = [
    ("envoy", || components::find_envoy().map(drop)),
    ("wrk", || tool("wrk")),
    ("curl", || tool("curl")),
    ("python3", || tool("python3")),
    ("runit", || {
        ["runsv", "sv", "svlogd"].into_iter().try_for_each(tool)
    }),
    ("monit", || tool("monit")),
    ("systemd_analyze", systemd_analyze),
    ("pid_namespace", pid_namespace),
    ("netns", netns),
];

/// The environment the probes read: cargo recompiles the test crate when
/// one of these changes (each is read with `option_env!` in the output).
const TRACKED: [&str; 5] = ["CI", "PATH", "ENVOY_BIN", "HOT_RESTARTER_CACHE", "HOME"];

/// `#[needs(component, ...)]` on a `#[test]` function; see the crate docs.
#[proc_macro_attribute]
pub fn needs(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut missing = Vec::new();
    for tree in attr {
        match tree {
            TokenTree::Ident(name) => {
                let name = name.to_string();
                let Some(why) = probe(&name) else {
                    return compile_error(&format!(
                        "unknown component {name:?}; known: {}",
                        COMPONENTS.map(|(n, _)| n).join(", ")
                    ));
                };
                if let Err(why) = why {
                    missing.push(format!("{name} ({why})"));
                }
            }
            TokenTree::Punct(p) if p.as_char() == ',' => {}
            other => return compile_error(&format!("expected component names, got {other}")),
        }
    }
    // Above `#[test]`, so that the test harness sees the `#[ignore]` this
    // adds: an attribute below `#[test]` expands after the harness has
    // read the test's attributes.
    if !has_attribute(&item, "test") {
        return compile_error("put #[needs(...)] above #[test]");
    }
    let mut out = tracking();
    if !missing.is_empty() && !components::in_ci() && !has_attribute(&item, "ignore") {
        let reason = format!(
            "needs {}; install it (.ci/run does), then `touch tests/needs/src/lib.rs`",
            missing.join(", ")
        );
        out.extend(attribute("ignore", Some(reason)));
    }
    out.extend(item);
    out
}

/// `#[in_netns]` or `#[in_netns(migrate_req = N)]` on a `#[test]`
/// function: its body runs inside a private network and mount namespace
/// with `net.ipv4.tcp_migrate_req` set to N (default: 1, or
/// `$HANDOFF_TEST_MIGRATE_REQ`).
#[proc_macro_attribute]
pub fn in_netns(attr: TokenStream, item: TokenStream) -> TokenStream {
    let wanted: TokenStream = match attr.into_iter().last() {
        None => "crate::netns::migrate_req_wanted()".parse().unwrap(),
        Some(TokenTree::Literal(n)) => TokenTree::Literal(n).into(),
        Some(other) => return compile_error(&format!("expected migrate_req = N, got {other}")),
    };
    let mut trees: Vec<TokenTree> = item.into_iter().collect();
    let name = trees.windows(2).find_map(|w| match (&w[0], &w[1]) {
        (TokenTree::Ident(f), TokenTree::Ident(name)) if f.to_string() == "fn" => {
            Some(name.to_string())
        }
        _ => None,
    });
    let (Some(name), Some(TokenTree::Group(body))) = (name, trees.pop()) else {
        return compile_error("#[in_netns] goes on a test function");
    };
    let mut inner: TokenStream = format!(
        "if !crate::netns::in_private_netns(module_path!(), {name:?}, {wanted}) {{ return; }}"
    )
    .parse()
    .unwrap();
    inner.extend(body.stream());
    trees.push(TokenTree::Group(Group::new(Delimiter::Brace, inner)));
    trees.into_iter().collect()
}

/// The result of probing `name` (cached: one compilation asks many times),
/// or None for a name that is no component.
fn probe(name: &str) -> Option<Result<(), String>> {
    static FOUND: OnceLock<Vec<Result<(), String>>> = OnceLock::new();
    let found = FOUND.get_or_init(|| COMPONENTS.iter().map(|(_, probe)| probe()).collect());
    let i = COMPONENTS.iter().position(|(n, _)| *n == name)?;
    Some(found[i].clone())
}

fn tool(name: &str) -> Result<(), String> {
    components::find_tool(name)
        .map(drop)
        .ok_or_else(|| format!("{name} is not on PATH"))
}

/// `systemd-analyze verify` must pass a minimal unit, with the flags
/// tests/supervisors uses: a container without systemd's runtime
/// directories may have the tool but not this.
fn systemd_analyze() -> Result<(), String> {
    tool("systemd-analyze")?;
    let dir = std::env::temp_dir().join(format!("hot-restarter-needs-{}", std::process::id()));
    let unit = dir.join("probe.service");
    let wrote = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&unit, "[Service]\nExecStart=/bin/true\n"));
    let verified = wrote.is_ok()
        && succeeds(&mut components::systemd_verify(&unit));
    let _ = std::fs::remove_dir_all(&dir);
    verified
        .then_some(())
        .ok_or_else(|| "systemd-analyze verify fails on a minimal unit here".into())
}

fn pid_namespace() -> Result<(), String> {
    tool("unshare")?;
    succeeds(Command::new("unshare").args(["--pid", "--fork", "true"]))
        .then_some(())
        .ok_or_else(|| "unshare --pid --fork fails here (not root?)".into())
}

/// What tests/support/netns.rs does before a test: a network and mount
/// namespace (a user namespace too when not root), loopback up, a tmpfs on
/// /dev/shm, and a kernel with `net.ipv4.tcp_migrate_req` (Linux 5.14+).
fn netns() -> Result<(), String> {
    tool("unshare")?;
    tool("ip")?;
    if !std::path::Path::new("/proc/sys/net/ipv4/tcp_migrate_req").exists() {
        return Err("the kernel has no net.ipv4.tcp_migrate_req (Linux 5.14+)".into());
    }
    let mut cmd = Command::new("unshare");
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { geteuid() } != 0 {
        cmd.arg("--map-root-user");
    }
    cmd.args([
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
    ])
    .arg("ip link set lo up && mount -t tmpfs -o mode=1777 tmpfs /dev/shm");
    succeeds(&mut cmd)
        .then_some(())
        .ok_or_else(|| "cannot set up a private network namespace (unshare -n -m, ip)".into())
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Does the item carry the attribute `#[name...]` (`#[ignore]`: a test run
/// only on request)?
fn has_attribute(item: &TokenStream, name: &str) -> bool {
    let trees: Vec<TokenTree> = item.clone().into_iter().collect();
    trees.windows(2).any(|w| match (&w[0], &w[1]) {
        (TokenTree::Punct(p), TokenTree::Group(g)) if p.as_char() == '#' => g
            .stream()
            .into_iter()
            .next()
            .is_some_and(|t| t.to_string() == name),
        _ => false,
    })
}

/// `const _: Option<&str> = option_env!("VAR");` for each tracked
/// variable, so that the test crate is rebuilt (and probed again) when
/// one changes.
fn tracking() -> TokenStream {
    TRACKED
        .iter()
        .map(|var| format!("const _: Option<&str> = option_env!({var:?});"))
        .collect::<String>()
        .parse()
        .unwrap()
}

/// `#[name = "value"]` (or `#[name]`).
fn attribute(name: &str, value: Option<String>) -> TokenStream {
    let mut inner = vec![TokenTree::Ident(Ident::new(name, Span::call_site()))];
    if let Some(value) = value {
        inner.push(TokenTree::Punct(Punct::new('=', Spacing::Alone)));
        inner.push(TokenTree::Literal(Literal::string(&value)));
    }
    [
        TokenTree::Punct(Punct::new('#', Spacing::Alone)),
        TokenTree::Group(Group::new(Delimiter::Bracket, inner.into_iter().collect())),
    ]
    .into_iter()
    .collect()
}

fn compile_error(message: &str) -> TokenStream {
    format!("compile_error!({message:?});").parse().unwrap()
}
