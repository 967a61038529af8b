//! Unit tests for the wire protocol: round trips, bad input, versions.

use super::*;
use crate::control::status::tests::sample_status;

/// The shared sample status, its last reload one that a change of file
/// asked for and that went well (a trigger, no reason).
fn after_a_triggered_reload() -> Status {
    let mut s = sample_status();
    s.last_reload = Some(LastReload {
        epoch: 3,
        result: reload_result::DONE.to_string(),
        reason: None,
        ms: 1234,
        trigger: Some("\"/etc/envoy/envoy.yaml\" changed".to_string()),
    });
    s
}

/// Each of `all` is written as one line (its only newline ends it) that
/// parses back to it.
#[track_caller]
fn assert_round_trips<T: PartialEq + std::fmt::Debug, E: PartialEq + std::fmt::Debug>(
    all: impl IntoIterator<Item = T>,
    to_line: fn(&T) -> String,
    parse: fn(&[u8]) -> Result<T, E>,
) {
    for item in all {
        let line = to_line(&item);
        assert!(
            line.ends_with('\n') && !line[..line.len() - 1].contains('\n'),
            "{line:?}"
        );
        assert_eq!(parse(line.as_bytes()), Ok(item), "{line}");
    }
}

#[test]
fn every_request_round_trips() {
    let all = [
        Request::Status,
        Request::Reload { wait: false },
        Request::Reload { wait: true },
        Request::Handoff { wait: false },
        Request::Handoff { wait: true },
        Request::ReopenLogs,
        Request::Stop { wait: false },
        Request::Stop { wait: true },
    ];
    assert_round_trips(all, Request::to_line, Request::parse);
}

