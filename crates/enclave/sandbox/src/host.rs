//! The host side of the world: each import forwards to the trusted engine.
//!
//! Tensor and optimizer handles are the engine's ids (see [`HostTensor`]). Engine errors become
//! the WIT `error-code` one to one; where a WIT signature has no error result, an engine error
//! ends the call with [`FailureCode::CallFailed`]. `report` and `model.save` are collected into
//! the store's state for the runtime to decide what leaves; nothing is sent anywhere from here.

use chiron_engine::{self as ce, EngineError, OptimizerId, TensorId};
use wasmtime::component::Resource;

use crate::bindings::chiron::trainer::{data, model, nn, optim, report, tensor, types};
use crate::bindings::{ErrorCode, HostOptimizer, HostTensor, MetricName};
use crate::failure::{FailureCode, HostFault};
use crate::outcome::{Checkpointing, Metric, MetricPoint, NamedTensor, Progress, TrainCheckpoint};
use crate::timing::GuestClock;

/// Result type of every generated import: the outer error traps, the inner is the WIT result.
type HostResult<T> = wasmtime::Result<Result<T, ErrorCode>>;

/// Which export is running; decides what the imports allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `train`: data access and `model.save` allowed, `model.load` not.
    Train,
    /// `predict`: `model.load` allowed; data access, `model.save` not; reports ignored.
    Predict,
}

/// The guest's memory cap: wasmtime's [`wasmtime::StoreLimits`] plus a record of whether it
/// refused a growth, so a trap that follows can be reported as [`FailureCode::OutOfMemory`].
pub(crate) struct Limiter {
    inner: wasmtime::StoreLimits,
    pub denied: bool,
}

