//! The public header of a sealed dataset: what the file declares about itself.
//!
//! Everything here is readable without a key and is all that the file's size and structure
//! reveal; private class names are in it only as a padded ciphertext ([`SealedClassNames`]). Encoding is canonical (one byte string per header) and decoding is strict: every
//! field is range-checked and trailing bytes are refused, so two different byte strings never
//! decode to the same header.

use std::collections::HashSet;

use chiron_codec::{CodecError, Reader};

use crate::key::{DataKey, KEY_ID_LEN, KeyId};
use crate::names::SealedClassNames;
use crate::stream::TAG_LEN;
use crate::{Error, Result};

/// First eight bytes of every sealed dataset.
pub const MAGIC: [u8; 8] = *b"CHIRONDS";
/// The format version this build writes and reads. Version 2 added sealed class names;
/// version 1 files are refused (re-seal them with this version).
pub const FORMAT_VERSION: u16 = 2;
/// Length of the preamble: magic, version, body length.
pub const PREAMBLE_LEN: usize = 8 + 2 + 4;
/// Upper bound on the header body, so a hostile length cannot make a reader allocate much.
pub const MAX_HEADER_BODY: u32 = 4 << 20;
/// Smallest allowed plaintext chunk size.
pub const MIN_CHUNK_SIZE: u32 = 4 << 10;
/// Largest allowed plaintext chunk size.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// Chunk size used unless the owner picks another: large enough that AES-GCM runs at full
/// speed, small enough that random access decrypts little it does not need.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 << 10;
/// Upper bound on one record's size.
pub const MAX_RECORD_BYTES: u64 = 256 << 20;
/// Upper bound on the total plaintext (2^50 bytes) so sizes never overflow.
pub const MAX_PLAINTEXT_BYTES: u64 = 1 << 50;
const MAX_RANK: usize = 4;
const MAX_SPLITS: usize = 16;
const MAX_SPLIT_NAME: usize = 32;
const MAX_CLASSES: u32 = 1 << 20;
const MAX_CLASS_NAME: usize = 255;
const LABEL_KIND_CLASS: u8 = 1;
/// Bytes of the class label stored after each record's features (u32, little-endian).
pub const LABEL_BYTES: usize = 4;

/// Element type of a record's features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// Unsigned bytes (pixels).
    U8,
    /// IEEE-754 single precision, little-endian, always finite.
    F32,
}

impl Dtype {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::F32 => 4,
        }
    }

    /// Lower-case name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "u8",
            Dtype::F32 => "f32",
        }
    }

    fn code(self) -> u8 {
        match self {
            Dtype::U8 => 1,
            Dtype::F32 => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self> {
        match code {
            1 => Ok(Dtype::U8),
            2 => Ok(Dtype::F32),
            other => Err(Error::InvalidHeader(format!("unknown dtype code {other}"))),
        }
    }
}

/// A named split (`train`, `test`, ...) and its record count. Records are stored split after
/// split, in header order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Name: 1 to 32 characters from `a-z`, `0-9`, `_`, `-`.
    pub name: String,
    /// Number of records, at least one.
    pub records: u64,
}

/// The declared shape of a dataset: what the operator may learn about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    /// Element type of the features.
    pub dtype: Dtype,
    /// Shape of one record's features, e.g. `[1, 28, 28]`; rank 1 to 4, every dimension ≥ 1.
    pub shape: Vec<u32>,
    /// Number of classes; labels are `0..classes`.
    pub classes: u32,
    /// Class names in the clear, readable by anyone holding the file: either empty or exactly
    /// `classes` distinct names. Empty when the names are private
    /// ([`Header::sealed_class_names`]) or there are none.
    pub class_names: Vec<String>,
    /// Splits in storage order.
    pub splits: Vec<Split>,
}

impl Schema {
    /// Number of feature elements in one record.
    pub fn elements(&self) -> u64 {
        self.shape.iter().map(|&d| u64::from(d)).product()
    }

    /// Bytes of one record's features.
    pub fn feature_bytes(&self) -> u64 {
        self.elements() * self.dtype.size() as u64
    }

    /// Bytes of one stored record: features then the label.
    pub fn record_bytes(&self) -> u64 {
        self.feature_bytes() + LABEL_BYTES as u64
    }

