//! The [`Engine`]: its handle table, budgets, generator, tensor creation and read-back, `nn`
//! (parameters, buffers, backward) and model export. Tensor operations live in `ops.rs`,
//! optimizers in `optim.rs` and the data pipeline in `data.rs`, all as `impl Engine` blocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use burn::tensor::{Device, Tensor};

use crate::api::{DataSchema, EngineConfig, EngineError, Init, RecordSource, Result, TensorId};
use crate::dynt::{Dyn, MAX_RANK, Ranked, dyn_apply, dyn_zip};
use crate::optim::Optimizer;
use crate::rng::Rng;

/// One exported tensor: name, shape, row-major values.
pub type NamedTensor = (String, Vec<u32>, Vec<f32>);

/// Bytes of one element (every tensor is f32).
pub(crate) const ELEM_BYTES: u64 = 4;
/// Longest name [`Engine::export_named`] accepts.
pub const MAX_NAME_LEN: usize = 64;

/// What a handle holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// An ordinary value: a constant, a data batch or the result of an operation.
    Value,
    /// A trainable leaf (requires grad); optimizers replace its tensor in place.
    Parameter,
    /// Non-trainable state (batch-norm running statistics), updated in place by `batch_norm`.
    Buffer,
}

/// One live tensor.
pub(crate) struct Entry {
    pub(crate) value: Dyn,
    pub(crate) role: Role,
    pub(crate) bytes: u64,
    /// For tensors in a recorded graph: the backward generation in which the oldest
    /// non-leaf tensor of that graph was made. `backward` is refused unless it is the current
    /// generation, because burn's backward consumes the graph it walks (and would panic on a
    /// second walk).
    pub(crate) born: Option<u64>,
}

/// The shared worker pool every engine runs its math in (see [`thread_pool`]).
static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

/// The process-wide rayon pool the engine runs its operations in (one worker per available
/// core), or `None` if it could not be built (then burn's global pool is used).
///
/// burn-flex parallelises with whatever rayon pool the calling thread is in. Running each
/// operation inside this pool keeps the sequential glue of an operation on a pool worker
/// instead of waking the workers from outside for every parallel region. A program that runs
/// one engine call at a time may also run a whole training call inside it
/// (`thread_pool().install(..)`): engine calls made from a worker of this pool then run inline
/// (~3 % faster on the reference CNN). A service must not: a worker waiting inside a parallel
/// region steals queued work, so another job's whole installed call could run to completion
/// nested inside this one's operation and stall it.
pub fn thread_pool() -> Option<&'static rayon::ThreadPool> {
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("chiron-engine-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Runs `f` with every engine operation it makes on the calling thread alone.
///
/// The thread becomes the only worker of a rayon pool of its own, so operations (and
/// burn-flex's parallel regions inside them) run inline instead of being handed to
/// [`thread_pool`] while the caller sleeps. A confined job runs its trainer this way: the one
/// thread that does its work never blocks on the engine, so its CPU time, as the host sees it
/// per thread (`/proc/<pid>/task/*/stat`), does not show how the work was split between guest
/// code and engine calls. The price is the job's own parallelism: one core per job.
///
/// rayon (1.13) cannot take a thread out of a pool it joined this way: the thread stays in its
/// one-thread pool until it exits, and the pool's state (several KB: deques, sleep state) is
/// then left behind. Call this once per thread made for the work and keep the thread (the
/// enclave's confined predictions reuse theirs), not on one borrowed from a shared pool.
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    // Fails only if the thread is a pool worker already (say, from an earlier call); then `f`
    // runs in that pool.
    let _pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build()
        .ok();
    f()
}

