//! Measures what the sandbox itself costs: a fresh instance per request, and a guest→host call.
//!
//! ```text
//! cargo run --release -j2 -p chiron-sandbox --example costs
//! ```
//!
//! - load: Cranelift compilation of the `mlp` component plus the import/export checks;
//! - fresh instance: `Store::new` + instantiation from the pre-instantiated `mlp` component +
//!   drop, with every limit applied (median of many);
//! - guest→host call without resources: the `hostcall-loop` fixture calls `report.progress`
//!   N times; (time(N) − time(0)) / N;
//! - guest→host resource call: the `hostcall-bench` fixture does N × `add(t, t)` (two
//!   borrows, an owned result, its drop) and N × `t.item()`; the same engine calls made natively
//!   are subtracted, leaving the sandbox's share;
//! - with a component's path as the argument (say a Python trainer from `chiron trainer
//!   build`): its fresh instance as tools map it (copy-on-write images) and as the enclave
//!   does (`SandboxLimits::resident_memory`: the initial heap copied into a slot kept
//!   resident, so the process's RSS never follows what a guest touches).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chiron_engine::{Engine, EngineConfig};
use chiron_sandbox::{
    Sandbox, SandboxLimits, TrainConfig, TrainerModule, measure_fresh_instance, run_train,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.component.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn engine() -> Engine {
    Engine::new(EngineConfig {
        seed: 1,
        max_live_bytes: 1 << 30,
        max_tensors: 100_000,
        max_steps: u64::MAX,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median wall time of `train` with the given `epochs` and `batch_size` (the probes' loop counts).
fn train_time(module: &TrainerModule, epochs: u32, batch_size: u32) -> Duration {
    let config = TrainConfig {
        epochs,
        batch_size,
        hyper: vec![],
        wall_budget: Duration::from_secs(60),
    };
    median(
        (0..7)
            .map(|_| {
                let start = Instant::now();
                run_train(module, engine(), &config).unwrap();
                start.elapsed()
            })
            .collect(),
    )
}

/// Nanoseconds per loop round: (time(n rounds) − time(0)) / n.
fn per_round(module: &TrainerModule, epochs: u32, batch_size: u32) -> f64 {
    let base = train_time(module, 0, 0);
    let full = train_time(module, epochs, batch_size);
    let n = epochs.max(batch_size);
    (full.as_secs_f64() - base.as_secs_f64()) / f64::from(n) * 1e9
}

/// Median nanoseconds per round of `f`, natively.
fn native(n: u32, mut f: impl FnMut()) -> f64 {
    let runs: Vec<Duration> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed()
        })
        .collect();
    median(runs).as_secs_f64() / f64::from(n) * 1e9
}

/// Median fresh instance of the component at `path` under `limits` (after a warm-up).
fn fresh_instance_of(path: &str, limits: SandboxLimits) -> Duration {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let sandbox = Sandbox::new(limits).unwrap();
    let module = TrainerModule::load(&sandbox, &bytes).unwrap();
    for _ in 0..20 {
        measure_fresh_instance(&module).unwrap();
    }
    median(
        (0..201)
            .map(|_| measure_fresh_instance(&module).unwrap())
            .collect(),
    )
}

fn main() {
    if let Some(path) = std::env::args().nth(1) {
        let tools = fresh_instance_of(&path, SandboxLimits::default());
        let enclave = fresh_instance_of(
            &path,
            SandboxLimits {
                resident_memory: true,
                max_instances: 2, // each slot is made resident up to the memory cap
                ..SandboxLimits::default()
            },
        );
        println!(
            "fresh instance of {path}: median {tools:?} with copy-on-write images (tools), \
             {enclave:?} with resident slots (the enclave)"
        );
        return;
    }
    let sandbox = Sandbox::new(SandboxLimits {
        max_reports: 0, // measure the call, not the bookkeeping of kept reports
        ..SandboxLimits::default()
    })
    .unwrap();

    let bytes = fixture("mlp");
    let start = Instant::now();
    let mlp = TrainerModule::load(&sandbox, &bytes).unwrap();
    println!(
        "load (compile + checks + probe instance) of mlp, {} KB: {:?}",
        bytes.len() / 1000,
        start.elapsed()
    );
    for _ in 0..100 {
        measure_fresh_instance(&mlp).unwrap();
    }
    let fresh = median(
        (0..5_000)
            .map(|_| measure_fresh_instance(&mlp).unwrap())
            .collect(),
    );
    println!("fresh instance (mlp, pooling, all limits on): median {fresh:?}");

    let n = 1_000_000;
    let probe = TrainerModule::load(&sandbox, &fixture("hostcall-loop")).unwrap();
    println!(
        "guest→host call without resources (report.progress): {:.0} ns",
        per_round(&probe, n, 0)
    );

    let bench = TrainerModule::load(&sandbox, &fixture("hostcall-bench")).unwrap();
    let n = 200_000;
    let mut e = engine();
    let t = e.full(&[1], 1.0).unwrap();
    let add_native = native(n, || {
        let s = e.add(t, t).unwrap();
        e.release(s);
    });
    let add_sandbox = per_round(&bench, n, 0);
    println!(
        "add(t, t) + drop of the result (two borrows in, one owned handle out): \
         {add_sandbox:.0} ns through the sandbox, {add_native:.0} ns natively → \
         sandbox share {:.0} ns for 2 guest→host calls",
        add_sandbox - add_native
    );
    let item_native = native(n, || {
        std::hint::black_box(e.item(t).unwrap());
    });
    let item_sandbox = per_round(&bench, 0, n);
    println!(
        "t.item(): {item_sandbox:.0} ns through the sandbox, {item_native:.0} ns natively → \
         sandbox share {:.0} ns",
        item_sandbox - item_native
    );
}
