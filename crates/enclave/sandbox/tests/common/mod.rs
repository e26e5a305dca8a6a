//! Helpers shared by the sandbox's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use chiron_data::csv::{CsvOptions, import};
use chiron_engine::SealedRecords;
use chiron_sandbox::{
    EngineConfig, Sandbox, SandboxLimits, TensorData, TrainConfig, TrainOutcome, TrainerModule,
    run_train,
};
use chiron_seal::{MasterKey, SealOptions, SealedDataset};

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

/// A Python trainer (a directory with `trainer.py`, relative to the repository root) built
/// into a component by `chiron trainer build`'s library, reusing the last build while its
/// inputs are unchanged; `None` (the test is skipped) when componentize-py is not installed,
/// unless `CHIRON_REQUIRE_PYTHON_TRAINERS=1` makes that a failure (scripts/test.sh sets it;
/// scripts/setup.sh installs componentize-py).
pub fn python_component(dir: &str) -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(dir);
    let options = chiron_trainer_build::BuildOptions {
        jobs: None,
        quiet: true,
    };
    match chiron_trainer_build::build_trainer_with(&path, &options) {
        Ok(out) => Some(std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()))),
        Err(e)
            if e.is_missing_tool()
                && std::env::var_os("CHIRON_REQUIRE_PYTHON_TRAINERS").is_none_or(|v| v != "1") =>
        {
            eprintln!("skipped: no componentize-py to build the Python trainer {dir}: {e}");
            None
        }
        Err(e) => panic!("cannot build the Python trainer {dir}: {e}"),
    }
}

/// The digits dataset, shape [1, 8, 8], split 80/20 with seed 42: sealed and preloaded for the
/// engine, and the plain test split for prediction requests.
pub fn digits() -> (SealedRecords, TensorData, Vec<u32>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../data/digits/digits.csv.gz");
    let opts = CsvOptions {
        label_column: "64".into(),
        has_header: false,
        ..CsvOptions::default()
    };
    let mut dataset = import(&[path], &opts).unwrap();
    dataset.reshape(vec![1, 8, 8]).unwrap();
    let dataset = dataset.split_by_fraction(0.2, 42).unwrap();

    let test = dataset.split("test").unwrap();
    let values: Vec<f32> = test
        .features
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n = u32::try_from(test.labels.len()).unwrap();
    let input = TensorData {
        shape: vec![n, 1, 8, 8],
        values,
    };
    let labels = test.labels.clone();

    let key = MasterKey::from_bytes([42u8; 32]);
    let (sealed, _) = dataset
        .seal(Vec::new(), &key, SealOptions::default(), |_| {})
        .unwrap();
    let opened = SealedDataset::open(sealed, &key).unwrap();
    (SealedRecords::preload(&opened).unwrap(), input, labels)
}

/// Index of the largest score (the first of equal ones).
pub fn argmax(scores: &[f32]) -> usize {
    scores
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv { (i, x) } else { (bi, bv) }
        })
        .0
}

/// How many rows of `scores` (`classes` per row) put their largest score on the label.
pub fn correct(scores: &[f32], classes: usize, labels: &[u32]) -> usize {
    scores
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, label)| argmax(row) == **label as usize)
        .count()
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
