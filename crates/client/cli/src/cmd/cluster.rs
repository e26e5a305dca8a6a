//! `chiron cluster up --workers N`: a distributed deployment on loopback, for development,
//! tests and benchmarks — the same roles Kubernetes runs from deploy/kubernetes/, as processes.
//!
//! One service enclave (owners and operators connect to it; it is the parameter server of
//! distributed jobs) and N worker enclaves, each the real `chiron-enclave` (sim TEE) under its
//! own host, which restarts it if it dies. All share one blob store and one sim platform under
//! `--dir`, where `client.toml` tells the `chiron job` and `chiron trainer` commands how to
//! connect. With `--observe`, every peer link passes an observing relay and what the network
//! could see of each — bytes, TLS records, message timing — is written to `DIR/links.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chiron_host::observe::{Connection, Direction, ObservingRelay};
use chiron_host::{EnclaveCommand, Host, HostConfig};
use clap::{Args, Subcommand};
use serde_json::json;

use super::CliResult;
use super::demo::{SIM_POLICY, enclave_program};
use crate::ui::outln;

/// `chiron cluster` subcommands.
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Start a service enclave and N worker enclaves (sim TEE) on loopback; runs until Ctrl-C.
    Up(UpArgs),
}

/// Arguments of `chiron cluster up`.
#[derive(Args)]
pub struct UpArgs {
    /// Worker enclaves.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Directory of the shared blob store, the sim platform key and client.toml (created if
    /// missing; a restarted cluster finds its jobs there).
    #[arg(long, default_value = "chiron-cluster")]
    dir: PathBuf,
    /// The service's host API (owners upload sealed datasets here).
    #[arg(long, default_value = "127.0.0.1:7100")]
    api_listen: String,
    /// Where owners and operators reach the service enclave (relayed RA-TLS).
    #[arg(long, default_value = "127.0.0.1:7101")]
    enclave_listen: String,
    /// Pass every peer link through an observing relay and write DIR/links.json every second.
    #[arg(long)]
    observe: bool,
    /// Print the hosts' transcripts (blob and status traffic) as they happen.
    #[arg(long)]
    verbose: bool,
}

/// Runs a `chiron cluster` subcommand.
pub fn run(command: ClusterCommand) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        ClusterCommand::Up(args) => runtime.block_on(up(&args)),
    }
}

/// A free loopback address (bound and released; the enclave binds it again).
fn free_loopback() -> CliResult<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

/// A host supervising one enclave with `args`.
async fn host(
    store: &Path,
    platform_key: &Path,
    args: Vec<String>,
    api: &str,
    relay: &str,
    verbose: bool,
) -> CliResult<Host> {
    let mut all = vec![
        "--tee".to_string(),
        "sim".into(),
        "--platform-key".into(),
        platform_key.display().to_string(),
    ];
    // Every enclave's memory is resident from its start (heap and instance slots): keep one
    // machine's cluster within its memory (two jobs of `memory_mib = 256` per enclave).
    all.extend(CLUSTER_ENCLAVE_MEMORY.map(String::from));
    // Workers keep no jobs and only read datasets: they share the server's store.
    let worker = args
        .windows(2)
        .any(|a| a[0] == "--role" && a[1] == "worker");
    all.extend(args);
    Ok(Host::start(HostConfig {
        api_listen: api.into(),
        enclave_listen: relay.into(),
        metrics_listen: "127.0.0.1:0".into(),
        store: store.display().to_string(),
        enclave: EnclaveCommand {
            program: enclave_program()?,
            args: all,
        },
        echo_log: verbose,
        shared_store: worker,
        transcript_entries: chiron_host::transcript::DEFAULT_ENTRIES,
    })
    .await?)
}

/// Memory flags of each enclave of a one-machine cluster.
const CLUSTER_ENCLAVE_MEMORY: [&str; 6] = [
    "--memory-mib",
    "1024",
    "--guest-memory-mib",
    "64",
    "--instances",
    "4",
];

