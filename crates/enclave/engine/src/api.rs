//! The engine's public types: handles, the fixed error codes, configuration records and the
//! [`RecordSource`] trait. They mirror the `chiron:trainer` WIT world one to one; the
//! [`Engine`](crate::Engine) methods that use them live in `engine.rs` and its sibling modules.

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

/// Bytes that do not decode (a field past the end, a length that cannot be allocated, text
/// that is not UTF-8, trailing bytes) are an argument out of range.
impl From<chiron_codec::CodecError> for EngineError {
    fn from(_: chiron_codec::CodecError) -> Self {
        Self::InvalidArgument
    }
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
