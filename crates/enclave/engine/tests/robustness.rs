//! Budgets and bad arguments: every case returns its fixed code and nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use chiron_engine::{
    Augment, Conv2dOptions, DataSchema, Engine, EngineConfig, EngineError, Init, Normalize,
    Pool2dOptions, RecordSource, Result, TensorId,
};
use common::engine;
use proptest::prelude::*;

use EngineError::{
    InvalidArgument as Arg, InvalidShape as Shape, NotAllowed, OutOfRange, ResourceExhausted as Res,
};

const CONV: Conv2dOptions = Conv2dOptions {
    stride: [1, 1],
    padding: [0, 0],
    dilation: [1, 1],
    groups: 1,
};
const POOL: Pool2dOptions = Pool2dOptions {
    kernel: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
};

fn limited(max_tensors: u32, max_live_bytes: u64) -> Engine {
    Engine::new(EngineConfig {
        seed: 0,
        max_live_bytes,
        max_tensors,
        max_steps: u64::MAX,
    })
}

#[test]
fn tensor_count_budget() {
    let mut e = limited(3, 1 << 20);
    let a = e.full(&[2], 1.0).unwrap();
    let b = e.full(&[2], 1.0).unwrap();
    let c = e.add(a, b).unwrap();
    assert_eq!(e.live(), (3, 24));
    assert_eq!(e.add(a, b), Err(Res));
    assert_eq!(e.parameter(&[2], Init::Zeros, 1, 1), Err(Res));
    e.release(c);
    assert_eq!(e.live(), (2, 16));
    let c = e.add(a, b).unwrap();
    for t in [a, b, c] {
        e.release(t);
    }
    assert_eq!(e.live(), (0, 0));
    // Releasing twice or an unknown id is harmless.
    e.release(a);
    e.release(TensorId(999));
    assert_eq!(e.live(), (0, 0));
}

#[test]
fn memory_budget() {
    let mut e = limited(100, 100);
    let a = e.full(&[25], 0.5).unwrap();
    assert_eq!(e.live(), (1, 100));
    assert_eq!(e.full(&[1], 0.0), Err(Res));
    assert_eq!(e.affine(a, 1.0, 0.0), Err(Res));
    e.release(a);
    let a = e.full(&[5, 5], 0.5).unwrap();
    e.release(a);
    assert_eq!(e.live(), (0, 0));
    // Gradients count too: a parameter of 40 bytes and its gradient do not fit in 100 with
    // the loss graph's handles.
    let mut e = limited(100, 100);
    let p = e.parameter(&[10], Init::Ones, 1, 1).unwrap();
    let s = e.sum(p, None, false).unwrap();
    assert_eq!(e.live().1, 44);
    let sq = e.mul(s, s).unwrap();
    assert_eq!(e.live().1, 48);
    let big = e.full(&[4], 0.0).unwrap();
    assert_eq!(e.live().1, 64);
    assert_eq!(e.backward(sq), Err(Res));
    e.release(big);
    e.backward(sq).unwrap();
    assert_eq!(e.live().1, 88);
}

#[test]
fn absurd_shapes_never_allocate() {
    let mut e = limited(100, 1 << 20);
    assert_eq!(e.full(&[u32::MAX; 5], 0.0), Err(Res));
    assert_eq!(e.full(&[u32::MAX, u32::MAX], 0.0), Err(Res));
    assert_eq!(e.full(&[1 << 20, 1 << 20], 0.0), Err(Res));
    assert_eq!(
        e.parameter(&[u32::MAX; 3], Init::KaimingNormal, 1, 1),
        Err(Res)
    );
    assert_eq!(e.buffer(&[1 << 30], 0.0), Err(Res));
    assert_eq!(e.full(&[], 0.0), Err(Shape));
    assert_eq!(e.full(&[0], 0.0), Err(Shape));
    assert_eq!(e.full(&[3, 0, 2], 0.0), Err(Shape));
    assert_eq!(e.full(&[1; 6], 0.0), Err(Shape));
    assert_eq!(e.from_data(&[2, 2], &[1.0; 3]), Err(Shape));
    assert_eq!(e.from_data(&[u32::MAX, u32::MAX], &[1.0]), Err(Res));
    assert_eq!(e.parameter_from_data(&[2], &[1.0]), Err(Shape));
    // Broadcasting to a huge shape is checked before computing.
    let a = e.full(&[1 << 12, 1], 0.0).unwrap();
    let b = e.full(&[1 << 12], 0.0).unwrap();
    assert_eq!(e.add(a, b), Err(Res));
    assert_eq!(e.live(), (2, 2 * 4 * 4096));
}

