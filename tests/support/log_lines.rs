//! Reading the wrapper's log lines: the message and level of a line, the
//! shape every line must have, the epochs the log says were started.
#![allow(dead_code)] // each test binary uses a part of it

/// The text after `] ` that follows the source location, for a log line in
/// the `[time][pid][LEVEL][core] [file:line] message` shape.
pub fn message_of(line: &str) -> &str {
    match line.find("][core] [") {
        Some(i) => {
            let rest = &line[i + "][core] [".len()..];
            match rest.find("] ") {
                Some(j) => &rest[j + 2..],
                None => "",
            }
        }
        None => "",
    }
}

/// The level of a log line (`INFO`, `WARNING`, ...).
pub fn level_of(line: &str) -> &str {
    let parts: Vec<&str> = line.splitn(5, ']').collect();
    if parts.len() >= 4 {
        parts[2].trim_start_matches('[')
    } else {
        ""
    }
}

/// Check one stdout line against the shape of hot-restarter.py's lines,
/// i.e. the regular expression
/// `^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\]\[PID\]\[(DEBUG|INFO|WARNING|ERROR)\]\[core\] \[src/[a-z_]+\.rs:\d+\] `
/// written out by hand (there is no regex crate). Returns what is wrong.
pub fn check_log_line(line: &str, wrapper_pid: i32) -> Result<(), String> {
    fn lit<'a>(rest: &'a str, text: &str, what: &str) -> Result<&'a str, String> {
        rest.strip_prefix(text)
            .ok_or_else(|| format!("expected {text:?} ({what}) at {rest:?}"))
    }
    fn digits<'a>(rest: &'a str, what: &str) -> Result<&'a str, String> {
        let count = rest.bytes().take_while(u8::is_ascii_digit).count();
        if count == 0 {
            return Err(format!("expected digits ({what}) at {rest:?}"));
        }
        Ok(&rest[count..])
    }
    // The timestamp, character by character: `d` stands for a digit.
    let mut r = line;
    for want in "[dddd-dd-dd dd:dd:dd.ddd][".chars() {
        let fits = |c: char| {
            if want == 'd' {
                c.is_ascii_digit()
            } else {
                c == want
            }
        };
        match r.chars().next() {
            Some(c) if fits(c) => r = &r[c.len_utf8()..],
            _ => {
                return Err(format!(
                    "expected {want:?} (d: a digit) of the timestamp at {r:?}"
                ));
            }
        }
    }
    let r = lit(r, &wrapper_pid.to_string(), "the wrapper's pid")?;
    let r = lit(r, "][", "after the pid")?;
    let r = ["DEBUG", "INFO", "WARNING", "ERROR"]
        .iter()
        .find_map(|level| r.strip_prefix(level))
        .ok_or_else(|| format!("expected a level at {r:?}"))?;
    let r = lit(r, "][core] [src/", "logger name and source file")?;
    let name_len = r
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || *b == b'_' || *b == b'/')
        .count();
    if name_len == 0 {
        return Err(format!("expected a source file name at {r:?}"));
    }
    let r = lit(&r[name_len..], ".rs:", "source file extension")?;
    let r = digits(r, "line number")?;
    lit(r, "] ", "end of the source location")?;
    Ok(())
}

/// The epoch numbers of every "forking and execing new child process at
/// epoch N" line, in log order.
pub fn started_epochs(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| {
            message_of(l)
                .strip_prefix("forking and execing new child process at epoch ")?
                .parse()
                .ok()
        })
        .collect()
}
