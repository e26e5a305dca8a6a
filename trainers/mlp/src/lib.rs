//! `mlp`: a tabular classifier for Chiron (UCI digits, breast cancer, ...).
//!
//! Every record is flattened to a feature vector, standardised per feature with statistics the
//! trainer measures on the `train` split (saved with the model, so `predict` applies the same),
//! then fed through two hidden ReLU layers: `features → 128 → 64 → classes`.
//!
//! Hyper-parameters (job description, all optional): `lr` (default 3e-3 for Adam, 0.05 for
//! SGD), `sgd` (1 = SGD with Nesterov momentum 0.9 instead of Adam), `weight_decay` (1e-3, L2),
//! `hidden1` (128), `hidden2` (64). The learning rate follows a cosine schedule down to 1 % over
//! the job. Defaults measured on UCI digits (80/20 split, 30 epochs, batch 32): 0.975–0.981
//! test accuracy over five seeds.

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

/// Correct predictions on `split` and its record count.
fn evaluate(
    schema: &data::Schema,
    net: &Sequential,
    mean: &Tensor,
    std: &Tensor,
    split: &str,
) -> Result<(u64, u64)> {
    let mut correct = 0;
    let mut total = 0;
    for idx in Batches::sequential(schema, split, PASS_BATCH)? {
        let (x, y) = data::batch(split, &idx, None, None)?;
        let scores = net.forward(&standardise(&x, mean, std)?)?;
        correct += scores.correct(&y)?;
        total += idx.len() as u64;
    }
    Ok((correct, total))
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

        let per_epoch = Batches::shuffled("train", 0, config.batch_size, false)?.num_batches();
        let total = u64::from(config.epochs) * per_epoch as u64;
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
        let mut step = u64::from(start) * per_epoch as u64;
        for epoch in start..config.epochs {
            let mut loss_sum = 0f64;
            let mut batches = 0u32;
            for idx in Batches::shuffled("train", epoch, config.batch_size, false)? {
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
        }

        if schema.records("test") > 0 {
            let (correct, n) = evaluate(&schema, &net, &mean, &std, "test")?;
            report::metric(Metric::TestAccuracy, step, correct as f32 / n.max(1) as f32);
        }

        let mut named = net.named_tensors();
        named.push((MEAN, &mean));
        named.push((STD, &std));
        model::save_named(&named)
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
