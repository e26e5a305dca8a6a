//! Optimizers (SGD with momentum / Nesterov / weight decay, Adam, AdamW) and learning-rate
//! schedules, applied to the parameters' values outside autodiff.
//!
//! The update runs as one fused pass over each parameter's values (PyTorch's formulas, in
//! f32), then the parameter's handle is given a fresh leaf tensor holding the new values: its
//! id stays the same, graphs built from the old value are not affected.

use std::collections::HashSet;

use crate::api::{
    AdamConfig, EngineError, LrConfig, OptimizerId, Result, Schedule, SgdConfig, TensorId,
};
use crate::dynt::{Dyn, dyn_map};
use crate::engine::{Engine, Role};

/// Most optimizers one engine may hold at once.
pub const MAX_OPTIMIZERS: usize = 1024;

/// Which update rule an optimizer applies (also what a parameter server applies for a
/// distributed job, see [`crate::ParameterServer`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateRule {
    /// SGD (momentum, Nesterov, weight decay).
    Sgd(SgdConfig),
    /// Adam or AdamW.
    Adam(AdamConfig),
}

impl UpdateRule {
    /// Applies one update to `p` with gradient `g` and the parameter's state buffers, at
    /// learning rate `lr` and step number `t` (from 1).
    pub(crate) fn apply(
        &self,
        p: &mut [f32],
        g: &[f32],
        state: &mut Vec<Vec<f32>>,
        lr: f32,
        t: u64,
    ) {
        match *self {
            UpdateRule::Sgd(c) => sgd_update(p, g, state, lr, c),
            UpdateRule::Adam(c) => adam_update(p, g, state, lr, t, c),
        }
    }
}

/// One optimizer: its parameters, rule, schedule, step count and per-parameter state.
pub(crate) struct Optimizer {
    pub(crate) params: Vec<TensorId>,
    pub(crate) lr: LrConfig,
    pub(crate) rule: UpdateRule,
    /// Steps this optimizer has taken (drives the schedule and Adam's bias correction).
    pub(crate) t: u64,
    /// Per parameter (same order as `params`): momentum buffer (SGD) or first and second
    /// moments (Adam), created at the first step that has a gradient.
    pub(crate) state: Vec<Vec<Vec<f32>>>,
    /// Bytes reserved for `state` (counted in the engine's live bytes from creation).
    state_bytes: u64,
}

impl Optimizer {
    /// State buffers each parameter gets at its first update: one momentum buffer (SGD with
    /// momentum), none (plain SGD), or two moments (Adam).
    pub(crate) fn buffers_per_param(&self) -> usize {
        match self.rule {
            UpdateRule::Sgd(c) if c.momentum > 0.0 => 1,
            UpdateRule::Sgd(_) => 0,
            UpdateRule::Adam(_) => 2,
        }
    }
}

/// The learning rate of step `t` (0-based) under `lr`:
/// - warm-up: for `t < warmup`, `base · t / warmup` (linear from 0);
/// - then with `s = t − warmup`: constant `base`; step `base · gamma^⌊s / every⌋`; cosine
///   `min_lr + (base − min_lr) · (1 + cos(π · min(s, total) / total)) / 2`.
pub fn learning_rate_at(lr: &LrConfig, t: u64) -> f32 {
    let base = f64::from(lr.base);
    if t < lr.warmup {
        return (base * t as f64 / lr.warmup as f64) as f32;
    }
    let s = t - lr.warmup;
    let v = match lr.schedule {
        Schedule::Constant => base,
        Schedule::Step { every, gamma } => {
            let k = s / every.max(1);
            base * f64::from(gamma).powf(k as f64)
        }
        Schedule::Cosine { total, min_lr } => {
            let total = total.max(1);
            let p = s.min(total) as f64 / total as f64;
            let min = f64::from(min_lr);
            min + (base - min) * (1.0 + (std::f64::consts::PI * p).cos()) / 2.0
        }
    };
    v as f32
}

fn finite_nonneg(x: f32) -> bool {
    x.is_finite() && x >= 0.0
}

fn check_lr(lr: &LrConfig) -> Result<()> {
    let ok = finite_nonneg(lr.base)
        && match lr.schedule {
            Schedule::Constant => true,
            Schedule::Step { every, gamma } => every >= 1 && gamma.is_finite() && gamma > 0.0,
            Schedule::Cosine { total, min_lr } => total >= 1 && finite_nonneg(min_lr),
        };
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument)
    }
}

