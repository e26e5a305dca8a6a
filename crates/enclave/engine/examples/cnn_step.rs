//! Throughput of the engine on the reference CNN of the engine issue (conv 3→32→64→128, 3×3,
//! pad 1, each + ReLU + 2×2 max-pool; linear 2048→256→10; cross-entropy; SGD momentum 0.9;
//! batch 64 of 32×32×3), plus a 1024³ matrix product to show both cores are used.
//!
//! Run: `cargo run --release -p chiron-engine --example cnn_step [-- STEPS]`
//! (`RAYON_NUM_THREADS=N` sets the engine pool's size; `WHOLE_LOOP_IN_POOL=1` runs the training
//! loop itself inside the pool.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use chiron_engine::{
    Conv2dOptions, Engine, EngineConfig, Init, LrConfig, Pool2dOptions, Schedule, SgdConfig,
    TensorId,
};

const CONV: Conv2dOptions = Conv2dOptions {
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
    groups: 1,
};
const POOL: Pool2dOptions = Pool2dOptions {
    kernel: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
};

fn pseudo(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// CPU time (user + system, seconds) of each engine worker thread, from `/proc` (Linux; empty
/// elsewhere): shows whether the work really spreads over the pool whatever else loads the
/// machine.
fn worker_cpu_seconds() -> Vec<(String, f64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let comm = comm.trim().to_string();
        if !comm.starts_with("chiron-engine") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let rest = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        out.push((comm, (ticks(11) + ticks(12)) / 100.0));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut e = Engine::new(EngineConfig {
        seed: 0,
        max_live_bytes: 8 << 30,
        max_tensors: 100_000,
        max_steps: u64::MAX,
    });
    let threads = chiron_engine::thread_pool().map_or(0, |p| p.current_num_threads());

    // 1024³ sgemm.
    let n = 1024u32;
    let a = e.from_data(&[n, n], &pseudo((n * n) as usize, 1)).unwrap();
    let b = e.from_data(&[n, n], &pseudo((n * n) as usize, 2)).unwrap();
    let c = e.matmul(a, b).unwrap();
    e.release(c);
    let reps = 10;
    let t = Instant::now();
    for _ in 0..reps {
        let c = e.matmul(a, b).unwrap();
        e.release(c);
    }
    let secs = t.elapsed().as_secs_f64();
    let gflops = 2.0 * f64::from(n).powi(3) * f64::from(reps) / secs / 1e9;
    println!("engine pool threads: {threads}; matmul 1024^3: {gflops:.1} GFLOP/s");
    println!(
        "CPU seconds per engine worker so far: {:?}",
        worker_cpu_seconds()
    );
    e.release(a);
    e.release(b);

    let conv = |e: &mut Engine, cin: u32, cout: u32| {
        let w = e
            .parameter(&[cout, cin, 3, 3], Init::KaimingUniform, cin * 9, cout * 9)
            .unwrap();
        let b = e
            .parameter(&[cout], Init::BiasUniform, cin * 9, cout)
            .unwrap();
        (w, b)
    };
    let (c1w, c1b) = conv(&mut e, 3, 32);
    let (c2w, c2b) = conv(&mut e, 32, 64);
    let (c3w, c3b) = conv(&mut e, 64, 128);
    let f1w = e
        .parameter(&[256, 2048], Init::KaimingUniform, 2048, 256)
        .unwrap();
    let f1b = e.parameter(&[256], Init::BiasUniform, 2048, 256).unwrap();
    let f2w = e
        .parameter(&[10, 256], Init::KaimingUniform, 256, 10)
        .unwrap();
    let f2b = e.parameter(&[10], Init::BiasUniform, 256, 10).unwrap();
    let params = [c1w, c1b, c2w, c2b, c3w, c3b, f1w, f1b, f2w, f2b];
    let opt = e
        .sgd(
            &params,
            LrConfig {
                base: 0.01,
                schedule: Schedule::Constant,
                warmup: 0,
            },
            SgdConfig {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
        )
        .unwrap();
    let batch = 64u32;
    let x = e
        .from_data(
            &[batch, 3, 32, 32],
            &pseudo((batch * 3 * 32 * 32) as usize, 3),
        )
        .unwrap();
    let labels: Vec<f32> = (0..batch).map(|i| (i % 10) as f32).collect();
    let y = e.from_data(&[batch], &labels).unwrap();

    let forward = |e: &mut Engine, x: TensorId| -> (TensorId, Vec<TensorId>) {
        let mut tmp = Vec::new();
        let mut h = x;
        for (w, b) in [(c1w, c1b), (c2w, c2b), (c3w, c3b)] {
            let c = e.conv2d(h, w, Some(b), CONV).unwrap();
            let r = e.relu(c).unwrap();
            let p = e.max_pool2d(r, POOL).unwrap();
            tmp.extend([c, r, p]);
            h = p;
        }
        let f = e.flatten(h, 1).unwrap();
        let l1 = e.linear(f, f1w, Some(f1b)).unwrap();
        let r = e.relu(l1).unwrap();
        let logits = e.linear(r, f2w, Some(f2b)).unwrap();
        tmp.extend([f, l1, r]);
        (logits, tmp)
    };
    let train_step = |e: &mut Engine| -> (f64, f64, f64) {
        let t0 = Instant::now();
        let (logits, tmp) = forward(e, x);
        let loss = e.cross_entropy(logits, y).unwrap();
        let t1 = Instant::now();
        e.backward(loss).unwrap();
        let t2 = Instant::now();
        e.step(opt).unwrap();
        let t3 = Instant::now();
        for t in tmp.into_iter().chain([logits, loss]) {
            e.release(t);
        }
        (
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
        )
    };
    for _ in 0..3 {
        train_step(&mut e);
    }
    // Each engine call runs inside the engine's pool on its own; a runtime may also run the
    // whole loop inside the pool (`WHOLE_LOOP_IN_POOL=1`), which makes those calls inline.
    let whole = std::env::var_os("WHOLE_LOOP_IN_POOL").is_some();
    let run = |e: &mut Engine| {
        let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
        let t = Instant::now();
        for _ in 0..steps {
            let (f, b, u) = train_step(e);
            fwd += f;
            bwd += b;
            upd += u;
        }
        (t.elapsed().as_secs_f64(), fwd, bwd, upd)
    };
    let (secs, fwd, bwd, upd) = match chiron_engine::thread_pool() {
        Some(pool) if whole => pool.install(|| run(&mut e)),
        _ => run(&mut e),
    };
    let k = steps as f64;
    println!(
        "CNN train, batch {batch}{}: {:.0} img/s ({:.1} ms/step: forward {:.1} / backward {:.1} / update {:.1})",
        if whole { " (whole loop in pool)" } else { "" },
        k * f64::from(batch) / secs,
        secs / k * 1e3,
        fwd / k * 1e3,
        bwd / k * 1e3,
        upd / k * 1e3
    );

    // Inference: detached input, parameters detached too (no graph recorded).
    let detached: Vec<TensorId> = params.iter().map(|&p| e.detach(p).unwrap()).collect();
    let infer = |e: &mut Engine| {
        let mut tmp = Vec::new();
        let mut h = x;
        for i in 0..3 {
            let c = e
                .conv2d(h, detached[2 * i], Some(detached[2 * i + 1]), CONV)
                .unwrap();
            let r = e.relu(c).unwrap();
            let p = e.max_pool2d(r, POOL).unwrap();
            tmp.extend([c, r, p]);
            h = p;
        }
        let f = e.flatten(h, 1).unwrap();
        let l1 = e.linear(f, detached[6], Some(detached[7])).unwrap();
        let r = e.relu(l1).unwrap();
        let logits = e.linear(r, detached[8], Some(detached[9])).unwrap();
        tmp.extend([f, l1, r, logits]);
        for t in tmp {
            e.release(t);
        }
    };
    infer(&mut e);
    let t = Instant::now();
    for _ in 0..steps {
        infer(&mut e);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "CNN inference, batch {batch}: {:.0} img/s",
        steps as f64 * f64::from(batch) / secs
    );
}
