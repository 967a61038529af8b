//! hot-restarter-ctl's command line: the clap definitions, in the library
//! so that the man page and shell completions are generated from the very
//! definitions the binary parses with (`examples/gen-docs.rs`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::parse_seconds;

#[derive(Debug, Parser)]
#[command(
    name = "hot-restarter-ctl",
    version,
    about = "Control a running hot-restarter through its control socket",
    after_help = "Exit codes: 0 done, 1 the operation failed, 2 usage error, \
3 the wrapper is not running (nothing answers on the socket)."
)]
pub struct Cli {
    /// The wrapper's control socket (its --control-socket).
    #[arg(
        long,
        value_name = "PATH",
        env = "HOT_RESTARTER_CONTROL_SOCKET",
        global = true
    )]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print the wrapper's pid, phase, uptime, children, last reload and
    /// counters.
    Status {
        /// As the JSON object the wrapper sent.
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// As Prometheus text (for node_exporter's textfile collector);
        /// prints hot_restarter_up 0 when the wrapper is not running.
        #[arg(long)]
        prometheus: bool,
    },
    /// Exit 0 while a ready child serves (also while a reload is under
    /// way), 1 with the reason while none does or the wrapper is stopping:
    /// for exec probes (Kubernetes, monit, runit's check).
    Check {
        /// Bound on the exchange (default 10 s).
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
        timeout: Option<Duration>,
    },
    /// Hot restart: start the next epoch (SIGHUP).
    Reload(WaitArgs),
    /// Start a new generation beside the serving one (needs --handoff-admin).
    Handoff(WaitArgs),
    /// Every child reopens its logs (SIGUSR1).
    ReopenLogs,
    /// Graceful shutdown (SIGTERM). With --wait, return once the wrapper
    /// has stopped every child and is exiting.
    Stop(WaitArgs),
    /// Upgrade the wrapper itself: it executes the binary at the path it
    /// was started from, read afresh from disk, keeping its pid, its
    /// children (Envoy is not touched) and its state. With --wait, return
    /// once the new binary has taken over; exit 1 with the reason when the
    /// new binary is refused (the old one stays in charge).
    Reexec(WaitArgs),
    /// Start hot-restarter detached (own session, output to --log), and
    /// return once it answers on the socket with a child running.
    Start {
        /// Append the wrapper's (and the children's) output to FILE
        /// (default: /dev/null).
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// Give up after SECONDS (the wrapper is left running).
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
        timeout: Option<Duration>,
        /// hot-restarter's own arguments, after `--`.
        #[arg(last = true, required = true, value_name = "HOT_RESTARTER_ARGS")]
        args: Vec<OsString>,
    },
}

#[derive(Debug, Default, Args)]
pub struct WaitArgs {
    /// Return when the operation has finished, with its result.
    #[arg(long)]
    pub wait: bool,
    /// Bound on the whole exchange (default 10 s; with --wait 120 s, for
    /// stop 40 s).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub timeout: Option<Duration>,
}
