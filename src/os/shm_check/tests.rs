//! Unit tests of the parent module.

use super::*;

#[test]
fn a_writable_directory_passes_and_keeps_no_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(shm_problem(dir.path()).is_none());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_missing_directory_or_a_file_is_named_by_its_os_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = shm_problem(&dir.path().join("shm")).unwrap();
    assert_eq!(missing.raw_os_error(), Some(libc::ENOENT), "{missing}");
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let not_dir = shm_problem(&file).unwrap();
    assert_eq!(not_dir.raw_os_error(), Some(libc::ENOTDIR), "{not_dir}");
}