impl Limiter {
    pub fn new(max_memory_bytes: usize, max_table_elements: usize) -> Self {
        Self {
            inner: wasmtime::StoreLimitsBuilder::new()
                .memory_size(max_memory_bytes)
                .table_elements(max_table_elements)
                .build(),
            denied: false,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.denied |= !ok;
        Ok(ok)
    }
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied = true;
        self.inner.memory_grow_failed(error)
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Everything one store (one job or one request) holds.
pub(crate) struct HostState {
    pub engine: ce::Engine,
    pub phase: Phase,
    pub limiter: Limiter,
    /// Progress reports, in call order (capped at `max_reports` together with `metrics`).
    pub progress: Vec<Progress>,
    /// Metric reports, in call order.
    pub metrics: Vec<MetricPoint>,
    /// Reports dropped because the cap was reached.
    pub dropped_reports: u64,
    pub max_reports: usize,
    /// The model of the last successful `model.save`.
    pub saved: Option<Vec<NamedTensor>>,
    /// Prediction: the saved model's tensors, already in the engine; handed out by the first
    /// `model.load`, copied for later ones.
    pub preloaded: Option<Vec<(String, TensorId)>>,
    pub load_count: u32,
    /// Training: where checkpoints go and what `model.resume` restores.
    pub checkpointing: Checkpointing,
    /// The `epochs-done` of the last checkpoint (they must increase).
    pub last_checkpoint: Option<u32>,
    /// Whether `model.resume` was called (once per run).
    pub resumed: bool,
    /// Where the guest's stdout and stderr go (the virtual WASI's console).
    pub console: crate::wasi::Console,
    /// Operator test mode: the guest/host time split ([`crate::SandboxLimits::time_guest`]).
    pub clock: Option<GuestClock>,
}

impl HostState {
    pub fn new(
        engine: ce::Engine,
        phase: Phase,
        limiter: Limiter,
        max_reports: usize,
        console: crate::wasi::Console,
    ) -> Self {
        Self {
            engine,
            phase,
            limiter,
            progress: Vec::new(),
            metrics: Vec::new(),
            dropped_reports: 0,
            max_reports,
            saved: None,
            preloaded: None,
            load_count: 0,
            checkpointing: Checkpointing::default(),
            last_checkpoint: None,
            resumed: false,
            console,
            clock: None,
        }
    }

    fn reports(&self) -> usize {
        self.progress.len() + self.metrics.len()
    }
}

/// WIT error code of an engine error (one to one).
pub(crate) fn to_wit(e: EngineError) -> ErrorCode {
    match e {
        EngineError::InvalidShape => ErrorCode::InvalidShape,
        EngineError::InvalidArgument => ErrorCode::InvalidArgument,
        EngineError::ResourceExhausted => ErrorCode::ResourceExhausted,
        EngineError::BudgetExhausted => ErrorCode::BudgetExhausted,
        EngineError::NotAllowed => ErrorCode::NotAllowed,
        EngineError::OutOfRange => ErrorCode::OutOfRange,
    }
}

/// Engine error of a WIT error code (one to one).
pub(crate) fn from_wit(e: ErrorCode) -> EngineError {
    match e {
        ErrorCode::InvalidShape => EngineError::InvalidShape,
        ErrorCode::InvalidArgument => EngineError::InvalidArgument,
        ErrorCode::ResourceExhausted => EngineError::ResourceExhausted,
        ErrorCode::BudgetExhausted => EngineError::BudgetExhausted,
        ErrorCode::NotAllowed => EngineError::NotAllowed,
        ErrorCode::OutOfRange => EngineError::OutOfRange,
    }
}

/// The engine id behind a tensor handle (owned or borrowed).
pub(crate) fn tid(r: &Resource<HostTensor>) -> TensorId {
    TensorId(r.rep())
}

/// A new owned handle for the guest over an engine tensor.
pub(crate) fn own(id: TensorId) -> Resource<HostTensor> {
    Resource::new_own(id.0)
}

fn oid(r: &Resource<HostOptimizer>) -> OptimizerId {
    OptimizerId(r.rep())
}

/// An engine tensor result as a WIT result.
fn t(r: ce::Result<TensorId>) -> HostResult<Resource<HostTensor>> {
    Ok(r.map(own).map_err(to_wit))
}

/// An engine result of a call whose WIT signature has no error: the error ends the call.
fn or_fault<T>(r: ce::Result<T>) -> wasmtime::Result<T> {
    r.map_err(|e| wasmtime::Error::new(HostFault(FailureCode::CallFailed(e))))
}

impl types::Host for HostState {}

impl tensor::HostTensor for HostState {
    fn from_data(&mut self, shape: Vec<u32>, data: Vec<f32>) -> HostResult<Resource<HostTensor>> {
        t(self.engine.from_data(&shape, &data))
    }
    fn full(&mut self, shape: Vec<u32>, value: f32) -> HostResult<Resource<HostTensor>> {
        t(self.engine.full(&shape, value))
    }
    fn shape(&mut self, self_: Resource<HostTensor>) -> wasmtime::Result<Vec<u32>> {
        or_fault(self.engine.shape(tid(&self_)))
    }
    fn item(&mut self, self_: Resource<HostTensor>) -> HostResult<f32> {
        Ok(self.engine.item(tid(&self_)).map_err(to_wit))
    }
    fn to_list(&mut self, self_: Resource<HostTensor>) -> HostResult<Vec<f32>> {
        Ok(self.engine.to_vec(tid(&self_)).map_err(to_wit))
    }
    fn drop(&mut self, rep: Resource<HostTensor>) -> wasmtime::Result<()> {
        self.engine.release(tid(&rep));
        Ok(())
    }
}

type R = Resource<HostTensor>;

impl tensor::Host for HostState {
    fn add(&mut self, a: R, b: R) -> HostResult<R> {
        t(self.engine.add(tid(&a), tid(&b)))
    }
    fn sub(&mut self, a: R, b: R) -> HostResult<R> {
        t(self.engine.sub(tid(&a), tid(&b)))
    }
    fn mul(&mut self, a: R, b: R) -> HostResult<R> {
        t(self.engine.mul(tid(&a), tid(&b)))
    }
    fn div(&mut self, a: R, b: R) -> HostResult<R> {
        t(self.engine.div(tid(&a), tid(&b)))
    }
    fn affine(&mut self, a: R, scale: f32, shift: f32) -> HostResult<R> {
        t(self.engine.affine(tid(&a), scale, shift))
    }
    fn matmul(&mut self, a: R, b: R) -> HostResult<R> {
        t(self.engine.matmul(tid(&a), tid(&b)))
    }
    fn linear(&mut self, x: R, weight: R, bias: Option<R>) -> HostResult<R> {
        t(self
            .engine
            .linear(tid(&x), tid(&weight), bias.as_ref().map(tid)))
    }
    fn conv2d(
        &mut self,
        x: R,
        weight: R,
        bias: Option<R>,
        o: tensor::Conv2dOptions,
    ) -> HostResult<R> {
        let options = ce::Conv2dOptions {
            stride: [o.stride.0, o.stride.1],
            padding: [o.padding.0, o.padding.1],
            dilation: [o.dilation.0, o.dilation.1],
            groups: o.groups,
        };
        t(self
            .engine
            .conv2d(tid(&x), tid(&weight), bias.as_ref().map(tid), options))
    }
    fn max_pool2d(&mut self, x: R, o: tensor::Pool2dOptions) -> HostResult<R> {
        t(self.engine.max_pool2d(tid(&x), pool(o)))
    }
    fn avg_pool2d(&mut self, x: R, o: tensor::Pool2dOptions) -> HostResult<R> {
        t(self.engine.avg_pool2d(tid(&x), pool(o)))
    }
    fn adaptive_avg_pool2d(&mut self, x: R, output: (u32, u32)) -> HostResult<R> {
        t(self
            .engine
            .adaptive_avg_pool2d(tid(&x), [output.0, output.1]))
    }
    fn batch_norm(
        &mut self,
        x: R,
        gamma: R,
        beta: R,
        running_mean: R,
        running_var: R,
        training: bool,
        momentum: f32,
        eps: f32,
    ) -> HostResult<R> {
        t(self.engine.batch_norm(
            tid(&x),
            tid(&gamma),
            tid(&beta),
            tid(&running_mean),
            tid(&running_var),
            training,
            momentum,
            eps,
        ))
    }
    fn dropout(&mut self, x: R, p: f32, training: bool) -> HostResult<R> {
        t(self.engine.dropout(tid(&x), p, training))
    }
    fn relu(&mut self, x: R) -> HostResult<R> {
        t(self.engine.relu(tid(&x)))
    }
    fn gelu(&mut self, x: R) -> HostResult<R> {
        t(self.engine.gelu(tid(&x)))
    }
    fn sigmoid(&mut self, x: R) -> HostResult<R> {
        t(self.engine.sigmoid(tid(&x)))
    }
    fn tanh(&mut self, x: R) -> HostResult<R> {
        t(self.engine.tanh(tid(&x)))
    }
    fn softmax(&mut self, x: R, axis: u32) -> HostResult<R> {
        t(self.engine.softmax(tid(&x), axis))
    }
    fn log_softmax(&mut self, x: R, axis: u32) -> HostResult<R> {
        t(self.engine.log_softmax(tid(&x), axis))
    }
    fn cross_entropy(&mut self, logits: R, labels: R) -> HostResult<R> {
        t(self.engine.cross_entropy(tid(&logits), tid(&labels)))
    }
    fn mse(&mut self, a: R, b: R) -> HostResult<R> {
        t(self.engine.mse(tid(&a), tid(&b)))
    }
    fn reshape(&mut self, x: R, shape: Vec<i32>) -> HostResult<R> {
        t(self.engine.reshape(tid(&x), &shape))
    }
    fn flatten(&mut self, x: R, start: u32) -> HostResult<R> {
        t(self.engine.flatten(tid(&x), start))
    }
    fn transpose(&mut self, x: R, axis0: u32, axis1: u32) -> HostResult<R> {
        t(self.engine.transpose(tid(&x), axis0, axis1))
    }
    fn concat(&mut self, xs: Vec<R>, axis: u32) -> HostResult<R> {
        let ids: Vec<TensorId> = xs.iter().map(tid).collect();
        t(self.engine.concat(&ids, axis))
    }
    fn mean(&mut self, x: R, axis: Option<u32>, keep: bool) -> HostResult<R> {
        t(self.engine.mean(tid(&x), axis, keep))
    }
    fn sum(&mut self, x: R, axis: Option<u32>, keep: bool) -> HostResult<R> {
        t(self.engine.sum(tid(&x), axis, keep))
    }
    fn argmax(&mut self, x: R, axis: u32) -> HostResult<R> {
        t(self.engine.argmax(tid(&x), axis))
    }
    fn detach(&mut self, x: R) -> HostResult<R> {
        t(self.engine.detach(tid(&x)))
    }
    fn normalize_channels(&mut self, x: R, mean: Vec<f32>, std: Vec<f32>) -> HostResult<R> {
        t(self.engine.normalize_channels(tid(&x), &mean, &std))
    }
}

fn pool(o: tensor::Pool2dOptions) -> ce::Pool2dOptions {
    ce::Pool2dOptions {
        kernel: [o.kernel.0, o.kernel.1],
        stride: [o.stride.0, o.stride.1],
        padding: [o.padding.0, o.padding.1],
    }
}

impl nn::Host for HostState {
    fn parameter(
        &mut self,
        shape: Vec<u32>,
        init: nn::Init,
        fan_in: u32,
        fan_out: u32,
    ) -> HostResult<R> {
        let init = match init {
            nn::Init::Zeros => ce::Init::Zeros,
            nn::Init::Ones => ce::Init::Ones,
            nn::Init::KaimingUniform => ce::Init::KaimingUniform,
            nn::Init::KaimingNormal => ce::Init::KaimingNormal,
            nn::Init::XavierUniform => ce::Init::XavierUniform,
            nn::Init::XavierNormal => ce::Init::XavierNormal,
            nn::Init::BiasUniform => ce::Init::BiasUniform,
        };
        t(self.engine.parameter(&shape, init, fan_in, fan_out))
    }
    fn buffer(&mut self, shape: Vec<u32>, value: f32) -> HostResult<R> {
        t(self.engine.buffer(&shape, value))
    }
    fn backward(&mut self, loss: R) -> HostResult<()> {
        Ok(self.engine.backward(tid(&loss)).map_err(to_wit))
    }
}

fn lr(c: optim::LrConfig) -> ce::LrConfig {
    ce::LrConfig {
        base: c.base,
        schedule: match c.schedule {
            optim::Schedule::Constant => ce::Schedule::Constant,
            optim::Schedule::Step((every, gamma)) => ce::Schedule::Step { every, gamma },
            optim::Schedule::Cosine((total, min_lr)) => ce::Schedule::Cosine { total, min_lr },
        },
        warmup: c.warmup,
    }
}

impl optim::HostOptimizer for HostState {
    fn sgd(
        &mut self,
        params: Vec<R>,
        lr_config: optim::LrConfig,
        c: optim::SgdConfig,
    ) -> HostResult<Resource<HostOptimizer>> {
        let ids: Vec<TensorId> = params.iter().map(tid).collect();
        let config = ce::SgdConfig {
            momentum: c.momentum,
            nesterov: c.nesterov,
            weight_decay: c.weight_decay,
        };
        Ok(self
            .engine
            .sgd(&ids, lr(lr_config), config)
            .map(|o| Resource::new_own(o.0))
            .map_err(to_wit))
    }
    fn adam(
        &mut self,
        params: Vec<R>,
        lr_config: optim::LrConfig,
        c: optim::AdamConfig,
    ) -> HostResult<Resource<HostOptimizer>> {
        let ids: Vec<TensorId> = params.iter().map(tid).collect();
        let config = ce::AdamConfig {
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            decoupled: c.decoupled,
        };
        Ok(self
            .engine
            .adam(&ids, lr(lr_config), config)
            .map(|o| Resource::new_own(o.0))
            .map_err(to_wit))
    }
    fn step(&mut self, self_: Resource<HostOptimizer>) -> HostResult<()> {
        Ok(self.engine.step(oid(&self_)).map_err(to_wit))
    }
    fn zero_grad(&mut self, self_: Resource<HostOptimizer>) -> wasmtime::Result<()> {
        self.engine.zero_grad(oid(&self_));
        Ok(())
    }
    fn learning_rate(&mut self, self_: Resource<HostOptimizer>) -> wasmtime::Result<f32> {
        Ok(self.engine.learning_rate(oid(&self_)))
    }
    fn drop(&mut self, rep: Resource<HostOptimizer>) -> wasmtime::Result<()> {
        self.engine.release_optimizer(oid(&rep));
        Ok(())
    }
}

impl optim::Host for HostState {}

impl data::Host for HostState {
    fn schema(&mut self) -> wasmtime::Result<data::DataSchema> {
        if self.phase != Phase::Train {
            return or_fault(Err(EngineError::NotAllowed));
        }
        let s = or_fault(self.engine.schema())?;
        Ok(data::DataSchema {
            shape: s.shape,
            classes: s.classes,
            splits: s.splits,
        })
    }
    fn shuffled(&mut self, split: String, epoch: u32) -> HostResult<Vec<u64>> {
        if self.phase != Phase::Train {
            return Ok(Err(ErrorCode::NotAllowed));
        }
        Ok(self.engine.shuffled(&split, epoch).map_err(to_wit))
    }
    fn batch(
        &mut self,
        split: String,
        indices: Vec<u64>,
        normalize: Option<data::Normalize>,
        augment: Option<data::Augment>,
    ) -> HostResult<(R, R)> {
        if self.phase != Phase::Train {
            return Ok(Err(ErrorCode::NotAllowed));
        }
        let normalize = normalize.map(|n| ce::Normalize {
            mean: n.mean,
            std: n.std,
        });
        let augment = augment.map(|a| ce::Augment {
            crop_padding: a.crop_padding,
            horizontal_flip: a.horizontal_flip,
        });
        Ok(self
            .engine
            .batch(&split, &indices, normalize.as_ref(), augment)
            .map(|(x, y)| (own(x), own(y)))
            .map_err(to_wit))
    }
}

impl report::Host for HostState {
    fn progress(&mut self, step: u64, total: u64) -> wasmtime::Result<()> {
        // Reports mean nothing in prediction (no one receives them): ignored.
        if self.phase == Phase::Train {
            if let Some(clock) = self.clock.as_mut() {
                clock.progress();
            }
            if self.reports() < self.max_reports {
                self.progress.push(Progress { step, total });
            } else {
                self.dropped_reports += 1;
            }
        }
        Ok(())
    }
    fn metric(&mut self, name: MetricName, step: u64, value: f32) -> wasmtime::Result<()> {
        if self.phase == Phase::Train {
            // A non-finite value has no fixed-width meaning for the owner and no encoding in
            // the job record: refused by ending the run, like any other trainer failure.
            if !value.is_finite() {
                return Err(wasmtime::Error::new(HostFault(FailureCode::CallFailed(
                    EngineError::InvalidArgument,
                ))));
            }
            if self.reports() < self.max_reports {
                let metric = match name {
                    MetricName::TrainLoss => Metric::TrainLoss,
                    MetricName::TrainAccuracy => Metric::TrainAccuracy,
                    MetricName::TestLoss => Metric::TestLoss,
                    MetricName::TestAccuracy => Metric::TestAccuracy,
                    MetricName::LearningRate => Metric::LearningRate,
                };
                self.metrics.push(MetricPoint {
                    metric,
                    step,
                    value,
                });
            } else {
                self.dropped_reports += 1;
            }
        }
        Ok(())
    }
}

impl model::Host for HostState {
    fn save(&mut self, tensors: Vec<(String, R)>) -> HostResult<()> {
        if self.phase != Phase::Train {
            return Ok(Err(ErrorCode::NotAllowed));
        }
        // Names (1–64 of `[a-z0-9_.]`, unique) are checked by the engine's `export_named`;
        // an empty model is refused here.
        if tensors.is_empty() {
            return Ok(Err(ErrorCode::InvalidArgument));
        }
        let pairs: Vec<(String, TensorId)> =
            tensors.iter().map(|(n, r)| (n.clone(), tid(r))).collect();
        match self.engine.export_named(&pairs) {
            Ok(values) => {
                self.saved = Some(
                    values
                        .into_iter()
                        .map(|(name, shape, values)| NamedTensor {
                            name,
                            shape,
                            values,
                        })
                        .collect(),
                );
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(to_wit(e))),
        }
    }
    fn load(&mut self) -> HostResult<Vec<(String, R)>> {
        if self.phase != Phase::Predict {
            return Ok(Err(ErrorCode::NotAllowed));
        }
        let Some(preloaded) = self.preloaded.as_ref() else {
            return Ok(Err(ErrorCode::NotAllowed));
        };
        self.load_count = self.load_count.saturating_add(1);
        if self.load_count == 1 {
            // First load: hand the preloaded tensors themselves to the guest (each id gets
            // exactly one owned handle).
            let out = preloaded
                .iter()
                .map(|(n, id)| (n.clone(), own(*id)))
                .collect();
            return Ok(Ok(out));
        }
        // Later loads: the first handles may still be live; give copies so no id is owned by
        // two handles.
        let pairs = preloaded.clone();
        let mut out = Vec::with_capacity(pairs.len());
        for (name, id) in pairs {
            match self.engine.detach(id) {
                Ok(copy) => out.push((name, own(copy))),
                Err(e) => {
                    for (_, r) in out {
                        self.engine.release(tid(&r));
                    }
                    return Ok(Err(to_wit(e)));
                }
            }
        }
        Ok(Ok(out))
    }

    fn checkpoint(
        &mut self,
        epochs_done: u32,
        tensors: Vec<(String, R)>,
        optimizer: Resource<HostOptimizer>,
    ) -> HostResult<()> {
        if self.phase != Phase::Train {
            return Ok(Err(ErrorCode::NotAllowed));
        }
        if tensors.is_empty() || self.last_checkpoint.is_some_and(|last| epochs_done <= last) {
            return Ok(Err(ErrorCode::InvalidArgument));
        }
        let pairs: Vec<(String, TensorId)> =
            tensors.iter().map(|(n, r)| (n.clone(), tid(r))).collect();
        let engine = match self.engine.checkpoint(&pairs, oid(&optimizer)) {
            Ok(c) => c,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        self.last_checkpoint = Some(epochs_done);
        if let Some(sink) = self.checkpointing.sink.as_mut() {
            let checkpoint = TrainCheckpoint {
                epochs_done,
                engine,
                progress: self.progress.clone(),
                metrics: self.metrics.clone(),
            };
            if sink.store(&checkpoint).is_err() {
                // The sink refuses only what the policy does not allow (a checkpoint larger
                // than its sealed size): the trainer's doing, so the run ends.
                return Err(wasmtime::Error::new(HostFault(FailureCode::CallFailed(
                    EngineError::ResourceExhausted,
                ))));
            }
        }
        Ok(Ok(()))
    }

    fn resume(
        &mut self,
        tensors: Vec<(String, R)>,
        optimizer: Resource<HostOptimizer>,
    ) -> HostResult<u32> {
        if self.phase != Phase::Train || self.resumed {
            return Ok(Err(ErrorCode::NotAllowed));
        }
        self.resumed = true;
        let Some(checkpoint) = self.checkpointing.resume_from.take() else {
            return Ok(Ok(0));
        };
        let pairs: Vec<(String, TensorId)> =
            tensors.iter().map(|(n, r)| (n.clone(), tid(r))).collect();
        if let Err(e) = self
            .engine
            .restore(&checkpoint.engine, &pairs, oid(&optimizer))
        {
            // A trainer that rebuilds a different model cannot resume this job: ending the
            // run is safer than silently training from scratch under a resumed job's name.
            return Err(wasmtime::Error::new(HostFault(FailureCode::CallFailed(e))));
        }
        self.progress = checkpoint.progress;
        self.metrics = checkpoint.metrics;
        self.last_checkpoint = Some(checkpoint.epochs_done);
        Ok(Ok(checkpoint.epochs_done))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::bindings::chiron::trainer::model::Host as _;
    use crate::bindings::chiron::trainer::tensor::HostTensor as _;

    fn state(phase: Phase) -> HostState {
        let engine = ce::Engine::new(ce::EngineConfig {
            seed: 1,
            max_live_bytes: 1 << 20,
            max_tensors: 100,
            max_steps: 10,
        });
        HostState::new(
            engine,
            phase,
            Limiter::new(1 << 20, 100),
            10,
            crate::wasi::Console::new(0),
        )
    }

    fn tensor(s: &mut HostState) -> R {
        s.from_data(vec![2], vec![1.0, 2.0]).unwrap().unwrap()
    }

    #[test]
    fn error_codes_map_one_to_one() {
        for e in [
            EngineError::InvalidShape,
            EngineError::InvalidArgument,
            EngineError::ResourceExhausted,
            EngineError::BudgetExhausted,
            EngineError::NotAllowed,
            EngineError::OutOfRange,
        ] {
            assert_eq!(from_wit(to_wit(e)), e);
        }
    }

    #[test]
    fn data_and_save_are_not_allowed_in_prediction() {
        let mut s = state(Phase::Predict);
        assert_eq!(
            data::Host::shuffled(&mut s, "train".into(), 0).unwrap(),
            Err(ErrorCode::NotAllowed)
        );
        let err = data::Host::schema(&mut s).unwrap_err();
        assert!(matches!(
            err.downcast_ref::<HostFault>(),
            Some(HostFault(FailureCode::CallFailed(EngineError::NotAllowed)))
        ));
        let t = tensor(&mut s);
        assert_eq!(
            s.save(vec![("w".into(), Resource::new_borrow(t.rep()))])
                .unwrap(),
            Err(ErrorCode::NotAllowed)
        );
    }

    #[test]
    fn load_is_not_allowed_in_training_and_hands_out_the_model_in_prediction() {
        let mut s = state(Phase::Train);
        assert_eq!(s.load().unwrap().err(), Some(ErrorCode::NotAllowed));

        let mut s = state(Phase::Predict);
        let id = s.engine.from_data(&[1], &[3.0]).unwrap();
        s.preloaded = Some(vec![("w".into(), id)]);
        let first = s.load().unwrap().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(tid(&first[0].1), id);
        // A second load gets a copy, not a second owner of the same id.
        let second = s.load().unwrap().unwrap();
        assert_ne!(tid(&second[0].1), id);
        assert_eq!(s.engine.item(tid(&second[0].1)).unwrap(), 3.0);
    }

    #[test]
    fn save_checks_names() {
        let mut s = state(Phase::Train);
        let t = tensor(&mut s);
        let b = |r: &R| Resource::<HostTensor>::new_borrow(r.rep());
        for bad in [
            vec![],
            vec![("".to_string(), b(&t))],
            vec![("Upper".to_string(), b(&t))],
            vec![("x".repeat(65), b(&t))],
            vec![("a b".to_string(), b(&t))],
            vec![("w".to_string(), b(&t)), ("w".to_string(), b(&t))],
        ] {
            assert_eq!(s.save(bad).unwrap(), Err(ErrorCode::InvalidArgument));
        }
        assert!(s.saved.is_none());
        s.save(vec![("fc1.weight_0".into(), b(&t))])
            .unwrap()
            .unwrap();
        let saved = s.saved.as_ref().unwrap();
        assert_eq!(saved[0].name, "fc1.weight_0");
        assert_eq!(saved[0].shape, vec![2]);
        assert_eq!(saved[0].values, vec![1.0, 2.0]);
    }

    #[test]
    fn reports_are_ignored_in_prediction_and_capped_in_training() {
        use crate::bindings::chiron::trainer::report::Host as _;
        let mut s = state(Phase::Predict);
        s.progress(1, 2).unwrap();
        assert!(s.progress.is_empty());
        let mut s = state(Phase::Train);
        for i in 0..12 {
            s.progress(i, 12).unwrap();
        }
        s.metric(MetricName::TrainLoss, 12, 0.1).unwrap();
        assert_eq!(s.progress.len(), 10);
        assert_eq!(s.dropped_reports, 3);
    }
}
