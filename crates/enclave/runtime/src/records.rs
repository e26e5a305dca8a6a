//! What the enclave keeps at the host, sealed: job records, trainer modules, checkpoints and
//! models. Each has a fixed blob name pattern, its own key and associated data.
//!
//! | blob | key | associated data |
//! |---|---|---|
//! | `jobs/ID` (padded to [`JOB_RECORD_BYTES`]) | sealing key | kind, name |
//! | `modules/H` (H from the digest, keyed) | sealing key | kind, name |
//! | `checkpoints/ID` | sealing key + model key | kind, job id, version |
//! | `models/ID` | model key (owner share + operator share) | kind, job id |

use chiron_proto::vocab::{FailureCode, JobPhase, MetricName};
use chiron_sandbox::{NamedTensor, SavedModel};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use chiron_codec::Reader;

use crate::RuntimeError;
use crate::sealing::{self, Sealer, associated_data};

/// Every sealed job record has this size (plus the seal's overhead), whatever it holds.
pub const JOB_RECORD_BYTES: usize = 64 * 1024;

/// Most owner-visible metric points a job record keeps (the latest ones).
pub const MAX_RECORD_METRICS: usize = 512;

/// One metric point the owner's policy lets the owner see. Its value is always finite (the
/// sandbox refuses any other), so every record serialises and parses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    /// Which metric.
    pub name: MetricName,
    /// Step it was reported at.
    pub step: u64,
    /// Its value.
    pub value: f32,
}

/// A job, as sealed at the host. Holds keys: zeroized on drop, never logged.
#[derive(Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// Incremented at every write (the newest revision wins while the enclave runs).
    pub revision: u64,
    /// Random id (hex).
    pub job_id: String,
    /// Hex SHA-256 of the trainer module.
    pub trainer_digest: String,
    /// The sealed dataset's blob name.
    pub dataset_blob: String,
    /// The dataset's data key.
    pub data_key: [u8; 32],
    /// The owner's job policy (TOML).
    pub policy_toml: String,
    /// The owner's share of the model key.
    pub owner_share: [u8; 32],
    /// SHA-256 of the owner's token.
    pub owner_token_hash: [u8; 32],
    /// The operator's share, once released.
    pub operator_share: Option<[u8; 32]>,
    /// One record's shape (from the dataset header).
    pub record_shape: Vec<u32>,
    /// Classes of the dataset.
    pub classes: u32,
    /// The phase as the owner sees it (the operator sees only [`JobPhase::public`]).
    pub phase: JobPhase,
    /// Progress in reporting steps: the share of the wall budget elapsed, never the trainer's.
    pub coarse_step: u32,
    /// Why a `failed` job failed.
    pub failure: Option<FailureCode>,
    /// The runtime's checkpoint grid: ticks written so far (0: none). Also the checkpoint's
    /// version in its associated data, and its slot's parity.
    pub checkpoint_tick: u64,
    /// Milliseconds of the wall budget spent at the newest checkpoint (its tick × interval).
    pub budget_used_ms: u64,
    /// Prediction inputs reserved from the query budget: at least those counted so far (see
    /// `predict::QueryMeter`, which writes it a block ahead of the count).
    pub queries_used: u64,
    /// Metrics the owner may see.
    pub metrics: Vec<MetricRecord>,
}

impl Drop for JobRecord {
    fn drop(&mut self) {
        self.data_key.zeroize();
        self.owner_share.zeroize();
        if let Some(s) = self.operator_share.as_mut() {
            s.zeroize();
        }
    }
}

impl std::fmt::Debug for JobRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRecord")
            .field("job_id", &self.job_id)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// Blob name of a job record.
pub fn job_blob(job_id: &str) -> String {
    format!("jobs/{job_id}")
}

/// Blob name of a job's checkpoint.
pub fn checkpoint_blob(job_id: &str) -> String {
    format!("checkpoints/{job_id}")
}

/// Blob name of a job's checkpoint slot for grid tick `tick`: two alternating slots, so a crash
/// between writing a checkpoint and the record that points to it never loses the previous one.
/// The name follows the runtime's own counter, never the trainer's.
pub fn checkpoint_slot(job_id: &str, tick: u64) -> String {
    format!("{}/{}", checkpoint_blob(job_id), tick % 2)
}

/// Blob name of a job's model.
pub fn model_blob(job_id: &str) -> String {
    format!("models/{job_id}")
}

