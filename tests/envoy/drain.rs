//! `--drain-on-stop` against real Envoy 1.40: a slow upstream (Python,
//! one thread per request, each answered after a few seconds) behind the
//! lab's Envoy, eight requests in flight, then a stop. With the flag every
//! request in flight is answered 200 and the wrapper exits 0 with no Envoy
//! left; without it the cut is reported (not asserted); a second SIGTERM
//! skips the drain; an upstream slower than the drain time is cut at the
//! drain deadline. Figures: `[envoy-drain ...]` lines on stderr
//! (--nocapture). The facts these rest on are in docs/draining.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::components::*;
use crate::envoy_lab::*;
use crate::support::*;
use nix::sys::signal::Signal;

/// How many requests are in flight at the stop.
const IN_FLIGHT: usize = 8;

/// The slow upstream: answers every request with 200 after
/// `sys.argv[1]` seconds; prints its port first.
const UPSTREAM: &str = r#"
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
delay = float(sys.argv[1])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        time.sleep(delay)
        body = b"slow\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
# Python's listen backlog of 5 drops the SYNs of a burst of 8 connects
# when the accept loop is slow (a loaded machine): their retransmission
# comes after 1 s, and Envoy's connect timeout answers 503 meanwhile.
ThreadingHTTPServer.request_queue_size = 64
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// Envoy in front of it: the admin (overridden by the lab's port through
/// ENVOY_ADMIN_PORT's value here), one listener, one route to the slow
/// cluster with a 60 s route timeout.
fn envoy_config(admin: &str, listen: u16, upstream: u16) -> String {
    format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}
static_resources:
  listeners:
  - name: http
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listen} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: slow, timeout: 60s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: slow
    type: STATIC
    connect_timeout: 10s
    load_assignment:
      cluster_name: slow
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {upstream} }}
"#
    )
}

/// The upstream process; killed on drop.
struct Upstream {
    child: Child,
    port: u16,
}

