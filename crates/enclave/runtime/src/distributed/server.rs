//! The parameter-server role: one [`JobServer`] per running distributed job (registered by
//! the [`coordinator`](super::coordinator)), and the `chiron.v1.ParameterServer` gRPC service
//! its workers call over mutual RA-TLS.
//!
//! A step is answered when the round it joined has closed (synchronous mode) or at once
//! (asynchronous mode, late gradients, dummies). Messages from a worker index are accepted only
//! with the session of that index's current assignment, so a worker left over from before a
//! replacement or a server restart is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chiron_engine::{Consistency, Gradient, OptimizerSpec, ParameterServer, Submitted};
use chiron_proto::enclave::parameter_server_server::ParameterServer as PsService;
use chiron_proto::enclave::{CheckpointRequest, Empty, JoinRequest, StepReply, StepRequest};
use chiron_proto::job::JobPolicy;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::{ServerCheckpoint, f32_bytes, f32s};
use crate::schedule::{Offer, Offers};
use crate::sealing;
use crate::state::Runtime;
use crate::training;

/// Bytes of an assignment's session.
pub const SESSION_BYTES: usize = 16;

/// The newest trainer checkpoint a worker sent.
struct Latest {
    epochs_done: u32,
    /// Step messages its worker had sent: where a worker resuming from it starts.
    position: u64,
    /// As the worker sent it (padded to the job's blob size).
    padded: Zeroizing<Vec<u8>>,
}

/// A distributed job's server-side state while it trains.
pub struct JobServer {
    /// The job.
    pub job_id: String,
    /// Its policy.
    pub policy: JobPolicy,
    workers: usize,
    consistency: Consistency,
    /// Created by the first join, or restored from a checkpoint.
    state: Mutex<Option<ParameterServer>>,
    /// The state's version, for steps waiting on their round.
    version: watch::Sender<u64>,
    /// Per worker: step messages received (its schedule position) and its current session.
    workers_state: Mutex<Vec<(u64, Option<[u8; SESSION_BYTES]>)>>,
    /// The newest trainer checkpoint.
    latest: Mutex<Option<Latest>>,
    /// Serialises checkpoint offers.
    checkpointing: tokio::sync::Mutex<()>,
    /// Where the server's checkpoints go: the job's grid writes the latest.
    offers: Arc<Offers>,
}

impl JobServer {
    /// The server of job `job_id` with `workers` workers, resuming from `resume` if given.
    pub fn new(
        job_id: String,
        policy: JobPolicy,
        workers: usize,
        consistency: Consistency,
        resume: Option<(ServerCheckpoint, Zeroizing<Vec<u8>>)>,
        offers: Arc<Offers>,
    ) -> Result<Self, crate::RuntimeError> {
        let mut state = None;
        let mut latest = None;
        if let Some((checkpoint, padded_trainer)) = resume {
            if !checkpoint.server.is_empty() {
                state = Some(
                    ParameterServer::from_bytes(&checkpoint.server)
                        .map_err(|_| crate::RuntimeError::Unseal("server checkpoint"))?,
                );
            }
            latest = Some(Latest {
                epochs_done: checkpoint.epochs_done,
                position: checkpoint.position,
                padded: padded_trainer,
            });
        }
        let version = state.as_ref().map_or(0, ParameterServer::version);
        Ok(Self {
            job_id,
            policy,
            workers,
            consistency,
            state: Mutex::new(state),
            version: watch::channel(version).0,
            workers_state: Mutex::new(vec![(0, None); workers]),
            latest: Mutex::new(latest),
            checkpointing: tokio::sync::Mutex::new(()),
            offers,
        })
    }

    /// Starts a new assignment of worker `worker` (the first, or a replacement's): returns its
    /// session, and the newest trainer checkpoint (padded; empty for none) with the schedule
    /// position the worker resumes at. Messages of the index's earlier session are refused
    /// from now on.
    pub fn assign(&self, worker: usize) -> Option<([u8; SESSION_BYTES], u64, Vec<u8>)> {
        let session = sealing::random::<SESSION_BYTES>().ok()?;
        let (start, resume) = self
            .latest
            .lock()
            .ok()?
            .as_ref()
            .map_or((0, Vec::new()), |l| (l.position, l.padded.to_vec()));
        let mut w = self.workers_state.lock().ok()?;
        *w.get_mut(worker)? = (start, Some(session));
        Some((session, start, resume))
    }

    /// Ends the job here: steps still waiting are answered (their round will not close).
    pub fn close(&self) {
        self.version.send_replace(u64::MAX);
    }

