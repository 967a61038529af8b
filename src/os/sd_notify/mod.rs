//! systemd's readiness protocol (sd_notify) over `NOTIFY_SOCKET`.
//!
//! Written here rather than with the sd-notify crate because that crate
//! (0.5) connects to the variable's value as a path, so it cannot reach the
//! abstract-namespace sockets (`@name`) that systemd also hands out.

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use anyhow::{Context, Result, bail};
use nix::time::{ClockId, clock_gettime};

pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// A notifier for `NOTIFY_SOCKET`, or `None` when it is not set or
    /// cannot be used (logged: readiness notification is not worth failing
    /// the start of the proxy for).
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty())?;
        match Notifier::new(&value) {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                log::warn!("not notifying systemd: {e:#}");
                None
            }
        }
    }

    pub fn new(value: &OsStr) -> Result<Notifier> {
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(value),
            _ => bail!(
                "NOTIFY_SOCKET={}: only path and abstract (@) sockets are supported",
                value.to_string_lossy()
            ),
        }
        .with_context(|| format!("NOTIFY_SOCKET={}", value.to_string_lossy()))?;
        let socket = UnixDatagram::unbound().context("cannot create a notification socket")?;
        Ok(Notifier { socket, addr })
    }

    /// Send one notification; a failure is logged, never fatal: systemd
    /// not listening must not take the proxy down.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            log::warn!(
                "cannot notify systemd ({}): {e}",
                message.replace('\n', " ").trim_end()
            );
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}\n"));
    }

    pub fn reloading(&self, status: &str) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={status}\n",
            monotonic_usec()
        ));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping\n");
    }
}

/// CLOCK_MONOTONIC in microseconds, as systemd wants with RELOADING=1.
fn monotonic_usec() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