#[test]
fn unknown_handles() {
    let mut e = engine(0);
    let x = e.full(&[2, 2], 1.0).unwrap();
    let bad = TensorId(12345);
    assert_eq!(e.shape(bad), Err(Res));
    assert_eq!(e.item(bad), Err(Res));
    assert_eq!(e.to_vec(bad), Err(Res));
    assert_eq!(e.add(x, bad), Err(Res));
    assert_eq!(e.matmul(bad, x), Err(Res));
    assert_eq!(e.linear(x, x, Some(bad)), Err(Res));
    assert_eq!(e.relu(bad), Err(Res));
    assert_eq!(e.concat(&[x, bad], 0), Err(Res));
    assert_eq!(e.backward(bad), Err(Res));
    assert_eq!(e.export_named(&[("w".into(), bad)]), Err(Res));
    // A released handle is unknown.
    e.release(x);
    assert_eq!(e.shape(x), Err(Res));
}

#[test]
fn bad_arguments_get_their_codes() {
    let mut e = engine(0);
    let x4 = e.full(&[2, 4, 5, 5], 1.0).unwrap();
    let w = e.full(&[6, 2, 3, 3], 1.0).unwrap();
    let m23 = e.full(&[2, 3], 1.0).unwrap();
    let m34 = e.full(&[3, 4], 1.0).unwrap();
    let v3 = e.full(&[3], 1.0).unwrap();
    let v2 = e.full(&[2], 1.0).unwrap();

    // Elementwise and matmul shapes.
    assert_eq!(e.add(m23, m34), Err(Shape));
    assert_eq!(e.matmul(m23, m23), Err(Shape));
    assert_eq!(e.matmul(v3, m34), Err(Shape));
    assert!(e.matmul(m23, m34).is_ok());
    assert_eq!(e.linear(m23, m34, None), Err(Shape));
    assert_eq!(e.linear(m23, m23, Some(v3)), Err(Shape));
    assert_eq!(e.linear(m23, x4, None), Err(Shape));

    // conv2d.
    let g2 = Conv2dOptions { groups: 2, ..CONV };
    assert!(e.conv2d(x4, w, None, g2).is_ok());
    assert_eq!(e.conv2d(x4, w, None, CONV), Err(Shape));
    assert_eq!(
        e.conv2d(x4, w, None, Conv2dOptions { groups: 0, ..CONV }),
        Err(Arg)
    );
    assert_eq!(
        e.conv2d(x4, w, None, Conv2dOptions { groups: 3, ..CONV }),
        Err(Arg)
    );
    assert_eq!(
        e.conv2d(
            x4,
            w,
            None,
            Conv2dOptions {
                stride: [0, 1],
                ..g2
            }
        ),
        Err(Arg)
    );
    assert_eq!(
        e.conv2d(
            x4,
            w,
            None,
            Conv2dOptions {
                dilation: [1, 0],
                ..g2
            }
        ),
        Err(Arg)
    );
    assert_eq!(
        e.conv2d(
            x4,
            w,
            None,
            Conv2dOptions {
                dilation: [3, 3],
                ..g2
            }
        ),
        Err(Shape)
    );
    assert_eq!(e.conv2d(x4, w, Some(v3), g2), Err(Shape));
    assert_eq!(e.conv2d(m23, w, None, g2), Err(Shape));
    let huge = Conv2dOptions {
        padding: [u32::MAX, u32::MAX],
        ..g2
    };
    assert_eq!(e.conv2d(x4, w, None, huge), Err(Res));

    // Pooling.
    assert!(e.max_pool2d(x4, POOL).is_ok());
    let k0 = Pool2dOptions {
        kernel: [0, 2],
        ..POOL
    };
    assert_eq!(e.max_pool2d(x4, k0), Err(Arg));
    let s0 = Pool2dOptions {
        stride: [2, 0],
        ..POOL
    };
    assert_eq!(e.avg_pool2d(x4, s0), Err(Arg));
    let pad = Pool2dOptions {
        padding: [2, 2],
        ..POOL
    };
    assert_eq!(e.max_pool2d(x4, pad), Err(Arg));
    let big = Pool2dOptions {
        kernel: [9, 9],
        ..POOL
    };
    assert_eq!(e.avg_pool2d(x4, big), Err(Shape));
    assert_eq!(e.max_pool2d(m23, POOL), Err(Shape));
    assert_eq!(e.adaptive_avg_pool2d(x4, [0, 1]), Err(Arg));
    assert_eq!(e.adaptive_avg_pool2d(x4, [6, 1]), Err(Arg));
    assert_eq!(e.adaptive_avg_pool2d(v3, [1, 1]), Err(Shape));

    // Axes.
    assert_eq!(e.softmax(m23, 2), Err(Arg));
    assert_eq!(e.log_softmax(v3, 1), Err(Arg));
    assert_eq!(e.transpose(m23, 0, 5), Err(Arg));
    assert_eq!(e.flatten(m23, 2), Err(Arg));
    assert_eq!(e.mean(m23, Some(2), false), Err(Arg));
    assert_eq!(e.sum(m23, Some(u32::MAX), true), Err(Arg));
    assert_eq!(e.argmax(m23, 2), Err(Arg));
    assert_eq!(e.concat(&[m23, m34], 1), Err(Shape));
    assert_eq!(e.concat(&[m23, v3], 0), Err(Shape));
    assert_eq!(e.concat(&[m23], 2), Err(Arg));
    assert_eq!(e.concat(&[], 0), Err(Arg));

    // Reshape.
    assert_eq!(e.reshape(m23, &[4, -1]), Err(Shape));
    assert_eq!(e.reshape(m23, &[-1, -1]), Err(Shape));
    assert_eq!(e.reshape(m23, &[0, 6]), Err(Shape));
    assert_eq!(e.reshape(m23, &[-2, 3]), Err(Shape));
    assert_eq!(e.reshape(m23, &[7]), Err(Shape));
    assert_eq!(e.reshape(m23, &[]), Err(Shape));
    assert_eq!(e.reshape(m23, &[1, 1, 1, 1, 2, 3]), Err(Shape));
    assert_eq!(e.reshape(m23, &[i32::MAX, i32::MAX, -1]), Err(Shape));
    assert!(e.reshape(m23, &[3, -1]).is_ok());

    // Item.
    assert_eq!(e.item(m23), Err(Shape));

    // Dropout.
    assert_eq!(e.dropout(m23, 1.0, true), Err(Arg));
    assert_eq!(e.dropout(m23, -0.1, true), Err(Arg));
    assert_eq!(e.dropout(m23, f32::NAN, false), Err(Arg));

    // Cross-entropy labels.
    let logits = e.full(&[2, 3], 0.0).unwrap();
    for labels in [
        [0.0, 3.0],
        [-1.0, 0.0],
        [0.5, 1.0],
        [f32::NAN, 0.0],
        [f32::INFINITY, 0.0],
    ] {
        let l = e.from_data(&[2], &labels).unwrap();
        assert_eq!(e.cross_entropy(logits, l), Err(Arg), "{labels:?}");
    }
    let l3 = e.from_data(&[3], &[0.0, 1.0, 2.0]).unwrap();
    assert_eq!(e.cross_entropy(logits, l3), Err(Shape));
    assert_eq!(e.cross_entropy(v3, l3), Err(Shape));
    assert_eq!(e.mse(m23, m34), Err(Shape));

    // Normalisation.
    assert_eq!(e.normalize_channels(m23, &[0.0; 2], &[1.0; 2]), Err(Arg));
    assert_eq!(
        e.normalize_channels(m23, &[0.0; 3], &[1.0, 0.0, 1.0]),
        Err(Arg)
    );
    assert_eq!(
        e.normalize_channels(m23, &[f32::NAN; 3], &[1.0; 3]),
        Err(Arg)
    );
    assert_eq!(e.normalize_channels(v3, &[0.0], &[1.0]), Err(Shape));

    // Batch norm.
    let gamma = e.parameter(&[3], Init::Ones, 3, 3).unwrap();
    let beta = e.parameter(&[3], Init::Zeros, 3, 3).unwrap();
    let rm = e.buffer(&[3], 0.0).unwrap();
    let rv = e.buffer(&[3], 1.0).unwrap();
    assert!(
        e.batch_norm(m23, gamma, beta, rm, rv, true, 0.1, 1e-5)
            .is_ok()
    );
    assert_eq!(
        e.batch_norm(m23, gamma, beta, v3, rv, true, 0.1, 1e-5),
        Err(Arg)
    );
    assert_eq!(
        e.batch_norm(m23, gamma, beta, rm, rm, true, 0.1, 1e-5),
        Err(Arg)
    );
    assert_eq!(
        e.batch_norm(m23, gamma, beta, rm, rv, true, 1.5, 1e-5),
        Err(Arg)
    );
    assert_eq!(
        e.batch_norm(m23, gamma, beta, rm, rv, true, 0.1, 0.0),
        Err(Arg)
    );
    assert_eq!(
        e.batch_norm(m34, gamma, beta, rm, rv, true, 0.1, 1e-5),
        Err(Shape)
    );
    assert_eq!(
        e.batch_norm(v3, gamma, beta, rm, rv, true, 0.1, 1e-5),
        Err(Shape)
    );
    let one_row = e.full(&[1, 3], 1.0).unwrap();
    assert_eq!(
        e.batch_norm(one_row, gamma, beta, rm, rv, true, 0.1, 1e-5),
        Err(Shape)
    );
    assert!(
        e.batch_norm(one_row, gamma, beta, rm, rv, false, 0.1, 1e-5)
            .is_ok()
    );

    // Initialisers that divide by the fan.
    assert_eq!(e.parameter(&[2], Init::KaimingUniform, 0, 5), Err(Arg));
    assert_eq!(e.parameter(&[2], Init::XavierNormal, 0, 0), Err(Arg));
    assert!(e.parameter(&[2], Init::Zeros, 0, 0).is_ok());

    // Export names.
    assert_eq!(e.export_named(&[("".into(), v3)]), Err(Arg));
    assert_eq!(e.export_named(&[("W".into(), v3)]), Err(Arg));
    assert_eq!(e.export_named(&[("a/b".into(), v3)]), Err(Arg));
    assert_eq!(e.export_named(&[("a".repeat(65), v3)]), Err(Arg));
    assert_eq!(
        e.export_named(&[("w".into(), v3), ("w".into(), v2)]),
        Err(Arg)
    );
    let out = e
        .export_named(&[("fc1.weight".into(), m23), ("fc1.bias_0".into(), v2)])
        .unwrap();
    assert_eq!(out[0].0, "fc1.weight");
    assert_eq!(out[0].1, vec![2, 3]);
    assert_eq!(out[0].2, vec![1.0; 6]);
    assert_eq!(out[1].1, vec![2]);
}

