//! End to end: the `mlp` example trainer, built into a component, trains through the sandbox on
//! the embedded UCI digits data (sealed with chiron-data's CSV importer, served by the engine's
//! `SealedRecords`) and then predicts the test split through fresh instances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chiron_engine::EngineConfig;
use chiron_sandbox::{Metric, TensorData, TrainConfig, TrainerModule, run_predict, run_train};
use common::{argmax, correct, digits, fixture, sandbox};

#[test]
fn mlp_trains_on_digits_through_the_sandbox() {
    let (records, input, labels) = digits();
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture("mlp")).unwrap();
    let engine = chiron_engine::Engine::new(EngineConfig {
        seed: 42,
        max_live_bytes: 256 << 20,
        max_tensors: 10_000,
        max_steps: 100_000,
    })
    .with_data(Arc::new(records));
    let config = TrainConfig {
        epochs: 30,
        batch_size: 32,
        hyper: vec![],
        wall_budget: Duration::from_secs(300),
    };
    let start = Instant::now();
    let outcome = run_train(&module, engine, &config).unwrap();
    let train_time = start.elapsed();
    let model = outcome.model.expect("the trainer saved its model");
    assert!(model.tensors.iter().any(|t| t.name == "fc1.weight"));
    assert_eq!(
        outcome.progress.last().map(|p| p.step),
        Some(outcome.steps_taken)
    );
    let reported = outcome
        .metrics
        .iter()
        .rfind(|m| m.metric == Metric::TestAccuracy)
        .map(|m| m.value)
        .expect("test accuracy reported");

    // Prediction: the whole test split in one request, then one record per request.
    let output = run_predict(&module, &model, &input).unwrap();
    assert_eq!(output.shape, vec![input.shape[0], 10]);
    let correct = correct(&output.values, 10, &labels);
    let accuracy = correct as f64 / labels.len() as f64;
    eprintln!(
        "mlp on digits: {} steps in {train_time:?}; test accuracy {accuracy:.4} via run_predict \
         ({reported:.4} reported by the trainer)",
        outcome.steps_taken
    );
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
    assert!((accuracy - f64::from(reported)).abs() < 1e-3);

    let mut latencies = Vec::new();
    for (i, label) in labels.iter().enumerate().take(50) {
        let one = TensorData {
            shape: vec![1, 1, 8, 8],
            values: input.values[i * 64..(i + 1) * 64].to_vec(),
        };
        let start = Instant::now();
        let out = run_predict(&module, &model, &one).unwrap();
        latencies.push(start.elapsed());
        assert_eq!(
            argmax(&out.values),
            argmax(&output.values[i * 10..(i + 1) * 10])
        );
        let _ = label;
    }
    latencies.sort();
    eprintln!(
        "one-record prediction request (fresh instance, model load, forward): median {:?}",
        latencies[latencies.len() / 2]
    );
}