/// Starts the cluster and serves until Ctrl-C.
async fn up(args: &UpArgs) -> CliResult {
    if args.workers == 0 || args.workers > chiron_proto::job::MAX_WORKERS {
        return Err(format!("--workers must be 1..={}", chiron_proto::job::MAX_WORKERS).into());
    }
    let dir = &args.dir;
    let store = dir.join("store");
    std::fs::create_dir_all(&store)?;
    let dir = std::fs::canonicalize(dir)?;
    let store = dir.join("store");
    let platform_key = dir.join("sim-platform.key");
    // Every instance must share the platform before the first starts: sim peers accept only
    // this measurement on this platform.
    chiron_attest::sim::SimPlatform::load_or_create(&platform_key)?;
    eprintln!("{}", chiron_attest::sim::WARNING);

    let mut workers = Vec::new();
    let mut worker_addrs = Vec::new();
    let mut relays: Vec<(String, ObservingRelay)> = Vec::new();
    for i in 0..args.workers {
        let peer = free_loopback()?;
        let worker_args = vec![
            "--role".into(),
            "worker".into(),
            "--peer-listen".into(),
            peer.clone(),
        ];
        workers.push(
            host(
                &store,
                &platform_key,
                worker_args,
                "127.0.0.1:0",
                "127.0.0.1:0",
                args.verbose,
            )
            .await?,
        );
        if args.observe {
            let relay = ObservingRelay::start("127.0.0.1:0", peer).await?;
            worker_addrs.push(relay.addr.clone());
            relays.push((format!("server→worker-{i}"), relay));
        } else {
            worker_addrs.push(peer);
        }
    }
    let server_peer = free_loopback()?;
    let advertise = if args.observe {
        let relay = ObservingRelay::start("127.0.0.1:0", server_peer.clone()).await?;
        let addr = relay.addr.clone();
        relays.push(("workers→server".into(), relay));
        addr
    } else {
        server_peer.clone()
    };
    let server = host(
        &store,
        &platform_key,
        vec![
            "--peer-listen".into(),
            server_peer,
            "--peer-advertise".into(),
            advertise,
            "--workers".into(),
            worker_addrs.join(","),
        ],
        &args.api_listen,
        &args.enclave_listen,
        args.verbose,
    )
    .await?;

    let policy_path = dir.join("development-sim.toml");
    std::fs::write(&policy_path, SIM_POLICY)?;
    let client = dir.join("client.toml");
    std::fs::write(
        &client,
        format!(
            "# Written by `chiron cluster up`: the service of this loopback cluster.\n\
             host_api = \"http://{}\"\nenclave = \"{}\"\nattestation_policy = \"{}\"\n",
            server.api_addr,
            server.enclave_addr,
            policy_path.display()
        ),
    )?;
    outln!(
        "cluster up: 1 service enclave (parameter server) and {} worker enclaves, sim TEE",
        args.workers
    );
    outln!(
        "  host API {}   enclave {}",
        server.api_addr,
        server.enclave_addr
    );
    outln!("  connect with --connect {}", client.display());
    outln!(
        "  a job runs distributed when its policy has [distributed] workers = 1..={}",
        args.workers
    );
    if args.observe {
        outln!(
            "  peer links observed: {}",
            dir.join("links.json").display()
        );
    }
    outln!("  Ctrl-C stops the cluster");

    let links = dir.join("links.json");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                if args.observe {
                    write_links(&links, &relays)?;
                }
            }
        }
    }
    if args.observe {
        write_links(&links, &relays)?;
    }
    server.shutdown().await;
    for w in workers {
        w.shutdown().await;
    }
    Ok(())
}

fn direction_json(d: &Direction) -> serde_json::Value {
    let span = match (d.first_message, d.last_message) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let mut common: Vec<(u64, u64)> = d.segments.iter().map(|(s, c)| (*s, *c)).collect();
    common.sort_by_key(|(s, c)| std::cmp::Reverse((*c, *s)));
    common.truncate(4);
    json!({
        "bytes": d.bytes,
        "records": d.records,
        "content": d.content,
        "message_records": d.message_records,
        "message_span_s": span,
        // The most frequent segment sizes (one request or reply each), with their counts.
        "common_segments": common.iter().map(|(s, c)| json!({"bytes": s, "count": c})).collect::<Vec<_>>(),
    })
}

fn connection_json(c: &Connection) -> serde_json::Value {
    json!({ "up": direction_json(&c.up), "down": direction_json(&c.down) })
}

/// Writes every observed link (atomically: a reader never sees half a file).
fn write_links(path: &Path, relays: &[(String, ObservingRelay)]) -> CliResult {
    let links: Vec<serde_json::Value> = relays
        .iter()
        .map(|(name, r)| {
            json!({
                "link": name,
                "connections": r.connections().iter().map(connection_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&json!({ "links": links }))?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