#[test]
fn backward_misuse() {
    let mut e = engine(0);
    let p = e.parameter(&[3], Init::KaimingUniform, 3, 3).unwrap();
    let c = e.full(&[3], 2.0).unwrap();
    let y = e.mul(p, c).unwrap();
    assert_eq!(e.backward(y), Err(Shape));
    let untracked = e.sum(c, None, false).unwrap();
    assert_eq!(e.backward(untracked), Err(Arg));
    let one = e.parameter(&[1], Init::Ones, 1, 1).unwrap();
    assert_eq!(e.backward(one), Err(Arg));
    let loss = e.sum(y, None, false).unwrap();
    e.backward(loss).unwrap();
    assert_eq!(e.gradient(p).unwrap(), Some(vec![2.0; 3]));
    // The graph was consumed: walking it again, or anything built on it, is refused.
    assert_eq!(e.backward(loss), Err(NotAllowed));
    let again = e.affine(y, 1.0, 0.0).unwrap();
    let again = e.sum(again, None, false).unwrap();
    assert_eq!(e.backward(again), Err(NotAllowed));
    // A fresh forward from the parameter is fine, and gradients accumulate.
    let y2 = e.mul(p, c).unwrap();
    let loss2 = e.sum(y2, None, false).unwrap();
    e.backward(loss2).unwrap();
    assert_eq!(e.gradient(p).unwrap(), Some(vec![4.0; 3]));
    // Detached values carry no graph.
    let d = e.detach(loss2).unwrap();
    assert_eq!(e.backward(d), Err(Arg));
}

