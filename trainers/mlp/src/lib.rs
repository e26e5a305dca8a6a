//! `mlp`: a tabular classifier for Chiron (UCI digits, breast cancer, ...).
//!
//! Every record is flattened to a feature vector, standardised per feature with statistics the
//! trainer measures on the `train` split (saved with the model, so `predict` applies the same),
//! then fed through two hidden ReLU layers: `features → 128 → 64 → classes`.
//!
//! Hyper-parameters (job description, all optional): `lr` (default 3e-3 for Adam, 0.05 for
//! SGD), `sgd` (1 = SGD with Nesterov momentum 0.9 instead of Adam), `weight_decay` (1e-3, L2),
//! `hidden1` (128), `hidden2` (64), `patience` (10), `validate_from` (5000). The learning rate
//! follows a cosine schedule down to 1 % over the job's `epochs`.
//!
//! Convergence without tuning: give a generous `epochs` (`chiron trainer test` defaults to 100).
//! On a `train` split of at least `validate_from` records, `epochs` is a maximum: every tenth
//! record is held out for validation, training stops once the validation loss has not improved
//! for `patience` epochs, and the model saved (and the test accuracy reported) is the one of the
//! best validation epoch. A smaller split, or `patience = 0`, trains on all of `train` for
//! exactly `epochs`. A resumed job keeps its weights but starts the patience count afresh.
//! Measured on UCI digits (80/20 split, batch 64, seeds 0–2): test accuracy 0.944–0.964 at 5
//! epochs, 0.961–0.975 at 20, 0.981–0.983 at 100.

use chiron_sdk::data::Batches;
use chiron_sdk::nn::{Linear, Module, ReLU, Sequential, Vars};
use chiron_sdk::optim::{Adam, Schedule, Sgd};
use chiron_sdk::report::Metric;
use chiron_sdk::{Error, Result, Tensor, TrainConfig, Trainer, data, model, report};

/// The trainer (no state: each export runs in a fresh instance).
pub struct Mlp;

/// Names of the standardisation statistics saved beside the layers.
const MEAN: &str = "norm.mean";
const STD: &str = "norm.std";

/// Records per batch of the statistics and evaluation passes (no gradients, larger is cheaper).
const PASS_BATCH: u32 = 256;

/// The network: `features → hidden1 → hidden2 → classes` with ReLU.
fn network(vs: &mut Vars, features: u32, h1: u32, h2: u32, classes: u32) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Linear::new(vs, "fc1", features, h1)?)
        .add(ReLU)
        .add(Linear::new(vs, "fc2", h1, h2)?)
        .add(ReLU)
        .add(Linear::new(vs, "fc3", h2, classes)?))
}

/// Per-feature mean and standard deviation over the `train` split, in one pass.
fn feature_stats(schema: &data::Schema, features: u32) -> Result<(Vec<f32>, Vec<f32>)> {
    let f = usize::try_from(features).map_err(|_| Error::InvalidShape)?;
    let mut sum = vec![0f64; f];
    let mut sum_sq = vec![0f64; f];
    let mut n = 0u64;
    for idx in Batches::sequential(schema, "train", PASS_BATCH)? {
        let (x, _labels) = data::batch("train", &idx, None, None)?;
        let x = x.flatten(1)?;
        let s = x.sum(0, false)?.to_list()?;
        let q = x.mul(&x)?.sum(0, false)?.to_list()?;
        for (acc, v) in sum.iter_mut().zip(s) {
            *acc += f64::from(v);
        }
        for (acc, v) in sum_sq.iter_mut().zip(q) {
            *acc += f64::from(v);
        }
        n += idx.len() as u64;
    }
    if n == 0 {
        return Err(Error::OutOfRange);
    }
    let n = n as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std: Vec<f64> = sum_sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| (q / n - m * m).max(0.0).sqrt())
        .collect();
    // Features constant on `train` (e.g. border pixels) get the average spread instead of ~0,
    // so an unusual value at prediction time cannot blow up.
    let avg_std = std.iter().sum::<f64>() / std.len().max(1) as f64;
    let floor = (0.1 * avg_std).max(1e-6);
    Ok((
        mean.iter().map(|&m| m as f32).collect(),
        std.iter().map(|&s| s.max(floor) as f32).collect(),
    ))
}

