//! The gRPC services the parties call over RA-TLS: the operator's (register a trainer, release
//! a share, list jobs) and the owner's (submit a job, status, predictions).
//!
//! Errors carry fixed texts that describe the request, never data, keys or weights.

use std::sync::Arc;
use std::time::Duration;

use chiron_proto::enclave::operator_server::Operator;
use chiron_proto::enclave::owner_server::Owner;
use chiron_proto::enclave::{
    DamagedJob, Empty, JobList, JobRequest, JobStatus, JobStatusReply, ListJobsRequest, Metric,
    PredictReply, PredictRequest, RegisterTrainerReply, RegisterTrainerRequest,
    ReleaseShareRequest, SubmitJobReply, SubmitJobRequest,
};
use chiron_proto::job::{JobPolicy, OutputPolicy};
use chiron_proto::padding::{pad_predict_reply, pad_status_reply};
use chiron_proto::vocab::{JobPhase, PredictFailure};
use chiron_sandbox::{FailureCode, TensorData, run_predict_prepared};
use chiron_seal::{DataKey, SealedDataset};
use tonic::{Request, Response, Status};

use crate::predict::{Persist, per_input, shape_outputs};
use crate::records::{self, JobRecord};
use crate::sealing::{self, associated_data};
use crate::state::{ModelState, Runtime, same_hash, sha256};
use crate::training;

/// A job's trainer and its opened model, ready to predict with.
type Loaded = (
    Arc<crate::state::LoadedModule>,
    Arc<Result<chiron_sandbox::PreparedModel, FailureCode>>,
);

/// How long a prediction without a fixed reply time (latency 0, development only) waits in
/// line for an instance slot before it fails.
const UNTIMED_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// Both services over one runtime.
#[derive(Clone)]
pub struct Services {
    runtime: Arc<Runtime>,
}

impl Services {
    /// Services over `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }

    /// Starts (or resumes) job `id`'s training on a blocking thread, unless it runs already.
    pub fn start_training(&self, id: &str) {
        let Ok(mut jobs) = self.runtime.jobs.lock() else {
            return;
        };
        let Some(job) = jobs.get_mut(id) else {
            return;
        };
        if job.running {
            return;
        }
        job.running = true;
        drop(jobs);
        let rt = self.runtime.clone();
        let handle = tokio::runtime::Handle::current();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || training::run_job(rt, handle, id));
    }
}

fn internal(_e: crate::RuntimeError) -> Status {
    // Neither the caller nor the host's copy of stderr gets the error's text.
    crate::diagnostics::report(crate::diagnostics::Event::InternalError);
    Status::internal("internal error")
}

fn hash32(bytes: &[u8], what: &str) -> Result<[u8; 32], Status> {
    bytes
        .try_into()
        .map_err(|_| Status::invalid_argument(format!("{what} must be 32 bytes")))
}

/// Who is asking for a job's status.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Viewer {
    /// The job's owner: its outcome and failure code.
    Owner,
    /// The operator: the public phase only (an outcome can depend on the data).
    Operator,
}

fn status_of(record: &JobRecord, policy: &JobPolicy, viewer: Viewer) -> JobStatus {
    let (phase, failure) = match viewer {
        Viewer::Owner => (
            record.phase.as_str(),
            record.failure.map_or("", |f| f.as_str()),
        ),
        Viewer::Operator => (record.phase.public().as_str(), ""),
    };
    JobStatus {
        job_id: record.job_id.clone(),
        phase: phase.to_string(),
        coarse_step: record.coarse_step,
        coarse_steps: policy.report_steps,
        failure: failure.to_string(),
        trainer_digest: record.trainer_digest.clone(),
    }
}

/// The job `id` if `token` is its owner's, as settled (no update or status report in flight).
async fn owned_job(rt: &Runtime, id: &str, token: &[u8]) -> Result<(JobRecord, JobPolicy), Status> {
    let _settled = rt.settled().await;
    let jobs = rt
        .jobs
        .lock()
        .map_err(|_| Status::internal("internal error"))?;
    let job = jobs
        .get(id)
        .ok_or_else(|| Status::not_found("no such job"))?;
    if !same_hash(&sha256(token), &job.record.owner_token_hash) {
        return Err(Status::permission_denied("not this job's owner"));
    }
    Ok((job.record.clone(), job.policy.clone()))
}

