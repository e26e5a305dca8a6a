//! Helpers image trainers share: the `[c, h, w]` of a schema, per-channel normalisation
//! statistics measured on the `train` split, and top-1 evaluation of a network on a split.

use crate::data::{self, Batches, Normalize, Schema};
use crate::nn::Module;
use crate::{Error, Result, Tensor};

/// Records per batch of the statistics and evaluation passes (no gradients: larger is cheaper).
pub const PASS_BATCH: u32 = 256;

/// `[c, h, w]` of a schema's record shape or of an input batch shape (`skip` leading axes).
pub fn image_shape(shape: &[u32], skip: usize) -> Result<[u32; 3]> {
    match shape.get(skip..) {
        Some(&[c, h, w]) => Ok([c, h, w]),
        _ => Err(Error::InvalidShape),
    }
}

/// Per-channel mean and standard deviation over (up to `limit` records of) the `train` split.
pub fn channel_stats(schema: &Schema, limit: u64) -> Result<Normalize> {
    let [c, h, w] = image_shape(&schema.shape, 0)?;
    let c = c as usize;
    let per_record = f64::from(h) * f64::from(w);
    let mut sum = vec![0f64; c];
    let mut sum_sq = vec![0f64; c];
    let n = schema.records("train").min(limit);
    for idx in Batches::over((0..n).collect(), PASS_BATCH, false)? {
        let (x, _labels) = data::batch("train", &idx, None, None)?;
        // [n, c, h, w] → [c] by summing axes 0, then (what were) 2 and 3.
        let per_channel = |t: &Tensor| -> Result<Vec<f32>> {
            t.sum(0, false)?.sum(1, false)?.sum(1, false)?.to_list()
        };
        for (acc, v) in sum.iter_mut().zip(per_channel(&x)?) {
            *acc += f64::from(v);
        }
        for (acc, v) in sum_sq.iter_mut().zip(per_channel(&x.mul(&x)?)?) {
            *acc += f64::from(v);
        }
    }
    let count = (n as f64 * per_record).max(1.0);
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let std = sum_sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| ((q / count - m * m).max(0.0).sqrt().max(1e-3)) as f32)
        .collect();
    Ok(Normalize {
        mean: mean.into_iter().map(|m| m as f32).collect(),
        std,
    })
}

/// Correct top-1 predictions of `net` on `split` and its record count (call in evaluation
/// mode).
pub fn evaluate(
    schema: &Schema,
    net: &dyn Module,
    normalize: &Normalize,
    split: &str,
) -> Result<(u64, u64)> {
    let mut correct = 0;
    let mut total = 0;
    for idx in Batches::sequential(schema, split, PASS_BATCH)? {
        let (x, y) = data::batch(split, &idx, Some(normalize), None)?;
        correct += net.forward(&x)?.correct(&y)?;
        total += idx.len() as u64;
    }
    Ok((correct, total))
}

/// Loss and accuracy of one training epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// Mean training loss over the epoch's batches.
    pub loss: f32,
    /// Fraction of training records classified correctly (as the model was during the epoch).
    pub accuracy: f32,
}

/// One epoch of classification training on `train`: seeded shuffle of `epoch`, full batches of
/// `batch_size` (the last partial one dropped), normalised and optionally augmented host-side,
/// cross-entropy, backward, `optimizer.step`; reports progress as `step` of `total` (advancing
/// `step`). Call with the network in training mode.
#[allow(clippy::too_many_arguments)]
pub fn train_epoch(
    net: &dyn Module,
    optimizer: &crate::optim::Optimizer,
    normalize: &Normalize,
    augment: Option<data::Augment>,
    epoch: u32,
    batch_size: u32,
    step: &mut u64,
    total: u64,
) -> Result<EpochStats> {
    let mut loss_sum = 0f64;
    let mut correct = 0u64;
    let mut seen = 0u64;
    let mut batches = 0u64;
    for idx in Batches::shuffled("train", epoch, batch_size, true)? {
        let (x, y) = data::batch("train", &idx, Some(normalize), augment)?;
        let logits = net.forward(&x)?;
        let loss = logits.cross_entropy(&y)?;
        loss.backward()?;
        optimizer.step()?;
        loss_sum += f64::from(loss.item()?);
        correct += logits.correct(&y)?;
        seen += idx.len() as u64;
        batches += 1;
        *step += 1;
        crate::report::progress(*step, total);
    }
    Ok(EpochStats {
        loss: (loss_sum / batches.max(1) as f64) as f32,
        accuracy: correct as f32 / seen.max(1) as f32,
    })
}
