//! The data-directory lock: a platform (`up`, `platform` on SQLite) and a gateway node each hold
//! an exclusive lock on their data directory while they run, so a second process on the same
//! directory exits at once instead of opening the same database or removing the live node's
//! `running` marker.
//!
//! The lock is an OS file lock (`flock` on Unix) on `DIR/switchyard.lock`, held by an open file
//! for the life of the process: the OS releases it when the process ends, however it ends, so a
//! crash never leaves a stale lock behind. The holder's pid is written into the file for the
//! refusal message. The file itself is never removed (removing it would let a second process
//! lock a new file while the first still holds the old one).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::Context;

/// Name of the lock file inside a data directory.
pub const LOCK_FILE: &str = "switchyard.lock";

/// An exclusive lock on a data directory, released when dropped (or the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    // Held only for its lock.
    _file: File,
}

impl DataDirLock {
    /// Locks `dir` (which must exist) for `what` (e.g. "platform"), or fails at once naming
    /// the process that holds it.
    pub fn acquire(dir: &Path, what: &str) -> anyhow::Result<DataDirLock> {
        let path = dir.join(LOCK_FILE);
        // Not truncated on open: the holder's pid must survive a refused second open.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        // `File::try_lock` is std since 1.89, above the workspace's declared rust-version
        // (1.85; raising it turns on lints other crates do not pass yet). The toolchain used
        // to build and test Switchyard (1.95) has it, and it needs no crate or unsafe code.
        #[allow(clippy::incompatible_msrv)]
        let locked = file.try_lock();
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                anyhow::bail!("{}", refusal(dir, &path, what, holder(&mut file)));
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("locking {}", path.display()));
            }
        }
        write_pid(&mut file)
            .with_context(|| format!("writing the lock file {}", path.display()))?;
        Ok(DataDirLock { _file: file })
    }
}

fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_data()
}

/// The pid written by the holder, when it has written one yet.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn refusal(dir: &Path, path: &Path, what: &str, pid: Option<u32>) -> String {
    let by = match pid {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_string(),
    };
    format!(
        "the data directory {} is in use by {by} (lock {}); a second {what} cannot share it: \
         stop that process or use another data directory",
        dir.display(),
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path(), "platform").unwrap();
        let pid = std::process::id().to_string();
        let contents = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(contents.trim(), pid);
        // A second open file description conflicts even within one process (flock).
        let refused = DataDirLock::acquire(dir.path(), "platform").unwrap_err();
        let message = refused.to_string();
        assert!(message.contains(&format!("process {pid}")), "{message}");
        assert!(message.contains("in use"), "{message}");
        // The refusal left the holder's pid in place.
        let contents = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(contents.trim(), pid);
        drop(first);
        DataDirLock::acquire(dir.path(), "platform").unwrap();
    }
}