    /// Total number of records over all splits.
    pub fn total_records(&self) -> u64 {
        self.splits.iter().map(|s| s.records).sum()
    }

    /// Index of the split with this name.
    pub fn split_index(&self, name: &str) -> Option<usize> {
        self.splits.iter().position(|s| s.name == name)
    }

    /// Index of the first record of split `split` in the record stream.
    pub fn split_start(&self, split: usize) -> u64 {
        self.splits[..split].iter().map(|s| s.records).sum()
    }

    /// Checks every rule of the format: ranks, sizes, names, counts. Sizes are computed with
    /// checked arithmetic, so a schema that passes cannot overflow any later size computation.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidHeader(m));
        if self.shape.is_empty() || self.shape.len() > MAX_RANK {
            return bad(format!(
                "record shape must have 1 to {MAX_RANK} dimensions, has {}",
                self.shape.len()
            ));
        }
        if self.shape.contains(&0) {
            return bad("record shape has a zero dimension".into());
        }
        let feature_bytes = self
            .shape
            .iter()
            .try_fold(self.dtype.size() as u64, |acc, &d| {
                acc.checked_mul(u64::from(d))
            })
            .filter(|&b| b + LABEL_BYTES as u64 <= MAX_RECORD_BYTES);
        let Some(feature_bytes) = feature_bytes else {
            return bad(format!("record larger than {MAX_RECORD_BYTES} bytes"));
        };
        if self.classes < 2 || self.classes > MAX_CLASSES {
            return bad(format!(
                "number of classes must be 2 to {MAX_CLASSES}, is {}",
                self.classes
            ));
        }
        if !self.class_names.is_empty() {
            check_class_names(&self.class_names, self.classes).map_err(Error::InvalidHeader)?;
        }
        if self.splits.is_empty() || self.splits.len() > MAX_SPLITS {
            return bad(format!(
                "a dataset has 1 to {MAX_SPLITS} splits, this one {}",
                self.splits.len()
            ));
        }
        let mut names = HashSet::new();
        let mut total: u64 = 0;
        for split in &self.splits {
            let ok_name = !split.name.is_empty()
                && split.name.len() <= MAX_SPLIT_NAME
                && split.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !ok_name {
                return bad(format!(
                    "split name {:?} must be 1 to {MAX_SPLIT_NAME} characters from a-z, 0-9, '_', '-'",
                    split.name
                ));
            }
            if !names.insert(split.name.as_str()) {
                return bad(format!("split {:?} appears twice", split.name));
            }
            if split.records == 0 {
                return bad(format!("split {:?} has no records", split.name));
            }
            total = total.saturating_add(split.records);
        }
        let plaintext = total.checked_mul(feature_bytes + LABEL_BYTES as u64);
        if plaintext.is_none_or(|p| p > MAX_PLAINTEXT_BYTES) {
            return bad(format!(
                "dataset larger than the format's {MAX_PLAINTEXT_BYTES} byte limit"
            ));
        }
        Ok(())
    }
}

/// Checks a list of class names against the format's rules: one per class, each 1 to 255 bytes
/// without control characters, all distinct. Errors name the index, never the name.
fn check_class_names(names: &[String], classes: u32) -> std::result::Result<(), String> {
    let bad = Err;
    if names.len() != classes as usize {
        return bad(format!(
            "{} class names given for {classes} classes",
            names.len()
        ));
    }
    let mut seen = HashSet::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.len() > MAX_CLASS_NAME || name.chars().any(char::is_control) {
            return bad(format!(
                "class name {i} must be 1 to {MAX_CLASS_NAME} bytes without control characters"
            ));
        }
        if !seen.insert(name.as_str()) {
            return bad(format!("class name {i} repeats an earlier name"));
        }
    }
    Ok(())
}

/// The complete public header of a sealed dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Random id of this dataset; also the salt of its data key, so no two datasets share a key.
    pub dataset_id: [u8; 16],
    /// Fingerprint of the master key the data key derives from.
    pub key_id: KeyId,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// What the dataset holds.
    pub schema: Schema,
    /// The class names when they are private (the default of `chiron dataset seal`): encrypted
    /// under the data key; `schema.class_names` is then empty.
    pub sealed_class_names: Option<SealedClassNames>,
}