#[test]
fn non_finite_values_flow_without_panics() {
    let mut e = engine(0);
    let vals = [
        f32::NAN,
        1.0,
        f32::INFINITY,
        -2.0,
        f32::NEG_INFINITY,
        0.0,
        3.0,
        f32::NAN,
    ];
    let x = e.from_data(&[1, 2, 2, 2], &vals).unwrap();
    let p = e.parameter_from_data(&[1, 2, 2, 2], &vals).unwrap();
    let m = e.from_data(&[2, 4], &vals).unwrap();
    let _ = e.argmax(m, 1).unwrap();
    let _ = e.softmax(m, 1).unwrap();
    let _ = e.log_softmax(m, 0).unwrap();
    let _ = e.max_pool2d(x, POOL).unwrap();
    let _ = e.avg_pool2d(x, POOL).unwrap();
    let _ = e.adaptive_avg_pool2d(x, [1, 1]).unwrap();
    let g = e.full(&[2], 1.0).unwrap();
    let rm = e.buffer(&[2], 0.0).unwrap();
    let rv = e.buffer(&[2], 1.0).unwrap();
    let _ = e.batch_norm(x, g, g, rm, rv, true, 0.1, 1e-5).unwrap();
    let labels = e.from_data(&[2], &[0.0, 3.0]).unwrap();
    let ce = e.cross_entropy(m, labels).unwrap();
    assert!(e.item(ce).unwrap().is_nan());
    let pooled = e.max_pool2d(p, POOL).unwrap();
    let flat = e.flatten(pooled, 0).unwrap();
    let w = e.from_data(&[2, 2], &[1.0, 0.0, 0.0, 1.0]).unwrap();
    let out = e.linear(flat, w, None).unwrap();
    let loss = e.sum(out, None, false).unwrap();
    e.backward(loss).unwrap();
    let grad = e.gradient(p).unwrap().unwrap();
    assert_eq!(grad.len(), 8);
    let opt = e
        .adam(
            &[p],
            chiron_engine::LrConfig {
                base: 0.1,
                schedule: chiron_engine::Schedule::Constant,
                warmup: 0,
            },
            chiron_engine::AdamConfig {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
                decoupled: false,
            },
        )
        .unwrap();
    e.step(opt).unwrap();
    let _ = e.to_vec(p).unwrap();
}

