//! `bench-refcnn`: the reference CNN of the engine benchmark, as a sandboxed trainer.
//!
//! Model: conv 3→32→64→128 (3×3, pad 1, with bias), each + ReLU + 2×2 max-pool; flatten;
//! linear 2048→256, ReLU, linear 256→classes; cross-entropy; SGD lr 0.01, momentum 0.9, no
//! Nesterov, no weight decay, constant rate. The host-side mirror of exactly these calls is
//! `native_train` in `bench/engine/src/main.rs`: keep the two in step.
//!
//! `train` runs `steps` (hyper-parameter, default 20) optimizer steps on batches of
//! `batch_size` consecutive `train` records (wrapping around), each fetched through
//! `data.batch` without normalisation or augmentation, reads the loss back each step (as a
//! real trainer that logs it would), reports progress, and saves the model. `predict` rebuilds
//! the network from the saved tensors and returns the logits.

use chiron_sdk::data;
use chiron_sdk::nn::{Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential, Vars};
use chiron_sdk::optim::Sgd;
use chiron_sdk::{Conv2dOptions, Error, Pool2dOptions, Result, Tensor, TrainConfig, Trainer};
use chiron_sdk::{model, report};

/// The trainer (no state: each export runs in a fresh instance).
pub struct RefCnn;

/// Channels of the three convolution blocks.
const WIDTHS: [u32; 3] = [32, 64, 128];

/// The reference network for 3×32×32 inputs and `classes` outputs.
fn network(vs: &mut Vars, classes: u32) -> Result<Sequential> {
    let mut net = Sequential::new();
    let mut channels = 3;
    for (i, &width) in WIDTHS.iter().enumerate() {
        net.push(Conv2d::new(
            vs,
            &format!("conv{i}"),
            channels,
            width,
            3,
            Conv2dOptions::new().padding(1),
        )?);
        net.push(ReLU);
        net.push(MaxPool2d(Pool2dOptions::new(2)));
        channels = width;
    }
    net.push(Flatten(1));
    net.push(Linear::new(vs, "fc1", 128 * 4 * 4, 256)?);
    net.push(ReLU);
    net.push(Linear::new(vs, "fc2", 256, classes)?);
    Ok(net)
}

impl Trainer for RefCnn {
    fn train(config: TrainConfig) -> Result<()> {
        let schema = data::schema();
        if schema.shape != [3, 32, 32] {
            return Err(Error::InvalidShape);
        }
        let steps = config.hyper("steps", 20.0) as u64;
        let batch = u64::from(config.batch_size);
        let records = schema.records("train");
        if batch == 0 || records < batch {
            return Err(Error::InvalidArgument);
        }
        let mut vs = Vars::fresh();
        let net = network(&mut vs, schema.classes)?;
        let opt = Sgd::new(0.01).momentum(0.9).build(&net.parameters())?;
        for step in 0..steps {
            let start = (step * batch) % (records - batch + 1);
            let idx: Vec<u64> = (start..start + batch).collect();
            let (x, y) = data::batch("train", &idx, None, None)?;
            let logits = net.forward(&x)?;
            let loss = logits.cross_entropy(&y)?;
            loss.backward()?;
            opt.step()?;
            let value = loss.item()?;
            if !value.is_finite() {
                return Err(Error::InvalidArgument);
            }
            report::progress(step + 1, steps);
        }
        model::save(&net)
    }

    fn predict(input: &Tensor) -> Result<Tensor> {
        let mut vs = Vars::load()?;
        let classes = vs
            .saved_shape("fc2.weight")
            .and_then(|s| s.first().copied())
            .ok_or(Error::InvalidArgument)?;
        let net = network(&mut vs, classes)?;
        net.forward(input)
    }
}

chiron_sdk::export_trainer!(RefCnn);