#[tonic::async_trait]
impl Operator for Services {
    async fn register_trainer(
        &self,
        request: Request<RegisterTrainerRequest>,
    ) -> Result<Response<RegisterTrainerReply>, Status> {
        let r = request.into_inner();
        let token_hash = hash32(&r.operator_token_hash, "operator_token_hash")?;
        let sandbox = self.runtime.sandbox.clone();
        let bytes = r.module;
        let (module, bytes) = tokio::task::spawn_blocking(move || {
            let loaded = sandbox.load(&bytes);
            (loaded, bytes)
        })
        .await
        .map_err(|_| Status::internal("internal error"))?;
        // The load error describes the operator's own module: safe to return to it.
        let module =
            module.map_err(|e| Status::invalid_argument(format!("trainer refused: {e}")))?;
        let digest = self
            .runtime
            .register(module, bytes, token_hash)
            .await
            .map_err(internal)?;
        Ok(Response::new(RegisterTrainerReply { digest }))
    }

    async fn release_operator_share(
        &self,
        request: Request<ReleaseShareRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let share = hash32(&r.share, "share")?;
        let digest = {
            let jobs = self
                .runtime
                .jobs
                .lock()
                .map_err(|_| Status::internal("internal error"))?;
            let job = jobs
                .get(&r.job_id)
                .ok_or_else(|| Status::not_found("no such job"))?;
            if job.record.operator_share.is_some() || job.record.phase != JobPhase::Queued {
                return Err(Status::failed_precondition(
                    "the share was already released",
                ));
            }
            job.record.trainer_digest.clone()
        };
        let module = self
            .runtime
            .module(&digest)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("no such trainer"))?;
        if !same_hash(&sha256(&r.operator_token), &module.operator_token_hash) {
            return Err(Status::permission_denied("not this trainer's operator"));
        }
        let record = self
            .runtime
            .update_and_report(&r.job_id, |rec| {
                // Checked again under the write lock: two concurrent releases must not both
                // win (the model key would change under a running job).
                if rec.operator_share.is_none() {
                    rec.operator_share = Some(share);
                    rec.phase = JobPhase::Training;
                }
            })
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("no such job"))?;
        if record.operator_share != Some(share) {
            return Err(Status::failed_precondition(
                "the share was already released",
            ));
        }
        self.start_training(&r.job_id);
        Ok(Response::new(Empty {}))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<JobList>, Status> {
        let token_hash = sha256(&request.into_inner().operator_token);
        let candidates: Vec<(JobRecord, JobPolicy)> = {
            let _settled = self.runtime.settled().await;
            self.runtime
                .jobs
                .lock()
                .map_err(|_| Status::internal("internal error"))?
                .values()
                .map(|j| (j.record.clone(), j.policy.clone()))
                .collect()
        };
        let mut jobs = Vec::new();
        for (record, policy) in candidates {
            if let Ok(Some(m)) = self.runtime.module(&record.trainer_digest).await
                && same_hash(&token_hash, &m.operator_token_hash)
            {
                jobs.push(status_of(&record, &policy, Viewer::Operator));
            }
        }
        jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        // Blobs no job accounts for, for an operator this enclave knows (names the host has
        // anyway; nothing is opened to list them).
        let mut damaged = Vec::new();
        if !jobs.is_empty() || self.runtime.knows_operator(&token_hash) {
            damaged = self
                .runtime
                .damaged_jobs()
                .await
                .map_err(internal)?
                .into_iter()
                .map(|(job_id, reason, blobs)| DamagedJob {
                    job_id,
                    reason: reason.to_string(),
                    blobs,
                })
                .collect();
        }
        Ok(Response::new(JobList { jobs, damaged }))
    }
}

