//! What the package installs, checked against what the binaries do: the
//! man pages and completions (generated from the clap definitions, so they
//! must match the checked-in files and `--help`), the .deb built by
//! `cargo deb` (inspected, and installed with the real `dpkg` into a
//! throwaway overlay root), the one-command Envoy try-it script, and
//! `cargo install`.
//!
//! Tests that need a tool beyond cargo and bash (cargo-deb, man, dpkg-deb,
//! systemd-analyze, Envoy; root, overlayfs, unshare and nsenter for the
//! dpkg install) are `#[ignore]`d with the tool named: a plain `cargo
//! test` reports them ignored, and `.ci/run` runs them with
//! `cargo test --test package --test fleet -- --include-ignored`, where a
//! missing tool fails them (`tools::need`).

#[path = "../examples/gen-docs/pages.rs"]
mod pages;

#[path = "support/assertions.rs"]
mod assertions;

#[path = "package/deb.rs"]
mod deb;
#[path = "package/docs.rs"]
mod docs;
#[path = "package/dpkg.rs"]
mod dpkg;
#[path = "package/tools.rs"]
mod tools;
#[path = "package/try_it.rs"]
mod try_it;
