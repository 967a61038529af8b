//! The control socket (`--control-socket PATH`) and `hot-restarter-ctl`:
//! the wire protocol ([`proto`]), the wrapper's non-blocking server
//! ([`server`], driven by the supervisor's poll loop) and the blocking
//! client the ctl binary uses ([`client`]).

pub mod check;
pub mod client;
pub mod ctl_cli;
pub mod proto;
pub mod server;
mod socket_file;
mod status;
