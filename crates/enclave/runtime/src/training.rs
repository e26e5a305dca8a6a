//! One job's training run: dataset unsealed into enclave memory, trainer in the sandbox on its
//! own thread, and the job's clock ([`crate::schedule`]) deciding everything that leaves.
//!
//! The trainer only *offers*: `model.checkpoint` hands the runtime a state that the next grid
//! tick seals and writes (a dummy of the same size when nothing was offered); `model.save`
//! leaves a model that is sealed and written when the wall budget ends, at the same instant
//! and the same size as the dummy a failed job gets. The operator and the host see the same
//! sequence of blobs, sizes, names and status reports, at the same times, whatever the trainer
//! did with the data; only the owner learns whether the job succeeded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chiron_engine::{Engine, EngineConfig, SealedRecords};
use chiron_proto::job::JobPolicy;
use chiron_proto::vocab::{FailureCode, JobPhase, MetricName};
use chiron_sandbox::{
    CheckpointSink, CheckpointSinkError, Checkpointing, MetricPoint, SavedModel, TrainCheckpoint,
    TrainConfig, run_train_with,
};
use chiron_seal::{DataKey, SealedDataset};
use tokio::runtime::Handle;
use zeroize::Zeroizing;

use crate::diagnostics::{self, Event};
use crate::records::{self, JobRecord, MAX_RECORD_METRICS, MetricRecord};
use crate::resources::{TRAINER_STACK_BYTES, lower_job_thread_priority, touch_stack, wait_until};
use crate::schedule::{Offer, Offers, Schedule, sleep_until};
use crate::sealing::{self, associated_data};
use crate::state::Runtime;

/// The name of a sandbox metric in the shared vocabulary.
pub fn metric_name(m: chiron_sandbox::Metric) -> MetricName {
    use chiron_sandbox::Metric::*;
    match m {
        TrainLoss => MetricName::TrainLoss,
        TrainAccuracy => MetricName::TrainAccuracy,
        TestLoss => MetricName::TestLoss,
        TestAccuracy => MetricName::TestAccuracy,
        LearningRate => MetricName::LearningRate,
    }
}

/// The metrics the owner's policy lets the owner see (see [`latest_per_metric`]). Non-finite
/// values never get here (the sandbox ends a run that reports one); they are dropped all the
/// same, so a record always serialises.
pub fn owner_metrics(policy: &JobPolicy, points: &[MetricPoint]) -> Vec<MetricRecord> {
    let records: Vec<MetricRecord> = points
        .iter()
        .filter(|p| p.value.is_finite())
        .map(|p| MetricRecord {
            name: metric_name(p.metric),
            step: p.step,
            value: p.value,
        })
        .collect();
    latest_per_metric(policy, &records)
}

/// Of each metric the policy names, in its order, the latest `policy.metric_points` points:
/// the owner's status has room for exactly that many, so its size does not say how many the
/// trainer reported.
pub fn latest_per_metric(policy: &JobPolicy, records: &[MetricRecord]) -> Vec<MetricRecord> {
    let mut kept = Vec::new();
    for name in &policy.metrics {
        let mine: Vec<&MetricRecord> = records.iter().filter(|r| r.name == *name).collect();
        let skip = mine.len().saturating_sub(policy.metric_points as usize);
        kept.extend(mine.into_iter().skip(skip).cloned());
    }
    kept.truncate(MAX_RECORD_METRICS);
    kept
}

/// What a trainer that ended in time leaves: its model as bytes ready to seal, and the
/// owner's metrics.
pub struct Trained {
    /// [`records::model_to_bytes`] of the saved model (it fits the policy's sealed size).
    pub model: Zeroizing<Vec<u8>>,
    /// The owner-visible metrics at the end.
    pub metrics: Vec<MetricRecord>,
}

/// How a training run ended: a model, or the one fixed code the owner will see.
pub type RunResult = Result<Trained, FailureCode>;

