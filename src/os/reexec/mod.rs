//! `reexec`'s system side: the path the wrapper was started from, the
//! checks of a new binary before it is executed, the hand-over document in
//! a sealed memfd, and the exec itself.
//!
//! The hand-over is a versioned JSON document (`Handover`) in a memfd
//! sealed against any change, its descriptor number in
//! `HOT_RESTARTER_HANDOVER`, which the new binary reads and removes at
//! once. JSON because serde is already there and a person can read it
//! (`/proc/PID/fd/N` during a hang); a memfd because it needs no file on
//! disk, cannot be seen by other users, and the seals guarantee the new
//! binary reads exactly what the old one wrote.

use std::ffi::{CString, OsString};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::core::Snapshot;

mod check;
pub use check::{answer_check, check};

/// The hand-over format this build writes and reads.
pub const HANDOVER_VERSION: u32 = 1;
/// The oldest hand-over format this build reads.
pub const HANDOVER_OLDEST: u32 = 1;
/// The environment variable naming the hand-over memfd.
pub const HANDOVER_ENV: &str = "HOT_RESTARTER_HANDOVER";
/// The environment variable naming a descriptor of the previous binary,
/// executed again should this one fail to take over.
pub const PREVIOUS_ENV: &str = "HOT_RESTARTER_PREVIOUS_EXE";
/// Set for the previous binary executed again, to why the new one could
/// not take over.
pub const FALLBACK_ENV: &str = "HOT_RESTARTER_REEXEC_FAILED";
/// The hidden first argument with which a new binary is asked whether it
/// reads a hand-over version: `NEW --handover-check N` prints
/// `hot-restarter VERSION reads handover N` and exits 0, or exits 1.
pub const CHECK_FLAG: &str = "--handover-check";

/// Everything the next binary needs beyond its own flags (it is executed
/// with the same arguments and environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handover {
    pub format: u32,
    /// The arguments the wrapper was started with (the previous binary is
    /// executed with them again should the new one fail to take over).
    #[serde(default)]
    pub argv: Vec<Vec<u8>>,
    /// The version of the binary that wrote it.
    pub from_version: String,
    pub core: Snapshot,
    /// The control socket's listening descriptor, and the identity of its
    /// file (device, inode), so that it is removed at exit only if still ours.
    pub listener: Option<RawFd>,
    pub socket_file: Option<(u64, u64)>,
    /// The control clients connected at the exec: those of `reexec
    /// --wait` (answered by the new binary), those still sending their
    /// request or reading a reply.
    pub clients: Vec<HandedClient>,
    /// The pid file written at the first start (left in place).
    pub pid_file: Option<PathBuf>,
}

/// A control client's connection, handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedClient {
    pub fd: RawFd,
    pub state: HandedState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandedState {
    /// Its request line so far.
    Reading(Vec<u8>),
    /// Waits for the reexec's answer.
    Waiting,
    /// The rest of its reply.
    Writing(Vec<u8>),
}

struct Start {
    exe: Option<PathBuf>,
    argv: Vec<OsString>,
}

static START: OnceLock<Start> = OnceLock::new();

/// Remember, at start, the path of the running binary (canonical, and
/// without the " (deleted)" the kernel appends once the file is replaced)
/// and the arguments, for a later reexec.
pub fn remember_start() {
    let exe = std::fs::read_link("/proc/self/exe").ok().map(|p| {
        let text = p.as_os_str().as_bytes();
        let text = text.strip_suffix(b" (deleted)").unwrap_or(text);
        PathBuf::from(std::ffi::OsStr::from_bytes(text))
    });
    let _ = START.set(Start {
        exe,
        argv: std::env::args_os().collect(),
    });
}

/// The arguments the wrapper was started with, for the hand-over.
pub fn argv() -> Vec<Vec<u8>> {
    START
        .get()
        .map(|s| s.argv.iter().map(|a| a.as_bytes().to_vec()).collect())
        .unwrap_or_default()
}

