//! Process set-up at start-up: the three standard descriptors exist, no
//! other inherited descriptor reaches a child, and the kernel setting a
//! handoff relies on is checked.

use anyhow::{Context, Result};

/// A wrapper started with stdin, stdout or stderr closed would hand those
/// numbers to its own descriptors (the signalfd, pipes), and children would
/// inherit them as their stdio: put /dev/null there first.
pub fn open_missing_stdio() {
    for fd in 0..=2 {
        // SAFETY: fcntl(F_GETFD) only queries the descriptor; open() returns
        // the lowest free number, which is `fd` itself when it was closed.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
}

/// Children inherit stdin, stdout and stderr only: every other descriptor
/// the process was started with is marked close-on-exec.
pub fn close_inherited_descriptors() -> Result<()> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .context("cannot list /proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD only change the descriptor's flags; a
        // descriptor that is gone (the directory listing's own) gives EBADF,
        // which is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// With handoff, the old generation closes its listening sockets while
/// connections may still wait in their accept queues: Linux moves them to
/// the new generation's listener only with `net.ipv4.tcp_migrate_req=1`,
/// and resets them otherwise.
pub fn warn_about_migrate_req() {
    let path = "/proc/sys/net/ipv4/tcp_migrate_req";
    match std::fs::read_to_string(path) {
        Ok(value) if value.trim() == "0" => log::warn!(
            "net.ipv4.tcp_migrate_req is 0: connections still queued on the old generation's \
             listeners are reset when it closes them during a handoff; set it with \
             `sysctl -w net.ipv4.tcp_migrate_req=1`"
        ),
        Ok(_) => {}
        Err(e) => log::warn!("cannot read {path} ({e}): a handoff may reset queued connections"),
    }
}
