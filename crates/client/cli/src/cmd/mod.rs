//! One module per subcommand.

pub mod attest;
pub mod bench;
pub mod cluster;
pub mod dataset;
pub mod demo;
pub mod keygen;
pub mod predict;
pub mod service;
pub mod trainer;

/// Errors of the CLI: a message for the user, already naming the problem.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
