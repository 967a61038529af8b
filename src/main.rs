//! hot-restarter: hot-restart Envoy on SIGHUP, a drop-in replacement for
//! Envoy's `restarter/hot-restarter.py`.
//!
//! `main` only parses the flags, sets up logging, calls `run` and turns its
//! result into an exit code.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use hot_restarter::config::{self, Config, Flags};
use hot_restarter::control::server::ControlServer;
use hot_restarter::driver;
use hot_restarter::os::{logging, pid_file, reexec, sd_notify, setup, shm_check, signals};
use hot_restarter::watch;

fn main() -> ExitCode {
    // `NEW --handover-check N`: the old binary asks, before a reexec,
    // whether this one reads its hand-over.
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(reexec::CHECK_FLAG) {
        return ExitCode::from(reexec::answer_check(args.next().as_deref()) as u8);
    }
    setup::open_missing_stdio();
    reexec::remember_start();
    let incoming = reexec::take();
    // Block the handled signals before anything else, so that a SIGHUP sent
    // right after the wrapper was started does not kill it by default.
    let signals = match signals::Signals::new() {
        Ok(signals) => signals,
        Err(e) => {
            let message = format!("{e:#}");
            logging::early_error(&message);
            return give_up(incoming, &message, 1);
        }
    };
    config::forget_empty_variables();
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let message = format!("{} (try 'hot-restarter --help')", config::one_line(&e));
            logging::early_error(&message);
            return give_up(incoming, &message, 2);
        }
    };
    logging::init_with(flags.log_format);
    if incoming.is_none() {
        log::info!(
            "starting hot-restarter with target: {}",
            flags.start_script().display()
        );
    }
    let config = match Config::from_flags(flags) {
        Ok(config) => config,
        Err(e) => {
            log::error!("{e:#}");
            return give_up(incoming, &format!("{e:#}"), 2);
        }
    };
    if let Some(incoming) = incoming {
        return match resume(config, signals, &incoming) {
            Ok(code) => ExitCode::from(code as u8),
            Err(e) => {
                log::error!("{e:#}");
                give_up(Some(incoming), &format!("{e:#}"), 1)
            }
        };
    }
    match run(config, signals) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// This binary cannot go on. Started by a reexec, it must not lose the
/// children it inherited: the previous binary is executed again with the
/// hand-over (see `os::reexec`); only if that fails does it exit.
fn give_up(incoming: Option<reexec::Incoming>, why: &str, code: u8) -> ExitCode {
    if let Some(incoming) = incoming {
        logging::early_error("cannot take over after reexec: executing the previous binary again");
        let why = incoming.fall_back(&format!(
            "hot-restarter {} could not take over: {why}",
            env!("CARGO_PKG_VERSION")
        ));
        logging::early_error(&format!("cannot fall back after reexec: {why}"));
    }
    ExitCode::from(code)
}

/// The start after a reexec: the same set-up as `run` (the socket and the
/// pid file are adopted, not created), then the driver carries on from the
/// hand-over. An error before the driver runs is the caller's to fall back on.
fn resume(
    config: Config,
    mut signals: signals::Signals,
    incoming: &reexec::Incoming,
) -> Result<i32> {
    let handover = match &incoming.handover {
        Ok(handover) => handover.clone(),
        Err(e) => anyhow::bail!("cannot read the hand-over: {e:#}"),
    };
    setup::close_inherited_descriptors()?;
    if config.handoff_admin.is_some() {
        signals.add_usr2()?;
    }
    if config.subreaper {
        nix::sys::prctl::set_child_subreaper(true).context("cannot become a child subreaper")?;
    }
    // Watched afresh: what the files hold now is the baseline (a change
    // written during the exec itself is seen with the next one).
    let watcher = match config.watch.is_empty() {
        true => None,
        false => Some(watch::Watcher::new(&config.watch, config.watch_debounce)?),
    };
    let resources = driver::Resources {
        signals,
        notifier: sd_notify::Notifier::from_env(),
        pid_file: None,
        control: None,
        watcher,
    };
    incoming.taken_over();
    driver::Driver::resume(config, resources, handover, incoming.fallback.clone()).run()
}

/// Set the process up (descriptors, subreaper, signals, pid file, systemd)
/// and supervise until the end. Every child is gone when this returns.
fn run(config: Config, mut signals: signals::Signals) -> Result<i32> {
    setup::close_inherited_descriptors()?;
    shm_check::warn_about_shm();
    if config.handoff_admin.is_some() {
        signals.add_usr2()?;
        setup::warn_about_migrate_req();
    }
    if config.subreaper {
        nix::sys::prctl::set_child_subreaper(true).context("cannot become a child subreaper")?;
    }
    // Before anything that would have to be undone: a path that cannot be
    // watched stops the start with nothing left behind.
    let watcher = match config.watch.is_empty() {
        true => None,
        false => Some(watch::Watcher::new(&config.watch, config.watch_debounce)?),
    };
    let notifier = sd_notify::Notifier::from_env();
    // The socket before the pid file: binding refuses a socket another
    // wrapper answers on, and a wrapper refused there must not have
    // replaced that wrapper's pid file (and removed it on the way out).
    let control = match &config.control_socket {
        Some(path) => Some(ControlServer::bind(path)?),
        None => None,
    };
    let pid_file = match &config.pid_file {
        Some(path) => Some(pid_file::PidFile::create(path, std::process::id())?),
        None => None,
    };
    let resources = driver::Resources {
        signals,
        notifier,
        pid_file,
        control,
        watcher,
    };
    driver::Driver::new(config, resources).run()
}