/// First byte of a sealed checkpoint's or model's payload: whether a real state follows or it
/// is the runtime's dummy (the two have the same padded size).
const DUMMY: u8 = 0;
const STATE: u8 = 1;

/// `state` (or the dummy) framed for sealing or sending.
pub fn frame(state: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(1 + state.map_or(0, <[u8]>::len)));
    match state {
        Some(s) => {
            out.push(STATE);
            out.extend_from_slice(s);
        }
        None => out.push(DUMMY),
    }
    out
}

/// A payload that is neither a framed state nor the dummy.
#[derive(Debug, PartialEq, Eq)]
pub struct MalformedFrame;

/// The state inside a framed payload (`None` for the dummy).
pub fn unframe(payload: &[u8]) -> Result<Option<&[u8]>, MalformedFrame> {
    match payload.split_first() {
        Some((&STATE, rest)) => Ok(Some(rest)),
        Some((&DUMMY, [])) => Ok(None),
        _ => Err(MalformedFrame),
    }
}

/// The largest state that fits a framed payload padded to `padded_bytes` (less the padding's
/// length field and the frame byte).
pub fn state_capacity(padded_bytes: usize) -> usize {
    padded_bytes.saturating_sub(8 + 1)
}

/// The largest state an offer or a model may have under `policy`.
pub fn max_state_bytes(policy: &JobPolicy) -> usize {
    state_capacity(policy.sealed_blob_bytes())
}

/// `model` as a [`Trained`] result, if it fits the policy's sealed size.
pub fn trained(policy: &JobPolicy, model: &SavedModel, metrics: Vec<MetricRecord>) -> RunResult {
    // A model safetensors cannot encode (two tensors of one name) is the trainer's failure.
    let bytes = records::model_to_bytes(model).ok_or(FailureCode::TrainerFailed)?;
    if bytes.len() > max_state_bytes(policy) {
        return Err(FailureCode::TrainerFailed);
    }
    Ok(Trained {
        model: bytes,
        metrics,
    })
}

/// Writes grid tick `tick` of job `job_id`: the offered state (or the dummy) sealed and padded
/// into the tick's slot, then the record (pointing at it) and the public status.
async fn write_checkpoint(
    runtime: &Runtime,
    job_id: &str,
    policy: &JobPolicy,
    schedule: &Schedule,
    tick: u64,
    offer: Option<Offer>,
) -> Result<(), crate::RuntimeError> {
    let no_key = || crate::RuntimeError::Record("no model key".into());
    let record = runtime
        .jobs
        .lock()
        .ok()
        .and_then(|j| j.get(job_id).map(|j| j.record.clone()))
        .ok_or_else(|| crate::RuntimeError::Record("no such job".into()))?;
    let sealer = records::checkpoint_sealer(runtime.sealing_key(), &record)?.ok_or_else(no_key)?;
    let payload = frame(offer.as_ref().map(|o| o.payload.as_slice()));
    let padded = sealing::pad(&payload, policy.sealed_blob_bytes())?;
    let sealed = sealer.seal(&associated_data("checkpoint", job_id, tick), &padded)?;
    runtime
        .host
        .put(&records::checkpoint_slot(job_id, tick), &sealed)
        .await?;
    let used_ms = u64::try_from(schedule.tick_offset(tick).as_millis()).unwrap_or(u64::MAX);
    let coarse_step = schedule.coarse_step(tick);
    runtime
        .update_and_report(job_id, |r| {
            r.checkpoint_tick = tick;
            r.budget_used_ms = used_ms;
            r.coarse_step = coarse_step;
            if let Some(o) = offer {
                r.metrics = o.metrics;
            }
        })
        .await?;
    Ok(())
}