/// One engine instance: its tensors, parameters, gradients, optimizers and generator.
///
/// Every method validates its arguments before any tensor is created: a bad shape, axis or
/// option, an unknown handle or a budget overrun returns one of the fixed [`EngineError`] codes
/// and leaves the engine as it was (no panic is reachable from an argument).
///
/// Tensors have rank 1 to 5 and no zero-sized axis; reductions to a single value give shape
/// `[1]`.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) data: Option<Arc<dyn RecordSource>>,
    pub(crate) schema: Option<DataSchema>,
    pub(crate) device: Device,
    pub(crate) rng: Rng,
    /// The sandbox's system randomness ([`Engine::fill_system_random`]).
    system_rng: Rng,
    pub(crate) tensors: BTreeMap<u32, Entry>,
    next_tensor: u32,
    /// Bytes of live handles, stored gradients and optimizer state.
    pub(crate) live_bytes: u64,
    /// Gradients from `backward` not yet consumed by a step, per parameter, with their bytes.
    pub(crate) grads: HashMap<u32, (Dyn, u64)>,
    pub(crate) optimizers: BTreeMap<u32, Optimizer>,
    pub(crate) next_optimizer: u32,
    /// Number of `backward` calls so far (see [`Entry::born`]).
    generation: u64,
    pub(crate) steps: u64,
    /// Most values the live optimizers updated at once (see `optimized_values`).
    pub(crate) optimized_peak: u64,
    /// Work limits (see [`crate::CostLimits`]).
    pub(crate) cost_limits: crate::CostLimits,
    /// Forward work recorded since the last `backward`, on tracked tensors.
    pub(crate) graph_flops: u64,
    /// Whether any operation recorded a graph since the last `backward` or sweep (see
    /// `drop_unreachable_graphs`).
    recorded: bool,
    /// For a worker of a distributed job: where optimizer steps go.
    pub(crate) exchange: Option<Box<dyn crate::GradientExchange>>,
    /// Once this instant passes, every charged call, `backward` and optimizer step fails (see
    /// [`Engine::with_deadline`]).
    pub(crate) deadline: Option<std::time::Instant>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: they may be the owner's data.
        f.debug_struct("Engine")
            .field("tensors", &self.tensors.len())
            .field("live_bytes", &self.live_bytes)
            .field("optimizers", &self.optimizers.len())
            .field("steps", &self.steps)
            .finish()
    }
}

/// Runs a backward through `Σ sum(p)` over `params` (or through a fresh one-element leaf when
/// there are none), discarding the gradients: burn sweeps unreachable recorded graphs only
/// inside a backward (see `Engine::drop_unreachable_graphs`).
fn sweep_graphs(params: Vec<Dyn>, device: &Device) {
    let total = params
        .into_iter()
        .map(|p| dyn_apply!(p, t => t.sum()))
        .reduce(|a, b| a.add(b))
        .unwrap_or_else(|| {
            Tensor::<1>::from_floats([0.0f32], device)
                .require_grad()
                .sum()
        });
    drop(total.backward());
}

impl Drop for Engine {
    /// Releases every handle, then sweeps: the graphs this engine recorded (a prediction's
    /// forward pass, say) are unreachable now, and burn would otherwise keep them until some
    /// other engine in the process runs a backward (the sweep goes through the parameters,
    /// the leaves of every graph, as `drop_unreachable_graphs` does). Always, even when
    /// nothing was recorded: burn's autodiff registers a node for every operation, tracked or
    /// not, and forgets the released ones only in a backward — an engine per prediction left
    /// ~22 KB behind per prediction of the reference CNN (`tests/graphs.rs`). The sweep costs
    /// ~40 µs.
    fn drop(&mut self) {
        let params: Vec<Dyn> = if self.recorded {
            self.tensors
                .values()
                .filter(|e| e.role == Role::Parameter)
                .map(|e| e.value.clone())
                .collect()
        } else {
            Vec::new()
        };
        self.tensors.clear();
        self.grads.clear();
        let device = self.device.clone();
        sweep_graphs(params, &device);
    }
}

