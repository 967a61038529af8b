//! The floor of a control-socket exchange: the least a server can do. The
//! bench binary, in floor-server mode, listens on a unix socket and answers
//! every connection with one fixed line (a reply the wrapper itself gave),
//! blocking in accept and read: no poll loop, no peer check, nothing
//! computed. The client, the reply and its parsing are the wrapper's own,
//! so the difference is what the wrapper's server adds.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::fixture::{Fixture, base};

/// The first argument that puts the bench binary in floor-server mode:
/// `ARG SOCKET FIFO REPLY`.
pub const FLOOR_SERVER_ARG: &str = "--hot-restarter-bench-floor-server";
/// The epoch word of the floor server's ready line.
const READY_WORD: &str = "floor";

/// Floor-server mode: bind `socket`, say `ready floor <pid> <ns>` on `fifo`,
/// then answer every request line with `reply`.
pub fn serve(socket: &str, fifo: &str, reply: &str) -> ! {
    // SAFETY: prctl on this process: die with the bench.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let listener = UnixListener::bind(socket).expect("floor server: cannot bind");
    let line = format!("{reply}\n");
    let ready = format!(
        "ready {READY_WORD} {} {}\n",
        std::process::id(),
        super::monotonic_ns()
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .and_then(|mut f| f.write_all(ready.as_bytes()))
        .expect("floor server: cannot report on the FIFO");
    let mut buf = [0u8; 1024];
    loop {
        let Ok((mut stream, _)) = listener.accept() else {
            continue;
        };
        // Read up to the end of the request line, then answer and close.
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) if buf[..n].contains(&b'\n') => {
                    let _ = stream.write_all(line.as_bytes());
                    break;
                }
                Ok(_) => {}
            }
        }
    }
}

/// A running floor server; killed and reaped on drop.
pub struct FloorServer {
    child: Child,
    path: PathBuf,
}

impl FloorServer {
    /// Start one on `fx.path(name)` answering `reply` (one line, without
    /// its `\n`) and wait until it listens.
    pub fn start(fx: &mut Fixture, name: &str, reply: &str) -> FloorServer {
        let path = fx.path(name);
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        base(&mut cmd)
            .arg(FLOOR_SERVER_ARG)
            .arg(&path)
            .arg(&fx.fifo.path)
            .arg(reply.trim_end_matches('\n'));
        let child = cmd.spawn().expect("cannot start the floor server");
        let ready = fx.fifo.ready();
        assert_eq!(ready.epoch, READY_WORD, "unexpected ready line");
        assert_eq!(ready.pid, child.id() as i32);
        FloorServer { child, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
