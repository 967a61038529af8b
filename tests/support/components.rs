//! Finding, when a test runs, the real components it drives. A test that
//! needs one carries `#[needs(...)]`, which ignores it at compile time
//! when the component is missing (outside CI); so a test that gets here
//! without its component fails, saying why (`need_envoy` is in
//! support/envoy_lab.rs).

use std::path::PathBuf;

#[path = "../needs/src/components.rs"]
#[allow(dead_code)] // shared with tests/needs; only the envoy tests look for Envoy
pub mod found;

pub use found::in_ci;
pub use hot_restarter_test_needs::needs;

/// Why a test whose component is missing runs at all, for its failure
/// message.
pub fn why_required() -> &'static str {
    if in_ci() {
        "CI=true requires every component (.ci/run installs them)"
    } else {
        "it was there when the tests were compiled, so #[needs] did not ignore \
         this test: restore it, or rebuild the tests (touch tests/needs/src/lib.rs) \
         so that they are ignored"
    }
}

/// `tool` on PATH, for a test that carries `#[needs(...)]` naming it.
#[track_caller]
pub fn need_tool(tool: &str) -> PathBuf {
    match found::find_tool(tool) {
        Some(path) => path,
        None => panic!("{tool} is not on PATH; {}", why_required()),
    }
}
