//! The client side of Chiron's service, for the owner's and the operator's tools.
//!
//! - [`enclave_channel`]: a gRPC channel to the enclave over RA-TLS. The handshake succeeds only
//!   if the enclave's certificate carries evidence the caller's attestation policy accepts and
//!   binds the TLS key: what the parties send (data keys, shares, tokens, inputs) reaches that
//!   enclave and nothing else, whatever the host relaying the bytes does.
//! - [`HostApi`]: the untrusted host's API (uploading sealed datasets, public status records).
//! - [`decode_predictions`]: turns a fixed-width prediction reply into values.
//! - [`Settings`]: the connection settings file (`docs/config/client.toml`).

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chiron_attest::ratls::{self, RaTlsVerifier};
use chiron_attest::{Endorsements, Policy};
use chiron_proto::enclave::PredictReply;
use chiron_proto::host::blobs_client::BlobsClient;
use chiron_proto::host::status_client::StatusClient;
use chiron_proto::host::{Ack, StatusRecord};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use tonic::transport::{Channel, Endpoint};
use zeroize::Zeroizing;

pub use chiron_proto::enclave::operator_client::OperatorClient;
pub use chiron_proto::enclave::owner_client::OwnerClient;

/// Largest message exchanged with the enclave (trainer modules, prediction batches).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Errors of the client side.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Settings or policy could not be read.
    #[error("{0}")]
    Config(String),
    /// The enclave or host could not be reached, or the enclave failed attestation.
    #[error("{0}")]
    Connect(String),
    /// A call was refused; the text is the service's fixed message.
    #[error("{0}")]
    Call(String),
}

impl From<tonic::Status> for ConnectError {
    fn from(s: tonic::Status) -> Self {
        ConnectError::Call(s.message().to_string())
    }
}

/// Connection settings (TOML).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The host API, e.g. `http://127.0.0.1:7100`.
    pub host_api: String,
    /// Where the enclave is reached (the host's relay), e.g. `127.0.0.1:7101`.
    pub enclave: String,
    /// The attestation policy the enclave must satisfy (relative to the settings file).
    pub attestation_policy: PathBuf,
}

impl Settings {
    /// Reads a settings file; a relative policy path is taken from the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConnectError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConnectError::Config(format!("cannot read {}: {e}", path.display())))?;
        let mut s: Settings = toml::from_str(&text)
            .map_err(|e| ConnectError::Config(format!("{}: {}", path.display(), e.message())))?;
        if s.attestation_policy.is_relative()
            && let Some(dir) = path.parent()
        {
            s.attestation_policy = dir.join(&s.attestation_policy);
        }
        Ok(s)
    }

    /// The verifier built from the attestation policy.
    pub fn verifier(&self) -> Result<Arc<RaTlsVerifier>, ConnectError> {
        let policy = Policy::load(&self.attestation_policy)
            .map_err(|e| ConnectError::Config(e.to_string()))?;
        Ok(Arc::new(RaTlsVerifier::new(
            policy,
            Endorsements::default(),
        )))
    }
}