impl Engine {
    fn create_optimizer(
        &mut self,
        params: &[TensorId],
        lr: LrConfig,
        rule: UpdateRule,
        buffers: u64,
    ) -> Result<OptimizerId> {
        check_lr(&lr)?;
        let mut seen = HashSet::new();
        let mut bytes: u64 = 0;
        for p in params {
            let e = self.entry(*p)?;
            if e.role != Role::Parameter || !seen.insert(p.0) {
                return Err(EngineError::InvalidArgument);
            }
            bytes = e
                .bytes
                .checked_mul(buffers)
                .and_then(|b| b.checked_add(bytes))
                .ok_or(EngineError::ResourceExhausted)?;
        }
        if self.optimizers.len() >= MAX_OPTIMIZERS || self.next_optimizer == u32::MAX {
            return Err(EngineError::ResourceExhausted);
        }
        self.reserve(0, bytes)?;
        self.live_bytes += bytes;
        let id = self.next_optimizer;
        self.next_optimizer += 1;
        self.optimizers.insert(
            id,
            Optimizer {
                params: params.to_vec(),
                lr,
                rule,
                t: 0,
                state: vec![Vec::new(); params.len()],
                state_bytes: bytes,
            },
        );
        let live: u64 = self
            .optimizers
            .values()
            .flat_map(|o| &o.params)
            .filter_map(|p| self.tensors.get(&p.0))
            .map(|t| t.value.numel() as u64)
            .sum();
        self.optimized_peak = self.optimized_peak.max(live);
        Ok(OptimizerId(id))
    }

    /// SGD over `params` (parameters, each once; `InvalidArgument` otherwise). PyTorch's rule:
    /// `g ← grad + wd·p`; with momentum `b ← μ·b + g` (`b = g` at the first step) and
    /// `g ← g + μ·b` (Nesterov) or `g ← b`; `p ← p − lr·g`. `momentum` in `[0, 1)`,
    /// Nesterov needs momentum > 0, `weight_decay` ≥ 0. The momentum buffers are counted in the
    /// memory budget from creation.
    pub fn sgd(
        &mut self,
        params: &[TensorId],
        lr: LrConfig,
        config: SgdConfig,
    ) -> Result<OptimizerId> {
        let SgdConfig {
            momentum,
            nesterov,
            weight_decay,
        } = config;
        if !(finite_nonneg(momentum) && momentum < 1.0)
            || (nesterov && momentum == 0.0)
            || !finite_nonneg(weight_decay)
        {
            return Err(EngineError::InvalidArgument);
        }
        let buffers = u64::from(momentum > 0.0);
        self.create_optimizer(params, lr, UpdateRule::Sgd(config), buffers)
    }