/// Shape of a guest-given tensor: rank 1..=5, no zero axis (`InvalidShape`); its byte size
/// must fit in `u64` (`ResourceExhausted`).
pub(crate) fn checked_dims(shape: &[u32]) -> Result<(Vec<usize>, u64)> {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let bytes = dims_bytes(&dims)?;
    Ok((dims, bytes))
}

/// Bytes of a tensor of shape `dims`, with the same rules as [`checked_dims`].
pub(crate) fn dims_bytes(dims: &[usize]) -> Result<u64> {
    if dims.is_empty() || dims.len() > MAX_RANK || dims.contains(&0) {
        return Err(EngineError::InvalidShape);
    }
    let mut n: u64 = ELEM_BYTES;
    for &d in dims {
        n = n
            .checked_mul(d as u64)
            .ok_or(EngineError::ResourceExhausted)?;
    }
    // Keep element counts addressable on any target the engine runs on.
    if usize::try_from(n).is_err() {
        return Err(EngineError::ResourceExhausted);
    }
    Ok(n)
}

/// Tensors built once and lent, without copying, to any number of engines
/// ([`Engine::from_frozen`]): a model's weights, which every prediction of the model reads.
/// Copying a model into each prediction's fresh engine cost ~0.4 ms a prediction for the
/// example cnn (3.2 MB of weights, two copies). Nothing changes them after they are built:
/// burn writes in place only into storage no other tensor shares.
#[derive(Clone)]
pub struct FrozenTensors {
    values: Vec<Dyn>,
}

impl FrozenTensors {
    /// Builds the tensors from row-major data, each checked as [`Engine::from_data`] checks
    /// its arguments.
    pub fn new<'a>(tensors: impl IntoIterator<Item = (&'a [u32], &'a [f32])>) -> Result<Self> {
        let device = Device::flex().autodiff();
        let values = tensors
            .into_iter()
            .map(|(shape, data)| {
                let (dims, bytes) = checked_dims(shape)?;
                if data.len() as u64 * ELEM_BYTES != bytes {
                    return Err(EngineError::InvalidShape);
                }
                Ok(Dyn::from_vec(data.to_vec(), &dims, &device))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { values })
    }

    /// How many tensors there are.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Shapes only: the values are a model's weights.
impl std::fmt::Debug for FrozenTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.values.iter().map(Dyn::dims))
            .finish()
    }
}

impl Engine {
    /// A fresh engine with no data attached (prediction).
    pub fn new(config: EngineConfig) -> Self {
        Self {
            rng: Rng::main(config.seed),
            system_rng: Rng::system(config.seed),
            config,
            data: None,
            schema: None,
            device: Device::flex().autodiff(),
            tensors: BTreeMap::new(),
            next_tensor: 0,
            live_bytes: 0,
            grads: HashMap::new(),
            optimizers: BTreeMap::new(),
            next_optimizer: 0,
            generation: 0,
            steps: 0,
            optimized_peak: 0,
            cost_limits: crate::CostLimits::default(),
            graph_flops: 0,
            recorded: false,
            exchange: None,
            deadline: None,
        }
    }

    /// Fills `out` from the job's system-randomness stream: seeded by [`EngineConfig::seed`] but
    /// apart from the generator of initialisers, dropout and augmentation, so drawing from it
    /// never changes what a trainer computes. For a sandbox's WASI `random` imports: the bytes
    /// are fixed by the job, so they carry nothing in and reveal nothing out. (Not part of a
    /// checkpoint: a resumed job restarts this stream.)
    pub fn fill_system_random(&mut self, out: &mut [u8]) {
        self.system_rng.fill(out);
    }

    /// Attaches the training data (training jobs only; prediction engines have none).
    pub fn with_data(mut self, data: Arc<dyn RecordSource>) -> Self {
        self.schema = Some(data.schema());
        self.data = Some(data);
        self
    }

