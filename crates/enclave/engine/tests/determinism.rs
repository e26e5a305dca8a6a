//! Same seed and same calls give bit-identical parameters; another seed does not.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use chiron_engine::{
    AdamConfig, Augment, Conv2dOptions, DataSchema, Engine, EngineConfig, EngineError, Init,
    LrConfig, Normalize, Pool2dOptions, RecordSource, Result, Schedule, SgdConfig,
};
use common::values;

/// 64 synthetic [1, 6, 6] records of 3 classes.
struct Synthetic {
    features: Vec<f32>,
    labels: Vec<u32>,
}

impl Synthetic {
    fn new() -> Self {
        let n = 64;
        Self {
            features: values(n * 36, 11, 0.0, 1.0),
            labels: (0..n as u32).map(|i| i % 3).collect(),
        }
    }
}

impl RecordSource for Synthetic {
    fn schema(&self) -> DataSchema {
        DataSchema {
            shape: vec![1, 6, 6],
            classes: 3,
            splits: vec![("train".into(), self.labels.len() as u64)],
        }
    }
    fn gather(
        &self,
        split: &str,
        indices: &[u64],
        features: &mut Vec<f32>,
        labels: &mut Vec<f32>,
    ) -> Result<()> {
        if split != "train" {
            return Err(EngineError::InvalidArgument);
        }
        for &i in indices {
            let i = usize::try_from(i).map_err(|_| EngineError::OutOfRange)?;
            let row = self
                .features
                .get(i * 36..(i + 1) * 36)
                .ok_or(EngineError::OutOfRange)?;
            features.extend_from_slice(row);
            labels.push(self.labels[i] as f32);
        }
        Ok(())
    }
}

/// A small CNN + dropout trained for two epochs (SGD with Nesterov, then AdamW), with
/// shuffled, augmented batches; returns every parameter's values.
fn train(seed: u64) -> Vec<Vec<f32>> {
    let mut e = Engine::new(EngineConfig {
        seed,
        max_live_bytes: 1 << 30,
        max_tensors: 10_000,
        max_steps: 1_000,
    })
    .with_data(Arc::new(Synthetic::new()));
    let w1 = e
        .parameter(&[4, 1, 3, 3], Init::KaimingNormal, 9, 36)
        .unwrap();
    let b1 = e.parameter(&[4], Init::BiasUniform, 9, 4).unwrap();
    let gamma = e.parameter(&[4], Init::Ones, 4, 4).unwrap();
    let beta = e.parameter(&[4], Init::Zeros, 4, 4).unwrap();
    let rm = e.buffer(&[4], 0.0).unwrap();
    let rv = e.buffer(&[4], 1.0).unwrap();
    let w2 = e.parameter(&[3, 36], Init::XavierUniform, 36, 3).unwrap();
    let b2 = e.parameter(&[3], Init::BiasUniform, 36, 3).unwrap();
    let params = [w1, b1, gamma, beta, w2, b2];
    let lr = LrConfig {
        base: 0.05,
        schedule: Schedule::Cosine {
            total: 16,
            min_lr: 0.001,
        },
        warmup: 2,
    };
    let sgd = e
        .sgd(
            &params,
            lr,
            SgdConfig {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-4,
            },
        )
        .unwrap();
    let adam = e
        .adam(
            &params,
            lr,
            AdamConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled: true,
            },
        )
        .unwrap();
    let norm = Normalize {
        mean: vec![0.5],
        std: vec![0.25],
    };
    let aug = Augment {
        crop_padding: 1,
        horizontal_flip: true,
    };
    for epoch in 0..2u32 {
        let order = e.shuffled("train", epoch).unwrap();
        let opt = if epoch == 0 { sgd } else { adam };
        for chunk in order.chunks(16) {
            let (x, y) = e.batch("train", chunk, Some(&norm), Some(aug)).unwrap();
            let c = e
                .conv2d(
                    x,
                    w1,
                    Some(b1),
                    Conv2dOptions {
                        stride: [1, 1],
                        padding: [1, 1],
                        dilation: [1, 1],
                        groups: 1,
                    },
                )
                .unwrap();
            let bn = e
                .batch_norm(c, gamma, beta, rm, rv, true, 0.1, 1e-5)
                .unwrap();
            let r = e.relu(bn).unwrap();
            let p = e
                .max_pool2d(
                    r,
                    Pool2dOptions {
                        kernel: [2, 2],
                        stride: [2, 2],
                        padding: [0, 0],
                    },
                )
                .unwrap();
            let f = e.flatten(p, 1).unwrap();
            let d = e.dropout(f, 0.3, true).unwrap();
            let logits = e.linear(d, w2, Some(b2)).unwrap();
            let loss = e.cross_entropy(logits, y).unwrap();
            e.backward(loss).unwrap();
            e.step(opt).unwrap();
            for t in [x, y, c, bn, r, p, f, d, logits, loss] {
                e.release(t);
            }
        }
    }
    let mut out: Vec<Vec<f32>> = params.iter().map(|&p| e.to_vec(p).unwrap()).collect();
    out.push(e.to_vec(rm).unwrap());
    out.push(e.to_vec(rv).unwrap());
    out
}

fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter()
        .map(|t| t.iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn same_seed_same_parameters_bit_for_bit() {
    let a = train(42);
    let b = train(42);
    assert_eq!(bits(&a), bits(&b));
    assert!(a.iter().flatten().all(|x| x.is_finite()));
    let c = train(43);
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn shuffles_depend_only_on_seed_split_and_epoch() {
    let mut a = Engine::new(common::config(9)).with_data(Arc::new(Synthetic::new()));
    let mut b = Engine::new(common::config(9)).with_data(Arc::new(Synthetic::new()));
    // Other draws on `b` first must not change its shuffles.
    b.parameter(&[10], Init::KaimingUniform, 3, 3).unwrap();
    assert_eq!(
        a.shuffled("train", 3).unwrap(),
        b.shuffled("train", 3).unwrap()
    );
    assert_ne!(
        a.shuffled("train", 3).unwrap(),
        a.shuffled("train", 4).unwrap()
    );
    assert_eq!(a.shuffled("nope", 0), Err(EngineError::InvalidArgument));
}
