//! The control socket's file: created listening with mode 0600 and never
//! through a symlink, a stale one replaced only when nothing answers on it,
//! and removed at the end only if it is still the one created here.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
};
use nix::sys::stat::{Mode, SFlag, fchmod, lstat};

/// The socket file's mode: the wrapper's user only (root passes anyway).
const SOCKET_MODE: u32 = 0o600;

/// A listening unix socket and the file it is bound to.
#[derive(Debug)]
pub(super) struct SocketFile {
    pub(super) listener: UnixListener,
    pub(super) path: PathBuf,
    /// Device and inode of the file created here, until it is removed:
    /// another wrapper may have replaced it since.
    file: Option<(u64, u64)>,
}

impl SocketFile {
    /// Create the socket at `path`, listening with `backlog`, non-blocking
    /// and close-on-exec, with mode 0600. Whatever is at `path` already is
    /// looked at without following it: a symlink or a non-socket is an
    /// error; a socket something answers on is an error; a socket nothing
    /// answers on (ECONNREFUSED) is a stale one and is replaced.
    ///
    /// The mode is set with `fchmod` on the socket *before* `bind`: Linux
    /// creates the file with the socket inode's mode (minus the umask), so
    /// the file never exists with a wider mode. The umask is not touched
    /// (it is process-wide, and other threads may create files meanwhile);
    /// a `chmod` after `bind` would go through the path, which another
    /// process could have swapped for a symlink. Should the file still come
    /// out other than 0600 it is chmodded before `listen`, and until
    /// `listen` nobody can connect.
    pub(super) fn bind(path: &Path, backlog: i32) -> Result<SocketFile> {
        remove_stale(path)?;
        let shown = path.display();
        let (addr, fd) = stream_socket(path)?;
        fchmod(&fd, Mode::from_bits_truncate(SOCKET_MODE))
            .map_err(io::Error::from)
            .context("cannot set the control socket's mode")?;
        if let Err(e) = bind(fd.as_raw_fd(), &addr) {
            let hint = match (e, path.parent()) {
                (Errno::ENOENT, Some(dir)) => format!(" (does {} exist?)", dir.display()),
                _ => String::new(),
            };
            return Err(io::Error::from(e))
                .with_context(|| format!("cannot create control socket {shown}{hint}"));
        }
        let stat = lstat(path)
            .map_err(io::Error::from)
            .with_context(|| format!("cannot stat control socket {shown}"))?;
        let socket = SocketFile {
            listener: UnixListener::from(fd),
            path: path.to_path_buf(),
            // From here on, dropping it removes the file.
            file: Some((stat.st_dev, stat.st_ino)),
        };
        if stat.st_mode & 0o7777 != SOCKET_MODE {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
                .with_context(|| format!("cannot chmod control socket {shown}"))?;
        }
        listen(&socket.listener, Backlog::new(backlog)?)
            .map_err(io::Error::from)
            .with_context(|| format!("cannot listen on control socket {shown}"))?;
        Ok(socket)
    }

    /// The device and inode of the file created here, for a hand-over.
    pub(super) fn identity(&self) -> Option<(u64, u64)> {
        self.file
    }

    /// A socket handed over by the previous binary (`reexec`): the same
    /// listening descriptor, so a client connecting meanwhile waited in
    /// its backlog and is not refused.
    pub(super) fn adopt(listener: OwnedFd, path: PathBuf, file: Option<(u64, u64)>) -> SocketFile {
        SocketFile {
            listener: UnixListener::from(listener),
            path,
            file,
        }
    }

    /// Remove the file now if it is still the one created here.
    pub(super) fn unlink(&mut self) {
        let Some((dev, ino)) = self.file.take() else {
            return;
        };
        match lstat(&self.path) {
            Ok(st) if (st.st_dev, st.st_ino) == (dev, ino) => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    log::warn!("cannot remove control socket {}: {e}", self.path.display());
                }
            }
            // Gone, or replaced by another wrapper's: not ours to remove.
            _ => {}
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// Look at what is at `path` without following it, and remove it if it is
/// a socket that nothing answers on.
fn remove_stale(path: &Path) -> Result<()> {
    let shown = path.display();
    let stat = match lstat(path) {
        Ok(stat) => stat,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(io::Error::from(e))
                .with_context(|| format!("cannot inspect control socket path {shown}"));
        }
    };
    let kind = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits());
    if kind == SFlag::S_IFLNK {
        bail!("control socket path {shown} is a symlink: refusing to follow or replace it");
    }
    if kind != SFlag::S_IFSOCK {
        bail!("control socket path {shown} exists and is not a socket: refusing to replace it");
    }
    let (addr, probe) = stream_socket(path)?;
    match connect(probe.as_raw_fd(), &addr) {
        // EAGAIN: a listener whose backlog is full, which is alive too.
        Ok(()) | Err(Errno::EAGAIN) => bail!("another process answers on {shown}"),
        Err(Errno::ECONNREFUSED) => {
            // unlink never follows a symlink, even one swapped in meanwhile.
            match std::fs::remove_file(path) {
                Ok(()) => log::info!("removed stale control socket {shown}"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot remove stale control socket {shown}"));
                }
            }
            Ok(())
        }
        Err(e) => Err(io::Error::from(e))
            .with_context(|| format!("cannot tell whether anything answers on {shown}")),
    }
}

/// The address of `path` and a new non-blocking, close-on-exec unix
/// stream socket to bind or connect there.
fn stream_socket(path: &Path) -> Result<(UnixAddr, OwnedFd)> {
    let addr = UnixAddr::new(path)
        .map_err(io::Error::from)
        .with_context(|| format!("cannot use {} as a control socket path", path.display()))?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
    .context("cannot create a unix socket")?;
    Ok((addr, fd))
}

#[cfg(test)]
mod tests;
