//! The data pipeline (the WIT `data` interface): the schema, seeded shuffles, and batches
//! gathered from a [`RecordSource`] with augmentation and normalisation done host-side; plus
//! [`SealedRecords`], the source over a sealed dataset preloaded into enclave memory.

use chiron_seal::{ChunkSource, Dtype, SealedDataset};
use zeroize::Zeroizing;

use crate::api::{Augment, DataSchema, EngineError, Normalize, RecordSource, Result, TensorId};
use crate::dynt::{Dyn, MAX_RANK};
use crate::engine::{ELEM_BYTES, Engine, Role};
use crate::rng::Rng;

/// Records read from the sealed dataset per `SealedDataset::batch` call while preloading.
const PRELOAD_BATCH: u64 = 1024;
/// Largest split [`Engine::shuffled`] permutes (its permutation lives in memory).
pub const MAX_SHUFFLE_RECORDS: u64 = 1 << 32;

/// One split held in memory.
struct SplitRecords {
    name: String,
    records: u64,
    /// `records × elements` features as f32, row-major; zeroized on drop.
    features: Zeroizing<Vec<f32>>,
    /// Labels; zeroized on drop.
    labels: Zeroizing<Vec<u32>>,
}

/// A sealed dataset decrypted whole into enclave memory, serving the engine's batches.
///
/// [`SealedRecords::preload`] reads every record split after split in file order, so the
/// untrusted host sees one fixed sequential pass over the chunks whatever the trainer later
/// asks for (batches are served from memory). u8 features become f32 in `[0, 1]` (divided by
/// 255); f32 features are kept as they are. Memory is zeroized on drop; `Debug` prints only
/// the schema.
pub struct SealedRecords {
    schema: DataSchema,
    elements: usize,
    splits: Vec<SplitRecords>,
}

impl std::fmt::Debug for SealedRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRecords")
            .field("schema", &self.schema)
            .finish()
    }
}

impl SealedRecords {
    /// Decrypts and authenticates every record of `dataset`, in file order, into memory.
    ///
    /// Every chunk is read once, in file order (records are read split after split, which is
    /// file order). Fails with the sealed reader's error if a chunk does not authenticate or a
    /// record is malformed, and with `OutOfRange` if the dataset does not fit in this
    /// process's address space. The dataset's own chunk cache still holds decrypted chunks
    /// afterwards: drop it once preloaded.
    pub fn preload<S: ChunkSource>(dataset: &SealedDataset<S>) -> chiron_seal::Result<Self> {
        let schema = &dataset.header().schema;
        let too_large =
            || chiron_seal::Error::OutOfRange("the dataset does not fit in memory".into());
        let elements = usize::try_from(schema.elements()).map_err(|_| too_large())?;
        let mut splits = Vec::with_capacity(schema.splits.len());
        for (si, split) in schema.splits.iter().enumerate() {
            let records = usize::try_from(split.records).map_err(|_| too_large())?;
            let total = records.checked_mul(elements).ok_or_else(too_large)?;
            let mut features = Zeroizing::new(Vec::with_capacity(total));
            let mut labels = Zeroizing::new(Vec::with_capacity(records));
            let mut start = 0u64;
            while start < split.records {
                let end = (start + PRELOAD_BATCH).min(split.records);
                let indices: Vec<u64> = (start..end).collect();
                let batch = dataset.batch(si, &indices)?;
                match schema.dtype {
                    Dtype::U8 => {
                        features.extend(batch.features.iter().map(|&b| f32::from(b) / 255.0))
                    }
                    Dtype::F32 => features.extend(
                        batch
                            .features
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    ),
                }
                labels.extend(batch.labels.iter().copied());
                start = end;
            }
            splits.push(SplitRecords {
                name: split.name.clone(),
                records: split.records,
                features,
                labels,
            });
        }
        Ok(Self {
            schema: DataSchema {
                shape: schema.shape.clone(),
                classes: schema.classes,
                splits: schema
                    .splits
                    .iter()
                    .map(|s| (s.name.clone(), s.records))
                    .collect(),
            },
            elements,
            splits,
        })
    }
}

impl RecordSource for SealedRecords {
    fn schema(&self) -> DataSchema {
        self.schema.clone()
    }

