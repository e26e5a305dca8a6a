//! Errors of the sealed container. Messages name the problem (which chunk, which field, which
//! limit) but never contain plaintext, key bytes or values derived from them.

use std::io;

/// Everything that can go wrong reading, writing or verifying a sealed dataset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error from the underlying file or stream.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The header is malformed or violates a limit of the format; the text says which field.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// The file was written by a newer (or unknown) version of the format.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version found in the file.
        found: u16,
        /// Version this build understands.
        supported: u16,
    },
    /// The supplied key is not the key the dataset was sealed under.
    #[error(
        "wrong key: the dataset was sealed under key id {expected}, the given key has id {given}"
    )]
    WrongKey {
        /// Key id recorded in the header.
        expected: String,
        /// Key id of the key supplied.
        given: String,
    },
    /// The file is shorter than its header declares.
    #[error(
        "truncated file: header declares {expected_chunks} chunks ({expected_len} bytes), file has {actual_len} bytes (chunk {first_missing} is missing or incomplete)"
    )]
    Truncated {
        /// Chunk count the header implies.
        expected_chunks: u64,
        /// File length the header implies.
        expected_len: u64,
        /// Actual file length.
        actual_len: u64,
        /// Index of the first chunk that is not fully present.
        first_missing: u64,
    },
    /// The file is longer than its header declares.
    #[error("trailing data: header declares {expected_len} bytes, file has {actual_len} bytes")]
    TrailingData {
        /// File length the header implies.
        expected_len: u64,
        /// Actual file length.
        actual_len: u64,
    },
    /// A chunk failed authentication: it was modified, moved, taken from another dataset, or the
    /// header it is bound to was modified.
    #[error(
        "chunk {chunk} of {chunks} failed authentication (tampered, reordered, truncated, spliced from another dataset, or the header was modified)"
    )]
    ChunkAuthentication {
        /// Index of the failing chunk.
        chunk: u64,
        /// Total chunk count.
        chunks: u64,
    },
    /// The sealed class names in the header failed authentication: a wrong data key, or the
    /// names were edited or moved from another dataset.
    #[error("the sealed class names failed authentication (wrong key, or the header was modified)")]
    ClassNamesAuthentication,
    /// A chunk authenticated but its plaintext breaks a rule of the format (label out of range,
    /// non-finite float, non-zero padding). Only a writer holding the key can produce this.
    #[error("chunk {chunk}: invalid content: {reason}")]
    InvalidContent {
        /// Index of the chunk holding the offending bytes.
        chunk: u64,
        /// Which rule was broken (never the offending value).
        reason: &'static str,
    },
    /// A record or split asked for does not exist.
    #[error("{0}")]
    OutOfRange(String),
    /// A record handed to the writer does not fit the declared schema.
    #[error("record rejected: {0}")]
    BadRecord(String),
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// Deriving a key id or data key failed (HKDF-SHA256); no key was produced.
    #[error("key derivation failed: {0}")]
    KeyDerivation(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
