//! Resumable training state: the values of named tensors, one optimizer's state, the
//! generator's position and the step count, so a job interrupted after an epoch continues as
//! if it had never stopped (same seed, same calls: the same final weights, bit for bit).
//!
//! The runtime seals the bytes ([`EngineCheckpoint::to_bytes`]); parsing
//! ([`EngineCheckpoint::from_bytes`]) still checks every length, so a corrupt or hostile input is
//! an error, never a panic or an unbounded allocation.

use chiron_codec::Reader;

use crate::api::{EngineError, OptimizerId, Result, TensorId};
use crate::dynt::{Dyn, dyn_map};
use crate::engine::{Engine, MAX_NAME_LEN, NamedTensor, Role, checked_dims, valid_name};

/// First bytes of a serialised checkpoint (format version 1).
pub const CHECKPOINT_MAGIC: &[u8; 8] = b"CHRNCKP1";

/// Most tensors one checkpoint may name (the sandbox's handle budget is far below this).
const MAX_CHECKPOINT_TENSORS: u32 = 1 << 20;

/// The state [`Engine::checkpoint`] captures and [`Engine::restore`] puts back.
#[derive(Clone, PartialEq)]
pub struct EngineCheckpoint {
    /// Named tensor values (parameters and buffers), in the order the trainer gave them.
    pub tensors: Vec<NamedTensor>,
    /// The optimizer's step count (drives schedules and Adam's bias correction).
    optimizer_steps: u64,
    /// Per parameter: the optimizer's state buffers (empty before the first update).
    optimizer_state: Vec<Vec<Vec<f32>>>,
    /// Words the main generator had consumed.
    rng_position: u128,
    /// Optimizer steps the engine had counted against the step budget.
    steps: u64,
}

impl std::fmt::Debug for EngineCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: they are derived from the owner's data.
        f.debug_struct("EngineCheckpoint")
            .field("tensors", &self.tensors.len())
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl EngineCheckpoint {
    /// Optimizer steps taken when the checkpoint was made.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The serialised form (little-endian, length-prefixed; [`CHECKPOINT_MAGIC`] first).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(CHECKPOINT_MAGIC);
        out.extend_from_slice(&self.steps.to_le_bytes());
        out.extend_from_slice(&self.rng_position.to_le_bytes());
        out.extend_from_slice(&self.optimizer_steps.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        for (name, shape, values) in &self.tensors {
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(shape.len() as u8);
            for d in shape {
                out.extend_from_slice(&d.to_le_bytes());
            }
            put_f32s(&mut out, values);
        }
        out.extend_from_slice(&(self.optimizer_state.len() as u32).to_le_bytes());
        for buffers in &self.optimizer_state {
            out.push(buffers.len() as u8);
            for b in buffers {
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                put_f32s(&mut out, b);
            }
        }
        out
    }

    /// Parses [`EngineCheckpoint::to_bytes`] output; `InvalidArgument` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        if r.take(CHECKPOINT_MAGIC.len(), "magic")? != CHECKPOINT_MAGIC {
            return Err(EngineError::InvalidArgument);
        }
        let steps = r.u64("steps")?;
        let rng_position = u128::from_le_bytes(r.array("generator position")?);
        let optimizer_steps = r.u64("optimizer steps")?;
        let n = r.u32("tensor count")?;
        if n > MAX_CHECKPOINT_TENSORS {
            return Err(EngineError::InvalidArgument);
        }
        let mut tensors = Vec::new();
        for _ in 0..n {
            let len = usize::from(r.u16("tensor name length")?);
            if len > MAX_NAME_LEN {
                return Err(EngineError::InvalidArgument);
            }
            let name = r.utf8(len, "tensor name")?.to_string();
            if !valid_name(&name) {
                return Err(EngineError::InvalidArgument);
            }
            let rank = r.u8("tensor rank")?;
            let mut shape = Vec::new();
            for _ in 0..rank {
                shape.push(r.u32("tensor dimension")?);
            }
            let (_, bytes) = checked_dims(&shape)?;
            let values = r.f32s(bytes / 4, "tensor values")?;
            tensors.push((name, shape, values));
        }
        let params = r.u32("optimizer parameter count")?;
        if params > MAX_CHECKPOINT_TENSORS {
            return Err(EngineError::InvalidArgument);
        }
        let mut optimizer_state = Vec::new();
        for _ in 0..params {
            let count = r.u8("optimizer buffer count")?;
            let mut buffers = Vec::new();
            for _ in 0..count {
                let len = r.u64("optimizer buffer length")?;
                buffers.push(r.f32s(len, "optimizer buffer")?);
            }
            optimizer_state.push(buffers);
        }
        r.finish()?;
        Ok(Self {
            tensors,
            optimizer_steps,
            optimizer_state,
            rng_position,
            steps,
        })
    }
}

