//! Unit tests of the core's small pure pieces: quoting outside text, and
//! what a reload answers to. (The core's behaviour is tested through its
//! events, in tests/core_props.rs.)

use std::path::PathBuf;

use super::quote::{SHOWN_CHARS, escape_controls, quoted};
use super::types::{Trigger, quoted_paths};

#[test]
fn quoted_escapes_and_bounds() {
    assert_eq!(quoted("LIVE "), "\"LIVE \"");
    assert_eq!(quoted("a\nb\"c\\"), r#""a\nb\"c\\""#);
    assert_eq!(quoted("\u{1b}[31m\r"), r#""\u{1b}[31m\r""#);
    let long = "é".repeat(1000);
    let q = quoted(&long);
    assert!(q.starts_with(&format!("\"{}\"", "é".repeat(SHOWN_CHARS))));
    assert!(q.ends_with("… (2000 bytes)"), "{q}");
    assert_eq!(quoted(&"x".repeat(SHOWN_CHARS)).len(), SHOWN_CHARS + 2);
}

#[test]
fn escape_controls_keeps_quotes() {
    assert_eq!(escape_controls("a \"b\"\r\tc"), r#"a "b"\r\tc"#);
}

#[test]
fn a_trigger_names_its_files_quoted_and_bounded() {
    let t = Trigger::Changed(vec!["/etc/a\nb.yaml".into()]);
    assert_eq!(t.describe(), r#""/etc/a\nb.yaml" changed"#);
    let many: Vec<PathBuf> = (0..6).map(|i| format!("/f{i}").into()).collect();
    assert_eq!(
        quoted_paths(&many),
        r#""/f0", "/f1", "/f2", "/f3", and 2 more"#
    );
    assert_eq!(Trigger::Signal.describe(), "SIGHUP");
    assert_eq!(Trigger::Request.describe(), "reload request");
}

#[test]
fn a_held_trigger_adds_up_changes_and_a_change_outweighs_a_signal() {
    let mut t = Trigger::Signal;
    t.absorb(Trigger::Changed(vec!["/a".into()]));
    t.absorb(Trigger::Signal);
    t.absorb(Trigger::Changed(vec!["/b".into(), "/a".into()]));
    assert_eq!(t, Trigger::Changed(vec!["/a".into(), "/b".into()]));
    let mut t = Trigger::Request;
    t.absorb(Trigger::Signal);
    assert_eq!(t, Trigger::Signal);
}
