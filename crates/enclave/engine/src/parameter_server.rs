//! The parameter server's logic (DESIGN §6): it holds a distributed job's parameters and
//! optimizer state, takes one message per worker and step, and applies the workers' gradients
//! with the job's rule and schedule. Pure state, no I/O: the runtime puts it behind its gRPC
//! service and seals [`ParameterServer::to_bytes`] into checkpoints.
//!
//! Two consistency modes:
//! - **synchronous** (optionally with backup workers, as in "Revisiting Distributed Synchronous
//!   SGD"): a round closes once `workers − backups` gradients arrived; their mean is applied;
//!   gradients for a closed round are late and dropped;
//! - **asynchronous** with a staleness bound: a gradient computed from parameters at most
//!   `staleness` versions old is applied at once; an older one is dropped.
//!
//! Every worker sends one message per step of the job's fixed schedule, so a worker with nothing
//! to send (its trainer ended) sends a *dummy*: it joins rounds without a gradient and never
//! holds one open while a worker that still trains can close it.

use chiron_codec::Reader;

use crate::api::{EngineError, LrConfig, Result};
use crate::distributed::OptimizerSpec;
use crate::optim::{UpdateRule, learning_rate_at};
use crate::{AdamConfig, Schedule, SgdConfig};

/// How a parameter server combines its workers' gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Rounds of `workers − backups` gradients, averaged.
    Sync {
        /// Workers a round may go without.
        backups: usize,
    },
    /// Each gradient applied on arrival unless more than `staleness` versions old.
    Async {
        /// Versions a gradient's parameters may lag the server's.
        staleness: u64,
    },
}

/// One worker's gradient message.
#[derive(Clone, Copy, Debug)]
pub struct Gradient<'a> {
    /// Every parameter's gradient, concatenated in order (zeros where none).
    pub grads: &'a [f32],
    /// Whether each parameter has a gradient.
    pub has_grad: &'a [bool],
}

/// Where a submitted message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// It joined the round of version `n`: answer once [`ParameterServer::version`] is past it.
    Round(u64),
    /// Answer now with the current parameters (applied asynchronously, dropped as late or
    /// stale, or a dummy outside a round).
    Now,
}

/// Bytes of an encoded [`OptimizerSpec`].
pub const SPEC_BYTES: usize = 46;

impl OptimizerSpec {
    /// The fixed encoding: rule tag, five rule fields, learning-rate base, schedule tag and two
    /// schedule fields, warm-up.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SPEC_BYTES);
        let (tag, f): (u8, [f32; 5]) = match self.rule {
            UpdateRule::Sgd(c) => (
                0,
                [
                    c.momentum,
                    f32::from(u8::from(c.nesterov)),
                    c.weight_decay,
                    0.0,
                    0.0,
                ],
            ),
            UpdateRule::Adam(c) => (
                1,
                [
                    c.beta1,
                    c.beta2,
                    c.eps,
                    c.weight_decay,
                    f32::from(u8::from(c.decoupled)),
                ],
            ),
        };
        out.push(tag);
        f.iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out.extend_from_slice(&self.lr.base.to_le_bytes());
        let (stag, a, b) = match self.lr.schedule {
            Schedule::Constant => (0u8, 0u64, 0f32),
            Schedule::Step { every, gamma } => (1, every, gamma),
            Schedule::Cosine { total, min_lr } => (2, total, min_lr),
        };
        out.push(stag);
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
        out.extend_from_slice(&self.lr.warmup.to_le_bytes());
        out
    }

    /// Parses [`OptimizerSpec::to_bytes`] output; `None` for anything else.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut r = Reader::new(b);
        let tag = r.u8("rule").ok()?;
        let f: Vec<f32> = (0..5)
            .map(|_| r.f32("rule field").ok())
            .collect::<Option<_>>()?;
        let rule = match tag {
            0 => UpdateRule::Sgd(SgdConfig {
                momentum: f[0],
                nesterov: f[1] != 0.0,
                weight_decay: f[2],
            }),
            1 => UpdateRule::Adam(AdamConfig {
                beta1: f[0],
                beta2: f[1],
                eps: f[2],
                weight_decay: f[3],
                decoupled: f[4] != 0.0,
            }),
            _ => return None,
        };
        let base = r.f32("learning rate").ok()?;
        let stag = r.u8("schedule").ok()?;
        let a = r.u64("schedule steps").ok()?;
        let b2 = r.f32("schedule factor").ok()?;
        let schedule = match stag {
            0 => Schedule::Constant,
            1 => Schedule::Step {
                every: a,
                gamma: b2,
            },
            2 => Schedule::Cosine {
                total: a,
                min_lr: b2,
            },
            _ => return None,
        };
        let warmup = r.u64("warm-up").ok()?;
        r.is_empty().then_some(Self {
            rule,
            lr: LrConfig {
                base,
                schedule,
                warmup,
            },
        })
    }
}