#[tonic::async_trait]
impl Owner for Services {
    async fn submit_job(
        &self,
        request: Request<SubmitJobRequest>,
    ) -> Result<Response<SubmitJobReply>, Status> {
        let r = request.into_inner();
        // The policy is the owner's own text: its errors may go back verbatim.
        let policy = JobPolicy::parse(&r.policy_toml).map_err(Status::invalid_argument)?;
        let max_mib =
            (self.runtime.max_train_bytes >> 20).min(self.runtime.resources.max_job_mib());
        if u64::from(policy.memory_mib) > max_mib {
            return Err(Status::failed_precondition(format!(
                "job policy: memory_mib is {}, but this enclave allows at most {max_mib} per job \
                 (--max-train-mib, and what --memory-mib leaves for one job)",
                policy.memory_mib
            )));
        }
        if let Some(d) = policy.distributed {
            let configured = self.runtime.peers.get().map_or(0, |p| p.workers.len());
            if (d.workers as usize) > configured {
                return Err(Status::failed_precondition(format!(
                    "job policy: distributed.workers is {}, but this enclave has {configured} worker enclaves configured",
                    d.workers
                )));
            }
        }
        let data_key = hash32(&r.data_key, "data_key")?;
        let owner_share = hash32(&r.owner_share, "owner_share")?;
        let owner_token_hash = hash32(&r.owner_token_hash, "owner_token_hash")?;
        if self
            .runtime
            .module(&r.trainer_digest)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(Status::not_found(
                "no trainer with that digest is registered",
            ));
        }
        let bytes = self
            .runtime
            .host
            .get(&r.dataset_blob)
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("the host has no dataset of that name"))?;
        let dataset = SealedDataset::open_with_data_key(bytes, &DataKey::from_bytes(data_key))
            .map_err(|_| Status::invalid_argument("the data key does not open that dataset"))?;
        let schema = dataset.header().schema.clone();
        drop(dataset);
        let train_records = schema
            .splits
            .iter()
            .find(|s| s.name == "train")
            .map_or(0, |s| s.records);
        if train_records == 0 {
            return Err(Status::invalid_argument(
                "the dataset has no `train` records",
            ));
        }
        if let OutputPolicy::TopK(k) = policy.output
            && k > schema.classes
        {
            return Err(Status::invalid_argument(
                "job policy: top_k is larger than the dataset's classes",
            ));
        }
        let job_id = chiron_codec::hex(&sealing::random::<16>().map_err(internal)?);
        let record = JobRecord {
            revision: 1,
            job_id: job_id.clone(),
            trainer_digest: r.trainer_digest,
            dataset_blob: r.dataset_blob,
            data_key,
            policy_toml: r.policy_toml,
            owner_share,
            owner_token_hash,
            operator_share: None,
            record_shape: schema.shape.clone(),
            classes: schema.classes,
            phase: JobPhase::Queued,
            coarse_step: 0,
            failure: None,
            checkpoint_tick: 0,
            budget_used_ms: 0,
            queries_used: 0,
            metrics: Vec::new(),
        };
        self.runtime.store_job(&record).await.map_err(internal)?;
        self.runtime
            .report(&record, policy.report_steps)
            .await
            .map_err(internal)?;
        self.runtime.insert_job(record, policy);
        Ok(Response::new(SubmitJobReply { job_id }))
    }

    async fn job_status(
        &self,
        request: Request<JobRequest>,
    ) -> Result<Response<JobStatusReply>, Status> {
        let r = request.into_inner();
        let (record, policy) = owned_job(&self.runtime, &r.job_id, &r.owner_token).await?;
        let metrics = training::latest_per_metric(&policy, &record.metrics)
            .iter()
            .map(|m| Metric {
                name: m.name.as_str().to_string(),
                step: m.step,
                value: m.value,
            })
            .collect();
        // A finished job's model blob is checked the first time anyone asks (see `model`): a
        // model the host lost or damaged shows here, not as `ready`.
        let mut status = status_of(&record, &policy, Viewer::Owner);
        if let ModelState::Damaged = self.model(&record).await {
            status.phase = JobPhase::Failed.as_str().to_string();
            status.failure = chiron_proto::vocab::FailureCode::ModelDamaged
                .as_str()
                .to_string();
        }
        let mut reply = JobStatusReply {
            status: Some(status),
            metrics,
            padding: Vec::new(),
        };
        pad_status_reply(&mut reply, &policy).map_err(|_| Status::internal("internal error"))?;
        Ok(Response::new(reply))
    }

    async fn predict(
        &self,
        request: Request<PredictRequest>,
    ) -> Result<Response<PredictReply>, Status> {
        // The reply's time counts from here, on the enclave's own clock.
        let arrived = tokio::time::Instant::now();
        let mut r = request.into_inner();
        let (record, policy) = owned_job(&self.runtime, &r.job_id, &r.owner_token).await?;
        // Errors up to the rate limit follow from the request's size and timing alone, which
        // the host sees anyway; everything after is answered in the reply, at its fixed time.
        let latency = policy
            .predict_latency_for(r.count)
            .filter(|_| r.count > 0)
            .ok_or_else(|| {
                Status::invalid_argument("count must be between 1 and the policy's max_batch")
            })?;
        let count = r.count as usize;
        let per_record: usize = record.record_shape.iter().map(|&d| d as usize).product();
        if r.inputs.len() != count * per_record * 4 {
            return Err(Status::invalid_argument(
                "inputs must be count × record size little-endian f32 values",
            ));
        }
        // A zero latency (development only) answers as soon as the trainer has.
        let due = (!latency.is_zero()).then_some(arrived + latency);
        // A place in line for an instance slot, or a refusal before anything is counted: how
        // many requests wait follows from their arrival times and reply times alone.
        let ticket = self
            .runtime
            .instances
            .line_up()
            .map_err(|_| Status::resource_exhausted("prediction queue full: retry later"))?;
        let admitted = self.admit(&r.job_id, count)?;
        // While the request is in flight the cores stay busy, as while a job trains.
        let _cpu = policy
            .constant_cpu
            .then(|| self.runtime.resources.hold_cpu());
        // Counted before anything is computed, failed or not; the record is written when the
        // count's reservation runs low, which depends on counts alone (see `QueryMeter`). The
        // write, the model's first load and the trainer run in a task of their own: a reply
        // that cannot wait for them leaves at its time with the failure, and they still end
        // (the model is then cached for the next request).
        let work = {
            let services = self.clone();
            let r = PredictRequest {
                job_id: r.job_id.clone(),
                owner_token: Vec::new(),
                count: r.count,
                inputs: std::mem::take(&mut r.inputs),
            };
            let (record, policy) = (record.clone(), policy.clone());
            tokio::spawn(async move {
                let (admitted, persist) = admitted;
                let persisted = services.persist_queries(&r.job_id, persist).await;
                // What is fetched from the host never depends on how the job ended: a finished
                // job's model blob (model or dummy) and its trainer, the first time either way.
                let loaded = services.load_for_prediction(&record).await;
                match (admitted, persisted) {
                    (Err(failure), _) => Err(failure),
                    (Ok(()), true) => {
                        let (module, model) = loaded?;
                        services
                            .answer(&record, &policy, &r, due, ticket, (module, model))
                            .await
                    }
                    (Ok(()), false) => Err(PredictFailure::PredictionFailed),
                }
            })
        };
        let finished = match due {
            Some(due) => tokio::time::timeout_at(due, work).await.ok(),
            None => Some(work.await),
        };
        let outcome = finished
            .and_then(Result::ok)
            .unwrap_or(Err(PredictFailure::PredictionFailed));
        let queries_left = self
            .runtime
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(&r.job_id).map(|j| j.queries.counted()))
            .map_or(0, |used| policy.query_budget.saturating_sub(used));
        let per_input = per_input(policy.output, record.classes);
        let (outputs, failure) = match outcome {
            Ok(shaped) => (shaped.outputs, String::new()),
            Err(f) => (
                vec![0; count * per_input as usize * 4],
                f.as_str().to_string(),
            ),
        };
        let mut reply = PredictReply {
            kind: policy.output.kind().to_string(),
            per_input,
            outputs,
            digits: match policy.output {
                OutputPolicy::Probabilities(d) => d,
                _ => 0,
            },
            queries_left,
            failure,
            padding: Vec::new(),
        };
        pad_predict_reply(&mut reply, &policy, r.count)
            .map_err(|_| Status::internal("internal error"))?;
        if let Some(due) = due {
            tokio::time::sleep_until(due).await;
        }
        Ok(Response::new(reply))
    }
}

