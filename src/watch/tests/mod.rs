//! Unit tests of the watcher: `logic`, the pure debounce and compare
//! logic with time passed in; `real_files`, the watcher against real files
//! in a temporary directory, changed the way editors, `cp` + `mv`, `touch`
//! and the kubelet change them.

mod logic;
mod real_files;

use std::time::Duration;

use super::*;

const MS: Duration = Duration::from_millis(1);
