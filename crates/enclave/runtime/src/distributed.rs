//! The runtime's part of distributed training (DESIGN §6): the parameter-server role's gRPC
//! service and the worker role's [`GradientExchange`] that reaches it, both over mutual RA-TLS
//! between enclaves of one measurement.
//!
//! A worker's engine calls the exchange at every optimizer step; the exchange sends the step's
//! gradients (one fixed size per model) and blocks until the server has closed the round and
//! answers with the parameters. The server averages and applies the optimizer
//! ([`ParameterServer`]); its state never leaves the enclaves.

use std::sync::Mutex;

use chiron_engine::{
    AdamConfig, EngineError, ExchangeReply, ExchangeRequest, GradientExchange, LrConfig,
    OptimizerSpec, ParameterServer, Schedule, SgdConfig, UpdateRule,
};
use chiron_proto::enclave::parameter_server_client::ParameterServerClient;
use chiron_proto::enclave::parameter_server_server::ParameterServer as PsService;
use chiron_proto::enclave::{Empty, JoinRequest, StepReply, StepRequest};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Bytes of an encoded [`OptimizerSpec`].
pub const SPEC_BYTES: usize = 46;

/// The fixed encoding of an optimizer spec: rule tag, five rule fields, learning-rate base,
/// schedule tag and two schedule fields, warm-up.
pub fn encode_spec(spec: &OptimizerSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(SPEC_BYTES);
    let (tag, f): (u8, [f32; 5]) = match spec.rule {
        UpdateRule::Sgd(c) => (
            0,
            [
                c.momentum,
                f32::from(u8::from(c.nesterov)),
                c.weight_decay,
                0.0,
                0.0,
            ],
        ),
        UpdateRule::Adam(c) => (
            1,
            [
                c.beta1,
                c.beta2,
                c.eps,
                c.weight_decay,
                f32::from(u8::from(c.decoupled)),
            ],
        ),
    };
    out.push(tag);
    f.iter()
        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out.extend_from_slice(&spec.lr.base.to_le_bytes());
    let (stag, a, b) = match spec.lr.schedule {
        Schedule::Constant => (0u8, 0u64, 0f32),
        Schedule::Step { every, gamma } => (1, every, gamma),
        Schedule::Cosine { total, min_lr } => (2, total, min_lr),
    };
    out.push(stag);
    out.extend_from_slice(&a.to_le_bytes());
    out.extend_from_slice(&b.to_le_bytes());
    out.extend_from_slice(&spec.lr.warmup.to_le_bytes());
    out
}