/// A gRPC channel to the enclave at `addr` over RA-TLS, verified by `verifier`.
pub async fn enclave_channel(
    addr: &str,
    verifier: Arc<RaTlsVerifier>,
) -> Result<Channel, ConnectError> {
    let config =
        Arc::new(ratls::client_config(verifier).map_err(|e| ConnectError::Config(e.to_string()))?);
    chiron_proto::tls_channel(addr, config, ratls::server_name())
        .await
        .map_err(|e| {
            let mut msg = format!("cannot reach the enclave over RA-TLS: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            ConnectError::Connect(msg)
        })
}

/// The owner's client on a channel (message limits set for batches).
pub fn owner(channel: Channel) -> OwnerClient<Channel> {
    OwnerClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The operator's client on a channel (message limits set for modules).
pub fn operator(channel: Channel) -> OperatorClient<Channel> {
    OperatorClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// 32 random bytes (tokens, key shares), zeroized on drop.
pub fn random_secret() -> Result<Zeroizing<[u8; 32]>, ConnectError> {
    let mut b = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(b.as_mut())
        .map_err(|_| ConnectError::Config("random number generator failed".into()))?;
    Ok(b)
}

/// SHA-256 of a token (what the enclave stores).
pub fn token_hash(token: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token)
        .as_ref()
        .to_vec()
}

/// The untrusted host's API.
#[derive(Clone)]
pub struct HostApi {
    channel: Channel,
}

impl HostApi {
    /// Connects to the host API at `url` (`http://ADDR`).
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        let channel = Endpoint::from_shared(url.to_string())
            .map_err(|e| ConnectError::Config(format!("bad host address {url:?}: {e}")))?
            .connect()
            .await
            .map_err(|e| ConnectError::Connect(format!("cannot reach the host at {url}: {e}")))?;
        Ok(Self { channel })
    }

    /// Uploads a sealed blob (a dataset) under `name`.
    pub async fn upload(&self, name: &str, data: &[u8]) -> Result<(), ConnectError> {
        if data.is_empty() {
            return Err(ConnectError::Config(
                "refusing to upload an empty blob".into(),
            ));
        }
        let chunks = chiron_proto::blob_chunks(name, data);
        if chunks.is_empty() {
            return Err(ConnectError::Config(
                "refusing to upload an empty blob".into(),
            ));
        }
        BlobsClient::new(self.channel.clone())
            .put(tokio_stream::iter(chunks))
            .await?;
        Ok(())
    }

    /// Every job's latest status record, as the host (and so the operator) sees it.
    pub async fn status_records(&self) -> Result<Vec<StatusRecord>, ConnectError> {
        Ok(StatusClient::new(self.channel.clone())
            .list(Ack {})
            .await?
            .into_inner()
            .records)
    }
}

/// One input's prediction, as the owner's output policy shaped it.
#[derive(Clone, Debug, PartialEq)]
pub enum Prediction {
    /// The top-1 label.
    Label(u32),
    /// The k best labels, best first.
    TopK(Vec<u32>),
    /// Probabilities per class, rounded.
    Probabilities(Vec<f64>),
}

impl Prediction {
    /// The best label.
    pub fn best(&self) -> Option<u32> {
        match self {
            Prediction::Label(l) => Some(*l),
            Prediction::TopK(k) => k.first().copied(),
            Prediction::Probabilities(p) => p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                .map(|(i, _)| i as u32),
        }
    }
}

/// Decodes a reply into one [`Prediction`] per input; a reply without an answer is the error
/// its failure code names.
pub fn decode_predictions(reply: &PredictReply) -> Result<Vec<Prediction>, ConnectError> {
    if !reply.failure.is_empty() {
        let known = chiron_proto::vocab::PredictFailure::parse(&reply.failure);
        return Err(ConnectError::Call(match known {
            Some(f) => format!("no prediction: {f}"),
            None => "malformed prediction reply".into(),
        }));
    }
    let per = reply.per_input as usize;
    if per == 0 || !reply.outputs.len().is_multiple_of(per * 4) {
        return Err(ConnectError::Call("malformed prediction reply".into()));
    }
    let values: Vec<u32> = reply
        .outputs
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let scale = 10f64.powi(reply.digits.min(9) as i32);
    values
        .chunks_exact(per)
        .map(|row| match reply.kind.as_str() {
            "label" => Ok(Prediction::Label(row[0])),
            "top-k" => Ok(Prediction::TopK(row.to_vec())),
            "probabilities" => Ok(Prediction::Probabilities(
                row.iter().map(|&v| f64::from(v) / scale).collect(),
            )),
            other => Err(ConnectError::Call(format!(
                "unknown prediction kind {other:?}"
            ))),
        })
        .collect()
}

/// Encodes `count` records of f32 values for a prediction request.
pub fn encode_inputs(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
