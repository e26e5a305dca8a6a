//! Optimizers: the toolchain's, configured here and stepped host-side.
//!
//! ```ignore
//! let opt = optim::Sgd::new(0.1).momentum(0.9).nesterov().weight_decay(5e-4)
//!     .schedule(optim::Schedule::Cosine((total_steps, 0.0)))
//!     .build(&net.parameters())?;
//! loss.backward()?;
//! opt.step()?; // consumes and clears the gradients
//! ```

use crate::bindings::chiron::trainer::optim as wo;
use crate::{Result, Tensor};

/// A live optimizer: `step()`, `zero_grad()`, `learning_rate()`.
pub use crate::bindings::chiron::trainer::optim::Optimizer;
/// Learning-rate schedule after warm-up: `Constant`, `Step((every, gamma))`,
/// `Cosine((total, min_lr))`.
pub use crate::bindings::chiron::trainer::optim::Schedule;

/// Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.
#[derive(Clone, Copy, Debug)]
pub struct Sgd {
    lr: f32,
    schedule: Schedule,
    warmup: u64,
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
}

impl Sgd {
    /// Plain SGD at learning rate `lr`, constant schedule, no warm-up.
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            schedule: Schedule::Constant,
            warmup: 0,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
    /// Momentum factor (e.g. 0.9).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }
    /// Nesterov momentum.
    pub fn nesterov(mut self) -> Self {
        self.nesterov = true;
        self
    }
    /// L2 weight decay added to the gradient.
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Learning-rate schedule after warm-up.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }
    /// Linear warm-up from 0 over `steps` steps.
    pub fn warmup(mut self, steps: u64) -> Self {
        self.warmup = steps;
        self
    }
    /// Creates the optimizer over `params` in the host.
    pub fn build(self, params: &[&Tensor]) -> Result<Optimizer> {
        Optimizer::sgd(
            params,
            wo::LrConfig {
                base: self.lr,
                schedule: self.schedule,
                warmup: self.warmup,
            },
            wo::SgdConfig {
                momentum: self.momentum,
                nesterov: self.nesterov,
                weight_decay: self.weight_decay,
            },
        )
    }
}

/// Adam, or AdamW with [`Adam::decoupled`].
#[derive(Clone, Copy, Debug)]
pub struct Adam {
    lr: f32,
    schedule: Schedule,
    warmup: u64,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
}

impl Adam {
    /// Adam at learning rate `lr` with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8; no decay).
    pub fn new(lr: f32) -> Self {
        Self {
            lr,
            schedule: Schedule::Constant,
            warmup: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
    /// AdamW at `lr` with decoupled weight decay `wd`.
    pub fn adamw(lr: f32, wd: f32) -> Self {
        Self::new(lr).weight_decay(wd).decoupled()
    }
    /// Moment decay rates.
    pub fn betas(mut self, beta1: f32, beta2: f32) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }
    /// Denominator epsilon.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }
    /// Weight decay (L2 in the gradient, or decoupled with [`Adam::decoupled`]).
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Decouples weight decay from the gradient (AdamW).
    pub fn decoupled(mut self) -> Self {
        self.decoupled = true;
        self
    }
    /// Learning-rate schedule after warm-up.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }
    /// Linear warm-up from 0 over `steps` steps.
    pub fn warmup(mut self, steps: u64) -> Self {
        self.warmup = steps;
        self
    }
    /// Creates the optimizer over `params` in the host.
    pub fn build(self, params: &[&Tensor]) -> Result<Optimizer> {
        Optimizer::adam(
            params,
            wo::LrConfig {
                base: self.lr,
                schedule: self.schedule,
                warmup: self.warmup,
            },
            wo::AdamConfig {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                decoupled: self.decoupled,
            },
        )
    }
}
