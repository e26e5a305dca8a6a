//! The worker role: the `chiron.v1.Worker` service. An assignment from an attested server
//! carries the trainer, the dataset's key, the policy and the worker's shard index; the worker
//! opens the sealed dataset from the shared store, trains its shard in the sandbox with a
//! [`RemoteExchange`] as the engine's optimizer step, forwards the trainer's checkpoints to the
//! server, and keeps the job's fixed schedule: exactly `max_steps` step messages of one size,
//! dummies once the trainer ended, each on the policy's time grid.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chiron_engine::{EngineError, ExchangeReply, ExchangeRequest, GradientExchange, Shard};
use chiron_proto::enclave::parameter_server_client::ParameterServerClient;
use chiron_proto::enclave::worker_server::Worker;
use chiron_proto::enclave::{
    CheckpointRequest, JoinRequest, ShardAssignment, ShardResult, StepReply, StepRequest,
};
use chiron_proto::job::JobPolicy;
use chiron_sandbox::{
    CheckpointSink, CheckpointSinkError, Checkpointing, TrainCheckpoint, run_train_with,
};
use tokio::runtime::Handle;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use zeroize::{Zeroize, Zeroizing};

use super::server::SESSION_BYTES;
use super::{encode_result, f32_bytes, f32s};
use crate::records;
use crate::sealing;
use crate::state::Runtime;
use crate::training::{self, job_engine, load_records, owner_metrics, train_config};

/// One worker's link to its parameter server: the schedule's position, pacing, and the last
/// parameter version seen. Shared by the engine's exchange, the checkpoint forwarder and the
/// dummies that finish the schedule.
pub struct Link {
    handle: Handle,
    client: ParameterServerClient<Channel>,
    job_id: String,
    worker: u32,
    session: Vec<u8>,
    /// Messages the schedule has in all.
    max_steps: u64,
    /// Fixed interval between messages (zero: none).
    interval: Duration,
    started: Instant,
    start_round: u64,
    /// A checkpoint message follows every this many step messages of the schedule.
    checkpoint_every: u64,
    /// Padded size of a checkpoint message's payload (the policy's sealed blob size).
    checkpoint_size: usize,
    /// Whether waits for the grid spin (see [`Link::busy_waiting`]).
    busy: bool,
    /// The trainer's latest checkpoint offer.
    offer: Mutex<Option<PendingOffer>>,
    state: Mutex<LinkState>,
}

/// A trainer checkpoint waiting for the link's next checkpoint message.
struct PendingOffer {
    epochs_done: u32,
    /// Step messages sent when it was made: where a worker resuming from it starts.
    position: u64,
    state: Zeroizing<Vec<u8>>,
}

struct LinkState {
    sent: u64,
    version: u64,
    /// Total gradient elements and parameter count, once a real step told them.
    shape: Option<(usize, usize)>,
}

/// Why a link call failed (the server refused it or could not be reached).
#[derive(Debug)]
pub struct LinkError;