/// A gradient as the server keeps it in an open round: values and has-gradient mask.
type OwnedGradient = (Vec<f32>, Vec<bool>);

/// First bytes of a serialised [`ParameterServer`] (format version 1).
const MAGIC: &[u8; 8] = b"CHRNPS01";

/// A distributed job's parameters, optimizer state and the round in progress.
pub struct ParameterServer {
    spec: OptimizerSpec,
    consistency: Consistency,
    numels: Vec<usize>,
    params: Vec<f32>,
    /// Per parameter, the rule's state buffers.
    state: Vec<Vec<Vec<f32>>>,
    /// The parameters' version: updates applied (sync: rounds closed).
    t: u64,
    workers: usize,
    /// Messages of the open round: worker, and its gradient (`None`: a dummy).
    round: Vec<(usize, Option<OwnedGradient>)>,
    /// Workers whose last message was a dummy (their trainer ended).
    finished: Vec<bool>,
    /// Workers that have sent their whole schedule: no round waits for them.
    retired: Vec<bool>,
}

impl ParameterServer {
    /// A server for `workers` workers starting from `initial` (parameters of sizes `numels`,
    /// concatenated). Refuses an empty job, `backups ≥ workers`, or sizes that disagree.
    pub fn new(
        spec: OptimizerSpec,
        numels: Vec<usize>,
        initial: Vec<f32>,
        workers: usize,
        consistency: Consistency,
    ) -> Result<Self> {
        let backups_ok = match consistency {
            Consistency::Sync { backups } => backups < workers,
            Consistency::Async { .. } => true,
        };
        if workers == 0 || !backups_ok || numels.iter().sum::<usize>() != initial.len() {
            return Err(EngineError::InvalidArgument);
        }
        Ok(Self {
            spec,
            consistency,
            state: vec![Vec::new(); numels.len()],
            numels,
            params: initial,
            t: 0,
            workers,
            round: Vec::new(),
            finished: vec![false; workers],
            retired: vec![false; workers],
        })
    }

    /// The parameters' version.
    pub fn version(&self) -> u64 {
        self.t
    }

    /// Element count of each parameter.
    pub fn numels(&self) -> &[usize] {
        &self.numels
    }

    /// The current parameters, concatenated.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The optimizer's rule and schedule.
    pub fn spec(&self) -> OptimizerSpec {
        self.spec
    }

    /// Takes worker `worker`'s message for the step it computed from parameters of `version`:
    /// a gradient, or `None` for a dummy. Refuses an unknown worker or a gradient of the wrong
    /// size; a worker's second message for one round replaces its first (a replacement worker
    /// retrying the step of the one it replaces).
    pub fn submit(
        &mut self,
        worker: usize,
        version: u64,
        gradient: Option<Gradient<'_>>,
    ) -> Result<Submitted> {
        if worker >= self.workers {
            return Err(EngineError::InvalidArgument);
        }
        if let Some(g) = gradient
            && (g.grads.len() != self.params.len() || g.has_grad.len() != self.numels.len())
        {
            return Err(EngineError::InvalidArgument);
        }
        self.finished[worker] = gradient.is_none();
        match self.consistency {
            Consistency::Async { staleness } => {
                if let Some(g) = gradient
                    && version.saturating_add(staleness) >= self.t
                {
                    self.apply(&[(g.grads, g.has_grad)]);
                }
                Ok(Submitted::Now)
            }
            Consistency::Sync { backups } => {
                // A gradient for a round already closed is late: dropped, as the paper's
                // backups are. (Versions ahead of the server's occur after it resumed from a
                // checkpoint: the worker joins the current round.)
                if version < self.t {
                    return Ok(Submitted::Now);
                }
                let owned = gradient.map(|g| (g.grads.to_vec(), g.has_grad.to_vec()));
                match self.round.iter_mut().find(|(w, _)| *w == worker) {
                    Some(entry) => entry.1 = owned,
                    None => self.round.push((worker, owned)),
                }
                let joined = self.t;
                self.close_if_due(self.workers - backups);
                Ok(Submitted::Round(joined))
            }
        }
    }

    /// Worker `worker` has sent the last message of its schedule: rounds stop waiting for it
    /// (closing the open one if that was all it waited for).
    pub fn retire(&mut self, worker: usize) {
        if let Some(r) = self.retired.get_mut(worker) {
            *r = true;
        }
        if let Consistency::Sync { backups } = self.consistency
            && !self.round.is_empty()
        {
            self.close_if_due(self.workers - backups);
        }
    }

