//! `chiron-enclave`: the trusted runtime, one binary for every TEE backend.
//!
//! Inside the TEE it serves the owner's and the operator's gRPC services over RA-TLS (its
//! certificate carries evidence binding its TLS key), and talks to the untrusted host only to
//! store and fetch sealed blobs and to report fixed-format status records.
//!
//! What it guarantees (DESIGN §2, §4):
//! - a trainer module is sealed to the enclave once registered; no call returns it;
//! - a job trains in the sandbox on the owner's dataset, opened with the data key the owner
//!   sent inside the RA-TLS session; what the operator and the host see of it is fixed by the
//!   policy alone (`schedule`): checkpoints of one padded size on a fixed clock grid, in slots
//!   named by the runtime's counter, progress as the share of the budget elapsed, and one end
//!   at the declared budget with a model blob of the padded size and the phase `finished` —
//!   whether the job succeeded, and why not, only the owner learns;
//! - checkpoints are sealed with the job id and the grid tick in the associated data, so a
//!   host that serves an older one is caught; a restarted enclave resumes from the newest;
//! - the final model is sealed under a key derived from the owner's and the operator's shares:
//!   neither party alone can decrypt it; predictions run in fresh sandbox instances and leave
//!   the enclave shaped by the owner's output policy, in fixed-size replies.
//!
//! Module layout: `platform` (TEE identity, sealing key), `sealing` (AEAD for everything the
//! enclave stores), `host_link` (the host's blob and status API), `records` (sealed job and
//! module records), `schedule` (a job's clock: grid and end), `training` (a job's run),
//! `diagnostics` (the fixed stderr messages), `predict` (output shaping), `instances` (the
//! sandbox's slots and the line predictions wait in), `resources` (memory and CPU held
//! constant), `mapped_files` (the executable's pages resident from start-up), `state`
//! (modules, jobs, record writes), `service` (the gRPC services), `server` (RA-TLS listeners),
//! `distributed` (parameter-server and worker roles of distributed jobs).

#![forbid(unsafe_code)]

pub mod confined;
pub mod diagnostics;
pub mod distributed;
pub mod host_link;
pub mod instances;
pub mod mapped_files;
pub mod platform;
pub mod predict;
pub mod records;
pub mod resources;
pub mod schedule;
pub mod sealing;
pub mod server;
pub mod service;
pub mod state;
pub mod training;

/// Errors of the runtime's own plumbing (never shown to a party as text beyond a fixed code).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The TEE platform could not provide evidence or keys.
    #[error("platform: {0}")]
    Platform(String),
    /// The host could not be reached or refused a request.
    #[error("host: {0}")]
    Host(String),
    /// A sealed blob did not open (tampered, rolled back, or sealed elsewhere).
    #[error("a sealed blob did not open: {0}")]
    Unseal(&'static str),
    /// A record did not parse.
    #[error("record: {0}")]
    Record(String),
}
