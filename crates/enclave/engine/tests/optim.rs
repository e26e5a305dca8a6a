//! Optimizers against updates computed by hand, and schedules through the engine.
//!
//! The parameter is `p = [1, −2]` and the loss `½ Σ p²`, so the gradient at every step is the
//! current `p`. Expected values were computed in f64 from PyTorch's update formulas.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chiron_engine::{
    AdamConfig, Engine, EngineConfig, EngineError, LrConfig, OptimizerId, Schedule, SgdConfig,
    TensorId,
};
use common::engine;

const LR: LrConfig = LrConfig {
    base: 0.1,
    schedule: Schedule::Constant,
    warmup: 0,
};

fn half_square(e: &mut Engine, p: TensorId) -> TensorId {
    let sq = e.mul(p, p).unwrap();
    let s = e.sum(sq, None, false).unwrap();
    e.affine(s, 0.5, 0.0).unwrap()
}

fn run(make: impl Fn(&mut Engine, TensorId) -> OptimizerId, want: &[[f64; 2]]) {
    let mut e = engine(0);
    let p = e.parameter_from_data(&[2], &[1.0, -2.0]).unwrap();
    let opt = make(&mut e, p);
    for (step, w) in want.iter().enumerate() {
        let l = half_square(&mut e, p);
        e.backward(l).unwrap();
        e.step(opt).unwrap();
        let got = e.to_vec(p).unwrap();
        for (g, w) in got.iter().zip(w) {
            assert!(
                (f64::from(*g) - w).abs() < 2e-6,
                "step {step}: got {got:?}, want {w:?}"
            );
        }
        // The gradient was consumed by the step.
        assert_eq!(e.gradient(p).unwrap(), None);
    }
}

fn sgd(momentum: f32, nesterov: bool, weight_decay: f32) -> SgdConfig {
    SgdConfig {
        momentum,
        nesterov,
        weight_decay,
    }
}

fn adam(weight_decay: f32, decoupled: bool) -> AdamConfig {
    AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay,
        decoupled,
    }
}

#[test]
fn sgd_plain_with_weight_decay() {
    run(
        |e, p| e.sgd(&[p], LR, sgd(0.0, false, 0.1)).unwrap(),
        &[[0.89, -1.78], [0.7921, -1.5842], [0.704969, -1.409938]],
    );
}

#[test]
fn sgd_momentum() {
    run(
        |e, p| e.sgd(&[p], LR, sgd(0.9, false, 0.01)).unwrap(),
        &[
            [0.899, -1.798],
            [0.717301, -1.434602],
            [0.481324499, -0.962648998],
        ],
    );
}

#[test]
fn sgd_nesterov() {
    run(
        |e, p| e.sgd(&[p], LR, sgd(0.9, true, 0.0)).unwrap(),
        &[[0.81, -1.62], [0.5751, -1.1502], [0.327321, -0.654642]],
    );
}

#[test]
fn adam_plain() {
    run(
        |e, p| e.adam(&[p], LR, adam(0.0, false)).unwrap(),
        &[
            [0.900000001, -1.9000000005],
            [0.8004122297123382, -1.8001664866210927],
            [0.701586274504415, -1.7006233928121137],
        ],
    );
}

#[test]
fn adam_l2() {
    run(
        |e, p| e.adam(&[p], LR, adam(0.1, false)).unwrap(),
        &[
            [0.9000000009090909, -1.9000000004545454],
            [0.8004122295267845, -1.8001664865292035],
            [0.7015862742210723, -1.700623392672905],
        ],
    );
}

#[test]
fn adamw() {
    run(
        |e, p| e.adam(&[p], LR, adam(0.1, true)).unwrap(),
        &[
            [0.890000001, -1.8800000005],
            [0.7815718569541611, -1.7614089510885826],
            [0.6751012231892008, -1.6443686843220089],
        ],
    );
}

#[test]
fn schedules_through_the_engine() {
    let mut e = engine(0);
    let p = e.parameter_from_data(&[1], &[0.0]).unwrap();
    let lr = LrConfig {
        base: 0.1,
        schedule: Schedule::Step {
            every: 2,
            gamma: 0.5,
        },
        warmup: 2,
    };
    let opt = e.sgd(&[p], lr, sgd(0.0, false, 0.0)).unwrap();
    // Warm-up 0, 0.05; then 0.1, 0.1, 0.05, 0.05, 0.025.
    let want = [0.0, 0.05, 0.1, 0.1, 0.05, 0.05, 0.025];
    for w in want {
        assert!((e.learning_rate(opt) - w).abs() < 1e-7, "{w}");
        e.step(opt).unwrap();
    }
    let cos = e
        .sgd(
            &[p],
            LrConfig {
                base: 1.0,
                schedule: Schedule::Cosine {
                    total: 4,
                    min_lr: 0.0,
                },
                warmup: 0,
            },
            sgd(0.0, false, 0.0),
        )
        .unwrap();
    let want = [1.0, 0.853_553_4, 0.5, 0.146_446_6, 0.0, 0.0];
    for w in want {
        assert!((e.learning_rate(cos) - w).abs() < 1e-6, "{w}");
        e.step(cos).unwrap();
    }
    assert_eq!(e.learning_rate(OptimizerId(999)), 0.0);
}

