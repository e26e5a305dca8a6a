//! `resnet`: the CIFAR ResNet family (He et al. 2016, §4.2) for Chiron, for `[c, h, w]` images
//! (e.g. `[3, 32, 32]` CIFAR-10).
//!
//! `conv 3×3 (width) → BN → ReLU`, then three stages of `n` basic blocks with `width`, `2·width`
//! and `4·width` channels (the first block of stages 2 and 3 halves the resolution; its shortcut
//! is a 1×1 convolution with batch norm), then global average pooling and a linear classifier.
//! `depth = 6n + 2`: ResNet-8 (`n = 1`), ResNet-20 (`n = 3`), ResNet-32, ...
//!
//! Inputs are normalised per channel with statistics measured on the `train` split (saved with
//! the model). Three-channel data gets a random 4-pixel crop and horizontal flips (host-side).
//! SGD with Nesterov momentum 0.9, weight decay 5e-4, linear warm-up then cosine decay.
//!
//! Hyper-parameters (all optional): `depth` (20), `width` (16), `lr` (0.1), `momentum` (0.9),
//! `weight_decay` (5e-4), `augment` (1 for 3 channels, else 0), `stats_records` (10,000).

use chiron_sdk::data::{self, Augment, Batches};
use chiron_sdk::nn::{
    AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, Module, ReLU, Sequential, Vars,
};
use chiron_sdk::optim::{Schedule, Sgd};
use chiron_sdk::report::{self, Metric};
use chiron_sdk::vision::{channel_stats, evaluate, image_shape, train_epoch};
use chiron_sdk::{Conv2dOptions, Error, Result, Tensor, TrainConfig, Trainer, model};

/// The trainer (no state: each export runs in a fresh instance).
pub struct ResNet;

const MEAN: &str = "norm.mean";
const STD: &str = "norm.std";

/// A basic residual block: two 3×3 convolutions with batch norm, plus the input (or its 1×1
/// projection when the shape changes), then ReLU.
struct Block {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    shortcut: Option<(Conv2d, BatchNorm2d)>,
}

