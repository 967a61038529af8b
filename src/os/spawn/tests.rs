//! Unit tests of the parent module.

use super::*;

#[test]
fn the_epoch_replaces_any_inherited_one() {
    let spec = Spec::new(Path::new("x"), &[OsString::from("a")], 7).unwrap();
    let epochs: Vec<_> = spec
        .envp
        .iter()
        .filter(|e| e.as_bytes().starts_with(b"RESTART_EPOCH="))
        .collect();
    assert_eq!(epochs, vec![&CString::new("RESTART_EPOCH=7").unwrap()]);
    assert_eq!(spec.argv[0].as_bytes(), b"x");
    assert_eq!(spec.program.as_bytes(), b"x");
}

/// An executable file holding `body` in a fresh temp dir.
#[test]
fn nul_bytes_are_refused_with_a_reason() {
    let err = Spec::new(Path::new("x"), &[OsString::from("a\0b")], 0)
        .err()
        .unwrap();
    assert!(err.to_string().contains("script argument"));
}
