//! The driver's side of starting processes: the start script, helpers with
//! their environment (epoch, and with handoff the generation, slot and
//! admin address), a preflight's kept stderr, and the `--envoy-bin
//! --hot-restart-version` probe.

use std::io::Write;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Driver;
use crate::core::Exit;
use crate::core::{Answer, Event, Job, JobKind, Query, slot};
use crate::os::spawn::{self, Spec};
use crate::os::stderr_capture::{self, Capture};

/// How long `--envoy-bin --hot-restart-version` may run.
const VERSION_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Driver {
    /// A preflight's stderr goes on to the wrapper's stderr as before, and
    /// its last lines to the core, before its exit is judged. The version
    /// probe's output is its answer.
    ///
    /// Returns the version answer to feed *after* the batch's exits: a crash
    /// in the same batch is judged before a comparison can start an epoch.
    pub(super) fn collect_captures(&mut self, reaped: &[(Pid, Exit)]) -> Option<Event> {
        let mut version = None;
        for (pid, exit) in reaped {
            if self
                .version_probe
                .as_ref()
                .is_some_and(|(p, _, _)| p == pid)
            {
                let (_, capture, _) = self.version_probe.take().expect("checked");
                let answer = version_answer(capture, *exit);
                version = Some(Event::Answered(Query::BinaryVersion, answer));
                continue;
            }
            let Some(i) = self.captures.iter().position(|(p, _)| p == pid) else {
                continue;
            };
            let (pid, capture) = self.captures.remove(i);
            match capture.take() {
                Ok(text) => {
                    let _ = std::io::stderr().write_all(&text);
                    self.feed(Event::HelperOutput(pid, stderr_capture::last_words(&text)));
                }
                Err(e) => log::warn!("cannot read the stderr of PID={pid}: {e}"),
            }
        }
        version
    }

    /// At exit: a version probe still running is killed with its group and
    /// reaped, like every other helper.
    pub(super) fn stop_version_probe(&mut self) {
        if let Some((pid, _, _)) = self.version_probe.take() {
            let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
            // SIGKILL cannot be refused: the wait is short.
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }

    /// Start `--envoy-bin PATH --hot-restart-version` (Envoy prints the
    /// version on stderr); its answer comes when it has exited.
    pub(super) fn probe_binary_version(&mut self) -> Option<Event> {
        let Some(bin) = self.cfg.envoy_bin.clone() else {
            return Some(Event::Answered(
                Query::BinaryVersion,
                Err("no --envoy-bin".into()),
            ));
        };
        let started = Capture::new().and_then(|capture| {
            let spec = Spec::new(&bin, &["--hot-restart-version".into()], 0)?
                .own_group()
                .stdout_to(capture.raw_fd())
                .stderr_to(capture.raw_fd());
            let pid = spawn::spawn(&spec)?;
            Ok((pid, capture))
        });
        match started {
            Ok((pid, capture)) => {
                let deadline = Instant::now() + VERSION_PROBE_TIMEOUT;
                self.version_probe = Some((pid, capture, deadline));
                None
            }
            Err(e) => Some(Event::Answered(
                Query::BinaryVersion,
                Err(spawn::explain_exec_error(&bin, &e)),
            )),
        }
    }

    /// A version probe that hangs is killed; its reaping then answers.
    pub(super) fn version_probe_timeout(&mut self) {
        if let Some((pid, _, deadline)) = &self.version_probe
            && Instant::now() >= *deadline
        {
            let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
        }
    }

    /// Start a job; the error is explained for the log.
    pub(super) fn spawn(&mut self, job: Job) -> Result<Pid, String> {
        if job.kind == JobKind::Preflight {
            let capture = match Capture::new() {
                Ok(capture) => Some(capture),
                Err(e) => {
                    log::warn!("cannot keep the preflight's stderr: {e}");
                    None
                }
            };
            let fd = capture.as_ref().map(Capture::raw_fd);
            let result = self.spawn_with(job, fd);
            if let (Ok(pid), Some(capture)) = (&result, capture) {
                self.captures.push((*pid, capture));
            }
            return result;
        }
        self.spawn_with(job, None)
    }

    fn spawn_with(&self, job: Job, stderr: Option<std::os::fd::RawFd>) -> Result<Pid, String> {
        let script = match job.kind {
            JobKind::Epoch => &self.cfg.start_script,
            JobKind::Preflight => self.cfg.preflight.as_ref().expect("preflight configured"),
            JobKind::ReadyCheck => self.cfg.ready_check.as_ref().expect("ready check set"),
        };
        let args = match job.kind {
            JobKind::Epoch => &self.cfg.script_args[..],
            _ => &[],
        };
        let spec = Spec::new(script, args, job.epoch).and_then(|spec| {
            let spec = self.generation_env(spec, job.generation)?;
            Ok(match job.kind {
                JobKind::Epoch => spec,
                // Helpers lead a process group of their own, so that killing
                // the group also kills what they started (`sh` running
                // `envoy --mode validate`, `curl`).
                JobKind::Preflight => match stderr {
                    Some(fd) => spec.own_group().stderr_to(fd),
                    None => spec.own_group(),
                },
                JobKind::ReadyCheck => spec.own_group().quiet_stdout(),
            })
        });
        spec.and_then(|spec| spawn::spawn(&spec))
            .map_err(|e| spawn::explain_exec_error(script, &e))
    }

    /// With handoff, every child learns its generation, its slot and its
    /// slot's admin address (for `--base-id` and the admin's address).
    fn generation_env(&self, spec: Spec, generation: u32) -> std::io::Result<Spec> {
        let Some(admin) = self.admin_addr(generation) else {
            return Ok(spec);
        };
        if self.cfg.handoff_admin.is_none() {
            return Ok(spec);
        }
        spec.env("HOT_RESTARTER_GENERATION", &generation.to_string())?
            .env("HOT_RESTARTER_SLOT", &slot(generation).to_string())?
            .env("HOT_RESTARTER_ENVOY_ADMIN", &admin.to_string())
    }
}

/// The hot-restart version the binary printed, or why there is none.
fn version_answer(capture: Capture, exit: Exit) -> Result<Answer, String> {
    let text = capture.take().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text).trim().to_string();
    match exit {
        Exit::Code(0) if !text.is_empty() => Ok(Answer::Version(
            text.lines().last().unwrap_or("").trim().to_string(),
        )),
        _ => Err(format!(
            "--envoy-bin --hot-restart-version {}: {text}",
            crate::core::describe(exit)
        )),
    }
}