impl Upstream {
    fn start(delay_s: f64) -> Upstream {
        let mut child = Command::new("python3")
            .args(["-c", UPSTREAM, &delay_s.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the upstream's port");
        Upstream { child, port }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lab whose Envoy proxies to a slow upstream (answering after `delay_s`
/// seconds), with `--envoy-admin` and `flags`; Envoy's --drain-time-s is
/// 600 (Envoy's default) so that the listener keeps accepting through the
/// whole drain, as in production. Returns the upstream (kept until the
/// end of the test), the lab and its listener's port.
fn lab(name: &'static str, index: u32, flags: &[&str], delay_s: f64) -> (Upstream, Lab, u16) {
    lab_with(name, index, flags, delay_s, false)
}

/// As `lab`; with `handoff` the wrapper gets `--handoff-admin` too (the
/// lab adds both admin flags).
fn lab_with(
    name: &'static str,
    index: u32,
    flags: &[&str],
    delay_s: f64,
    handoff: bool,
) -> (Upstream, Lab, u16) {
    let up = Upstream::start(delay_s);
    let upstream = up.port;
    let setup = Setup {
        tag: "envoy-drain",
        flags,
        start: Start::Example,
        handoff,
    };
    let listen = free_ports().listen;
    let lab = Lab::start_with(name, index, setup, |dir: &Path, cmd: &mut Command| {
        let admin = Lab::admin_port_of(cmd);
        let config = dir.join("slow.yaml");
        std::fs::write(&config, envoy_config(&admin, listen, upstream)).unwrap();
        cmd.env("ENVOY_CONFIG", &config).env("ENVOY_DRAIN_S", "600");
        if !handoff {
            cmd.arg("--envoy-admin").arg(format!("127.0.0.1:{admin}"));
        }
    });
    lab.wait_live(0);
    (up, lab, listen)
}

/// One request on its own connection: the status, or None when the
/// connection ended without an answer (cut).
fn request(port: u16) -> thread::JoinHandle<Option<u16>> {
    thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(90))).ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: drain\r\n\r\n").ok()?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head);
        text.split_whitespace().nth(1)?.parse().ok()
    })
}

/// Envoy's `http.ingress.downstream_rq_active`, summed over the lab's
/// admins (both slots with handoff).
fn in_flight(lab: &Lab) -> Option<u64> {
    let slots: &[u8] = if lab.handoff { &[0, 1] } else { &[0] };
    let mut sum = 0;
    let mut any = false;
    for slot in slots {
        if let Some(n) = in_flight_on(lab.admin_port(*slot)) {
            sum += n;
            any = true;
        }
    }
    any.then_some(sum)
}

fn in_flight_on(port: u16) -> Option<u64> {
    let url = format!("http://127.0.0.1:{port}/stats?filter=http.ingress.downstream_rq_active");
    let text = curl(&[&url])?;
    text.split(':').nth(1)?.trim().parse().ok()
}

/// Start `IN_FLIGHT` requests and wait until Envoy has them all in flight.
fn start_requests(lab: &Lab, listen: u16) -> Vec<thread::JoinHandle<Option<u16>>> {
    let clients: Vec<_> = (0..IN_FLIGHT).map(|_| request(listen)).collect();
    let all = wait_until(Duration::from_secs(20), || {
        in_flight(lab) == Some(IN_FLIGHT as u64)
    });
    assert!(
        all,
        "never {IN_FLIGHT} requests in flight; {}",
        lab.w.output()
    );
    clients
}

/// A line starting with `prefix` was logged.
#[track_caller]
fn logged(lab: &Lab, prefix: &str) {
    let found = lab.w.messages_starting(prefix);
    assert!(
        !found.is_empty(),
        "no {prefix:?} line; output:\n{}",
        lab.w.output()
    );
}

/// No line starting with `prefix` was logged.
#[track_caller]
fn not_logged(lab: &Lab, prefix: &str) {
    assert!(
        lab.w.messages_starting(prefix).is_empty(),
        "a {prefix:?} line; output:\n{}",
        lab.w.output()
    );
}

/// Send SIGTERM, wait up to `limit` for the wrapper's exit, then for every
/// request in flight; print the figures (`[envoy-drain {what}: ...]`) and
/// check the exit code is 0 and that no Envoy is left. Returns (the time from the SIGTERM to the
/// exit, the requests answered 200, those cut or otherwise ended).
fn sigterm(
    lab: &mut Lab,
    clients: Vec<thread::JoinHandle<Option<u16>>>,
    limit: Duration,
    what: &str,
) -> (Duration, usize, usize) {
    let t = Instant::now();
    lab.w.signal(Signal::SIGTERM);
    let code = lab.w.wait_exit(limit).code();
    let took = t.elapsed();
    let statuses: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = statuses.iter().filter(|s| **s == Some(200)).count();
    let cut = statuses.len() - ok;
    eprintln!(
        "[envoy-drain {what}: {ok} answered 200, {cut} cut; SIGTERM to exit {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(code, Some(0), "{}", lab.w.output());
    lab.assert_no_envoy_left();
    (took, ok, cut)
}

#[needs(envoy, wrk, curl, python3)]
#[test]
fn a_drain_on_stop_lets_every_request_in_flight_finish() {
    let (_up, mut lab, listen) = lab("a drain 30", 40, &["--drain-on-stop", "30"], 4.0);
    let clients = start_requests(&lab, listen);
    let what = format!("a] --drain-on-stop 30, {IN_FLIGHT} requests in flight (4 s upstream)");
    let (_, ok, cut) = sigterm(&mut lab, clients, Duration::from_secs(90), &what);
    assert_eq!((ok, cut), (IN_FLIGHT, 0), "{}", lab.w.output());
    logged(&lab, "draining Envoy (epoch 0 (PID=");
    logged(&lab, "drained: no request in flight after");
}

#[needs(envoy, wrk, curl, python3)]
#[test]
fn without_the_flag_a_stop_cuts_the_requests_in_flight() {
    let (_up, mut lab, listen) = lab("b no drain", 41, &[], 4.0);
    let clients = start_requests(&lab, listen);
    let what = format!("b] no --drain-on-stop, {IN_FLIGHT} requests in flight (4 s upstream)");
    sigterm(&mut lab, clients, Duration::from_secs(60), &what);
    not_logged(&lab, "draining");
}

#[needs(envoy, wrk, curl, python3)]
#[test]
fn a_second_sigterm_skips_the_drain() {
    let (_up, mut lab, listen) = lab("c second SIGTERM", 42, &["--drain-on-stop", "60"], 30.0);
    let clients = start_requests(&lab, listen);
    lab.w.signal(Signal::SIGTERM);
    lab.w.wait_for_text("draining Envoy (epoch 0");
    let what = "c] second SIGTERM during the drain";
    let (_, ok, _) = sigterm(&mut lab, clients, Duration::from_secs(60), what);
    lab.w.assert_logged(
        "WARNING",
        "stop requested again while draining: skipping the rest of the drain",
    );
    not_logged(&lab, "drained");
    not_logged(&lab, "drain deadline");
    // The upstream answers after 30 s, the drain would have lasted 60 s:
    // the requests still in flight were cut by the SIGTERM that followed.
    assert_eq!(ok, 0, "{}", lab.w.output());
}

#[needs(envoy, wrk, curl, python3)]
#[test]
fn the_drain_deadline_ends_the_drain() {
    let (_up, mut lab, listen) = lab("d deadline", 43, &["--drain-on-stop", "2"], 30.0);
    let clients = start_requests(&lab, listen);
    let what = "d] --drain-on-stop 2, 30 s upstream";
    let (took, ok, _) = sigterm(&mut lab, clients, Duration::from_secs(60), what);
    logged(&lab, "drain deadline passed after");
    assert!(
        took >= Duration::from_secs(2),
        "stopped before the drain time: {took:?}"
    );
    assert_eq!(ok, 0, "{}", lab.w.output());
}

#[needs(envoy, wrk, curl, python3)]
#[test]
fn after_a_handoff_the_drain_goes_through_the_serving_generations_admin() {
    let flags = ["--drain-on-stop", "30"];
    let (_up, mut lab, listen) = lab_with("e handoff then drain", 46, &flags, 4.0, true);
    lab.w.signal(Signal::SIGUSR2);
    lab.wait_live_on(1, 0);
    // The old generation drains (Envoy's --drain-time-s, 600 here) and is
    // stopped once its listener is gone or after the wrapper's limit; the
    // drain at the stop must then reach generation 1 on slot 1's admin.
    let clients = start_requests(&lab, listen);
    let what = format!(
        "e] after a handoff, --drain-on-stop 30, {IN_FLIGHT} requests in flight (4 s upstream)"
    );
    let (_, ok, cut) = sigterm(&mut lab, clients, Duration::from_secs(90), &what);
    assert_eq!((ok, cut), (IN_FLIGHT, 0), "{}", lab.w.output());
    logged(&lab, "draining Envoy (");
    logged(&lab, "drained: no request in flight after");
}
