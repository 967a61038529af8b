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

/// Fork and exec `spec`. Returns the child's pid once `execve` has
/// succeeded, or the errno `execve` (or the child's set-up) failed with; a
/// child that failed to exec has already been reaped.
///
/// Must be called from the main thread: `PR_SET_PDEATHSIG` fires when the
/// thread that forked exits, not the process.
pub fn spawn(spec: &Spec) -> io::Result<Pid> {
    let argv: Vec<*const libc::c_char> = spec
        .argv
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = spec
        .envp
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
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

/// Say what an exec failure means for `script` when the errno alone
/// misleads: ENOENT for a file that exists is its `#!` interpreter missing
/// (or a `#!` line ending in a carriage return), EACCES for a directory is
/// not a permission problem. The file's first bytes are read by
/// [`exec_problem`], the same inspection the start-up check uses.
pub fn explain_exec_error(script: &Path, err: &io::Error) -> String {
    let mut text = format!("cannot execute {}: {err}", script.display());
    let meta = std::fs::metadata(script);
    let why = match (err.raw_os_error(), meta) {
        (Some(libc::EACCES), Ok(meta)) if meta.is_dir() => Some("it is a directory".to_string()),
        (Some(libc::EACCES), Ok(_)) if !executable(script) => {
            Some("is its execute bit set?".to_string())
        }
        // EACCES for an executable file: its interpreter is not executable.
        (Some(libc::ENOENT | libc::EACCES | libc::ENOEXEC), Ok(meta)) if meta.is_file() => {
            exec_problem(script)
        }
        (Some(libc::ENOEXEC), _) => Some("a script needs a #! line".to_string()),
        _ => None,
    };
    if let Some(why) = why {
        text.push_str(&format!(" ({why})"));
    }
    text
}

/// May this process execute `path` (access(2) with X_OK)?
fn executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// What keeps `execve` from running the regular file `path`, judged from
/// its first bytes the way the kernel reads them: a `#!` line ending in a
/// carriage return, a `#!` interpreter that is missing or not executable,
/// or neither a `#!` line nor an ELF header. None when it looks runnable,
/// and when it cannot be read (an execute-only binary: exec will tell).
pub fn exec_problem(path: &Path) -> Option<String> {
    exec_problem_with(path, Path::new(BINFMT_MISC))
}

/// Where the kernel lists the extra formats it runs (binfmt_misc).
const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// [`exec_problem`] with the binfmt_misc directory given, for tests.
fn exec_problem_with(path: &Path, binfmt_misc: &Path) -> Option<String> {
    // The kernel reads at most this much of the file (BINPRM_BUF_SIZE).
    const HEAD: u64 = 256;
    let mut head = Vec::new();
    File::open(path)
        .and_then(|f| f.take(HEAD).read_to_end(&mut head))
        .ok()?;
    if head.starts_with(b"\x7fELF") {
        return None;
    }
    let Some(line) = head.strip_prefix(b"#!") else {
        if binfmt_misc_claims(binfmt_misc, path, &head) {
            return None;
        }
        return Some(if head.is_empty() {
            "it is empty: a script needs a #! line".to_string()
        } else {
            "it has no #! line and is not an ELF binary".to_string()
        });
    };
    let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
    if line.ends_with(b"\r") {
        // The interpreter becomes "/bin/sh\r" (or its argument "-e\r").
        return Some(
            "its #! line ends in a carriage return: the file has CRLF (DOS) line endings"
                .to_string(),
        );
    }
    // As the kernel splits it: blanks before the interpreter, which ends at
    // the next blank; the rest is one argument.
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b)).unwrap_or(line.len());
    let interpreter = line[start..].split(blank).next().unwrap_or_default();
    if interpreter.is_empty() {
        return Some("its #! line names no interpreter".to_string());
    }
    let interpreter = Path::new(OsStr::from_bytes(interpreter));
    let shown = interpreter.display();
    match std::fs::metadata(interpreter) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some(format!("its interpreter {shown} cannot be found"))
        }
        Err(e) => Some(format!("its interpreter {shown} cannot be used: {e}")),
        Ok(meta) if !meta.is_file() => {
            Some(format!("its interpreter {shown} is not a regular file"))
        }
        Ok(_) if !executable(interpreter) => {
            Some(format!("its interpreter {shown} is not executable"))
        }
        Ok(_) => None,
    }
}

