//! The trusted ML toolchain (the role Theano and its C compiler played in the original Chiron).
//!
//! Runs inside the enclave, natively: the sandboxed trainer never does math itself, it calls
//! this engine through tensor *handles* ([`TensorId`]). The API mirrors the `chiron:trainer` WIT
//! world (`wit/chiron-trainer.wit`) one function per WIT function, so the sandbox layer is a thin
//! translation and the engine can be tested without Wasm.
//!
//! Guarantees:
//! - every error is one of the fixed [`EngineError`] codes (no text crosses to the guest);
//! - all randomness (initialisers, dropout, shuffles, augmentation) comes from one generator
//!   seeded by [`EngineConfig::seed`]: the same seed and the same calls give the same weights;
//! - live tensor memory and tensor count are bounded by [`EngineConfig`]; an operation that
//!   would exceed them fails with [`EngineError::ResourceExhausted`] before allocating.

#![forbid(unsafe_code)]

mod api;

pub use api::*;
