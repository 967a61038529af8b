//! Command-line flags and the typed configuration they are validated into.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use clap::builder::BoolishValueParser;

use crate::admin::AdminAddr;

/// The command line as clap sees it. Every option also reads an environment
/// variable, so that supervisors that only pass an environment can set it.
#[derive(Debug, Parser)]
#[command(
    name = "hot-restarter",
    version,
    override_usage = "hot-restarter [OPTIONS] START_SCRIPT [SCRIPT_ARGS...]",
    about = "Hot-restart Envoy on SIGHUP: a drop-in replacement for Envoy's restarter/hot-restarter.py",
    after_help = "Signals: SIGHUP starts the next restart epoch, SIGUSR1 is sent on to every child, \
SIGTERM or SIGINT shut down gracefully.\nExit codes: 0 clean shutdown or every child exited 0, \
1 a child or a start failed or children had to be killed, 2 usage error."
)]
pub struct Flags {
    /// Seconds to wait for children to exit after SIGTERM before killing them
    /// (the Python wrapper's fixed TERM_WAIT_SECONDS).
    #[arg(long, value_name = "SECONDS", env = "HOT_RESTARTER_TERM_WAIT", default_value = "30",
          value_parser = parse_seconds)]
    pub term_wait: Duration,

    /// On SIGTERM, SIGINT or `stop`, first drain the serving Envoys for up
    /// to SECONDS (POST /healthcheck/fail and /drain_listeners?graceful,
    /// then wait until no request is in flight), then stop them as usual.
    /// Needs --envoy-admin.
    #[arg(long, value_name = "SECONDS", env = "HOT_RESTARTER_DRAIN_ON_STOP",
          value_parser = parse_seconds)]
    pub drain_on_stop: Option<Duration>,

    /// Write the wrapper's pid to PATH (atomically) at start; remove it at exit.
    #[arg(long, value_name = "PATH", env = "HOT_RESTARTER_PID_FILE")]
    pub pid_file: Option<PathBuf>,

    /// Run SCRIPT before every restart (not the first start), with the new
    /// RESTART_EPOCH set; if it fails or times out the restart is skipped.
    #[arg(long, value_name = "SCRIPT", env = "HOT_RESTARTER_PREFLIGHT")]
    pub preflight: Option<PathBuf>,

    /// Seconds the preflight script may run before it is killed and the
    /// restart skipped.
    #[arg(long, value_name = "SECONDS", env = "HOT_RESTARTER_PREFLIGHT_TIMEOUT",
          default_value = "60", value_parser = parse_seconds)]
    pub preflight_timeout: Duration,

    /// A child that fails while another child still runs does not bring the
    /// others down: it is logged as a failed restart and the epoch is reused.
    #[arg(long, env = "HOT_RESTARTER_KEEP_SERVING", value_parser = BoolishValueParser::new())]
    pub keep_serving: bool,

    /// After starting an epoch, run SCRIPT until it exits 0; SIGHUPs that
    /// arrive meanwhile are held and coalesced into one restart.
    #[arg(long, value_name = "SCRIPT", env = "HOT_RESTARTER_READY_CHECK")]
    pub ready_check: Option<PathBuf>,

    /// Seconds an epoch may take to pass the ready check; longer is a failed
    /// restart.
    #[arg(long, value_name = "SECONDS", env = "HOT_RESTARTER_READY_TIMEOUT",
          default_value = "60", value_parser = parse_seconds)]
    pub ready_timeout: Duration,

    /// Seconds between two readiness checks [default: 0.1, or 0.02 with
    /// --envoy-admin].
    #[arg(long, value_name = "SECONDS", env = "HOT_RESTARTER_READY_INTERVAL",
          value_parser = parse_seconds)]
    pub ready_interval: Option<Duration>,

    /// Hold SIGHUPs (coalesced into one restart) while an older epoch is
    /// still draining: Envoy cuts off a draining epoch when the epoch after
    /// next starts [default: on with --envoy-admin, else off;
    /// --hold-while-draining=false turns it off].
    // require_equals: a bare `--hold-while-draining start.sh` must not take
    // the script as its value.
    #[arg(long, env = "HOT_RESTARTER_HOLD_WHILE_DRAINING", value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub hold_while_draining: Option<bool>,

    /// Envoy's admin address (IPv4:PORT, [IPv6]:PORT or an absolute unix
    /// socket path): an epoch is ready once its /server_info says LIVE for
    /// that epoch; SIGHUPs wait and coalesce until then.
    #[arg(long, value_name = "ADDR", env = "HOT_RESTARTER_ENVOY_ADMIN",
          value_parser = parse_admin)]
    pub envoy_admin: Option<AdminAddr>,

    /// A second admin address for side-by-side handoff: generation g of
    /// Envoy uses slot g % 2 (slot 0 --envoy-admin, slot 1 this one); SIGUSR2
    /// hands off to a new generation. Needs --envoy-admin.
    #[arg(long, value_name = "ADDR", env = "HOT_RESTARTER_HANDOFF_ADMIN",
          value_parser = parse_admin)]
    pub handoff_admin: Option<AdminAddr>,

    /// The Envoy binary the start script runs: when its --hot-restart-version
    /// differs from the running Envoy's, a reload becomes a handoff. Needs
    /// --handoff-admin.
    #[arg(long, value_name = "PATH", env = "HOT_RESTARTER_ENVOY_BIN")]
    pub envoy_bin: Option<PathBuf>,

    /// Serve hot-restarter-ctl on a unix socket at PATH (mode 0600; a stale
    /// socket file is replaced, anything else there is an error).
    #[arg(long, value_name = "PATH", env = "HOT_RESTARTER_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,

    /// Become a child subreaper, so that processes orphaned below the start
    /// script are re-parented to the wrapper and reaped by it.
    #[arg(long, env = "HOT_RESTARTER_SUBREAPER", value_parser = BoolishValueParser::new())]
    pub subreaper: bool,

    /// Reload (as SIGHUP does) when the contents of PATH change, however
    /// they are changed: written in place, renamed over, or a Kubernetes
    /// ConfigMap/Secret symlink swap. Repeatable; the environment variable
    /// takes a ':'-separated list. PATH's directory must exist.
    #[arg(long = "watch", value_name = "PATH", env = "HOT_RESTARTER_WATCH",
          value_delimiter = ':', action = clap::ArgAction::Append)]
    pub watch: Vec<PathBuf>,

    /// Seconds without a further change of a watched file before it is
    /// looked at (a burst of writes is one reload; at most 10 times this
    /// after the first change).
    #[arg(long, value_name = "SECONDS", env = "HOT_RESTARTER_WATCH_DEBOUNCE",
          default_value = "0.5", value_parser = parse_seconds)]
    pub watch_debounce: Duration,

    /// The wrapper's log lines: text (the Python wrapper's) or json (one
    /// object per line with pilot-agent's keys time, level, scope, msg,
    /// caller, and pid).
    #[arg(
        long,
        value_name = "FORMAT",
        env = "HOT_RESTARTER_LOG_FORMAT",
        default_value = "text",
        value_enum
    )]
    pub log_format: crate::os::logging::Format,

    /// START_SCRIPT starts one epoch (it should exec Envoy with
    /// --restart-epoch $RESTART_EPOCH); it is executed directly, without a
    /// shell or a PATH search. Every word after it, flags included, goes to
    /// it as SCRIPT_ARGS.
    // One positional whose first value is the script: clap's trailing var
    // arg takes everything after it, so `start.sh --help` reaches the
    // script instead of printing the wrapper's help (`env`/`timeout` style).
    #[arg(value_name = "START_SCRIPT", required = true, num_args = 1..,
          trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