/// Parses [`encode_spec`] output.
pub fn decode_spec(b: &[u8]) -> Option<OptimizerSpec> {
    if b.len() != SPEC_BYTES {
        return None;
    }
    let f = |i: usize| f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let rule = match b[0] {
        0 => UpdateRule::Sgd(SgdConfig {
            momentum: f(1),
            nesterov: f(5) != 0.0,
            weight_decay: f(9),
        }),
        1 => UpdateRule::Adam(AdamConfig {
            beta1: f(1),
            beta2: f(5),
            eps: f(9),
            weight_decay: f(13),
            decoupled: f(17) != 0.0,
        }),
        _ => return None,
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[26..34]);
    let a = u64::from_le_bytes(a);
    let schedule = match b[25] {
        0 => Schedule::Constant,
        1 => Schedule::Step {
            every: a,
            gamma: f(34),
        },
        2 => Schedule::Cosine {
            total: a,
            min_lr: f(34),
        },
        _ => return None,
    };
    Some(OptimizerSpec {
        rule,
        lr: LrConfig {
            base: f(21),
            schedule,
            warmup: {
                let mut w = [0u8; 8];
                w.copy_from_slice(&b[38..46]);
                u64::from_le_bytes(w)
            },
        },
    })
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn bytes_of(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The parameter-server role: one [`ParameterServer`] for the job, created by the first
/// worker's `Join`; `Step` answers once the round the worker joined has closed.
pub struct ParameterServerRole {
    server: Mutex<Option<ParameterServer>>,
    workers: usize,
    backups: usize,
    version: watch::Sender<u64>,
}

impl ParameterServerRole {
    /// A role for `workers` workers of which `backups` may lag each round.
    pub fn new(workers: usize, backups: usize) -> Self {
        Self {
            server: Mutex::new(None),
            workers,
            backups,
            version: watch::channel(0).0,
        }
    }
}

fn refused(e: EngineError) -> Status {
    Status::invalid_argument(format!("step refused: {e}"))
}

#[tonic::async_trait]
impl PsService for ParameterServerRole {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        let spec = decode_spec(&r.spec).ok_or_else(|| Status::invalid_argument("bad spec"))?;
        let numels: Vec<usize> = r.numels.iter().map(|&n| n as usize).collect();
        let mut server = self
            .server
            .lock()
            .map_err(|_| Status::internal("internal error"))?;
        match server.as_ref() {
            // Every worker starts from the same parameters; later joins only check the shape.
            Some(s)
                if s.numels() == numels.as_slice() && s.params().len() * 4 == r.initial.len() => {}
            Some(_) => return Err(Status::invalid_argument("another model")),
            None => {
                *server = Some(
                    ParameterServer::new(
                        spec,
                        numels,
                        f32s(&r.initial),
                        self.workers,
                        self.backups,
                    )
                    .map_err(refused)?,
                );
            }
        }
        Ok(Response::new(Empty {}))
    }

    async fn step(&self, request: Request<StepRequest>) -> Result<Response<StepReply>, Status> {
        let r = request.into_inner();
        let (Some(worker), Some(version)) = (r.worker, r.version) else {
            return Err(Status::invalid_argument(
                "a step names its worker and version",
            ));
        };
        let mut seen = self.version.subscribe();
        {
            let mut guard = self
                .server
                .lock()
                .map_err(|_| Status::internal("internal error"))?;
            let server = guard
                .as_mut()
                .ok_or_else(|| Status::failed_precondition("no worker has joined"))?;
            let has: Vec<bool> = r.has_grad.iter().map(|&b| b != 0).collect();
            if server
                .submit(worker as usize, version, &f32s(&r.grads), &has)
                .map_err(refused)?
            {
                self.version.send_replace(server.version());
            }
        }
        seen.wait_for(|v| *v > version)
            .await
            .map_err(|_| Status::internal("internal error"))?;
        let guard = self
            .server
            .lock()
            .map_err(|_| Status::internal("internal error"))?;
        let server = guard
            .as_ref()
            .ok_or_else(|| Status::internal("internal error"))?;
        Ok(Response::new(StepReply {
            version: Some(server.version()),
            params: bytes_of(server.params()),
        }))
    }
}

/// The worker role's exchange: a worker engine's steps, sent to the parameter server over a
/// (mutual RA-TLS) channel. Called from the engine's (blocking) thread.
pub struct RemoteExchange {
    handle: Handle,
    client: ParameterServerClient<Channel>,
    worker: u32,
    sizes: Option<SizeLog>,
}

/// Encoded `(request, reply)` sizes of a worker's steps, in order.
pub type SizeLog = std::sync::Arc<Mutex<Vec<(usize, usize)>>>;

impl RemoteExchange {
    /// Worker `worker` of a job whose server is reached through `channel`; `handle` runs the
    /// calls.
    pub fn new(handle: Handle, channel: Channel, worker: u32) -> Self {
        Self {
            handle,
            client: ParameterServerClient::new(channel)
                .max_decoding_message_size(crate::server::MAX_REQUEST_BYTES)
                .max_encoding_message_size(crate::server::MAX_REQUEST_BYTES),
            worker,
            sizes: None,
        }
    }

    /// Also records the encoded size of every step's request and reply in `sizes` (what the
    /// host sees of the link, before TLS framing).
    pub fn with_size_log(mut self, sizes: SizeLog) -> Self {
        self.sizes = Some(sizes);
        self
    }
}

impl GradientExchange for RemoteExchange {
    fn exchange(&mut self, r: &ExchangeRequest<'_>) -> chiron_engine::Result<ExchangeReply> {
        let mut client = self.client.clone();
        let worker = self.worker;
        let join = r.initial.map(|initial| JoinRequest {
            worker,
            spec: encode_spec(&r.spec),
            numels: r.numels.iter().map(|&n| n as u64).collect(),
            initial: bytes_of(initial),
        });
        let step = StepRequest {
            worker: Some(worker),
            version: Some(r.version),
            grads: bytes_of(r.grads),
            has_grad: r.has_grad.iter().map(|&h| u8::from(h)).collect(),
        };
        let request_len = prost::Message::encoded_len(&step);
        let reply = self
            .handle
            .block_on(async move {
                if let Some(join) = join {
                    client.join(join).await?;
                }
                client.step(step).await
            })
            // The link failed or the server refused: the step cannot happen.
            .map_err(|_| EngineError::ResourceExhausted)?
            .into_inner();
        if let Some(log) = &self.sizes
            && let Ok(mut log) = log.lock()
        {
            log.push((request_len, prost::Message::encoded_len(&reply)));
        }
        Ok(ExchangeReply {
            version: reply.version.ok_or(EngineError::InvalidShape)?,
            params: f32s(&reply.params),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn specs_round_trip_in_a_fixed_size() {
        for spec in [
            OptimizerSpec {
                rule: UpdateRule::Sgd(SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 5e-4,
                }),
                lr: LrConfig {
                    base: 0.1,
                    schedule: Schedule::Cosine {
                        total: 1000,
                        min_lr: 0.0,
                    },
                    warmup: 50,
                },
            },
            OptimizerSpec {
                rule: UpdateRule::Adam(AdamConfig {
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                    decoupled: true,
                }),
                lr: LrConfig {
                    base: 3e-3,
                    schedule: Schedule::Step {
                        every: 10,
                        gamma: 0.5,
                    },
                    warmup: 0,
                },
            },
        ] {
            let b = encode_spec(&spec);
            assert_eq!(b.len(), SPEC_BYTES);
            assert_eq!(decode_spec(&b), Some(spec));
        }
        assert_eq!(decode_spec(&[9; SPEC_BYTES]), None);
        assert_eq!(decode_spec(&[0; 3]), None);
    }
}
