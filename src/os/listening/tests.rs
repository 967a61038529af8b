//! Unit tests of the parent module.

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

#[test]
fn the_kernel_lists_our_listener_as_listening() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let listening = listening_inodes().expect("sock_diag works here");
    assert!(
        listening.iter().any(|(_, p)| *p == port),
        "port {port} not in {listening:?}"
    );
    // A connected socket is not listed.
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_server, peer) = listener.accept().unwrap();
    let again = listening_inodes().unwrap();
    assert!(!again.iter().any(|(_, p)| *p == peer.port()));
}
