//! The trusted ML toolchain (the role Theano and its C compiler played in the original Chiron).
//!
//! Runs inside the enclave, natively: the sandboxed trainer never does math itself, it calls
//! this engine through tensor *handles* ([`TensorId`]). The API mirrors the `chiron:trainer` WIT
//! world (`wit/chiron-trainer.wit`) one function per WIT function, so the sandbox layer is a thin
//! translation and the engine can be tested without Wasm.
//!
//! The math is burn's pure-Rust `flex` CPU backend with burn's autodiff; operations run in the
//! engine's rayon pool ([`thread_pool`]).
//!
//! Guarantees:
//! - every error is one of the fixed [`EngineError`] codes (no text crosses to the guest), and
//!   arguments are validated before burn sees them, so no argument can make the engine panic;
//! - all randomness (initialisers, dropout, shuffles, augmentation) comes from one ChaCha8
//!   generator seeded by [`EngineConfig::seed`]: the same seed and the same calls give the same
//!   weights, bit for bit;
//! - live tensor memory and tensor count are bounded by [`EngineConfig`]; an operation that
//!   would exceed them fails with [`EngineError::ResourceExhausted`] before allocating;
//! - data reaches the engine through a [`RecordSource`]; [`SealedRecords`] preloads a sealed
//!   dataset in file order, so what the host sees does not depend on the trainer's requests.
//!
//! Module layout: `api` (types and codes), `engine` (handle table, budgets, creation,
//! parameters, backward, export), `checkpoint` (resumable training state), `distributed`
//! (worker steps through a parameter server), `ops` (tensor operations), `optim` (optimizers and
//! schedules), `data` (batches, shuffles, [`SealedRecords`]), `dynt` (dynamic-rank tensors over
//! burn), `rng` (the seeded generator).

#![forbid(unsafe_code)]

mod api;
mod checkpoint;
mod cost;
mod data;
mod distributed;
mod dynt;
mod engine;
mod ops;
mod optim;
mod parameter_server;
mod rng;

pub use api::*;
pub use checkpoint::{CHECKPOINT_MAGIC, EngineCheckpoint};
pub use cost::{CostLimits, SLOWEST_FLOPS_PER_SECOND};
pub use data::{MAX_SHUFFLE_RECORDS, SealedRecords};
pub use distributed::{ExchangeReply, ExchangeRequest, GradientExchange, OptimizerSpec, Shard};
pub use engine::{
    Engine, FrozenTensors, MAX_NAME_LEN, NamedTensor, on_this_thread, thread_pool, valid_name,
};
pub use optim::{MAX_OPTIMIZERS, UpdateRule, learning_rate_at};
pub use parameter_server::{Consistency, Gradient, ParameterServer, SPEC_BYTES, Submitted};
