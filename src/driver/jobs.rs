//! The driver's side of starting processes: the start script, helpers with
//! their environment (epoch, and with handoff the generation, slot and
//! admin address), and the output a preflight or the version probe leaves
//! in its capture, handed to the core before its exit.

use std::io::Write;

use nix::unistd::Pid;

use super::Driver;
use crate::core::{Event, Exit, Job, JobKind, slot};
use crate::os::spawn::{self, Spec};
use crate::os::stderr_capture::Capture;

impl Driver {
    /// What each reaped helper with a capture wrote goes to the core before
    /// its exit is; a preflight's stderr also goes on to the wrapper's.
    pub(super) fn collect_captures(&mut self, reaped: &[(Pid, Exit)]) {
        for (pid, _) in reaped {
            let Some(i) = self.captures.iter().position(|(p, _, _)| p == pid) else {
                continue;
            };
            let (pid, kind, capture) = self.captures.remove(i);
            match capture.take() {
                Ok(text) => {
                    if kind == JobKind::Preflight {
                        let _ = std::io::stderr().write_all(&text);
                    }
                    let text = String::from_utf8_lossy(&text).into_owned();
                    self.feed(Event::HelperOutput(pid, text));
                }
                Err(e) => log::warn!("cannot read the output of PID={pid}: {e}"),
            }
        }
    }

    /// Start a job; the error is explained for the log.
    pub(super) fn spawn(&mut self, job: Job) -> Result<Pid, String> {
        match job.kind {
            JobKind::Epoch | JobKind::ReadyCheck => self.spawn_with(job, None),
            JobKind::Preflight => {
                let capture = match Capture::new() {
                    Ok(capture) => Some(capture),
                    Err(e) => {
                        log::warn!("cannot keep the preflight's stderr: {e}");
                        None
                    }
                };
                self.spawn_captured(job, capture)
            }
            // Its output is its answer: without a capture it cannot run.
            JobKind::VersionProbe => match Capture::new() {
                Ok(capture) => self.spawn_captured(job, Some(capture)),
                Err(e) => Err(format!("cannot keep the output of --envoy-bin: {e}")),
            },
        }
    }

    fn spawn_captured(&mut self, job: Job, capture: Option<Capture>) -> Result<Pid, String> {
        let fd = capture.as_ref().map(Capture::raw_fd);
        let result = self.spawn_with(job, fd);
        if let (Ok(pid), Some(capture)) = (&result, capture) {
            self.captures.push((*pid, job.kind, capture));
        }
        result
    }

    fn spawn_with(&self, job: Job, stderr: Option<std::os::fd::RawFd>) -> Result<Pid, String> {
        if job.kind == JobKind::VersionProbe {
            return self.spawn_version_probe(stderr);
        }
        let script = match job.kind {
            JobKind::Epoch | JobKind::VersionProbe => &self.cfg.start_script,
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
                JobKind::Epoch | JobKind::VersionProbe => spec,
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

    /// `--envoy-bin PATH --hot-restart-version`, in a group of its own,
    /// both its outputs in the capture (Envoy prints the version on
    /// stderr).
    fn spawn_version_probe(&self, capture: Option<std::os::fd::RawFd>) -> Result<Pid, String> {
        let (Some(bin), Some(fd)) = (&self.cfg.envoy_bin, capture) else {
            return Err("no --envoy-bin".into());
        };
        Spec::new(bin, &["--hot-restart-version".into()], 0)
            .map(|spec| spec.own_group().stdout_to(fd).stderr_to(fd))
            .and_then(|spec| spawn::spawn(&spec))
            .map_err(|e| spawn::explain_exec_error(bin, &e))
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
