//! Loading trainer components and running their exports under limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chiron_engine::{self as ce, EngineConfig, TensorId};
use wasmtime::component::{
    ComponentExportIndex, HasSelf, Instance, InstancePre, Linker, Resource, types::ComponentItem,
};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::bindings::{self, ErrorCode, HostTensor, TrainerHost};
use crate::failure::{FailureCode, LoadError, Observed, SandboxError, classify};
use crate::host::{HostState, Limiter, Phase, from_wit, tid};
use crate::outcome::{
    Checkpointing, PreparedModel, SavedModel, TensorData, TrainConfig, TrainOutcome,
};
use crate::timing::GuestClock;

/// The limits every instance runs under. One value per [`Sandbox`]; the defaults suit the
/// enclave (see each field).
#[derive(Clone, Debug)]
pub struct SandboxLimits {
    /// Largest component accepted by [`TrainerModule::load`] (compilation time grows with size).
    /// Default 32 MiB.
    pub max_module_bytes: usize,
    /// Cap on a guest's linear memory, per instance. Default 256 MiB (tensors live host-side;
    /// the guest only orchestrates).
    pub max_memory_bytes: usize,
    /// Cap on table elements, per table. Default 100,000.
    pub max_table_elements: usize,
    /// Native stack the guest may use (`Config::max_wasm_stack`). Default 512 KiB.
    pub max_wasm_stack: usize,
    /// Live component handles (tensors, optimizers) a store may hold. Default 100,000.
    pub max_handles: usize,
    /// Bytes one guest→host call may copy into the host (`Store::set_hostcall_fuel`).
    /// Default 256 MiB.
    pub hostcall_fuel: usize,
    /// Instruction budget (wasmtime fuel) of one `train` call; `None`: unlimited (the wall
    /// budget still applies). Default `None`.
    ///
    /// Metering is compiled into the guest's code only when this or
    /// [`SandboxLimits::predict_fuel`] is set: it slows an interpreter guest (CPython: ~5 % of
    /// a CNN training step, and twice the compile time), while the wall-clock budgets bound
    /// every call without it.
    pub train_fuel: Option<u64>,
    /// Instruction budget of one `predict` call; `None`: unlimited (the wall budget,
    /// [`SandboxLimits::predict_wall`], still applies). Default `None`.
    pub predict_fuel: Option<u64>,
    /// Wall-clock budget of one prediction request (instantiation included). Default 5 s.
    pub predict_wall: Duration,
    /// Engine limits of a prediction request (its tensors include the loaded model).
    pub predict_engine: EngineConfig,
    /// Progress and metric reports kept per job; later ones are counted and dropped.
    /// Default 100,000.
    pub max_reports: usize,
    /// Instances that may exist at once (slots of the pooling allocator). Default 16.
    pub max_instances: u32,
    /// Keep every instance slot's linear memory (and tables) resident for the sandbox's whole
    /// life: [`Sandbox::new`] touches each slot's memory up to its cap, and freeing an
    /// instance zeroes its memory instead of returning the pages to the OS. The process's
    /// resident memory then does not follow what a guest touches or when it ends
    /// (`max_instances × max_memory_bytes` are resident from the start), and since the slots
    /// stay read/write to the cap, neither do its writable mappings when a guest grows its
    /// memory (see [`wasmtime_config`]). The enclave turns it
    /// on; off by default, for tools and tests that start many sandboxes.
    pub resident_memory: bool,
    /// Period of the epoch ticker: the resolution of wall-clock budgets. Default 10 ms.
    pub epoch_tick: Duration,
    /// Operator test mode only: write the text of each failure (trap message, wasmtime error)
    /// to stderr. Off in the enclave, where only [`FailureCode`]s exist.
    pub debug_log: bool,
    /// Operator test mode only: bytes of the guest's stdout and stderr (the virtual WASI's
    /// console) passed to the host's stderr per run, after which the output is cut. Default
    /// 0: dropped unread, as in the enclave.
    pub console_bytes: usize,
    /// Compile components in a child process running this program (which must answer
    /// [`crate::compile_child::CHILD_ARG`] with [`crate::compile_child::serve`]), so the
    /// compiler's memory never enters this process: see [`crate::compile_child`]. Name the
    /// running executable, `/proc/self/exe`. Default `None`: compile in this process (as
    /// also when the child cannot be started).
    pub compile_child: Option<PathBuf>,
    /// Operator test mode only: split each training run's wall time between the guest's code
    /// and host calls, and time the intervals between progress reports
    /// ([`TrainOutcome::time_split`]). Off in the enclave: no call hook is installed and no
    /// clock is read for it there.
    pub time_guest: bool,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_module_bytes: 32 << 20,
            max_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
            max_wasm_stack: 512 << 10,
            max_handles: 100_000,
            hostcall_fuel: 256 << 20,
            train_fuel: None,
            predict_fuel: None,
            predict_wall: Duration::from_secs(5),
            predict_engine: EngineConfig {
                seed: 0,
                max_live_bytes: 1 << 30,
                max_tensors: 100_000,
                max_steps: 0,
            },
            max_reports: 100_000,
            max_instances: 16,
            resident_memory: false,
            epoch_tick: Duration::from_millis(10),
            debug_log: false,
            console_bytes: 0,
            compile_child: None,
            time_guest: false,
        }
    }
}