impl Header {
    /// Checks the chunk size and the schema.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(Error::InvalidHeader(format!(
                "chunk size must be {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes, is {}",
                self.chunk_size
            )));
        }
        if let Some(sealed) = &self.sealed_class_names {
            if !self.schema.class_names.is_empty() {
                return Err(Error::InvalidHeader(
                    "class names are both public and sealed".into(),
                ));
            }
            if !SealedClassNames::valid_len(sealed.len()) {
                return Err(Error::InvalidHeader(format!(
                    "sealed class names of {} bytes: not a padded size the format allows",
                    sealed.len()
                )));
            }
        }
        self.schema.validate()
    }

    /// The class names for a holder of the data key: the sealed ones decrypted, the public ones
    /// as they are, or none. Sealed names that fail authentication (wrong key, edited file) are
    /// [`Error::ClassNamesAuthentication`].
    pub fn open_class_names(&self, key: &DataKey) -> Result<Vec<String>> {
        let Some(sealed) = &self.sealed_class_names else {
            return Ok(self.schema.class_names.clone());
        };
        let names = sealed.open(key, &self.dataset_id, &self.key_id, self.schema.classes)?;
        check_class_names(&names, self.schema.classes)
            .map_err(|e| Error::InvalidHeader(format!("sealed class names: {e}")))?;
        Ok(names)
    }

    /// Whether the dataset names its classes, publicly or sealed.
    pub fn has_class_names(&self) -> bool {
        self.sealed_class_names.is_some() || !self.schema.class_names.is_empty()
    }

    /// Total plaintext bytes of all records (before padding).
    pub fn plaintext_bytes(&self) -> u64 {
        self.schema.total_records() * self.schema.record_bytes()
    }

    /// Number of chunks: enough for all records, and at least one.
    pub fn chunk_count(&self) -> u64 {
        self.plaintext_bytes()
            .div_ceil(u64::from(self.chunk_size))
            .max(1)
    }

    /// Bytes of one encrypted chunk on disk.
    pub fn sealed_chunk_len(&self) -> u64 {
        u64::from(self.chunk_size) + TAG_LEN as u64
    }

    /// Encodes the header (preamble and body) canonically. The header must be valid.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(128);
        body.extend_from_slice(&self.dataset_id);
        body.extend_from_slice(&self.key_id.0);
        body.extend_from_slice(&self.chunk_size.to_le_bytes());
        let s = &self.schema;
        body.push(s.dtype.code());
        body.push(s.shape.len() as u8);
        for d in &s.shape {
            body.extend_from_slice(&d.to_le_bytes());
        }
        body.push(LABEL_KIND_CLASS);
        body.extend_from_slice(&s.classes.to_le_bytes());
        body.extend_from_slice(&(s.class_names.len() as u32).to_le_bytes());
        for name in &s.class_names {
            body.extend_from_slice(&(name.len() as u16).to_le_bytes());
            body.extend_from_slice(name.as_bytes());
        }
        let sealed = self
            .sealed_class_names
            .as_ref()
            .map_or(&[][..], |n| &n.0[..]);
        body.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        body.extend_from_slice(sealed);
        body.push(s.splits.len() as u8);
        for split in &s.splits {
            body.push(split.name.len() as u8);
            body.extend_from_slice(split.name.as_bytes());
            body.extend_from_slice(&split.records.to_le_bytes());
        }
        let mut out = Vec::with_capacity(PREAMBLE_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Reads the preamble: checks magic and version, returns the body length.
    pub fn decode_preamble(preamble: &[u8; PREAMBLE_LEN]) -> Result<u32> {
        if preamble[..8] != MAGIC {
            return Err(Error::InvalidHeader(
                "not a Chiron sealed dataset (bad magic bytes)".into(),
            ));
        }
        let version = u16::from_le_bytes([preamble[8], preamble[9]]);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let len = u32::from_le_bytes([preamble[10], preamble[11], preamble[12], preamble[13]]);
        if len > MAX_HEADER_BODY {
            return Err(Error::InvalidHeader(format!(
                "header body of {len} bytes exceeds the {MAX_HEADER_BODY} byte limit"
            )));
        }
        Ok(len)
    }

    /// Decodes a complete header (preamble and body), strictly: any malformed field, limit
    /// violation or trailing byte is an error naming it.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let preamble: &[u8; PREAMBLE_LEN] = bytes
            .get(..PREAMBLE_LEN)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::InvalidHeader("file shorter than the preamble".into()))?;
        let body_len = Self::decode_preamble(preamble)? as usize;
        let body = &bytes[PREAMBLE_LEN..];
        if body.len() != body_len {
            return Err(Error::InvalidHeader(format!(
                "header body is {} bytes, preamble declares {body_len}",
                body.len()
            )));
        }
        let mut r = Reader::new(body);
        let dataset_id = r.array::<16>("dataset id").map_err(invalid)?;
        let key_id = KeyId(r.array::<KEY_ID_LEN>("key id").map_err(invalid)?);
        let chunk_size = r.u32("chunk size").map_err(invalid)?;
        let dtype = Dtype::from_code(r.u8("dtype").map_err(invalid)?)?;
        let rank = r.u8("rank").map_err(invalid)? as usize;
        if rank == 0 || rank > MAX_RANK {
            return Err(Error::InvalidHeader(format!(
                "record shape must have 1 to {MAX_RANK} dimensions, has {rank}"
            )));
        }
        let shape = (0..rank)
            .map(|_| r.u32("shape dimension").map_err(invalid))
            .collect::<Result<Vec<_>>>()?;
        let label_kind = r.u8("label kind").map_err(invalid)?;
        if label_kind != LABEL_KIND_CLASS {
            return Err(Error::InvalidHeader(format!(
                "unknown label kind {label_kind}"
            )));
        }
        let classes = r.u32("number of classes").map_err(invalid)?;
        let name_count = r.u32("class name count").map_err(invalid)?;
        if name_count != 0 && name_count != classes {
            return Err(Error::InvalidHeader(format!(
                "{name_count} class names given for {classes} classes"
            )));
        }
        // Each name needs at least 2 bytes, which bounds the allocation by the body length.
        if name_count as usize > r.remaining() / 2 {
            return Err(Error::InvalidHeader(
                "class name count exceeds header size".into(),
            ));
        }
        let mut class_names = Vec::with_capacity(name_count as usize);
        for _ in 0..name_count {
            let len = r.u16("class name length").map_err(invalid)? as usize;
            class_names.push(r.utf8(len, "class name").map_err(invalid)?.to_string());
        }
        let sealed_len = r.u32("sealed class names length").map_err(invalid)? as usize;
        let sealed_class_names = if sealed_len == 0 {
            None
        } else {
            if !SealedClassNames::valid_len(sealed_len) {
                return Err(Error::InvalidHeader(format!(
                    "sealed class names of {sealed_len} bytes: not a padded size the format allows"
                )));
            }
            Some(SealedClassNames(
                r.take(sealed_len, "sealed class names")
                    .map_err(invalid)?
                    .to_vec(),
            ))
        };
        let split_count = r.u8("split count").map_err(invalid)? as usize;
        let mut splits = Vec::with_capacity(split_count);
        for _ in 0..split_count {
            let len = r.u8("split name length").map_err(invalid)? as usize;
            let name = r.utf8(len, "split name").map_err(invalid)?.to_string();
            let records = r.u64("split record count").map_err(invalid)?;
            splits.push(Split { name, records });
        }
        if r.remaining() != 0 {
            return Err(Error::InvalidHeader(format!(
                "{} unexpected bytes after the last split",
                r.remaining()
            )));
        }
        let header = Header {
            dataset_id,
            key_id,
            chunk_size,
            schema: Schema {
                dtype,
                shape,
                classes,
                class_names,
                splits,
            },
            sealed_class_names,
        };
        header.validate()?;
        Ok(header)
    }
}

