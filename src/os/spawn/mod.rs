//! Starting a child: fork, reset the signal state, set the parent-death
//! signal, and `execve` the script directly.
//!
//! This is hand-written rather than `std::process::Command` because
//! `Command` execs through `execvp`, and glibc's `execvp` runs a file that has
//! no `#!` line through `/bin/sh` and searches `PATH` for bare names. The
//! Python wrapper uses `os.execl` (plain `execv`): a bare `start_envoy.sh`
//! is a path relative to the working directory, and a file the kernel
//! cannot execute is an error. Exec failures travel back over a close-on-exec pipe, as in
//! `Command`, so the caller gets the real errno.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

pub use crate::os::exec_check::{exec_problem, explain_exec_error};

use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, pipe2};

/// Everything a child needs, converted to C strings before the fork so that
/// the child allocates nothing between `fork` and `execve`.
pub struct Spec {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    quiet_stdout: bool,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    own_group: bool,
}

fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

impl Spec {
    /// A child running `script` with `args`, the wrapper's environment less
    /// `NOTIFY_SOCKET` (the wrapper is the service's main process, not its
    /// children), and `RESTART_EPOCH=epoch`. argv[0] is `script` as given.
    pub fn new(script: &Path, args: &[OsString], epoch: u32) -> io::Result<Spec> {
        // execve never searches PATH: a bare name is relative to the
        // working directory, and argv[0] is the script exactly as given.
        let program = cstring(script.as_os_str().as_bytes(), "script path")?;
        let mut argv = vec![program.clone()];
        for arg in args {
            argv.push(cstring(arg.as_bytes(), "script argument")?);
        }
        let mut envp = Vec::new();
        for (key, value) in std::env::vars_os() {
            if key == OsStr::new("RESTART_EPOCH") || key == OsStr::new("NOTIFY_SOCKET") {
                continue;
            }
            let mut entry = key.into_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            envp.push(cstring(&entry, "environment variable")?);
        }
        envp.push(cstring(
            format!("RESTART_EPOCH={epoch}").as_bytes(),
            "epoch",
        )?);
        Ok(Spec {
            program,
            argv,
            envp,
            quiet_stdout: false,
            stdout: None,
            stderr: None,
            own_group: false,
        })
    }

    /// Set an environment variable of the child, replacing any inherited
    /// one of the same name.
    pub fn env(mut self, key: &str, value: &str) -> io::Result<Spec> {
        let prefix = format!("{key}=");
        self.envp
            .retain(|e| !e.as_bytes().starts_with(prefix.as_bytes()));
        self.envp.push(cstring(
            format!("{key}={value}").as_bytes(),
            "environment variable",
        )?);
        Ok(self)
    }

    /// Send the child's stdout to `fd` (which must stay open until the
    /// spawn returns).
    pub fn stdout_to(mut self, fd: RawFd) -> Spec {
        self.stdout = Some(fd);
        self
    }

    /// Send the child's stderr to `fd` (which must stay open until the
    /// spawn returns), for a preflight whose message becomes the reason a
    /// reload was skipped.
    pub fn stderr_to(mut self, fd: RawFd) -> Spec {
        self.stderr = Some(fd);
        self
    }

    /// Send the child's stdout to /dev/null (for ready checks such as
    /// `curl -fs .../ready`, whose body would otherwise fill the log).
    pub fn quiet_stdout(mut self) -> Spec {
        self.quiet_stdout = true;
        self
    }

    /// Put the child in a process group of its own, so that it can be
    /// killed together with whatever it starts.
    pub fn own_group(mut self) -> Spec {
        self.own_group = true;
        self
    }
}