    /// Checks that `session` is worker `worker`'s current one.
    fn check_session(&self, worker: usize, session: &[u8]) -> Result<(), Status> {
        let w = self.workers_state.lock().map_err(|_| internal())?;
        match w.get(worker) {
            Some((_, Some(current))) if current.as_slice() == session => Ok(()),
            Some(_) => Err(Status::permission_denied(
                "stale session: this worker index has been reassigned",
            )),
            None => Err(Status::invalid_argument("no such worker index")),
        }
    }

    fn reply(&self) -> Result<StepReply, Status> {
        let state = self.state.lock().map_err(|_| internal())?;
        let s = state
            .as_ref()
            .ok_or_else(|| Status::failed_precondition("no worker has joined"))?;
        Ok(StepReply {
            version: Some(s.version()),
            params: f32_bytes(s.params()),
        })
    }
}

fn internal() -> Status {
    Status::internal("internal error")
}

/// The running distributed jobs this enclave serves, by id.
pub type Registry = Arc<Mutex<HashMap<String, Arc<JobServer>>>>;

/// The `chiron.v1.ParameterServer` service over a [`Registry`].
pub struct ParameterServerService {
    runtime: Arc<Runtime>,
}

impl ParameterServerService {
    /// The service of `runtime`'s distributed jobs.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }

    fn job(&self, id: &str) -> Result<Arc<JobServer>, Status> {
        self.runtime
            .parameter_servers
            .lock()
            .map_err(|_| internal())?
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found("no such distributed job is training here"))
    }
}

