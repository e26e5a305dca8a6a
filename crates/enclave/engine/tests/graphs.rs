//! Recorded graphs: a forward pass through trainable parameters that is never differentiated
//! (evaluation, prediction) is freed once its handles are released, training afterwards is
//! unaffected, and a detached parameter records nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chiron_engine::{Engine, EngineError, TensorId};
use common::{engine, values};

/// Resident memory of this process in bytes (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Two tracked layers and a ReLU on a `[256, 512]` batch: each pass records ~1.5 MB of
/// activations in its graph.
fn forward(e: &mut Engine, x: TensorId, w: TensorId) -> Vec<TensorId> {
    let h = e.matmul(x, w).unwrap();
    let r = e.relu(h).unwrap();
    let y = e.matmul(r, w).unwrap();
    vec![h, r, y]
}

fn setup(e: &mut Engine) -> (TensorId, TensorId) {
    let w = e
        .parameter_from_data(&[512, 512], &values(512 * 512, 1, -0.05, 0.05))
        .unwrap();
    let x = e
        .from_data(&[256, 512], &values(256 * 512, 2, -1.0, 1.0))
        .unwrap();
    (w, x)
}

#[test]
fn forward_passes_that_are_never_differentiated_do_not_accumulate() {
    let Some(_) = resident_bytes() else {
        return;
    };
    let mut e = engine(0);
    let (w, x) = setup(&mut e);
    let pass = |e: &mut Engine| {
        for t in forward(e, x, w) {
            e.release(t);
        }
    };
    for _ in 0..5 {
        pass(&mut e);
    }
    let before = resident_bytes().unwrap();
    // Kept graphs would hold ~150 MB after these passes.
    for _ in 0..100 {
        pass(&mut e);
    }
    let grown = resident_bytes().unwrap().saturating_sub(before);
    assert!(
        grown < 40 << 20,
        "resident memory grew by {} MB over 100 released forward passes",
        grown >> 20
    );
}

#[test]
fn training_after_undifferentiated_passes_is_unchanged() {
    let gradient = |evaluations: usize| {
        let mut e = engine(0);
        let (w, x) = setup(&mut e);
        for _ in 0..evaluations {
            for t in forward(&mut e, x, w) {
                e.release(t);
            }
        }
        let out = forward(&mut e, x, w);
        let loss = e.sum(out[2], None, false).unwrap();
        e.backward(loss).unwrap();
        e.gradient(w).unwrap().unwrap()
    };
    assert_eq!(gradient(0), gradient(3));
}

#[test]
fn a_detached_parameter_records_nothing() {
    let mut e = engine(0);
    let (w, x) = setup(&mut e);
    let d = e.detach(w).unwrap();
    let y = e.matmul(x, d).unwrap();
    let loss = e.sum(y, None, false).unwrap();
    assert_eq!(e.backward(loss), Err(EngineError::InvalidArgument));
    // The parameter itself still trains.
    let y = e.matmul(x, w).unwrap();
    let loss = e.sum(y, None, false).unwrap();
    e.backward(loss).unwrap();
    assert!(e.gradient(w).unwrap().is_some());
}

/// One untracked ReLU in a fresh engine, as a prediction does with its engine.
fn one_prediction_sized_engine() {
    let mut e = engine(1);
    let x = e
        .from_data(&[1, 3, 32, 32], &values(3 * 32 * 32, 7, -1.0, 1.0))
        .unwrap();
    let r = e.relu(x).unwrap();
    e.to_vec(r).unwrap();
}

#[test]
fn engines_that_never_differentiate_leave_nothing_behind() {
    // burn's autodiff registers a node for every operation, tracked or not, and forgets the
    // released ones only in a backward: without a sweep on drop this left ~4 KB per engine.
    for _ in 0..500 {
        one_prediction_sized_engine();
    }
    let Some(before) = resident_bytes() else {
        return;
    };
    for _ in 0..5_000 {
        one_prediction_sized_engine();
    }
    let grown = resident_bytes().unwrap().saturating_sub(before);
    assert!(
        grown < 6 << 20,
        "5,000 engines left {} KiB resident behind",
        grown >> 10
    );
}
