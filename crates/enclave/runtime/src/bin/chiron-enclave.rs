//! `chiron-enclave`: the trusted runtime daemon. Launched by `chiron-host`, which appends
//! `--host-api`; prints `listening ADDR` once it serves.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chiron_attest::Endorsements;
use chiron_attest::ratls::RaTlsIdentity;
use chiron_enclave::distributed::PeerSetup;
use chiron_enclave::host_link::HostLink;
use chiron_enclave::platform::{Platform, Tee};
use chiron_enclave::resources::Resources;
use chiron_enclave::service::Services;
use chiron_enclave::state::Runtime;
use chiron_sandbox::{Sandbox, SandboxLimits};
use clap::{Parser, ValueEnum};
use zeroize::Zeroizing;

/// What this instance serves.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Owners and operators (RA-TLS on --listen); the parameter server of its distributed jobs.
    Service,
    /// Only enclave peers: trains the shards servers assign to it.
    Worker,
}

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
    /// Read the host's lease from the first line of standard input, present it on every
    /// write to the host, and exit when standard input closes (added by chiron-host, whose
    /// end, however it ends, closes that pipe: the enclave never outlives its host).
    #[arg(long)]
    lease_stdin: bool,
    /// Largest engine budget a job's policy may declare (`memory_mib`), in MiB.
    #[arg(long, default_value_t = 8192)]
    max_train_mib: u64,
    /// The enclave's heap, in MiB: touched at start-up so it stays resident, whatever trainers
    /// do; running jobs reserve their `memory_mib` (and a margin) from it, less the runtime's
    /// own 256 MiB, and a job that does not fit fails when it starts.
    #[arg(long, default_value_t = 2048)]
    memory_mib: u64,
    /// Linear memory of one trainer instance, in MiB (kept resident for all instance slots).
    #[arg(long, default_value_t = 128)]
    guest_memory_mib: usize,
    /// Trainer instances that may run at once (training jobs and predictions).
    #[arg(long, default_value_t = 8)]
    instances: u32,
    /// What this instance serves.
    #[arg(long, value_enum, default_value = "service")]
    role: Role,
    /// Where to listen for enclave peers (mutual RA-TLS, same measurement only): the
    /// parameter-server and worker services of distributed jobs. Required for --role worker
    /// and for a service with --workers.
    #[arg(long)]
    peer_listen: Option<String>,
    /// The address workers dial to reach this enclave's parameter server (default: the bound
    /// --peer-listen address).
    #[arg(long)]
    peer_advertise: Option<String>,
    /// The worker enclaves' peer addresses, in order (worker i is the i-th), comma-separated.
    #[arg(long, value_delimiter = ',')]
    workers: Vec<String>,
    /// Hardware backends: the attestation policy for peers (TOML). Its measurements are
    /// replaced by this enclave's own: a peer must run this build. Sim accepts this
    /// measurement on this sim platform.
    #[arg(long)]
    peer_policy: Option<PathBuf>,
    /// SGX/TDX peers: DCAP collateral (JSON, as a PCCS serves it) to verify their quotes.
    #[arg(long)]
    peer_collateral: Option<PathBuf>,
    /// SEV-SNP peers: a directory with the ARK, ASK and VCEK certificates.
    #[arg(long)]
    peer_certs: Option<PathBuf>,
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The lease on standard input's first line; then a thread that ends the process when the
/// host closes the pipe.
fn take_lease_and_watch_stdin() -> Result<String, AnyError> {
    use std::io::{BufRead, Read};
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    let lease = line.trim().to_string();
    if lease.is_empty() {
        return Err("--lease-stdin: standard input closed before the host's lease".into());
    }
    drop(stdin);
    std::thread::Builder::new()
        .name("chiron-host-watch".into())
        .spawn(|| {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            // Nothing more is expected; whatever comes is read and ignored until end-of-file
            // or an error, either of which means the host is gone.
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            chiron_enclave::diagnostics::report(chiron_enclave::diagnostics::Event::HostGone);
            std::process::exit(0);
        })?;
    Ok(lease)
}

async fn run(args: Args) -> Result<(), AnyError> {
    // Before anything slow: an enclave whose host is already gone must not start.
    let lease = if args.lease_stdin {
        Some(take_lease_and_watch_stdin()?)
    } else {
        None
    };
    // First: refuse to run with malloc settings that would let trainers' memory show, and
    // touch the heap every later allocation comes from.
    let resources = Arc::new(Resources::start(args.memory_mib << 20)?);
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
    let host = HostLink::connect(&args.host_api, lease.as_deref()).await?;
    let sandbox = Arc::new(Sandbox::new(SandboxLimits {
        max_memory_bytes: args.guest_memory_mib << 20,
        max_instances: args.instances,
        resident_memory: true,
        // The compiler's memory stays out of this process (one arena, never trimmed).
        compile_child: Some(PathBuf::from(chiron_sandbox::compile_child::OWN_EXECUTABLE)),
        ..SandboxLimits::default()
    })?);
    let runtime = Arc::new(Runtime::new(
        Zeroizing::new(*platform.sealing_key()),
        host,
        sandbox,
        args.max_train_mib << 20,
        resources,
    ));
    if args.role == Role::Worker && args.peer_listen.is_none() {
        return Err("--role worker needs --peer-listen".into());
    }
    if !args.workers.is_empty() && args.peer_listen.is_none() {
        return Err("--workers needs --peer-listen (where the workers reach this server)".into());
    }
    let peers = match &args.peer_listen {
        Some(addr) => {
            let endorsements = Endorsements {
                dcap: match &args.peer_collateral {
                    Some(p) => Some(chiron_attest::dcap::Collateral::from_json(&std::fs::read(
                        p,
                    )?)?),
                    None => None,
                },
                snp: match &args.peer_certs {
                    Some(dir) => Some(chiron_attest::snp::SnpCertificates::from_dir(dir)?),
                    None => None,
                },
            };
            let verifier =
                Arc::new(platform.peer_verifier(args.peer_policy.as_deref(), endorsements)?);
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let bound = listener.local_addr()?.to_string();
            runtime
                .peers
                .set(PeerSetup {
                    client_tls: Arc::new(identity.client_config(verifier.clone())?),
                    workers: args.workers.clone(),
                    advertise: args.peer_advertise.clone().unwrap_or(bound.clone()),
                })
                .map_err(|_| "peer setup twice")?;
            println!("peers {bound}");
            Some((listener, identity.server_config(Some(verifier))?))
        }
        None => None,
    };
    if args.role == Role::Worker {
        // A worker keeps no jobs of its own: its servers reassign it after any restart.
        let Some((listener, peer_tls)) = peers else {
            return Err("--role worker needs --peer-listen".into());
        };
        println!("listening {}", listener.local_addr()?);
        chiron_enclave::server::serve_peers(runtime, true, listener, peer_tls).await;
        return Ok(());
    }
    let services = Services::new(runtime.clone());
    for id in runtime.recover().await? {
        services.start_training(&id);
    }
    if let Some((listener, peer_tls)) = peers {
        let rt = runtime.clone();
        tokio::spawn(chiron_enclave::server::serve_peers(
            rt, false, listener, peer_tls,
        ));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening {}", listener.local_addr()?);
    chiron_enclave::server::serve(services, listener, tls).await;
    Ok(())
}

fn main() -> ExitCode {
    // A compile child of this process (see `chiron_sandbox::compile_child`), before anything
    // else starts: it only compiles one component and exits.
    if chiron_sandbox::compile_child::requested() {
        return chiron_sandbox::compile_child::serve();
    }
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
