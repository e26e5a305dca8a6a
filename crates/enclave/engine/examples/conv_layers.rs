//! Forward and backward time of the reference CNN's two inner convolutions alone (conv2:
//! 32→64 channels on 16×16, conv3: 64→128 on 8×8; 3×3, pad 1, batch 64) and of the `cnn`
//! trainer's on 28×28 input (14×14 and 7×7), median of 30 — the layers where most of a
//! training step goes, for work on the convolution kernels.
//!
//! Run: `cargo run --release -p chiron-engine --example conv_layers`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use chiron_engine::{Conv2dOptions, Engine, EngineConfig};

const RUNS: usize = 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let pool = chiron_engine::thread_pool().expect("engine thread pool");
    let options = Conv2dOptions {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    pool.install(|| {
        for (name, x_shape, out) in [
            ("conv2", [64u32, 32, 16, 16], 64u32),
            ("conv3", [64, 64, 8, 8], 128),
            // The `cnn` trainer on 28×28 Fashion-MNIST.
            ("fmnist conv2", [64, 32, 14, 14], 64),
            ("fmnist conv3", [64, 64, 7, 7], 128),
        ] {
            let mut e = Engine::new(EngineConfig {
                seed: 0,
                max_live_bytes: 8 << 30,
                max_tensors: 1_000_000,
                max_steps: u64::MAX,
            });
            let numel: usize = x_shape.iter().map(|&v| v as usize).product();
            let x = e.parameter_from_data(&x_shape, &vec![0.1; numel]).unwrap();
            let w_len = (out * x_shape[1] * 9) as usize;
            let w = e
                .parameter_from_data(&[out, x_shape[1], 3, 3], &vec![0.01; w_len])
                .unwrap();
            let (mut forward, mut backward) = (Vec::new(), Vec::new());
            for _ in 0..RUNS {
                let t = Instant::now();
                let y = e.conv2d(x, w, None, options).unwrap();
                let loss = e.sum(y, None, false).unwrap();
                e.item(loss).unwrap();
                forward.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                e.backward(loss).unwrap();
                backward.push(t.elapsed().as_secs_f64() * 1e3);
                e.release(y);
                e.release(loss);
            }
            println!(
                "{name}: forward {:.2} ms, backward {:.2} ms",
                median(forward),
                median(backward)
            );
        }
    });
}
