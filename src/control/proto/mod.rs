//! The control socket's wire protocol, version 1: the requests and replies
//! that `hot-restarter-ctl` and the wrapper exchange, with their parsers and
//! printers. No I/O happens here. The protocol itself (exchange, requests,
//! replies, `--wait`, versions, limits) is described once, in
//! docs/control-protocol.md; this module is its implementation.

use std::fmt;

use serde_json::{Map, Value};

use crate::core::{self, Command};

pub use super::status::{
    ChildStatus, Counters, LastReload, Status, child_state, phase_name, reload_result,
};

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;

/// The longest request line the wrapper reads, newline excluded. Requests
/// are under 100 bytes; the bound keeps a misbehaving client from making the
/// wrapper hold more than this (times the client limit) in memory.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// What a client asks the wrapper to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Report the wrapper's state.
    Status,
    /// The same as SIGHUP: start the next epoch. With `wait`, reply when
    /// that restart is done, skipped or failed.
    Reload { wait: bool },
    /// Start a new generation beside the serving one (`--handoff-admin`).
    Handoff { wait: bool },
    /// The same as SIGUSR1: every child reopens its logs.
    ReopenLogs,
    /// The same as SIGTERM: graceful shutdown. With `wait`, reply when the
    /// wrapper is about to exit.
    Stop { wait: bool },
    /// Execute the wrapper's binary afresh (same pid, same children). With
    /// `wait`, the new binary replies once it has taken over.
    Reexec { wait: bool },
}

impl Request {
    /// Parse one request line (a trailing `\n` or `\r\n` is allowed). The
    /// error is a sentence for the client, naming what is wrong.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let object = parse_object(line).map_err(|e| format!("malformed request: {e}"))?;
        match object.get("v") {
            None => {
                return Err(format!(
                    "malformed request: no protocol version \"v\" (this wrapper speaks {VERSION})"
                ));
            }
            Some(v) if v.as_u64() == Some(VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "unsupported protocol version {}: this wrapper speaks {VERSION}",
                    shown(v)
                ));
            }
        }
        let cmd = match object.get("cmd") {
            Some(Value::String(cmd)) => cmd.as_str(),
            None => return Err("malformed request: no command \"cmd\"".to_string()),
            Some(other) => {
                return Err(format!(
                    "malformed request: \"cmd\" must be a string, not {}",
                    shown(other)
                ));
            }
        };
        let wait = match object.get("wait") {
            None => None,
            Some(Value::Bool(wait)) => Some(*wait),
            Some(other) => {
                return Err(format!(
                    "malformed request: \"wait\" must be true or false, not {}",
                    shown(other)
                ));
            }
        };
        let request = match cmd {
            "status" => Request::Status,
            "reopen-logs" => Request::ReopenLogs,
            "reload" => Request::Reload {
                wait: wait.unwrap_or(false),
            },
            "handoff" => Request::Handoff {
                wait: wait.unwrap_or(false),
            },
            "stop" => Request::Stop {
                wait: wait.unwrap_or(false),
            },
            "reexec" => Request::Reexec {
                wait: wait.unwrap_or(false),
            },
            other => {
                return Err(format!(
                    "unknown command {}: known are status, reload, handoff, reopen-logs, stop, reexec",
                    shown(&Value::String(other.to_string()))
                ));
            }
        };
        if wait.is_some() && request.wait().is_none() {
            return Err(format!("malformed request: {cmd} takes no \"wait\""));
        }
        Ok(request)
    }

    /// The request's `cmd`.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Reload { .. } => "reload",
            Request::Handoff { .. } => "handoff",
            Request::ReopenLogs => "reopen-logs",
            Request::Stop { .. } => "stop",
            Request::Reexec { .. } => "reexec",
        }
    }

    /// `Some(wait)` for the commands that take `wait`.
    pub fn wait(&self) -> Option<bool> {
        match *self {
            Request::Reload { wait }
            | Request::Handoff { wait }
            | Request::Stop { wait }
            | Request::Reexec { wait } => Some(wait),
            Request::Status | Request::ReopenLogs => None,
        }
    }

    /// The request as one line, `\n` included.
    pub fn to_line(&self) -> String {
        match self.wait() {
            Some(wait) => format!(
                "{{\"v\":{VERSION},\"cmd\":\"{}\",\"wait\":{wait}}}\n",
                self.name()
            ),
            None => format!("{{\"v\":{VERSION},\"cmd\":\"{}\"}}\n", self.name()),
        }
    }
}

