//! A stand-in for Envoy's admin that sends whatever bytes the test gives
//! it, on a free port of 127.0.0.1: for answers no real Envoy sends (a
//! forged log line in a body, a megabyte of state, an epoch of 2^64).
//! tests/common/fake_admin.rs covers well-formed answers.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

pub struct RawAdmin {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl RawAdmin {
    /// Answer every request with `response` (a whole HTTP response).
    pub fn tcp(response: Vec<u8>) -> RawAdmin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                // The request head ends with an empty line; its content
                // does not matter.
                let mut reader = BufReader::new(&conn);
                let mut line = String::new();
                let mut read = 0;
                while read < 65536 && reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    read += line.len();
                    line.clear();
                }
                let _ = conn.write_all(&response);
            }
        });
        RawAdmin { addr, stop }
    }
}

impl Drop for RawAdmin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// An HTTP/1.1 response with `status` and `body`.
pub fn response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A 200 `/server_info` with `state` (JSON text, quotes included) and
/// `epoch` (JSON text).
pub fn server_info(state_json: &str, epoch_json: &str) -> Vec<u8> {
    let body = format!(
        "{{\"state\":{state_json},\"hot_restart_version\":\"11.104\",\
         \"command_line_options\":{{\"restart_epoch\":{epoch_json}}}}}"
    );
    response("200 OK", body.as_bytes())
}
