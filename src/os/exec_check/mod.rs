//! Why the kernel will not run a file: the first bytes of a script or
//! binary read as `execve` reads them (a `#!` line ending in a carriage
//! return, an interpreter that is missing or not executable, neither `#!`
//! nor ELF), for the start-up check of helper scripts and to explain an
//! exec's errno.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

#[cfg(test)]
mod tests;