/// Does an enabled binfmt_misc entry under `dir` run `path`, whose first
/// bytes are `head`? Then a file without `#!` or ELF header may still be
/// executable (a registered interpreter for .jar files, say).
fn binfmt_misc_claims(dir: &Path, path: &Path, head: &[u8]) -> bool {
    let enabled = |text: &str| text.lines().next() == Some("enabled");
    if !std::fs::read_to_string(dir.join("status")).is_ok_and(|s| enabled(&s)) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let name = path.file_name().map(OsStr::as_bytes).unwrap_or_default();
    entries.flatten().any(|entry| {
        let file = entry.file_name();
        if file == "status" || file == "register" {
            return false;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            return false;
        };
        if !enabled(&text) {
            return false;
        }
        let field = |key: &str| text.lines().find_map(|l| l.strip_prefix(key));
        if let Some(ext) = field("extension .") {
            let mut suffix = b".".to_vec();
            suffix.extend_from_slice(ext.as_bytes());
            return name.ends_with(&suffix);
        }
        let hex = |h: &str| -> Option<Vec<u8>> {
            (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
                .collect()
        };
        let Some(magic) = field("magic ").and_then(hex) else {
            return false;
        };
        let offset: usize = field("offset ").and_then(|o| o.parse().ok()).unwrap_or(0);
        let mask = field("mask ").and_then(hex);
        let Some(bytes) = head.get(offset..offset.saturating_add(magic.len())) else {
            return false;
        };
        bytes.iter().zip(&magic).enumerate().all(|(i, (b, m))| {
            let k = mask
                .as_ref()
                .and_then(|mask| mask.get(i))
                .copied()
                .unwrap_or(0xff);
            b & k == m & k
        })
    })
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_replaces_any_inherited_one() {
        let spec = Spec::new(Path::new("x"), &[OsString::from("a")], 7).unwrap();
        let epochs: Vec<_> = spec
            .envp
            .iter()
            .filter(|e| e.as_bytes().starts_with(b"RESTART_EPOCH="))
            .collect();
        assert_eq!(epochs, vec![&CString::new("RESTART_EPOCH=7").unwrap()]);
        assert_eq!(spec.argv[0].as_bytes(), b"x");
        assert_eq!(spec.program.as_bytes(), b"x");
    }

    /// An executable file holding `body` in a fresh temp dir.
    fn file(body: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    #[test]
    fn exec_errors_are_explained() {
        let (dir, script) = file(b"#!/no/such/shell -e\n");
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let text = explain_exec_error(&script, &enoent);
        assert!(
            text.ends_with("(its interpreter /no/such/shell cannot be found)"),
            "{text}"
        );
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert!(explain_exec_error(dir.path(), &eacces).ends_with("(it is a directory)"));
        let missing = dir.path().join("missing");
        let text = explain_exec_error(&missing, &enoent);
        assert!(
            text.ends_with("No such file or directory (os error 2)"),
            "{text}"
        );
    }

    #[test]
    fn a_crlf_shebang_is_not_called_a_missing_interpreter() {
        // execve looks for "/bin/sh\r" and fails with ENOENT.
        let (_dir, script) = file(b"#!/bin/sh\r\necho hi\r\n");
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let text = explain_exec_error(&script, &enoent);
        assert!(
            text.ends_with(
                "No such file or directory (os error 2) (its #! line ends in a carriage \
                 return: the file has CRLF (DOS) line endings)"
            ),
            "{text}"
        );
        assert!(!text.contains("cannot be found"), "{text}");
    }

    #[test]
    fn a_file_without_a_shebang_is_explained_after_enoexec() {
        let (_dir, script) = file(b"echo hi\n");
        let enoexec = io::Error::from_raw_os_error(libc::ENOEXEC);
        let text = explain_exec_error(&script, &enoexec);
        assert!(
            text.ends_with("(it has no #! line and is not an ELF binary)"),
            "{text}"
        );
    }

    #[test]
    fn exec_problem_reads_the_first_line_as_the_kernel_does() {
        let cases: [(&[u8], Option<&str>); 11] = [
            (b"#!/bin/sh\nexit 0\n", None),
            (b"#! /bin/sh -e\n", None),
            (b"#!\t/bin/sh\n", None),
            (b"#!/bin/sh", None),
            (
                b"#!/bin/sh\r\n",
                Some("its #! line ends in a carriage return: the file has CRLF (DOS) line endings"),
            ),
            (
                b"#!/bin/sh -e\r\n",
                Some("its #! line ends in a carriage return: the file has CRLF (DOS) line endings"),
            ),
            (
                b"#!/no/such/sh\n",
                Some("its interpreter /no/such/sh cannot be found"),
            ),
            (b"#!\n", Some("its #! line names no interpreter")),
            (
                b"#!/tmp\n",
                Some("its interpreter /tmp is not a regular file"),
            ),
            (
                b"echo hi\n",
                Some("it has no #! line and is not an ELF binary"),
            ),
            (b"", Some("it is empty: a script needs a #! line")),
        ];
        for (body, expected) in cases {
            let (_dir, path) = file(body);
            assert_eq!(
                exec_problem(&path).as_deref(),
                expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let this = std::env::current_exe().unwrap();
        assert_eq!(exec_problem(&this), None, "an ELF binary");
    }

    #[test]
    fn an_interpreter_that_is_not_executable_is_named() {
        let (dir, interp) = file(b"#!/bin/sh\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&interp, std::fs::Permissions::from_mode(0o644)).unwrap();
        let script = dir.path().join("t");
        std::fs::write(&script, format!("#!{}\n", interp.display())).unwrap();
        // Root may execute any file with an execute bit, not one without.
        assert_eq!(
            exec_problem(&script),
            Some(format!(
                "its interpreter {} is not executable",
                interp.display()
            ))
        );
    }

    #[test]
    fn binfmt_misc_entries_can_claim_a_file_without_a_shebang() {
        let binfmt = tempfile::tempdir().unwrap();
        let (_dir, path) = file(b"PK\x03\x04 a jar");
        let status = binfmt.path().join("status");
        std::fs::write(&status, "enabled\n").unwrap();
        std::fs::write(binfmt.path().join("register"), "").unwrap();
        assert!(exec_problem_with(&path, binfmt.path()).is_some());
        std::fs::write(
            binfmt.path().join("jar"),
            "enabled\ninterpreter /usr/bin/jexec\nflags: \noffset 0\nmagic 504b0304\n",
        )
        .unwrap();
        assert_eq!(exec_problem_with(&path, binfmt.path()), None);
        // A mask, and an entry that does not match.
        std::fs::write(
            binfmt.path().join("jar"),
            "enabled\ninterpreter /x\nflags: \noffset 1\nmagic 4b00\nmask ff00\n",
        )
        .unwrap();
        assert_eq!(exec_problem_with(&path, binfmt.path()), None);
        std::fs::write(
            binfmt.path().join("jar"),
            "enabled\ninterpreter /x\nflags: \noffset 0\nmagic 7f454c46\n",
        )
        .unwrap();
        assert!(exec_problem_with(&path, binfmt.path()).is_some());
        // By extension; disabled entries and a disabled binfmt_misc do not count.
        std::fs::write(
            binfmt.path().join("jar"),
            "enabled\ninterpreter /x\nflags: \nextension .jar\n",
        )
        .unwrap();
        assert!(exec_problem_with(&path, binfmt.path()).is_some());
        let jar = path.with_extension("jar");
        std::fs::copy(&path, &jar).unwrap();
        assert_eq!(exec_problem_with(&jar, binfmt.path()), None);
        std::fs::write(&status, "disabled\n").unwrap();
        assert!(exec_problem_with(&jar, binfmt.path()).is_some());
    }

    #[test]
    fn nul_bytes_are_refused_with_a_reason() {
        let err = Spec::new(Path::new("x"), &[OsString::from("a\0b")], 0)
            .err()
            .unwrap();
        assert!(err.to_string().contains("script argument"));
    }
}
