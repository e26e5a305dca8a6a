//! The image trainers (`cnn`, `resnet`) end to end on small synthetic image data (a bright
//! quadrant tells the class), for the input kinds they size themselves for: `[1, 28, 28]` and
//! `[3, 32, 32]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chiron_engine::{DataSchema, EngineConfig, EngineError, RecordSource};
use chiron_sandbox::{Metric, TensorData, TrainConfig, TrainerModule, run_predict, run_train};
use common::{fixture, sandbox};

/// Images whose class (0..4) is the quadrant that is bright; the rest is faint noise.
struct Quadrants {
    shape: [u32; 3],
    train: u64,
    test: u64,
}

/// A cheap deterministic hash (splitmix64) for the noise.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Quadrants {
    fn record(&self, key: u64, features: &mut Vec<f32>) -> u32 {
        let [c, h, w] = self.shape;
        let class = (mix(key) % 4) as u32;
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let quadrant = u32::from(y >= h / 2) * 2 + u32::from(x >= w / 2);
                    let noise = (mix(key ^ u64::from((ch * h + y) * w + x) << 20) % 100) as f32;
                    let base = if quadrant == class { 0.7 } else { 0.1 };
                    features.push(base + noise / 500.0);
                }
            }
        }
        class
    }
}

impl RecordSource for Quadrants {
    fn schema(&self) -> DataSchema {
        DataSchema {
            shape: self.shape.to_vec(),
            classes: 4,
            splits: vec![("train".into(), self.train), ("test".into(), self.test)],
        }
    }
    fn gather(
        &self,
        split: &str,
        indices: &[u64],
        features: &mut Vec<f32>,
        labels: &mut Vec<f32>,
    ) -> chiron_engine::Result<()> {
        let (records, offset) = match split {
            "train" => (self.train, 0),
            "test" => (self.test, 1 << 40),
            _ => return Err(EngineError::OutOfRange),
        };
        for &i in indices {
            if i >= records {
                return Err(EngineError::OutOfRange);
            }
            labels.push(self.record(offset + i, features) as f32);
        }
        Ok(())
    }
}

/// Trains `trainer` for 3 epochs with `hyper`, checks the test accuracy it reports, that its
/// model holds `tensor`, and that `run_predict` answers 8 held-out images.
fn trains_and_predicts(trainer: &str, shape: [u32; 3], hyper: &[(&str, f32)], tensor: &str) {
    let data = Quadrants {
        shape,
        train: 256,
        test: 64,
    };
    let mut probe = Vec::new();
    let labels: Vec<u32> = (0..8)
        .map(|i| data.record((1 << 40) + i, &mut probe))
        .collect();
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture(trainer)).unwrap();
    let engine = chiron_engine::Engine::new(EngineConfig {
        seed: 3,
        max_live_bytes: 512 << 20,
        max_tensors: 10_000,
        max_steps: 10_000,
    })
    .with_data(Arc::new(data));
    let config = TrainConfig {
        epochs: 3,
        batch_size: 32,
        hyper: hyper.iter().map(|(n, v)| ((*n).to_string(), *v)).collect(),
        wall_budget: Duration::from_secs(300),
    };
    let outcome = run_train(&module, engine, &config).unwrap();
    assert_eq!(outcome.steps_taken, 3 * 256 / 32);
    let accuracy = outcome
        .metrics
        .iter()
        .rfind(|m| m.metric == Metric::TestAccuracy)
        .map(|m| m.value)
        .unwrap();
    eprintln!(
        "{trainer} {shape:?}: test accuracy {accuracy} after {} steps",
        outcome.steps_taken
    );
    assert!(accuracy > 0.6, "{accuracy}");
    let model = outcome.model.unwrap();
    assert!(model.tensors.iter().any(|t| t.name == tensor));

    let [c, h, w] = shape;
    let output = run_predict(
        &module,
        &model,
        &TensorData {
            shape: vec![8, c, h, w],
            values: probe,
        },
    )
    .unwrap();
    assert_eq!(output.shape, vec![8, 4]);
    assert!(output.values.iter().all(|v| v.is_finite()));
    let correct = common::correct(&output.values, 4, &labels);
    assert!(correct >= 5, "{correct}/8 through run_predict");
}

// No flips: this task is not mirror-invariant (a flip changes the bright quadrant).
const CNN: &[(&str, f32)] = &[("lr", 0.02), ("augment", 0.0)];

#[test]
fn cnn_on_1x28x28() {
    trains_and_predicts("cnn", [1, 28, 28], CNN, "block0.bn.running_var");
}

#[test]
fn cnn_on_3x32x32() {
    trains_and_predicts("cnn", [3, 32, 32], CNN, "block0.bn.running_var");
}

#[test]
fn resnet8_on_3x32x32() {
    trains_and_predicts(
        "resnet",
        [3, 32, 32],
        &[("depth", 8.0), ("lr", 0.05), ("augment", 0.0)],
        "stage2.block0.down.bn.running_var",
    );
}
