//! A stand-in for Envoy's admin, on 127.0.0.1 or a unix socket: it answers
//! `GET /server_info` with the state and epoch the test sets, or stays
//! silent, and counts the requests it was sent.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How the fake admin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `/server_info` with this state and restart epoch.
    Answer { state: String, epoch: u32 },
    /// Accept the connection and never answer.
    Silent,
}

pub fn live(epoch: u32) -> Mode {
    Mode::Answer {
        state: "LIVE".into(),
        epoch,
    }
}

pub fn initializing(epoch: u32) -> Mode {
    Mode::Answer {
        state: "INITIALIZING".into(),
        epoch,
    }
}

struct Shared {
    mode: Mutex<Mode>,
    requests: AtomicUsize,
    /// Request lines seen, e.g. "GET /server_info HTTP/1.1".
    lines: Mutex<Vec<String>>,
    stop: AtomicBool,
}

pub struct FakeAdmin {
    shared: Arc<Shared>,
    /// The address to pass to --envoy-admin.
    pub addr: String,
    /// Silent connections are kept open here until the admin is dropped.
    _held: Arc<Mutex<Vec<Box<dyn Send>>>>,
}

impl FakeAdmin {
    /// A fake admin on a free port of 127.0.0.1.
    pub fn tcp(mode: Mode) -> FakeAdmin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        FakeAdmin::serve(addr, mode, move || match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                Some(Box::new(s) as Box<dyn Conn>)
            }
            Err(_) => None,
        })
    }

    /// A fake admin on a unix socket at `path` (Envoy's admin `pipe`).
    pub fn unix(path: &Path, mode: Mode) -> FakeAdmin {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = path.display().to_string();
        FakeAdmin::serve(addr, mode, move || match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                Some(Box::new(s) as Box<dyn Conn>)
            }
            Err(_) => None,
        })
    }

    fn serve(
        addr: String,
        mode: Mode,
        mut accept: impl FnMut() -> Option<Box<dyn Conn>> + Send + 'static,
    ) -> FakeAdmin {
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            requests: AtomicUsize::new(0),
            lines: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let held: Arc<Mutex<Vec<Box<dyn Send>>>> = Arc::default();
        let (s, h) = (shared.clone(), held.clone());
        thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                let Some(mut conn) = accept() else {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                };
                s.requests.fetch_add(1, Ordering::SeqCst);
                let mode = s.mode.lock().unwrap().clone();
                match mode {
                    Mode::Silent => h.lock().unwrap().push(Box::new(conn)),
                    Mode::Answer { state, epoch } => {
                        let line = read_head(&mut *conn);
                        s.lines.lock().unwrap().push(line.clone());
                        let body = if line.starts_with("GET /server_info ") {
                            format!(
                                "{{\"state\":\"{state}\",\"hot_restart_version\":\"11.104\",\
                                 \"command_line_options\":{{\"restart_epoch\":{epoch}}}}}"
                            )
                        } else if line.starts_with("GET /hot_restart_version ") {
                            "11.104".to_string()
                        } else {
                            "OK\n".to_string()
                        };
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                }
            }
        });
        FakeAdmin {
            shared,
            addr,
            _held: held,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Connections accepted so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The request lines of the answered requests.
    pub fn request_lines(&self) -> Vec<String> {
        self.shared.lines.lock().unwrap().clone()
    }
}

impl Drop for FakeAdmin {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

pub trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Read a request head (bounded) and return its first line.
fn read_head(conn: &mut dyn Conn) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}
