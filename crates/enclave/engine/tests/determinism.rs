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

/// A confined job's thread runs every operation itself (`on_this_thread`): nothing is handed
/// to another thread, also on a second call, and the parameters are those of a pooled run bit
/// for bit.
#[test]
fn on_this_thread_runs_every_operation_inline_with_the_same_results() {
    use rayon::prelude::*;
    let pooled = train(42);
    let inline = std::thread::spawn(|| {
        let me = format!("{:?}", std::thread::current().id());
        let ran_on = || -> Vec<String> {
            assert_eq!(rayon::current_num_threads(), 1);
            let ids: std::collections::BTreeSet<String> = (0..256)
                .into_par_iter()
                .map(|_| format!("{:?}", std::thread::current().id()))
                .collect();
            ids.into_iter().collect()
        };
        let first = chiron_engine::on_this_thread(|| (ran_on(), train(42)));
        assert_eq!(first.0, std::slice::from_ref(&me));
        // Again on the same thread (already in its pool): still inline.
        assert_eq!(chiron_engine::on_this_thread(ran_on), [me]);
        first.1
    })
    .join()
    .unwrap();
    assert_eq!(bits(&inline), bits(&pooled));
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

/// The model of [`resumed_training_matches_uninterrupted_training`]: conv + batch norm +
/// dropout + linear under Adam, so parameters, buffers, optimizer moments and the generator
/// all matter.
struct Small {
    named: Vec<(String, chiron_engine::TensorId)>,
    params: Vec<chiron_engine::TensorId>,
    opt: chiron_engine::OptimizerId,
}

impl Small {
    fn new(e: &mut Engine) -> Self {
        let w1 = e
            .parameter(&[4, 1, 3, 3], Init::KaimingNormal, 9, 36)
            .unwrap();
        let gamma = e.parameter(&[4], Init::Ones, 4, 4).unwrap();
        let beta = e.parameter(&[4], Init::Zeros, 4, 4).unwrap();
        let rm = e.buffer(&[4], 0.0).unwrap();
        let rv = e.buffer(&[4], 1.0).unwrap();
        let w2 = e.parameter(&[3, 144], Init::XavierUniform, 144, 3).unwrap();
        let params = vec![w1, gamma, beta, w2];
        let lr = LrConfig {
            base: 0.01,
            schedule: Schedule::Cosine {
                total: 12,
                min_lr: 0.001,
            },
            warmup: 1,
        };
        let opt = e
            .adam(
                &params,
                lr,
                AdamConfig {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.0,
                    decoupled: false,
                },
            )
            .unwrap();
        let named = [
            ("w1", w1),
            ("gamma", gamma),
            ("beta", beta),
            ("rm", rm),
            ("rv", rv),
        ]
        .into_iter()
        .chain([("w2", w2)])
        .map(|(n, t)| (n.to_string(), t))
        .collect();
        Self { named, params, opt }
    }

    fn epoch(&self, e: &mut Engine, epoch: u32) {
        let [w1, gamma, beta, rm, rv, w2] = std::array::from_fn(|i| self.named[i].1);
        let aug = Augment {
            crop_padding: 1,
            horizontal_flip: true,
        };
        let order = e.shuffled("train", epoch).unwrap();
        for chunk in order.chunks(16) {
            let (x, y) = e.batch("train", chunk, None, Some(aug)).unwrap();
            let c = e
                .conv2d(
                    x,
                    w1,
                    None,
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
            let f = e.flatten(bn, 1).unwrap();
            let d = e.dropout(f, 0.3, true).unwrap();
            let logits = e.linear(d, w2, None).unwrap();
            let loss = e.cross_entropy(logits, y).unwrap();
            e.backward(loss).unwrap();
            e.step(self.opt).unwrap();
            for t in [x, y, c, bn, f, d, logits, loss] {
                e.release(t);
            }
        }
    }

    fn values(&self, e: &Engine) -> Vec<Vec<f32>> {
        self.named
            .iter()
            .map(|(_, t)| e.to_vec(*t).unwrap())
            .collect()
    }
}

fn synthetic_engine(seed: u64) -> Engine {
    Engine::new(common::config(seed)).with_data(Arc::new(Synthetic::new()))
}

#[test]
fn resumed_training_matches_uninterrupted_training() {
    let mut e = synthetic_engine(5);
    let m = Small::new(&mut e);
    for epoch in 0..3 {
        m.epoch(&mut e, epoch);
    }
    let uninterrupted = m.values(&e);

    // Stop after one epoch, keep only the checkpoint's bytes.
    let mut first = synthetic_engine(5);
    let m1 = Small::new(&mut first);
    m1.epoch(&mut first, 0);
    let bytes = first.checkpoint(&m1.named, m1.opt).unwrap().to_bytes();
    drop(first);

    // A new process: the trainer recreates its model (fresh initialisation), then resumes.
    let mut second = synthetic_engine(5);
    let m2 = Small::new(&mut second);
    let checkpoint = chiron_engine::EngineCheckpoint::from_bytes(&bytes).unwrap();
    assert_eq!(checkpoint.steps(), 4);
    second.restore(&checkpoint, &m2.named, m2.opt).unwrap();
    assert_eq!(second.steps_taken(), 4);
    for epoch in 1..3 {
        m2.epoch(&mut second, epoch);
    }
    assert_eq!(bits(&m2.values(&second)), bits(&uninterrupted));
    assert_eq!(m2.params.len(), 4);
}

#[test]
fn a_checkpoint_that_does_not_fit_is_refused_and_changes_nothing() {
    let mut e = synthetic_engine(6);
    let m = Small::new(&mut e);
    m.epoch(&mut e, 0);
    let checkpoint = e.checkpoint(&m.named, m.opt).unwrap();

    let mut other = synthetic_engine(7);
    let m2 = Small::new(&mut other);
    let before = m2.values(&other);
    // Wrong names, wrong order, a missing tensor: refused, nothing restored.
    let mut renamed = m2.named.clone();
    renamed[0].0 = "conv".into();
    let mut swapped = m2.named.clone();
    swapped.swap(0, 5);
    for named in [renamed, swapped, m2.named[..5].to_vec()] {
        assert_eq!(
            other.restore(&checkpoint, &named, m2.opt),
            Err(EngineError::InvalidArgument)
        );
    }
    assert_eq!(bits(&m2.values(&other)), bits(&before));
    assert_eq!(other.steps_taken(), 0);
}

#[test]
fn corrupt_checkpoint_bytes_are_refused() {
    let mut e = synthetic_engine(8);
    let m = Small::new(&mut e);
    m.epoch(&mut e, 0);
    let bytes = e.checkpoint(&m.named, m.opt).unwrap().to_bytes();
    assert!(chiron_engine::EngineCheckpoint::from_bytes(&bytes).is_ok());
    // Every truncation, and a trailing byte, is an error, not a panic.
    for cut in (0..bytes.len()).step_by(97) {
        assert!(chiron_engine::EngineCheckpoint::from_bytes(&bytes[..cut]).is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(chiron_engine::EngineCheckpoint::from_bytes(&longer).is_err());
    // A length field claiming more than is there.
    let mut huge = bytes.clone();
    huge[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(chiron_engine::EngineCheckpoint::from_bytes(&huge).is_err());
}