/// The path the wrapper was started from (and which a reexec executes).
pub fn exe_path() -> Option<&'static Path> {
    START.get()?.exe.as_deref()
}

/// Execute `path` with the start's arguments and the hand-over. Returns
/// only if the exec failed, with why; `keep` are the descriptors that must
/// survive the exec (their close-on-exec flag is cleared, and set again on
/// failure).
pub fn exec(path: &Path, handover: &Handover, keep: &[RawFd]) -> String {
    match try_exec(path, handover, keep) {
        Ok(never) => match never {},
        Err(e) => format!("{e:#}"),
    }
}

fn try_exec(path: &Path, handover: &Handover, keep: &[RawFd]) -> Result<std::convert::Infallible> {
    let start = START.get().context("the start was not recorded")?;
    let memfd = write_memfd(handover)?;
    let mut env = environment();
    env.push(CString::new(format!(
        "{HANDOVER_ENV}={}",
        memfd.as_raw_fd()
    ))?);
    let mut fds = keep.to_vec();
    fds.push(memfd.as_raw_fd());
    // The running binary, for a fall-back: /proc/self/exe opens it even
    // once the file at its path has been replaced, so it is opened only
    // now and costs no descriptor while the wrapper idles.
    let itself = std::fs::File::open("/proc/self/exe")
        .ok()
        .map(OwnedFd::from);
    if let Some(itself) = &itself {
        env.push(CString::new(format!(
            "{PREVIOUS_ENV}={}",
            itself.as_raw_fd()
        ))?);
        fds.push(itself.as_raw_fd());
    }
    let argv: Vec<CString> = (start.argv.iter())
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let prog = CString::new(path.as_os_str().as_bytes())?;
    for fd in &fds {
        set_cloexec(*fd, false);
    }
    let err = nix::unistd::execve(&prog, &argv, &env).unwrap_err();
    for fd in &fds {
        set_cloexec(*fd, true);
    }
    bail!("cannot execute {}: {err}", path.display())
}

fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: F_GETFD/F_SETFD change only the descriptor's flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            let flags = match on {
                true => flags | libc::FD_CLOEXEC,
                false => flags & !libc::FD_CLOEXEC,
            };
            libc::fcntl(fd, libc::F_SETFD, flags);
        }
    }
}

fn write_memfd(handover: &Handover) -> Result<OwnedFd> {
    let text = serde_json::to_vec(handover).context("cannot encode the hand-over")?;
    // SAFETY: memfd_create takes a valid C string and flags; the returned
    // descriptor is owned here and nowhere else.
    let fd = unsafe {
        libc::memfd_create(
            c"hot-restarter-handover".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create");
    }
    // SAFETY: fd was just created and is owned by nothing else.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(&text)
        .context("cannot write the hand-over")?;
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS on our own memfd.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot seal the hand-over");
    }
    Ok(OwnedFd::from(file))
}

/// What the previous binary left: the hand-over (or why it cannot be
/// read), the memfd holding it and a descriptor of the previous binary to
/// fall back on.
pub struct Incoming {
    pub handover: Result<Handover>,
    /// Set when this is the previous binary executed again because the new
    /// one could not take over: why not.
    pub fallback: Option<String>,
    memfd: Option<RawFd>,
    previous: Option<RawFd>,
}

/// The hand-over from the previous binary, if this process was started by
/// a reexec. The variables are removed at once (children must not see
/// them); the descriptors stay open until [`Incoming::taken_over`] or
/// [`Incoming::fall_back`].
pub fn take() -> Option<Incoming> {
    let value = std::env::var_os(HANDOVER_ENV)?;
    let previous = std::env::var_os(PREVIOUS_ENV)
        .and_then(|v| v.to_str()?.parse::<RawFd>().ok())
        // SAFETY: F_GETFD only checks that the descriptor is open.
        .filter(|fd| *fd > 2 && unsafe { libc::fcntl(*fd, libc::F_GETFD) } >= 0);
    let fallback = std::env::var_os(FALLBACK_ENV).map(|v| v.to_string_lossy().into_owned());
    // SAFETY: called at the very start of main, before any thread exists.
    unsafe {
        std::env::remove_var(HANDOVER_ENV);
        std::env::remove_var(PREVIOUS_ENV);
        std::env::remove_var(FALLBACK_ENV);
    }
    let memfd = value.to_str().and_then(|v| v.parse::<RawFd>().ok());
    Some(Incoming {
        handover: read_handover(&value, memfd),
        fallback,
        memfd,
        previous,
    })
}