    /// Adam or AdamW (`decoupled`) over `params`, PyTorch's rule: with `t` the step number
    /// from 1, `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
    /// `p ← p − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`; weight decay adds `wd·p` to `g`
    /// (Adam) or first scales `p` by `1 − lr·wd` (AdamW). Betas in `[0, 1)`, `eps` > 0,
    /// `weight_decay` ≥ 0.
    pub fn adam(
        &mut self,
        params: &[TensorId],
        lr: LrConfig,
        config: AdamConfig,
    ) -> Result<OptimizerId> {
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } = config;
        let beta_ok = |b: f32| finite_nonneg(b) && b < 1.0;
        let valid = beta_ok(beta1)
            && beta_ok(beta2)
            && eps.is_finite()
            && eps > 0.0
            && finite_nonneg(weight_decay);
        if !valid {
            return Err(EngineError::InvalidArgument);
        }
        self.create_optimizer(params, lr, UpdateRule::Adam(config), 2)
    }

    /// Applies one update to every parameter of `optimizer` that has a gradient, consuming the
    /// gradients. Counts against the step budget: `BudgetExhausted` once `max_steps` steps
    /// were taken (nothing changes then). Released parameters are skipped.
    pub fn step(&mut self, optimizer: OptimizerId) -> Result<()> {
        self.check_deadline()?;
        if !self.optimizers.contains_key(&optimizer.0) {
            return Err(EngineError::ResourceExhausted);
        }
        if self.steps >= self.config.max_steps {
            return Err(EngineError::BudgetExhausted);
        }
        self.steps += 1;
        if self.exchange.is_some() {
            // Outside the pool: the exchange may wait for other engines' steps.
            return self.exchange_step(optimizer);
        }
        self.pooled(|e| e.apply_step(optimizer.0))
    }

    fn apply_step(&mut self, opt_id: u32) -> Result<()> {
        let Some(mut opt) = self.optimizers.remove(&opt_id) else {
            return Err(EngineError::ResourceExhausted);
        };
        let lr = learning_rate_at(&opt.lr, opt.t);
        opt.t += 1;
        let t = opt.t;
        let result = (|| {
            for (i, &p) in opt.params.iter().enumerate() {
                let Some(entry) = self.tensors.get_mut(&p.0) else {
                    opt.state[i] = Vec::new();
                    continue;
                };
                let Some((grad, gbytes)) = self.grads.remove(&p.0) else {
                    continue;
                };
                self.live_bytes = self.live_bytes.saturating_sub(gbytes);
                let dims = entry.value.dims();
                if grad.dims() != dims {
                    return Err(EngineError::InvalidShape);
                }
                let gv = grad.into_vec().ok_or(EngineError::InvalidArgument)?;
                // Taken rather than cloned: the value is then the only holder of its buffer
                // and reads back without a copy. The placeholder is replaced below (f32
                // values always read back).
                let placeholder = Dyn::from_vec(Vec::new(), &[0], &self.device);
                let value = std::mem::replace(&mut entry.value, placeholder);
                let mut pv = value.into_vec().ok_or(EngineError::InvalidArgument)?;
                let state = &mut opt.state[i];
                opt.rule.apply(&mut pv, &gv, state, lr, t);
                let leaf = Dyn::from_vec(pv, &dims, &self.device);
                entry.value = dyn_map!(leaf, x => x.require_grad());
            }
            Ok(())
        })();
        self.optimizers.insert(opt_id, opt);
        result
    }

    /// Drops the stored gradients of `optimizer`'s parameters. Unknown ids are ignored.
    pub fn zero_grad(&mut self, optimizer: OptimizerId) {
        let Some(opt) = self.optimizers.get(&optimizer.0) else {
            return;
        };
        for p in &opt.params {
            if let Some((_, bytes)) = self.grads.remove(&p.0) {
                self.live_bytes = self.live_bytes.saturating_sub(bytes);
            }
        }
    }

    /// The learning rate the next `step` of `optimizer` will use (0 for an unknown id).
    pub fn learning_rate(&self, optimizer: OptimizerId) -> f32 {
        self.optimizers
            .get(&optimizer.0)
            .map_or(0.0, |o| learning_rate_at(&o.lr, o.t))
    }

    /// Frees an optimizer and its state. Unknown ids are ignored.
    pub fn release_optimizer(&mut self, optimizer: OptimizerId) {
        if let Some(o) = self.optimizers.remove(&optimizer.0) {
            self.live_bytes = self.live_bytes.saturating_sub(o.state_bytes);
        }
    }

    /// Optimizer steps taken so far (all optimizers), checked against `max_steps`.
    pub fn steps_taken(&self) -> u64 {
        self.steps
    }

    /// The most values the live optimizers updated at once (the model's trained parameters,
    /// counted once per optimizer holding them): what a distributed step sends each way.
    pub fn optimized_values(&self) -> u64 {
        self.optimized_peak
    }
}

/// Values per parallel task of an update: large enough to amortise the task.
const UPDATE_CHUNK: usize = 1 << 14;

/// One SGD update of `p` in place.
fn sgd_update(p: &mut [f32], g: &[f32], state: &mut Vec<Vec<f32>>, lr: f32, c: SgdConfig) {
    // The momentum buffer starts as the first step's direction (PyTorch's rule).
    let first = c.momentum != 0.0 && state.is_empty();
    if first {
        state.push(vec![0.0; p.len()]);
    }
    for_each_chunk(p, g, state, |p, g, state| match state {
        [buf] if c.momentum != 0.0 => sgd_momentum_kernel(p, g, buf, first, lr, c),
        _ => sgd_plain_kernel(p, g, lr, c.weight_decay),
    });
}

/// Plain SGD (no momentum) on one chunk.
fn sgd_plain_kernel(p: &mut [f32], g: &[f32], lr: f32, wd: f32) {
    for (p, &g) in p.iter_mut().zip(g) {
        let d = g + wd * *p;
        *p -= lr * d;
    }
}

/// SGD with momentum (and Nesterov) on one chunk; `first` marks the step that creates the
/// buffer.
fn sgd_momentum_kernel(
    p: &mut [f32],
    g: &[f32],
    buf: &mut [f32],
    first: bool,
    lr: f32,
    c: SgdConfig,
) {
    let SgdConfig {
        momentum: mu,
        nesterov,
        weight_decay: wd,
    } = c;
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
        let d = g + wd * *p;
        *b = if first { d } else { mu * *b + d };
        let step = if nesterov { d + mu * *b } else { *b };
        *p -= lr * step;
    }
}

