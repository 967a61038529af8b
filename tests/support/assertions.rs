//! Assertions on lists that several test binaries make (std only, so that
//! a binary without the rest of tests/support can load it by `#[path]`).
#![allow(dead_code)] // each test binary uses a part of it

use std::fmt::Display;

/// Every one of `wanted` is among `have`; a failure names the missing one
/// and shows `shown` (the text `have` was read from).
#[track_caller]
pub fn assert_all_among(wanted: &[&str], have: &[String], shown: impl Display) {
    for w in wanted {
        assert!(have.iter().any(|h| h == w), "{w} is missing from:\n{shown}");
    }
}
