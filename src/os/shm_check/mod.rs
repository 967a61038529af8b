//! Start-up checks for what a container may lack: a writable /dev/shm,
//! where Envoy's hot restart keeps its shared memory. A warning, not an
//! error: the wrapper cannot tell whether the start script's Envoy uses hot
//! restart (or is Envoy at all).

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Where glibc's shm_open(3) creates Envoy's `envoy_shared_memory_<id>`.
pub const SHM_DIR: &str = "/dev/shm";

/// Warn, in one line, when [`SHM_DIR`] cannot hold a shared memory file:
/// Envoy would abort at its start with a backtrace instead.
pub fn warn_about_shm() {
    if let Some(e) = shm_problem(Path::new(SHM_DIR)) {
        log::warn!(
            "{SHM_DIR} cannot hold Envoy's shared memory ({e}): Envoy's hot restart creates \
             {SHM_DIR}/envoy_shared_memory_<10 x base-id> at every start and aborts without it; \
             mount a writable tmpfs there (in Kubernetes an emptyDir with medium: Memory)"
        );
    }
}

/// Why no file can be created in `dir`, if none can. The probe is a
/// nameless O_TMPFILE file, gone at close: nothing is left behind, even if
/// the wrapper is killed right here.
pub fn shm_problem(dir: &Path) -> Option<io::Error> {
    let probe = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .mode(0o600)
        .open(dir);
    match probe {
        Ok(_) => None,
        // A file system without O_TMPFILE (EISDIR on kernels before it):
        // ask whether the directory is there and writable.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            match std::fs::metadata(dir) {
                Err(e) => Some(e),
                Ok(meta) if !meta.is_dir() => Some(io::Error::from_raw_os_error(libc::ENOTDIR)),
                Ok(_) => {
                    use nix::unistd::{AccessFlags, access};
                    access(dir, AccessFlags::W_OK | AccessFlags::X_OK)
                        .err()
                        .map(io::Error::from)
                }
            }
        }
        Err(e) => Some(e),
    }
}

#[cfg(test)]
mod tests;
