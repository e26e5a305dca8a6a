//! Importers: the formats data owners actually have, turned into a [`Dataset`] that
//! [`Dataset::seal`] writes as a sealed `.chd` file.
//!
//! Every importer reads its source fully and validates it before anything is sealed, so a
//! malformed source produces an error naming the file (and line, column or record) and no output.
//! Importers run on the owner's own machine; the data they hold is the owner's.

#![forbid(unsafe_code)]

pub mod cifar;
pub mod csv;
mod error;
pub mod idx;
pub mod images;
pub mod npy;
mod source;
mod split;

use std::io::Write;

use chiron_seal::{Dtype, MasterKey, Schema, SealOptions, SealWriter, Split};

pub use error::{Error, Result};
pub use source::open_maybe_gzip;

/// An imported dataset held in memory, split by split.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    /// Element type of the features.
    pub dtype: Dtype,
    /// Shape of one record's features (e.g. `[1, 28, 28]` or `[64]`).
    pub shape: Vec<u32>,
    /// Number of classes; every label is below it.
    pub classes: u32,
    /// Class names (empty, or one per class).
    pub class_names: Vec<String>,
    /// The splits, in the order they will be stored.
    pub splits: Vec<SplitData>,
}

/// The records of one split.
#[derive(Clone, PartialEq)]
pub struct SplitData {
    /// Split name (`train`, `test`, ...).
    pub name: String,
    /// Features of every record, concatenated, in the dataset's dtype (f32 little-endian).
    pub features: Vec<u8>,
    /// One label per record.
    pub labels: Vec<u32>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the schema: records are the owner's secret even in a debug print.
        f.debug_struct("Dataset")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .field(
                "splits",
                &self
                    .splits
                    .iter()
                    .map(|s| (s.name.as_str(), s.labels.len()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Dataset {
    /// Bytes of one record's features.
    pub fn feature_bytes(&self) -> usize {
        self.shape.iter().map(|&d| d as usize).product::<usize>() * self.dtype.size()
    }

    /// The split with this name.
    pub fn split(&self, name: &str) -> Option<&SplitData> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// The features of split `name` as f32 values (what a trainer sees for them), or `None`
    /// if there is no such split.
    pub fn split_f32(&self, name: &str) -> Option<Vec<f32>> {
        let split = self.split(name)?;
        Some(match self.dtype {
            Dtype::U8 => split.features.iter().map(|&b| f32::from(b)).collect(),
            Dtype::F32 => split
                .features
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }

    /// The schema this dataset will be sealed with; checks it against the format's rules and
    /// every split's features and labels against the schema.
    pub fn schema(&self) -> Result<Schema> {
        let schema = Schema {
            dtype: self.dtype,
            shape: self.shape.clone(),
            classes: self.classes,
            class_names: self.class_names.clone(),
            splits: self
                .splits
                .iter()
                .map(|s| Split {
                    name: s.name.clone(),
                    records: s.labels.len() as u64,
                })
                .collect(),
        };
        schema.validate()?;
        let fb = self.feature_bytes();
        for s in &self.splits {
            if s.features.len() != fb * s.labels.len() {
                return Err(Error::Invalid(format!(
                    "split {:?}: {} feature bytes for {} records of {fb} bytes",
                    s.name,
                    s.features.len(),
                    s.labels.len()
                )));
            }
            if let Some(pos) = s.labels.iter().position(|&l| l >= self.classes) {
                return Err(Error::Invalid(format!(
                    "split {:?}: record {pos} has a label outside 0..{}",
                    s.name, self.classes
                )));
            }
        }
        Ok(schema)
    }

    /// Gives every record a new shape with the same number of elements (e.g. `[64]` → `[1, 8, 8]`).
    pub fn reshape(&mut self, shape: Vec<u32>) -> Result<()> {
        let old: u64 = self.shape.iter().map(|&d| u64::from(d)).product();
        let new: u64 = shape.iter().map(|&d| u64::from(d)).product();
        if old != new || shape.contains(&0) {
            return Err(Error::Invalid(format!(
                "cannot reshape records of shape {:?} ({old} elements) to {shape:?} ({new} elements)",
                self.shape
            )));
        }
        self.shape = shape;
        Ok(())
    }

    /// Declares the number of classes (e.g. when a split lacks the highest label). Refused if any
    /// label is out of range or the count disagrees with the class names.
    pub fn set_classes(&mut self, classes: u32) -> Result<()> {
        if !self.class_names.is_empty() && self.class_names.len() != classes as usize {
            return Err(Error::Invalid(format!(
                "--classes {classes} disagrees with the {} class names the source defines",
                self.class_names.len()
            )));
        }
        let max = self.splits.iter().flat_map(|s| s.labels.iter()).max();
        if let Some(&max) = max.filter(|&&m| m >= classes) {
            return Err(Error::Invalid(format!(
                "--classes {classes} is too small: the data has label {max}"
            )));
        }
        self.classes = classes;
        Ok(())
    }

    /// Names the classes; as many names as classes.
    pub fn set_class_names(&mut self, names: Vec<String>) -> Result<()> {
        if names.len() != self.classes as usize {
            return Err(Error::Invalid(format!(
                "{} class names given for {} classes",
                names.len(),
                self.classes
            )));
        }
        self.class_names = names;
        Ok(())
    }

    /// Splits a single-split dataset into `train` and `test` deterministically: the same seed
    /// always picks the same records. See [`split::by_fraction`].
    pub fn split_by_fraction(self, test_fraction: f64, seed: u64) -> Result<Dataset> {
        split::by_fraction(self, test_fraction, seed)
    }

    /// Seals the dataset to `out` under the owner's key (class names private unless `options`
    /// say otherwise), calling `progress` with the number of records written so far. Returns
    /// the output and the header written.
    pub fn seal<W: Write>(
        &self,
        out: W,
        key: &MasterKey,
        options: SealOptions,
        mut progress: impl FnMut(u64),
    ) -> Result<(W, chiron_seal::Header)> {
        let schema = self.schema()?;
        let mut writer = SealWriter::new(out, key, schema, options)?;
        let fb = self.feature_bytes();
        let mut done = 0u64;
        for s in &self.splits {
            for (features, &label) in s.features.chunks_exact(fb).zip(&s.labels) {
                writer.push(features, label)?;
                done += 1;
                if done.is_multiple_of(1024) {
                    progress(done);
                }
            }
        }
        progress(done);
        let header = writer.header().clone();
        Ok((writer.finish()?, header))
    }
}

/// Number of classes implied by labels `0..=max` (at least two).
pub(crate) fn classes_from_labels<'a>(labels: impl IntoIterator<Item = &'a u32>) -> u32 {
    labels
        .into_iter()
        .max()
        .map_or(2, |&m| m.saturating_add(1).max(2))
}
