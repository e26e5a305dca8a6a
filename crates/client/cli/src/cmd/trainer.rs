//! `chiron trainer build | register | test`: the operator's tools for trainer modules. `test`
//! (in `trainer_test.rs`) is a development command of the `dev` feature.

use std::path::PathBuf;

use clap::Subcommand;

use super::CliResult;
use crate::ui::outln;

/// Trainer subcommands.
#[derive(Subcommand)]
pub enum TrainerCommand {
    /// Build a trainer into a component; prints its path last. A directory with a Cargo.toml is
    /// a Rust trainer (built for wasm32); one with a trainer.py is a Python trainer (built with
    /// componentize-py 0.25, which `scripts/setup.sh` installs).
    Build {
        /// The trainer's directory.
        dir: PathBuf,
    },
    /// Register a trainer with a running enclave (over RA-TLS); prints its digest, the name
    /// owners submit jobs against. The module itself never leaves the enclave again.
    Register {
        /// Connection settings (TOML; see docs/config/client.toml).
        #[arg(long)]
        connect: PathBuf,
        /// The operator's token file (created if missing); needed to release shares.
        #[arg(long)]
        token_file: PathBuf,
        /// The trainer component.
        trainer: PathBuf,
    },
    /// Train and evaluate a trainer on data you may read, through the enclave's runtime path,
    /// outside any enclave, with full logs.
    #[cfg(feature = "dev")]
    Test(super::trainer_test::TestArgs),
}

/// Runs a trainer subcommand.
pub fn run(command: TrainerCommand) -> CliResult {
    match command {
        TrainerCommand::Build { dir } => {
            let path = chiron_trainer_build::build_trainer(&dir)?;
            outln!("{}", path.display());
            Ok(())
        }
        TrainerCommand::Register {
            connect,
            token_file,
            trainer,
        } => {
            let settings = chiron_connect::Settings::load(&connect)?;
            let token = super::service::token(&token_file)?;
            let module = std::fs::read(&trainer)
                .map_err(|e| format!("cannot read {}: {e}", trainer.display()))?;
            let digest =
                super::service::block_on(super::service::register(&settings, module, &token))??;
            outln!("{digest}");
            Ok(())
        }
        #[cfg(feature = "dev")]
        TrainerCommand::Test(args) => super::trainer_test::run(&args),
    }
}
