//! Fail-static snapshot cache: the last applied snapshot on disk, so a node restarted while the
//! platform is unreachable serves its last good configuration at once (SPEC §10).
//!
//! File format (`D/snapshot.json`): one header line, then the snapshot's JSON exactly as hashed
//! by the header:
//!
//! ```text
//! switchyard-snapshot-cache v1 sha256=<hex of the body> bytes=<body length>\n
//! {"format_version":1,"generation":7,...}
//! ```
//!
//! Two checks guard what is served: the file-level SHA-256 catches truncation and bit rot
//! anywhere in the file, and the snapshot's own content hash catches a body that was sealed
//! wrongly. A file that fails either is moved aside (`snapshot.json.corrupt`) and never served.
//! Writes go to a temporary file in the same directory, are fsynced, renamed over the old file
//! and the directory is fsynced, so a crash leaves either the old or the new file, never a mix.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use protocol::Snapshot;
use sha2::{Digest, Sha256};

/// File name of the cache inside the node's data directory.
pub const CACHE_FILE: &str = "snapshot.json";

const MAGIC: &str = "switchyard-snapshot-cache v1";

/// Largest cache file read back; matches the largest snapshot the link accepts.
const MAX_CACHE_BYTES: u64 = protocol::link::MAX_FRAME_BYTES as u64 + 4096;

/// Why the cache could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("snapshot cache {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was found on disk at start.
#[derive(Debug)]
pub enum CacheLoad {
    /// No cache file: the node has never applied a snapshot here.
    Missing,
    Loaded(Box<Snapshot>),
    /// The file failed a check; it was moved to `moved_to` (when the move worked).
    Corrupt {
        reason: String,
        moved_to: Option<PathBuf>,
    },
}

/// The snapshot cache of one data directory.
#[derive(Debug, Clone)]
pub struct SnapshotCache {
    dir: PathBuf,
}

impl SnapshotCache {
    pub fn new(dir: impl Into<PathBuf>) -> SnapshotCache {
        SnapshotCache { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(CACHE_FILE)
    }

    /// Writes `snapshot` atomically with its checksum header.
    pub fn store(&self, snapshot: &Snapshot) -> Result<(), CacheError> {
        let body = serde_json::to_vec(snapshot).expect("a snapshot serialises");
        let mut bytes = header(&body).into_bytes();
        bytes.extend_from_slice(&body);
        write_atomic(&self.dir, CACHE_FILE, &bytes, 0o600).map_err(|source| CacheError::Io {
            path: self.path(),
            source,
        })
    }

    /// Reads and checks the cache. A corrupt file is moved aside so that it is reported once
    /// and never served; the caller logs the outcome.
    pub fn load(&self) -> Result<CacheLoad, CacheError> {
        let path = self.path();
        let bytes = match read_limited(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CacheLoad::Missing);
            }
            Err(source) => return Err(CacheError::Io { path, source }),
        };
        match parse(&bytes) {
            Ok(snapshot) => Ok(CacheLoad::Loaded(Box::new(snapshot))),
            Err(reason) => {
                let aside = self.dir.join(format!("{CACHE_FILE}.corrupt"));
                let moved_to = std::fs::rename(&path, &aside).ok().map(|()| aside);
                Ok(CacheLoad::Corrupt { reason, moved_to })
            }
        }
    }
}

