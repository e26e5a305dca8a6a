//! The engine's public, handle-based API. (Skeleton: signatures fixed, bodies being written.)

use std::sync::Arc;

/// Handle of a tensor owned by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub u32);

/// Handle of an optimizer owned by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OptimizerId(pub u32);

/// The fixed error codes; one-to-one with the WIT `error-code` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EngineError {
    /// Shapes do not fit the operation.
    #[error("invalid shape")]
    InvalidShape,
    /// An argument is out of range.
    #[error("invalid argument")]
    InvalidArgument,
    /// A memory, tensor-count or element budget would be exceeded; also an unknown handle.
    #[error("resource exhausted")]
    ResourceExhausted,
    /// The job's step budget is spent.
    #[error("budget exhausted")]
    BudgetExhausted,
    /// Not allowed in this phase (e.g. data access during prediction).
    #[error("not allowed")]
    NotAllowed,
    /// Requested records do not exist.
    #[error("out of range")]
    OutOfRange,
}

/// Result alias.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Limits and seed of one engine instance (one job, or one prediction request).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Seed of every random choice the engine makes.
    pub seed: u64,
    /// Upper bound on bytes of live tensors (parameters, activations, gradients, optimizer state).
    pub max_live_bytes: u64,
    /// Upper bound on live tensor handles.
    pub max_tensors: u32,
    /// Upper bound on optimizer steps (the job's declared step budget); `u64::MAX` for none.
    pub max_steps: u64,
}

/// Parameter initialisers (see the WIT `init` enum for the formulas).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// U(-b, b), b = sqrt(6 / fan_in).
    KaimingUniform,
    /// N(0, 2 / fan_in).
    KaimingNormal,
    /// U(-b, b), b = sqrt(6 / (fan_in + fan_out)).
    XavierUniform,
    /// N(0, 2 / (fan_in + fan_out)).
    XavierNormal,
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    BiasUniform,
}

/// 2-D convolution options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Stride (h, w).
    pub stride: [u32; 2],
    /// Zero padding (h, w).
    pub padding: [u32; 2],
    /// Dilation (h, w).
    pub dilation: [u32; 2],
    /// Groups.
    pub groups: u32,
}

/// 2-D pooling options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// Window (h, w).
    pub kernel: [u32; 2],
    /// Stride (h, w).
    pub stride: [u32; 2],
    /// Padding (h, w).
    pub padding: [u32; 2],
}

/// SGD settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Momentum (0 = plain SGD).
    pub momentum: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f32,
}

/// Adam / AdamW settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// AdamW (decoupled decay) instead of L2 in the gradient.
    pub decoupled: bool,
}

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// Constant.
    Constant,
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Period in steps.
        every: u64,
        /// Factor.
        gamma: f32,
    },
    /// Cosine decay to `min_lr` over `total` steps.
    Cosine {
        /// Steps to reach `min_lr`.
        total: u64,
        /// Final rate.
        min_lr: f32,
    },
}

/// Learning rate: base, schedule, linear warm-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrConfig {
    /// Base rate.
    pub base: f32,
    /// Schedule after warm-up.
    pub schedule: Schedule,
    /// Linear warm-up steps from 0.
    pub warmup: u64,
}

/// Random crop and flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    /// Zero-pad by this many pixels then crop back at a random offset (0 = off).
    pub crop_padding: u32,
    /// Flip horizontally with probability 1/2.
    pub horizontal_flip: bool,
}

/// Per-channel normalisation.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    /// Means, one per channel.
    pub mean: Vec<f32>,
    /// Standard deviations, one per channel.
    pub std: Vec<f32>,
}

/// The declared schema the trainer may know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSchema {
    /// One record's shape.
    pub shape: Vec<u32>,
    /// Number of classes.
    pub classes: u32,
    /// (split name, records), in storage order.
    pub splits: Vec<(String, u64)>,
}

/// Decrypted records the engine assembles batches from. Implemented over a sealed dataset
/// preloaded into enclave memory (reads in file order, whatever the trainer asks for).
pub trait RecordSource: Send + Sync {
    /// The declared schema.
    fn schema(&self) -> DataSchema;
    /// Features (as f32: u8 data scaled to [0, 1]) and labels of `indices` in `split`,
    /// appended to `features` and `labels`.
    fn gather(
        &self,
        split: &str,
        indices: &[u64],
        features: &mut Vec<f32>,
        labels: &mut Vec<f32>,
    ) -> Result<()>;
}

/// One engine instance: its tensors, parameters, gradients, optimizers and generator.
pub struct Engine {
    _config: EngineConfig,
    _data: Option<Arc<dyn RecordSource>>,
}

macro_rules! skeleton {
    () => {
        Err(EngineError::NotAllowed)
    };
}

#[allow(unused_variables, missing_docs)]
impl Engine {
    /// A fresh engine with no data attached (prediction) .
    pub fn new(config: EngineConfig) -> Self {
        Self {
            _config: config,
            _data: None,
        }
    }
    /// Attaches the training data (training jobs only; prediction engines have none).
    pub fn with_data(mut self, data: Arc<dyn RecordSource>) -> Self {
        self._data = Some(data);
        self
    }