impl Services {
    /// Takes a token of the job's rate limit (refused at once: what the host sees of request
    /// timing tells it as much), then counts the request's `count` queries — answered or not,
    /// with a model or not, so that what is written, and when, never depends on the job's
    /// outcome — and decides whether it may be computed: the job has a model and its budget
    /// covered the count. Also says what must be written first.
    fn admit(
        &self,
        job_id: &str,
        count: usize,
    ) -> Result<(Result<(), PredictFailure>, Persist), Status> {
        let mut jobs = self
            .runtime
            .jobs
            .lock()
            .map_err(|_| Status::internal("internal error"))?;
        let job = jobs
            .get_mut(job_id)
            .ok_or_else(|| Status::not_found("no such job"))?;
        if !job.limiter.try_take() {
            return Err(Status::resource_exhausted("rate limit: retry later"));
        }
        let budget = job.policy.query_budget;
        let Some(persist) = job
            .queries
            .count(count as u64, budget, &mut job.record.queries_used)
        else {
            return Ok((Err(PredictFailure::BudgetSpent), Persist::No));
        };
        if job.record.phase != JobPhase::Ready {
            return Ok((Err(PredictFailure::NoModel), persist));
        }
        Ok((Ok(()), persist))
    }

    /// Writes the job record if the query count needs it: before answering (`Now`; `false` if
    /// that write failed) or in the background (`Ahead`).
    async fn persist_queries(&self, job_id: &str, persist: Persist) -> bool {
        let write = {
            let runtime = self.runtime.clone();
            let job_id = job_id.to_string();
            async move {
                let stored = match runtime.update_job(&job_id, |_| {}).await {
                    Ok(Some(record)) => Some(record.queries_used),
                    _ => None,
                };
                if let Ok(mut jobs) = runtime.jobs.lock()
                    && let Some(job) = jobs.get_mut(&job_id)
                {
                    job.queries.written(stored);
                }
                stored.is_some()
            }
        };
        match persist {
            Persist::No => true,
            Persist::Ahead => {
                tokio::spawn(write);
                true
            }
            Persist::Now => write.await,
        }
    }