impl Link {
    /// Worker `worker`'s link for job `job_id` and assignment `session`, at schedule position
    /// `start_round` of `max_steps`, through `channel` (mutual RA-TLS to the server); a
    /// checkpoint message of `checkpoint_size` follows every `checkpoint_every` steps.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        handle: Handle,
        channel: Channel,
        job_id: String,
        worker: u32,
        session: Vec<u8>,
        start_round: u64,
        max_steps: u64,
        interval: Duration,
        checkpoint_every: u64,
        checkpoint_size: usize,
    ) -> Self {
        Self {
            handle,
            client: ParameterServerClient::new(channel)
                .max_decoding_message_size(crate::server::MAX_REQUEST_BYTES)
                .max_encoding_message_size(crate::server::MAX_REQUEST_BYTES),
            job_id,
            worker,
            session,
            max_steps,
            interval,
            started: Instant::now(),
            start_round,
            checkpoint_every: checkpoint_every.max(1),
            checkpoint_size,
            busy: false,
            offer: Mutex::new(None),
            state: Mutex::new(LinkState {
                sent: start_round,
                version: 0,
                shape: None,
            }),
        }
    }

    /// Spins instead of sleeping while it waits for the next point of the grid (a confined
    /// job's thread stays runnable: see `crate::resources`).
    pub fn busy_waiting(mut self, busy: bool) -> Self {
        self.busy = busy;
        self
    }

    /// The parameter version of the last reply.
    pub fn version(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.version)
    }

    /// Waits for the next point of the time grid (the message's own, or the first one after
    /// now if the step came late), so send times do not depend on how long a step took.
    fn pace(&self, sent: u64) {
        if self.interval.is_zero() {
            return;
        }
        let own = sent.saturating_sub(self.start_round);
        let elapsed = self.started.elapsed().as_nanos();
        let step = self.interval.as_nanos().max(1);
        let next = u64::try_from(elapsed.div_ceil(step)).unwrap_or(u64::MAX);
        let k = own.max(next);
        let due = self.started
            + self
                .interval
                .saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
        crate::resources::wait_until(due, self.busy);
    }

    /// Sends one message of the schedule: a gradient, or a dummy (`grads` all zeros).
    fn step(
        &self,
        version: u64,
        grads: Vec<u8>,
        has_grad: Vec<u8>,
        dummy: bool,
    ) -> Result<StepReply, LinkError> {
        let sent = self.state.lock().map_err(|_| LinkError)?.sent;
        if sent >= self.max_steps {
            return Err(LinkError);
        }
        self.pace(sent);
        let request = StepRequest {
            worker: Some(self.worker),
            version: Some(version),
            grads,
            has_grad,
            job_id: self.job_id.clone(),
            dummy: Some(u32::from(dummy)),
            session: self.session.clone(),
        };
        let mut client = self.client.clone();
        let reply = self
            .handle
            .block_on(async move { client.step(request).await })
            .map_err(|_| LinkError)?
            .into_inner();
        let sent = {
            let mut state = self.state.lock().map_err(|_| LinkError)?;
            state.sent += 1;
            state.version = reply.version.unwrap_or(state.version);
            state.sent
        };
        if sent.is_multiple_of(self.checkpoint_every) {
            self.send_checkpoint()?;
        }
        Ok(reply)
    }

    /// Sends dummies until the schedule is complete. Fails if no real step ever told the
    /// model's size (the trainer failed before its first step), or if the link fails.
    pub fn finish(&self) -> Result<(), LinkError> {
        loop {
            let (sent, version, shape) = {
                let s = self.state.lock().map_err(|_| LinkError)?;
                (s.sent, s.version, s.shape)
            };
            if sent >= self.max_steps {
                return Ok(());
            }
            let (elements, params) = shape.ok_or(LinkError)?;
            self.step(version, vec![0; elements * 4], vec![0; params], true)?;
        }
    }

    /// Keeps `checkpoint` as the trainer's latest offer; refused if it cannot fit the padded
    /// size. It travels with the next scheduled checkpoint message, never on its own.
    fn offer(&self, checkpoint: &TrainCheckpoint) -> Result<(), LinkError> {
        let bytes = Zeroizing::new(checkpoint.to_bytes());
        if bytes.len() > training::state_capacity(self.checkpoint_size) {
            return Err(LinkError);
        }
        let sent = self.state.lock().map_err(|_| LinkError)?.sent;
        let mut offer = self.offer.lock().map_err(|_| LinkError)?;
        *offer = Some(PendingOffer {
            epochs_done: checkpoint.epochs_done,
            position: sent,
            state: bytes,
        });
        Ok(())
    }

    /// Sends the scheduled checkpoint message: the latest offer, or a dummy of the same padded
    /// size when there is none, so its count and times follow the step schedule alone.
    fn send_checkpoint(&self) -> Result<(), LinkError> {
        let (epochs_done, position, payload) =
            match self.offer.lock().map_err(|_| LinkError)?.as_ref() {
                Some(o) => (
                    o.epochs_done,
                    o.position,
                    training::frame(Some(o.state.as_slice())),
                ),
                None => (0, 0, training::frame(None)),
            };
        let padded = sealing::pad(&payload, self.checkpoint_size).map_err(|_| LinkError)?;
        let request = CheckpointRequest {
            job_id: self.job_id.clone(),
            worker: Some(self.worker),
            epochs_done: Some(epochs_done),
            checkpoint: padded.to_vec(),
            session: self.session.clone(),
            position: Some(position),
        };
        let mut client = self.client.clone();
        self.handle
            .block_on(async move { client.checkpoint(request).await })
            .map(|_| ())
            .map_err(|_| LinkError)
    }
}

/// A worker engine's optimizer step, through its [`Link`]: joins the server on the first step
/// of a fresh run, then sends each step's gradients and takes back the parameters.
pub struct RemoteExchange {
    link: Arc<Link>,
}