struct Tiny;

impl RecordSource for Tiny {
    fn schema(&self) -> DataSchema {
        DataSchema {
            shape: vec![2, 2, 2],
            classes: 2,
            splits: vec![("train".into(), 3), ("test".into(), 1)],
        }
    }
    fn gather(
        &self,
        split: &str,
        indices: &[u64],
        features: &mut Vec<f32>,
        labels: &mut Vec<f32>,
    ) -> Result<()> {
        let n = match split {
            "train" => 3,
            "test" => 1,
            _ => return Err(Arg),
        };
        for &i in indices {
            if i >= n {
                return Err(OutOfRange);
            }
            features.extend((0..8).map(|k| (i * 8 + k) as f32 / 32.0));
            labels.push((i % 2) as f32);
        }
        Ok(())
    }
}

#[test]
fn data_calls() {
    let mut e = engine(0);
    assert_eq!(e.schema(), Err(NotAllowed));
    assert_eq!(e.shuffled("train", 0), Err(NotAllowed));
    assert_eq!(e.batch("train", &[0], None, None), Err(NotAllowed));

    let mut e = engine(0).with_data(Arc::new(Tiny));
    assert_eq!(e.schema().unwrap().splits.len(), 2);
    let (x, y) = e.batch("train", &[2, 0], None, None).unwrap();
    assert_eq!(e.shape(x).unwrap(), vec![2, 2, 2, 2]);
    assert_eq!(e.to_vec(y).unwrap(), vec![0.0, 0.0]);
    assert_eq!(e.to_vec(x).unwrap()[0], 16.0 / 32.0);
    assert_eq!(e.batch("train", &[3], None, None), Err(OutOfRange));
    assert_eq!(e.batch("test", &[1], None, None), Err(OutOfRange));
    assert_eq!(e.batch("valid", &[0], None, None), Err(Arg));
    assert_eq!(e.batch("train", &[], None, None), Err(Arg));
    let nz = |mean: Vec<f32>, std: Vec<f32>| Normalize { mean, std };
    assert_eq!(
        e.batch("train", &[0], Some(&nz(vec![0.0; 3], vec![1.0; 3])), None),
        Err(Arg)
    );
    assert_eq!(
        e.batch("train", &[0], Some(&nz(vec![0.0; 2], vec![1.0, 0.0])), None),
        Err(Arg)
    );
    let (x, _) = e
        .batch(
            "train",
            &[0],
            Some(&nz(vec![0.5, 0.0], vec![0.5, 2.0])),
            None,
        )
        .unwrap();
    let v = e.to_vec(x).unwrap();
    assert_eq!(v[0], -1.0);
    assert_eq!(v[4], (4.0 / 32.0) / 2.0);
    // Augmentation keeps shapes and values from the record or zero.
    let aug = Augment {
        crop_padding: 1,
        horizontal_flip: true,
    };
    let (x, _) = e.batch("train", &[1, 2], None, Some(aug)).unwrap();
    let v = e.to_vec(x).unwrap();
    assert!(
        v.iter()
            .all(|&a| a == 0.0 || (8.0..24.0).contains(&(a * 32.0)))
    );
    let huge = Augment {
        crop_padding: u32::MAX,
        horizontal_flip: false,
    };
    assert!(e.batch("train", &[0], None, Some(huge)).is_ok());
    // Budgets apply to batches.
    let mut small = Engine::new(EngineConfig {
        seed: 0,
        max_live_bytes: 64,
        max_tensors: 10,
        max_steps: 1,
    })
    .with_data(Arc::new(Tiny));
    assert_eq!(small.batch("train", &[0, 1], None, None), Err(Res));
    assert!(small.batch("train", &[0], None, None).is_ok());
}