    /// Runs `f` inside the engine's worker pool (see [`thread_pool`]), or inline when the
    /// calling thread is already a worker of some rayon pool (see [`on_this_thread`]).
    pub(crate) fn pooled<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        if rayon::current_thread_index().is_some() {
            return f(self);
        }
        match thread_pool() {
            Some(pool) => pool.install(|| f(self)),
            None => f(self),
        }
    }

    // --- the handle table ---

    /// The entry of `x`; an unknown handle is `ResourceExhausted`.
    pub(crate) fn entry(&self, x: TensorId) -> Result<&Entry> {
        self.tensors.get(&x.0).ok_or(EngineError::ResourceExhausted)
    }

    /// A (cheap, shared) copy of the tensor behind `x`.
    pub(crate) fn value(&self, x: TensorId) -> Result<Dyn> {
        Ok(self.entry(x)?.value.clone())
    }

    /// Checks that `tensors` more handles and `bytes` more bytes fit the budgets.
    pub(crate) fn reserve(&self, tensors: u32, bytes: u64) -> Result<()> {
        let count =
            u32::try_from(self.tensors.len()).map_err(|_| EngineError::ResourceExhausted)?;
        let fits_count = count
            .checked_add(tensors)
            .is_some_and(|c| c <= self.config.max_tensors);
        let fits_bytes = self
            .live_bytes
            .checked_add(bytes)
            .is_some_and(|b| b <= self.config.max_live_bytes);
        let ids_left = u64::from(u32::MAX - self.next_tensor) >= u64::from(tensors);
        if fits_count && fits_bytes && ids_left {
            Ok(())
        } else {
            Err(EngineError::ResourceExhausted)
        }
    }

    /// Checks that one more tensor of shape `dims` fits; returns its bytes.
    pub(crate) fn reserve_dims(&self, dims: &[usize]) -> Result<u64> {
        let bytes = dims_bytes(dims)?;
        self.reserve(1, bytes)?;
        Ok(bytes)
    }

    /// Stores a tensor under a fresh handle (budgets were checked by the caller; they are
    /// checked again so that no path can overrun them).
    pub(crate) fn insert(&mut self, value: Dyn, role: Role, born: Option<u64>) -> Result<TensorId> {
        let bytes = dims_bytes(&value.dims())?;
        self.reserve(1, bytes)?;
        let id = self.next_tensor;
        self.next_tensor += 1;
        self.live_bytes += bytes;
        self.tensors.insert(
            id,
            Entry {
                value,
                role,
                bytes,
                born,
            },
        );
        Ok(TensorId(id))
    }

    /// Stores the result of an operation on `inputs`.
    pub(crate) fn output(&mut self, value: Dyn, inputs: &[TensorId]) -> Result<TensorId> {
        let born = if value.is_tracked() {
            self.recorded = true;
            let oldest = inputs
                .iter()
                .filter_map(|i| self.tensors.get(&i.0).and_then(|e| e.born))
                .min();
            Some(oldest.unwrap_or(self.generation))
        } else {
            None
        };
        self.insert(value, Role::Value, born)
    }

    // --- tensor resource ---

    /// A tensor of shape `shape` from row-major `data` (`InvalidShape` if the counts differ).
    pub fn from_data(&mut self, shape: &[u32], data: &[f32]) -> Result<TensorId> {
        self.insert_data(shape, data, Role::Value)
    }

    /// A tensor of `role` holding row-major `data` (parameters become trainable leaves).
    fn insert_data(&mut self, shape: &[u32], data: &[f32], role: Role) -> Result<TensorId> {
        let (dims, bytes) = checked_dims(shape)?;
        if data.len() as u64 * ELEM_BYTES != bytes {
            return Err(EngineError::InvalidShape);
        }
        self.reserve(1, bytes)?;
        let device = self.device.clone();
        let data = data.to_vec();
        self.pooled(|e| {
            let v = Dyn::from_vec(data, &dims, &device);
            let v = if role == Role::Parameter {
                crate::dynt::dyn_map!(v, t => t.require_grad())
            } else {
                v
            };
            e.insert(v, role, None)
        })
    }

    /// A value tensor holding `frozen`'s tensor `index`, counted against this engine's memory
    /// budget like [`Engine::from_data`] but copying nothing: the storage is shared with every
    /// other engine given the same tensor, and no operation writes to shared storage.
    pub fn from_frozen(&mut self, frozen: &FrozenTensors, index: usize) -> Result<TensorId> {
        let value = frozen
            .values
            .get(index)
            .ok_or(EngineError::InvalidArgument)?
            .clone();
        self.insert(value, Role::Value, None)
    }

    /// A tensor of shape `shape` filled with `value`.
    pub fn full(&mut self, shape: &[u32], value: f32) -> Result<TensorId> {
        let (dims, bytes) = checked_dims(shape)?;
        self.reserve(1, bytes)?;
        let n = (bytes / ELEM_BYTES) as usize;
        let device = self.device.clone();
        self.pooled(|e| {
            let v = Dyn::from_vec(vec![value; n], &dims, &device);
            e.insert(v, Role::Value, None)
        })
    }

    /// The shape of `x`.
    pub fn shape(&self, x: TensorId) -> Result<Vec<u32>> {
        let dims = self.entry(x)?.value.dims();
        // Every stored dimension came from a checked u32 shape or a validated computation.
        dims.into_iter()
            .map(|d| u32::try_from(d).map_err(|_| EngineError::InvalidShape))
            .collect()
    }

    /// The single value of a one-element tensor (`InvalidShape` otherwise).
    pub fn item(&self, x: TensorId) -> Result<f32> {
        let e = self.entry(x)?;
        if e.value.numel() != 1 {
            return Err(EngineError::InvalidShape);
        }
        let v = e.value.to_vec().ok_or(EngineError::InvalidArgument)?;
        v.first().copied().ok_or(EngineError::InvalidShape)
    }

    /// All values of `x`, row-major.
    pub fn to_vec(&self, x: TensorId) -> Result<Vec<f32>> {
        self.entry(x)?
            .value
            .to_vec()
            .ok_or(EngineError::InvalidArgument)
    }

    /// Frees a tensor (the guest dropped its handle), with any gradient stored for it.
    /// Unknown ids are ignored.
    pub fn release(&mut self, x: TensorId) {
        let mut was_in_graph = false;
        if let Some(e) = self.tensors.remove(&x.0) {
            self.live_bytes = self.live_bytes.saturating_sub(e.bytes);
            was_in_graph = e.born.is_some();
        }
        if let Some((_, bytes)) = self.grads.remove(&x.0) {
            self.live_bytes = self.live_bytes.saturating_sub(bytes);
        }
        if was_in_graph && !self.tensors.values().any(|e| e.born.is_some()) {
            self.drop_unreachable_graphs();
        }
    }

    /// Frees every recorded graph once no live handle can reach one: called when the last
    /// tracked non-leaf tensor is released.
    ///
    /// burn frees a graph's recorded steps (and the activations they hold) only inside a
    /// `backward`, so a forward pass that is never differentiated — evaluation, prediction —
    /// would otherwise keep its whole graph until the next backward (measured: ~35 MB per
    /// batch of 64 of the reference CNN, ~5 GB over a Fashion-MNIST evaluation), and its work
    /// would count against the next graph's limit. A backward through the parameters' sums
    /// makes burn sweep the graphs they belong to; its gradients are discarded (the stored
    /// ones are untouched). Parameters are leaves of every graph that uses them, so this
    /// reaches all of them.
    fn drop_unreachable_graphs(&mut self) {
        if !self.recorded {
            // Nothing was recorded since the last backward, which swept already.
            return;
        }
        self.recorded = false;
        // Nothing of those graphs can be walked any more: the next one starts uncharged.
        self.graph_flops = 0;
        let params: Vec<Dyn> = self
            .tensors
            .values()
            .filter(|e| e.role == Role::Parameter)
            .map(|e| e.value.clone())
            .collect();
        let device = self.device.clone();
        self.pooled(|_| sweep_graphs(params, &device));
    }

    /// Live tensor handles, and the bytes counted against `max_live_bytes`: live tensors plus
    /// stored gradients and optimizer state (for tests and accounting).
    pub fn live(&self) -> (u32, u64) {
        (
            u32::try_from(self.tensors.len()).unwrap_or(u32::MAX),
            self.live_bytes,
        )
    }

    // --- nn ---

    /// A trainable tensor initialised from the engine's generator with `init` (formulas on
    /// [`Init`]). `fan_in` must be ≥ 1 for the Kaiming and bias initialisers and
    /// `fan_in + fan_out` ≥ 1 for Xavier (`InvalidArgument`).
    pub fn parameter(
        &mut self,
        shape: &[u32],
        init: Init,
        fan_in: u32,
        fan_out: u32,
    ) -> Result<TensorId> {
        let (dims, bytes) = checked_dims(shape)?;
        let fi = f64::from(fan_in);
        let fio = fi + f64::from(fan_out);
        let needs_fan_in = matches!(
            init,
            Init::KaimingUniform | Init::KaimingNormal | Init::BiasUniform
        );
        let needs_sum = matches!(init, Init::XavierUniform | Init::XavierNormal);
        if (needs_fan_in && fan_in == 0) || (needs_sum && fio == 0.0) {
            return Err(EngineError::InvalidArgument);
        }
        self.reserve(1, bytes)?;
        let n = (bytes / ELEM_BYTES) as usize;
        let values: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::KaimingUniform => self.uniform(n, (6.0 / fi).sqrt()),
            Init::KaimingNormal => self.normal(n, (2.0 / fi).sqrt()),
            Init::XavierUniform => self.uniform(n, (6.0 / fio).sqrt()),
            Init::XavierNormal => self.normal(n, (2.0 / fio).sqrt()),
            Init::BiasUniform => self.uniform(n, 1.0 / fi.sqrt()),
        };
        let device = self.device.clone();
        self.pooled(|e| {
            let v = Dyn::from_vec(values, &dims, &device);
            let leaf = crate::dynt::dyn_map!(v, t => t.require_grad());
            e.insert(leaf, Role::Parameter, None)
        })
    }

    /// A trainable tensor holding the given row-major values (for resuming from a checkpoint
    /// or fine-tuning a saved model; the runtime decides whether a guest may call it).
    /// `InvalidShape` if the counts differ.
    pub fn parameter_from_data(&mut self, shape: &[u32], data: &[f32]) -> Result<TensorId> {
        self.insert_data(shape, data, Role::Parameter)
    }

    fn uniform(&mut self, n: usize, bound: f64) -> Vec<f32> {
        (0..n)
            .map(|_| ((2.0 * self.rng.unit_f64() - 1.0) * bound) as f32)
            .collect()
    }

    fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        self.rng
            .normals(n)
            .into_iter()
            .map(|z| (z * std) as f32)
            .collect()
    }

    /// A non-trainable state tensor (batch-norm running statistics) filled with `value`.
    pub fn buffer(&mut self, shape: &[u32], value: f32) -> Result<TensorId> {
        let (dims, bytes) = checked_dims(shape)?;
        self.reserve(1, bytes)?;
        let n = (bytes / ELEM_BYTES) as usize;
        let device = self.device.clone();
        self.pooled(|e| {
            let v = Dyn::from_vec(vec![value; n], &dims, &device);
            e.insert(v, Role::Buffer, None)
        })
    }

    /// Computes the gradient of the one-element tensor `loss` with respect to every parameter
    /// it depends on, and adds it to the parameter's stored gradient (which an optimizer's
    /// `step` consumes and `zero_grad` clears).
    ///
    /// `InvalidShape` if `loss` has more than one element; `InvalidArgument` if it depends on
    /// no parameter; `NotAllowed` if part of its graph was built before the last `backward`
    /// (a graph can be walked once; recompute the forward pass); `ResourceExhausted` if the
    /// gradients would not fit the memory budget.
    pub fn backward(&mut self, loss: TensorId) -> Result<()> {
        // Walking the graph costs about twice its forward work.
        self.check_time_for(self.graph_flops.saturating_mul(2))?;
        let e = self.entry(loss)?;
        if e.value.numel() != 1 {
            return Err(EngineError::InvalidShape);
        }
        if !e.value.is_tracked() || e.role == Role::Parameter {
            return Err(EngineError::InvalidArgument);
        }
        if e.born != Some(self.generation) {
            return Err(EngineError::NotAllowed);
        }
        // Walking the graph costs about twice its forward work, which `charge` bounded.
        let value = e.value.clone();
        // Room for a gradient of every parameter that has none stored yet.
        let needed = self
            .tensors
            .iter()
            .filter(|(id, e)| e.role == Role::Parameter && !self.grads.contains_key(id))
            .try_fold(0u64, |acc, (_, e)| acc.checked_add(e.bytes))
            .ok_or(EngineError::ResourceExhausted)?;
        self.reserve(0, needed)?;
        self.pooled(|eng| {
            let Dyn::R1(loss) = value.reshape(&[1]) else {
                return Err(EngineError::InvalidShape);
            };
            let mut grads = loss.backward();
            eng.generation += 1;
            // Every graph built so far is spent (and swept): a new one starts with nothing
            // charged.
            eng.graph_flops = 0;
            eng.recorded = false;
            let params: Vec<u32> = eng
                .tensors
                .iter()
                .filter(|(_, e)| e.role == Role::Parameter)
                .map(|(&id, _)| id)
                .collect();
            for id in params {
                let Some(entry) = eng.tensors.get(&id) else {
                    continue;
                };
                let Some(g) =
                    dyn_apply!(&entry.value, t => t.grad_remove(&mut grads).map(Ranked::into_dyn))
                else {
                    continue;
                };
                let bytes = entry.bytes;
                match eng.grads.remove(&id) {
                    Some((old, old_bytes)) => {
                        let sum = dyn_zip!(old, g, a, b => a.add(b));
                        match sum {
                            Some(s) => {
                                eng.grads.insert(id, (s, old_bytes));
                            }
                            None => {
                                eng.live_bytes = eng.live_bytes.saturating_sub(old_bytes);
                            }
                        }
                    }
                    None => {
                        eng.live_bytes += bytes;
                        eng.grads.insert(id, (g, bytes));
                    }
                }
            }
            Ok(())
        })
    }

    /// The stored gradient of parameter `x` from `backward` (not yet consumed by a step), or
    /// `None` if it has none. For tests and debugging tools; the guest has no access to it.
    pub fn gradient(&self, x: TensorId) -> Result<Option<Vec<f32>>> {
        self.entry(x)?;
        match self.grads.get(&x.0) {
            Some((g, _)) => g.to_vec().map(Some).ok_or(EngineError::InvalidArgument),
            None => Ok(None),
        }
    }

    // --- model ---

    /// Named copies of tensors' values for sealing (the runtime serialises them as
    /// safetensors): `(name, shape, row-major values)` in the order given.
    ///
    /// Names must be 1–64 characters from `[a-z0-9_.]` and distinct (`InvalidArgument`);
    /// unknown handles are `ResourceExhausted`.
    pub fn export_named(&self, tensors: &[(String, TensorId)]) -> Result<Vec<NamedTensor>> {
        let mut seen = std::collections::HashSet::new();
        for (name, id) in tensors {
            if !valid_name(name) || !seen.insert(name.as_str()) {
                return Err(EngineError::InvalidArgument);
            }
            self.entry(*id)?;
        }
        tensors
            .iter()
            .map(|(name, id)| Ok((name.clone(), self.shape(*id)?, self.to_vec(*id)?)))
            .collect()
    }
}

/// Whether `name` is a valid exported tensor name: 1–64 characters from `[a-z0-9_.]`.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}
