//! The server's side of a distributed job's run: it registers the job's [`JobServer`], attests
//! each worker enclave (mutual RA-TLS, same measurement) and assigns it its shard, replaces
//! workers that die, and seals the model once the workers' schedules are over.
//!
//! A worker that dies is reassigned at the same address (the launcher — `chiron cluster up` or
//! Kubernetes — restarts it there) with the newest trainer checkpoint; meanwhile a synchronous
//! job proceeds with its backups. A server that dies is restarted by its launcher, resumes the
//! job from its sealed checkpoint and reassigns every worker; the workers' earlier sessions are
//! refused.
//!
//! The job's clock ([`crate::schedule`]) runs around this as around a single-enclave run: the
//! server only offers its checkpoints (the grid writes them) and its result is sealed at the
//! end of the budget, not when the workers finish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chiron_engine::Consistency;
use chiron_proto::enclave::worker_client::WorkerClient;
use chiron_proto::enclave::{ShardAssignment, ShardResult};
use chiron_proto::job::{DistributedPolicy, JobPolicy, SyncMode};
use chiron_proto::vocab::FailureCode;
use tokio::runtime::Handle;
use zeroize::Zeroizing;

use super::server::JobServer;
use super::{PeerSetup, ServerCheckpoint, decode_result};
use crate::records::JobRecord;
use crate::schedule::Offers;
use crate::sealing;
use crate::state::Runtime;
use crate::training::{self, RunResult, fail_code};

/// How long a server waits before assigning a worker index again after its link failed.
pub const REASSIGN_AFTER: Duration = Duration::from_secs(1);

/// What the job's clock gives a distributed run: the state to resume from, where the server's
/// checkpoints are offered, and when the run must end.
pub struct Run {
    /// The state of the checkpoint the job resumes from ([`ServerCheckpoint`] bytes).
    pub resume: Option<Zeroizing<Vec<u8>>>,
    /// Where the server offers its checkpoints to the job's grid.
    pub offers: Arc<Offers>,
    /// When the run must have ended.
    pub deadline: Instant,
}

/// Runs distributed job `record` as its parameter server, on the calling (blocking) thread,
/// until the workers' results are in or `run.deadline` passes.
pub fn train(
    runtime: &Arc<Runtime>,
    handle: &Handle,
    record: &JobRecord,
    policy: &JobPolicy,
    distributed: DistributedPolicy,
    run: Run,
) -> RunResult {
    let internal = |e: crate::RuntimeError| fail_code(&e);
    let peers = runtime.peers.get().ok_or(FailureCode::Internal)?;
    let workers = distributed.workers as usize;
    if peers.workers.len() < workers {
        return Err(FailureCode::Internal);
    }
    let module = Zeroizing::new(
        handle
            .block_on(runtime.module_bytes(&record.trainer_digest))
            .map_err(internal)?
            .ok_or(FailureCode::Internal)?,
    );
    let resume = match &run.resume {
        Some(bytes) => {
            let checkpoint =
                ServerCheckpoint::from_bytes(bytes).map_err(|_| FailureCode::CheckpointRejected)?;
            let padded = sealing::pad(&checkpoint.trainer, policy.sealed_blob_bytes())
                .map_err(|_| FailureCode::CheckpointRejected)?;
            Some((checkpoint, padded))
        }
        None => None,
    };
    let consistency = match distributed.mode {
        SyncMode::Sync { backups } => Consistency::Sync {
            backups: backups as usize,
        },
        SyncMode::Async { staleness } => Consistency::Async { staleness },
    };
    let job = Arc::new(
        JobServer::new(
            record.job_id.clone(),
            policy.clone(),
            workers,
            consistency,
            resume,
            run.offers,
        )
        .map_err(|_| FailureCode::CheckpointRejected)?,
    );
    if let Ok(mut registry) = runtime.parameter_servers.lock() {
        registry.insert(record.job_id.clone(), job.clone());
    }
    let results = handle.block_on(futures::future::join_all(
        (0..workers).map(|i| drive_worker(&job, peers, i, &module, record, run.deadline)),
    ));
    job.close();
    if let Ok(mut registry) = runtime.parameter_servers.lock() {
        registry.remove(&record.job_id);
    }
    // The model of the worker that saved last (it holds the server's newest parameters). A
    // worker whose trainer failed, or that ran out of schedule after a replacement, adds none.
    let mut best: Option<(u64, usize)> = None;
    for (i, r) in results.iter().enumerate() {
        if let Some(r) = r
            && r.ok == Some(1)
        {
            let v = r.version.unwrap_or(0);
            if best.is_none_or(|(bv, _)| v > bv) {
                best = Some((v, i));
            }
        }
    }
    let (_, i) = best.ok_or(FailureCode::TrainerFailed)?;
    let payload = results[i].as_ref().ok_or(FailureCode::Internal)?;
    let bytes = sealing::unpad(&payload.payload).map_err(|_| FailureCode::Internal)?;
    let (model, metrics) = decode_result(bytes).map_err(|_| FailureCode::Internal)?;
    training::trained(policy, &model, metrics)
}

/// Keeps worker `i` assigned until it answers with its result, reassigning it after a failed
/// link; `None` once the job's wall-time budget is over.
async fn drive_worker(
    job: &JobServer,
    peers: &PeerSetup,
    i: usize,
    module: &[u8],
    record: &JobRecord,
    deadline: Instant,
) -> Option<ShardResult> {
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        let (session, start_round, resume) = job.assign(i)?;
        let assignment = ShardAssignment {
            job_id: record.job_id.clone(),
            worker: Some(i as u32),
            module: module.to_vec(),
            dataset_blob: record.dataset_blob.clone(),
            data_key: record.data_key.to_vec(),
            policy_toml: record.policy_toml.clone(),
            server: peers.advertise.clone(),
            resume,
            start_round: Some(start_round),
            session: session.to_vec(),
        };
        let attempt = async {
            let channel = chiron_proto::peer_channel(
                peers.workers.get(i)?,
                peers.client_tls.clone(),
                chiron_attest::ratls::server_name(),
            )
            .await
            .ok()?;
            WorkerClient::new(channel)
                .max_decoding_message_size(crate::server::MAX_REQUEST_BYTES)
                .max_encoding_message_size(crate::server::MAX_REQUEST_BYTES)
                .run_shard(assignment)
                .await
                .ok()
                .map(tonic::Response::into_inner)
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Some(result)) => return Some(result),
            // Unreachable, refused, or died mid-run: its launcher restarts it; assign again.
            Ok(None) => tokio::time::sleep(REASSIGN_AFTER).await,
            Err(_) => return None,
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
    }
}