impl Flags {
    /// The start script (the first word of the command).
    pub fn start_script(&self) -> PathBuf {
        PathBuf::from(&self.command[0])
    }
}

/// Treat an empty `HOT_RESTARTER_*` variable as unset, the way
/// `Environment=HOT_RESTARTER_PID_FILE=` is meant to clear a setting
/// (clap would call it a missing or invalid value).
pub fn forget_empty_variables() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| v.is_empty() && k.to_string_lossy().starts_with("HOT_RESTARTER_"))
        .map(|(k, _)| k)
        .collect();
    for key in empty {
        // SAFETY: called first thing in main, while the process has one
        // thread, so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(key) };
    }
}

/// A clap error as one line (supervisors' logs keep one line well), naming
/// the environment variable when the bad value came from one.
pub fn one_line(err: &clap::Error) -> String {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue};
    let text = err.to_string();
    let message = text.split("\n\n").next().unwrap_or("invalid usage");
    let message = message.strip_prefix("error: ").unwrap_or(message);
    let mut line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) {
        let long = arg
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_start_matches("--");
        let on_command_line = std::env::args().skip(1).any(|a| {
            a.strip_prefix("--")
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        });
        let command = Flags::command();
        let env = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env());
        if let (false, Some(env)) = (on_command_line, env)
            && std::env::var_os(env).is_some()
        {
            line.push_str(&format!(" (from {})", env.to_string_lossy()));
        }
    }
    line
}

