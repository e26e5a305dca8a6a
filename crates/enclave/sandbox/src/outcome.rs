//! What goes into and comes out of a sandboxed run: plain data, no handles.

use std::time::Duration;

use chiron_engine::{EngineCheckpoint, EngineError};

use crate::timing::TimeSplit;

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

impl SavedModel {
    /// SHA-256 over every tensor's name, shape and value bits, in order: two models with the
    /// same digest are bit-identical (how `chiron trainer test` shows that two trainers — say a
    /// Rust one and its Python port — computed the same weights).
    pub fn digest(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&(self.tensors.len() as u64).to_le_bytes());
        for tensor in &self.tensors {
            ctx.update(&(tensor.name.len() as u64).to_le_bytes());
            ctx.update(tensor.name.as_bytes());
            ctx.update(&(tensor.shape.len() as u64).to_le_bytes());
            for dim in &tensor.shape {
                ctx.update(&dim.to_le_bytes());
            }
            ctx.update(&(tensor.values.len() as u64).to_le_bytes());
            for value in &tensor.values {
                ctx.update(&value.to_bits().to_le_bytes());
            }
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        digest
    }
}

/// A saved model made ready for predictions once: its tensors frozen in the engine
/// ([`chiron_engine::FrozenTensors`]), so each prediction's fresh engine borrows them rather
/// than copying them. Shapes and names only in `Debug`.
#[derive(Clone, Debug)]
pub struct PreparedModel {
    pub(crate) names: Vec<String>,
    pub(crate) frozen: chiron_engine::FrozenTensors,
}

impl PreparedModel {
    /// Freezes `model`'s tensors. A model whose tensors do not fit their shapes is the
    /// trainer's output gone wrong: [`crate::FailureCode::InvalidOutput`].
    pub fn new(model: &SavedModel) -> Result<Self, crate::FailureCode> {
        let frozen = chiron_engine::FrozenTensors::new(
            model
                .tensors
                .iter()
                .map(|t| (t.shape.as_slice(), t.values.as_slice())),
        )
        .map_err(|_| crate::FailureCode::InvalidOutput)?;
        Ok(Self {
            names: model.tensors.iter().map(|t| t.name.clone()).collect(),
            frozen,
        })
    }
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
    /// The most values the trainer's optimizers updated at once (its trained parameters).
    pub optimized_values: u64,
    /// Where the run's time went, with [`crate::SandboxLimits::time_guest`] (operator test
    /// mode); `None` otherwise.
    pub time_split: Option<TimeSplit>,
}

/// The training state a trainer handed to `model.checkpoint` at the end of an epoch, with the
/// reports made so far: enough to resume the job where it stood (see [`Checkpointing`]).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainCheckpoint {
    /// Epochs complete when the checkpoint was made.
    pub epochs_done: u32,
    /// Tensors, optimizer state, generator position and step count.
    pub engine: EngineCheckpoint,
    /// Progress reports up to the checkpoint.
    pub progress: Vec<Progress>,
    /// Metric reports up to the checkpoint.
    pub metrics: Vec<MetricPoint>,
}

/// First bytes of a serialised [`TrainCheckpoint`] (format version 1).
const TRAIN_CHECKPOINT_MAGIC: &[u8; 8] = b"CHRNTCP1";

impl TrainCheckpoint {
    /// The serialised form the runtime seals (little-endian, length-prefixed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(TRAIN_CHECKPOINT_MAGIC);
        out.extend_from_slice(&self.epochs_done.to_le_bytes());
        out.extend_from_slice(&(self.progress.len() as u32).to_le_bytes());
        for p in &self.progress {
            out.extend_from_slice(&p.step.to_le_bytes());
            out.extend_from_slice(&p.total.to_le_bytes());
        }
        out.extend_from_slice(&(self.metrics.len() as u32).to_le_bytes());
        for m in &self.metrics {
            out.push(metric_code(m.metric));
            out.extend_from_slice(&m.step.to_le_bytes());
            out.extend_from_slice(&m.value.to_le_bytes());
        }
        out.extend_from_slice(&self.engine.to_bytes());
        out
    }

    /// Parses [`TrainCheckpoint::to_bytes`] output; `InvalidArgument` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EngineError> {
        let mut r = chiron_codec::Reader::new(bytes);
        if &r.array::<8>("checkpoint magic")? != TRAIN_CHECKPOINT_MAGIC {
            return Err(EngineError::InvalidArgument);
        }
        let epochs_done = r.u32("epochs done")?;
        let n = r.u32("progress count")?;
        let mut progress = Vec::new();
        for _ in 0..n {
            progress.push(Progress {
                step: r.u64("progress step")?,
                total: r.u64("progress total")?,
            });
        }
        let n = r.u32("metric count")?;
        let mut metrics = Vec::new();
        for _ in 0..n {
            metrics.push(MetricPoint {
                metric: metric_from_code(r.u8("metric code")?)
                    .ok_or(EngineError::InvalidArgument)?,
                step: r.u64("metric step")?,
                value: r.f32("metric value")?,
            });
        }
        let rest = r.take_rest();
        let engine = EngineCheckpoint::from_bytes(rest)?;
        Ok(Self {
            epochs_done,
            engine,
            progress,
            metrics,
        })
    }
}

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::TrainLoss => 0,
        Metric::TrainAccuracy => 1,
        Metric::TestLoss => 2,
        Metric::TestAccuracy => 3,
        Metric::LearningRate => 4,
    }
}

fn metric_from_code(c: u8) -> Option<Metric> {
    Some(match c {
        0 => Metric::TrainLoss,
        1 => Metric::TrainAccuracy,
        2 => Metric::TestLoss,
        3 => Metric::TestAccuracy,
        4 => Metric::LearningRate,
        _ => return None,
    })
}

/// Where a training run's checkpoint offers go. Called synchronously from the guest's
/// `model.checkpoint`. The runtime decides when (and whether) an offer is written: a sink that
/// wrote on every call would let the trainer choose the count and timing of the host's writes.
/// An error refuses the offer and ends the run as the trainer's failure
/// ([`crate::FailureCode::CallFailed`] with `ResourceExhausted`).
pub trait CheckpointSink: Send {
    /// Takes (keeps, forwards) `checkpoint`.
    fn store(&mut self, checkpoint: &TrainCheckpoint) -> Result<(), CheckpointSinkError>;
}

/// A [`CheckpointSink`] could not store a checkpoint (the reason stays with the runtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointSinkError;

/// How a training run checkpoints and resumes. The default: no resume, checkpoints validated
/// and dropped (the operator's test mode).
#[derive(Default)]
pub struct Checkpointing {
    /// The checkpoint `model.resume` restores, if the job is resuming.
    pub resume_from: Option<TrainCheckpoint>,
    /// Where `model.checkpoint` sends checkpoints.
    pub sink: Option<Box<dyn CheckpointSink>>,
}
