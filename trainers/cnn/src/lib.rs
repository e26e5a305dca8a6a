//! `cnn`: an image classifier for Chiron that sizes itself from the dataset's schema.
//!
//! Input `[c, h, w]` (e.g. `[1, 28, 28]` Fashion-MNIST, `[3, 32, 32]` CIFAR-10). Blocks of
//! `conv 3×3 (pad 1, no bias) → batch norm → ReLU → max-pool 2×2` with 32, 64, 128 channels,
//! added while the feature map is at least 8 pixels wide (two blocks for 28×28, three for
//! 32×32), then `flatten → linear 256 → ReLU → dropout → linear classes`.
//!
//! Inputs are normalised per channel with statistics measured on the `train` split (saved with
//! the model, so `predict` applies the same). Three-channel data is augmented with a random
//! 4-pixel crop and horizontal flips (host-side).
//!
//! Hyper-parameters (all optional): `lr` (0.05), `momentum` (0.9), `weight_decay` (5e-4),
//! `augment` (1 for 3 channels, else 0), `dropout` (0.25), `hidden` (256),
//! `stats_records` (records used for the normalisation statistics, 10,000).

use chiron_sdk::data::{self, Augment, Batches};
use chiron_sdk::nn::{
    BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential, Vars,
};
use chiron_sdk::optim::{Schedule, Sgd};
use chiron_sdk::report::Metric;
use chiron_sdk::vision::{channel_stats, evaluate, image_shape, train_epoch};
use chiron_sdk::{Conv2dOptions, Error, Pool2dOptions, Result, Tensor, TrainConfig, Trainer};
use chiron_sdk::{model, report};

/// The trainer (no state: each export runs in a fresh instance).
pub struct Cnn;

const MEAN: &str = "norm.mean";
const STD: &str = "norm.std";
/// Channels of the successive blocks.
const WIDTHS: [u32; 3] = [32, 64, 128];

/// The network for `[c, h, w]` inputs. Returns the model.
fn network(
    vs: &mut Vars,
    shape: [u32; 3],
    hidden: u32,
    dropout: f32,
    classes: u32,
) -> Result<Sequential> {
    let [mut channels, mut h, mut w] = shape;
    let mut net = Sequential::new();
    for (i, &width) in WIDTHS.iter().enumerate() {
        if h.min(w) < 8 {
            break;
        }
        let name = format!("block{i}");
        net.push(Conv2d::no_bias(
            vs,
            &format!("{name}.conv"),
            channels,
            width,
            3,
            Conv2dOptions::new().padding(1),
        )?);
        net.push(BatchNorm2d::new(vs, &format!("{name}.bn"), width)?);
        net.push(ReLU);
        net.push(MaxPool2d(Pool2dOptions::new(2)));
        channels = width;
        h /= 2;
        w /= 2;
    }
    let flat = channels
        .checked_mul(h)
        .and_then(|v| v.checked_mul(w))
        .ok_or(Error::InvalidShape)?;
    net.push(Flatten(1));
    net.push(Linear::new(vs, "fc1", flat, hidden)?);
    net.push(ReLU);
    if !vs.is_loading() && dropout > 0.0 {
        net.push(Dropout::new(dropout));
    }
    net.push(Linear::new(vs, "fc2", hidden, classes)?);
    Ok(net)
}

impl Trainer for Cnn {
    fn train(config: TrainConfig) -> Result<()> {
        let schema = data::schema();
        let shape = image_shape(&schema.shape, 0)?;
        let hidden = config.hyper("hidden", 256.0) as u32;
        let dropout = config.hyper("dropout", 0.25);
        let augment_default = if shape[0] == 3 { 1.0 } else { 0.0 };
        let augment = (config.hyper("augment", augment_default) != 0.0).then_some(Augment {
            crop_padding: 4,
            horizontal_flip: true,
        });
        let stats_records = config.hyper("stats_records", 10_000.0) as u64;

        let normalize = channel_stats(&schema, stats_records)?;
        let mean_t = Tensor::from_data(&[shape[0]], &normalize.mean)?;
        let std_t = Tensor::from_data(&[shape[0]], &normalize.std)?;

        let mut vs = Vars::fresh();
        let mut net = network(&mut vs, shape, hidden, dropout, schema.classes)?;

        let per_epoch =
            Batches::shuffled("train", 0, config.batch_size, true)?.num_batches() as u64;
        let total = u64::from(config.epochs) * per_epoch;
        let lr = config.hyper("lr", 0.05);
        let opt = Sgd::new(lr)
            .momentum(config.hyper("momentum", 0.9))
            .nesterov()
            .weight_decay(config.hyper("weight_decay", 5e-4))
            .warmup((total / 20).min(500))
            .schedule(Schedule::Cosine((total, 0.0)))
            .build(&net.parameters())?;

        // A resumed job continues after its last checkpoint with the same state.
        let start = model::resume(&net.named_tensors(), &opt)?;
        let mut step = u64::from(start) * per_epoch;
        for epoch in start..config.epochs {
            net.set_training(true);
            let stats = train_epoch(
                &net,
                &opt,
                &normalize,
                augment,
                epoch,
                config.batch_size,
                &mut step,
                total,
            )?;
            report::metric(Metric::TrainLoss, step, stats.loss);
            report::metric(Metric::TrainAccuracy, step, stats.accuracy);
            model::checkpoint(epoch + 1, &net.named_tensors(), &opt)?;
        }

        net.set_training(false);
        if schema.records("test") > 0 {
            let (correct, n) = evaluate(&schema, &net, &normalize, "test")?;
            report::metric(Metric::TestAccuracy, step, correct as f32 / n.max(1) as f32);
        }

        let mut named = net.named_tensors();
        named.push((MEAN, &mean_t));
        named.push((STD, &std_t));
        model::save_named(&named)
    }

    fn predict(input: &Tensor) -> Result<Tensor> {
        let shape = image_shape(&input.shape(), 1)?;
        let mut vs = Vars::load()?;
        let mean = vs
            .take_saved(MEAN)
            .ok_or(Error::InvalidArgument)?
            .to_list()?;
        let std = vs
            .take_saved(STD)
            .ok_or(Error::InvalidArgument)?
            .to_list()?;
        let fc = |name: &str| -> Result<u32> {
            vs.saved_shape(name)
                .and_then(|s| s.first().copied())
                .ok_or(Error::InvalidArgument)
        };
        let hidden = fc("fc1.weight")?;
        let classes = fc("fc2.weight")?;
        let net = network(&mut vs, shape, hidden, 0.0, classes)?;
        net.forward(&input.normalize_channels(&mean, &std)?)
    }
}

chiron_sdk::export_trainer!(Cnn);