/// The longest duration any `SECONDS` flag accepts: a year. Far beyond any
/// useful shutdown window or timeout, and far below what a deadline
/// (`Instant::now() + value`) can hold without overflowing.
pub const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;

/// Envoy's admin address; the error names the value.
fn parse_admin(text: &str) -> Result<AdminAddr, String> {
    text.parse()
}

/// Parse a number of seconds such as `30` or `0.5`, from 0 to
/// [`MAX_SECONDS`]. clap puts the flag and the value in front of the
/// message, so it only says what is wrong with the value. Shared with
/// hot-restarter-ctl's `--timeout`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = match text.trim().parse() {
        Ok(secs) if !f64::is_nan(secs) => secs,
        _ => return Err(format!("'{text}' is not a number of seconds")),
    };
    let max = MAX_SECONDS;
    let days = MAX_SECONDS / (24 * 60 * 60);
    if secs < 0.0 {
        return Err(format!(
            "'{text}' is negative: give a number of seconds from 0 to {max} ({days} days)"
        ));
    }
    if secs > max as f64 {
        return Err(format!(
            "'{text}' is too large: at most {max} seconds ({days} days)"
        ));
    }
    // In range and not NaN, so this cannot fail (-0 is zero).
    Duration::try_from_secs_f64(secs).map_err(|e| format!("'{text}': {e}"))
}

/// What the supervisor needs, validated: paths that will be executed are
/// known to be executable files before any child starts.
#[derive(Debug, Clone)]
pub struct Config {
    pub start_script: PathBuf,
    pub script_args: Vec<OsString>,
    pub term_wait: Duration,
    pub drain_on_stop: Option<Duration>,
    pub pid_file: Option<PathBuf>,
    pub preflight: Option<PathBuf>,
    pub preflight_timeout: Duration,
    pub keep_serving: bool,
    pub ready_check: Option<PathBuf>,
    pub ready_timeout: Duration,
    pub ready_interval: Duration,
    pub hold_while_draining: bool,
    pub envoy_admin: Option<AdminAddr>,
    pub handoff_admin: Option<AdminAddr>,
    pub envoy_bin: Option<PathBuf>,
    pub control_socket: Option<PathBuf>,
    pub subreaper: bool,
    /// `--watch`: files whose content changes are reloads.
    pub watch: Vec<PathBuf>,
    pub watch_debounce: Duration,
}