impl SandboxLimits {
    /// Whether an instruction budget is set, so the compiled code must meter fuel.
    pub(crate) fn metered(&self) -> bool {
        self.train_fuel.is_some() || self.predict_fuel.is_some()
    }
}

/// wasmtime's configuration for `limits`: everything that shapes compiled code and instances
/// (a compile child builds the same from the settings it is sent).
pub(crate) fn wasmtime_config(limits: &SandboxLimits) -> Config {
    let n = limits.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    // A wit-component trainer has a handful of core instances (main module, shims) and one
    // memory; leave headroom but keep the pool's address-space reservation bounded (and,
    // with `resident_memory`, what is resident: one memory slot per instance).
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .max_core_instances_per_component(16)
        .total_memories(n)
        .max_memories_per_component(1)
        .total_tables(n.saturating_mul(4))
        .max_tables_per_component(8)
        .max_memory_size(limits.max_memory_bytes)
        .table_elements(limits.max_table_elements);
    if limits.resident_memory {
        // Freed slots are zeroed with memset, never madvised away: pages a guest touched
        // stay resident, so nothing changes when its instance ends.
        pool.linear_memory_keep_resident(limits.max_memory_bytes)
            .table_keep_resident(limits.max_table_elements.saturating_mul(16));
    }
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(limits.metered())
        .epoch_interruption(true)
        .max_wasm_stack(limits.max_wasm_stack)
        // Reserve each linear memory at its cap, not wasmtime's default 4 GiB + guard:
        // address space is scarce in some TEEs (an SGX enclave's size is fixed). No guard
        // region either: compiled code then checks every access of a memory that declares no
        // maximum (see `check_memories`) exactly against its current size, which costs little
        // in orchestration-only guests. Pages past that size need no protection, so — with
        // third_party/wasmtime's patch — a slot stays read/write up to the largest size it
        // has served (all of the cap in the enclave, see `touch_memory_slots`) and
        // `memory.grow` changes no mapping the host could see (`VmData`, the process's
        // writable mappings, in /proc/<pid>/status).
        .memory_reservation(limits.max_memory_bytes as u64)
        .memory_guard_size(0)
        .parallel_compilation(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    if limits.resident_memory {
        // Data segments copied into the slot's own pages (not a copy-on-write file mapping
        // that comes and goes with the module), and tables filled when instantiated (not
        // page by page as the guest first calls through them).
        config.memory_init_cow(false).table_lazy_init(false);
    }
    config
}

/// State shared by a sandbox and the modules it loaded.
struct Shared {
    engine: Engine,
    /// Whether the engine meters fuel (a budget in [`SandboxLimits`] asks for it).
    metered: bool,
    linker: Linker<HostState>,
    limits: SandboxLimits,
}

/// The wasmtime host of the `chiron:trainer` world: one per process.
///
/// Owns the wasmtime engine (Cranelift, pooling allocator, epoch interruption, fuel metering
/// when a budget asks for it), the linker that holds exactly the trainer world's imports and
/// the virtual WASI's, and an epoch ticker thread that runs as long as the sandbox or any
/// module loaded from it lives.
pub struct Sandbox {
    shared: Arc<Shared>,
}

impl Sandbox {
    /// Starts the sandbox: configures wasmtime, builds the linker, starts the epoch ticker.
    pub fn new(limits: SandboxLimits) -> Result<Self, SandboxError> {
        let err = |e: wasmtime::Error| SandboxError(format!("{e:#}"));
        if limits.epoch_tick.is_zero() || limits.max_instances == 0 {
            return Err(SandboxError(
                "epoch_tick and max_instances must be non-zero".into(),
            ));
        }
        let metered = limits.metered();
        let engine = Engine::new(&wasmtime_config(&limits)).map_err(err)?;
        if limits.resident_memory {
            touch_memory_slots(&engine, &limits)?;
        }

        let mut linker = Linker::<HostState>::new(&engine);
        TrainerHost::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(err)?;
        crate::wasi::add_to_linker(&mut linker).map_err(err)?;

        // The ticker holds only a weak reference: it ends once the engine is gone.
        let weak = engine.weak();
        let tick = limits.epoch_tick;
        std::thread::Builder::new()
            .name("chiron-sandbox-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| SandboxError(format!("epoch ticker: {e}")))?;

        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                metered,
                linker,
                limits,
            }),
        })
    }

    /// The limits this sandbox runs with.
    pub fn limits(&self) -> &SandboxLimits {
        &self.shared.limits
    }

    /// Compiles and checks a trainer component; see [`TrainerModule::load`].
    pub fn load(&self, bytes: &[u8]) -> Result<TrainerModule, LoadError> {
        TrainerModule::load(self, bytes)
    }
}

