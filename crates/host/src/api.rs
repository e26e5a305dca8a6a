//! The host API: blob storage and status records, served as plaintext gRPC to the enclave and
//! the parties. Every call is written to the transcript with the sizes the host saw.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use chiron_proto::host::blobs_server::{Blobs, BlobsServer};
use chiron_proto::host::status_server::{Status as StatusService, StatusServer};
use chiron_proto::host::{
    Ack, BlobChunk, BlobName, BlobNames, PutReply, StatusRecord, StatusRecords,
};
use chiron_proto::listen::{Admitted, Gate};
use chiron_proto::vocab::PublicPhase;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::Transcript;
use crate::metrics::Metrics;
use crate::store::BlobStore;
use crate::supervisor::Lease;

/// Bytes per streamed chunk (fixed, so chunk counts follow from blob sizes alone).
pub const CHUNK_BYTES: usize = chiron_proto::BLOB_CHUNK_BYTES;

/// Largest blob the host accepts (the whole blob is held in memory while stored).
pub const MAX_BLOB_BYTES: usize = 4 << 30;

/// Shared state of the API servers.
pub struct HostState {
    store: BlobStore,
    lease: Arc<Lease>,
    transcript: Arc<Transcript>,
    metrics: Arc<Metrics>,
    statuses: Mutex<BTreeMap<String, StatusRecord>>,
}

impl HostState {
    /// State over a store, the current enclave's lease, a transcript and counters.
    pub fn new(
        store: BlobStore,
        lease: Arc<Lease>,
        transcript: Arc<Transcript>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            lease,
            transcript,
            metrics,
            statuses: Mutex::new(BTreeMap::new()),
        }
    }

    /// Refuses a write from an enclave process of an earlier launch (see [`Lease`]).
    fn check_lease<T>(&self, request: &Request<T>, what: &str) -> Result<(), Status> {
        let presented = request
            .metadata()
            .get(chiron_proto::HOST_LEASE_HEADER)
            .map(|v| v.to_str().unwrap_or("(not text)"));
        if self.lease.admits(presented) {
            return Ok(());
        }
        self.transcript
            .log(&format!("{what} refused: not the current enclave's lease"));
        Err(Status::permission_denied(
            "not the current enclave's lease: this enclave process was replaced",
        ))
    }

    /// Jobs per phase, from the latest status record of each job.
    pub fn jobs_by_phase(&self) -> Vec<(String, u64)> {
        let statuses = self.statuses.lock().map(|s| s.clone()).unwrap_or_default();
        PublicPhase::ALL
            .iter()
            .map(|p| {
                let n = statuses.values().filter(|r| r.phase == p.as_str()).count() as u64;
                (p.as_str().to_string(), n)
            })
            .collect()
    }
}

fn store_error(e: crate::HostError) -> Status {
    Status::failed_precondition(e.to_string())
}

struct BlobsApi(Arc<HostState>);
struct StatusApi(Arc<HostState>);

type ChunkStream = Pin<Box<dyn Stream<Item = Result<BlobChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Blobs for BlobsApi {
    async fn put(
        &self,
        request: Request<Streaming<BlobChunk>>,
    ) -> Result<Response<PutReply>, Status> {
        self.0.check_lease(&request, "blob put")?;
        let mut stream = request.into_inner();
        let mut name = None;
        let mut data = Vec::new();
        let mut messages = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            messages += 1;
            if name.is_none() {
                name = Some(chunk.name);
            } else if !chunk.name.is_empty() && Some(&chunk.name) != name.as_ref() {
                return Err(Status::invalid_argument("chunks of one put name one blob"));
            }
            if data.len() + chunk.data.len() > MAX_BLOB_BYTES {
                return Err(Status::resource_exhausted(
                    "blob larger than the host accepts",
                ));
            }
            data.extend_from_slice(&chunk.data);
        }
        let name = name.ok_or_else(|| Status::invalid_argument("empty put"))?;
        let size = data.len() as u64;
        if let Err(e) = self.0.store.put(&name, data).await {
            self.0
                .transcript
                .log(&format!("blob put {name} {size} bytes failed: {e}"));
            return Err(store_error(e));
        }
        Metrics::inc(&self.0.metrics.blobs_put);
        self.0
            .metrics
            .blob_bytes_put
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        self.0.transcript.log(&format!(
            "blob put {name} {size} bytes in {messages} messages"
        ));
        Ok(Response::new(PutReply { size }))
    }

    type GetStream = ChunkStream;

    async fn get(&self, request: Request<BlobName>) -> Result<Response<ChunkStream>, Status> {
        let name = request.into_inner().name;
        let data = self.0.store.get(&name).await.map_err(|e| {
            self.0.transcript.log(&format!("blob get {name} refused"));
            Status::not_found(e.to_string())
        })?;
        Metrics::inc(&self.0.metrics.blobs_get);
        let chunks: Vec<Result<BlobChunk, Status>> = chiron_proto::blob_chunks(&name, &data)
            .into_iter()
            .map(Ok)
            .collect();
        self.0.transcript.log(&format!(
            "blob get {name} {} bytes in {} messages",
            data.len(),
            chunks.len()
        ));
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn list(&self, request: Request<BlobName>) -> Result<Response<BlobNames>, Status> {
        let prefix = request.into_inner().name;
        let names = self.0.store.list(&prefix).await.map_err(store_error)?;
        self.0
            .transcript
            .log(&format!("blob list {prefix}: {} names", names.len()));
        Ok(Response::new(BlobNames { names }))
    }
}

#[tonic::async_trait]
impl StatusService for StatusApi {
    async fn report(&self, request: Request<StatusRecord>) -> Result<Response<Ack>, Status> {
        self.0.check_lease(&request, "status report")?;
        let r = request.into_inner();
        if PublicPhase::parse(&r.phase).is_none() {
            return Err(Status::invalid_argument("unknown phase"));
        }
        Metrics::inc(&self.0.metrics.status_reports);
        self.0.transcript.log(&format!(
            "status job {} {} step {}/{}",
            r.job_id, r.phase, r.coarse_step, r.coarse_steps,
        ));
        if let Ok(mut s) = self.0.statuses.lock() {
            s.insert(r.job_id.clone(), r);
        }
        Ok(Response::new(Ack {}))
    }

    async fn list(&self, _: Request<Ack>) -> Result<Response<StatusRecords>, Status> {
        let records = self
            .0
            .statuses
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        Ok(Response::new(StatusRecords { records }))
    }
}

/// One connection to the API, holding its place at the gate while it lives.
struct GatedStream {
    stream: tokio::net::TcpStream,
    _place: tokio::sync::OwnedSemaphorePermit,
}

impl tonic::transport::server::Connected for GatedStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for GatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves the API on the connections `gate` admits until the task is aborted.
pub async fn serve(state: Arc<HostState>, gate: Gate) {
    let incoming = futures::stream::unfold(gate, |gate| async move {
        let Admitted { stream, place, .. } = gate.accept().await;
        let connection = GatedStream {
            stream,
            _place: place,
        };
        Some((Ok::<_, std::io::Error>(connection), gate))
    });
    let result = tonic::transport::Server::builder()
        .add_service(
            BlobsServer::new(BlobsApi(state.clone())).max_decoding_message_size(2 * CHUNK_BYTES),
        )
        .add_service(StatusServer::new(StatusApi(state.clone())))
        .serve_with_incoming(incoming)
        .await;
    if let Err(e) = result {
        state.transcript.log(&format!("host API stopped: {e}"));
    }
}