/// Mostly valid shapes (rank 1..=5, dims 1..=4), sometimes a zero dim or a bad rank.
fn shape_strategy() -> impl Strategy<Value = Vec<u32>> {
    let dim = prop_oneof![12 => 1u32..5, 1 => Just(0u32)];
    prop_oneof![
        12 => prop::collection::vec(dim.clone(), 1..6),
        1 => prop::collection::vec(dim, 0..7),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random shapes and axes through a handful of ops: results are Ok with a consistent
    /// shape or one of the codes, never a panic; the accounting stays consistent.
    #[test]
    fn random_shapes_never_panic(
        sa in shape_strategy(),
        sb in shape_strategy(),
        axis in 0u32..7,
        axis2 in 0u32..7,
        reshape in prop::collection::vec(-2i32..7, 0..7),
        k in 0u32..4,
        s in 0u32..3,
        p in 0u32..3,
        g in 0u32..3,
    ) {
        let mut e = limited(10_000, 1 << 24);
        let a = e.full(&sa, 0.5);
        let b = e.full(&sb, -0.25);
        let (Ok(a), Ok(b)) = (a, b) else {
            // Zero dims and bad ranks are refused up front.
            prop_assert!(sa.is_empty() || sb.is_empty() || sa.len() > 5 || sb.len() > 5
                || sa.contains(&0) || sb.contains(&0));
            return Ok(());
        };
        let _ = e.add(a, b);
        let _ = e.div(a, b);
        let _ = e.mse(a, b);
        let _ = e.matmul(a, b);
        let _ = e.linear(a, b, None);
        let _ = e.concat(&[a, b], axis);
        let _ = e.softmax(a, axis);
        let _ = e.log_softmax(b, axis);
        let _ = e.transpose(a, axis, axis2);
        let _ = e.flatten(b, axis);
        let _ = e.mean(a, Some(axis), axis2 % 2 == 0);
        let _ = e.sum(b, Some(axis), true);
        let _ = e.argmax(a, axis);
        let _ = e.cross_entropy(a, b);
        let _ = e.normalize_channels(a, &[0.0; 3], &[1.0; 3]);
        if let Ok(r) = e.reshape(a, &reshape) {
            let n: u32 = e.shape(r).unwrap().iter().product();
            prop_assert_eq!(n, sa.iter().product::<u32>());
        }
        let conv = Conv2dOptions { stride: [s, s], padding: [p, p], dilation: [1, s], groups: g };
        if let Ok(y) = e.conv2d(a, b, None, conv) {
            prop_assert_eq!(e.shape(y).unwrap().len(), 4);
        }
        let pool = Pool2dOptions { kernel: [k, k], stride: [s, s], padding: [p, p] };
        let _ = e.max_pool2d(a, pool);
        let _ = e.avg_pool2d(b, pool);
        let _ = e.adaptive_avg_pool2d(a, [k, s]);
        let rm = e.buffer(&[sa.get(1).copied().unwrap_or(1).max(1)], 0.0).unwrap();
        let rv = e.buffer(&[sa.get(1).copied().unwrap_or(1).max(1)], 1.0).unwrap();
        let _ = e.batch_norm(a, rm, rm, rm, rv, true, 0.1, 1e-5);
        let _ = e.batch_norm(a, rv, rv, rm, rv, false, 0.1, 1e-5);
        let _ = e.dropout(a, 0.5, true);
        // Accounting: bytes are the sum over live handles.
        let (n, bytes) = e.live();
        prop_assert!(n >= 4);
        prop_assert!(bytes >= 16);
    }
}

/// A prediction engine receives a model's running statistics as plain loaded values: eval-mode
/// batch norm must accept them, training mode (which writes them) must not.
#[test]
fn eval_batch_norm_reads_loaded_statistics_training_needs_buffers() {
    let mut e = engine(1);
    let x = e.from_data(&[2, 2, 1, 1], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let gamma = e.from_data(&[2], &[1.0, 1.0]).unwrap();
    let beta = e.from_data(&[2], &[0.0, 0.0]).unwrap();
    let mean = e.from_data(&[2], &[2.0, 3.0]).unwrap();
    let var = e.from_data(&[2], &[1.0, 1.0]).unwrap();
    let y = e
        .batch_norm(x, gamma, beta, mean, var, false, 0.1, 1e-5)
        .unwrap();
    let v = e.to_vec(y).unwrap();
    let expect = [-1.0f32, -1.0, 1.0, 1.0];
    assert!(
        v.iter().zip(expect).all(|(a, b)| (a - b).abs() < 1e-3),
        "{v:?}"
    );
    assert_eq!(
        e.batch_norm(x, gamma, beta, mean, var, true, 0.1, 1e-5),
        Err(Arg)
    );
}