fn put_f32s(out: &mut Vec<u8>, values: &[f32]) {
    out.reserve(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

impl Engine {
    /// Captures what a resumed job needs: the values of `tensors` (the trainer's parameters
    /// and buffers, by name), the state of `optimizer`, the generator's position and the step
    /// count. Names follow [`Engine::export_named`]'s rules (`InvalidArgument`); an unknown
    /// optimizer is `ResourceExhausted`.
    pub fn checkpoint(
        &self,
        tensors: &[(String, TensorId)],
        optimizer: OptimizerId,
    ) -> Result<EngineCheckpoint> {
        let opt = self
            .optimizers
            .get(&optimizer.0)
            .ok_or(EngineError::ResourceExhausted)?;
        Ok(EngineCheckpoint {
            tensors: self.export_named(tensors)?,
            optimizer_steps: opt.t,
            optimizer_state: opt.state.clone(),
            rng_position: self.rng.position(),
            steps: self.steps,
        })
    }

    /// Puts `checkpoint` back into a job that has just recreated its model and optimizer the
    /// way it did before the checkpoint: `tensors` must carry exactly the checkpoint's names, in
    /// its order, with the same shapes, and `optimizer` the same number of parameters and the
    /// same kind of state (`InvalidArgument` otherwise). Everything is checked before anything
    /// changes, so a refused checkpoint leaves the engine as it was. Stored gradients of the
    /// optimizer's parameters are dropped.
    pub fn restore(
        &mut self,
        checkpoint: &EngineCheckpoint,
        tensors: &[(String, TensorId)],
        optimizer: OptimizerId,
    ) -> Result<()> {
        if tensors.len() != checkpoint.tensors.len() {
            return Err(EngineError::InvalidArgument);
        }
        for ((name, id), (saved_name, saved_shape, values)) in
            tensors.iter().zip(&checkpoint.tensors)
        {
            if name != saved_name || self.shape(*id)? != *saved_shape {
                return Err(EngineError::InvalidArgument);
            }
            let (_, bytes) = checked_dims(saved_shape)?;
            if values.len() as u64 * 4 != bytes {
                return Err(EngineError::InvalidArgument);
            }
        }
        let opt = self
            .optimizers
            .get(&optimizer.0)
            .ok_or(EngineError::ResourceExhausted)?;
        if opt.params.len() != checkpoint.optimizer_state.len() {
            return Err(EngineError::InvalidArgument);
        }
        let per_param = opt.buffers_per_param();
        for (param, buffers) in opt.params.iter().zip(&checkpoint.optimizer_state) {
            if !(buffers.is_empty() || buffers.len() == per_param) {
                return Err(EngineError::InvalidArgument);
            }
            let numel = self.entry(*param)?.value.numel();
            if buffers.iter().any(|b| b.len() != numel) {
                return Err(EngineError::InvalidArgument);
            }
        }

        let params = opt.params.clone();
        for ((_, id), (_, shape, values)) in tensors.iter().zip(&checkpoint.tensors) {
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            let device = self.device.clone();
            let values = values.clone();
            if let Some(entry) = self.tensors.get_mut(&id.0) {
                let v = Dyn::from_vec(values, &dims, &device);
                entry.value = match entry.role {
                    Role::Parameter => dyn_map!(v, t => t.require_grad()),
                    Role::Value | Role::Buffer => v,
                };
                // A restored value starts a fresh graph.
                entry.born = None;
            }
        }
        for p in &params {
            if let Some((_, bytes)) = self.grads.remove(&p.0) {
                self.live_bytes = self.live_bytes.saturating_sub(bytes);
            }
        }
        if let Some(opt) = self.optimizers.get_mut(&optimizer.0) {
            opt.t = checkpoint.optimizer_steps;
            opt.state = checkpoint.optimizer_state.clone();
        }
        self.rng.seek(checkpoint.rng_position);
        self.steps = checkpoint.steps;
        Ok(())
    }
}
