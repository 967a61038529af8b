//! Unit tests of the parent module.

use super::*;

#[test]
fn only_code_zero_is_clean() {
    assert!(Exit::Code(0).is_clean());
    assert!(!Exit::Code(1).is_clean());
    assert!(!Exit::Code(127).is_clean());
    assert!(!Exit::Signal(15).is_clean());
    assert!(!Exit::Signal(9).is_clean());
}

#[test]
fn exit_codes_match_the_python_wrapper() {
    assert_eq!(Ending::NoChildrenLeft.exit_code(), 0);
    assert_eq!(Ending::GracefulShutdown.exit_code(), 0);
    assert_eq!(Ending::ForcedShutdown.exit_code(), 1);
    assert_eq!(Ending::Failure.exit_code(), 1);
}

#[test]
fn a_failed_epoch_number_is_reused() {
    // epoch 0 serves, epoch 1 failed: try 1 again.
    assert_eq!(next_epoch_after_failure([0], 1), 1);
    // epoch 1 serves while 0 drains, 2 failed: try 2 again.
    assert_eq!(next_epoch_after_failure([0, 1], 2), 2);
    // an old, draining epoch failed: the newest still decides.
    assert_eq!(next_epoch_after_failure([3], 2), 4);
    // nothing left: nothing to follow.
    assert_eq!(next_epoch_after_failure([], 5), 5);
}

#[test]
fn hups_restart_hold_coalesce_or_are_ignored() {
    assert_eq!(on_hup(false, false, false), HupAction::Restart);
    assert_eq!(on_hup(false, true, false), HupAction::Hold);
    assert_eq!(on_hup(false, true, true), HupAction::Coalesce);
    assert_eq!(on_hup(true, false, false), HupAction::Ignore);
    assert_eq!(on_hup(true, true, true), HupAction::Ignore);
}

#[test]
fn last_words_are_the_last_three_lines() {
    assert_eq!(last_words("a\n\nb\nc\nd\n"), "b / c / d");
    assert_eq!(last_words(""), "");
    assert_eq!(last_words(&"y".repeat(5000)).len(), 1000);
}
