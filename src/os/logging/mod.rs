//! Log lines in the Python wrapper's shape, one write per line on stdout.
//!
//! `[2026-11-25 03:09:35.536][4645][INFO][core] [src/main.rs:42] message`:
//! local time with milliseconds, the wrapper's pid, the level spelled as
//! Python's logging module spells it, the source location, the message.
//!
//! With `--log-format json`, one JSON object per line instead, with the
//! keys of Istio's pilot-agent (zap's JSON encoder: `level`, `time`,
//! `scope`, `caller`, `msg`) and the wrapper's `pid`; see [`json_line`].

use std::io::Write;

use log::Level;

/// Python's level names: people grep for `[WARNING]`, not `[WARN]`.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

/// Install the logger. `RUST_LOG` sets the level; the default is info.
pub fn init() {
    let pid = std::process::id();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stdout)
        .format(move |buf, record| {
            writeln!(
                buf,
                "[{}][{}][{}][core] [{}:{}] {}",
                chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f"),
                pid,
                level_name(record.level()),
                record.file().unwrap_or("?"),
                record.line().unwrap_or(0),
                record.args()
            )
        })
        .init();
}

/// The shape of the log lines (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The Python wrapper's lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Install the logger for `format`.
pub fn init_with(format: Format) {
    match format {
        Format::Text => init(),
        Format::Json => init_json(),
    }
}

/// The `scope` of the wrapper's JSON lines: it tells them from Envoy's in
/// a container's one log stream.
pub const JSON_SCOPE: &str = "hot-restarter";

/// Levels as zap's lowercase encoder writes them (pilot-agent's `warn`).
pub fn json_level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug | Level::Trace => "debug",
    }
}

/// One JSON log line, `\n` included. The keys come in zap's order;
/// `time` is UTC with microseconds, as pilot-agent writes it. serde_json
/// escapes the message, so that a newline or a quote in it cannot end or
/// forge a line.
pub fn json_line(level: Level, msg: &str, file: &str, line: u32) -> String {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        level: &'a str,
        time: String,
        scope: &'a str,
        caller: String,
        msg: &'a str,
        pid: u32,
    }
    let line = Line {
        level: json_level_name(level),
        time: chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string(),
        scope: JSON_SCOPE,
        caller: format!("{file}:{line}"),
        msg,
        pid: std::process::id(),
    };
    let mut text = serde_json::to_string(&line).expect("a log line serializes");
    text.push('\n');
    text
}

/// `--log-format json`: every line through [`json_line`], a panic's
/// message too (on stderr, where Rust prints it).
fn init_json() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stdout)
        .format(|buf, record| {
            let msg = record.args().to_string();
            let file = record.file().unwrap_or("?");
            let line = json_line(record.level(), &msg, file, record.line().unwrap_or(0));
            buf.write_all(line.as_bytes())
        })
        .init();
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = (payload.downcast_ref::<&str>().copied())
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
        let text = json_line(Level::Error, &format!("panic: {what}"), file, line);
        let _ = std::io::stderr().write_all(text.as_bytes());
    }));
}

/// The log format for errors printed before clap has accepted the command
/// line (or when it refuses it): `--log-format` among the words before the
/// start script, else `HOT_RESTARTER_LOG_FORMAT`, else text. A value that
/// is not a format counts as absent.
pub fn early_format() -> Format {
    use clap::{CommandFactory, ValueEnum};
    let parse = |value: &str| Format::from_str(value, false).ok();
    let from_env = std::env::var("HOT_RESTARTER_LOG_FORMAT")
        .ok()
        .and_then(|v| parse(&v))
        .unwrap_or_default();
    let command = crate::config::Flags::command();
    // Options whose value is the next word (`--term-wait 5`), so that the
    // value is not taken for the start script.
    let takes_next_word = |long: &str| {
        command.get_arguments().any(|a| {
            a.get_long() == Some(long)
                && a.get_action().takes_values()
                && !a.is_require_equals_set()
        })
    };
    let mut words = std::env::args_os().skip(1);
    while let Some(word) = words.next() {
        let word = word.to_string_lossy();
        // The start script, `--`, or a short flag: the wrapper's words end.
        let Some(long) = word.strip_prefix("--").filter(|l| !l.is_empty()) else {
            break;
        };
        if let Some(value) = long.strip_prefix("log-format=") {
            return parse(value).unwrap_or(from_env);
        }
        if long == "log-format" {
            let value = words.next().map(|v| v.to_string_lossy().into_owned());
            return value.and_then(|v| parse(&v)).unwrap_or(from_env);
        }
        if !long.contains('=') && takes_next_word(long) {
            words.next();
        }
    }
    from_env
}

/// An error before the logger is installed (a refused command line), on
/// stderr in the [`early_format`]: `hot-restarter: MESSAGE` as text, or a
/// JSON line naming the caller.
#[track_caller]
pub fn early_error(message: &str) {
    match early_format() {
        Format::Text => eprintln!("hot-restarter: {message}"),
        Format::Json => {
            let at = std::panic::Location::caller();
            let line = json_line(Level::Error, message, at.file(), at.line());
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests;
