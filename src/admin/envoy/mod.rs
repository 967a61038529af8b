//! What the wrapper reads from Envoy's admin answers: the server state and
//! restart epoch from `/server_info`, the text of `/hot_restart_version`,
//! the requests in flight from `/stats?format=json`.

use serde_json::Value;

/// The parts of `GET /server_info` the wrapper decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// "PRE_INITIALIZING", "INITIALIZING", "LIVE" or "DRAINING".
    pub state: String,
    /// `command_line_options.restart_epoch`: which epoch answered. Right
    /// after a hot restart the previous epoch may still hold the admin
    /// address, so LIVE alone does not say the new epoch is up.
    pub restart_epoch: Option<u32>,
    /// `hot_restart_version`, e.g. "11.104" (Envoy 1.40).
    pub hot_restart_version: Option<String>,
    /// `uptime_current_epoch` ("12s": Envoy 1.40 gives whole seconds), to
    /// tell the Envoy the wrapper started from one that ran before it.
    pub uptime_current_epoch: Option<std::time::Duration>,
}

impl ServerInfo {
    pub fn is_live(&self) -> bool {
        self.state == "LIVE"
    }
}

/// Read a `/server_info` body. Envoy 1.40 writes `restart_epoch` as a JSON
/// number; a numeric string is accepted too, as protobuf's JSON mapping
/// allows for integers.
pub fn parse_server_info(body: &[u8]) -> Result<ServerInfo, String> {
    // Only the fields read here are built; the rest of the ~125 KB body
    // (the node, 500-odd extensions) is skipped without an allocation,
    // which keeps the wrapper's heap small while it polls every 20 ms.
    #[derive(serde::Deserialize)]
    struct Body {
        state: Option<Value>,
        command_line_options: Option<Options>,
        hot_restart_version: Option<Value>,
        uptime_current_epoch: Option<Value>,
    }
    #[derive(serde::Deserialize)]
    struct Options {
        restart_epoch: Option<Value>,
    }
    let v: Body =
        serde_json::from_slice(body).map_err(|e| format!("/server_info is not JSON: {e}"))?;
    let state = match v.state {
        Some(Value::String(s)) => s,
        Some(other) => {
            let other = describe(&other);
            return Err(format!("/server_info \"state\" is {other}, not a string"));
        }
        None => return Err("/server_info has no \"state\"".to_owned()),
    };
    let restart_epoch = match v.command_line_options.and_then(|o| o.restart_epoch) {
        None | Some(Value::Null) => None,
        Some(e) => Some(epoch(&e).ok_or_else(|| {
            let why = if is_whole(&e) {
                "out of range"
            } else {
                "not an epoch number"
            };
            let e = describe(&e);
            format!("/server_info command_line_options.restart_epoch is {e}, {why}")
        })?),
    };
    let hot_restart_version = match v.hot_restart_version {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    // Anything but protobuf's Duration form ("12s", "0.5s") is no uptime:
    // the answer still counts, as before this check existed.
    let uptime_current_epoch = match v.uptime_current_epoch {
        Some(Value::String(s)) => duration(&s),
        _ => None,
    };
    Ok(ServerInfo {
        state,
        restart_epoch,
        hot_restart_version,
        uptime_current_epoch,
    })
}

/// protobuf's JSON form of a Duration: decimal seconds with an "s".
fn duration(s: &str) -> Option<std::time::Duration> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    std::time::Duration::try_from_secs_f64(secs).ok()
}

/// The sum of the requests in flight in a `/stats?format=json` body
/// filtered to `http.*.downstream_rq_active`, leaving out `http.admin.`
/// (the admin counts the very request that asks). Envoy 1.40 writes
/// `{"stats":[{"name":"http.ingress.downstream_rq_active","value":1}]}`.
pub fn parse_in_flight(body: &[u8]) -> Result<u64, String> {
    #[derive(serde::Deserialize)]
    struct Body {
        stats: Vec<Stat>,
    }
    #[derive(serde::Deserialize)]
    struct Stat {
        name: String,
        value: Option<Value>,
    }
    let v: Body = serde_json::from_slice(body).map_err(|e| format!("/stats is not JSON: {e}"))?;
    let mut sum = 0u64;
    for stat in v.stats {
        if stat.name.starts_with("http.admin.") || !stat.name.ends_with(".downstream_rq_active") {
            continue;
        }
        let n = match &stat.value {
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        let n = n.ok_or_else(|| format!("/stats {} is not a count", stat.name))?;
        sum = sum.saturating_add(n);
    }
    Ok(sum)
}

fn epoch(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64()?.try_into().ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether `v` is a whole JSON number, of any size.
fn is_whole(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// A JSON value for an error message, short, and without serde_json's
/// serializer (whose float formatting alone adds ~36 KB to the binary).
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            // serde_json keeps a whole number beyond 64 bits (2^64) only
            // as a float.
            (_, _, Some(f)) if f.fract() == 0.0 => "a number beyond 64 bits".into(),
            _ => "a fraction".into(),
        },
        Value::String(s) => crate::core::quoted(s),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The text of `GET /hot_restart_version` (Envoy 1.40 sends "11.104" with
/// no newline; trimmed in case another version adds one).
pub fn parse_hot_restart_version(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim().to_owned()
}

#[cfg(test)]
mod tests;
