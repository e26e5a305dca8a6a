//! A distributed deployment on loopback: a server service and worker enclaves (each supervised
//! by its own in-process host, all sharing one store and one sim platform), with every link
//! between them through a counting relay that sees what the host's network sees: TLS records.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chiron_host::{EnclaveCommand, Host, HostConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::Service;

/// What an observer of one TCP connection learns that could depend on what it carries, per
/// direction: the bytes of TLS content (record lengths less the AEAD overhead) and the number
/// of records carrying at least [`MESSAGE_RECORD`] bytes (message data, not control frames).
///
/// Left out on purpose, as they follow thread scheduling and say nothing about the data: how
/// HTTP/2's few control frames at a connection's start (SETTINGS, their ACKs, the window
/// announcement) fall into TLS records — the same frames, coalesced or not — and records of
/// exactly [`MANAGEMENT_RECORD`] content bytes, a lone GOAWAY or PING frame, which a peer
/// answering a connection's close sends or not depending on which it noticed first.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Observed {
    pub up_content: u64,
    pub up_messages: u64,
    pub down_content: u64,
    pub down_messages: u64,
    /// Raw bytes and all records (for the report; not compared).
    pub raw: (u64, u64, u64, u64),
}

/// A record this large carries message data.
pub const MESSAGE_RECORD: usize = 512;

/// Content bytes of a record holding one GOAWAY or PING frame (9 + 8).
pub const MANAGEMENT_RECORD: usize = 17;

/// AEAD tag and inner content type of a TLS 1.3 record.
const RECORD_OVERHEAD: usize = 17;

/// Counts TLS records in one direction of a stream (5-byte headers, then the body).
#[derive(Default)]
struct RecordCounter {
    header: Vec<u8>,
    skip: usize,
    records: u64,
    content: u64,
    messages: u64,
}

impl RecordCounter {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let need = 5 - self.header.len();
            let n = need.min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == 5 {
                let len = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                // Type 23: encrypted (application data or, in TLS 1.3, handshake).
                let content = if self.header[0] == 23 {
                    len.saturating_sub(RECORD_OVERHEAD)
                } else {
                    len
                };
                self.skip = len;
                self.records += 1;
                if self.header[0] != 23 || content != MANAGEMENT_RECORD {
                    self.content += content as u64;
                }
                if content >= MESSAGE_RECORD {
                    self.messages += 1;
                }
                self.header.clear();
            }
        }
    }
}

/// A relay from a local port to `upstream`, recording every connection's [`Observed`].
pub struct CountingRelay {
    pub addr: String,
    pub connections: Arc<Mutex<Vec<Arc<Mutex<Observed>>>>>,
}

impl CountingRelay {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections: Arc<Mutex<Vec<Arc<Mutex<Observed>>>>> = Arc::default();
        let conns = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let observed = Arc::new(Mutex::new(Observed::default()));
                conns.lock().unwrap().push(observed.clone());
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, observed.clone(), true));
                tokio::spawn(pump(sr, cw, observed, false));
            }
        });
        Self { addr, connections }
    }

    /// Every connection's observation so far, sorted: connections are told apart by what they
    /// carry, not by when they were opened.
    pub fn observed(&self) -> Vec<Observed> {
        let mut v: Vec<Observed> = self
            .connections
            .lock()
            .unwrap()
            .iter()
            .map(|o| o.lock().unwrap().clone())
            .collect();
        v.sort();
        v
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    observed: Arc<Mutex<Observed>>,
    up: bool,
) {
    let mut counter = RecordCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        counter.feed(&buf[..n]);
        {
            let mut o = observed.lock().unwrap();
            if up {
                o.up_content = counter.content;
                o.up_messages = counter.messages;
                o.raw.0 += n as u64;
                o.raw.1 = counter.records;
            } else {
                o.down_content = counter.content;
                o.down_messages = counter.messages;
                o.raw.2 += n as u64;
                o.raw.3 = counter.records;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A free loopback port (bound and released: the enclave binds it again).
pub fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A server service, its workers, and relays on every link.
pub struct Cluster {
    pub service: Service,
    pub workers: Vec<Host>,
    /// Server → worker i (assignments and results).
    pub to_workers: Vec<CountingRelay>,
    /// Workers → server (joins, steps, checkpoints).
    pub to_server: CountingRelay,
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
            ],
        },
        echo_log: std::env::var_os("CHIRON_TEST_ECHO").is_some(),
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
            to_workers.push(CountingRelay::start(peer).await);
        }
        let server_peer = free_port();
        let to_server = CountingRelay::start(server_peer.clone()).await;
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
         wall_seconds = {wall_seconds}\nreport_steps = 10\nmetrics = [\"test-accuracy\"]\n\
         [predictions]\noutput = \"label\"\nquery_budget = 100000\nrate_per_second = 1000\n\
         max_batch = 512\n\
         [distributed]\nworkers = {workers}\nbackups = {backups}\nstep_interval_ms = {interval_ms}\n"
    )
}
