//! `--pid-file`: the wrapper's pid, written atomically, removed at exit.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A written pid file; dropping it removes the file if it still holds our
/// pid (another instance may have taken it over since).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    contents: String,
}

impl PidFile {
    /// The pid file the previous binary of this same process wrote
    /// (`reexec`): the pid is the same, so the file is left as it is.
    pub fn adopt(path: &Path, pid: u32) -> PidFile {
        PidFile {
            path: path.to_path_buf(),
            contents: format!("{pid}\n"),
        }
    }

    /// Write `pid` to `path` so that a reader never sees a partial file: the
    /// pid goes into a new file beside it, created exclusively and without
    /// following links (so a planted symlink cannot redirect the write),
    /// which is then renamed over `path`.
    pub fn create(path: &Path, pid: u32) -> Result<PidFile> {
        let contents = format!("{pid}\n");
        let name = path
            .file_name()
            .with_context(|| format!("cannot write pid file {}: no file name", path.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{pid}.tmp"));
        let tmp = path.with_file_name(tmp_name);
        write_new(&tmp, &contents)
            .and_then(|()| fs::rename(&tmp, path))
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
            .with_context(|| format!("cannot write pid file {}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            contents,
        })
    }
}

fn write_new(tmp: &Path, contents: &str) -> io::Result<()> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(tmp)
    };
    let mut file = match open() {
        // A leftover from a crashed wrapper that had the same pid, or a
        // planted link: remove the name itself (never its target) and retry.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(tmp)?;
            open()?
        }
        other => other?,
    };
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

impl Drop for PidFile {
    fn drop(&mut self) {
        match fs::read_to_string(&self.path) {
            Ok(text) if text == self.contents => {
                if let Err(e) = fs::remove_file(&self.path) {
                    log::warn!("cannot remove pid file {}: {e}", self.path.display());
                }
            }
            Ok(_) => log::info!(
                "pid file {} now holds another pid, leaving it",
                self.path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("cannot read pid file {}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests;
