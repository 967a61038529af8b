//! A helper's output (a preflight's stderr, the version probe's output),
//! kept for the core, which reads a version or a reason in it: a memfd of bounded size (sealed against growing), read once the
//! helper has exited.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

/// How much of a helper's stderr is kept; writes beyond fail (EPERM), so a
/// runaway helper cannot fill memory.
pub const LIMIT: u64 = 64 * 1024;

pub struct Capture {
    file: File,
}

impl Capture {
    pub fn new() -> io::Result<Capture> {
        let fd = memfd_create(
            c"hot-restarter-helper-stderr",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let file = File::from(fd);
        // Pages are only used when written; the seal keeps the size.
        file.set_len(LIMIT)?;
        fcntl(
            &file,
            FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK),
        )?;
        Ok(Capture { file })
    }

    /// The descriptor to hand to the helper as its stderr.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// What the helper wrote. Its writes moved the shared file offset, which
    /// says how much there is.
    pub fn take(mut self) -> io::Result<Vec<u8>> {
        let written = self.file.stream_position()?.min(LIMIT);
        self.file.seek(SeekFrom::Start(0))?;
        let mut text = Vec::with_capacity(written as usize);
        (&mut self.file).take(written).read_to_end(&mut text)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
