//! Random-access reader: records and batches by index, decrypting chunks on demand through a
//! bounded cache, so datasets larger than memory can be used.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use zeroize::Zeroizing;

use crate::secret::SecretBytes;

use crate::header::{Dtype, Header, LABEL_BYTES, PREAMBLE_LEN};
use crate::key::{DataKey, MasterKey};
use crate::stream::ChunkCipher;
use crate::writer::all_finite;
use crate::{Error, Result};

/// Default bound on decrypted chunks kept in memory.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Where sealed bytes come from: a file, a buffer, or (later) a blob fetched from the host.
pub trait ChunkSource: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the source is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; an error if the source ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ChunkSource for File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl ChunkSource for [u8] {
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ChunkSource for Vec<u8> {
    fn len(&self) -> io::Result<u64> {
        ChunkSource::len(self.as_slice())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

impl<T: ChunkSource + ?Sized> ChunkSource for &T {
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

impl<T: ChunkSource + ?Sized> ChunkSource for Arc<T> {
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

/// One decrypted record. Zeroized on drop; `Debug` does not print its contents.
pub struct Record {
    /// Feature bytes in the schema's dtype (f32 little-endian).
    pub features: SecretBytes,
    /// Class label.
    pub label: u32,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Record({} feature bytes, label hidden)",
            self.features.len()
        )
    }
}

/// Several records gathered by index, features concatenated. Zeroized on drop.
pub struct Batch {
    /// Features of every record, in request order.
    pub features: SecretBytes,
    /// Labels, in request order.
    pub labels: Zeroizing<Vec<u32>>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Batch({} records, contents hidden)", self.labels.len())
    }
}

/// What a full verification established; nothing in it depends on record contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Chunks decrypted and authenticated.
    pub chunks: u64,
    /// Records checked (label in range, floats finite).
    pub records: u64,
    /// Plaintext bytes of records.
    pub plaintext_bytes: u64,
}

type Chunk = Arc<SecretBytes>;

/// Least-recently-used cache of decrypted chunks, bounded by a chunk count.
struct ChunkCache {
    capacity: usize,
    tick: u64,
    chunks: HashMap<u64, (Chunk, u64)>,
}

impl ChunkCache {
    fn get(&mut self, index: u64) -> Option<Chunk> {
        self.tick += 1;
        let tick = self.tick;
        self.chunks.get_mut(&index).map(|(c, used)| {
            *used = tick;
            Arc::clone(c)
        })
    }

    fn insert(&mut self, index: u64, chunk: Chunk) {
        if self.capacity == 0 {
            return;
        }
        while self.chunks.len() >= self.capacity {
            let oldest = self
                .chunks
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(&i, _)| i);
            match oldest {
                Some(i) => self.chunks.remove(&i),
                None => break,
            };
        }
        self.tick += 1;
        self.chunks.insert(index, (chunk, self.tick));
    }
}

/// An opened sealed dataset: the authenticated header plus on-demand, authenticated access to
/// its records.
pub struct SealedDataset<S: ChunkSource> {
    source: S,
    header: Header,
    class_names: Vec<String>,
    header_len: u64,
    cipher: ChunkCipher,
    chunk_count: u64,
    cache: Mutex<ChunkCache>,
}

impl SealedDataset<File> {
    /// Opens a sealed file with the owner's master key.
    pub fn open_path(path: &Path, key: &MasterKey) -> Result<Self> {
        let file = File::open(path).map_err(|e| {
            Error::Io(io::Error::new(
                e.kind(),
                format!("cannot open {}: {e}", path.display()),
            ))
        })?;
        Self::open(file, key)
    }
}

impl<S: ChunkSource> SealedDataset<S> {
    /// Reads and decodes the header only; needs no key. This is what `chiron dataset inspect`
    /// and the untrusted host see.
    pub fn read_header(source: &S) -> Result<(Header, Vec<u8>)> {
        let mut preamble = [0u8; PREAMBLE_LEN];
        source
            .read_exact_at(&mut preamble, 0)
            .map_err(|_| Error::InvalidHeader("file shorter than the preamble".into()))?;
        let body_len = Header::decode_preamble(&preamble)? as usize;
        let mut encoded = vec![0u8; PREAMBLE_LEN + body_len];
        encoded[..PREAMBLE_LEN].copy_from_slice(&preamble);
        source
            .read_exact_at(&mut encoded[PREAMBLE_LEN..], PREAMBLE_LEN as u64)
            .map_err(|_| Error::InvalidHeader("file ends inside the header".into()))?;
        Ok((Header::decode(&encoded)?, encoded))
    }