impl Config {
    /// Check the helper scripts up front: a preflight or ready check that
    /// cannot run would otherwise only show itself at the first reload.
    pub fn from_flags(flags: Flags) -> Result<Config> {
        for (what, value) in [
            ("--preflight-timeout", flags.preflight_timeout),
            ("--ready-timeout", flags.ready_timeout),
            (
                "--ready-interval",
                flags.ready_interval.unwrap_or(Duration::MAX),
            ),
        ] {
            // Zero would kill every preflight or epoch at once, or run the
            // ready check in a tight loop.
            if value.is_zero() {
                bail!("{what} must be more than 0 seconds");
            }
        }
        for (what, script) in [
            ("--preflight", &flags.preflight),
            ("--ready-check", &flags.ready_check),
        ] {
            if let Some(script) = script {
                check_executable(script).with_context(|| format!("{what} {}", script.display()))?;
            }
        }
        match (&flags.envoy_admin, &flags.handoff_admin, &flags.envoy_bin) {
            (None, Some(_), _) => bail!("--handoff-admin needs --envoy-admin"),
            (Some(a), Some(b), _) if a == b => bail!(
                "--handoff-admin {b} is the same address as --envoy-admin: two generations \
                 run side by side and need an admin address each"
            ),
            (_, None, Some(_)) => bail!("--envoy-bin needs --handoff-admin"),
            _ => {}
        }
        if flags.drain_on_stop.is_some() && flags.envoy_admin.is_none() {
            bail!("--drain-on-stop needs --envoy-admin: the drain goes through Envoy's admin");
        }
        if let Some(bin) = &flags.envoy_bin {
            check_executable(bin).with_context(|| format!("--envoy-bin {}", bin.display()))?;
        }
        for path in &flags.watch {
            check_watchable(path).with_context(|| format!("--watch {}", path.display()))?;
        }
        let admin = flags.envoy_admin.is_some();
        let mut command = flags.command.into_iter();
        let start_script = PathBuf::from(command.next().expect("clap requires a script"));
        Ok(Config {
            start_script,
            script_args: command.collect(),
            term_wait: flags.term_wait,
            drain_on_stop: flags.drain_on_stop,
            pid_file: flags.pid_file,
            preflight: flags.preflight,
            preflight_timeout: flags.preflight_timeout,
            keep_serving: flags.keep_serving,
            ready_check: flags.ready_check,
            ready_timeout: flags.ready_timeout,
            // A loopback request to Envoy's admin is cheap, and the interval
            // is the latency every reload pays.
            ready_interval: flags.ready_interval.unwrap_or(if admin {
                Duration::from_millis(20)
            } else {
                Duration::from_millis(100)
            }),
            // Envoy's epoch N+1 tells a still-draining N-1 to exit at once.
            hold_while_draining: flags.hold_while_draining.unwrap_or(admin),
            envoy_admin: flags.envoy_admin,
            handoff_admin: flags.handoff_admin,
            envoy_bin: flags.envoy_bin,
            control_socket: flags.control_socket,
            subreaper: flags.subreaper,
            watch: flags.watch,
            watch_debounce: flags.watch_debounce,
        })
    }
}

/// Fail unless the directory holding `path` exists: the file itself may
/// be missing (watched for its arrival), but a directory that is not there
/// is a typing error the wrapper cannot watch.
pub fn check_watchable(path: &std::path::Path) -> Result<()> {
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        bail!("not a file path");
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let meta = std::fs::metadata(dir).with_context(|| format!("directory {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(())
}

/// Fail unless `path` is a regular file this process may execute and
/// the kernel can run: an ELF binary, or a script whose `#!` line names an
/// interpreter that exists (and does not end in a carriage return).
pub fn check_executable(path: &std::path::Path) -> Result<()> {
    use nix::unistd::{AccessFlags, access};
    let meta = std::fs::metadata(path).context("cannot execute")?;
    if !meta.is_file() {
        bail!("cannot execute: not a regular file");
    }
    access(path, AccessFlags::X_OK)
        .map_err(std::io::Error::from)
        .context("cannot execute")?;
    if let Some(why) = crate::os::spawn::exec_problem(path) {
        bail!("cannot execute: {why}");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