#[test]
fn requests_from_the_documentation_parse() {
    let cases: [(&str, Request); 5] = [
        (r#"{"v":1,"cmd":"status"}"#, Request::Status),
        (
            r#"{"v":1,"cmd":"reload","wait":true}"#,
            Request::Reload { wait: true },
        ),
        (
            r#"{"v":1,"cmd":"handoff","wait":false}"#,
            Request::Handoff { wait: false },
        ),
        (r#"{"v":1,"cmd":"reopen-logs"}"#, Request::ReopenLogs),
        (
            r#"{"cmd":"stop","v":1,"wait":true}"#,
            Request::Stop { wait: true },
        ),
    ];
    for (line, request) in cases {
        assert_eq!(Request::parse(line.as_bytes()), Ok(request), "{line}");
    }
    // Absent wait is false; CRLF endings and unknown fields are accepted.
    assert_eq!(
        Request::parse(b"{\"v\":1,\"cmd\":\"reload\",\"later\":[1]}\r\n"),
        Ok(Request::Reload { wait: false })
    );
}

#[test]
fn bad_requests_are_told_apart() {
    let cases: [(&[u8], &str); 12] = [
        (b"", "malformed request: not JSON"),
        (b"status\n", "malformed request: not JSON"),
        (b"\xff\xfe{}", "malformed request: not JSON"),
        (b"[1,2]", "not a JSON object: [1,2]"),
        (
            br#"{"cmd":"status"}"#,
            "no protocol version \"v\" (this wrapper speaks 1)",
        ),
        (
            br#"{"v":2,"cmd":"status"}"#,
            "unsupported protocol version 2: this wrapper speaks 1",
        ),
        (
            br#"{"v":"1","cmd":"status"}"#,
            "unsupported protocol version \"1\"",
        ),
        (br#"{"v":1}"#, "no command \"cmd\""),
        (br#"{"v":1,"cmd":7}"#, "\"cmd\" must be a string, not 7"),
        (
            br#"{"v":1,"cmd":"restart"}"#,
            "unknown command \"restart\": known are status",
        ),
        (
            br#"{"v":1,"cmd":"reload","wait":"yes"}"#,
            "\"wait\" must be true or false, not \"yes\"",
        ),
        (
            br#"{"v":1,"cmd":"status","wait":true}"#,
            "status takes no \"wait\"",
        ),
    ];
    for (line, expected) in cases {
        let err = Request::parse(line).expect_err(&String::from_utf8_lossy(line));
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    }
}

#[test]
fn a_long_garbage_value_is_cut_short_in_the_error() {
    let line = format!(r#"{{"v":1,"cmd":"{}"}}"#, "x".repeat(5000));
    let err = Request::parse(line.as_bytes()).unwrap_err();
    assert!(err.len() < 200, "{err}");
}

#[test]
fn every_reply_round_trips() {
    let all = [
        Reply::Status(Box::new(sample_status())),
        Reply::Status(Box::new(after_a_triggered_reload())),
        Reply::Status(Box::new(Status {
            version: String::new(),
            exe: String::new(),
            reexecs: 0,
            last_reload: None,
            children: vec![],
            ..sample_status()
        })),
        Reply::Done {
            detail: "epoch 3 (PID=123) is ready".to_string(),
        },
        Reply::Failed {
            reason: "preflight for epoch 2 failed: line 1\nline \"2\"".to_string(),
        },
    ];
    assert_round_trips(all, Reply::to_line, Reply::parse);
}

#[test]
fn reply_lines_have_the_documented_shape() {
    let done = Reply::Done {
        detail: "ok".into(),
    }
    .to_line();
    assert_eq!(done, "{\"v\":1,\"ok\":true,\"detail\":\"ok\"}\n");
    let failed = Reply::Failed {
        reason: "no".into(),
    }
    .to_line();
    assert_eq!(failed, "{\"v\":1,\"ok\":false,\"error\":\"no\"}\n");
    let status: serde_json::Value =
        serde_json::from_str(&Reply::Status(Box::new(after_a_triggered_reload())).to_line())
            .unwrap();
    assert_eq!(status["status"]["children"][1]["state"], "ready");
    assert_eq!(
        status["status"]["last_reload"]["reason"],
        serde_json::Value::Null
    );
    let fresh = Status {
        version: String::new(),
        exe: String::new(),
        reexecs: 0,
        last_reload: None,
        ..sample_status()
    };
    let fresh: serde_json::Value = serde_json::to_value(&fresh).unwrap();
    assert!(
        fresh.get("last_reload").unwrap().is_null(),
        "null before the first reload"
    );
}

#[test]
fn a_reply_in_another_version_is_reported_as_such() {
    let err = Reply::parse(br#"{"v":2,"ok":true,"detail":"fine","extra":1}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the wrapper speaks protocol version 2, this hot-restarter-ctl speaks 1"
    );
    let err = Reply::parse(br#"{"v":2,"ok":false,"error":"unsupported protocol version 1"}"#)
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("(it said: unsupported protocol version 1)"),
        "{err}"
    );
    let err = Reply::parse(br#"{"ok":true,"detail":"fine"}"#).unwrap_err();
    assert_eq!(
        err,
        ReplyError::Version {
            theirs: None,
            said: None
        }
    );
    assert!(
        err.to_string().contains("names no protocol version"),
        "{err}"
    );
}

#[test]
fn malformed_replies_are_errors() {
    for line in [
        &b"hello"[..],
        br#"{"v":1}"#,
        br#"{"v":1,"ok":"yes"}"#,
        br#"{"v":1,"ok":true}"#,
        br#"{"v":1,"ok":false}"#,
        br#"{"v":1,"ok":true,"status":{"pid":"x"}}"#,
    ] {
        match Reply::parse(line) {
            Err(ReplyError::Malformed(_)) => {}
            other => panic!("{}: {other:?}", String::from_utf8_lossy(line)),
        }
    }
}

#[test]
fn a_status_with_added_fields_and_missing_counters_still_parses() {
    let line = br#"{"v":1,"ok":true,"status":{"pid":1,"phase":"running","uptime_s":2,
        "children":[{"pid":3,"epoch":0,"generation":0,"state":"ready","rss":9}],
        "last_reload":null,"counters":{"reloads_done":4},"new_field":true}}"#;
    let Ok(Reply::Status(status)) = Reply::parse(line) else {
        panic!("not a status");
    };
    assert_eq!(status.counters.reloads_done, 4);
    assert_eq!(status.counters.handoffs_failed, 0);
    assert_eq!(status.uptime_s, 2.0);
}
