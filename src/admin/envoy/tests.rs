//! Unit tests of the parent module.

use super::*;

/// Envoy 1.40.0's `/server_info`, epoch 0, LIVE; the 516 extensions cut
/// to two, nothing else changed.
const ENVOY_1_40: &[u8] = include_bytes!("../testdata/server_info_envoy_1.40.json");

#[test]
fn real_envoy_1_40_server_info() {
    let info = parse_server_info(ENVOY_1_40).unwrap();
    assert_eq!(
        info,
        ServerInfo {
            state: "LIVE".into(),
            restart_epoch: Some(0),
            hot_restart_version: Some("11.104".into()),
            uptime_current_epoch: Some(std::time::Duration::from_secs(5)),
        }
    );
    assert!(info.is_live());
}

#[test]
fn uptime_in_protobuf_duration_form_or_none() {
    let up = |v: &str| {
        let json = format!(r#"{{"state":"LIVE","uptime_current_epoch":{v}}}"#);
        parse_server_info(json.as_bytes())
            .unwrap()
            .uptime_current_epoch
    };
    let secs = std::time::Duration::from_secs_f64;
    assert_eq!(up(r#""12s""#), Some(secs(12.0)));
    assert_eq!(up(r#""0.500s""#), Some(secs(0.5)));
    for odd in [r#""12""#, r#""-3s""#, r#""s""#, "12", "null", r#""1e999s""#] {
        assert_eq!(up(odd), None, "{odd}");
    }
}

#[test]
fn epoch_as_number_or_string_and_other_states() {
    let info = |json: &str| parse_server_info(json.as_bytes());
    let i = info(r#"{"state":"DRAINING","command_line_options":{"restart_epoch":3}}"#);
    assert_eq!(i.as_ref().unwrap().restart_epoch, Some(3));
    assert!(!i.unwrap().is_live());
    let i = info(r#"{"state":"INITIALIZING","command_line_options":{"restart_epoch":"7"}}"#);
    assert_eq!(i.unwrap().restart_epoch, Some(7));
    let i = info(r#"{"state":"PRE_INITIALIZING"}"#).unwrap();
    assert_eq!((i.restart_epoch, i.hot_restart_version), (None, None));
}

#[test]
fn malformed_bodies_say_what_is_wrong() {
    let err = |json: &str| parse_server_info(json.as_bytes()).unwrap_err();
    assert!(err("").contains("not JSON"));
    assert!(err("<html>").contains("not JSON"));
    assert!(err("{}").contains("no \"state\""));
    assert!(err(r#"{"state":1}"#).contains("not a string"));
    for (bad, said) in [
        (r#""x""#, r#""x", not an epoch number"#),
        ("-1", "-1, out of range"),
        ("1.5", "a fraction, not an epoch number"),
        ("4294967296", "4294967296, out of range"),
        (
            "18446744073709551616",
            "a number beyond 64 bits, out of range",
        ),
        ("-1e300", "a number beyond 64 bits, out of range"),
        ("true", "true, not an epoch number"),
        ("[]", "an array, not an epoch number"),
    ] {
        let json =
            format!(r#"{{"state":"LIVE","command_line_options":{{"restart_epoch":{bad}}}}}"#);
        assert_eq!(
            err(&json),
            format!("/server_info command_line_options.restart_epoch is {said}")
        );
    }
}

#[test]
fn hot_restart_version_is_trimmed() {
    assert_eq!(parse_hot_restart_version(b"11.104"), "11.104");
    assert_eq!(parse_hot_restart_version(b" 11.104\n"), "11.104");
}

#[test]
fn in_flight_sums_every_connection_manager_but_the_admin() {
    let body = br#"{"stats":[{"name":"http.admin.downstream_rq_active","value":1},{"name":"http.ingress.downstream_rq_active","value":3},{"name":"http.other.downstream_rq_active","value":2}]}"#;
    assert_eq!(parse_in_flight(body), Ok(5));
    assert_eq!(parse_in_flight(br#"{"stats":[]}"#), Ok(0));
    assert!(parse_in_flight(b"not json").is_err());
    let bad = br#"{"stats":[{"name":"http.x.downstream_rq_active","value":"many"}]}"#;
    assert!(
        parse_in_flight(bad)
            .unwrap_err()
            .contains("http.x.downstream_rq_active")
    );
}