/// `(x.flatten(1) - mean) / std`, broadcasting `[features]` over `[n, features]`.
fn standardise(x: &Tensor, mean: &Tensor, std: &Tensor) -> Result<Tensor> {
    x.flatten(1)?.sub(mean)?.div(std)
}

/// Correct predictions on records `indices` of `split` and their count.
fn evaluate(
    net: &Sequential,
    mean: &Tensor,
    std: &Tensor,
    split: &str,
    indices: Vec<u64>,
) -> Result<(u64, u64)> {
    let mut correct = 0;
    let mut total = 0;
    for idx in Batches::over(indices, PASS_BATCH, false)? {
        let (x, y) = data::batch(split, &idx, None, None)?;
        let scores = net.forward(&standardise(&x, mean, std)?)?;
        correct += scores.correct(&y)?;
        total += idx.len() as u64;
    }
    Ok((correct, total))
}

/// Summed cross-entropy over records `indices` of `split` (lower is better; finer-grained than
/// accuracy on a small validation set, so early stopping does not stop on a plateau of it).
fn summed_loss(
    net: &Sequential,
    mean: &Tensor,
    std: &Tensor,
    split: &str,
    indices: Vec<u64>,
) -> Result<f64> {
    let mut sum = 0f64;
    for idx in Batches::over(indices, PASS_BATCH, false)? {
        let (x, y) = data::batch(split, &idx, None, None)?;
        let scores = net.forward(&standardise(&x, mean, std)?)?;
        sum += f64::from(scores.cross_entropy(&y)?.item()?) * idx.len() as f64;
    }
    Ok(sum)
}

/// Every record of the `test` split.
fn test_indices(schema: &data::Schema) -> Vec<u64> {
    (0..schema.records("test")).collect()
}

/// The weights of the best validation epoch so far, with that epoch's test result.
struct Best {
    /// Summed validation loss.
    loss: f64,
    epoch: u32,
    step: u64,
    /// Name, shape and values of every layer tensor.
    weights: Vec<(String, Vec<u32>, Vec<f32>)>,
    /// Correct test predictions and the test split's size, measured with these weights.
    test: (u64, u64),
}

impl Best {
    fn keep(net: &Sequential, loss: f64, epoch: u32, step: u64) -> Result<Self> {
        let weights = net
            .named_tensors()
            .into_iter()
            .map(|(name, t)| Ok((name.to_string(), t.shape(), t.to_list()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            loss,
            epoch,
            step,
            weights,
            test: (0, 0),
        })
    }

    fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        self.weights
            .iter()
            .map(|(name, shape, values)| Ok((name.clone(), Tensor::from_data(shape, values)?)))
            .collect()
    }
}

