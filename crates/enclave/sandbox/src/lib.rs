//! The operator sandbox: a wasmtime host of the `chiron:trainer` world.
//!
//! An operator's trainer is a WebAssembly *component* that may import only the
//! `chiron:trainer` world (`wit/chiron-trainer.wit`) and a virtual WASI 0.2 that opens no
//! channel (`wasi`: no files, environment, clock, host entropy or network; what CPython needs).
//! It orchestrates; the math runs natively in the trusted engine ([`chiron_engine`]) behind
//! tensor handles. This crate
//!
//! - starts wasmtime once per process ([`Sandbox::new`]: Cranelift, pooling allocator, epoch
//!   interruption with a ticker thread, fuel metering when a budget asks for it, a stack
//!   limit; with
//!   [`SandboxLimits::resident_memory`], every instance slot's memory resident from the start
//!   and never given back, so what a guest touches does not show in the process's RSS);
//! - loads a component ([`TrainerModule::load`]): compiles it (in a child process of the same
//!   executable when [`SandboxLimits::compile_child`] names one: [`compile_child`]), refuses anything that imports
//!   outside the world, checks the `train`/`predict` exports, pre-instantiates it and records
//!   its SHA-256 digest;
//! - runs the exports on fresh instances ([`run_train`], [`run_predict`]) with a memory cap, a
//!   wall-clock budget, an optional instruction budget, handle and hostcall budgets, collecting
//!   progress, metrics and the saved model for the runtime to decide what leaves.
//!
//! Guarantees:
//! - a component that imports anything outside the world and the virtual WASI never runs;
//! - every failure reaches the caller as one [`FailureCode`] value — no text (the text goes to
//!   stderr only when [`SandboxLimits::debug_log`] is set, the operator's test mode);
//! - every call runs in a fresh store and instance, dropped afterwards: nothing a guest does
//!   survives into the next call, and a trap leaves the host healthy;
//! - no unsafe code but one block: deserializing compiled code the caller authenticated
//!   ([`TrainerModule::load_compiled`]) or this executable's compile child produced
//!   (wasmtime's generated export wrappers are unsafe, so the two exports are called through
//!   the type-checked `get_typed_func` instead).

#![deny(unsafe_code)]

mod bindings;
pub mod compile_child;
mod failure;
mod host;
mod outcome;
mod sandbox;
mod timing;
mod wasi;

pub use chiron_engine::{EngineCheckpoint, EngineConfig, EngineError};
pub use failure::{FailureCode, LoadError, SandboxError};
pub use outcome::{
    CheckpointSink, CheckpointSinkError, Checkpointing, Metric, MetricPoint, NamedTensor,
    PreparedModel, Progress, SavedModel, TensorData, TrainCheckpoint, TrainConfig, TrainOutcome,
};
pub use sandbox::{
    Sandbox, SandboxLimits, TrainerModule, measure_fresh_instance, run_predict,
    run_predict_prepared, run_predict_within, run_train, run_train_with,
};
pub use timing::TimeSplit;
pub use wasi::MAX_RANDOM_BYTES;