/// Whether `id` looks like a job id (32 lower-case hex digits).
pub fn valid_job_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Seals a job record to its fixed size.
pub fn seal_job(sealing_key: &[u8; 32], record: &JobRecord) -> Result<Vec<u8>, RuntimeError> {
    let json = Zeroizing::new(
        serde_json::to_vec(record)
            .map_err(|_| RuntimeError::Record("a job record does not serialise".into()))?,
    );
    let padded = sealing::pad(&json, JOB_RECORD_BYTES)?;
    let name = job_blob(&record.job_id);
    Sealer::new(sealing_key, b"", "chiron/v1/job-records")?
        .seal(&associated_data("job", &name, 0), &padded)
}

/// Opens a sealed job record stored as `name`.
pub fn open_job(
    sealing_key: &[u8; 32],
    name: &str,
    sealed: &[u8],
) -> Result<JobRecord, RuntimeError> {
    let padded = Sealer::new(sealing_key, b"", "chiron/v1/job-records")?
        .open(&associated_data("job", name, 0), sealed)?;
    let record: JobRecord = serde_json::from_slice(sealing::unpad(&padded)?)
        // Not the parser's message: it may quote the (secret) contents.
        .map_err(|_| RuntimeError::Record("a job record does not parse".into()))?;
    if job_blob(&record.job_id) != name {
        return Err(RuntimeError::Unseal(
            "a job record stored under another name",
        ));
    }
    Ok(record)
}

/// A registered trainer module, as sealed at the host.
#[derive(Serialize, Deserialize)]
pub struct ModuleRecord {
    /// SHA-256 of the operator's token.
    pub operator_token_hash: [u8; 32],
    /// The component's bytes.
    pub module: Vec<u8>,
}

/// Blob name of the module with `digest`: keyed, so the host cannot tell which module it holds
/// from its name.
pub fn module_blob(sealing_key: &[u8; 32], digest: &str) -> Result<String, RuntimeError> {
    let h = sealing::derive(sealing_key, digest.as_bytes(), b"chiron/v1/module-name")?;
    Ok(format!("modules/{}", chiron_codec::hex(&h[..16])))
}

fn module_sealer(sealing_key: &[u8; 32]) -> Result<Sealer, RuntimeError> {
    Sealer::new(sealing_key, b"", "chiron/v1/modules")
}

/// Seals a module record stored as `name`.
pub fn seal_module(
    sealing_key: &[u8; 32],
    name: &str,
    record: &ModuleRecord,
) -> Result<Vec<u8>, RuntimeError> {
    let mut bytes = Vec::with_capacity(32 + record.module.len());
    bytes.extend_from_slice(&record.operator_token_hash);
    bytes.extend_from_slice(&record.module);
    module_sealer(sealing_key)?.seal(&associated_data("module", name, 0), &bytes)
}

/// Opens a module record stored as `name`.
pub fn open_module(
    sealing_key: &[u8; 32],
    name: &str,
    sealed: &[u8],
) -> Result<ModuleRecord, RuntimeError> {
    let bytes = module_sealer(sealing_key)?.open(&associated_data("module", name, 0), sealed)?;
    let mut r = Reader::new(&bytes);
    let operator_token_hash = r
        .array("operator token hash")
        .map_err(|_| RuntimeError::Record("module record too short".into()))?;
    Ok(ModuleRecord {
        operator_token_hash,
        module: r.take_rest().to_vec(),
    })
}

/// Blob name of the compiled code of the module with `digest` (keyed like [`module_blob`], under
/// another label: the host cannot pair the two).
pub fn code_blob(sealing_key: &[u8; 32], digest: &str) -> Result<String, RuntimeError> {
    let h = sealing::derive(
        sealing_key,
        digest.as_bytes(),
        b"chiron/v1/module-code-name",
    )?;
    Ok(format!("modules/{}", chiron_codec::hex(&h[..16])))
}

fn code_sealer(sealing_key: &[u8; 32]) -> Result<Sealer, RuntimeError> {
    Sealer::new(sealing_key, b"", "chiron/v1/module-code")
}

/// Seals the compiled code of the module with `digest` (32 bytes), stored as `name`. The seal
/// is what makes it safe to run later: only this enclave's key makes a blob that opens.
pub fn seal_code(
    sealing_key: &[u8; 32],
    name: &str,
    digest: &[u8; 32],
    code: &[u8],
) -> Result<Vec<u8>, RuntimeError> {
    let mut bytes = Vec::with_capacity(32 + code.len());
    bytes.extend_from_slice(digest);
    bytes.extend_from_slice(code);
    code_sealer(sealing_key)?.seal(&associated_data("module-code", name, 0), &bytes)
}

