//! `chiron-host --config host.toml`: runs the untrusted host daemon until interrupted.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use chiron_host::{Host, HostConfig};
use clap::Parser;

/// The untrusted host daemon: blob store, enclave supervisor, relay, status and metrics.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML; see docs/config/host.toml).
    #[arg(long)]
    config: PathBuf,
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The host's log on standard error, `info` and above unless `RUST_LOG` says otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let run = async {
        let mut config = HostConfig::load(&args.config)?;
        config.echo_log = true;
        let host = Host::start(config).await?;
        println!("api {}", host.api_addr);
        println!("enclave {}", host.enclave_addr);
        println!("metrics {}", host.metrics_addr);
        // SIGINT or SIGTERM: stop the enclave first (a SIGKILL of this process is covered too:
        // the enclave exits when its standard input, a pipe from here, closes).
        wait_for_stop_signal().await;
        host.shutdown().await;
        Ok::<(), chiron_host::HostError>(())
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "chiron_host", "{e}");
            ExitCode::FAILURE
        }
    }
}
