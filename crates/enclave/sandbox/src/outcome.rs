//! What goes into and comes out of a sandboxed run: plain data, no handles.

use std::time::Duration;

/// The job's training configuration: what the guest's `train` receives, plus the wall-clock
/// budget the runtime enforces (which the guest does not see).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Epochs the job declared.
    pub epochs: u32,
    /// Batch size the job declared.
    pub batch_size: u32,
    /// Hyper-parameters from the operator's job description, by name.
    pub hyper: Vec<(String, f32)>,
    /// Wall-clock budget of the whole `train` call (instantiation included); exceeding it ends
    /// the job with [`crate::FailureCode::Timeout`].
    pub wall_budget: Duration,
}

/// A dense f32 tensor as plain data: prediction inputs and outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    /// The shape.
    pub shape: Vec<u32>,
    /// The values, row-major; `values.len()` is the product of `shape`.
    pub values: Vec<f32>,
}

/// One tensor of a saved model.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The name the trainer gave it (1–64 characters of `[a-z0-9_.]`, unique in the model).
    pub name: String,
    /// The shape.
    pub shape: Vec<u32>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

/// The model a trainer saved, as the runtime seals it and as prediction loads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SavedModel {
    /// The tensors, in the order the trainer saved them.
    pub tensors: Vec<NamedTensor>,
}

/// A `report.progress` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Steps done.
    pub step: u64,
    /// Steps declared.
    pub total: u64,
}

/// The fixed metric names of the `report` interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Training loss.
    TrainLoss,
    /// Training accuracy.
    TrainAccuracy,
    /// Test loss.
    TestLoss,
    /// Test accuracy.
    TestAccuracy,
    /// Learning rate.
    LearningRate,
}

/// A `report.metric` call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricPoint {
    /// Which metric.
    pub metric: Metric,
    /// At which step.
    pub step: u64,
    /// The value (as the guest gave it; may be non-finite).
    pub value: f32,
}

/// What a successful `train` produced. Collected only: the runtime decides what leaves (the
/// operator sees coarsened progress, the owner metrics if its policy allows, the model is
/// sealed).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutcome {
    /// Progress reports in call order (at most [`crate::SandboxLimits::max_reports`] reports
    /// in all, with `metrics`).
    pub progress: Vec<Progress>,
    /// Metric reports in call order.
    pub metrics: Vec<MetricPoint>,
    /// Reports beyond the cap, dropped.
    pub dropped_reports: u64,
    /// The model of the last successful `model.save`; `None` if the trainer never saved.
    pub model: Option<SavedModel>,
    /// Optimizer steps the engine took.
    pub steps_taken: u64,
}