fn header(body: &[u8]) -> String {
    format!(
        "{MAGIC} sha256={} bytes={}\n",
        hex::encode(Sha256::digest(body)),
        body.len()
    )
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    // An oversized file is read only up to the limit; parse() then reports the length mismatch.
    let mut bytes = Vec::new();
    File::open(path)?
        .take(MAX_CACHE_BYTES)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Checks header, file checksum, length and the snapshot's own content hash.
fn parse(bytes: &[u8]) -> Result<Snapshot, String> {
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("no header line")?;
    let head = std::str::from_utf8(&bytes[..newline]).map_err(|_| "header is not UTF-8")?;
    let body = &bytes[newline + 1..];
    let rest = head
        .strip_prefix(MAGIC)
        .ok_or_else(|| format!("unknown header {:?}", truncate(head)))?;
    let mut sha = None;
    let mut len = None;
    for field in rest.split_whitespace() {
        if let Some(value) = field.strip_prefix("sha256=") {
            sha = Some(value);
        } else if let Some(value) = field.strip_prefix("bytes=") {
            len = value.parse::<usize>().ok();
        }
    }
    let (Some(sha), Some(len)) = (sha, len) else {
        return Err("header lacks sha256= or bytes=".into());
    };
    if body.len() != len {
        return Err(format!(
            "truncated or extended: header says {len} bytes, file has {}",
            body.len()
        ));
    }
    let actual = hex::encode(Sha256::digest(body));
    if actual != sha {
        return Err(format!("checksum mismatch: header {sha}, content {actual}"));
    }
    let snapshot = Snapshot::from_json(body).map_err(|e| format!("not a snapshot: {e}"))?;
    snapshot.verify_hash().map_err(|e| e.to_string())?;
    Ok(snapshot)
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Writes `name` in `dir` atomically and durably: temp file created with `mode`, fsync, rename,
/// fsync of the directory. The one such helper of the workspace (the CLI's secrets use it too).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name))?;
        // The rename is durable only once the directory entry is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::SnapshotConfig;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-cache-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn check_corrupt(tag: &str, damage: impl FnOnce(&mut Vec<u8>), expect: &str) {
        let dir = temp_dir(tag);
        let cache = SnapshotCache::new(&dir);
        cache
            .store(&Snapshot::new(3, SnapshotConfig::default()))
            .unwrap();
        let mut bytes = std::fs::read(cache.path()).unwrap();
        damage(&mut bytes);
        std::fs::write(cache.path(), &bytes).unwrap();
        match cache.load().unwrap() {
            CacheLoad::Corrupt { reason, moved_to } => {
                assert!(reason.contains(expect), "{tag}: {reason}");
                assert_eq!(moved_to, Some(dir.join("snapshot.json.corrupt")));
                assert!(!cache.path().exists());
            }
            other => panic!("{tag}: expected corrupt, got {other:?}"),
        }
        assert!(matches!(cache.load().unwrap(), CacheLoad::Missing));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn round_trip_with_owner_only_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("roundtrip");
        let cache = SnapshotCache::new(&dir);
        assert!(matches!(cache.load().unwrap(), CacheLoad::Missing));
        let snapshot = Snapshot::new(7, SnapshotConfig::default());
        cache.store(&snapshot).unwrap();
        let mode = std::fs::metadata(cache.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        match cache.load().unwrap() {
            CacheLoad::Loaded(loaded) => assert_eq!(*loaded, snapshot),
            other => panic!("expected loaded, got {other:?}"),
        }
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("snapshot.json")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corruption_is_detected() {
        check_corrupt("truncated", |b| b.truncate(b.len() - 5), "truncated");
        check_corrupt(
            "flipped",
            |b| {
                let last = b.len() - 3;
                b[last] ^= 0x01;
            },
            "checksum mismatch",
        );
        check_corrupt("header", |b| b[0] = b'X', "unknown header");
        check_corrupt("empty", Vec::clear, "no header line");
        // A body whose file checksum was recomputed but whose snapshot hash is wrong.
        check_corrupt(
            "resealed",
            |b| {
                let newline = b.iter().position(|c| *c == b'\n').unwrap();
                let mut snapshot = Snapshot::from_json(&b[newline + 1..]).unwrap();
                snapshot.generation = 99;
                let body = serde_json::to_vec(&snapshot).unwrap();
                *b = header(&body).into_bytes();
                b.extend_from_slice(&body);
            },
            "content hash mismatch",
        );
    }
}
