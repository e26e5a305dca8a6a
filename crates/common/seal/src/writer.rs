//! Streaming writer: records in, sealed chunks out, with constant memory (one chunk).

use std::io::Write;

use crate::secret::SecretBytes;
use ring::rand::{SecureRandom, SystemRandom};

use crate::header::{DEFAULT_CHUNK_SIZE, Dtype, Header, Schema};
use crate::key::MasterKey;
use crate::names::SealedClassNames;
use crate::stream::{ChunkCipher, TAG_LEN};
use crate::{Error, Result};

/// How a dataset is sealed. The default: [`DEFAULT_CHUNK_SIZE`], class names private.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealOptions {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Write the schema's class names into the header in the clear, for anyone holding the file
    /// (the operator and its host included). When false they are sealed under the data key.
    pub public_class_names: bool,
}

impl SealOptions {
    /// The defaults with another chunk size.
    pub fn with_chunk_size(chunk_size: u32) -> Self {
        Self {
            chunk_size,
            ..Self::default()
        }
    }
}

impl Default for SealOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            public_class_names: false,
        }
    }
}

/// Seals records into a new dataset as they arrive.
///
/// The header, with the record count of every split, is fixed up front (it is the associated data
/// of every chunk). Records are pushed split after split in header order; [`SealWriter::finish`]
/// pads and seals the last chunk and fails unless exactly the declared number of records arrived.
/// A record refused by [`SealWriter::push`] leaves the writer as it was.
pub struct SealWriter<W: Write> {
    out: W,
    header: Header,
    cipher: ChunkCipher,
    /// Plaintext of the chunk being filled; room for the tag so sealing needs no copy.
    buf: SecretBytes,
    chunk_size: usize,
    chunk_index: u64,
    chunk_count: u64,
    records_written: u64,
    records_total: u64,
    feature_bytes: usize,
}

impl<W: Write> SealWriter<W> {
    /// Starts a dataset with a fresh random id and writes its header to `out`. The schema's
    /// class names are sealed unless `options.public_class_names`; [`SealWriter::header`] is the
    /// header as written.
    pub fn new(out: W, key: &MasterKey, schema: Schema, options: SealOptions) -> Result<Self> {
        let mut dataset_id = [0u8; 16];
        SystemRandom::new()
            .fill(&mut dataset_id)
            .map_err(|_| Error::Random)?;
        Self::with_dataset_id(out, key, schema, options, dataset_id)
    }

    /// Like [`SealWriter::new`] with a chosen dataset id. Only for tests that need reproducible
    /// output: sealing two different datasets under one key and one id reuses GCM nonces.
    #[doc(hidden)]
    pub fn with_dataset_id(
        mut out: W,
        key: &MasterKey,
        mut schema: Schema,
        options: SealOptions,
        dataset_id: [u8; 16],
    ) -> Result<Self> {
        // The names are checked in the clear first, so a bad name is refused the same way
        // whether it would be public or sealed.
        schema.validate()?;
        let data_key = key.data_key(&dataset_id)?;
        let key_id = key.id()?;
        let sealed_class_names = if options.public_class_names || schema.class_names.is_empty() {
            None
        } else {
            let names = std::mem::take(&mut schema.class_names);
            Some(SealedClassNames::seal(
                &data_key,
                &dataset_id,
                &key_id,
                schema.classes,
                &names,
            )?)
        };
        let header = Header {
            dataset_id,
            key_id,
            chunk_size: options.chunk_size,
            schema,
            sealed_class_names,
        };
        header.validate()?;
        let encoded = header.encode();
        if encoded.len() > crate::header::PREAMBLE_LEN + crate::header::MAX_HEADER_BODY as usize {
            return Err(Error::InvalidHeader(format!(
                "header of {} bytes exceeds the format's limit",
                encoded.len()
            )));
        }
        out.write_all(&encoded)?;
        let cipher = ChunkCipher::new(&data_key, &encoded);
        let chunk_size = options.chunk_size as usize;
        Ok(Self {
            out,
            cipher,
            buf: SecretBytes::with_capacity(chunk_size + TAG_LEN),
            chunk_size,
            chunk_index: 0,
            chunk_count: header.chunk_count(),
            records_written: 0,
            records_total: header.schema.total_records(),
            feature_bytes: header.schema.feature_bytes() as usize,
            header,
        })
    }

    /// The header being written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Records pushed so far.
    pub fn records_written(&self) -> u64 {
        self.records_written
    }

    /// Appends one record: `features` in the schema's dtype (f32 little-endian) and its label.
    pub fn push(&mut self, features: &[u8], label: u32) -> Result<()> {
        if self.records_written == self.records_total {
            return Err(Error::BadRecord(format!(
                "the header declares {} records and all have been written",
                self.records_total
            )));
        }
        if features.len() != self.feature_bytes {
            return Err(Error::BadRecord(format!(
                "record {} has {} feature bytes, the schema needs {}",
                self.records_written,
                features.len(),
                self.feature_bytes
            )));
        }
        if label >= self.header.schema.classes {
            return Err(Error::BadRecord(format!(
                "record {} has a label outside 0..{}",
                self.records_written, self.header.schema.classes
            )));
        }
        if self.header.schema.dtype == Dtype::F32 && !all_finite(features) {
            return Err(Error::BadRecord(format!(
                "record {} has a non-finite feature value",
                self.records_written
            )));
        }
        self.append(features)?;
        self.append(&label.to_le_bytes())?;
        self.records_written += 1;
        Ok(())
    }

    /// Pads and seals the final chunk, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W> {
        if self.records_written != self.records_total {
            return Err(Error::BadRecord(format!(
                "{} records written, the header declares {}",
                self.records_written, self.records_total
            )));
        }
        if self.chunk_index < self.chunk_count {
            self.buf.resize(self.chunk_size, 0);
            self.seal_chunk()?;
        }
        debug_assert_eq!(self.chunk_index, self.chunk_count);
        self.out.flush()?;
        Ok(self.out)
    }

    fn append(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let room = self.chunk_size - self.buf.len();
            let n = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == self.chunk_size {
                self.seal_chunk()?;
            }
        }
        Ok(())
    }

    fn seal_chunk(&mut self) -> Result<()> {
        let last = self.chunk_index + 1 == self.chunk_count;
        let tag = self.cipher.seal(self.chunk_index, last, &mut self.buf);
        self.out.write_all(&self.buf)?;
        self.out.write_all(&tag)?;
        self.buf.clear();
        self.chunk_index += 1;
        Ok(())
    }
}

/// True when every little-endian f32 in `bytes` is finite.
pub(crate) fn all_finite(bytes: &[u8]) -> bool {
    bytes
        .chunks_exact(4)
        .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
}