/// The pointers of `strings` followed by a null pointer: an `argv` or
/// `envp` for `execve`, valid while `strings` lives.
pub fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Fork and exec `spec`. Returns the child's pid once `execve` has
/// succeeded, or the errno `execve` (or the child's set-up) failed with; a
/// child that failed to exec has already been reaped.
///
/// Must be called from the main thread: `PR_SET_PDEATHSIG` fires when the
/// thread that forked exits, not the process.
pub fn spawn(spec: &Spec) -> io::Result<Pid> {
    let argv = null_terminated(&spec.argv);
    let envp = null_terminated(&spec.envp);
    let devnull: Option<OwnedFd> = if spec.quiet_stdout {
        Some(File::options().write(true).open("/dev/null")?.into())
    } else {
        None
    };
    let (err_read, err_write) = pipe2(OFlag::O_CLOEXEC)?;
    let parent = nix::unistd::getpid();

    // SAFETY: the wrapper is single-threaded (no crate it uses starts a
    // thread), and the child only makes async-signal-safe system calls on
    // memory prepared before the fork, then execs or `_exit`s.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let errno = child_setup_and_exec(
                &spec.program,
                &argv,
                &envp,
                spec.stdout.or(devnull.as_ref().map(|fd| fd.as_raw_fd())),
                spec.stderr,
                spec.own_group,
                parent,
            );
            let bytes = errno.to_ne_bytes();
            // SAFETY: plain write(2) and _exit(2) on a valid descriptor and a
            // stack buffer; nothing here returns into the parent's code.
            unsafe {
                libc::write(err_write.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        ForkResult::Parent { child } => {
            drop(err_write);
            let mut buf = [0u8; 4];
            let mut got = 0;
            let mut reader = File::from(err_read);
            // EOF with nothing read means the pipe was closed by a
            // successful execve (close-on-exec).
            loop {
                match reader.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        got += n;
                        if got == buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // Cannot tell whether it exec'd: do not leave an
                        // untracked child behind.
                        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                        let _ = waitpid(child, None);
                        return Err(e);
                    }
                }
            }
            if got == 0 {
                return Ok(child);
            }
            // The child wrote its errno and is exiting 127: reap it here so
            // that it never shows up as a child exit in the event loop.
            let _ = waitpid(child, None);
            Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)))
        }
    }
}

/// The child's side between `fork` and `execve`. Returns the errno of the
/// step that failed; on success it does not return.
fn child_setup_and_exec(
    program: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    stdout: Option<libc::c_int>,
    stderr: Option<libc::c_int>,
    own_group: bool,
    parent: Pid,
) -> i32 {
    // SAFETY: only async-signal-safe calls (rt_sigaction, sigprocmask,
    // prctl, getppid, dup2, setpgid, raise, execve) on pointers that stay valid until execve:
    // they point into the parent's `Spec`, which the forked copy still holds.
    unsafe {
        // Every disposition back to default: the wrapper ignores SIGPIPE
        // (Rust's runtime does), and an ignored signal survives execve.
        // The raw system call, because glibc's sigaction() refuses its two
        // internal real-time signals (32 and 33) with EINVAL, and an ignored
        // one would be inherited too. A zeroed kernel `struct sigaction` is
        // SIG_DFL with no flags and an empty mask.
        let dfl = [0u64; 4];
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                );
            }
        }
        // The wrapper blocks the signals it reads from a signalfd; the mask
        // survives execve, so empty it (rust-lang/rust#101077 is the same
        // trap for `Command`).
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            return errno();
        }
        // Die with the wrapper, even when it is SIGKILLed.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return errno();
        }
        // The wrapper may have died before prctl took effect: then the
        // death signal will never come, so deliver it now.
        if libc::getppid() != parent.as_raw() {
            libc::raise(libc::SIGTERM);
        }
        if let Some(fd) = stdout
            && libc::dup2(fd, libc::STDOUT_FILENO) < 0
        {
            return errno();
        }
        if let Some(fd) = stderr
            && libc::dup2(fd, libc::STDERR_FILENO) < 0
        {
            return errno();
        }
        if own_group && libc::setpgid(0, 0) != 0 {
            return errno();
        }
        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        errno()
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests;