/// One Adam / AdamW update of `p` in place; `t` counts from 1.
fn adam_update(
    p: &mut [f32],
    g: &[f32],
    state: &mut Vec<Vec<f32>>,
    lr: f32,
    t: u64,
    c: AdamConfig,
) {
    if state.len() < 2 {
        *state = vec![vec![0.0; p.len()], vec![0.0; p.len()]];
    }
    let ti = i32::try_from(t).unwrap_or(i32::MAX);
    let bc1 = 1.0 - f64::from(c.beta1).powi(ti);
    let bc2 = 1.0 - f64::from(c.beta2).powi(ti);
    let step_size = (f64::from(lr) / bc1) as f32;
    let bc2_sqrt = bc2.sqrt() as f32;
    for_each_chunk(p, g, state, |p, g, state| {
        if let [m, v] = state {
            adam_kernel(p, g, m, v, lr, step_size, bc2_sqrt, c);
        }
    });
}

/// Adam / AdamW on one chunk, with the step's bias corrections folded into `step_size` and
/// `bc2_sqrt`.
#[allow(clippy::too_many_arguments)]
fn adam_kernel(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    step_size: f32,
    bc2_sqrt: f32,
    c: AdamConfig,
) {
    let AdamConfig {
        beta1: b1,
        beta2: b2,
        eps,
        weight_decay: wd,
        decoupled,
    } = c;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let mut g = g;
        if decoupled {
            *p *= 1.0 - lr * wd;
        } else {
            g += wd * *p;
        }
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p -= step_size * *m / denom;
    }
}

/// Runs `kernel` over matching chunks of `p`, `g` and every state buffer. Each value's update
/// depends on that value alone, so the result is the same however the chunks are scheduled;
/// large parameters are split over the current rayon pool (the engine's, inside a step).
fn for_each_chunk(
    p: &mut [f32],
    g: &[f32],
    state: &mut [Vec<f32>],
    kernel: impl Fn(&mut [f32], &[f32], &mut [&mut [f32]]) + Send + Sync,
) {
    if p.len() < 2 * UPDATE_CHUNK {
        let mut bufs: Vec<&mut [f32]> = state.iter_mut().map(|b| b.as_mut_slice()).collect();
        kernel(p, g, &mut bufs);
        return;
    }
    use rayon::prelude::*;
    let chunks = p.len().div_ceil(UPDATE_CHUNK);
    let mut per_chunk: Vec<Vec<&mut [f32]>> = (0..chunks).map(|_| Vec::new()).collect();
    for buf in state.iter_mut() {
        for (slot, part) in per_chunk.iter_mut().zip(buf.chunks_mut(UPDATE_CHUNK)) {
            slot.push(part);
        }
    }
    p.par_chunks_mut(UPDATE_CHUNK)
        .zip(g.par_chunks(UPDATE_CHUNK))
        .zip(per_chunk.into_par_iter())
        .for_each(|((p, g), mut bufs)| kernel(p, g, &mut bufs));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lr(schedule: Schedule, warmup: u64) -> LrConfig {
        LrConfig {
            base: 0.1,
            schedule,
            warmup,
        }
    }

    #[test]
    fn schedules() {
        let c = lr(Schedule::Constant, 0);
        assert_eq!(learning_rate_at(&c, 0), 0.1);
        assert_eq!(learning_rate_at(&c, 1000), 0.1);
        let s = lr(
            Schedule::Step {
                every: 10,
                gamma: 0.5,
            },
            0,
        );
        assert_eq!(learning_rate_at(&s, 9), 0.1);
        assert!((learning_rate_at(&s, 10) - 0.05).abs() < 1e-7);
        assert!((learning_rate_at(&s, 25) - 0.025).abs() < 1e-7);
        let cos = lr(
            Schedule::Cosine {
                total: 100,
                min_lr: 0.0,
            },
            0,
        );
        assert!((learning_rate_at(&cos, 0) - 0.1).abs() < 1e-7);
        assert!((learning_rate_at(&cos, 50) - 0.05).abs() < 1e-7);
        assert!(learning_rate_at(&cos, 100).abs() < 1e-7);
        assert!(learning_rate_at(&cos, 500).abs() < 1e-7);
        let w = lr(
            Schedule::Cosine {
                total: 10,
                min_lr: 0.01,
            },
            5,
        );
        assert_eq!(learning_rate_at(&w, 0), 0.0);
        assert!((learning_rate_at(&w, 2) - 0.04).abs() < 1e-7);
        assert!((learning_rate_at(&w, 5) - 0.1).abs() < 1e-7);
        assert!((learning_rate_at(&w, 10) - 0.055).abs() < 1e-6);
        assert!((learning_rate_at(&w, 15) - 0.01).abs() < 1e-7);
    }
}
