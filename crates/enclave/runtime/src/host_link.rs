//! The enclave's only channel to the untrusted host: store and fetch sealed blobs, report
//! fixed-format status records. Nothing sent here is secret (blobs are sealed, records are
//! fixed-format), so the channel needs integrity from the seals, not confidentiality.

use chiron_proto::host::blobs_client::BlobsClient;
use chiron_proto::host::status_client::StatusClient;
use chiron_proto::host::{BlobName, StatusRecord};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::RuntimeError;

/// Bytes per streamed chunk (the host uses the same size).
pub const CHUNK_BYTES: usize = chiron_proto::BLOB_CHUNK_BYTES;

/// Largest blob the enclave fetches.
pub const MAX_FETCH_BYTES: usize = 4 << 30;

/// A connection to the host API.
#[derive(Clone)]
pub struct HostLink {
    blobs: BlobsClient<Channel>,
    status: StatusClient<Channel>,
}

fn host_err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Host(format!("{what}: {e}"))
}

impl HostLink {
    /// Connects to the host API at `url` (`http://ADDR`).
    pub async fn connect(url: &str) -> Result<Self, RuntimeError> {
        let channel = Channel::from_shared(url.to_string())
            .map_err(|e| host_err("bad host address", e))?
            .connect()
            .await
            .map_err(|e| host_err("cannot reach the host", e))?;
        Ok(Self {
            blobs: BlobsClient::new(channel.clone()).max_decoding_message_size(2 * CHUNK_BYTES),
            status: StatusClient::new(channel),
        })
    }

    /// Stores a (sealed) blob.
    pub async fn put(&self, name: &str, data: &[u8]) -> Result<(), RuntimeError> {
        let chunks = chiron_proto::blob_chunks(name, data);
        self.blobs
            .clone()
            .put(tokio_stream::iter(chunks))
            .await
            .map_err(|e| host_err("storing a blob", e.message()))?;
        Ok(())
    }

    /// Fetches a blob; `Ok(None)` if the host has none of that name.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, RuntimeError> {
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
            Err(s) => return Err(host_err("fetching a blob", s.message())),
        };
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| host_err("fetching a blob", e.message()))?;
            if out.len() + chunk.data.len() > MAX_FETCH_BYTES {
                return Err(RuntimeError::Host(
                    "blob larger than the enclave accepts".into(),
                ));
            }
            out.extend_from_slice(&chunk.data);
        }
        Ok(Some(out))
    }

    /// Names of blobs under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, RuntimeError> {
        Ok(self
            .blobs
            .clone()
            .list(BlobName {
                name: prefix.to_string(),
            })
            .await
            .map_err(|e| host_err("listing blobs", e.message()))?
            .into_inner()
            .names)
    }

    /// Reports a job's status record.
    pub async fn report(&self, record: StatusRecord) -> Result<(), RuntimeError> {
        self.status
            .clone()
            .report(record)
            .await
            .map_err(|e| host_err("reporting status", e.message()))?;
        Ok(())
    }
}
