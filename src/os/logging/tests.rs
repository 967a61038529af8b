//! Unit tests of the parent module.

use super::*;

#[test]
fn levels_are_spelled_as_python_does() {
    assert_eq!(level_name(Level::Warn), "WARNING");
    assert_eq!(level_name(Level::Error), "ERROR");
    assert_eq!(level_name(Level::Info), "INFO");
    assert_eq!(level_name(Level::Debug), "DEBUG");
}
