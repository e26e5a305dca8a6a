//! The dataset, as the trainer may see it: its schema and batches by index.
//!
//! Records are decrypted and assembled host-side; the guest asks for indices and gets tensor
//! handles. Shuffles and augmentation come from the host's seeded generator, so a job is
//! reproducible from its seed.

use crate::bindings::chiron::trainer::data as wd;
use crate::{Error, Result, Tensor};

/// Random crop (zero-pad then crop back) and horizontal flip, drawn host-side.
pub use crate::bindings::chiron::trainer::data::Augment;
/// The declared schema: record shape, class count, splits.
pub use crate::bindings::chiron::trainer::data::DataSchema as Schema;
/// Per-channel normalisation applied after scaling u8 data to [0, 1].
pub use crate::bindings::chiron::trainer::data::Normalize;

/// The dataset's declared schema.
pub fn schema() -> Schema {
    wd::schema()
}

/// A deterministic permutation of the records of `split` for `epoch` (seeded by the job).
pub fn shuffled(split: &str, epoch: u32) -> Result<Vec<u64>> {
    wd::shuffled(split, epoch)
}

/// Features `[n, ..shape]` and labels `[n]` of the records `indices` of `split`.
pub fn batch(
    split: &str,
    indices: &[u64],
    normalize: Option<&Normalize>,
    augment: Option<Augment>,
) -> Result<(Tensor, Tensor)> {
    wd::batch(split, indices, normalize, augment)
}

impl Schema {
    /// Elements per record (product of the shape): the input width of a tabular model.
    pub fn features(&self) -> Result<u32> {
        self.shape
            .iter()
            .try_fold(1u32, |acc, &d| acc.checked_mul(d))
            .ok_or(Error::InvalidShape)
    }
    /// Number of records in `split` (0 when there is no such split).
    pub fn records(&self, split: &str) -> u64 {
        self.splits
            .iter()
            .find(|(name, _)| name == split)
            .map_or(0, |(_, n)| *n)
    }
    /// The shape of a batch of `n` records: `[n, ..shape]`.
    pub fn batch_shape(&self, n: u32) -> Vec<u32> {
        std::iter::once(n)
            .chain(self.shape.iter().copied())
            .collect()
    }
}

/// The index batches of one pass over a split: consecutive chunks of `batch_size` indices.
///
/// `drop_last` leaves out a final short batch (keeps batch-norm statistics well defined).
pub struct Batches {
    indices: Vec<u64>,
    batch_size: usize,
    position: usize,
    drop_last: bool,
}

impl Batches {
    /// One epoch over `split` in the host's shuffled order for `epoch`.
    pub fn shuffled(split: &str, epoch: u32, batch_size: u32, drop_last: bool) -> Result<Self> {
        Self::over(shuffled(split, epoch)?, batch_size, drop_last)
    }
    /// One pass over `split` in storage order (evaluation).
    pub fn sequential(schema: &Schema, split: &str, batch_size: u32) -> Result<Self> {
        Self::over((0..schema.records(split)).collect(), batch_size, false)
    }
    /// Batches over the given indices.
    pub fn over(indices: Vec<u64>, batch_size: u32, drop_last: bool) -> Result<Self> {
        let batch_size = usize::try_from(batch_size).map_err(|_| Error::InvalidArgument)?;
        if batch_size == 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(Self {
            indices,
            batch_size,
            position: 0,
            drop_last,
        })
    }
    /// Number of batches this pass yields.
    pub fn num_batches(&self) -> usize {
        let n = self.indices.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }
}

impl Iterator for Batches {
    type Item = Vec<u64>;
    fn next(&mut self) -> Option<Vec<u64>> {
        let rest = self.indices.get(self.position..)?;
        if rest.is_empty() || (self.drop_last && rest.len() < self.batch_size) {
            return None;
        }
        let take = rest.len().min(self.batch_size);
        let out = rest[..take].to_vec();
        self.position += take;
        Some(out)
    }
}
