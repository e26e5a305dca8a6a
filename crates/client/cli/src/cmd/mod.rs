//! One module per subcommand.

pub mod attest;
pub mod dataset;
pub mod keygen;
pub mod predict;
pub mod service;
pub mod trainer;

// Development commands (feature `dev`): they link the enclave's engine and sandbox and the
// host, which an owner's or operator's build does not need.
#[cfg(feature = "dev")]
pub mod bench;
#[cfg(feature = "dev")]
pub mod cluster;
#[cfg(feature = "dev")]
pub mod demo;
#[cfg(feature = "dev")]
pub mod trainer_test;

/// Errors of the CLI: a message for the user, already naming the problem.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