    /// Closes the open round if it is due: `needed` gradients, or as many as there are
    /// workers still training (at least one); dummies alone close it only once every worker
    /// has finished and `needed` messages are in. Retired workers are not waited for.
    fn close_if_due(&mut self, needed: usize) {
        let live = self.retired.iter().filter(|r| !**r).count();
        let needed = needed.min(live).max(1);
        let training = self
            .finished
            .iter()
            .zip(&self.retired)
            .filter(|(f, r)| !**f && !**r)
            .count();
        let real = self.round.iter().filter(|(_, g)| g.is_some()).count();
        let due = if training == 0 {
            self.round.len() >= needed
        } else {
            real >= 1 && real >= needed.min(training)
        };
        if !due {
            return;
        }
        let mut round = std::mem::take(&mut self.round);
        // Worker order, so the floating-point sum does not depend on arrival order.
        round.sort_by_key(|(w, _)| *w);
        let grads: Vec<(&[f32], &[bool])> = round
            .iter()
            .filter_map(|(_, g)| g.as_ref().map(|(g, h)| (g.as_slice(), h.as_slice())))
            .collect();
        if grads.is_empty() {
            self.t += 1;
        } else {
            self.apply(&grads);
        }
    }

    /// Applies the mean of `grads` (per parameter, over those that have one) and advances the
    /// version.
    fn apply(&mut self, grads: &[(&[f32], &[bool])]) {
        let lr = learning_rate_at(&self.spec.lr, self.t);
        self.t += 1;
        let mut offset = 0;
        for (i, &n) in self.numels.iter().enumerate() {
            let contributors: Vec<&[f32]> = grads
                .iter()
                .filter(|(_, has)| has[i])
                .map(|(g, _)| &g[offset..offset + n])
                .collect();
            if !contributors.is_empty() {
                let scale = 1.0 / contributors.len() as f32;
                let mut mean = vec![0f32; n];
                for g in &contributors {
                    for (m, v) in mean.iter_mut().zip(g.iter()) {
                        *m += v;
                    }
                }
                mean.iter_mut().for_each(|m| *m *= scale);
                let p = &mut self.params[offset..offset + n];
                self.spec
                    .rule
                    .apply(p, &mean, &mut self.state[i], lr, self.t);
            }
            offset += n;
        }
    }

    /// The server's state for a checkpoint: spec, mode, parameters, optimizer state and
    /// version (the open round is not kept: its workers resend after a resume).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.params.len() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.spec.to_bytes());
        let (tag, value) = match self.consistency {
            Consistency::Sync { backups } => (0u8, backups as u64),
            Consistency::Async { staleness } => (1, staleness),
        };
        out.push(tag);
        out.extend_from_slice(&value.to_le_bytes());
        out.extend_from_slice(&(self.workers as u64).to_le_bytes());
        out.extend_from_slice(&self.t.to_le_bytes());
        out.extend_from_slice(&(self.numels.len() as u64).to_le_bytes());
        for (n, state) in self.numels.iter().zip(&self.state) {
            out.extend_from_slice(&(*n as u64).to_le_bytes());
            out.extend_from_slice(&(state.len() as u64).to_le_bytes());
        }
        let put = |out: &mut Vec<u8>, v: &[f32]| {
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        };
        put(&mut out, &self.params);
        for buffers in &self.state {
            for b in buffers {
                put(&mut out, b);
            }
        }
        out
    }

    /// Parses [`ParameterServer::to_bytes`] output; `InvalidArgument` for anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::parse(bytes).ok_or(EngineError::InvalidArgument)
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len(), "magic").ok()? != MAGIC {
            return None;
        }
        let spec = OptimizerSpec::from_bytes(r.take(SPEC_BYTES, "optimizer spec").ok()?)?;
        let consistency = match (r.u8("consistency").ok()?, r.u64("consistency value").ok()?) {
            (0, b) => Consistency::Sync {
                backups: usize::try_from(b).ok()?,
            },
            (1, s) => Consistency::Async { staleness: s },
            _ => return None,
        };
        let workers = usize::try_from(r.u64("workers").ok()?).ok()?;
        let t = r.u64("optimizer steps").ok()?;
        let count = r.u64("parameter count").ok()?;
        // Each parameter takes 16 header bytes: a count larger than the input is malformed.
        if count > (r.remaining() / 16) as u64 {
            return None;
        }
        let mut shape = Vec::new();
        for _ in 0..count {
            let n = r.u64("parameter size").ok()?;
            let buffers = r.u64("state buffer count").ok()?;
            if buffers > 2 {
                return None;
            }
            shape.push((usize::try_from(n).ok()?, buffers));
        }
        let total = shape
            .iter()
            .try_fold(0usize, |acc, (n, _)| acc.checked_add(*n))?;
        let params = r.f32s(total as u64, "parameters").ok()?;
        let mut state = Vec::with_capacity(shape.len());
        for (n, buffers) in &shape {
            state.push(
                (0..*buffers)
                    .map(|_| r.f32s(*n as u64, "state buffer").ok())
                    .collect::<Option<Vec<_>>>()?,
            );
        }
        r.finish().ok()?;
        let mut server = Self::new(
            spec,
            shape.iter().map(|(n, _)| *n).collect(),
            params,
            workers,
            consistency,
        )
        .ok()?;
        server.state = state;
        server.t = t;
        Some(server)
    }
}