impl RemoteExchange {
    /// The exchange over `link`.
    pub fn new(link: Arc<Link>) -> Self {
        Self { link }
    }
}

impl GradientExchange for RemoteExchange {
    fn exchange(&mut self, r: &ExchangeRequest<'_>) -> chiron_engine::Result<ExchangeReply> {
        // The link failed or the server refused: the step cannot happen.
        let failed = |_| EngineError::ResourceExhausted;
        let link = &self.link;
        if let Some(initial) = r.initial {
            let join = JoinRequest {
                worker: Some(link.worker),
                spec: r.spec.to_bytes(),
                numels: r.numels.iter().map(|&n| n as u64).collect(),
                initial: f32_bytes(initial),
                job_id: link.job_id.clone(),
                session: link.session.clone(),
            };
            let mut client = link.client.clone();
            link.handle
                .block_on(async move { client.join(join).await })
                .map_err(|_| EngineError::ResourceExhausted)?;
        }
        if let Ok(mut s) = link.state.lock() {
            s.shape = Some((r.grads.len(), r.has_grad.len()));
        }
        let reply = link
            .step(
                r.version,
                f32_bytes(r.grads),
                r.has_grad.iter().map(|&h| u8::from(h)).collect(),
                false,
            )
            .map_err(failed)?;
        Ok(ExchangeReply {
            version: reply.version.ok_or(EngineError::InvalidShape)?,
            params: f32s(&reply.params),
        })
    }
}

/// Takes the trainer's checkpoint offers for the link's checkpoint schedule (the server seals
/// them with its own state on the job's grid).
struct Forwarder {
    link: Arc<Link>,
}

impl CheckpointSink for Forwarder {
    fn store(&mut self, checkpoint: &TrainCheckpoint) -> Result<(), CheckpointSinkError> {
        self.link.offer(checkpoint).map_err(|_| CheckpointSinkError)
    }
}

/// The `chiron.v1.Worker` service.
pub struct WorkerService {
    runtime: Arc<Runtime>,
}

impl WorkerService {
    /// The service of `runtime` (whose peer setup dials the servers).
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }
}

/// A checked assignment.
struct Assignment {
    raw: ShardAssignment,
    policy: JobPolicy,
    worker: u32,
    workers: u32,
    data_key: Zeroizing<[u8; 32]>,
    step_interval: Duration,
}

fn check(mut raw: ShardAssignment) -> Result<Assignment, Status> {
    let invalid = |m: &str| Status::invalid_argument(m);
    let data_key: Result<[u8; 32], _> = raw.data_key.as_slice().try_into();
    // The key lives on only in its zeroizing copy.
    raw.data_key.zeroize();
    let data_key = Zeroizing::new(data_key.map_err(|_| invalid("data_key must be 32 bytes"))?);
    let policy = JobPolicy::parse(&raw.policy_toml).map_err(Status::invalid_argument)?;
    let distributed = policy
        .distributed
        .ok_or_else(|| invalid("the job policy has no [distributed] table"))?;
    let worker = raw.worker.ok_or_else(|| invalid("no worker index"))?;
    if worker >= distributed.workers {
        return Err(invalid("the worker index is beyond the policy's workers"));
    }
    if !records::valid_job_id(&raw.job_id) || raw.session.len() != SESSION_BYTES {
        return Err(invalid("malformed job id or session"));
    }
    Ok(Assignment {
        raw,
        policy,
        worker,
        workers: distributed.workers,
        data_key,
        step_interval: Duration::from_millis(distributed.step_interval_ms),
    })
}

#[tonic::async_trait]
impl Worker for WorkerService {
    async fn run_shard(
        &self,
        request: Request<ShardAssignment>,
    ) -> Result<Response<ShardResult>, Status> {
        let assignment = check(request.into_inner())?;
        let runtime = self.runtime.clone();
        let handle = Handle::current();
        let result = tokio::task::spawn_blocking(move || run_shard(&runtime, &handle, assignment))
            .await
            .map_err(|_| Status::internal("internal error"))?;
        Ok(Response::new(result))
    }
}

