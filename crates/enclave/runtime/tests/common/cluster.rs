//! A distributed deployment on loopback: a server service and worker enclaves (each supervised
//! by its own in-process host, all sharing one store and one sim platform), with every link
//! between them through an observing relay that sees what the host's network sees.

use std::path::PathBuf;

use chiron_host::observe::ObservingRelay;
use chiron_host::{EnclaveCommand, Host, HostConfig};

use super::Service;

/// A free loopback port (bound and released: the enclave binds it again). Taken below the
/// kernel's ephemeral range (32768 and up), so a listener on port 0 opened meanwhile — the
/// next host's API, say — cannot be handed the same port before the enclave binds it.
pub fn free_port() -> String {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread over processes (nextest runs each test in its own) and over calls.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 500) as u16 * 24;
    loop {
        let port = 20_000 + (offset + NEXT.fetch_add(1, Ordering::Relaxed) % 12_000) % 12_000;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap().to_string();
        }
    }
}

/// A server service, its workers, and relays on every link.
pub struct Cluster {
    pub service: Service,
    pub workers: Vec<Host>,
    /// Server → worker i (assignments and results).
    pub to_workers: Vec<ObservingRelay>,
    /// Workers → server (joins, steps, checkpoints).
    pub to_server: ObservingRelay,
}

fn enclave() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chiron-enclave"))
}

/// A worker enclave's host, on `store` and the sim platform `platform_key`.
pub async fn worker_host(
    store: &std::path::Path,
    platform_key: &std::path::Path,
    peer: &str,
) -> Host {
    Host::start(HostConfig {
        api_listen: "127.0.0.1:0".into(),
        enclave_listen: "127.0.0.1:0".into(),
        metrics_listen: "127.0.0.1:0".into(),
        store: store.display().to_string(),
        enclave: EnclaveCommand {
            program: enclave(),
            args: vec![
                "--platform-key".into(),
                platform_key.display().to_string(),
                "--role".into(),
                "worker".into(),
                "--peer-listen".into(),
                peer.into(),
            ]
            .into_iter()
            .chain(super::small_enclave())
            .collect(),
        },
        echo_log: std::env::var_os("CHIRON_TEST_ECHO").is_some(),
        shared_store: true,
        transcript_entries: chiron_host::transcript::DEFAULT_ENTRIES,
    })
    .await
    .unwrap()
}

impl Cluster {
    /// `n` workers on the server's sim platform.
    pub async fn start(n: usize) -> Self {
        let work = tempfile::tempdir().unwrap();
        let key = work.path().join("platform.key");
        Self::start_with_keys(work, &vec![key; n]).await
    }

    /// Workers whose sim platform keys are `keys` (the server's is `work/platform.key`).
    pub async fn start_with_keys(work: tempfile::TempDir, keys: &[PathBuf]) -> Self {
        let store = work.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        // The server's key must exist before the workers start on it.
        chiron_attest::sim::SimPlatform::load_or_create(&work.path().join("platform.key")).unwrap();
        let mut workers = Vec::new();
        let mut to_workers = Vec::new();
        for key in keys {
            let peer = free_port();
            workers.push(worker_host(&store, key, &peer).await);
            to_workers.push(ObservingRelay::start("127.0.0.1:0", peer).await.unwrap());
        }
        let server_peer = free_port();
        let to_server = ObservingRelay::start("127.0.0.1:0", server_peer.clone())
            .await
            .unwrap();
        let worker_addrs: Vec<String> = to_workers.iter().map(|r| r.addr.clone()).collect();
        let service = Service::start_with(
            work,
            vec![
                "--peer-listen".into(),
                server_peer,
                "--peer-advertise".into(),
                to_server.addr.clone(),
                "--workers".into(),
                worker_addrs.join(","),
            ],
        )
        .await;
        Self {
            service,
            workers,
            to_workers,
            to_server,
        }
    }
}

/// A distributed job policy: the mlp recipe on `workers` shards.
pub fn distributed_policy(
    workers: u32,
    backups: u32,
    epochs: u32,
    max_steps: u64,
    interval_ms: u64,
    wall_seconds: u64,
) -> String {
    format!(
        "epochs = {epochs}\nbatch_size = 32\nseed = 42\nmax_steps = {max_steps}\n\
         wall_seconds = {wall_seconds}\nreport_steps = 10\nmemory_mib = 32\nmetrics = [\"test-accuracy\"]\n\
         [predictions]\noutput = \"label\"\nquery_budget = 100000\nrate_per_second = 1000\n\
         max_batch = 512\n\
         [distributed]\nworkers = {workers}\nbackups = {backups}\nstep_interval_ms = {interval_ms}\n"
    )
}