    // --- tensor resource ---
    pub fn from_data(&mut self, shape: &[u32], data: &[f32]) -> Result<TensorId> { skeleton!() }
    pub fn full(&mut self, shape: &[u32], value: f32) -> Result<TensorId> { skeleton!() }
    pub fn shape(&self, x: TensorId) -> Result<Vec<u32>> { skeleton!() }
    pub fn item(&self, x: TensorId) -> Result<f32> { skeleton!() }
    pub fn to_vec(&self, x: TensorId) -> Result<Vec<f32>> { skeleton!() }
    /// Frees a tensor (the guest dropped its handle). Unknown ids are ignored.
    pub fn release(&mut self, x: TensorId) {}
    /// Live tensors and their bytes (for tests and accounting).
    pub fn live(&self) -> (u32, u64) { (0, 0) }

    // --- tensor ops ---
    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn sub(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn mul(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn div(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn affine(&mut self, a: TensorId, scale: f32, shift: f32) -> Result<TensorId> { skeleton!() }
    pub fn matmul(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn linear(&mut self, x: TensorId, weight: TensorId, bias: Option<TensorId>) -> Result<TensorId> { skeleton!() }
    pub fn conv2d(&mut self, x: TensorId, weight: TensorId, bias: Option<TensorId>, options: Conv2dOptions) -> Result<TensorId> { skeleton!() }
    pub fn max_pool2d(&mut self, x: TensorId, options: Pool2dOptions) -> Result<TensorId> { skeleton!() }
    pub fn avg_pool2d(&mut self, x: TensorId, options: Pool2dOptions) -> Result<TensorId> { skeleton!() }
    pub fn adaptive_avg_pool2d(&mut self, x: TensorId, output: [u32; 2]) -> Result<TensorId> { skeleton!() }
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(&mut self, x: TensorId, gamma: TensorId, beta: TensorId, running_mean: TensorId, running_var: TensorId, training: bool, momentum: f32, eps: f32) -> Result<TensorId> { skeleton!() }
    pub fn dropout(&mut self, x: TensorId, p: f32, training: bool) -> Result<TensorId> { skeleton!() }
    pub fn relu(&mut self, x: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn gelu(&mut self, x: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn sigmoid(&mut self, x: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn tanh(&mut self, x: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn softmax(&mut self, x: TensorId, axis: u32) -> Result<TensorId> { skeleton!() }
    pub fn log_softmax(&mut self, x: TensorId, axis: u32) -> Result<TensorId> { skeleton!() }
    pub fn cross_entropy(&mut self, logits: TensorId, labels: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn mse(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn reshape(&mut self, x: TensorId, shape: &[i32]) -> Result<TensorId> { skeleton!() }
    pub fn flatten(&mut self, x: TensorId, start: u32) -> Result<TensorId> { skeleton!() }
    pub fn transpose(&mut self, x: TensorId, axis0: u32, axis1: u32) -> Result<TensorId> { skeleton!() }
    pub fn concat(&mut self, xs: &[TensorId], axis: u32) -> Result<TensorId> { skeleton!() }
    pub fn mean(&mut self, x: TensorId, axis: Option<u32>, keep: bool) -> Result<TensorId> { skeleton!() }
    pub fn sum(&mut self, x: TensorId, axis: Option<u32>, keep: bool) -> Result<TensorId> { skeleton!() }
    pub fn argmax(&mut self, x: TensorId, axis: u32) -> Result<TensorId> { skeleton!() }
    pub fn detach(&mut self, x: TensorId) -> Result<TensorId> { skeleton!() }
    pub fn normalize_channels(&mut self, x: TensorId, mean: &[f32], std: &[f32]) -> Result<TensorId> { skeleton!() }

    // --- nn ---
    pub fn parameter(&mut self, shape: &[u32], init: Init, fan_in: u32, fan_out: u32) -> Result<TensorId> { skeleton!() }
    pub fn buffer(&mut self, shape: &[u32], value: f32) -> Result<TensorId> { skeleton!() }
    pub fn backward(&mut self, loss: TensorId) -> Result<()> { skeleton!() }

    // --- optim ---
    pub fn sgd(&mut self, params: &[TensorId], lr: LrConfig, config: SgdConfig) -> Result<OptimizerId> { skeleton!() }
    pub fn adam(&mut self, params: &[TensorId], lr: LrConfig, config: AdamConfig) -> Result<OptimizerId> { skeleton!() }
    pub fn step(&mut self, optimizer: OptimizerId) -> Result<()> { skeleton!() }
    pub fn zero_grad(&mut self, optimizer: OptimizerId) {}
    pub fn learning_rate(&self, optimizer: OptimizerId) -> f32 { 0.0 }
    pub fn release_optimizer(&mut self, optimizer: OptimizerId) {}
    /// Optimizer steps taken so far (all optimizers), checked against `max_steps`.
    pub fn steps_taken(&self) -> u64 { 0 }

    // --- data ---
    pub fn schema(&self) -> Result<DataSchema> { skeleton!() }
    pub fn shuffled(&mut self, split: &str, epoch: u32) -> Result<Vec<u64>> { skeleton!() }
    pub fn batch(&mut self, split: &str, indices: &[u64], normalize: Option<&Normalize>, augment: Option<Augment>) -> Result<(TensorId, TensorId)> { skeleton!() }

    // --- model ---
    /// Named copies of tensors' values for sealing (the runtime serialises them as safetensors).
    pub fn export_named(&self, tensors: &[(String, TensorId)]) -> Result<Vec<(String, Vec<u32>, Vec<f32>)>> { skeleton!() }
}