impl Block {
    fn new(vs: &mut Vars, name: &str, inputs: u32, outputs: u32, stride: u32) -> Result<Self> {
        let conv3 = Conv2dOptions::new().padding(1);
        let shortcut = if stride != 1 || inputs != outputs {
            Some((
                Conv2d::no_bias(
                    vs,
                    &format!("{name}.down.conv"),
                    inputs,
                    outputs,
                    1,
                    Conv2dOptions::new().stride(stride),
                )?,
                BatchNorm2d::new(vs, &format!("{name}.down.bn"), outputs)?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: Conv2d::no_bias(
                vs,
                &format!("{name}.conv1"),
                inputs,
                outputs,
                3,
                conv3.stride(stride),
            )?,
            bn1: BatchNorm2d::new(vs, &format!("{name}.bn1"), outputs)?,
            conv2: Conv2d::no_bias(vs, &format!("{name}.conv2"), outputs, outputs, 3, conv3)?,
            bn2: BatchNorm2d::new(vs, &format!("{name}.bn2"), outputs)?,
            shortcut,
        })
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let h = self.bn2.forward(&self.conv2.forward(&h)?)?;
        match &self.shortcut {
            Some((conv, bn)) => h.add(&bn.forward(&conv.forward(x)?)?)?.relu(),
            None => h.add(x)?.relu(),
        }
    }
    fn parameters(&self) -> Vec<&Tensor> {
        let mut p = self.conv1.parameters();
        p.extend(self.bn1.parameters());
        p.extend(self.conv2.parameters());
        p.extend(self.bn2.parameters());
        if let Some((c, b)) = &self.shortcut {
            p.extend(c.parameters());
            p.extend(b.parameters());
        }
        p
    }
    fn named_tensors(&self) -> Vec<(&str, &Tensor)> {
        let mut t = self.conv1.named_tensors();
        t.extend(self.bn1.named_tensors());
        t.extend(self.conv2.named_tensors());
        t.extend(self.bn2.named_tensors());
        if let Some((c, b)) = &self.shortcut {
            t.extend(c.named_tensors());
            t.extend(b.named_tensors());
        }
        t
    }
    fn set_training(&mut self, training: bool) {
        self.bn1.set_training(training);
        self.bn2.set_training(training);
        if let Some((_, b)) = &mut self.shortcut {
            b.set_training(training);
        }
    }
}

/// The network: `blocks` basic blocks per stage, `width` channels in the first stage.
fn network(
    vs: &mut Vars,
    channels: u32,
    width: u32,
    blocks: u32,
    classes: u32,
) -> Result<Sequential> {
    let mut net = Sequential::new();
    net.push(Conv2d::no_bias(
        vs,
        "stem.conv",
        channels,
        width,
        3,
        Conv2dOptions::new().padding(1),
    )?);
    net.push(BatchNorm2d::new(vs, "stem.bn", width)?);
    net.push(ReLU);
    let mut inputs = width;
    for stage in 0..3u32 {
        let outputs = width << stage;
        for b in 0..blocks {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            net.push(Block::new(
                vs,
                &format!("stage{stage}.block{b}"),
                inputs,
                outputs,
                stride,
            )?);
            inputs = outputs;
        }
    }
    net.push(AdaptiveAvgPool2d((1, 1)));
    net.push(Flatten(1));
    net.push(Linear::new(vs, "fc", inputs, classes)?);
    Ok(net)
}

/// Blocks per stage of a `depth` (`6n + 2`, n ≥ 1).
fn blocks_for(depth: u32) -> Result<u32> {
    if depth < 8 || !(depth - 2).is_multiple_of(6) {
        return Err(Error::InvalidArgument);
    }
    Ok((depth - 2) / 6)
}

impl Trainer for ResNet {
    fn train(config: TrainConfig) -> Result<()> {
        let schema = data::schema();
        let shape = image_shape(&schema.shape, 0)?;
        let blocks = blocks_for(config.hyper("depth", 20.0) as u32)?;
        let width = config.hyper("width", 16.0) as u32;
        let augment_default = if shape[0] == 3 { 1.0 } else { 0.0 };
        let augment = (config.hyper("augment", augment_default) != 0.0).then_some(Augment {
            crop_padding: 4,
            horizontal_flip: true,
        });
        let normalize = channel_stats(&schema, config.hyper("stats_records", 10_000.0) as u64)?;
        let mean_t = Tensor::from_data(&[shape[0]], &normalize.mean)?;
        let std_t = Tensor::from_data(&[shape[0]], &normalize.std)?;

        let mut vs = Vars::fresh();
        let mut net = network(&mut vs, shape[0], width, blocks, schema.classes)?;

        let per_epoch =
            Batches::shuffled("train", 0, config.batch_size, true)?.num_batches() as u64;
        let total = u64::from(config.epochs) * per_epoch;
        let lr = config.hyper("lr", 0.1);
        let opt = Sgd::new(lr)
            .momentum(config.hyper("momentum", 0.9))
            .nesterov()
            .weight_decay(config.hyper("weight_decay", 5e-4))
            .warmup((total / 20).min(1000))
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
        let dim = |vs: &Vars, name: &str| -> Result<u32> {
            vs.saved_shape(name)
                .and_then(|s| s.first().copied())
                .ok_or(Error::InvalidArgument)
        };
        let width = dim(&vs, "stem.conv.weight")?;
        let classes = dim(&vs, "fc.weight")?;
        let mut blocks = 0;
        while vs
            .saved_shape(&format!("stage0.block{blocks}.conv1.weight"))
            .is_some()
        {
            blocks += 1;
        }
        let mut net = network(&mut vs, shape[0], width, blocks.max(1), classes)?;
        net.set_training(false);
        net.forward(&input.normalize_channels(&mean, &std)?)
    }
}

chiron_sdk::export_trainer!(ResNet);