    /// A finished job's trainer and model blob, fetched (the first time) for a failed job as
    /// for a ready one; the failure a prediction gets if there is nothing to predict with.
    async fn load_for_prediction(&self, record: &JobRecord) -> Result<Loaded, PredictFailure> {
        if !matches!(record.phase, JobPhase::Ready | JobPhase::Failed) {
            return Err(PredictFailure::NoModel);
        }
        let model = self.model(record).await;
        // The trainer is fetched and compiled whatever the model turned out to be (the host
        // sees the same gets, in the same order), but a request whose model is damaged, a
        // dummy or missing is answered without waiting for the compilation: after a restart it
        // can outlast a short reply time, which would turn `model-damaged` into
        // `prediction-failed`. The reply leaves at its fixed time either way.
        let runtime = Arc::clone(&self.runtime);
        let digest = record.trainer_digest.clone();
        let module = tokio::spawn(async move { runtime.module(&digest).await });
        let model = match model {
            ModelState::Loaded(model) => model,
            ModelState::Damaged => return Err(PredictFailure::ModelDamaged),
            ModelState::Dummy => return Err(PredictFailure::NoModel),
            ModelState::Unchecked => return Err(PredictFailure::PredictionFailed),
        };
        match module.await {
            Ok(Ok(Some(module))) => Ok((module, model)),
            _ => Err(PredictFailure::PredictionFailed),
        }
    }

