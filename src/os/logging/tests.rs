//! Unit tests of the parent module.

use super::*;

/// Each level, as the text format spells it (Python's logging) and as the
/// JSON format does (zap's lowercase names).
const LEVELS: [(Level, &str, &str); 4] = [
    (Level::Error, "ERROR", "error"),
    (Level::Warn, "WARNING", "warn"),
    (Level::Info, "INFO", "info"),
    (Level::Debug, "DEBUG", "debug"),
];

#[test]
fn levels_are_spelled_as_python_does() {
    for (level, python, _) in LEVELS {
        assert_eq!(level_name(level), python, "{level:?}");
    }
}

#[test]
fn json_lines_have_pilot_agents_keys_and_escape_the_message() {
    let text = json_line(Level::Warn, "a \"quoted\"\nsecond line", "src/x.rs", 7);
    assert!(
        text.ends_with("}\n") && text.matches('\n').count() == 1,
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["level"], "warn");
    assert_eq!(v["scope"], "hot-restarter");
    assert_eq!(v["caller"], "src/x.rs:7");
    assert_eq!(v["msg"], "a \"quoted\"\nsecond line");
    assert_eq!(v["pid"], std::process::id());
    let time = v["time"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    // 2026-12-04T18:49:32.891123Z: microseconds, UTC as Z.
    assert_eq!(time.len(), 27, "{time}");
    assert!(time.ends_with('Z'), "{time}");
    let keys: Vec<&str> = [
        "\"level\"",
        "\"time\"",
        "\"scope\"",
        "\"caller\"",
        "\"msg\"",
        "\"pid\"",
    ]
    .into_iter()
    .collect();
    let at: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "zap's key order: {text}"
    );
}

#[test]
fn json_levels_are_zaps_lowercase() {
    for (level, _, zap) in LEVELS {
        assert_eq!(json_level_name(level), zap, "{level:?}");
    }
    assert_eq!(json_level_name(Level::Trace), "debug");
}
