//! Outside text (admin answers, helper output, requests) made fit for one
//! log line or control reply: escaped, so it cannot end the line or pose
//! as a line of the wrapper's own, and bounded, so it cannot flood it.

/// How many characters of outside text a log line or reply shows.
pub const SHOWN_CHARS: usize = 200;

/// `s` in double quotes, escaped as Rust's `escape_debug` does (newlines,
/// control characters, quotes and backslashes), at most [`SHOWN_CHARS`]
/// characters of it; a longer `s` ends in "…" and says its full length.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(SHOWN_CHARS * 2) + 2);
    out.push('"');
    let mut chars = s.chars();
    for c in chars.by_ref().take(SHOWN_CHARS) {
        out.extend(c.escape_debug());
    }
    out.push('"');
    if chars.next().is_some() {
        out.push_str(&format!("… ({} bytes)", s.len()));
    }
    out
}

/// `s` with its control characters escaped (no quotes, no bound): for text
/// already cut to size whose quotes and backslashes may stay as they are.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}
