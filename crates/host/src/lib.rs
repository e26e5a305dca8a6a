//! `chiron-host`: the untrusted half of a Chiron deployment.
//!
//! The host runs outside the TEE and is trusted with nothing: it stores blobs that are already
//! sealed (datasets, trainer modules, job records, checkpoints, models), launches and restarts
//! the enclave process, relays the parties' TCP connections to it (the bytes are RA-TLS, end to
//! end between party and enclave), and publishes what it can see anyway — fixed-format status
//! records and Prometheus metrics, none derived from data, weights or losses.
//!
//! Everything the host observes is appended to its [`Transcript`]: the operator-visible record
//! of a run (blob names and sizes, host↔enclave messages and their sizes, status records, log
//! lines). The confinement tests compare transcripts of runs on different data byte for byte.
//!
//! Depends only on `crates/common` (never on enclave code).

#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod metrics;
pub mod observe;
pub mod relay;
pub mod store;
pub mod supervisor;
pub mod transcript;

use std::net::SocketAddr;
use std::sync::Arc;

use chiron_proto::listen::{DEFAULT_CONNECTION_LIMIT, Gate};

pub use config::{EnclaveCommand, HostConfig};
pub use transcript::Transcript;

/// Errors of the host daemon (configuration, storage, sockets, the enclave process).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A blob name or blob operation was refused.
    #[error("blob store: {0}")]
    Store(String),
    /// A socket could not be bound or served.
    #[error("network: {0}")]
    Net(String),
    /// The enclave process could not be started.
    #[error("enclave process: {0}")]
    Enclave(String),
}

/// A running host: its addresses, transcript and enclave supervisor. Dropping it stops the
/// servers and kills the enclave.
pub struct Host {
    /// The host API (blobs, status), plaintext gRPC.
    pub api_addr: SocketAddr,
    /// Where parties connect to reach the enclave (relayed TCP).
    pub enclave_addr: SocketAddr,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics_addr: SocketAddr,
    transcript: Arc<Transcript>,
    supervisor: Arc<supervisor::Supervisor>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _claim: Option<store::StoreClaim>,
}

impl Host {
    /// Binds every socket, starts the servers and launches the enclave; returns once the
    /// enclave listens.
    pub async fn start(config: HostConfig) -> Result<Self, HostError> {
        let transcript = Arc::new(Transcript::with_capacity(
            config.echo_log,
            config.transcript_entries,
        ));
        let metrics = Arc::new(metrics::Metrics::default());
        // First, before anything listens or launches: one host per store.
        let claim = if config.shared_store {
            None
        } else {
            store::BlobStore::claim(&config.store)?
        };
        let store = store::BlobStore::open(&config.store)?;
        let lease = Arc::new(supervisor::Lease::default());

        let api_listener = tokio::net::TcpListener::bind(&config.api_listen)
            .await
            .map_err(|e| HostError::Net(format!("cannot bind {}: {e}", config.api_listen)))?;
        let api_addr = local_addr(&api_listener)?;
        let relay_listener = tokio::net::TcpListener::bind(&config.enclave_listen)
            .await
            .map_err(|e| HostError::Net(format!("cannot bind {}: {e}", config.enclave_listen)))?;
        let enclave_addr = local_addr(&relay_listener)?;
        let metrics_listener = tokio::net::TcpListener::bind(&config.metrics_listen)
            .await
            .map_err(|e| HostError::Net(format!("cannot bind {}: {e}", config.metrics_listen)))?;
        let metrics_addr = local_addr(&metrics_listener)?;

        let state = Arc::new(api::HostState::new(
            store,
            lease.clone(),
            transcript.clone(),
            metrics.clone(),
        ));
        let mut tasks = vec![
            tokio::spawn(api::serve(
                state.clone(),
                Gate::new(api_listener, DEFAULT_CONNECTION_LIMIT),
            )),
            tokio::spawn(metrics::serve(
                metrics.clone(),
                state.clone(),
                metrics_listener,
            )),
        ];
        let supervisor = Arc::new(supervisor::Supervisor::new(
            config.enclave.clone(),
            api_addr,
            lease,
            transcript.clone(),
            metrics.clone(),
        ));
        tasks.push(tokio::spawn(relay::serve(
            Gate::new(relay_listener, DEFAULT_CONNECTION_LIMIT),
            supervisor.clone(),
            metrics.clone(),
        )));
        if let Err(e) = supervisor.clone().start().await {
            // Nothing may keep serving for a host that did not start.
            for t in &tasks {
                t.abort();
            }
            return Err(e);
        }
        transcript.log(&format!(
            "host listening: api {api_addr}, enclave relay {enclave_addr}, metrics {metrics_addr}"
        ));
        Ok(Self {
            api_addr,
            enclave_addr,
            metrics_addr,
            transcript,
            supervisor,
            tasks,
            _claim: claim,
        })
    }

    /// The operator-visible transcript so far.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// The enclave process id (for tests that kill it or read its `/proc` entries).
    pub fn enclave_pid(&self) -> Option<u32> {
        self.supervisor.pid()
    }

    /// Kills the enclave process (SIGKILL), as a crash would; the supervisor restarts it.
    pub fn kill_enclave(&self) {
        self.supervisor.kill_enclave();
    }

    /// How many times the enclave was restarted after exiting.
    pub fn enclave_restarts(&self) -> u64 {
        self.supervisor.restarts()
    }

    /// Stops the servers and the enclave.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        self.supervisor.stop().await;
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.supervisor.kill_now();
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

fn local_addr(l: &tokio::net::TcpListener) -> Result<SocketAddr, HostError> {
    l.local_addr()
        .map_err(|e| HostError::Net(format!("no local address: {e}")))
}
