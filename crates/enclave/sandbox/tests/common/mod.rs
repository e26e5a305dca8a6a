//! Helpers shared by the sandbox's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use chiron_sandbox::{
    EngineConfig, Sandbox, SandboxLimits, TrainConfig, TrainOutcome, TrainerModule, run_train,
};

/// Bytes of a prebuilt fixture component (tests/fixtures/NAME.component.wasm).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Path of a prebuilt fixture component.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.component.wasm"))
}

/// Limits for tests: small pool, small memory, test mode on (failure text to stderr).
pub fn limits() -> SandboxLimits {
    SandboxLimits {
        max_memory_bytes: 64 << 20,
        max_instances: 4,
        debug_log: true,
        ..SandboxLimits::default()
    }
}

/// A sandbox with [`limits`].
pub fn sandbox() -> Sandbox {
    Sandbox::new(limits()).expect("sandbox")
}

/// An engine for a training job with no data attached.
pub fn engine() -> chiron_engine::Engine {
    chiron_engine::Engine::new(engine_config())
}

/// Generous engine limits.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        seed: 7,
        max_live_bytes: 256 << 20,
        max_tensors: 50_000,
        max_steps: u64::MAX,
    }
}

/// A training configuration with a wall budget.
pub fn config(wall: Duration) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size: 32,
        hyper: vec![("lr".into(), 0.01)],
        wall_budget: wall,
    }
}

/// Runs a good job (the `report` guest, which needs no engine operation) and checks it
/// completes: the proof that the host is still healthy after whatever came before.
pub fn assert_healthy(sandbox: &Sandbox) -> TrainOutcome {
    let module = TrainerModule::load(sandbox, &fixture("report")).expect("load report guest");
    let outcome = run_train(&module, engine(), &config(Duration::from_secs(10)))
        .expect("a good job runs after a hostile one");
    assert_eq!(outcome.progress.len(), 3);
    outcome
}
