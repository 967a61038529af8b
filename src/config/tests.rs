//! Unit tests of the parent module.

use super::*;

#[test]
fn seconds_accept_integers_and_fractions() {
    assert_eq!(parse_seconds("30"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
}

#[test]
fn seconds_reject_garbage_and_negatives() {
    for garbage in ["ten", "", " ", "nan", "NaN", "1s", "0x10"] {
        let err = parse_seconds(garbage).unwrap_err();
        assert_eq!(err, format!("'{garbage}' is not a number of seconds"));
    }
    for negative in ["-1", "-0.5", "-inf", "-1e19"] {
        let err = parse_seconds(negative).unwrap_err();
        assert_eq!(
            err,
            format!(
                "'{negative}' is negative: give a number of seconds from 0 to 31536000 (365 days)"
            )
        );
    }
    assert_eq!(parse_seconds("-0"), Ok(Duration::ZERO));
}

#[test]
fn seconds_beyond_a_year_are_too_large() {
    // 1e19 used to be accepted and overflowed `Instant + Duration` at
    // the first deadline (a panic at SIGTERM, orphaning the children).
    for huge in ["1e19", "1e300", "inf", "31536000.001", "31536001"] {
        let err = parse_seconds(huge).unwrap_err();
        assert_eq!(
            err,
            format!("'{huge}' is too large: at most 31536000 seconds (365 days)")
        );
        assert!(!err.contains("non-negative"), "{err}");
    }
    assert_eq!(
        parse_seconds("31536000"),
        Ok(Duration::from_secs(MAX_SECONDS))
    );
    // The largest value still makes a deadline.
    assert!(
        std::time::Instant::now()
            .checked_add(Duration::from_secs(MAX_SECONDS))
            .is_some()
    );
}

#[test]
fn every_seconds_flag_refuses_a_huge_value_naming_flag_and_value() {
    for flag in [
        "--term-wait",
        "--preflight-timeout",
        "--ready-timeout",
        "--ready-interval",
    ] {
        let err = Flags::try_parse_from(["hot-restarter", flag, "1e19", "s.sh"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let line = one_line(&err);
        assert!(line.contains(flag), "{line}");
        assert!(line.contains("'1e19' is too large"), "{line}");
        assert!(line.contains("at most 31536000 seconds"), "{line}");
    }
}

#[test]
fn script_args_keep_their_dashes() {
    let f =
        Flags::try_parse_from(["hot-restarter", "--term-wait", "5", "s.sh", "--x", "-y"]).unwrap();
    assert_eq!(f.start_script(), PathBuf::from("s.sh"));
    assert_eq!(
        f.command[1..],
        [OsString::from("--x"), OsString::from("-y")]
    );
    assert_eq!(f.term_wait, Duration::from_secs(5));
}

#[test]
fn wrapper_flags_after_the_script_belong_to_the_script() {
    let f = Flags::try_parse_from(["hot-restarter", "s.sh", "--help", "--term-wait", "x"]).unwrap();
    assert_eq!(f.command, ["s.sh", "--help", "--term-wait", "x"]);
    assert_eq!(f.term_wait, Duration::from_secs(30));
}

#[test]
fn an_unknown_flag_before_the_script_is_still_an_error() {
    let err = Flags::try_parse_from(["hot-restarter", "--bogus", "s.sh"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
}

#[test]
fn zero_timeouts_are_refused() {
    for flag in ["--preflight-timeout", "--ready-timeout", "--ready-interval"] {
        let f = Flags::try_parse_from(["hot-restarter", flag, "0", "s.sh"]).unwrap();
        let err = Config::from_flags(f).unwrap_err().to_string();
        assert_eq!(err, format!("{flag} must be more than 0 seconds"));
    }
}

#[test]
fn a_script_is_required() {
    let err = Flags::try_parse_from(["hot-restarter"]).unwrap_err();
    assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
}

#[test]
fn the_drain_hold_follows_envoy_admin_unless_set() {
    let config = |args: &[&str]| {
        let mut all = vec!["hot-restarter"];
        all.extend_from_slice(args);
        all.push("s.sh");
        Config::from_flags(Flags::try_parse_from(all).unwrap()).unwrap()
    };
    let admin = ["--envoy-admin", "127.0.0.1:9901"];
    assert!(!config(&[]).hold_while_draining);
    assert!(config(&admin).hold_while_draining);
    assert!(config(&["--hold-while-draining"]).hold_while_draining);
    let off = [&admin[..], &["--hold-while-draining=false"]].concat();
    assert!(!config(&off).hold_while_draining);
    // A bare switch never takes the script as its value.
    assert_eq!(
        config(&["--hold-while-draining"]).start_script,
        PathBuf::from("s.sh")
    );
    assert_eq!(config(&[]).ready_interval, Duration::from_millis(100));
    assert_eq!(config(&admin).ready_interval, Duration::from_millis(20));
    let slow = [&admin[..], &["--ready-interval", "0.5"]].concat();
    assert_eq!(config(&slow).ready_interval, Duration::from_millis(500));
}

#[test]
fn a_watched_path_needs_an_existing_directory_not_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(check_watchable(&dir.path().join("later.yaml")).is_ok());
    let err = check_watchable(&dir.path().join("nodir/envoy.yaml")).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "directory {}: No such file or directory (os error 2)",
            dir.path().join("nodir").display()
        )
    );
    std::fs::write(dir.path().join("file"), "").unwrap();
    let err = check_watchable(&dir.path().join("file/x")).unwrap_err();
    assert!(format!("{err:#}").contains("is not a directory"), "{err:#}");
    assert!(check_watchable(std::path::Path::new("")).is_err());
}