/// The state in the job's newest checkpoint that opens (`None`: the dummy, or no checkpoint
/// yet). The newest is tick `checkpoint_tick`; if the host damaged or lost it, the previous
/// tick, still in the other slot, is the fallback — the job then resumes a tick's work earlier,
/// on the same schedule. Each is sealed with its tick, so nothing older can pass for either.
pub async fn load_checkpoint(
    runtime: &Runtime,
    record: &JobRecord,
) -> Result<Option<Zeroizing<Vec<u8>>>, FailureCode> {
    let tick = record.checkpoint_tick;
    if tick == 0 {
        return Ok(None);
    }
    match load_checkpoint_tick(runtime, record, tick).await {
        Err(FailureCode::CheckpointRejected) if tick > 1 => {
            load_checkpoint_tick(runtime, record, tick - 1).await
        }
        other => other,
    }
}

/// The state sealed in the job's checkpoint of grid tick `tick`.
async fn load_checkpoint_tick(
    runtime: &Runtime,
    record: &JobRecord,
    tick: u64,
) -> Result<Option<Zeroizing<Vec<u8>>>, FailureCode> {
    let sealer = records::checkpoint_sealer(runtime.sealing_key(), record)
        .map_err(|e| fail_code(&e))?
        .ok_or(FailureCode::Internal)?;
    let sealed = runtime
        .host
        .get(&records::checkpoint_slot(&record.job_id, tick))
        .await
        .map_err(|e| fail_code(&e))?
        .ok_or(FailureCode::CheckpointRejected)?;
    let padded = sealer
        .open(
            &associated_data("checkpoint", &record.job_id, tick),
            &sealed,
        )
        .map_err(|e| fail_code(&e))?;
    let payload = sealing::unpad(&padded).map_err(|_| FailureCode::CheckpointRejected)?;
    let state = unframe(payload).map_err(|_| FailureCode::CheckpointRejected)?;
    Ok(state.map(|s| Zeroizing::new(s.to_vec())))
}

/// Takes the trainer's `model.checkpoint` calls as offers for the grid.
struct OfferSink {
    offers: Arc<Offers>,
    policy: JobPolicy,
}

impl CheckpointSink for OfferSink {
    fn store(&mut self, checkpoint: &TrainCheckpoint) -> Result<(), CheckpointSinkError> {
        let payload = Zeroizing::new(checkpoint.to_bytes());
        if payload.len() > max_state_bytes(&self.policy) {
            return Err(CheckpointSinkError);
        }
        self.offers.offer(Offer {
            payload,
            metrics: owner_metrics(&self.policy, &checkpoint.metrics),
        });
        Ok(())
    }
}

/// The fixed code of a runtime error.
pub(crate) fn fail_code(e: &crate::RuntimeError) -> FailureCode {
    match e {
        crate::RuntimeError::Unseal(_) => FailureCode::CheckpointRejected,
        _ => FailureCode::Internal,
    }
}

