//! The runtime's part of distributed training (DESIGN §6).
//!
//! The enclave the owner submits a distributed job to is the job's **parameter server**: it
//! holds the owner's grant, attests each worker enclave over mutual RA-TLS (same measurement)
//! and forwards it the trainer, the dataset key and its shard index ([`coordinator`]). A
//! **worker** opens the sealed dataset from the shared store, trains its shard in the sandbox
//! and sends every optimizer step's gradients to the server ([`worker`]); the server averages
//! them and applies the optimizer, whose state never leaves it ([`server`]).
//!
//! What the host sees of a link is fixed by the policy, not by the data: every worker sends
//! exactly `max_steps` step messages of one size per model (dummies once its trainer ended), at
//! a fixed interval if the policy sets one; checkpoints and results are padded to the job's
//! sealed blob size.

pub mod coordinator;
pub mod server;
pub mod worker;

use std::sync::Arc;

use chiron_codec::{CodecError, Reader};
use chiron_sandbox::SavedModel;
use zeroize::Zeroizing;

use crate::RuntimeError;
use crate::records::{self, MetricRecord};

/// How this enclave reaches its peers: set at start from the command line (untrusted: the
/// attestation of every link is what makes a peer trusted, not its address).
pub struct PeerSetup {
    /// Mutual RA-TLS client configuration: this enclave's certificate, and a verifier that
    /// accepts only peers of this enclave's measurement.
    pub client_tls: Arc<rustls::ClientConfig>,
    /// The workers' peer addresses: index `i` is worker `i`.
    pub workers: Vec<String>,
    /// Where workers reach this enclave's parameter-server service.
    pub advertise: String,
}

/// `values` as little-endian bytes.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian bytes as `f32`s (a trailing partial value is ignored; callers check sizes).
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A record of `what` that did not decode, naming the field but not its offset or length (the
/// lengths of a job's checkpoints and models are what their padding hides).
fn malformed(what: &str, e: &CodecError) -> RuntimeError {
    RuntimeError::Record(match e.field() {
        Some(field) => format!("malformed {what}: bad {field} field"),
        None => format!("malformed {what}: bytes after the last field"),
    })
}

/// A worker's final result: its saved model and the metrics the owner may see, one record
/// (`metrics` length u32, metrics JSON, model), padded by the caller. `None` for a model that
/// cannot be encoded ([`records::model_to_bytes`]).
pub fn encode_result(model: &SavedModel, metrics: &[MetricRecord]) -> Option<Zeroizing<Vec<u8>>> {
    let json = serde_json::to_vec(metrics).unwrap_or_default();
    let mut out = Zeroizing::new(Vec::new());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&records::model_to_bytes(model)?);
    Some(out)
}

/// Parses [`encode_result`] output.
pub fn decode_result(bytes: &[u8]) -> Result<(SavedModel, Vec<MetricRecord>), RuntimeError> {
    let bad = || RuntimeError::Record("malformed worker result".into());
    let mut r = Reader::new(bytes);
    let len = r
        .u32("metrics length")
        .map_err(|e| malformed("worker result", &e))?;
    let json = r
        .take(len as usize, "metrics")
        .map_err(|e| malformed("worker result", &e))?;
    let metrics: Vec<MetricRecord> = serde_json::from_slice(json).map_err(|_| bad())?;
    let model = records::model_from_bytes(r.take_rest())?;
    Ok((model, metrics))
}

/// What a distributed job's sealed checkpoint holds: the newest trainer checkpoint a worker
/// sent, the schedule position it was sent at, and the parameter server's state.
pub struct ServerCheckpoint {
    /// Epochs done at the trainer checkpoint.
    pub epochs_done: u32,
    /// Step messages its worker had sent: where a worker resuming from it starts its schedule.
    pub position: u64,
    /// The trainer checkpoint (unpadded), which resuming workers restore.
    pub trainer: Zeroizing<Vec<u8>>,
    /// [`chiron_engine::ParameterServer::to_bytes`] (empty before any worker joined).
    pub server: Zeroizing<Vec<u8>>,
}

impl ServerCheckpoint {
    /// Length-prefixed fields, little-endian.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(&self.epochs_done.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
        for part in [&self.trainer, &self.server] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Parses [`ServerCheckpoint::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RuntimeError> {
        let bad = |e: CodecError| malformed("server checkpoint", &e);
        let mut r = Reader::new(bytes);
        let epochs_done = r.u32("epochs done").map_err(bad)?;
        let position = r.u64("position").map_err(bad)?;
        let mut part = |field: &'static str| -> Result<Zeroizing<Vec<u8>>, RuntimeError> {
            // A length beyond `usize` cannot be in memory: `take` refuses it.
            let n = usize::try_from(r.u64(field).map_err(bad)?).unwrap_or(usize::MAX);
            Ok(Zeroizing::new(r.take(n, field).map_err(bad)?.to_vec()))
        };
        let trainer = part("trainer checkpoint")?;
        let server = part("parameter server")?;
        r.finish().map_err(bad)?;
        Ok(Self {
            epochs_done,
            position,
            trainer,
            server,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn server_checkpoints_round_trip_and_refuse_truncation() {
        let c = ServerCheckpoint {
            epochs_done: 3,
            position: 78,
            trainer: Zeroizing::new(vec![1, 2, 3]),
            server: Zeroizing::new(vec![4; 10]),
        };
        let b = c.to_bytes();
        let d = ServerCheckpoint::from_bytes(&b).unwrap();
        assert_eq!(
            (d.epochs_done, d.position, &d.trainer[..], &d.server[..]),
            (3, 78, &[1u8, 2, 3][..], &[4u8; 10][..])
        );
        assert!(ServerCheckpoint::from_bytes(&b[..b.len() - 1]).is_err());
        assert!(ServerCheckpoint::from_bytes(&[&b[..], &[0]].concat()).is_err());
    }

    #[test]
    fn worker_results_round_trip() {
        let model = SavedModel {
            tensors: vec![chiron_sandbox::NamedTensor {
                name: "w".into(),
                shape: vec![2],
                values: vec![1.5, -2.0],
            }],
        };
        let metrics = vec![MetricRecord {
            name: chiron_proto::vocab::MetricName::TestAccuracy,
            step: 9,
            value: 0.5,
        }];
        let b = encode_result(&model, &metrics).unwrap();
        let (m, ms) = decode_result(&b).unwrap();
        assert_eq!((m, ms), (model, metrics));
        assert!(decode_result(&b[..3]).is_err());
    }
}
