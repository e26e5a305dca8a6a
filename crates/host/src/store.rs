//! Blob storage for sealed blobs, over the `object_store` crate: a local directory by default,
//! S3-compatible storage with the `s3` feature. The host never interprets a blob's contents.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;

use crate::HostError;

/// Longest blob name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Whether `name` is a valid blob name: 1–200 characters of `[a-z0-9._-]` in `/`-separated
/// segments, none empty, `.` or `..`.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        })
}

/// The lock file of a local store (not a valid blob name, so no blob can replace it).
pub const LOCK_FILE: &str = ".chiron-host.lock";

/// A host's exclusive claim on a local store, held until dropped (see [`BlobStore::claim`]).
pub struct StoreClaim {
    _file: std::fs::File,
}

/// A blob store.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// Opens the store a configuration names: a local directory (created if missing) or, with
    /// the `s3` feature, `s3://bucket/prefix`.
    pub fn open(location: &str) -> Result<Self, HostError> {
        if let Some(rest) = location.strip_prefix("s3://") {
            return open_s3(rest);
        }
        let dir = location.strip_prefix("file://").unwrap_or(location);
        std::fs::create_dir_all(dir)
            .map_err(|e| HostError::Store(format!("cannot create {dir}: {e}")))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| HostError::Store(format!("cannot open {dir}: {e}")))?;
        Ok(Self {
            inner: Arc::new(fs),
        })
    }

    /// Claims the store for this process: a second host on the same local directory would run
    /// a second enclave on the same jobs, each overwriting the other's records. The claim is
    /// an exclusive lock on `.chiron-host.lock` in the directory, which the kernel releases
    /// when the process exits however it exits. `Ok(None)` for S3 (no lock there: run one host
    /// per prefix).
    pub fn claim(location: &str) -> Result<Option<StoreClaim>, HostError> {
        if location.starts_with("s3://") {
            return Ok(None);
        }
        let dir = location.strip_prefix("file://").unwrap_or(location);
        std::fs::create_dir_all(dir)
            .map_err(|e| HostError::Store(format!("cannot create {dir}: {e}")))?;
        let path = std::path::Path::new(dir).join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| HostError::Store(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(HostError::Store(format!(
                    "another chiron-host serves the store {dir} (process {}); a store has one \
                     host at a time",
                    if holder.is_empty() { "unknown" } else { holder }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(HostError::Store(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        use std::io::{Seek, Write};
        // Who holds it, for the next host's error message.
        let _ = file.set_len(0);
        let _ = file.seek(std::io::SeekFrom::Start(0));
        let _ = writeln!(file, "{}", std::process::id());
        Ok(Some(StoreClaim { _file: file }))
    }

    fn path(name: &str) -> Result<StorePath, HostError> {
        if !valid_name(name) {
            return Err(HostError::Store(format!("invalid blob name {name:?}")));
        }
        StorePath::parse(name).map_err(|e| HostError::Store(format!("invalid blob name: {e}")))
    }

    /// Stores `data` under `name`, replacing any blob of that name.
    pub async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), HostError> {
        let path = Self::path(name)?;
        self.inner
            .put(&path, Bytes::from(data).into())
            .await
            .map_err(|e| HostError::Store(format!("cannot store {name}: {e}")))?;
        Ok(())
    }

    /// The blob `name`.
    pub async fn get(&self, name: &str) -> Result<Vec<u8>, HostError> {
        let path = Self::path(name)?;
        let got = self
            .inner
            .get(&path)
            .await
            .map_err(|e| HostError::Store(format!("cannot read {name}: {e}")))?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| HostError::Store(format!("cannot read {name}: {e}")))?;
        Ok(bytes.to_vec())
    }

    /// Names under `prefix` (a directory-like prefix such as `jobs`), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, HostError> {
        let path = Self::path(prefix)?;
        let mut names: Vec<String> = self
            .inner
            .list(Some(&path))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|e| HostError::Store(format!("cannot list {prefix}: {e}")))?;
        names.sort();
        Ok(names)
    }
}

#[cfg(feature = "s3")]
fn open_s3(rest: &str) -> Result<BlobStore, HostError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| HostError::Store(format!("cannot open s3://{rest}: {e}")))?;
    let inner: Arc<dyn ObjectStore> = if prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
    };
    Ok(BlobStore { inner })
}

#[cfg(not(feature = "s3"))]
fn open_s3(rest: &str) -> Result<BlobStore, HostError> {
    Err(HostError::Config(format!(
        "s3://{rest}: this chiron-host was built without S3 support (cargo build --features s3)"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["jobs/abc", "datasets/x-1.chd", "a"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "../x",
            "a/./b",
            "Upper",
            "a b",
            &"x".repeat(201),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_store_is_claimed_by_one_host_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap();
        let first = BlobStore::claim(location).unwrap();
        assert!(first.is_some());
        let e = BlobStore::claim(location).err().unwrap().to_string();
        assert!(e.contains("another chiron-host"), "{e}");
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        drop(first);
        assert!(BlobStore::claim(location).unwrap().is_some());
    }

    #[tokio::test]
    async fn put_get_list_round_trip_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().to_str().unwrap()).unwrap();
        store.put("jobs/b", vec![2; 10]).await.unwrap();
        store.put("jobs/a", vec![1; 3]).await.unwrap();
        store.put("models/a", vec![9]).await.unwrap();
        assert_eq!(store.get("jobs/b").await.unwrap(), vec![2; 10]);
        assert_eq!(store.list("jobs").await.unwrap(), vec!["jobs/a", "jobs/b"]);
        store.put("jobs/a", vec![7]).await.unwrap();
        assert_eq!(store.get("jobs/a").await.unwrap(), vec![7]);
        assert!(store.get("jobs/missing").await.is_err());
        assert!(store.put("../escape", vec![1]).await.is_err());
    }
}
