//! Python trainers (componentize-py components holding CPython) in the sandbox: the example
//! `mlp` port computes bit for bit what the Rust `mlp` computes, and a hostile trainer that
//! tries every system channel CPython has gets nothing from the virtual WASI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chiron_engine::EngineConfig;
use chiron_sandbox::{FailureCode, TrainConfig, TrainerModule, run_predict, run_train};
use common::{digits, engine, fixture, python_component, sandbox};

fn digits_engine(seed: u64) -> chiron_engine::Engine {
    let (records, _, _) = digits();
    chiron_engine::Engine::new(EngineConfig {
        seed,
        max_live_bytes: 256 << 20,
        max_tensors: 10_000,
        max_steps: 100_000,
    })
    .with_data(Arc::new(records))
}

#[test]
fn python_mlp_trains_and_predicts_bit_for_bit_like_the_rust_mlp() {
    let Some(python) = python_component("trainers/python/mlp") else {
        return;
    };
    let sandbox = sandbox();
    let python = TrainerModule::load(&sandbox, &python).unwrap();
    let rust = TrainerModule::load(&sandbox, &fixture("mlp")).unwrap();
    let config = TrainConfig {
        epochs: 5,
        batch_size: 32,
        hyper: vec![],
        wall_budget: Duration::from_secs(300),
    };
    let from_python = run_train(&python, digits_engine(3), &config).unwrap();
    let from_rust = run_train(&rust, digits_engine(3), &config).unwrap();

    assert_eq!(from_python.steps_taken, from_rust.steps_taken);
    assert_eq!(from_python.progress, from_rust.progress);
    assert_eq!(from_python.metrics, from_rust.metrics);
    let (py_model, rust_model) = (from_python.model.unwrap(), from_rust.model.unwrap());
    let names = |m: &chiron_sandbox::SavedModel| -> Vec<String> {
        m.tensors.iter().map(|t| t.name.clone()).collect()
    };
    assert_eq!(names(&py_model), names(&rust_model));
    assert_eq!(
        py_model.digest(),
        rust_model.digest(),
        "final weights differ"
    );

    // Each trainer's predict on the other's model: the same scores, bit for bit.
    let (_, input, _) = digits();
    let a = run_predict(&python, &rust_model, &input).unwrap();
    let b = run_predict(&rust, &py_model, &input).unwrap();
    assert_eq!(a.shape, vec![input.shape[0], 10]);
    assert_eq!(a, b);
}

/// What the probe (tests/python/probe/trainer.py) saw, trained with `seed`: one saved tensor
/// per observation, by name, and how long the call took.
fn probe(module: &TrainerModule, seed: u64) -> (Vec<(String, Vec<f32>)>, Duration) {
    let mut engine_config = common::engine_config();
    engine_config.seed = seed;
    let started = Instant::now();
    let outcome = run_train(
        module,
        chiron_engine::Engine::new(engine_config),
        &common::config(Duration::from_secs(60)),
    )
    .unwrap();
    let took = started.elapsed();
    let model = outcome.model.expect("the probe saves what it saw");
    let seen = model
        .tensors
        .into_iter()
        .map(|t| (t.name, t.values))
        .collect();
    (seen, took)
}

/// The probe's `random` observation (16 bytes of `os.urandom`).
fn random_bytes(seen: &[(String, Vec<f32>)]) -> Vec<f32> {
    let (_, bytes) = seen.iter().find(|(name, _)| name == "random").unwrap();
    assert_eq!(bytes.len(), 16);
    bytes.clone()
}

#[test]
fn a_python_trainer_gets_nothing_from_files_environment_clocks_sockets_or_randomness() {
    let Some(bytes) = python_component("crates/enclave/sandbox/tests/python/probe") else {
        return;
    };
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &bytes).unwrap();

    let (seen, took) = probe(&module, 1);
    assert_eq!(seen.len(), 15, "{seen:?}");
    for (name, values) in seen.iter().filter(|(name, _)| name != "random") {
        let expected = match name.as_str() {
            // 2024-01-01T00:00:00Z, whenever the job runs.
            "wall_clock" => 1_704_067_200.0,
            // Everything else: empty, zero, or failed.
            _ => 0.0,
        };
        assert_eq!(values[..], [expected], "{name}");
    }
    // `time.sleep(30)` returned at once: timers are due immediately, nothing blocks the host.
    assert!(took < Duration::from_secs(20), "the probe took {took:?}");

    // Randomness is the job's: the same seed gives the same bytes, another seed others.
    let random = random_bytes(&seen);
    let again = random_bytes(&probe(&module, 1).0);
    let other = random_bytes(&probe(&module, 2).0);
    assert_eq!(random, again);
    assert_ne!(random, other);
    assert!(random.iter().any(|&b| b != 0.0));
}

#[test]
fn a_python_trainer_that_exits_fails_like_any_trap_and_the_host_stays_healthy() {
    let Some(bytes) = python_component("crates/enclave/sandbox/tests/python/probe") else {
        return;
    };
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &bytes).unwrap();
    let mut config = common::config(Duration::from_secs(60));
    config.hyper = vec![("exit".into(), 1.0)];
    let err = run_train(&module, engine(), &config)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err, FailureCode::Trap);
    let (seen, _) = probe(&module, 1);
    assert!(seen.contains(&("environment_variables".to_owned(), vec![0.0])));
    common::assert_healthy(&sandbox);
}

#[test]
fn the_readme_quickstart_trainer_learns_digits() {
    let Some(bytes) = python_component("trainers/python/quickstart") else {
        return;
    };
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &bytes).unwrap();
    let config = TrainConfig {
        epochs: 10,
        batch_size: 32,
        hyper: vec![],
        wall_budget: Duration::from_secs(300),
    };
    let outcome = run_train(&module, digits_engine(1), &config).unwrap();
    let model = outcome.model.expect("the trainer saved its model");
    let (_, input, labels) = digits();
    let output = run_predict(&module, &model, &input).unwrap();
    let accuracy = common::correct(&output.values, 10, &labels) as f64 / labels.len() as f64;
    assert!(accuracy > 0.85, "test accuracy {accuracy}");
}