#[tonic::async_trait]
impl PsService for ParameterServerService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let job = self.job(&r.job_id)?;
        let worker = r
            .worker
            .ok_or_else(|| Status::invalid_argument("a join names its worker"))?;
        job.check_session(worker as usize, &r.session)?;
        let spec = OptimizerSpec::from_bytes(&r.spec)
            .ok_or_else(|| Status::invalid_argument("bad optimizer spec"))?;
        let numels: Vec<usize> = r.numels.iter().map(|&n| n as usize).collect();
        let mut state = job.state.lock().map_err(|_| internal())?;
        match state.as_ref() {
            // Every worker starts from the same parameters; later joins only check the shape.
            Some(s)
                if s.numels() == numels.as_slice() && s.params().len() * 4 == r.initial.len() => {}
            Some(_) => return Err(Status::invalid_argument("another model")),
            None => {
                *state = Some(
                    ParameterServer::new(
                        spec,
                        numels,
                        f32s(&r.initial),
                        job.workers,
                        job.consistency,
                    )
                    .map_err(|_| Status::invalid_argument("the model and the job disagree"))?,
                );
            }
        }
        Ok(Response::new(Empty {}))
    }

    async fn step(&self, request: Request<StepRequest>) -> Result<Response<StepReply>, Status> {
        let r = request.into_inner();
        let (Some(worker), Some(version), Some(dummy)) = (r.worker, r.version, r.dummy) else {
            return Err(Status::invalid_argument(
                "a step names its worker, version and kind",
            ));
        };
        let job = self.job(&r.job_id)?;
        let worker = worker as usize;
        job.check_session(worker, &r.session)?;
        let mut seen = job.version.subscribe();
        let submitted = {
            let mut state = job.state.lock().map_err(|_| internal())?;
            let server = state
                .as_mut()
                .ok_or_else(|| Status::failed_precondition("no worker has joined"))?;
            let has: Vec<bool> = r.has_grad.iter().map(|&b| b != 0).collect();
            let grads = f32s(&r.grads);
            let gradient = (dummy == 0).then_some(Gradient {
                grads: &grads,
                has_grad: &has,
            });
            let submitted = server
                .submit(worker, version, gradient)
                .map_err(|_| Status::invalid_argument("step refused: wrong sizes"))?;
            // The schedule position moves with every accepted message; at its end the worker
            // is retired, so no round waits for it any more.
            let done = {
                let mut w = job.workers_state.lock().map_err(|_| internal())?;
                let entry = w.get_mut(worker).ok_or_else(internal)?;
                entry.0 += 1;
                entry.0 >= job.policy.max_steps
            };
            if done {
                server.retire(worker);
            }
            job.version.send_replace(server.version());
            if done { Submitted::Now } else { submitted }
        };
        if let Submitted::Round(round) = submitted {
            seen.wait_for(|v| *v > round)
                .await
                .map_err(|_| internal())?;
        }
        Ok(Response::new(job.reply()?))
    }

    async fn checkpoint(
        &self,
        request: Request<CheckpointRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let (Some(worker), Some(epochs_done)) = (r.worker, r.epochs_done) else {
            return Err(Status::invalid_argument(
                "a checkpoint names its worker and epoch",
            ));
        };
        let job = self.job(&r.job_id)?;
        job.check_session(worker as usize, &r.session)?;
        if r.checkpoint.len() != job.policy.sealed_blob_bytes() {
            return Err(Status::invalid_argument(
                "a checkpoint has the job's blob size",
            ));
        }
        let _one_at_a_time = job.checkpointing.lock().await;
        let newer = job
            .latest
            .lock()
            .map_err(|_| internal())?
            .as_ref()
            .is_none_or(|l| epochs_done > l.epochs_done);
        // Every worker sends its checkpoint of an epoch; the first one is kept.
        if !newer {
            return Ok(Response::new(Empty {}));
        }
        let framed = sealing::unpad(&r.checkpoint)
            .map_err(|_| Status::invalid_argument("bad checkpoint padding"))?;
        // A scheduled message with no offer behind it carries the dummy: nothing to keep.
        let Some(trainer) = training::unframe(framed)
            .map_err(|_| Status::invalid_argument("bad checkpoint framing"))?
        else {
            return Ok(Response::new(Empty {}));
        };
        let parsed = chiron_sandbox::TrainCheckpoint::from_bytes(trainer)
            .map_err(|_| Status::invalid_argument("malformed trainer checkpoint"))?;
        let server_state = {
            let state = job.state.lock().map_err(|_| internal())?;
            Zeroizing::new(
                state
                    .as_ref()
                    .map(ParameterServer::to_bytes)
                    .unwrap_or_default(),
            )
        };
        let received = job
            .workers_state
            .lock()
            .map_err(|_| internal())?
            .get(worker as usize)
            .map_or(0, |(s, _)| *s);
        // Where the trainer stood when it offered this state (before the message that carried
        // it): a worker resuming from it takes up the schedule there.
        let position = r.position.unwrap_or(received).min(received);
        let record = ServerCheckpoint {
            epochs_done,
            position,
            trainer: Zeroizing::new(trainer.to_vec()),
            server: server_state,
        };
        let payload = record.to_bytes();
        if payload.len() > training::max_state_bytes(&job.policy) {
            return Err(Status::resource_exhausted(
                "the checkpoint exceeds the job's sealed blob size",
            ));
        }
        let padded = sealing::pad(trainer, job.policy.sealed_blob_bytes())
            .map_err(|_| Status::invalid_argument("bad checkpoint padding"))?;
        // An offer: the job's grid writes it at its next tick, never now.
        job.offers.offer(Offer {
            payload,
            metrics: training::owner_metrics(&job.policy, &parsed.metrics),
        });
        if let Ok(mut latest) = job.latest.lock() {
            *latest = Some(Latest {
                epochs_done,
                position,
                padded,
            });
        }
        Ok(Response::new(Empty {}))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const POLICY: &str = "epochs = 1\nbatch_size = 8\nseed = 1\nmax_steps = 10\n\
        wall_seconds = 60\n[predictions]\noutput = \"label\"\nquery_budget = 1\n\
        rate_per_second = 1\n[distributed]\nworkers = 2\n";

    #[test]
    fn only_the_current_session_of_a_worker_index_is_accepted() {
        let policy = JobPolicy::parse(POLICY).unwrap();
        let job = JobServer::new(
            "0".repeat(32),
            policy,
            2,
            Consistency::Sync { backups: 0 },
            None,
            Arc::default(),
        )
        .unwrap();
        // Before any assignment, no session is valid (not even all zeros).
        assert!(job.check_session(0, &[0; SESSION_BYTES]).is_err());
        let (first, start, resume) = job.assign(0).unwrap();
        assert_eq!((start, resume.len()), (0, 0));
        assert!(job.check_session(0, &first).is_ok());
        assert!(
            job.check_session(1, &first).is_err(),
            "sessions are per index"
        );
        // A replacement's assignment makes the first session stale.
        let (second, _, _) = job.assign(0).unwrap();
        assert_ne!(first, second);
        let stale = job.check_session(0, &first).unwrap_err();
        assert_eq!(stale.code(), tonic::Code::PermissionDenied);
        assert!(job.check_session(0, &second).is_ok());
        assert!(job.check_session(2, &second).is_err());
    }
}
