//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use chiron_engine::{Engine, EngineConfig};

/// Generous budgets.
pub fn config(seed: u64) -> EngineConfig {
    EngineConfig {
        seed,
        max_live_bytes: 1 << 32,
        max_tensors: 1_000_000,
        max_steps: u64::MAX,
    }
}

/// An engine with generous budgets.
pub fn engine(seed: u64) -> Engine {
    Engine::new(config(seed))
}

/// Deterministic pseudo-random values in `[lo, hi)` (a tiny LCG, independent of the engine).
pub fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

/// `n` distinct values spaced `gap` apart, in a shuffled order, centred on 0 and never within
/// `gap / 2` of 0 (for max-pool and ReLU: no ties or kinks within a finite-difference step).
pub fn distinct(n: usize, seed: u64, gap: f32) -> Vec<f32> {
    let keys = values(n, seed, 0.0, 1.0);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut out = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        out[i] = (rank as f32 - n as f32 / 2.0 + 0.5) * gap;
    }
    out
}

pub fn numel(shape: &[u32]) -> usize {
    shape.iter().map(|&d| d as usize).product()
}
