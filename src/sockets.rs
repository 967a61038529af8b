//! The listening TCP sockets a process holds, read from /proc: how the
//! wrapper sees that a drained Envoy generation has closed its listeners.

use std::collections::HashSet;
use std::io;

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
    let mut count = 0;
    for table in ["tcp", "tcp6"] {
        // The tables of the process's own network namespace.
        let text = match std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        count += listening_in(&text, &inodes, except_port);
    }
    Ok(count)
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
mod tests {
    use super::*;

    #[test]
    fn listen_rows_of_our_inodes_count_except_the_admin_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2710 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:26AD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 0100007F:2710 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0 100 0 0 10 0";
        let ours: HashSet<u64> = [111, 222, 333].into();
        // 0x2710 = 10000 listens; 0x26AD = 9901 is the admin; 333 is a
        // connection; 444 is not ours.
        assert_eq!(listening_in(table, &ours, Some(9901)), 1);
        assert_eq!(listening_in(table, &ours, None), 2);
    }

    #[test]
    fn our_own_listener_is_seen() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pid = std::process::id() as i32;
        assert!(count_listening(pid, None).unwrap() >= 1);
        let without = count_listening(pid, Some(port)).unwrap();
        assert_eq!(count_listening(pid, None).unwrap(), without + 1);
        drop(listener);
    }
}
