//! Unit tests of the parent module.

use super::*;

#[test]
fn written_then_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.pid");
    let pf = PidFile::create(&path, 4242).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "4242\n");
    drop(pf);
    assert!(!path.exists());
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temporary left"
    );
}

#[test]
fn a_taken_over_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.pid");
    let pf = PidFile::create(&path, 4242).unwrap();
    fs::write(&path, "99\n").unwrap();
    drop(pf);
    assert_eq!(fs::read_to_string(&path).unwrap(), "99\n");
}

#[test]
fn a_planted_link_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("victim");
    fs::write(&target, "precious").unwrap();
    let path = dir.path().join("w.pid");
    std::os::unix::fs::symlink(&target, dir.path().join(".w.pid.7.tmp")).unwrap();
    let _pf = PidFile::create(&path, 7).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    assert_eq!(fs::read_to_string(&path).unwrap(), "7\n");
}

#[test]
fn an_unwritable_place_names_the_path_and_the_error() {
    let err = PidFile::create(Path::new("/nonexistent-dir/w.pid"), 1).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("/nonexistent-dir/w.pid"), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
}