/// Refuses a component any of whose core modules defines a memory that declares a maximum.
///
/// The sandbox sets every memory's cap itself ([`SandboxLimits::max_memory_bytes`]). A memory
/// with a maximum within the pool's reservation is compiled as wasmtime's "static" kind, whose
/// accesses are checked against the reservation and kept in bounds by page protections: each
/// of its instantiations and growths would `mprotect` the slot, and the next guest's growth
/// would show in the process's writable mappings again (see [`wasmtime_config`]). Rust and
/// CPython trainers declare none.
fn check_memories(bytes: &[u8]) -> Result<(), LoadError> {
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::MemorySection(memories) = payload.map_err(invalid)? {
            for memory in memories {
                let memory = memory.map_err(invalid)?;
                if let Some(maximum) = memory.maximum {
                    return Err(LoadError::Refused(format!(
                        "a core module of the component declares a memory maximum of {maximum} \
                         pages; trainers' memories may not declare one (the sandbox sets the \
                         cap)"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Deserializes compiled code the caller vouches for (see [`TrainerModule::load_compiled`]).
///
/// The crate's one unsafe block. wasmtime cannot check that serialized code is what it once
/// compiled (it checks the format, version and configuration, not the machine code), so
/// `Component::deserialize` is `unsafe`: its precondition is that the bytes came from
/// `Component::serialize` (or `Engine::precompile_component`). Two callers meet it:
/// `load_compiled`, whose contract passes the duty to its caller (the enclave authenticates
/// the bytes with its sealing key before they get here), and `load` with a compile child,
/// whose code comes from this same executable (see [`crate::compile_child`]).
#[allow(unsafe_code)]
fn deserialize_trusted(
    engine: &Engine,
    code: &[u8],
) -> Result<wasmtime::component::Component, LoadError> {
    // SAFETY: `code` is wasmtime's serialized output: from `TrainerModule::compiled_code`,
    // authenticated by the caller (see `TrainerModule::load_compiled`), or from this
    // executable's compile child (`compile_child`, over a pipe it alone holds); wasmtime
    // refuses output of another version or configuration.
    unsafe { wasmtime::component::Component::deserialize(engine, code) }
        .map_err(|e| LoadError::Invalid(format!("compiled code: {e:#}")))
}

/// Makes every linear-memory slot of the pool resident up to the cap: instantiates, all at
/// once (so each takes its own slot), a module whose one memory is the cap, writes every byte,
/// and frees them (the pool keeps freed slots resident, see [`SandboxLimits::resident_memory`],
/// and read/write to the cap, see [`wasmtime_config`]: no guest's growth changes a mapping).
fn touch_memory_slots(engine: &Engine, limits: &SandboxLimits) -> Result<(), SandboxError> {
    let err = |e: wasmtime::Error| SandboxError(format!("touching memory slots: {e:#}"));
    let pages = u32::try_from(limits.max_memory_bytes / WASM_PAGE)
        .map_err(|_| SandboxError("max_memory_bytes is over 4 GiB".into()))?;
    let module = wasmtime::Module::new(engine, cap_memory_module(pages)).map_err(err)?;
    let mut stores = Vec::with_capacity(limits.max_instances as usize);
    for _ in 0..limits.max_instances {
        let mut store = Store::new(engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).map_err(err)?;
        let memory = instance
            .get_memory(&mut store, "m")
            .ok_or_else(|| SandboxError("touching memory slots: no memory export".into()))?;
        memory.data_mut(&mut store).fill(0);
        stores.push(store);
    }
    Ok(())
}

/// Bytes in a WebAssembly page.
const WASM_PAGE: usize = 64 << 10;

/// A core module with one exported memory `m` of exactly `pages` pages (no code).
fn cap_memory_module(pages: u32) -> Vec<u8> {
    let mut limits = vec![0x01]; // flags: minimum and maximum
    leb128(&mut limits, pages);
    leb128(&mut limits, pages);
    let mut memory_section = vec![0x01]; // one memory
    memory_section.extend(limits);
    let export_section = [0x01, 0x01, b'm', 0x02, 0x00]; // one export: "m", memory 0
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    for (id, body) in [(5u8, &memory_section[..]), (7, &export_section[..])] {
        wasm.push(id);
        leb128(&mut wasm, body.len() as u32);
        wasm.extend_from_slice(body);
    }
    wasm
}

/// Appends `value` as unsigned LEB128.
fn leb128(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The imports a trainer component may have: the world's interfaces and the two types its
/// world-level `use` adds (type imports grant no capability).
const ALLOWED_INSTANCES: [&str; 7] = [
    "chiron:trainer/types@0.1.0",
    "chiron:trainer/tensor@0.1.0",
    "chiron:trainer/nn@0.1.0",
    "chiron:trainer/optim@0.1.0",
    "chiron:trainer/data@0.1.0",
    "chiron:trainer/report@0.1.0",
    "chiron:trainer/model@0.1.0",
];
const ALLOWED_TYPES: [&str; 2] = ["tensor", "error-code"];

/// Type of the `train` export as the host calls it.
type TrainFn = wasmtime::component::TypedFunc<(bindings::TrainConfig,), (Result<(), ErrorCode>,)>;
/// Type of the `predict` export as the host calls it.
type PredictFn = wasmtime::component::TypedFunc<
    (Resource<HostTensor>,),
    (Result<Resource<HostTensor>, ErrorCode>,),
>;

/// A trainer component, compiled, checked against the world and pre-instantiated: ready for
/// any number of fresh instances.
pub struct TrainerModule {
    shared: Arc<Shared>,
    pre: InstancePre<HostState>,
    train: ComponentExportIndex,
    predict: ComponentExportIndex,
    digest: [u8; 32],
}

impl TrainerModule {
    /// Compiles `bytes` (a component) and checks it can only reach the `chiron:trainer` world
    /// and the virtual WASI.
    ///
    /// Refused with [`LoadError::Refused`]: any other import — an unknown function or
    /// interface, an extra function inside an allowed interface (WASI's included), another
    /// version. The name check gives the clear message; the linker's type check (`instantiate_pre`) is the one
    /// that cannot be fooled (an interface of the right name with an extra function passes the
    /// first, not the second). Exports `train` and `predict` must exist with the world's types
    /// ([`LoadError::BadExports`]): they are checked on a probe instance, under the prediction
    /// limits, which also runs any start function once.
    pub fn load(sandbox: &Sandbox, bytes: &[u8]) -> Result<Self, LoadError> {
        let shared = &sandbox.shared;
        let limit = shared.limits.max_module_bytes;
        if bytes.len() > limit {
            return Err(LoadError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        check_memories(bytes)?;
        let digest_value = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(digest_value.as_ref());

        let from_child = match &shared.limits.compile_child {
            Some(program) => crate::compile_child::compile(program, &shared.limits, bytes)?,
            None => None,
        };
        let component = match from_child {
            // The code comes from this executable's own child (see `compile_child`); code
            // that does not load is the child's failure, not the module's.
            Some(code) => deserialize_trusted(&shared.engine, &code).map_err(|e| {
                LoadError::Internal(format!("compiler process: unusable code: {e}"))
            })?,
            None => wasmtime::component::Component::new(&shared.engine, bytes)
                .map_err(|e| LoadError::Invalid(format!("{e:#}")))?,
        };
        Self::checked(sandbox, component, digest)
    }

    /// The component's compiled native code (wasmtime's serialized form), for a caller that
    /// keeps it where only it can write — the enclave seals it — and hands it to
    /// [`TrainerModule::load_compiled`] later instead of compiling again (a CPython trainer
    /// takes seconds to compile; loading its code takes milliseconds).
    pub fn compiled_code(&self) -> Result<Vec<u8>, SandboxError> {
        self.pre
            .component()
            .serialize()
            .map_err(|e| SandboxError(format!("serializing compiled code: {e:#}")))
    }

    /// A module from [`TrainerModule::compiled_code`] output of a sandbox with the same
    /// configuration, checked as [`TrainerModule::load`] checks a component (imports, exports,
    /// a probe instance); `digest` is that of the component the code was compiled from.
    ///
    /// Trust: `code` is native code that will run. It must come from `compiled_code` through
    /// storage only the caller can write (the enclave opens it from a blob sealed with its own
    /// key, which authenticates every byte): code from anywhere else is arbitrary native code.
    /// A mismatch of wasmtime version or configuration is detected and refused
    /// ([`LoadError::Invalid`]); the caller then compiles the component again.
    pub fn load_compiled(
        sandbox: &Sandbox,
        code: &[u8],
        digest: [u8; 32],
    ) -> Result<Self, LoadError> {
        let component = deserialize_trusted(&sandbox.shared.engine, code)?;
        Self::checked(sandbox, component, digest)
    }

    /// Checks a compiled component against the world and pre-instantiates it.
    fn checked(
        sandbox: &Sandbox,
        component: wasmtime::component::Component,
        digest: [u8; 32],
    ) -> Result<Self, LoadError> {
        let shared = &sandbox.shared;
        let ty = component.component_type();
        for (name, ext) in ty.imports(&shared.engine) {
            let allowed = match ext.ty {
                ComponentItem::ComponentInstance(_) => {
                    ALLOWED_INSTANCES.contains(&name) || crate::wasi::is_virtual_wasi(name)
                }
                ComponentItem::Type(_) | ComponentItem::Resource(_) => {
                    ALLOWED_TYPES.contains(&name)
                }
                _ => false,
            };
            if !allowed {
                return Err(LoadError::Refused(format!(
                    "the component imports `{name}`, which is neither part of the chiron:trainer \
                     world nor of the sandbox's virtual WASI 0.2 (trainers may import only \
                     chiron:trainer/*@0.1.0 and wasi:cli/imports@0.2.x)"
                )));
            }
        }
        let pre = shared
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Refused(format!("{e:#}")))?;

        let export = |name: &str| {
            component.get_export_index(None, name).ok_or_else(|| {
                LoadError::BadExports(format!("the component does not export `{name}`"))
            })
        };
        let train = export("train")?;
        let predict = export("predict")?;

        let module = Self {
            shared: Arc::clone(shared),
            pre,
            train,
            predict,
            digest,
        };
        module.probe()?;
        Ok(module)
    }

    /// Instantiates once and looks both exports up with their expected types.
    fn probe(&self) -> Result<(), LoadError> {
        let limits = &self.shared.limits;
        let engine = ce::Engine::new(limits.predict_engine.clone());
        let mut store = self
            .store(
                engine,
                Phase::Predict,
                limits.predict_fuel,
                limits.predict_wall,
            )
            .map_err(|e| LoadError::Internal(format!("{e:#}")))?;
        let instance = self.pre.instantiate(&mut store).map_err(|e| {
            let observed = Observed {
                memory_denied: store.data().limiter.denied,
            };
            match classify(&e, observed) {
                FailureCode::Internal => LoadError::Internal(format!("{e:#}")),
                code => LoadError::BadExports(format!("instantiation failed ({code}): {e:#}")),
            }
        })?;
        self.train_fn(&instance, &mut store)
            .map_err(|e| LoadError::BadExports(format!("export `train`: {e:#}")))?;
        self.predict_fn(&instance, &mut store)
            .map_err(|e| LoadError::BadExports(format!("export `predict`: {e:#}")))?;
        Ok(())
    }

    /// SHA-256 of the component's bytes: what owners approve and see in job records.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// [`TrainerModule::digest`] as lowercase hex.
    pub fn digest_hex(&self) -> String {
        chiron_codec::hex(&self.digest)
    }

    fn train_fn(
        &self,
        instance: &Instance,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<TrainFn> {
        instance.get_typed_func(store, self.train)
    }

    fn predict_fn(
        &self,
        instance: &Instance,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<PredictFn> {
        instance.get_typed_func(store, self.predict)
    }

    /// A fresh store with every limit applied.
    fn store(
        &self,
        engine: ce::Engine,
        phase: Phase,
        fuel: Option<u64>,
        wall: Duration,
    ) -> wasmtime::Result<Store<HostState>> {
        let limits = &self.shared.limits;
        let state = HostState::new(
            engine,
            phase,
            Limiter::new(limits.max_memory_bytes, limits.max_table_elements),
            limits.max_reports,
            crate::wasi::Console::new(limits.console_bytes),
        );
        let mut store = Store::new(&self.shared.engine, state);
        store.limiter(|s| &mut s.limiter);
        if self.shared.metered {
            store.set_fuel(fuel.unwrap_or(u64::MAX))?;
        }
        // Deadline in ticks, rounded up, plus one: the first tick may come at once.
        let tick = limits.epoch_tick.as_nanos().max(1);
        let ticks = wall.as_nanos().div_ceil(tick).saturating_add(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store.set_max_component_handles(limits.max_handles);
        store.set_hostcall_fuel(limits.hostcall_fuel);
        if limits.time_guest && phase == Phase::Train {
            store.data_mut().clock = Some(GuestClock::default());
            store.call_hook(|mut ctx, hook| {
                if let Some(clock) = ctx.data_mut().clock.as_mut() {
                    clock.cross(hook);
                }
                Ok(())
            });
        }
        Ok(store)
    }

    /// Turns a wasmtime error into its fixed code, logging the text in test mode only.
    fn fail(&self, what: &str, err: &wasmtime::Error, store: &Store<HostState>) -> FailureCode {
        let observed = Observed {
            memory_denied: store.data().limiter.denied,
        };
        let code = classify(err, observed);
        self.log(what, code, &format!("{err:?}"));
        code
    }

    fn log(&self, what: &str, code: FailureCode, text: &str) {
        if self.shared.limits.debug_log {
            eprintln!("chiron-sandbox [test mode] {what} failed: {code}: {text}");
        }
    }
}

/// Runs the trainer's `train` on a fresh instance with the job's engine (data attached).
///
/// Limits: the memory cap, the handle and hostcall budgets, `config.wall_budget` (epoch) and
/// [`SandboxLimits::train_fuel`]. On success, returns what the guest reported and saved; on any
/// failure, the fixed code. The store is dropped either way (a trapped instance cannot be
/// entered again), so the host stays healthy for the next job.
pub fn run_train(
    module: &TrainerModule,
    engine: ce::Engine,
    config: &TrainConfig,
) -> Result<TrainOutcome, FailureCode> {
    run_train_with(module, engine, config, Checkpointing::default())
}

/// [`run_train`] with checkpoints: the guest's `model.checkpoint` calls go to
/// `checkpointing.sink`, and `model.resume` restores `checkpointing.resume_from` (the engine
/// must be configured exactly as for the run that made it: same seed, data and budgets).
pub fn run_train_with(
    module: &TrainerModule,
    engine: ce::Engine,
    config: &TrainConfig,
    checkpointing: Checkpointing,
) -> Result<TrainOutcome, FailureCode> {
    let limits = &module.shared.limits;
    let mut store = module
        .store(engine, Phase::Train, limits.train_fuel, config.wall_budget)
        .map_err(|e| {
            module.log("train", FailureCode::Internal, &format!("{e:?}"));
            FailureCode::Internal
        })?;
    store.data_mut().checkpointing = checkpointing;
    let instance = module
        .pre
        .instantiate(&mut store)
        .map_err(|e| module.fail("train (instantiate)", &e, &store))?;
    let train = module
        .train_fn(&instance, &mut store)
        .map_err(|e| module.fail("train (export)", &e, &store))?;
    let arg = bindings::TrainConfig {
        epochs: config.epochs,
        batch_size: config.batch_size,
        hyper: config.hyper.clone(),
    };
    let (result,) = train
        .call(&mut store, (arg,))
        .map_err(|e| module.fail("train", &e, &store))?;
    if let Err(code) = result {
        let code = FailureCode::GuestError(from_wit(code));
        module.log("train", code, "the guest returned an error");
        return Err(code);
    }
    let state = store.into_data();
    Ok(TrainOutcome {
        steps_taken: state.engine.steps_taken(),
        optimized_values: state.engine.optimized_values(),
        progress: state.progress,
        metrics: state.metrics,
        dropped_reports: state.dropped_reports,
        model: state.saved.map(|tensors| SavedModel { tensors }),
        time_split: state.clock.map(GuestClock::finish),
    })
}

/// Runs the trainer's `predict` on a fresh instance: no state survives from any earlier call.
///
/// A fresh engine ([`SandboxLimits::predict_engine`]) gets the saved model's tensors (handed out
/// by the guest's `model.load`) and the input; the guest's output tensor is read back as plain
/// data. Limits: the memory cap, handle and hostcall budgets, [`SandboxLimits::predict_wall`],
/// [`SandboxLimits::predict_fuel`]. The runtime, not this function, formats what the requester
/// sees (top-k, rounding, fixed size).
pub fn run_predict(
    module: &TrainerModule,
    model: &SavedModel,
    input: &TensorData,
) -> Result<TensorData, FailureCode> {
    run_predict_within(module, model, input, module.shared.limits.predict_wall)
}

/// [`run_predict`] with the guest interrupted after `wall` (or [`SandboxLimits::predict_wall`],
/// if shorter): for a caller that answers at a fixed time and wants the work stopped by then.
/// An engine call in flight at that moment still runs to its end.
pub fn run_predict_within(
    module: &TrainerModule,
    model: &SavedModel,
    input: &TensorData,
    wall: Duration,
) -> Result<TensorData, FailureCode> {
    // The saved model is the trainer's output: a model that does not load is its failure.
    let model = PreparedModel::new(model).inspect_err(|&code| {
        module.log(
            "predict (model)",
            code,
            "the saved model does not fit its shapes",
        );
    })?;
    run_predict_prepared(module, &model, input, wall)
}

/// [`run_predict_within`] with a model prepared once ([`PreparedModel::new`]) for many
/// predictions: the fresh engine borrows the model's tensors instead of copying them.
pub fn run_predict_prepared(
    module: &TrainerModule,
    model: &PreparedModel,
    input: &TensorData,
    wall: Duration,
) -> Result<TensorData, FailureCode> {
    let limits = &module.shared.limits;
    let mut engine = ce::Engine::new(limits.predict_engine.clone());
    let mut preloaded = Vec::with_capacity(model.names.len());
    for (index, name) in model.names.iter().enumerate() {
        // Over the prediction engine's memory budget: the trainer saved too big a model.
        let id = engine.from_frozen(&model.frozen, index).map_err(|e| {
            module.log(
                "predict (model)",
                FailureCode::InvalidOutput,
                &e.to_string(),
            );
            FailureCode::InvalidOutput
        })?;
        preloaded.push((name.clone(), id));
    }
    let input_id = engine.from_data(&input.shape, &input.values).map_err(|e| {
        module.log("predict (input)", FailureCode::InvalidInput, &e.to_string());
        FailureCode::InvalidInput
    })?;

    let mut store = module
        .store(
            engine,
            Phase::Predict,
            limits.predict_fuel,
            wall.min(limits.predict_wall),
        )
        .map_err(|e| {
            module.log("predict", FailureCode::Internal, &format!("{e:?}"));
            FailureCode::Internal
        })?;
    store.data_mut().preloaded = Some(preloaded);
    let instance = module
        .pre
        .instantiate(&mut store)
        .map_err(|e| module.fail("predict (instantiate)", &e, &store))?;
    let predict = module
        .predict_fn(&instance, &mut store)
        .map_err(|e| module.fail("predict (export)", &e, &store))?;
    let (result,) = predict
        .call(&mut store, (Resource::new_borrow(input_id.0),))
        .map_err(|e| module.fail("predict", &e, &store))?;
    let output = match result {
        Ok(handle) => tid(&handle),
        Err(code) => {
            let code = FailureCode::GuestError(from_wit(code));
            module.log("predict", code, "the guest returned an error");
            return Err(code);
        }
    };
    read_back(&store.data().engine, output).map_err(|e| {
        module.log(
            "predict (output)",
            FailureCode::InvalidOutput,
            &e.to_string(),
        );
        FailureCode::InvalidOutput
    })
}

fn read_back(engine: &ce::Engine, id: TensorId) -> ce::Result<TensorData> {
    Ok(TensorData {
        shape: engine.shape(id)?,
        values: engine.to_vec(id)?,
    })
}

/// Instantiation cost probe for benchmarks and tests: a fresh store and instance of `module`
/// under the prediction limits, dropped at once. Returns the time it took.
pub fn measure_fresh_instance(module: &TrainerModule) -> Result<Duration, FailureCode> {
    let limits = &module.shared.limits;
    let start = Instant::now();
    let engine = ce::Engine::new(limits.predict_engine.clone());
    let mut store = module
        .store(
            engine,
            Phase::Predict,
            limits.predict_fuel,
            limits.predict_wall,
        )
        .map_err(|_| FailureCode::Internal)?;
    module
        .pre
        .instantiate(&mut store)
        .map_err(|e| module.fail("instantiate", &e, &store))?;
    drop(store);
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use wasmtime::{Instance, Trap, TypedFunc};

    /// A core module with one memory of one page (no maximum declared, as trainers' memories)
    /// and a byte's load and store, and growth.
    const PROBE: &str = r#"(module
        (memory (export "m") 1)
        (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
        (func (export "store") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#;

    /// The process's writable private mappings (KiB): what `memory.grow` once moved.
    fn vm_data_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmData:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    struct Probe {
        store: Store<()>,
        load: TypedFunc<i32, i32>,
        write: TypedFunc<(i32, i32), ()>,
        grow: TypedFunc<i32, i32>,
    }

    impl Probe {
        fn new(engine: &Engine, module: &wasmtime::Module) -> Self {
            let mut store = Store::new(engine, ());
            store.set_epoch_deadline(1); // nothing advances the epoch here
            let instance = Instance::new(&mut store, module, &[]).unwrap();
            Self {
                load: instance.get_typed_func(&mut store, "load").unwrap(),
                write: instance.get_typed_func(&mut store, "store").unwrap(),
                grow: instance.get_typed_func(&mut store, "grow").unwrap(),
                store,
            }
        }
        fn load(&mut self, at: i32) -> Result<i32, Trap> {
            self.load
                .call(&mut self.store, at)
                .map_err(|e| *e.downcast_ref::<Trap>().unwrap())
        }
        fn write(&mut self, at: i32, value: i32) -> Result<(), Trap> {
            self.write
                .call(&mut self.store, (at, value))
                .map_err(|e| *e.downcast_ref::<Trap>().unwrap())
        }
    }

    #[test]
    fn a_memory_that_declares_a_maximum_is_refused_before_compiling() {
        let parse = |text: &str| wat::parse_str(text).unwrap();
        assert!(check_memories(&parse("(module (memory 1))")).is_ok());
        let err = check_memories(&parse("(module (memory 1 4))")).unwrap_err();
        assert!(
            matches!(&err, LoadError::Refused(m) if m.contains("maximum of 4 pages")),
            "{err}"
        );
        // Inside a component, as a trainer would hide it; through the sandbox's front door.
        let sandbox = Sandbox::new(SandboxLimits {
            max_instances: 1,
            ..SandboxLimits::default()
        })
        .unwrap();
        let nested = parse("(component (core module (memory 2 2)))");
        assert!(matches!(
            TrainerModule::load(&sandbox, &nested),
            Err(LoadError::Refused(m)) if m.contains("maximum of 2 pages")
        ));
        let garbage = [0u8, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0, 5];
        assert!(matches!(
            TrainerModule::load(&sandbox, &garbage),
            Err(LoadError::Invalid(_))
        ));
    }

    #[test]
    fn a_slot_kept_read_write_still_bounds_every_access_and_resets_what_was_written() {
        let limits = SandboxLimits {
            resident_memory: true,
            max_instances: 1, // one slot: every instance below takes the same
            max_memory_bytes: 4 * WASM_PAGE,
            ..SandboxLimits::default()
        };
        let engine = Engine::new(&wasmtime_config(&limits)).unwrap();
        touch_memory_slots(&engine, &limits).unwrap(); // the slot is read/write to its cap
        let module = wasmtime::Module::new(&engine, wat::parse_str(PROBE).unwrap()).unwrap();
        let page = WASM_PAGE as i32;

        let mut first = Probe::new(&engine, &module);
        assert_eq!(first.load(page), Err(Trap::MemoryOutOfBounds));
        assert_eq!(first.write(page + 100, 1), Err(Trap::MemoryOutOfBounds));
        first.write(10, 9).unwrap();
        let before = vm_data_kib();
        assert_eq!(first.grow.call(&mut first.store, 2).unwrap(), 1);
        assert_eq!(
            vm_data_kib(),
            before,
            "growing changed the writable mappings"
        );
        first.write(page + 100, 7).unwrap();
        first.write(3 * page - 1, 5).unwrap();
        assert_eq!(first.load(3 * page), Err(Trap::MemoryOutOfBounds));
        drop(first);

        // The next instance gets the slot back at one page, with nothing of the first's in it.
        let mut second = Probe::new(&engine, &module);
        assert_eq!(second.load(10), Ok(0));
        assert_eq!(second.load(page), Err(Trap::MemoryOutOfBounds));
        assert_eq!(second.grow.call(&mut second.store, 3).unwrap(), 1);
        assert_eq!(second.load(page + 100), Ok(0));
        assert_eq!(second.load(3 * page - 1), Ok(0));
    }
}
