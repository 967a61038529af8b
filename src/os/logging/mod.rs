//! Log lines in the Python wrapper's shape, one write per line on stdout.
//!
//! `[2026-11-25 03:09:35.536][4645][INFO][core] [src/main.rs:42] message`:
//! local time with milliseconds, the wrapper's pid, the level spelled as
//! Python's logging module spells it, the source location, the message.

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

#[cfg(test)]
mod tests;