impl Incoming {
    /// Taken over: the memfd and the previous binary's descriptor are
    /// closed.
    pub fn taken_over(&self) {
        for fd in [self.memfd, self.previous].into_iter().flatten() {
            // SAFETY: both were handed to this process alone; nothing else
            // owns them.
            unsafe { libc::close(fd) };
        }
    }

    /// This binary cannot take over: execute the previous one (from the
    /// descriptor of /proc/self/exe it opened before its exec, so a
    /// replaced file does not matter) with the same hand-over, so that it carries on with its
    /// children. Returns only if there is no previous binary or its exec
    /// failed, with why.
    pub fn fall_back(&self, why: &str) -> String {
        let Some(previous) = self.previous else {
            return "no previous binary to fall back on".into();
        };
        let Some(memfd) = self.memfd else {
            return "no hand-over to give back".into();
        };
        let argv: Vec<Vec<u8>> = match &self.handover {
            Ok(h) if !h.argv.is_empty() => h.argv.clone(),
            _ => std::env::args_os().map(|a| a.as_bytes().to_vec()).collect(),
        };
        let Ok(argv) = argv
            .into_iter()
            .map(CString::new)
            .collect::<Result<Vec<_>, _>>()
        else {
            return "an argument holds a NUL byte".into();
        };
        let mut env = environment();
        env.push(CString::new(format!("{HANDOVER_ENV}={memfd}")).expect("no NUL"));
        let why = why.replace('\0', " ");
        env.push(CString::new(format!("{FALLBACK_ENV}={why}")).expect("no NUL"));
        set_cloexec(memfd, false);
        // Executed from its descriptor: close-on-exec on it would close it
        // before the kernel reads a script; a binary does not care.
        // SAFETY: the descriptor was handed to this process alone and is
        // only borrowed for the call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(previous) };
        let err = nix::unistd::fexecve(fd, &argv, &env).unwrap_err();
        set_cloexec(memfd, true);
        format!("cannot execute the previous binary: {err}")
    }
}

/// The environment to pass on, without the hand-over variables.
fn environment() -> Vec<CString> {
    std::env::vars_os()
        .filter(|(k, _)| k != HANDOVER_ENV && k != PREVIOUS_ENV && k != FALLBACK_ENV)
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect()
}

fn read_handover(value: &std::ffi::OsStr, fd: Option<RawFd>) -> Result<Handover> {
    let fd = fd.with_context(|| {
        format!(
            "{HANDOVER_ENV}={}: not a descriptor",
            value.to_string_lossy()
        )
    })?;
    // SAFETY: F_GETFD only checks that the descriptor is open.
    if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        bail!("{HANDOVER_ENV}={fd}: no such descriptor");
    }
    // SAFETY: the previous binary left this memfd open for us; it is only
    // borrowed here (ManuallyDrop), and closed by `taken_over`.
    let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    file.seek(SeekFrom::Start(0))
        .context("cannot rewind the hand-over")?;
    let mut text = Vec::new();
    (&*file)
        .take(16 << 20)
        .read_to_end(&mut text)
        .context("cannot read the hand-over")?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).context("the hand-over is not JSON")?;
    let format = value.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
    if !(HANDOVER_OLDEST as u64..=HANDOVER_VERSION as u64).contains(&format) {
        bail!("hand-over version {format} is not one this binary reads");
    }
    serde_json::from_value(value).context("cannot read the hand-over")
}

/// Take ownership of a handed-over descriptor.
pub fn own(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD only checks that it is open.
    if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    set_cloexec(fd, true);
    // SAFETY: handed over to this process alone by the previous binary.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
