//! The enclave's only channel to the untrusted host: store and fetch sealed blobs, report
//! fixed-format status records. Nothing sent here is secret (blobs are sealed, records are
//! fixed-format), so the channel needs integrity from the seals, not confidentiality.

use chiron_proto::host::blobs_client::BlobsClient;
use chiron_proto::host::status_client::StatusClient;
use std::time::Duration;

use chiron_proto::host::{BlobName, StatusRecord};
use tokio_stream::StreamExt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::RuntimeError;

/// Bytes per streamed chunk (the host uses the same size).
pub const CHUNK_BYTES: usize = chiron_proto::BLOB_CHUNK_BYTES;

/// Largest blob the enclave fetches.
pub const MAX_FETCH_BYTES: usize = 4 << 30;

/// How long a call that fails for a reason that can pass (the host restarting, its store full
/// or unreachable) is retried before the failure counts.
pub const RETRY_WINDOW: Duration = Duration::from_secs(30);

/// First pause between retries; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Whether a failed host call may succeed if tried again. Refusals of the request itself
/// (a bad name, a missing blob, a stale lease) never do.
fn transient(status: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(
        status.code(),
        Unavailable
            | FailedPrecondition
            | Internal
            | Unknown
            | DeadlineExceeded
            | ResourceExhausted
            | Aborted
            | Cancelled
    )
}

/// Retries `call` while it fails transiently, for up to [`RETRY_WINDOW`]. A lease refusal
/// means the host launched another enclave process in this one's place: this one exits at
/// once, before it can write anything more.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let give_up = tokio::time::Instant::now() + RETRY_WINDOW;
    let mut pause = FIRST_RETRY_PAUSE;
    loop {
        match call().await {
            Err(s) if s.code() == tonic::Code::PermissionDenied => {
                crate::diagnostics::report(crate::diagnostics::Event::Replaced);
                std::process::exit(0);
            }
            Err(s) if transient(&s) && tokio::time::Instant::now() + pause < give_up => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
            other => return other,
        }
    }
}

/// A connection to the host API.
#[derive(Clone)]
pub struct HostLink {
    blobs: BlobsClient<Channel>,
    status: StatusClient<Channel>,
    lease: Option<MetadataValue<Ascii>>,
}

fn host_err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Host(format!("{what}: {e}"))
}

impl HostLink {
    /// Connects to the host API at `url` (`http://ADDR`); every write presents `lease` (the
    /// one the host launched this process with: [`chiron_proto::HOST_LEASE_HEADER`]).
    pub async fn connect(url: &str, lease: Option<&str>) -> Result<Self, RuntimeError> {
        let lease = lease
            .map(|l| {
                MetadataValue::try_from(l).map_err(|_| {
                    RuntimeError::Host("the host's lease is not a header value".into())
                })
            })
            .transpose()?;
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| host_err("bad host address", e))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| host_err("cannot reach the host", e))?;
        Ok(Self {
            blobs: BlobsClient::new(channel.clone()).max_decoding_message_size(2 * CHUNK_BYTES),
            status: StatusClient::new(channel),
            lease,
        })
    }

    fn leased<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(lease) = &self.lease {
            request
                .metadata_mut()
                .insert(chiron_proto::HOST_LEASE_HEADER, lease.clone());
        }
        request
    }

    /// Stores a (sealed) blob, retrying transient failures (see [`RETRY_WINDOW`]).
    pub async fn put(&self, name: &str, data: &[u8]) -> Result<(), RuntimeError> {
        with_retries(|| {
            let chunks = chiron_proto::blob_chunks(name, data);
            let mut blobs = self.blobs.clone();
            let request = self.leased(tokio_stream::iter(chunks));
            async move { blobs.put(request).await }
        })
        .await
        .map_err(|e| host_err("storing a blob", e.message()))?;
        Ok(())
    }

    /// Fetches a blob; `Ok(None)` if the host has none of that name. Transient failures are
    /// retried (see [`RETRY_WINDOW`]).
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RuntimeError> {
        let fetched = with_retries(move || async move {
            let response = self
                .blobs
                .clone()
                .get(BlobName {
                    name: name.to_string(),
                })
                .await;
            let mut stream = match response {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
                Err(s) => return Err(s),
            };
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                if out.len() + chunk.data.len() > MAX_FETCH_BYTES {
                    return Err(tonic::Status::out_of_range(
                        "blob larger than the enclave accepts",
                    ));
                }
                out.extend_from_slice(&chunk.data);
            }
            Ok(Some(out))
        })
        .await;
        fetched.map_err(|e| host_err("fetching a blob", e.message()))
    }

    /// Names of blobs under `prefix` (transient failures retried).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, RuntimeError> {
        let listed = with_retries(|| {
            let mut blobs = self.blobs.clone();
            let request = BlobName {
                name: prefix.to_string(),
            };
            async move { blobs.list(request).await }
        })
        .await;
        Ok(listed
            .map_err(|e| host_err("listing blobs", e.message()))?
            .into_inner()
            .names)
    }

    /// Reports a job's status record (transient failures retried).
    pub async fn report(&self, record: StatusRecord) -> Result<(), RuntimeError> {
        with_retries(|| {
            let mut status = self.status.clone();
            let request = self.leased(record.clone());
            async move { status.report(request).await }
        })
        .await
        .map_err(|e| host_err("reporting status", e.message()))?;
        Ok(())
    }
}
