//! A helper's stderr, kept so that its last words can explain a skipped
//! reload: a memfd of bounded size (sealed against growing), read once the
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

/// The last few lines of `text`, for a one-line reason.
pub fn last_words(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    let chars: Vec<char> = tail.chars().collect();
    if chars.len() > 1000 {
        chars[chars.len() - 1000..].iter().collect()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn what_is_written_comes_back_and_the_size_is_bounded() {
        let cap = Capture::new().unwrap();
        let mut writer = cap.file.try_clone().unwrap();
        writer.write_all(b"first\nsecond\n").unwrap();
        assert_eq!(cap.take().unwrap(), b"first\nsecond\n");

        let cap = Capture::new().unwrap();
        let mut writer = cap.file.try_clone().unwrap();
        let big = vec![b'x'; LIMIT as usize];
        writer.write_all(&big).unwrap();
        assert!(writer.write_all(b"more").is_err(), "grew past the limit");
        assert_eq!(cap.take().unwrap().len(), LIMIT as usize);
    }

    #[test]
    fn last_words_are_the_last_three_lines() {
        assert_eq!(last_words(b"a\n\nb\nc\nd\n"), "b / c / d");
        assert_eq!(last_words(b""), "");
        assert_eq!(last_words(&[b'y'; 5000]).len(), 1000);
    }
}
