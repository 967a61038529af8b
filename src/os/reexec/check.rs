//! The checks of a new binary before a reexec executes it: the file, and
//! its answer to `--handover-check` within a time limit.

use super::*;

/// How long the new binary's check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// `NEW --handover-check N`, answered by this build.
pub fn answer_check(arg: Option<&str>) -> i32 {
    match arg.and_then(|a| a.parse::<u32>().ok()) {
        Some(n) if (HANDOVER_OLDEST..=HANDOVER_VERSION).contains(&n) => {
            println!(
                "hot-restarter {} reads handover {n}",
                env!("CARGO_PKG_VERSION")
            );
            0
        }
        _ => {
            eprintln!(
                "hot-restarter {} reads handover versions {HANDOVER_OLDEST} to {HANDOVER_VERSION}",
                env!("CARGO_PKG_VERSION")
            );
            1
        }
    }
}

/// Check what can be checked before the exec: the file is there, is a
/// regular executable file, and answers `--handover-check` for this
/// hand-over version as a hot-restarter. The error is the reason.
pub fn check(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK)
        .map_err(|e| format!("{shown} is not executable: {e}"))?;
    let mut cmd = Command::new(path);
    cmd.arg(CHECK_FLAG)
        .arg(HANDOVER_VERSION.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove(HANDOVER_ENV)
        .process_group(0);
    // The wrapper blocks the signals its signalfd reads, and `Command`
    // keeps the mask (rust-lang/rust#101077): the check starts with none
    // blocked, as every child of the wrapper does.
    // SAFETY: only sigprocmask, which is async-signal-safe, between fork
    // and exec, on a local empty set.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            match libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {shown} {CHECK_FLAG}: {e}"))?;
    // Its output is read as it comes and its exit waited for, both
    // bounded: this runs only on an operator's reexec request, and the
    // wrapper does nothing else meanwhile (see docs/operations.md).
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let pipes = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    let (ended, [out, err]) = read_to_end_until(pipes, deadline);
    let mut status = None;
    while ended && status.is_none() && Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(s)) => status = Some(s),
            // Its output has ended: it is exiting.
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(format!("cannot wait for {shown}: {e}")),
        }
    }
    let Some(status) = status else {
        // Its whole process group: a script's own children too.
        let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        return Err(format!(
            "{shown} {CHECK_FLAG} did not answer within {} s",
            CHECK_TIMEOUT.as_secs()
        ));
    };
    let (out, err) = (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    );
    let expected = format!(" reads handover {HANDOVER_VERSION}");
    if status.success() && out.starts_with("hot-restarter ") && out.trim_end().ends_with(&expected)
    {
        return Ok(());
    }
    let said = crate::core::quoted(err.trim().lines().next().unwrap_or(out.trim()));
    Err(format!(
        "{shown} is not a hot-restarter that reads hand-over version {HANDOVER_VERSION} \
         ({CHECK_FLAG} {status}: {said})"
    ))
}

/// Read both pipes until each ends or `deadline` passes, keeping the first
/// 4 KiB of each (the rest is read and dropped, so that a talkative child
/// never blocks on a full pipe). Returns whether both ended.
fn read_to_end_until(pipes: [Option<OwnedFd>; 2], deadline: Instant) -> (bool, [Vec<u8>; 2]) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut files = pipes.map(|p| p.map(std::fs::File::from));
    let mut kept = [Vec::new(), Vec::new()];
    let mut buf = [0u8; 4096];
    loop {
        let open: Vec<usize> = (0..2).filter(|i| files[*i].is_some()).collect();
        if open.is_empty() {
            return (true, kept);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (false, kept);
        }
        let mut fds: Vec<PollFd> = (open.iter())
            .filter_map(|i| files[*i].as_ref())
            .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
            .collect();
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return (false, kept),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(true)).collect();
        drop(fds);
        for (i, ready) in open.into_iter().zip(ready) {
            if !ready {
                continue;
            }
            let Some(file) = files[i].as_mut() else {
                continue;
            };
            match file.read(&mut buf) {
                Ok(0) => files[i] = None,
                Ok(n) => {
                    let room = 4096usize.saturating_sub(kept[i].len());
                    kept[i].extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => files[i] = None,
            }
        }
    }
}
