//! One job's training run: dataset unsealed into enclave memory, trainer in the sandbox, sealed
//! checkpoints at every epoch the trainer offers, the final model sealed under the two-share
//! model key. Runs on a blocking thread; talks to the host through the async runtime's handle.
//!
//! What leaves, and when, is fixed by the job policy, not by the trainer: progress only as
//! `step k of report_steps` (epochs done of epochs declared) at checkpoints; a trainer's failure
//! only as the one code [`TRAINER_FAILED`], reported at the end of the declared wall-time budget
//! at the last reporting step, however early and however it happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chiron_engine::{Engine, EngineConfig, SealedRecords};
use chiron_proto::job::JobPolicy;
use chiron_sandbox::{
    CheckpointSink, CheckpointSinkError, Checkpointing, MetricPoint, TrainCheckpoint, TrainConfig,
    run_train_with,
};
use chiron_seal::{DataKey, SealedDataset};
use tokio::runtime::Handle;
use zeroize::Zeroizing;

use crate::records::{self, JobRecord, MAX_RECORD_METRICS, MetricRecord};
use crate::sealing::{self, associated_data};
use crate::state::Runtime;

/// The name of a metric on the wire and in policies.
pub fn metric_name(m: chiron_sandbox::Metric) -> &'static str {
    use chiron_sandbox::Metric::*;
    match m {
        TrainLoss => "train-loss",
        TrainAccuracy => "train-accuracy",
        TestLoss => "test-loss",
        TestAccuracy => "test-accuracy",
        LearningRate => "learning-rate",
    }
}

/// The metrics the owner's policy lets it see, the latest [`MAX_RECORD_METRICS`].
pub fn owner_metrics(policy: &JobPolicy, points: &[MetricPoint]) -> Vec<MetricRecord> {
    let allowed: Vec<MetricRecord> = points
        .iter()
        .filter(|p| policy.metrics.iter().any(|m| m == metric_name(p.metric)))
        .map(|p| MetricRecord {
            name: metric_name(p.metric).to_string(),
            step: p.step,
            value: p.value,
        })
        .collect();
    let skip = allowed.len().saturating_sub(MAX_RECORD_METRICS);
    allowed.into_iter().skip(skip).collect()
}

/// Epochs done as a reporting step `0..report_steps` (the last one is reserved for the end).
/// Progress counts declared epochs, not steps, so it does not depend on how a trainer batches.
pub fn coarse(epochs_done: u32, epochs: u32, report_steps: u32) -> u32 {
    let k = u64::from(epochs_done) * u64::from(report_steps) / u64::from(epochs.max(1));
    u32::try_from(k)
        .unwrap_or(u32::MAX)
        .min(report_steps.saturating_sub(1))
}

/// Blob name of a checkpoint version: two alternating slots, so a crash between writing a
/// checkpoint and the record that points to it never loses the previous one.
pub fn checkpoint_slot(job_id: &str, version: u32) -> String {
    format!("{}/{}", records::checkpoint_blob(job_id), version % 2)
}

/// Why a checkpoint was not stored.
#[derive(Debug)]
pub enum StoreError {
    /// It did not fit the policy's sealed blob size (the trainer's doing).
    Oversized,
    /// The runtime's own failure (host unreachable, ...).
    Runtime(crate::RuntimeError),
}

/// Seals `payload` (padded to the policy's blob size) as job `job_id`'s checkpoint `version`,
/// then points the job record at it, with the progress and owner metrics of that moment.
pub async fn store_checkpoint(
    runtime: &Runtime,
    job_id: &str,
    policy: &JobPolicy,
    version: u32,
    payload: &[u8],
    metrics: &[MetricPoint],
    train_seconds_used: f64,
) -> Result<(), StoreError> {
    let record = runtime
        .jobs
        .lock()
        .ok()
        .and_then(|j| j.get(job_id).map(|j| j.record.clone()))
        .ok_or(StoreError::Runtime(crate::RuntimeError::Record(
            "no such job".into(),
        )))?;
    let sealer = records::checkpoint_sealer(runtime.sealing_key(), &record).ok_or(
        StoreError::Runtime(crate::RuntimeError::Record("no model key".into())),
    )?;
    // Fixed size: the host must not learn the model's size or how much the trainer reported.
    let padded =
        sealing::pad(payload, policy.sealed_blob_bytes()).map_err(|_| StoreError::Oversized)?;
    let ad = associated_data("checkpoint", job_id, u64::from(version));
    let sealed = sealer.seal(&ad, &padded).map_err(StoreError::Runtime)?;
    let coarse_step = coarse(version, policy.epochs, policy.report_steps);
    let metrics = owner_metrics(policy, metrics);
    runtime
        .host
        .put(&checkpoint_slot(job_id, version), &sealed)
        .await
        .map_err(StoreError::Runtime)?;
    runtime
        .update_and_report(job_id, |r| {
            r.checkpoint_version = version;
            r.coarse_step = coarse_step;
            r.train_seconds_used = train_seconds_used;
            r.metrics = metrics;
        })
        .await
        .map_err(StoreError::Runtime)?;
    Ok(())
}

