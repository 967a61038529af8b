//! What the bench's figures are built from: the fixture and its FIFO, the
//! floor server, the wrapper under test, /proc readings and the table.

pub mod fixture;
pub mod floor_server;
pub mod procfs;
pub mod table;
pub mod wrapper;

use std::time::Duration;

/// The wrapper under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hot-restarter");
/// Its control client.
pub const CTL: &str = env!("CARGO_BIN_EXE_hot-restarter-ctl");
/// Anything the bench waits for; only reached when something is broken.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process, so
/// that a time taken in a fixture compares with one taken here.
pub fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}