/// Runs (or resumes) job `job_id` to the end of its budget, on the calling (blocking) thread:
/// the trainer on a thread of its own, the grid and the end on this one.
pub fn run_job(runtime: Arc<Runtime>, handle: Handle, job_id: String) {
    let Some((record, policy)) = runtime.jobs.lock().ok().and_then(|jobs| {
        jobs.get(&job_id)
            .map(|j| (j.record.clone(), j.policy.clone()))
    }) else {
        return;
    };
    let schedule = Schedule::new(&policy, Duration::from_millis(record.budget_used_ms));
    let outcome: Arc<Mutex<Option<RunResult>>> = Arc::default();
    // Held until the end of the budget, whatever the trainer does: memory reserved (or the job
    // fails here, before its trainer runs) and, by default, every core kept busy.
    let reservation = runtime.resources.reserve(&policy);
    // And one of the sandbox's instance slots for the trainer, also to the end (predictions
    // wait in line for theirs, each held only while its trainer runs).
    let _instance = match &reservation {
        Ok(_) => handle.block_on(runtime.instances.for_training()),
        Err(_) => None,
    };
    let checkpoint = match &reservation {
        Ok(_) => handle.block_on(load_checkpoint(&runtime, &record)),
        Err(code) => Err(*code),
    };
    let offers = match checkpoint {
        Ok(state) => {
            let initial = state.map(|payload| Offer {
                payload,
                metrics: record.metrics.clone(),
            });
            let resume = initial.as_ref().map(|o| o.payload.clone());
            let offers = Arc::new(Offers::new(initial));
            let run = TrainerRun {
                runtime: runtime.clone(),
                handle: handle.clone(),
                record: record.clone(),
                policy: policy.clone(),
                resume,
                offers: offers.clone(),
                deadline: schedule.trainer_deadline(),
            };
            let slot = outcome.clone();
            let end = schedule.end();
            let spawned = std::thread::Builder::new()
                .name("chiron-trainer".into())
                .stack_size(TRAINER_STACK_BYTES)
                .spawn(move || {
                    touch_stack(TRAINER_STACK_BYTES - (1 << 20));
                    let confined = run.policy.constant_cpu;
                    if confined {
                        lower_job_thread_priority();
                    }
                    let result = if confined {
                        chiron_engine::on_this_thread(|| run.train())
                    } else {
                        run.train()
                    };
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(result);
                    }
                    // A thread's exit hands its stack back to the OS: not before the end. A
                    // confined job's thread stays busy until then (see `resources`).
                    wait_until(end, confined);
                });
            if spawned.is_err() {
                set(&outcome, Err(FailureCode::Internal));
            }
            offers
        }
        Err(code) => {
            set(&outcome, Err(code));
            Arc::new(Offers::default())
        }
    };

    for tick in record.checkpoint_tick + 1..=schedule.ticks() {
        sleep_until(schedule.tick_time(tick));
        let written = handle.block_on(write_checkpoint(
            &runtime,
            &job_id,
            &policy,
            &schedule,
            tick,
            offers.latest(),
        ));
        if written.is_err() {
            diagnostics::report(Event::CheckpointNotWritten);
        }
    }

    sleep_until(schedule.end());
    // Whatever has not ended by now failed; its thread stops at the deadline it was given.
    let result = outcome
        .lock()
        .ok()
        .and_then(|mut o| o.take())
        .unwrap_or(Err(FailureCode::TrainerFailed));
    if handle
        .block_on(finish(&runtime, &record, &policy, result))
        .is_err()
    {
        diagnostics::report(Event::JobNotFinished);
    }
    if let Ok(mut jobs) = runtime.jobs.lock()
        && let Some(j) = jobs.get_mut(&job_id)
    {
        j.running = false;
    }
    drop(reservation);
}

fn set(slot: &Mutex<Option<RunResult>>, result: RunResult) {
    if let Ok(mut s) = slot.lock() {
        *s = Some(result);
    }
}

/// The end of a job's budget: its model, or a dummy of the same padded size, sealed under the
/// model key and written; then the record's final phase and the public `finished` status.
async fn finish(
    runtime: &Runtime,
    record: &JobRecord,
    policy: &JobPolicy,
    result: RunResult,
) -> Result<(), crate::RuntimeError> {
    let sealer = records::model_sealer(record)?
        .ok_or_else(|| crate::RuntimeError::Record("no model key".into()))?;
    let (payload, phase, failure, metrics) = match &result {
        Ok(t) => (
            frame(Some(t.model.as_slice())),
            JobPhase::Ready,
            None,
            Some(t.metrics.clone()),
        ),
        Err(code) => (frame(None), JobPhase::Failed, Some(*code), None),
    };
    let padded = sealing::pad(&payload, policy.sealed_blob_bytes())?;
    let sealed = sealer.seal(&associated_data("model", &record.job_id, 0), &padded)?;
    runtime
        .host
        .put(&records::model_blob(&record.job_id), &sealed)
        .await?;
    let report_steps = policy.report_steps;
    runtime
        .update_and_report(&record.job_id, |r| {
            r.phase = phase;
            r.failure = failure;
            r.coarse_step = report_steps;
            if let Some(m) = metrics {
                r.metrics = m;
            }
        })
        .await?;
    Ok(())
}

