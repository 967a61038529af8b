//! The file-system half of `--watch` that is not inotify: which directory
//! entries a watched path depends on (its symlink chain) and a hash of what
//! the path reads as now.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::hash::Hasher;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::state::Snapshot;

/// Contents beyond this many bytes are not read: the hash then covers the
/// first `HASH_LIMIT` bytes, the length and the modification time, so a
/// change is still seen but a `touch` of such a file counts as one. Envoy's
/// configurations and certificates are far smaller.
pub const HASH_LIMIT: u64 = 8 << 20;

/// Links followed before giving up, as the kernel's ELOOP limit.
const MAX_HOPS: usize = 40;

/// A directory entry (directory, name) whose change can change what a path
/// reads as.
pub type Dep = (PathBuf, OsString);

/// Hashes what `path` reads as now, through its symlinks.
pub fn snapshot(path: &Path) -> Snapshot {
    match content_hash(path) {
        Ok(hash) => Snapshot::Content(hash),
        Err(e) => Snapshot::Missing(e.to_string()),
    }
}

/// SipHash (std's `DefaultHasher`, fixed keys) over the contents, read in
/// small chunks so a big file costs no memory.
pub fn content_hash(path: &Path) -> io::Result<u64> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer and stall the loop; only regular files are read.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let errno = if meta.is_dir() {
            libc::EISDIR
        } else {
            libc::EINVAL
        };
        return Err(io::Error::new(
            io::Error::from_raw_os_error(errno).kind(),
            format!(
                "not a regular file ({})",
                io::Error::from_raw_os_error(errno)
            ),
        ));
    }
    let mut hasher = std::hash::DefaultHasher::new();
    let mut limited = file.take(HASH_LIMIT);
    let mut buf = [0u8; 8192];
    let mut total = 0u64;
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.write(&buf[..n]);
        total += n as u64;
    }
    if total >= HASH_LIMIT {
        hasher.write_u64(meta.len());
        if let Ok(modified) = meta.modified() {
            hasher.write(format!("{modified:?}").as_bytes());
        }
    }
    Ok(hasher.finish())
}

/// The directory of `path`, made absolute and free of symlinks; `None` when
/// it cannot be resolved (missing for now).
fn real_parent(path: &Path) -> Option<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parent.canonicalize().ok()
}

/// The directory entries `path` depends on: its own name in its (real)
/// parent, then every hop of its symlink chain. A relative link target
/// contributes each of its components, which is how a kubelet volume's
/// `name -> ..data/name` depends on `..data` in the same directory; an
/// absolute target contributes its last name in its real parent. Entries
/// that do not exist yet still count (their creation matters).
pub fn deps(path: &Path) -> BTreeSet<Dep> {
    let mut out = BTreeSet::new();
    let Some(name) = path.file_name() else {
        return out;
    };
    let Some(dir) = real_parent(path) else {
        return out;
    };
    let mut todo = vec![(dir, name.to_os_string())];
    let mut hops = 0;
    while let Some((dir, name)) = todo.pop() {
        if !out.insert((dir.clone(), name.clone())) || hops >= MAX_HOPS {
            continue;
        }
        let entry = dir.join(&name);
        let Ok(target) = std::fs::read_link(&entry) else {
            continue;
        };
        hops += 1;
        if target.is_absolute() {
            if let (Some(parent), Some(last)) = (real_parent(&target), target.file_name()) {
                todo.push((parent, last.to_os_string()));
            }
            continue;
        }
        // Walk the relative target one name at a time from the link's
        // directory; a name that is itself a link is followed in turn.
        let mut cur = dir.clone();
        let comps: Vec<_> = target.components().collect();
        for (i, comp) in comps.iter().enumerate() {
            match comp {
                Component::Normal(n) => {
                    if i + 1 == comps.len() {
                        todo.push((cur.clone(), n.to_os_string()));
                    } else {
                        let step = cur.join(n);
                        if std::fs::symlink_metadata(&step)
                            .is_ok_and(|m| m.file_type().is_symlink())
                        {
                            todo.push((cur.clone(), n.to_os_string()));
                        } else {
                            out.insert((cur.clone(), n.to_os_string()));
                        }
                        match step.canonicalize() {
                            Ok(next) => cur = next,
                            Err(_) => break,
                        }
                    }
                }
                Component::ParentDir => {
                    cur = cur.parent().map(Path::to_path_buf).unwrap_or(cur);
                }
                _ => {}
            }
        }
    }
    out
}
