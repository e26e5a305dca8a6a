//! Distributed training, the engine's part (DESIGN §6): a worker engine's optimizer step hands
//! its gradients to a [`GradientExchange`] and takes back the new parameters, and the
//! [`ParameterServer`] averages the workers' gradients and applies the optimizer, whose state
//! lives with it. The trainer's code is the same for one engine and for many: it calls `step`.
//!
//! Messages have one size per model: gradients and parameters travel as flat `f32` vectors in
//! the optimizer's parameter order (zeros where a parameter has no gradient, with a mask), so
//! their sizes do not depend on the data.

use crate::api::{EngineError, LrConfig, OptimizerId, Result};
use crate::dynt::{Dyn, dyn_map};
use crate::engine::Engine;
use crate::optim::UpdateRule;

/// What a parameter server must know of a job's optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimizerSpec {
    /// The update rule.
    pub rule: UpdateRule,
    /// The learning rate and its schedule.
    pub lr: LrConfig,
}

/// One worker step, as sent to the parameter server.
#[derive(Debug)]
pub struct ExchangeRequest<'a> {
    /// The optimizer's rule and schedule.
    pub spec: OptimizerSpec,
    /// The parameters' version this step starts from (the optimizer's step count).
    pub version: u64,
    /// Element count of each parameter, in order.
    pub numels: &'a [usize],
    /// Every parameter's gradient, concatenated in order (zeros where none).
    pub grads: &'a [f32],
    /// Whether each parameter has a gradient.
    pub has_grad: &'a [bool],
    /// The current parameters, concatenated: on the first step only (the server starts from
    /// them; every worker has the same, being seeded alike).
    pub initial: Option<&'a [f32]>,
}

/// The server's answer to a step: the parameters (concatenated in order) at `version`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeReply {
    /// The parameters' version (rounds the server has closed); a worker that lagged behind
    /// jumps to it.
    pub version: u64,
    /// The parameters.
    pub params: Vec<f32>,
}

/// Where a distributed job's optimizer steps go. Blocking until the server has the step's
/// parameters is the implementation's business.
pub trait GradientExchange: Send {
    /// Sends one step's gradients; returns the parameters after it.
    fn exchange(&mut self, request: &ExchangeRequest<'_>) -> Result<ExchangeReply>;
}

impl Engine {
    /// Makes this engine a worker of a distributed job: every optimizer `step` goes through
    /// `exchange` instead of updating locally.
    pub fn with_exchange(mut self, exchange: Box<dyn GradientExchange>) -> Self {
        self.exchange = Some(exchange);
        self
    }

    /// A step through the exchange (called by `step`, outside the worker pool: the exchange
    /// may block on other engines).
    pub(crate) fn exchange_step(&mut self, optimizer: OptimizerId) -> Result<()> {
        let opt = self
            .optimizers
            .get(&optimizer.0)
            .ok_or(EngineError::ResourceExhausted)?;
        let spec = OptimizerSpec {
            rule: opt.rule,
            lr: opt.lr,
        };
        let version = opt.t;
        let params = opt.params.clone();
        let mut numels = Vec::with_capacity(params.len());
        let mut grads = Vec::new();
        let mut has_grad = Vec::with_capacity(params.len());
        let mut initial = Vec::new();
        for p in &params {
            // A distributed job keeps every parameter of its optimizer alive.
            let entry = self.tensors.get(&p.0).ok_or(EngineError::InvalidArgument)?;
            let n = entry.value.numel();
            numels.push(n);
            if version == 0 {
                initial.extend(entry.value.to_vec().ok_or(EngineError::InvalidArgument)?);
            }
            match self.grads.get(&p.0) {
                Some((g, _)) => {
                    grads.extend(g.to_vec().ok_or(EngineError::InvalidArgument)?);
                    has_grad.push(true);
                }
                None => {
                    grads.resize(grads.len() + n, 0.0);
                    has_grad.push(false);
                }
            }
        }
        let mut exchange = self.exchange.take().ok_or(EngineError::NotAllowed)?;
        let result = exchange.exchange(&ExchangeRequest {
            spec,
            version,
            numels: &numels,
            grads: &grads,
            has_grad: &has_grad,
            initial: (version == 0).then_some(initial.as_slice()),
        });
        self.exchange = Some(exchange);
        let reply = result?;
        let new = reply.params;
        // The server is authoritative on the version: after it resumed from a checkpoint it
        // may be behind this worker's.
        if new.len() != grads.len() {
            return Err(EngineError::InvalidShape);
        }
        let mut offset = 0;
        for (p, n) in params.iter().zip(&numels) {
            let values = new[offset..offset + n].to_vec();
            offset += n;
            if let Some((_, bytes)) = self.grads.remove(&p.0) {
                self.live_bytes = self.live_bytes.saturating_sub(bytes);
            }
            let device = self.device.clone();
            if let Some(entry) = self.tensors.get_mut(&p.0) {
                let dims = entry.value.dims();
                let leaf = Dyn::from_vec(values, &dims, &device);
                entry.value = dyn_map!(leaf, x => x.require_grad());
            }
        }
        if let Some(opt) = self.optimizers.get_mut(&optimizer.0) {
            opt.t = reply.version;
        }
        Ok(())
    }
}

/// One worker's shard of a dataset: the `train` split cut into `count` equal contiguous parts
/// (the remainder, fewer than `count` records, is left out so every worker takes the same
/// number of steps per epoch); other splits are whole. Index `i` of the shard's `train` is
/// record `index · size + i` of the dataset's.
pub struct Shard {
    inner: std::sync::Arc<dyn crate::RecordSource>,
    index: u64,
    size: u64,
}

impl Shard {
    /// Shard `index` of `count` of `inner`; `InvalidArgument` unless `index < count` and every
    /// shard gets at least one record.
    pub fn new(
        inner: std::sync::Arc<dyn crate::RecordSource>,
        index: u64,
        count: u64,
    ) -> Result<Self> {
        let train = inner
            .schema()
            .splits
            .iter()
            .find(|(name, _)| name == "train")
            .map_or(0, |(_, n)| *n);
        if count == 0 || index >= count || train / count == 0 {
            return Err(EngineError::InvalidArgument);
        }
        Ok(Self {
            inner,
            index,
            size: train / count,
        })
    }
}

impl crate::RecordSource for Shard {
    fn schema(&self) -> crate::DataSchema {
        let mut schema = self.inner.schema();
        for (name, n) in &mut schema.splits {
            if name == "train" {
                *n = self.size;
            }
        }
        schema
    }

    fn gather(
        &self,
        split: &str,
        indices: &[u64],
        features: &mut Vec<f32>,
        labels: &mut Vec<f32>,
    ) -> Result<()> {
        if split != "train" {
            return self.inner.gather(split, indices, features, labels);
        }
        let mapped = indices
            .iter()
            .map(|&i| {
                if i < self.size {
                    Ok(self.index * self.size + i)
                } else {
                    Err(EngineError::OutOfRange)
                }
            })
            .collect::<Result<Vec<u64>>>()?;
        self.inner.gather(split, &mapped, features, labels)
    }
}