/// Opens the compiled code stored as `name`; refused unless it was compiled from the module
/// with `digest`.
pub fn open_code(
    sealing_key: &[u8; 32],
    name: &str,
    digest: &[u8; 32],
    sealed: &[u8],
) -> Result<Vec<u8>, RuntimeError> {
    let bytes = code_sealer(sealing_key)?.open(&associated_data("module-code", name, 0), sealed)?;
    let mut r = Reader::new(&bytes);
    let of: [u8; 32] = r
        .array("module digest")
        .map_err(|_| RuntimeError::Record("compiled code record too short".into()))?;
    if &of != digest {
        return Err(RuntimeError::Unseal("compiled code of another module"));
    }
    Ok(r.take_rest().to_vec())
}

/// The root of a job's model key: neither share alone determines it.
pub fn model_key_root(record: &JobRecord) -> Option<Zeroizing<[u8; 64]>> {
    let operator = record.operator_share?;
    let mut root = Zeroizing::new([0u8; 64]);
    root[..32].copy_from_slice(&record.owner_share);
    root[32..].copy_from_slice(&operator);
    Some(root)
}

/// The sealer of a job's model (model key only); `Ok(None)` until the operator's share is
/// released.
pub fn model_sealer(record: &JobRecord) -> Result<Option<Sealer>, RuntimeError> {
    let Some(root) = model_key_root(record) else {
        return Ok(None);
    };
    Sealer::new(root.as_ref(), record.job_id.as_bytes(), "chiron/v1/model").map(Some)
}

/// The sealer of a job's checkpoints (the enclave's sealing key and the model key); `Ok(None)`
/// until the operator's share is released.
pub fn checkpoint_sealer(
    sealing_key: &[u8; 32],
    record: &JobRecord,
) -> Result<Option<Sealer>, RuntimeError> {
    let Some(root) = model_key_root(record) else {
        return Ok(None);
    };
    let mut ikm = Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(sealing_key);
    ikm[32..].copy_from_slice(root.as_ref());
    Sealer::new(
        ikm.as_ref(),
        record.job_id.as_bytes(),
        "chiron/v1/checkpoints",
    )
    .map(Some)
}