    /// Runs the trainer's `predict` on the request's inputs and shapes the answer, or the one
    /// failure if it fails or has not answered by `due`. A confined job's prediction runs on
    /// one thread, which stays busy until `due` (see `crate::resources`).
    async fn answer(
        &self,
        record: &JobRecord,
        policy: &JobPolicy,
        r: &PredictRequest,
        due: Option<tokio::time::Instant>,
        ticket: crate::instances::Ticket,
        (module, model): Loaded,
    ) -> Result<crate::predict::Shaped, PredictFailure> {
        let count = r.count as usize;
        let mut shape = vec![r.count];
        shape.extend_from_slice(&record.record_shape);
        let input = TensorData {
            shape,
            values: r
                .inputs
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        };
        // In line for a slot, but no later than the reply's time. The slot goes back as soon as
        // the trainer is done: which request in line gets it when is seen only by the owner
        // (as a failure inside a reply of the same size, at the same time).
        let slot = ticket
            .slot(Some(due.unwrap_or_else(|| {
                tokio::time::Instant::now() + UNTIMED_QUEUE_WAIT
            })))
            .await
            .ok_or(PredictFailure::PredictionFailed)?;
        let confined = policy.constant_cpu;
        let until = due.map(tokio::time::Instant::into_std);
        let (tx, rx) = tokio::sync::oneshot::channel();
        // On a confined thread, the engine already runs inline (see `confined`).
        let work = move || {
            let wall = until.map_or(Duration::MAX, |u| {
                u.saturating_duration_since(std::time::Instant::now())
            });
            let result = match model.as_ref() {
                Ok(model) => run_predict_prepared(&module.module, model, &input, wall),
                Err(code) => Err(*code),
            };
            drop(slot);
            // The receiver is gone only if the request was dropped.
            let _ = tx.send(result);
            if let Some(until) = until {
                crate::resources::wait_until(until, confined);
            }
        };
        if confined {
            self.runtime
                .confined
                .run(Box::new(work))
                .map_err(|_| PredictFailure::PredictionFailed)?;
        } else {
            tokio::task::spawn_blocking(work);
        }
        let result = match due {
            Some(due) => tokio::time::timeout_at(due, rx).await.ok(),
            None => Some(rx.await),
        };
        let scores = match result {
            Some(Ok(Ok(scores))) => scores,
            Some(Ok(Err(FailureCode::InvalidInput))) => return Err(PredictFailure::InvalidInput),
            // Every other way: failed, malformed, or not done in time.
            _ => return Err(PredictFailure::PredictionFailed),
        };
        shape_outputs(policy.output, &scores, count, record.classes)
            .ok_or(PredictFailure::PredictionFailed)
    }

    /// The job's model blob, as found the first time it is needed: fetched from the host and
    /// opened with the model key, for a failed job (its dummy) exactly as for a ready one, so
    /// the host never learns which it was from what is fetched. `Unchecked` for a job that
    /// has not finished, or while the host cannot be reached. The model or dummy is kept; a
    /// damaged blob is not (it is fetched again when next needed).
    async fn model(&self, record: &JobRecord) -> ModelState {
        if !matches!(record.phase, JobPhase::Ready | JobPhase::Failed) {
            return ModelState::Unchecked;
        }
        let cached = self
            .runtime
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(&record.job_id).map(|j| j.model.clone()));
        // A damaged blob is fetched again next time: the host may have restored it.
        if let Some(known) = cached
            && matches!(known, ModelState::Loaded(_) | ModelState::Dummy)
        {
            return known;
        }
        let found = match self
            .runtime
            .host
            .get(&records::model_blob(&record.job_id))
            .await
        {
            Err(_) => return ModelState::Unchecked,
            Ok(None) => ModelState::Damaged,
            Ok(Some(sealed)) => open_model(record, &sealed),
        };
        if let Ok(mut jobs) = self.runtime.jobs.lock()
            && let Some(j) = jobs.get_mut(&record.job_id)
        {
            j.model = found.clone();
        }
        found
    }
}

/// What a fetched model blob holds: the model, the dummy, or nothing that opens.
fn open_model(record: &JobRecord, sealed: &[u8]) -> ModelState {
    let Ok(Some(sealer)) = records::model_sealer(record) else {
        return ModelState::Damaged;
    };
    let Ok(padded) = sealer.open(&associated_data("model", &record.job_id, 0), sealed) else {
        return ModelState::Damaged;
    };
    let Ok(payload) = sealing::unpad(&padded) else {
        return ModelState::Damaged;
    };
    match training::unframe(payload) {
        Ok(Some(bytes)) => match records::model_from_bytes(bytes) {
            Ok(model) => ModelState::Loaded(Arc::new(chiron_sandbox::PreparedModel::new(&model))),
            Err(_) => ModelState::Damaged,
        },
        Ok(None) => ModelState::Dummy,
        Err(_) => ModelState::Damaged,
    }
}