/// The wrapper's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The answer to [`Request::Status`].
    Status(Box<Status>),
    /// The command was carried out, e.g. "epoch 3 (PID=123) is ready".
    Done { detail: String },
    /// The command failed or was refused (a malformed request too), e.g.
    /// "preflight for epoch 2 failed: ...".
    Failed { reason: String },
}

impl Reply {
    /// The reply as one line, `\n` included. `v` comes first, so that a
    /// person reading the line sees the version before anything else.
    pub fn to_line(&self) -> String {
        match self {
            Reply::Status(status) => {
                format!(
                    "{{\"v\":{VERSION},\"ok\":true,\"status\":{}}}\n",
                    json(status)
                )
            }
            Reply::Done { detail } => {
                format!(
                    "{{\"v\":{VERSION},\"ok\":true,\"detail\":{}}}\n",
                    json(detail)
                )
            }
            Reply::Failed { reason } => {
                format!(
                    "{{\"v\":{VERSION},\"ok\":false,\"error\":{}}}\n",
                    json(reason)
                )
            }
        }
    }

    /// Parse one reply line (a trailing `\n` is allowed). The version is
    /// checked before anything else, so that a wrapper speaking another
    /// version is reported as such.
    pub fn parse(line: &[u8]) -> Result<Reply, ReplyError> {
        let object = parse_object(line).map_err(ReplyError::Malformed)?;
        let said = object
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string);
        match object.get("v") {
            Some(v) if v.as_u64() == Some(VERSION) => {}
            theirs => {
                return Err(ReplyError::Version {
                    theirs: theirs.map(shown),
                    said,
                });
            }
        }
        let malformed = |what: &str| Err(ReplyError::Malformed(what.to_string()));
        match object.get("ok") {
            Some(Value::Bool(true)) => {
                if let Some(status) = object.get("status") {
                    return serde_json::from_value(status.clone())
                        .map(Reply::Status)
                        .map_err(|e| ReplyError::Malformed(format!("bad \"status\": {e}")));
                }
                match object.get("detail") {
                    Some(Value::String(detail)) => Ok(Reply::Done {
                        detail: detail.clone(),
                    }),
                    _ => malformed("\"ok\": true without \"status\" or a \"detail\" string"),
                }
            }
            Some(Value::Bool(false)) => match said {
                Some(reason) => Ok(Reply::Failed { reason }),
                None => malformed("\"ok\": false without an \"error\" string"),
            },
            _ => malformed("no \"ok\": true or false"),
        }
    }
}

impl From<Request> for Command {
    fn from(request: Request) -> Command {
        match request {
            Request::Status => Command::Status,
            Request::Reload { wait } => Command::Reload { wait },
            Request::Handoff { wait } => Command::Handoff { wait },
            Request::ReopenLogs => Command::ReopenLogs,
            Request::Stop { wait } => Command::Stop { wait },
            Request::Reexec { wait } => Command::Reexec { wait },
        }
    }
}

impl From<&core::Reply> for Reply {
    fn from(reply: &core::Reply) -> Reply {
        match reply {
            core::Reply::Status(view) => Reply::Status(Box::new(Status::from(&**view))),
            core::Reply::Done { detail } => Reply::Done {
                detail: detail.clone(),
            },
            core::Reply::Failed { reason } => Reply::Failed {
                reason: reason.clone(),
            },
        }
    }
}

/// Why a reply line could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The reply's `v` is not [`VERSION`] (`theirs` as JSON text), or it has
    /// none (`None`). `said` is its `error`, if it has one.
    Version {
        theirs: Option<String>,
        said: Option<String>,
    },
    /// Not a JSON object, or fields missing or of the wrong type.
    Malformed(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Version { theirs, said } => {
                match theirs {
                    Some(v) => write!(
                        f,
                        "the wrapper speaks protocol version {v}, this hot-restarter-ctl speaks {VERSION}"
                    )?,
                    None => write!(
                        f,
                        "the wrapper's reply names no protocol version, this hot-restarter-ctl speaks {VERSION}"
                    )?,
                }
                match said {
                    Some(said) => write!(f, " (it said: {said})"),
                    None => Ok(()),
                }
            }
            ReplyError::Malformed(what) => write!(f, "malformed reply from the wrapper: {what}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// One line's JSON object, with the line ending removed first.
fn parse_object(line: &[u8]) -> Result<Map<String, Value>, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match serde_json::from_slice(line) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(format!("not a JSON object: {}", shown(&other))),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// A JSON value for an error message, cut short: it may be anything a
/// client sent.
fn shown(value: &Value) -> String {
    const MAX: usize = 40;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// A value as JSON text. Strings and `Status` (plain fields, string map
/// keys) cannot fail to serialize.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("a reply serializes to JSON")
}

#[cfg(test)]
mod tests;