/// The sealed dataset `blob`, opened with `data_key` and loaded into enclave memory.
pub(crate) fn load_records(
    runtime: &Runtime,
    handle: &Handle,
    blob: &str,
    data_key: &[u8; 32],
) -> Result<SealedRecords, FailureCode> {
    let bytes = handle
        .block_on(runtime.host.get(blob))
        .map_err(|e| fail_code(&e))?
        .ok_or(FailureCode::DatasetMissing)?;
    let dataset = SealedDataset::open_with_data_key(bytes, &DataKey::from_bytes(*data_key))
        .map_err(|_| FailureCode::DatasetRejected)?;
    SealedRecords::preload(&dataset).map_err(|_| FailureCode::DatasetRejected)
}

/// A training engine with the job's seed and budgets (data and exchange attached by the
/// caller).
pub(crate) fn job_engine(runtime: &Runtime, policy: &JobPolicy) -> Engine {
    Engine::new(EngineConfig {
        seed: policy.seed,
        max_live_bytes: policy.memory_bytes().min(runtime.max_train_bytes),
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

/// Everything the trainer's thread needs.
struct TrainerRun {
    runtime: Arc<Runtime>,
    handle: Handle,
    record: JobRecord,
    policy: JobPolicy,
    /// The state of the checkpoint the job resumes from.
    resume: Option<Zeroizing<Vec<u8>>>,
    offers: Arc<Offers>,
    /// When the guest and the engine must stop.
    deadline: Instant,
}

impl TrainerRun {
    /// The run itself, ending by `deadline`.
    fn train(self) -> RunResult {
        if let Some(distributed) = self.policy.distributed {
            return crate::distributed::coordinator::train(
                &self.runtime,
                &self.handle,
                &self.record,
                &self.policy,
                distributed,
                crate::distributed::coordinator::Run {
                    resume: self.resume,
                    offers: self.offers,
                    deadline: self.deadline,
                },
            );
        }
        let module = self
            .handle
            .block_on(self.runtime.module(&self.record.trainer_digest))
            .map_err(|e| fail_code(&e))?
            .ok_or(FailureCode::Internal)?;
        let records = Arc::new(load_records(
            &self.runtime,
            &self.handle,
            &self.record.dataset_blob,
            &self.record.data_key,
        )?);
        let resume_from = match &self.resume {
            Some(bytes) => Some(
                TrainCheckpoint::from_bytes(bytes).map_err(|_| FailureCode::CheckpointRejected)?,
            ),
            None => None,
        };
        let engine = job_engine(&self.runtime, &self.policy)
            .with_data(records)
            .with_deadline(self.deadline);
        let wall = self.deadline.saturating_duration_since(Instant::now());
        let outcome = run_train_with(
            &module.module,
            engine,
            &train_config(&self.policy, wall),
            Checkpointing {
                resume_from,
                sink: Some(Box::new(OfferSink {
                    offers: self.offers.clone(),
                    policy: self.policy.clone(),
                })),
            },
        )
        .map_err(|code| match code {
            // The runtime's own failure, not the trainer's.
            chiron_sandbox::FailureCode::Internal => FailureCode::Internal,
            // Every way a trainer can fail looks the same: which one it was could depend on
            // the data.
            _ => FailureCode::TrainerFailed,
        })?;
        let model = outcome.model.ok_or(FailureCode::TrainerFailed)?;
        let metrics = owner_metrics(&self.policy, &outcome.metrics);
        trained(&self.policy, &model, metrics)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_tell_state_from_dummy_and_refuse_anything_else() {
        assert_eq!(
            unframe(&frame(Some(&b"abc"[..]))).unwrap(),
            Some(&b"abc"[..])
        );
        assert_eq!(unframe(&frame(Some(&b""[..]))).unwrap(), Some(&b""[..]));
        assert_eq!(unframe(&frame(None)).unwrap(), None);
        for bad in [&[][..], &[0, 1][..], &[2, 1][..]] {
            assert!(unframe(bad).is_err());
        }
    }
}