/// The job's checkpoint `version`, opened (the padded payload's contents).
pub async fn load_checkpoint(
    runtime: &Runtime,
    record: &JobRecord,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let version = record.checkpoint_version;
    let sealer = records::checkpoint_sealer(runtime.sealing_key(), record).ok_or("internal")?;
    let sealed = runtime
        .host
        .get(&checkpoint_slot(&record.job_id, version))
        .await
        .map_err(|e| fail_code(&e).to_string())?
        .ok_or("checkpoint-rejected")?;
    let ad = associated_data("checkpoint", &record.job_id, u64::from(version));
    let padded = sealer
        .open(&ad, &sealed)
        .map_err(|e| fail_code(&e).to_string())?;
    let bytes = sealing::unpad(&padded).map_err(|_| "checkpoint-rejected")?;
    Ok(Zeroizing::new(bytes.to_vec()))
}

struct Sink {
    runtime: Arc<Runtime>,
    handle: Handle,
    job_id: String,
    policy: JobPolicy,
    started: Instant,
    used_before: f64,
    /// Set when a checkpoint did not fit the policy's sealed size (the trainer's doing).
    oversized: Arc<AtomicBool>,
}

impl CheckpointSink for Sink {
    fn store(&mut self, checkpoint: &TrainCheckpoint) -> Result<(), CheckpointSinkError> {
        let bytes = Zeroizing::new(checkpoint.to_bytes());
        let used = self.used_before + self.started.elapsed().as_secs_f64();
        let stored = self.handle.block_on(store_checkpoint(
            &self.runtime,
            &self.job_id,
            &self.policy,
            checkpoint.epochs_done,
            &bytes,
            &checkpoint.metrics,
            used,
        ));
        if let Err(StoreError::Oversized) = stored {
            self.oversized.store(true, Ordering::Relaxed);
        }
        stored.map_err(|_| CheckpointSinkError)
    }
}

/// The one failure code of every trainer-caused failure (trap, timeout, memory, budget, an
/// error it returned, no model saved).
pub const TRAINER_FAILED: &str = "trainer-failed";

/// Why a run ended without a model: a fixed code.
pub(crate) fn fail_code(e: &crate::RuntimeError) -> &'static str {
    match e {
        crate::RuntimeError::Unseal(_) => "checkpoint-rejected",
        _ => "internal",
    }
}

/// Runs (or resumes) job `job_id` to its end, on the calling (blocking) thread.
pub fn run_job(runtime: Arc<Runtime>, handle: Handle, job_id: String) {
    let Some((record, policy)) = runtime.jobs.lock().ok().and_then(|jobs| {
        jobs.get(&job_id)
            .map(|j| (j.record.clone(), j.policy.clone()))
    }) else {
        return;
    };
    let started = Instant::now();
    let result = train(&runtime, &handle, &record, &policy, started);
    let (phase, failure) = match result {
        Ok(()) => ("ready", String::new()),
        Err(code) => {
            // Fixed time: a failure is reported only when the declared budget is over.
            let spent = record.train_seconds_used + started.elapsed().as_secs_f64();
            let left = (policy.wall_seconds as f64 - spent).max(0.0);
            std::thread::sleep(Duration::from_secs_f64(left));
            ("failed", code)
        }
    };
    let rt = runtime.clone();
    let report_steps = policy.report_steps;
    let id = job_id.clone();
    let _ = handle.block_on(async move {
        rt.update_and_report(&id, |r| {
            r.phase = phase.to_string();
            r.failure = failure;
            r.coarse_step = report_steps;
        })
        .await?;
        Ok::<(), crate::RuntimeError>(())
    });
    if let Ok(mut jobs) = runtime.jobs.lock()
        && let Some(j) = jobs.get_mut(&job_id)
    {
        j.running = false;
    }
}

/// The sealed dataset `blob`, opened with `data_key` and loaded into enclave memory; `Err`
/// carries the fixed failure code.
pub(crate) fn load_records(
    runtime: &Runtime,
    handle: &Handle,
    blob: &str,
    data_key: &[u8; 32],
) -> Result<SealedRecords, String> {
    let bytes = handle
        .block_on(runtime.host.get(blob))
        .map_err(|e| fail_code(&e).to_string())?
        .ok_or("dataset-missing")?;
    let dataset = SealedDataset::open_with_data_key(bytes, &DataKey::from_bytes(*data_key))
        .map_err(|_| "dataset-rejected")?;
    Ok(SealedRecords::preload(&dataset).map_err(|_| "dataset-rejected")?)
}

