//! Work bounds: a call costing more than the per-call limit, or a graph growing past the
//! per-graph limit, is refused before it runs and leaves the engine as it was; `backward`
//! starts a new graph; untracked work does not count towards any graph.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chiron_engine::{Conv2dOptions, CostLimits, EngineError, Init, Pool2dOptions};
use common::{engine, values};

#[test]
fn a_call_over_the_per_call_limit_is_refused_and_changes_nothing() {
    let mut e = engine(1).with_cost_limits(CostLimits {
        per_call: 2 * 8 * 8 * 8,
        per_graph: u64::MAX,
    });
    let a = e.from_data(&[8, 8], &values(64, 1, -1.0, 1.0)).unwrap();
    let b = e.from_data(&[8, 9], &values(72, 2, -1.0, 1.0)).unwrap();
    let square = e.from_data(&[8, 8], &values(64, 3, -1.0, 1.0)).unwrap();
    // 2·8·8·8 operations: exactly the limit.
    e.matmul(a, square).unwrap();
    let before = e.live();
    // 2·8·9·8: over it.
    assert_eq!(e.matmul(a, b), Err(EngineError::ResourceExhausted));
    assert_eq!(e.live(), before);
    // Convolutions and pools are charged too.
    let x = e
        .from_data(&[1, 2, 8, 8], &values(128, 4, -1.0, 1.0))
        .unwrap();
    let w = e
        .from_data(&[4, 2, 3, 3], &values(72, 5, -1.0, 1.0))
        .unwrap();
    let conv = Conv2dOptions {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    assert_eq!(
        e.conv2d(x, w, None, conv),
        Err(EngineError::ResourceExhausted)
    );
    let pool = Pool2dOptions {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };
    e.max_pool2d(x, pool).unwrap();
    // x, w and the pooled output: the refused convolution added nothing.
    assert_eq!(e.live().0, before.0 + 3);
}

#[test]
fn a_graph_is_bounded_until_backward_and_untracked_work_is_free() {
    // Each linear layer below costs 2·4·8·8 = 512 operations.
    let mut e = engine(2).with_cost_limits(CostLimits {
        per_call: u64::MAX,
        per_graph: 3 * 512,
    });
    let w = e.parameter(&[8, 8], Init::XavierUniform, 8, 8).unwrap();
    let x = e.from_data(&[4, 8], &values(32, 6, -1.0, 1.0)).unwrap();
    // Untracked: a constant times a constant, as often as wanted.
    let c = e.from_data(&[8, 8], &values(64, 7, -1.0, 1.0)).unwrap();
    for _ in 0..10 {
        let y = e.linear(x, c, None).unwrap();
        e.release(y);
    }
    let mut h = x;
    for _ in 0..3 {
        h = e.linear(h, w, None).unwrap();
    }
    assert_eq!(
        e.linear(h, w, None),
        Err(EngineError::ResourceExhausted),
        "a fourth tracked layer is over the graph's limit"
    );
    let loss = e.sum(h, None, false).unwrap();
    e.backward(loss).unwrap();
    // A new graph: the same layers fit again.
    let mut h = x;
    for _ in 0..3 {
        h = e.linear(h, w, None).unwrap();
    }
}

#[test]
fn a_released_forward_pass_gives_its_budget_back() {
    // Evaluation: forward passes through the parameters, never differentiated. Once nothing of
    // a pass is live its graph is gone, so it must not count against the next one.
    let mut e = engine(3).with_cost_limits(CostLimits {
        per_call: u64::MAX,
        per_graph: 3 * 512,
    });
    let w = e.parameter(&[8, 8], Init::XavierUniform, 8, 8).unwrap();
    let x = e.from_data(&[4, 8], &values(32, 8, -1.0, 1.0)).unwrap();
    for _ in 0..10 {
        let a = e.linear(x, w, None).unwrap();
        let b = e.linear(a, w, None).unwrap();
        e.release(a);
        e.release(b);
    }
    // While a pass is live its work still counts.
    let mut h = x;
    for _ in 0..3 {
        h = e.linear(h, w, None).unwrap();
    }
    assert_eq!(e.linear(h, w, None), Err(EngineError::ResourceExhausted));
}

#[test]
fn after_the_deadline_no_compute_call_backward_or_step_runs() {
    use chiron_engine::{LrConfig, Schedule, SgdConfig};
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    let mut e = engine(1).with_deadline(deadline);
    let a = e.from_data(&[8, 8], &values(64, 1, -1.0, 1.0)).unwrap();
    let w = e
        .parameter_from_data(&[8, 8], &values(64, 2, -1.0, 1.0))
        .unwrap();
    let lr = LrConfig {
        base: 0.1,
        schedule: Schedule::Constant,
        warmup: 0,
    };
    let sgd = SgdConfig {
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    };
    let opt = e.sgd(&[w], lr, sgd).unwrap();
    let y = e.matmul(a, w).unwrap();
    let loss = e.mean(y, None, false).unwrap();
    e.backward(loss).unwrap();
    e.step(opt).unwrap();
    std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
    let before = e.live();
    assert_eq!(e.matmul(a, w), Err(EngineError::BudgetExhausted));
    // Checked before anything else (this loss was walked already: `NotAllowed` otherwise).
    assert_eq!(e.backward(loss), Err(EngineError::BudgetExhausted));
    assert_eq!(e.step(opt), Err(EngineError::BudgetExhausted));
    assert_eq!(e.live(), before);
}

#[test]
fn before_the_deadline_a_call_must_fit_the_time_left() {
    use chiron_engine::SLOWEST_FLOPS_PER_SECOND;
    let left = std::time::Duration::from_secs(2);
    let mut e = engine(1).with_deadline(std::time::Instant::now() + left);
    // About a tenth of what the time left allows at the assumed slowest rate runs...
    let n = 256;
    assert!(2 * n * n * n < SLOWEST_FLOPS_PER_SECOND / 4);
    let small = e
        .from_data(
            &[n as u32, n as u32],
            &values((n * n) as usize, 1, -1.0, 1.0),
        )
        .unwrap();
    e.matmul(small, small).unwrap();
    // ...one that would need more than the time left is refused before it runs, though it is
    // far under the per-call limit.
    let m = 2048u64;
    assert!(2 * m * m * m > 2 * SLOWEST_FLOPS_PER_SECOND);
    assert!(2 * m * m * m < CostLimits::default().per_call);
    let big = e
        .from_data(
            &[m as u32, m as u32],
            &values((m * m) as usize, 2, -1.0, 1.0),
        )
        .unwrap();
    let before = e.live();
    assert_eq!(e.matmul(big, big), Err(EngineError::ResourceExhausted));
    assert_eq!(e.live(), before);
}
