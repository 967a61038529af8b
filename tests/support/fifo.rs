//! A FIFO that fixture children write one-line reports to (the soak
//! runs count thousands of them).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::fixtures::make_fifo;

/// A FIFO that fixtures write one-line reports to. The test holds it open
/// read-write, so a fixture's open never blocks and no writer closing it
/// ever reads as end of file.
pub struct ReadyFifo {
    fd: std::os::fd::OwnedFd,
    buf: Vec<u8>,
}

impl ReadyFifo {
    /// Make a FIFO at `path` and open it.
    pub fn create(path: &Path) -> ReadyFifo {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        make_fifo(path);
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; the descriptor is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0, "cannot open FIFO {}", path.display());
        ReadyFifo {
            // SAFETY: fd was just opened and nothing else owns it.
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
            buf: Vec::new(),
        }
    }

    /// The next line, or `None` if none came within `timeout`.
    pub fn line(&mut self, timeout: Duration) -> Option<String> {
        use std::os::fd::AsRawFd;
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            let mut chunk = [0u8; 4096];
            // SAFETY: reading into a local buffer of the given length.
            let n = unsafe { libc::read(pfd.fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n > 0 {
                self.buf.extend_from_slice(&chunk[..n as usize]);
            }
        }
    }
}