/// A saved model's bytes in the safetensors layout (an 8-byte header length, a JSON header of
/// names, dtypes, shapes and offsets, then the little-endian f32 data): the format standard
/// tools load, so a model handed out later needs no Chiron code to read. Tensors are stored
/// sorted by name. `None` only for a model safetensors cannot encode (duplicate names).
pub fn model_to_bytes(model: &SavedModel) -> Option<Zeroizing<Vec<u8>>> {
    // Checked here: safetensors 0.8 panics serialising two tensors of one name.
    let mut names = std::collections::HashSet::new();
    if !model.tensors.iter().all(|t| names.insert(t.name.as_str())) {
        return None;
    }
    // The little-endian bytes of each tensor, which the views below borrow.
    let data: Vec<Zeroizing<Vec<u8>>> = model
        .tensors
        .iter()
        .map(|t| Zeroizing::new(t.values.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views = model
        .tensors
        .iter()
        .zip(&data)
        .map(|(t, bytes)| {
            let shape = t.shape.iter().map(|&d| d as usize).collect();
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, bytes)
                .map(|view| (t.name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    safetensors::serialize(views, None).ok().map(Zeroizing::new)
}

/// Parses [`model_to_bytes`] output: valid safetensors, f32 tensors only, every length checked
/// (by the safetensors crate: offsets in bounds, contiguous, covering the buffer exactly).
pub fn model_from_bytes(bytes: &[u8]) -> Result<SavedModel, RuntimeError> {
    let bad = || RuntimeError::Record("malformed model".into());
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|_| bad())?;
    let mut tensors = file
        .iter()
        .map(|(name, view)| {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(bad());
            }
            let shape = view
                .shape()
                .iter()
                .map(|&d| u32::try_from(d).map_err(|_| bad()))
                .collect::<Result<Vec<_>, _>>()?;
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok(NamedTensor {
                name: name.to_string(),
                shape,
                values,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(SavedModel { tensors })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record() -> JobRecord {
        JobRecord {
            revision: 1,
            job_id: "0123456789abcdef0123456789abcdef".into(),
            trainer_digest: "ab".repeat(32),
            dataset_blob: "datasets/x".into(),
            data_key: [1; 32],
            policy_toml: "epochs = 1".into(),
            owner_share: [2; 32],
            owner_token_hash: [3; 32],
            operator_share: None,
            record_shape: vec![1, 8, 8],
            classes: 10,
            phase: JobPhase::Queued,
            coarse_step: 0,
            failure: None,
            checkpoint_tick: 0,
            budget_used_ms: 0,
            queries_used: 0,
            metrics: Vec::new(),
        }
    }

    #[test]
    fn job_records_have_one_size_and_bind_their_name() {
        let key = [9u8; 32];
        let a = record();
        let mut b = record();
        b.policy_toml = "x".repeat(5000);
        b.metrics = vec![
            MetricRecord {
                name: MetricName::TestAccuracy,
                step: 3,
                value: 0.5
            };
            20
        ];
        let sa = seal_job(&key, &a).unwrap();
        let sb = seal_job(&key, &b).unwrap();
        assert_eq!(sa.len(), sb.len());
        let name = job_blob(&a.job_id);
        assert_eq!(open_job(&key, &name, &sb).unwrap().policy_toml.len(), 5000);
        assert!(open_job(&key, "jobs/ffffffffffffffffffffffffffffffff", &sa).is_err());
        assert!(open_job(&[8u8; 32], &name, &sa).is_err());
    }

    #[test]
    fn compiled_code_opens_only_for_its_module_its_name_and_this_key() {
        let key = [9u8; 32];
        let digest = [7u8; 32];
        let hex = chiron_codec::hex(&digest);
        let name = code_blob(&key, &hex).unwrap();
        assert!(name.starts_with("modules/"));
        assert_ne!(
            name,
            module_blob(&key, &hex).unwrap(),
            "apart from the module's blob"
        );
        assert!(!name.contains(&hex), "the name does not reveal the module");
        let code = b"native code".to_vec();
        let sealed = seal_code(&key, &name, &digest, &code).unwrap();
        assert_eq!(open_code(&key, &name, &digest, &sealed).unwrap(), code);
        assert!(open_code(&key, &name, &[8u8; 32], &sealed).is_err());
        assert!(open_code(&key, "modules/00", &digest, &sealed).is_err());
        assert!(open_code(&[8u8; 32], &name, &digest, &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open_code(&key, &name, &digest, &tampered).is_err());
    }

    #[test]
    fn the_model_key_needs_both_shares() {
        let mut r = record();
        assert!(model_sealer(&r).unwrap().is_none());
        r.operator_share = Some([4; 32]);
        let sealer = |r: &JobRecord| model_sealer(r).unwrap().unwrap();
        let sealed = sealer(&r).seal(b"ad", b"model").unwrap();
        let mut other = r.clone();
        other.operator_share = Some([5; 32]);
        assert!(sealer(&other).open(b"ad", &sealed).is_err());
        let mut other = r.clone();
        other.owner_share = [6; 32];
        assert!(sealer(&other).open(b"ad", &sealed).is_err());
        assert!(sealer(&r).open(b"ad", &sealed).is_ok());
    }

    #[test]
    fn models_round_trip_as_safetensors_and_bad_bytes_are_refused() {
        let m = SavedModel {
            tensors: vec![
                NamedTensor {
                    name: "fc.weight".into(),
                    shape: vec![2, 3],
                    values: vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5],
                },
                NamedTensor {
                    name: "fc.bias".into(),
                    shape: vec![2],
                    values: vec![0.5, -0.25],
                },
            ],
        };
        let b = model_to_bytes(&m).unwrap();
        // Read back by name, sorted: the same tensors.
        let mut sorted = m.clone();
        sorted.tensors.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(model_from_bytes(&b).unwrap(), sorted);
        // The safetensors layout: a little-endian header length, then a JSON header.
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
        assert_eq!(header["fc.weight"]["dtype"], "F32");
        assert_eq!(header["fc.weight"]["shape"], serde_json::json!([2, 3]));
        assert_eq!(b.len(), 8 + n + 8 * 4);
        for cut in 0..b.len() {
            assert!(model_from_bytes(&b[..cut]).is_err());
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(model_from_bytes(&longer).is_err());
        // Two tensors of one name cannot be encoded (refused, not a panic in safetensors).
        let mut twice = m.clone();
        twice.tensors[1].name = "fc.weight".into();
        twice.tensors[1].shape = vec![2, 3];
        twice.tensors[1].values = vec![0.0; 6];
        assert!(model_to_bytes(&twice).is_none());
    }
}