    fn gather(
        &self,
        split: &str,
        indices: &[u64],
        features: &mut Vec<f32>,
        labels: &mut Vec<f32>,
    ) -> Result<()> {
        let s = self
            .splits
            .iter()
            .find(|s| s.name == split)
            .ok_or(EngineError::InvalidArgument)?;
        if indices.iter().any(|&i| i >= s.records) {
            return Err(EngineError::OutOfRange);
        }
        let e = self.elements;
        for &i in indices {
            // In range: i < records and features holds records × elements values.
            let i = i as usize;
            let row = s
                .features
                .get(i * e..(i + 1) * e)
                .ok_or(EngineError::OutOfRange)?;
            features.extend_from_slice(row);
            let label = s.labels.get(i).ok_or(EngineError::OutOfRange)?;
            labels.push(*label as f32);
        }
        Ok(())
    }
}

/// Applies random crop (zero padding `pad`, offsets drawn in `0..=2·pad`) and horizontal flip
/// to each `[c, h, w]` record of `features`, in record order, drawing from `rng`.
fn augment_records(features: &mut [f32], c: usize, h: usize, w: usize, a: Augment, rng: &mut Rng) {
    let per = c * h * w;
    if per == 0 {
        return;
    }
    let pad = u64::from(a.crop_padding);
    let mut scratch = vec![0f32; per];
    for rec in features.chunks_exact_mut(per) {
        let (dy, dx) = if pad > 0 {
            (rng.below(2 * pad + 1), rng.below(2 * pad + 1))
        } else {
            (pad, pad)
        };
        let flip = a.horizontal_flip && rng.coin();
        if pad == 0 && !flip {
            continue;
        }
        // Output (y, x) reads input (y + dy − pad, x' + dx − pad), x' = w − 1 − x when flipped
        // (crop first, then flip, as torchvision's pipeline does).
        for ch in 0..c {
            for y in 0..h {
                let sy = y as i64 + dy as i64 - pad as i64;
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as i64 + dx as i64 - pad as i64;
                    let v = if sy >= 0 && (sy as usize) < h && sx >= 0 && (sx as usize) < w {
                        rec[(ch * h + sy as usize) * w + sx as usize]
                    } else {
                        0.0
                    };
                    scratch[(ch * h + y) * w + x] = v;
                }
            }
        }
        rec.copy_from_slice(&scratch);
    }
}

impl Engine {
    fn source(&self) -> Result<(&std::sync::Arc<dyn RecordSource>, &DataSchema)> {
        match (&self.data, &self.schema) {
            (Some(d), Some(s)) => Ok((d, s)),
            _ => Err(EngineError::NotAllowed),
        }
    }

    /// The declared schema of the attached data (`NotAllowed` without data, as in prediction).
    pub fn schema(&self) -> Result<DataSchema> {
        Ok(self.source()?.1.clone())
    }

    /// A permutation of `0..records` of `split` for `epoch`, a function of the engine's seed,
    /// the split and the epoch only (not of other calls). Unknown split: `InvalidArgument`.
    pub fn shuffled(&mut self, split: &str, epoch: u32) -> Result<Vec<u64>> {
        let (_, schema) = self.source()?;
        let (index, records) = schema
            .splits
            .iter()
            .enumerate()
            .find(|(_, (name, _))| name == split)
            .map(|(i, (_, n))| (i, *n))
            .ok_or(EngineError::InvalidArgument)?;
        if records > MAX_SHUFFLE_RECORDS {
            return Err(EngineError::ResourceExhausted);
        }
        let n = usize::try_from(records).map_err(|_| EngineError::ResourceExhausted)?;
        Ok(Rng::for_shuffle(self.config.seed, index, epoch).permutation(n))
    }

