//! Tests for the socket file: mode, descriptor flags, and what happens to
//! whatever was at the path before (stale, live, symlink, file, nothing).

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};

use super::*;

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ctl.sock");
    (dir, path)
}

#[test]
fn the_socket_has_mode_0600_and_a_non_blocking_close_on_exec_descriptor() {
    let (_dir, path) = temp();
    let socket = SocketFile::bind(&path, 8).unwrap();
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    let fd = socket.listener.as_fd().as_raw_fd();
    // SAFETY: fcntl F_GETFL/F_GETFD only read the flags of a descriptor
    // that `socket` keeps open.
    let (fl, fd_flags) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
        )
    };
    assert!(fl & libc::O_NONBLOCK != 0, "non-blocking");
    assert!(fd_flags & libc::FD_CLOEXEC != 0, "close-on-exec");
    assert!(UnixStream::connect(&path).is_ok(), "listening");
    drop(socket);
    assert!(!path.exists(), "removed on drop");
}

#[test]
fn a_stale_socket_is_replaced() {
    let (_dir, path) = temp();
    drop(UnixListener::bind(&path).unwrap()); // leaves the file behind
    assert!(path.exists());
    let _socket = SocketFile::bind(&path, 8).unwrap();
    assert!(UnixStream::connect(&path).is_ok(), "ours listens now");
}

#[test]
fn a_live_socket_is_left_alone() {
    let (_dir, path) = temp();
    let _live = UnixListener::bind(&path).unwrap();
    let err = SocketFile::bind(&path, 8).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("another process answers on {}", path.display())
    );
    assert!(UnixStream::connect(&path).is_ok(), "still the other one's");
}

#[test]
fn a_symlink_is_refused_and_its_target_untouched() {
    let (dir, path) = temp();
    let target = dir.path().join("precious");
    std::fs::write(&target, "keep me").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = SocketFile::bind(&path, 8).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("symlink"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o644);
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // A dangling symlink too: bind would otherwise create its target.
    std::fs::remove_file(&target).unwrap();
    assert!(SocketFile::bind(&path, 8).is_err());
    assert!(!target.exists());
}

#[test]
fn a_regular_file_is_refused() {
    let (_dir, path) = temp();
    std::fs::write(&path, "data").unwrap();
    let err = SocketFile::bind(&path, 8).unwrap_err().to_string();
    assert!(err.contains("exists and is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

#[test]
fn a_missing_directory_is_named_with_the_os_error() {
    let (dir, _) = temp();
    let path = dir.path().join("no-such-dir").join("ctl.sock");
    let err = format!("{:#}", SocketFile::bind(&path, 8).unwrap_err());
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

#[test]
fn unlink_and_drop_remove_only_the_file_created_here() {
    let (_dir, path) = temp();
    let mut socket = SocketFile::bind(&path, 8).unwrap();
    // Another wrapper took the path over meanwhile.
    std::fs::remove_file(&path).unwrap();
    let _other = UnixListener::bind(&path).unwrap();
    socket.unlink();
    drop(socket);
    assert!(
        UnixStream::connect(&path).is_ok(),
        "the other socket survived"
    );
}
