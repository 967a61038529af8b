//! Unit tests of the parent module.

use super::*;
use std::io::Write;

#[test]
fn what_is_written_comes_back_and_the_size_is_bounded() {
    let cap = Capture::new().unwrap();
    let mut writer = cap.file.try_clone().unwrap();
    writer.write_all(b"first\nsecond\n").unwrap();
    assert_eq!(cap.take().unwrap(), b"first\nsecond\n");

    let cap = Capture::new().unwrap();
    let mut writer = cap.file.try_clone().unwrap();
    let big = vec![b'x'; LIMIT as usize];
    writer.write_all(&big).unwrap();
    assert!(writer.write_all(b"more").is_err(), "grew past the limit");
    assert_eq!(cap.take().unwrap().len(), LIMIT as usize);
}
