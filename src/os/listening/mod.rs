//! The listening TCP sockets a process holds: how the wrapper sees that a
//! drained Envoy generation has closed its listeners. The process's socket
//! inodes come from /proc/PID/fd; which of them listen, from the kernel's
//! sock_diag netlink interface filtered to LISTEN. (Reading /proc/net/tcp
//! instead means reading every socket of the namespace: under
//! connection-per-request load, thousands of TIME_WAIT rows, tens to
//! hundreds of milliseconds during which the loop would not act on a
//! signal.) /proc/PID/net/tcp stays as the fallback.

use std::collections::HashSet;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// How many TCP sockets in LISTEN state `pid` holds, leaving out those on
/// `except_port` (its admin's own listener, which stays open).
pub fn count_listening(pid: i32, except_port: Option<u16>) -> io::Result<usize> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue; // closed meanwhile
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<u64>().ok())
        {
            inodes.insert(inode);
        }
    }
    match listening_inodes() {
        Ok(listening) => Ok(listening
            .iter()
            .filter(|(inode, port)| {
                inodes.contains(&u64::from(*inode)) && Some(*port) != except_port
            })
            .count()),
        Err(e) => {
            log::debug!("sock_diag: {e}; reading /proc/{pid}/net/tcp instead");
            count_in_tables(pid, &inodes, except_port)
        }
    }
}

/// The fallback: the LISTEN rows of /proc/PID/net/tcp and tcp6.
fn count_in_tables(pid: i32, inodes: &HashSet<u64>, except_port: Option<u16>) -> io::Result<usize> {
    let mut count = 0;
    for table in ["tcp", "tcp6"] {
        // The tables of the process's own network namespace.
        let text = match std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        count += listening_in(&text, inodes, except_port);
    }
    Ok(count)
}

// ----- sock_diag ------------------------------------------------------------

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;

#[repr(C)]
#[derive(Clone, Copy)]
struct NlMsgHdr {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

/// `struct inet_diag_sockid`: ports and addresses in network byte order.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u32; 4],
    dst: [u32; 4],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req_v2`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Request {
    header: NlMsgHdr,
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: SockId,
}

/// `struct inet_diag_msg`, the part read here.
#[repr(C)]
#[derive(Clone, Copy)]
struct DiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: SockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

/// Every listening TCP socket of this network namespace, as (inode, local
/// port), asked of the kernel with a LISTEN-only filter.
fn listening_inodes() -> io::Result<Vec<(u32, u16)>> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned
    // at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = nix::sys::time::TimeVal::from(libc::timeval {
        tv_sec: Duration::from_secs(1).as_secs() as libc::time_t,
        tv_usec: 0,
    });
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)?;
    let mut found = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let request = Request {
            header: NlMsgHdr {
                len: size_of::<Request>() as u32,
                kind: SOCK_DIAG_BY_FAMILY,
                flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
                seq: u32::from(family),
                pid: 0,
            },
            family,
            protocol: libc::IPPROTO_TCP as u8,
            ext: 0,
            pad: 0,
            states: 1 << TCP_LISTEN,
            // SAFETY: an all-zero sockid is the "any socket" filter.
            id: unsafe { std::mem::zeroed() },
        };
        // SAFETY: a zeroed sockaddr_nl is the kernel's address (pid 0)
        // once the family is set.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sendto(2) of a plain repr(C) struct that lives across the
        // call, to an address of the size given.
        let sent = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                (&request as *const Request).cast(),
                size_of::<Request>(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        read_dump(&fd, &mut found)?;
    }
    Ok(found)
}

/// Read one dump's messages until NLMSG_DONE.
fn read_dump(fd: &OwnedFd, found: &mut Vec<(u32, u16)>) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: recv(2) into a buffer of the length given.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut rest = &buf[..n as usize];
        while rest.len() >= size_of::<NlMsgHdr>() {
            // SAFETY: at least a header's worth of bytes; read unaligned.
            let header: NlMsgHdr = unsafe { std::ptr::read_unaligned(rest.as_ptr().cast()) };
            let len = header.len as usize;
            if len < size_of::<NlMsgHdr>() || len > rest.len() {
                return Err(io::Error::other("sock_diag: a truncated message"));
            }
            match header.kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = rest
                        .get(size_of::<NlMsgHdr>()..size_of::<NlMsgHdr>() + 4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(-libc::EIO);
                    return Err(io::Error::from_raw_os_error(-code));
                }
                SOCK_DIAG_BY_FAMILY if len >= size_of::<NlMsgHdr>() + size_of::<DiagMsg>() => {
                    // SAFETY: the message holds a whole inet_diag_msg.
                    let msg: DiagMsg = unsafe {
                        std::ptr::read_unaligned(rest[size_of::<NlMsgHdr>()..].as_ptr().cast())
                    };
                    if u32::from(msg.state) == TCP_LISTEN {
                        found.push((msg.inode, u16::from_be_bytes(msg.id.sport)));
                    }
                }
                _ => {}
            }
            let step = (len + 3) & !3;
            rest = rest.get(step..).unwrap_or(&[]);
        }
    }
}

/// Count the LISTEN rows of a /proc/net/tcp{,6} table whose inode is in
/// `inodes` and whose local port is not `except_port`.
fn listening_in(table: &str, inodes: &HashSet<u64>, except_port: Option<u16>) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                return false;
            };
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            *state == "0A"
                && inode.parse().is_ok_and(|i: u64| inodes.contains(&i))
                && (except_port.is_none() || port != except_port)
        })
        .count()
}

#[cfg(test)]
mod tests;