#[test]
fn step_budget_and_zero_grad() {
    let mut e = Engine::new(EngineConfig {
        seed: 0,
        max_live_bytes: 1 << 20,
        max_tensors: 100,
        max_steps: 2,
    });
    let p = e.parameter_from_data(&[2], &[1.0, -2.0]).unwrap();
    let opt = e.sgd(&[p], LR, sgd(0.0, false, 0.0)).unwrap();
    let l = half_square(&mut e, p);
    e.backward(l).unwrap();
    assert!(e.gradient(p).unwrap().is_some());
    e.zero_grad(opt);
    assert_eq!(e.gradient(p).unwrap(), None);
    // A step without gradients changes nothing but counts.
    e.step(opt).unwrap();
    assert_eq!(e.to_vec(p).unwrap(), vec![1.0, -2.0]);
    e.step(opt).unwrap();
    assert_eq!(e.steps_taken(), 2);
    assert_eq!(e.step(opt), Err(EngineError::BudgetExhausted));
    assert_eq!(e.steps_taken(), 2);
    assert_eq!(e.step(OptimizerId(77)), Err(EngineError::ResourceExhausted));
}

#[test]
fn backward_accumulates_until_a_step() {
    let mut e = engine(0);
    let p = e.parameter_from_data(&[2], &[1.0, -2.0]).unwrap();
    for _ in 0..2 {
        let l = half_square(&mut e, p);
        e.backward(l).unwrap();
    }
    assert_eq!(e.gradient(p).unwrap(), Some(vec![2.0, -4.0]));
}

#[test]
fn bad_optimizer_arguments() {
    let mut e = engine(0);
    let p = e.parameter_from_data(&[2], &[1.0, -2.0]).unwrap();
    let v = e.full(&[2], 1.0).unwrap();
    let bad = Err(EngineError::InvalidArgument);
    assert_eq!(e.sgd(&[v], LR, sgd(0.0, false, 0.0)), bad);
    assert_eq!(e.sgd(&[p, p], LR, sgd(0.0, false, 0.0)), bad);
    assert_eq!(e.sgd(&[p], LR, sgd(1.0, false, 0.0)), bad);
    assert_eq!(e.sgd(&[p], LR, sgd(0.0, true, 0.0)), bad);
    assert_eq!(e.sgd(&[p], LR, sgd(f32::NAN, false, 0.0)), bad);
    assert_eq!(e.sgd(&[p], LR, sgd(0.5, false, -1.0)), bad);
    let neg_lr = LrConfig { base: -0.1, ..LR };
    assert_eq!(e.sgd(&[p], neg_lr, sgd(0.0, false, 0.0)), bad);
    let zero_every = LrConfig {
        schedule: Schedule::Step {
            every: 0,
            gamma: 0.5,
        },
        ..LR
    };
    assert_eq!(e.sgd(&[p], zero_every, sgd(0.0, false, 0.0)), bad);
    let zero_total = LrConfig {
        schedule: Schedule::Cosine {
            total: 0,
            min_lr: 0.0,
        },
        ..LR
    };
    assert_eq!(e.adam(&[p], zero_total, adam(0.0, false)), bad);
    let mut a = adam(0.0, false);
    a.beta1 = 1.0;
    assert_eq!(e.adam(&[p], LR, a), bad);
    let mut a = adam(0.0, false);
    a.eps = 0.0;
    assert_eq!(e.adam(&[p], LR, a), bad);
    assert_eq!(
        e.adam(&[TensorId(12345)], LR, adam(0.0, false)),
        Err(EngineError::ResourceExhausted)
    );
    // State is counted in the budget and freed with the optimizer.
    let before = e.live().1;
    let opt = e.adam(&[p], LR, adam(0.0, false)).unwrap();
    assert_eq!(e.live().1, before + 16);
    e.release_optimizer(opt);
    assert_eq!(e.live().1, before);
}