    /// Opens with the owner's master key: checks the key id, derives the dataset's data key, and
    /// checks that the file length is exactly what the header declares.
    pub fn open(source: S, key: &MasterKey) -> Result<Self> {
        let (header, encoded) = Self::read_header(&source)?;
        let key_id = key.id()?;
        if header.key_id != key_id {
            return Err(Error::WrongKey {
                expected: header.key_id.to_string(),
                given: key_id.to_string(),
            });
        }
        let data_key = key.data_key(&header.dataset_id)?;
        Self::finish_open(source, header, &encoded, &data_key)
    }

    /// Opens with a dataset's data key, as granted to an enclave. A wrong key is detected here
    /// when the dataset has sealed class names, otherwise when the first chunk fails
    /// authentication ([`SealedDataset::check_key`] reads it at once).
    pub fn open_with_data_key(source: S, key: &DataKey) -> Result<Self> {
        let (header, encoded) = Self::read_header(&source)?;
        Self::finish_open(source, header, &encoded, key)
    }

    fn finish_open(source: S, header: Header, encoded: &[u8], key: &DataKey) -> Result<Self> {
        let header_len = encoded.len() as u64;
        let chunk_count = header.chunk_count();
        let sealed_len = header.sealed_chunk_len();
        let expected_len = header_len + chunk_count * sealed_len;
        let actual_len = source.len()?;
        if actual_len < expected_len {
            return Err(Error::Truncated {
                expected_chunks: chunk_count,
                expected_len,
                actual_len,
                first_missing: actual_len.saturating_sub(header_len) / sealed_len,
            });
        }
        if actual_len > expected_len {
            return Err(Error::TrailingData {
                expected_len,
                actual_len,
            });
        }
        // Sealed names are opened here, so a wrong key or an edited header is refused at open
        // even for a dataset whose chunks are never read.
        let class_names = header.open_class_names(key)?;
        let capacity = (DEFAULT_CACHE_BYTES / header.chunk_size as usize).max(2);
        Ok(Self {
            cipher: ChunkCipher::new(key, encoded),
            class_names,
            source,
            header_len,
            chunk_count,
            cache: Mutex::new(ChunkCache {
                capacity,
                tick: 0,
                chunks: HashMap::new(),
            }),
            header,
        })
    }

