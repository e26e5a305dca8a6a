//! `chiron`: the command-line tool of data owners and service operators.
//!
//! Runs on the owner's or operator's own machine, outside any enclave: owner keys, sealed
//! datasets, TEE evidence, trainer modules, jobs and predictions against a running service, and
//! `chiron demo`, the whole owner → operator → training → prediction flow on the embedded
//! digits dataset with a simulated TEE.
//!
//! The development commands (`demo`, `cluster`, `bench`, `trainer test`) are the default
//! feature `dev`: they link the enclave's engine and sandbox and the host. The owner's and
//! operator's build leaves them out: `cargo install --path crates/client/cli
//! --no-default-features`.

#![forbid(unsafe_code)]
// Output goes through `ui::outln!`, which ends quietly when stdout is closed (see `ui`).
#![deny(clippy::print_stdout)]

mod cmd;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Privacy-preserving machine learning as a service.
#[derive(Parser)]
#[command(name = "chiron", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the owner's master key: 32 random bytes in a new file with mode 0600.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Seal, inspect and verify datasets.
    #[command(subcommand)]
    Dataset(cmd::dataset::DatasetCommand),
    /// Verify TEE evidence and measure enclave builds.
    #[command(subcommand)]
    Attest(cmd::attest::AttestCommand),
    /// Build trainer modules and test them on data you may read.
    #[command(subcommand)]
    Trainer(cmd::trainer::TrainerCommand),
    /// Jobs on a running service: submit and follow (owner), list and release (operator).
    #[command(subcommand)]
    Job(cmd::service::JobCommand),
    /// Owner: black-box predictions of a trained job (images, CSV rows, .npy arrays).
    Predict(cmd::predict::PredictArgs),
    /// A distributed deployment on loopback (sim TEE): `chiron cluster up --workers N`.
    #[cfg(feature = "dev")]
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCommand),
    /// Run the whole flow — host, sim enclave, owner, operator, training, predictions — on the
    /// embedded UCI digits dataset.
    #[cfg(feature = "dev")]
    Demo(cmd::demo::DemoArgs),
    /// Benchmarks against a service started for the purpose (`chiron bench predict`).
    #[cfg(feature = "dev")]
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn main() -> ExitCode {
    // A compile child of `chiron trainer test` (see `chiron_sandbox::compile_child`).
    #[cfg(feature = "dev")]
    if chiron_sandbox::compile_child::requested() {
        return chiron_sandbox::compile_child::serve();
    }
    let cli = Cli::parse();
    #[cfg(feature = "dev")]
    if let Command::Trainer(cmd::trainer::TrainerCommand::Test(_)) = &cli.command
        && let Some(code) = cmd::trainer_test::rerun_with_enclave_malloc()
    {
        return code;
    }
    let result = match cli.command {
        Command::Keygen { out } => cmd::keygen::run(&out),
        Command::Dataset(c) => cmd::dataset::run(c),
        Command::Attest(c) => cmd::attest::run(c),
        Command::Trainer(c) => cmd::trainer::run(c),
        Command::Job(c) => cmd::service::run(c),
        Command::Predict(args) => cmd::predict::run(&args),
        #[cfg(feature = "dev")]
        Command::Cluster(c) => cmd::cluster::run(c),
        #[cfg(feature = "dev")]
        Command::Demo(args) => cmd::demo::run(&args),
        #[cfg(feature = "dev")]
        Command::Bench(c) => cmd::bench::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chiron: {e}");
            ExitCode::FAILURE
        }
    }
}