/// Trains the assigned shard and keeps the schedule; always answers with a fixed-size result.
fn run_shard(runtime: &Arc<Runtime>, handle: &Handle, mut a: Assignment) -> ShardResult {
    let size = a.policy.sealed_blob_bytes();
    let failed = || ShardResult {
        ok: Some(0),
        version: Some(0),
        payload: vec![0; size],
    };
    let Some(link) = open_link(runtime, handle, &a) else {
        return failed();
    };
    // Memory and CPU held for the whole schedule, as a job's on its service enclave; without
    // the reservation the trainer does not run and the schedule goes on with dummies.
    let reservation = runtime.resources.reserve(&a.policy);
    // This blocking-pool thread (2 MiB stack) runs an unconfined trainer: its stack resident
    // first.
    crate::resources::touch_stack(1 << 20);
    // The shard's trainer, then dummies to the schedule's end whatever it did. A confined shard
    // does both on one thread of its own (it joins a one-thread pool for good: see
    // `chiron_engine::on_this_thread`), busy to the end, with a trainer's stack resident first:
    // neither its CPU time nor its lifetime shows when the trainer finished.
    let run = |a: &mut Assignment| {
        let outcome = match &reservation {
            Ok(_) => train_shard(runtime, handle, a, &link),
            Err(_) => None,
        };
        (outcome, link.finish())
    };
    let (outcome, finished) = if a.policy.constant_cpu {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("chiron-trainer".into())
                .stack_size(crate::resources::TRAINER_STACK_BYTES)
                .spawn_scoped(scope, || {
                    crate::resources::touch_stack(
                        crate::resources::TRAINER_STACK_BYTES - (1 << 20),
                    );
                    crate::resources::lower_job_thread_priority();
                    chiron_engine::on_this_thread(|| run(&mut a))
                })
                .ok()
                .and_then(|t| t.join().ok())
                .unwrap_or((None, Err(LinkError)))
        })
    } else {
        run(&mut a)
    };
    drop(reservation);
    let (Some(outcome), Ok(())) = (outcome, finished) else {
        return failed();
    };
    let Some(encoded) = encode_result(&outcome.0, &outcome.1) else {
        return failed();
    };
    match sealing::pad(&encoded, size) {
        Ok(payload) => ShardResult {
            ok: Some(1),
            version: Some(link.version()),
            payload: payload.to_vec(),
        },
        Err(_) => failed(),
    }
}

fn open_link(runtime: &Arc<Runtime>, handle: &Handle, a: &Assignment) -> Option<Arc<Link>> {
    let peers = runtime.peers.get()?;
    let channel = handle
        .block_on(chiron_proto::peer_channel(
            &a.raw.server,
            peers.client_tls.clone(),
            chiron_attest::ratls::server_name(),
        ))
        .ok()?;
    Some(Arc::new(
        Link::new(
            handle.clone(),
            channel,
            a.raw.job_id.clone(),
            a.worker,
            a.raw.session.clone(),
            a.raw.start_round.unwrap_or(0),
            a.policy.max_steps,
            a.step_interval,
            // As many checkpoint messages as the job's grid has ticks, spread over the schedule.
            a.policy.max_steps / (a.policy.checkpoint_ticks() + 1),
            a.policy.sealed_blob_bytes(),
        )
        .busy_waiting(a.policy.constant_cpu),
    ))
}

/// The shard's training run: its model and owner-visible metrics, or `None` if the data, the
/// checkpoint or the trainer failed.
fn train_shard(
    runtime: &Arc<Runtime>,
    handle: &Handle,
    a: &mut Assignment,
    link: &Arc<Link>,
) -> Option<(chiron_sandbox::SavedModel, Vec<records::MetricRecord>)> {
    let module = runtime
        .sandbox
        .load(&std::mem::take(&mut a.raw.module))
        .ok()?;
    let records = Arc::new(load_records(runtime, handle, &a.raw.dataset_blob, &a.data_key).ok()?);
    let shard = Shard::new(records, u64::from(a.worker), u64::from(a.workers)).ok()?;
    let resume_from = if a.raw.resume.is_empty() {
        None
    } else {
        let bytes = sealing::unpad(&a.raw.resume).ok()?;
        Some(TrainCheckpoint::from_bytes(bytes).ok()?)
    };
    let policy = &a.policy;
    let engine = job_engine(runtime, policy)
        .with_data(Arc::new(shard))
        .with_exchange(Box::new(RemoteExchange::new(link.clone())));
    let outcome = run_train_with(
        &module,
        engine,
        &train_config(policy, Duration::from_secs(policy.wall_seconds)),
        Checkpointing {
            resume_from,
            sink: Some(Box::new(Forwarder { link: link.clone() })),
        },
    )
    .ok()?;
    let metrics = owner_metrics(policy, &outcome.metrics);
    Some((outcome.model?, metrics))
}
