//! Unit tests of the parent module.

use super::*;
use std::time::Duration;

fn recv(sock: &UnixDatagram) -> String {
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn path_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let listener = UnixDatagram::bind(&path).unwrap();
    let n = Notifier::new(path.as_os_str()).unwrap();
    n.ready("serving epoch 0 (PID=1)");
    assert_eq!(recv(&listener), "READY=1\nSTATUS=serving epoch 0 (PID=1)\n");
}

#[test]
fn abstract_socket() {
    let name = format!("hot-restarter-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixDatagram::bind_addr(&addr).unwrap();
    let n = Notifier::new(OsStr::new(&format!("@{name}"))).unwrap();
    n.reloading("restarting");
    let got = recv(&listener);
    assert!(got.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{got}");
    let usec: u64 = got.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..]
        .parse()
        .unwrap();
    assert!(usec > 0);
}

#[test]
fn other_addresses_are_refused() {
    assert!(Notifier::new(OsStr::new("vsock:2:1")).is_err());
}