/// A training engine with the job's seed and budgets (data and exchange attached by the
/// caller).
pub(crate) fn job_engine(runtime: &Runtime, policy: &JobPolicy) -> Engine {
    Engine::new(EngineConfig {
        seed: policy.seed,
        max_live_bytes: runtime.max_train_bytes,
        max_tensors: 1_000_000,
        max_steps: policy.max_steps,
    })
}

/// What the sandbox tells the trainer, from the job policy, with `wall_budget` left.
pub(crate) fn train_config(policy: &JobPolicy, wall_budget: Duration) -> TrainConfig {
    TrainConfig {
        epochs: policy.epochs,
        batch_size: policy.batch_size,
        hyper: policy.hyper.clone(),
        wall_budget,
    }
}

/// The run itself; `Err` carries the fixed failure code.
fn train(
    runtime: &Arc<Runtime>,
    handle: &Handle,
    record: &JobRecord,
    policy: &JobPolicy,
    started: Instant,
) -> Result<(), String> {
    if let Some(distributed) = policy.distributed {
        return crate::distributed::coordinator::train(
            runtime,
            handle,
            record,
            policy,
            distributed,
        );
    }
    let internal = |e: crate::RuntimeError| fail_code(&e).to_string();
    let module = handle
        .block_on(runtime.module(&record.trainer_digest))
        .map_err(internal)?
        .ok_or("internal")?;
    let records = Arc::new(load_records(
        runtime,
        handle,
        &record.dataset_blob,
        &record.data_key,
    )?);

    let resume_from = if record.checkpoint_version > 0 {
        let bytes = handle.block_on(load_checkpoint(runtime, record))?;
        Some(TrainCheckpoint::from_bytes(&bytes).map_err(|_| "checkpoint-rejected")?)
    } else {
        None
    };

    let engine = job_engine(runtime, policy).with_data(records);
    let wall_left = (policy.wall_seconds as f64 - record.train_seconds_used).max(0.0);
    let oversized = Arc::new(AtomicBool::new(false));
    let sink = Sink {
        oversized: oversized.clone(),
        runtime: runtime.clone(),
        handle: handle.clone(),
        job_id: record.job_id.clone(),
        policy: policy.clone(),
        started,
        used_before: record.train_seconds_used,
    };
    let outcome = run_train_with(
        &module.module,
        engine,
        &train_config(policy, Duration::from_secs_f64(wall_left)),
        Checkpointing {
            resume_from,
            sink: Some(Box::new(sink)),
        },
    )
    .map_err(|code| match code {
        // The runtime's own failure, not the trainer's (unless the trainer's checkpoint was
        // larger than the policy allows).
        chiron_sandbox::FailureCode::Internal if !oversized.load(Ordering::Relaxed) => {
            "internal".to_string()
        }
        // Every way a trainer can fail looks the same from outside: which one it was could
        // depend on the data.
        _ => TRAINER_FAILED.to_string(),
    })?;
    let model = outcome.model.ok_or(TRAINER_FAILED)?;
    let metrics = owner_metrics(policy, &outcome.metrics);
    seal_model(runtime, handle, record, policy, &model, metrics)
}

/// Seals the final model under the two-share key and moves the job to `sealing`; only then
/// is it ready.
pub fn seal_model(
    runtime: &Arc<Runtime>,
    handle: &Handle,
    record: &JobRecord,
    policy: &JobPolicy,
    model: &chiron_sandbox::SavedModel,
    metrics: Vec<MetricRecord>,
) -> Result<(), String> {
    let internal = |e: crate::RuntimeError| fail_code(&e).to_string();
    let model_sealer = records::model_sealer(record).ok_or("internal")?;
    let padded = sealing::pad(&records::model_to_bytes(model), policy.sealed_blob_bytes())
        .map_err(|_| TRAINER_FAILED)?;
    let sealed = model_sealer
        .seal(&associated_data("model", &record.job_id, 0), &padded)
        .map_err(internal)?;
    let rt = runtime.clone();
    let id = record.job_id.clone();
    handle
        .block_on(async move {
            rt.update_and_report(&id, |r| {
                r.phase = "sealing".into();
                r.metrics = metrics;
            })
            .await?;
            rt.host.put(&records::model_blob(&id), &sealed).await
        })
        .map_err(internal)?;
    Ok(())
}
