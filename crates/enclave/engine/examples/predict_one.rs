//! Where the time of a one-image prediction with the reference CNN goes: a fresh engine, the
//! model's tensors loaded, each block's convolution, ReLU and pooling, the linear layers and
//! the read-back, and the drop (means over 300 calls; weights are constants, only the time
//! matters). The service answers each prediction request this way, in a fresh engine.
//!
//! Run: `cargo run --release -p chiron-engine --example predict_one`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use chiron_engine::{Conv2dOptions, Engine, EngineConfig, Pool2dOptions};
use std::time::Instant;
fn main() {
    let conv = Conv2dOptions {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let pool = Pool2dOptions {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
    };
    let shapes: Vec<Vec<u32>> = vec![
        vec![32, 3, 3, 3],
        vec![32],
        vec![64, 32, 3, 3],
        vec![64],
        vec![128, 64, 3, 3],
        vec![128],
        vec![256, 2048],
        vec![256],
        vec![10, 256],
        vec![10],
    ];
    let data: Vec<Vec<f32>> = shapes
        .iter()
        .map(|s| vec![0.01; s.iter().map(|&v| v as usize).product()])
        .collect();
    let x = vec![0.5f32; 3 * 32 * 32];
    let mut t = [0f64; 8];
    let n = 300;
    for _ in 0..n {
        let a = Instant::now();
        let mut e = Engine::new(EngineConfig {
            seed: 0,
            max_live_bytes: 1 << 30,
            max_tensors: 100_000,
            max_steps: 0,
        });
        let b = Instant::now();
        let p: Vec<_> = shapes
            .iter()
            .zip(&data)
            .map(|(s, d)| e.from_data(s, d).unwrap())
            .collect();
        let xi = e.from_data(&[1, 3, 32, 32], &x).unwrap();
        let c = Instant::now();
        let mut h = xi;
        let mut tc = 0.0;
        let mut tr = 0.0;
        let mut tp = 0.0;
        for blk in 0..3 {
            let s = Instant::now();
            h = e.conv2d(h, p[2 * blk], Some(p[2 * blk + 1]), conv).unwrap();
            let s2 = Instant::now();
            h = e.relu(h).unwrap();
            let s3 = Instant::now();
            h = e.max_pool2d(h, pool).unwrap();
            let s4 = Instant::now();
            tc += (s2 - s).as_secs_f64();
            tr += (s3 - s2).as_secs_f64();
            tp += (s4 - s3).as_secs_f64();
        }
        let d = Instant::now();
        let f = e.flatten(h, 1).unwrap();
        let l = e.linear(f, p[6], Some(p[7])).unwrap();
        let r = e.relu(l).unwrap();
        let o = e.linear(r, p[8], Some(p[9])).unwrap();
        let _v = e.to_vec(o).unwrap();
        let g = Instant::now();
        drop(e);
        let h2 = Instant::now();
        for (i, v) in [(b - a), (c - b), (d - c), (g - d), (h2 - g)]
            .iter()
            .enumerate()
        {
            t[i] += v.as_secs_f64();
        }
        t[5] += tc;
        t[6] += tr;
        t[7] += tp;
    }
    let ms = |v: f64| v * 1e3 / n as f64;
    println!(
        "new {:.3} load {:.3} convblocks {:.3} (conv {:.3} relu {:.3} pool {:.3}) fc+read {:.3} drop {:.3} ms",
        ms(t[0]),
        ms(t[1]),
        ms(t[2]),
        ms(t[5]),
        ms(t[6]),
        ms(t[7]),
        ms(t[3]),
        ms(t[4])
    );
}