/// A header body field that did not decode, as [`Error::InvalidHeader`] naming the field (its
/// offset counts from the start of the body, after the preamble).
fn invalid(e: CodecError) -> Error {
    Error::InvalidHeader(format!("header body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Header {
        Header {
            dataset_id: [7; 16],
            key_id: KeyId([9; 16]),
            chunk_size: DEFAULT_CHUNK_SIZE,
            schema: Schema {
                dtype: Dtype::U8,
                shape: vec![1, 28, 28],
                classes: 10,
                class_names: vec![],
                splits: vec![
                    Split {
                        name: "train".into(),
                        records: 60000,
                    },
                    Split {
                        name: "test".into(),
                        records: 10000,
                    },
                ],
            },
            sealed_class_names: None,
        }
    }

    #[test]
    fn round_trip_and_sizes() {
        let h = sample();
        h.validate().unwrap();
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes).unwrap(), h);
        assert_eq!(h.schema.record_bytes(), 788);
        assert_eq!(h.chunk_count(), (70000u64 * 788).div_ceil(65536));
    }

    #[test]
    fn strict_decoding_names_the_problem() {
        let h = sample();
        let mut bytes = h.encode();
        bytes.push(0);
        let err = Header::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("preamble declares"), "{err}");

        let mut bytes = h.encode();
        bytes[0] ^= 1;
        assert!(
            Header::decode(&bytes)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );

        // Version 1 (before sealed class names) and any later version are refused by number.
        for version in [1u8, 3] {
            let mut bytes = h.encode();
            bytes[8] = version;
            assert!(matches!(
                Header::decode(&bytes),
                Err(Error::UnsupportedVersion { found, .. }) if found == u16::from(version)
            ));
        }

        let mut bad = sample();
        bad.sealed_class_names = Some(SealedClassNames(vec![0; 300]));
        let err = Header::decode(&bad.encode()).unwrap_err().to_string();
        assert!(err.contains("sealed class names of 300 bytes"), "{err}");
        let mut bad = sample();
        bad.schema.class_names = (0..10).map(|c| c.to_string()).collect();
        bad.sealed_class_names = Some(SealedClassNames(vec![0; 256 + TAG_LEN]));
        let err = Header::decode(&bad.encode()).unwrap_err().to_string();
        assert!(err.contains("both public and sealed"), "{err}");

        let mut bad = sample();
        bad.schema.splits[1].name = "train".into();
        let err = Header::decode(&bad.encode()).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");

        let mut bad = sample();
        bad.chunk_size = 100;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("chunk size")
        );

        let mut bad = sample();
        bad.schema.shape = vec![u32::MAX, u32::MAX, u32::MAX];
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("record larger")
        );
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE,
            prop_oneof![Just(Dtype::U8), Just(Dtype::F32)],
            prop::collection::vec(1u32..64, 1..=4),
            2u32..50,
            0u8..3,
            prop::collection::vec(("[a-z0-9_-]{1,32}", 1u64..1_000_000), 1..=16),
        )
            .prop_map(
                |(dataset_id, key_id, chunk_size, dtype, shape, classes, named, splits)| {
                    let mut seen = HashSet::new();
                    let splits = splits
                        .into_iter()
                        .filter(|(n, _)| seen.insert(n.clone()))
                        .map(|(name, records)| Split { name, records })
                        .collect();
                    // 0: no names, 1: public names, 2: sealed (ciphertext of a padded size).
                    let class_names = if named == 1 {
                        (0..classes).map(|c| format!("class {c} ✓")).collect()
                    } else {
                        vec![]
                    };
                    let sealed_class_names =
                        (named == 2).then(|| SealedClassNames(vec![0x5a; 512 + TAG_LEN]));
                    Header {
                        dataset_id,
                        key_id: KeyId(key_id),
                        chunk_size,
                        schema: Schema {
                            dtype,
                            shape,
                            classes,
                            class_names,
                            splits,
                        },
                        sealed_class_names,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn every_valid_header_round_trips(h in arb_header()) {
            h.validate().unwrap();
            let bytes = h.encode();
            prop_assert_eq!(Header::decode(&bytes).unwrap(), h);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(tail in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            bytes.extend_from_slice(&(tail.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&tail);
            let _ = Header::decode(&bytes);
        }

        #[test]
        fn any_single_byte_change_is_refused_or_decodes_differently(h in arb_header(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let mut bytes = h.encode();
            let i = pos.index(bytes.len());
            bytes[i] ^= flip;
            if let Ok(decoded) = Header::decode(&bytes) {
                prop_assert_ne!(decoded, h);
            }
        }
    }
}