    /// Features `[n, ..shape]` and labels `[n]` (class indices as f32) of records `indices`
    /// of `split`. Augmentation (records of shape `[c, h, w]` only, else `InvalidArgument`)
    /// comes first and draws from the engine's generator, record by record; normalisation
    /// (`mean`/`std` with one entry per channel — the record's first axis — or a single entry
    /// for all; `std` > 0, all finite) comes second.
    ///
    /// Errors: no data `NotAllowed`; unknown split or empty `indices` `InvalidArgument`; an
    /// index past the split `OutOfRange`; budgets `ResourceExhausted`.
    pub fn batch(
        &mut self,
        split: &str,
        indices: &[u64],
        normalize: Option<&Normalize>,
        augment: Option<Augment>,
    ) -> Result<(TensorId, TensorId)> {
        let (source, schema) = self.source()?;
        let source = std::sync::Arc::clone(source);
        let (_, records) = schema
            .splits
            .iter()
            .find(|(name, _)| name == split)
            .ok_or(EngineError::InvalidArgument)?;
        if indices.is_empty() {
            return Err(EngineError::InvalidArgument);
        }
        if indices.iter().any(|i| i >= records) {
            return Err(EngineError::OutOfRange);
        }
        let shape: Vec<usize> = schema.shape.iter().map(|&d| d as usize).collect();
        if shape.is_empty() || shape.len() >= MAX_RANK || shape.contains(&0) {
            return Err(EngineError::InvalidShape);
        }
        let channels = shape[0];
        if let Some(nz) = normalize {
            let ok_len = |l: usize| l == channels || l == 1;
            if !ok_len(nz.mean.len())
                || nz.mean.len() != nz.std.len()
                || nz.mean.iter().any(|m| !m.is_finite())
                || nz.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            {
                return Err(EngineError::InvalidArgument);
            }
        }
        let augment_dims = match (augment, &shape[..]) {
            (None, _) => None,
            (Some(a), &[c, h, w]) => Some((a, c, h, w)),
            (Some(_), _) => return Err(EngineError::InvalidArgument),
        };
        let n = indices.len();
        let mut fdims = vec![n];
        fdims.extend_from_slice(&shape);
        let fbytes = crate::engine::dims_bytes(&fdims)?;
        let lbytes = crate::engine::dims_bytes(&[n])?;
        self.reserve(
            2,
            fbytes
                .checked_add(lbytes)
                .ok_or(EngineError::ResourceExhausted)?,
        )?;
        let total = (fbytes / ELEM_BYTES) as usize;
        let mut features = Vec::with_capacity(total);
        let mut labels = Vec::with_capacity(n);
        source.gather(split, indices, &mut features, &mut labels)?;
        if features.len() != total || labels.len() != n {
            return Err(EngineError::InvalidArgument);
        }
        if let Some((a, c, h, w)) = augment_dims {
            augment_records(&mut features, c, h, w, a, &mut self.rng);
        }
        if let Some(nz) = normalize {
            let per_channel = total / n / channels;
            for rec in features.chunks_exact_mut(total / n) {
                for (ch, block) in rec.chunks_exact_mut(per_channel).enumerate() {
                    let k = if nz.mean.len() == 1 { 0 } else { ch };
                    let (m, s) = (nz.mean[k], nz.std[k]);
                    let inv = 1.0 / s;
                    for v in block {
                        *v = (*v - m) * inv;
                    }
                }
            }
        }
        let device = self.device.clone();
        self.pooled(|e| {
            let f = Dyn::from_vec(features, &fdims, &device);
            let l = Dyn::from_vec(labels, &[n], &device);
            let fid = e.insert(f, Role::Value, None)?;
            match e.insert(l, Role::Value, None) {
                Ok(lid) => Ok((fid, lid)),
                Err(err) => {
                    e.release(fid);
                    Err(err)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_and_crop_move_pixels() {
        // One 1x2x3 record: flip only.
        let mut f = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut rng = Rng::main(0);
        let a = Augment {
            crop_padding: 0,
            horizontal_flip: true,
        };
        // Draw until the coin says flip (the coin is the only draw).
        let mut probe = rng.clone();
        while !probe.coin() {
            rng.coin();
            probe = rng.clone();
        }
        augment_records(&mut f, 1, 2, 3, a, &mut rng);
        assert_eq!(f, vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        // Crop with padding 1: every output pixel is an input pixel or zero, and the record is
        // a shifted copy.
        let mut g: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let orig = g.clone();
        augment_records(
            &mut g,
            1,
            4,
            4,
            Augment {
                crop_padding: 1,
                horizontal_flip: false,
            },
            &mut Rng::main(5),
        );
        assert!(g.iter().all(|v| *v == 0.0 || orig.contains(v)));
    }
}
