//! The sealed dataset container, format version 2 (`.chd`).
//!
//! A data owner turns a dataset into a sealed file with [`SealWriter`]; anyone may read its
//! [`Header`] (the declared schema: record count, record shape, classes, splits) without a key;
//! class names are private by default ([`SealedClassNames`], opened with the data key);
//! only a holder of the owner's [`MasterKey`] (or of the per-dataset [`DataKey`] the owner grants
//! to an attested enclave) can read records, through [`SealedDataset`].
//!
//! Guarantees, all checked by the tests in this crate:
//! - every chunk is AES-256-GCM encrypted under a key unique to the dataset, with the header's
//!   digest as associated data, so a header edit or a chunk spliced in from another dataset fails
//!   authentication;
//! - chunk nonces follow the STREAM construction (chunk counter plus a last-chunk flag), so
//!   reordered, dropped, duplicated or truncated chunks are detected;
//! - every chunk carries the same number of plaintext bytes (the last one is zero-padded), so the
//!   file size is a function of the public header alone.
//!
//! The byte-level specification is `docs/formats/sealed-dataset.md`.

#![forbid(unsafe_code)]

mod error;
mod header;
mod key;
mod names;
mod reader;
mod secret;
mod stream;
mod writer;

pub use error::{Error, Result};
pub use header::{
    DEFAULT_CHUNK_SIZE, Dtype, FORMAT_VERSION, Header, MAGIC, MAX_CHUNK_SIZE, MAX_HEADER_BODY,
    MIN_CHUNK_SIZE, Schema, Split,
};
pub use key::{DataKey, KEY_LEN, KeyId, MasterKey};
pub use names::{MIN_SEALED_NAMES_PLAINTEXT, SealedClassNames};
pub use reader::{Batch, ChunkSource, DEFAULT_CACHE_BYTES, Record, SealedDataset, VerifyReport};
pub use secret::SecretBytes;
pub use stream::TAG_LEN;
pub use writer::{SealOptions, SealWriter};
