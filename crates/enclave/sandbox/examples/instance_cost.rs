//! Measures what a trainer component costs the sandbox: compilation (registration), and a
//! fresh instance (what every prediction request pays), with and without resident instance
//! memory (the enclave's setting).
//!
//! Usage: `cargo run --release -p chiron-sandbox --example instance_cost -- COMPONENT [N]`
//! (N fresh instances per setting, default 200). Prints medians and the 90th percentile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chiron_sandbox::{Sandbox, SandboxLimits, measure_fresh_instance};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: instance_cost COMPONENT [N]");
        std::process::exit(2);
    };
    let n: usize = args
        .next()
        .map_or(200, |v| v.parse().expect("N is a number"));
    let bytes = std::fs::read(&path).expect("read the component");
    println!("component: {path}, {:.1} MB", bytes.len() as f64 / 1e6);
    for resident in [false, true] {
        let sandbox = Sandbox::new(SandboxLimits {
            max_instances: 4,
            max_memory_bytes: 128 << 20,
            resident_memory: resident,
            ..SandboxLimits::default()
        })
        .expect("start the sandbox");
        let started = Instant::now();
        let module = sandbox.load(&bytes).expect("load the component");
        let compile = started.elapsed();
        let mut times: Vec<Duration> = (0..n)
            .map(|_| measure_fresh_instance(&module).expect("instantiate"))
            .collect();
        times.sort();
        println!(
            "resident_memory={resident}: load (compile + checks) {:.2} s; fresh instance median \
             {:.3} ms, p90 {:.3} ms over {n}",
            compile.as_secs_f64(),
            times[n / 2].as_secs_f64() * 1e3,
            times[n * 9 / 10].as_secs_f64() * 1e3,
        );
    }
}