impl Trainer for Mlp {
    fn train(config: TrainConfig) -> Result<()> {
        let schema = data::schema();
        let features = schema.features()?;
        let classes = schema.classes;
        let h1 = config.hyper("hidden1", 128.0) as u32;
        let h2 = config.hyper("hidden2", 64.0) as u32;
        let use_sgd = config.hyper("sgd", 0.0) != 0.0;
        let weight_decay = config.hyper("weight_decay", 1e-3);

        let (mean, std) = feature_stats(&schema, features)?;
        let mean = Tensor::from_data(&[features], &mean)?;
        let std = Tensor::from_data(&[features], &std)?;

        let mut vs = Vars::fresh();
        let net = network(&mut vs, features, h1, h2, classes)?;

        // Every tenth record held out for early stopping, on a split large enough that a tenth
        // measures well and training to the end is costly; a small one trains on all of it for
        // every epoch (UCI digits: 0.98 test accuracy at 100 epochs, 0.967 with a tenth out).
        let patience = config.hyper("patience", 10.0).max(0.0) as u32;
        let validate_from = config.hyper("validate_from", 5000.0).max(10.0) as u64;
        let train_records = schema.records("train");
        let validating = patience > 0 && train_records >= validate_from;
        let held_out = |i: &u64| validating && i % 10 == 9;
        let validation: Vec<u64> = (0..train_records).filter(held_out).collect();
        let fitted = train_records - validation.len() as u64;
        let per_epoch = fitted.div_ceil(u64::from(config.batch_size.max(1)));
        let total = u64::from(config.epochs) * per_epoch;
        let opt = if use_sgd {
            let lr = config.hyper("lr", 0.05);
            Sgd::new(lr)
                .momentum(0.9)
                .nesterov()
                .weight_decay(weight_decay)
                .schedule(Schedule::Cosine((total, lr * 0.01)))
                .build(&net.parameters())?
        } else {
            let lr = config.hyper("lr", 3e-3);
            Adam::new(lr)
                .weight_decay(weight_decay)
                .schedule(Schedule::Cosine((total, lr * 0.01)))
                .build(&net.parameters())?
        };

        // A resumed job continues after its last checkpoint with the same state.
        let start = model::resume(&net.named_tensors(), &opt)?;
        let mut step = u64::from(start) * per_epoch;
        let mut best: Option<Best> = None;
        for epoch in start..config.epochs {
            let order: Vec<u64> = data::shuffled("train", epoch)?
                .into_iter()
                .filter(|i| !held_out(i))
                .collect();
            let mut loss_sum = 0f64;
            let mut batches = 0u32;
            for idx in Batches::over(order, config.batch_size, false)? {
                let (x, y) = data::batch("train", &idx, None, None)?;
                let logits = net.forward(&standardise(&x, &mean, &std)?)?;
                let loss = logits.cross_entropy(&y)?;
                loss.backward()?;
                opt.step()?;
                loss_sum += f64::from(loss.item()?);
                batches += 1;
                step += 1;
                report::progress(step, total);
            }
            let avg = loss_sum / f64::from(batches.max(1));
            report::metric(Metric::TrainLoss, step, avg as f32);
            report::metric(Metric::LearningRate, step, opt.learning_rate());
            model::checkpoint(epoch + 1, &net.named_tensors(), &opt)?;
            if !validating {
                continue;
            }
            let loss = summed_loss(&net, &mean, &std, "train", validation.clone())?;
            if best.as_ref().is_none_or(|b| loss < b.loss) {
                let mut kept = Best::keep(&net, loss, epoch, step)?;
                if schema.records("test") > 0 {
                    kept.test = evaluate(&net, &mean, &std, "test", test_indices(&schema))?;
                }
                best = Some(kept);
            } else if best.as_ref().is_some_and(|b| epoch - b.epoch >= patience) {
                break;
            }
        }

        let named: Vec<(String, Tensor)> = match &best {
            Some(b) => b.tensors()?,
            None => Vec::new(),
        };
        let current = net.named_tensors();
        let mut saved: Vec<(&str, &Tensor)> = if best.is_some() {
            named.iter().map(|(n, t)| (n.as_str(), t)).collect()
        } else {
            current
        };
        if schema.records("test") > 0 {
            let (correct, n) = match &best {
                Some(b) => b.test,
                None => evaluate(&net, &mean, &std, "test", test_indices(&schema))?,
            };
            let at = best.as_ref().map_or(step, |b| b.step);
            report::metric(Metric::TestAccuracy, at, correct as f32 / n.max(1) as f32);
        }
        saved.push((MEAN, &mean));
        saved.push((STD, &std));
        model::save_named(&saved)
    }

    fn predict(input: &Tensor) -> Result<Tensor> {
        let mut vs = Vars::load()?;
        let mean = vs.take_saved(MEAN).ok_or(Error::InvalidArgument)?;
        let std = vs.take_saved(STD).ok_or(Error::InvalidArgument)?;
        let dim = |vs: &Vars, name: &str, axis: usize| -> Result<u32> {
            vs.saved_shape(name)
                .and_then(|s| s.get(axis).copied())
                .ok_or(Error::InvalidArgument)
        };
        let features = dim(&vs, "fc1.weight", 1)?;
        let h1 = dim(&vs, "fc1.weight", 0)?;
        let h2 = dim(&vs, "fc2.weight", 0)?;
        let classes = dim(&vs, "fc3.weight", 0)?;
        let net = network(&mut vs, features, h1, h2, classes)?;
        net.forward(&standardise(input, &mean, &std)?)
    }
}

chiron_sdk::export_trainer!(Mlp);
