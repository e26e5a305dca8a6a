//! `chiron-enclave`: the trusted runtime daemon. Launched by `chiron-host`, which appends
//! `--host-api`; prints `listening ADDR` once it serves.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chiron_attest::ratls::RaTlsIdentity;
use chiron_enclave::host_link::HostLink;
use chiron_enclave::platform::{Platform, Tee};
use chiron_enclave::service::Services;
use chiron_enclave::state::Runtime;
use chiron_sandbox::{Sandbox, SandboxLimits};
use clap::{Parser, ValueEnum};
use zeroize::Zeroizing;

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    Sim,
    Sgx,
    Tdx,
    Snp,
}

/// The trusted runtime: RA-TLS gRPC services for owners and operators.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The TEE backend.
    #[arg(long, value_enum, default_value = "sim")]
    tee: Backend,
    /// Sim only: the platform key file (created if missing).
    #[arg(long, default_value = "sim-platform.key")]
    platform_key: PathBuf,
    /// SGX (Gramine) attestation directory, or configfs-tsm report directory (TDX, SNP).
    #[arg(long)]
    tee_root: Option<PathBuf>,
    /// Where to listen for RA-TLS connections (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The host API (added by chiron-host).
    #[arg(long)]
    host_api: String,
    /// Live-bytes budget of one training job's engine, in MiB.
    #[arg(long, default_value_t = 8192)]
    max_train_mib: u64,
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

async fn run(args: Args) -> Result<(), AnyError> {
    let root = |default: &str| {
        args.tee_root
            .clone()
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let tee = match args.tee {
        Backend::Sim => Tee::Sim {
            platform_key: args.platform_key.clone(),
        },
        Backend::Sgx => Tee::Sgx {
            root: root("/dev/attestation"),
        },
        Backend::Tdx => Tee::Tdx {
            root: root("/sys/kernel/config/tsm/report"),
        },
        Backend::Snp => Tee::Snp {
            root: root("/sys/kernel/config/tsm/report"),
        },
    };
    let platform = Platform::open(&tee)?;
    let identity = RaTlsIdentity::generate(platform.source.as_ref())?;
    let tls = identity.server_config(None)?;
    let host = HostLink::connect(&args.host_api).await?;
    let sandbox = Arc::new(Sandbox::new(SandboxLimits::default())?);
    let runtime = Arc::new(Runtime::new(
        Zeroizing::new(*platform.sealing_key()),
        host,
        sandbox,
        args.max_train_mib << 20,
    ));
    let services = Services::new(runtime.clone());
    for id in runtime.recover().await? {
        services.start_training(&id);
    }
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening {}", listener.local_addr()?);
    chiron_enclave::server::serve(services, listener, tls).await?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chiron-enclave: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chiron-enclave: {e}");
            ExitCode::FAILURE
        }
    }
}