    /// The class names, sealed ones opened (empty when the dataset names no classes).
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Bounds the cache of decrypted chunks to about `bytes` (at least two chunks, so a record
    /// spanning a chunk boundary never thrashes).
    pub fn with_cache_bytes(self, bytes: usize) -> Self {
        let capacity = (bytes / self.header.chunk_size as usize).max(2);
        if let Ok(mut cache) = self.cache.lock() {
            cache.capacity = capacity;
            cache.chunks.clear();
        }
        self
    }

    /// The authenticated-on-use header (every chunk binds it, so any record read confirms it).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Number of chunks in the file.
    pub fn chunk_count(&self) -> u64 {
        self.chunk_count
    }

    /// Decrypts every chunk in file order into the cache, so that later reads in any order touch
    /// the untrusted source no more. Fails if the cache cannot hold the whole dataset.
    pub fn preload(&self) -> Result<()> {
        let capacity = self.lock_cache().capacity as u64;
        if capacity < self.chunk_count {
            return Err(Error::OutOfRange(format!(
                "dataset has {} chunks, the cache holds {capacity}",
                self.chunk_count
            )));
        }
        for i in 0..self.chunk_count {
            self.chunk(i)?;
        }
        Ok(())
    }

    /// Proves the key opens this dataset by authenticating its first chunk (and, at open, its
    /// sealed class names): a wrong data key, or a header or chunk edited since sealing, is
    /// refused here instead of when training first reads a record.
    pub fn check_key(&self) -> Result<()> {
        self.decrypt_chunk(0).map(drop)
    }

    /// Record `index` of split `split`.
    pub fn record(&self, split: usize, index: u64) -> Result<Record> {
        let mut features = SecretBytes::zeroed(self.header.schema.feature_bytes() as usize);
        let label = self.read_record_into(split, index, &mut features)?;
        Ok(Record { features, label })
    }

    /// Records at `indices` of split `split`, in that order.
    pub fn batch(&self, split: usize, indices: &[u64]) -> Result<Batch> {
        let fb = self.header.schema.feature_bytes() as usize;
        let total = fb.checked_mul(indices.len()).ok_or_else(|| {
            Error::OutOfRange(format!("a batch of {} records is too large", indices.len()))
        })?;
        let mut features = SecretBytes::zeroed(total);
        let mut labels = Zeroizing::new(Vec::with_capacity(indices.len()));
        for (slot, &index) in features.chunks_exact_mut(fb).zip(indices) {
            labels.push(self.read_record_into(split, index, slot)?);
        }
        Ok(Batch { features, labels })
    }

    fn read_record_into(&self, split: usize, index: u64, out: &mut [u8]) -> Result<u32> {
        let schema = &self.header.schema;
        let Some(s) = schema.splits.get(split) else {
            return Err(Error::OutOfRange(format!(
                "split {split} does not exist (dataset has {})",
                schema.splits.len()
            )));
        };
        if index >= s.records {
            return Err(Error::OutOfRange(format!(
                "record {index} does not exist in split {:?} ({} records)",
                s.name, s.records
            )));
        }
        let rb = schema.record_bytes();
        let cs = u64::from(self.header.chunk_size);
        let start = (schema.split_start(split) + index) * rb;
        let mut record = SecretBytes::zeroed(rb as usize);
        let mut filled = 0usize;
        let mut pos = start;
        while filled < record.len() {
            let chunk_index = pos / cs;
            let chunk = self.chunk(chunk_index)?;
            let offset = (pos % cs) as usize;
            let n = (chunk.len() - offset).min(record.len() - filled);
            record[filled..filled + n].copy_from_slice(&chunk[offset..offset + n]);
            filled += n;
            pos += n as u64;
        }
        let last_chunk = (start + rb - 1) / cs;
        let label = check_record(&self.header, &record, last_chunk)?;
        out.copy_from_slice(&record[..out.len()]);
        Ok(label)
    }

    /// Decrypts and checks the whole file in order, reporting progress as chunks complete.
    /// Succeeds only if every chunk authenticates, every record is well formed and the padding
    /// is zero; otherwise the error names the first failing chunk and the reason.
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> Result<VerifyReport> {
        let rb = self.header.schema.record_bytes() as usize;
        let plaintext = self.header.plaintext_bytes();
        let cs = u64::from(self.header.chunk_size);
        let mut pending: SecretBytes = SecretBytes::with_capacity(rb + cs as usize);
        let mut records = 0u64;
        for i in 0..self.chunk_count {
            let chunk = self.decrypt_chunk(i)?;
            let data_end = (plaintext.saturating_sub(i * cs)).min(cs) as usize;
            pending.extend_from_slice(&chunk[..data_end]);
            let mut consumed = 0;
            while pending.len() - consumed >= rb {
                check_record(&self.header, &pending[consumed..consumed + rb], i)?;
                consumed += rb;
                records += 1;
            }
            pending.drain(..consumed);
            progress(i + 1);
        }
        if records != self.header.schema.total_records() || !pending.is_empty() {
            return Err(Error::InvalidContent {
                chunk: self.chunk_count - 1,
                reason: "record count does not match the header",
            });
        }
        Ok(VerifyReport {
            chunks: self.chunk_count,
            records,
            plaintext_bytes: plaintext,
        })
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ChunkCache> {
        // The cache holds only authenticated plaintext; a panic elsewhere cannot corrupt it.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn chunk(&self, index: u64) -> Result<Chunk> {
        if let Some(c) = self.lock_cache().get(index) {
            return Ok(c);
        }
        let chunk = Arc::new(self.decrypt_chunk(index)?);
        self.lock_cache().insert(index, Arc::clone(&chunk));
        Ok(chunk)
    }

    /// Reads, authenticates and decrypts one chunk; for the last chunk also checks that the
    /// padding after the final record is zero.
    fn decrypt_chunk(&self, index: u64) -> Result<SecretBytes> {
        let sealed_len = self.header.sealed_chunk_len();
        let mut buf = SecretBytes::zeroed(sealed_len as usize);
        self.source
            .read_exact_at(&mut buf, self.header_len + index * sealed_len)?;
        let last = index + 1 == self.chunk_count;
        self.cipher
            .open(index, last, &mut buf)
            .map_err(|()| Error::ChunkAuthentication {
                chunk: index,
                chunks: self.chunk_count,
            })?;
        let cs = self.header.chunk_size as usize;
        buf.truncate(cs);
        if last {
            let data_end = (self.header.plaintext_bytes() - index * cs as u64) as usize;
            if buf[data_end..].iter().any(|&b| b != 0) {
                return Err(Error::InvalidContent {
                    chunk: index,
                    reason: "padding after the last record is not zero",
                });
            }
        }
        Ok(buf)
    }
}

/// Checks one stored record (features then label) against the schema; returns the label.
fn check_record(header: &Header, record: &[u8], chunk: u64) -> Result<u32> {
    let fb = record.len() - LABEL_BYTES;
    let mut label = [0u8; LABEL_BYTES];
    label.copy_from_slice(&record[fb..]);
    let label = u32::from_le_bytes(label);
    if label >= header.schema.classes {
        return Err(Error::InvalidContent {
            chunk,
            reason: "label outside the declared classes",
        });
    }
    if header.schema.dtype == Dtype::F32 && !all_finite(&record[..fb]) {
        return Err(Error::InvalidContent {
            chunk,
            reason: "non-finite feature value",
        });
    }
    Ok(label)
}
