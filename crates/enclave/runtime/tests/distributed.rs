//! Distributed training over real sockets: a parameter-server role and worker engines in
//! separate threads, every link mutual RA-TLS between (sim) enclaves of one measurement.
//! Synchronous workers on equal shards train the model one engine trains on the whole batch;
//! a peer with another measurement is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use chiron_attest::ratls::{self, RaTlsIdentity, RaTlsVerifier};
use chiron_attest::sim::{SimPlatform, SimSource};
use chiron_attest::{Endorsements, Policy};
use chiron_enclave::distributed::{ParameterServerRole, RemoteExchange};
use chiron_engine::{Engine, EngineConfig, Init, LrConfig, Schedule, SgdConfig};

const MEASUREMENT: [u8; 48] = [7; 48];
const BATCH: usize = 12;
const STEPS: usize = 4;

/// An enclave identity on the test's sim platform (a key file the "machines" share).
fn identity(platform_key: &std::path::Path, measurement: [u8; 48]) -> RaTlsIdentity {
    let platform = SimPlatform::load_or_create(platform_key).unwrap();
    RaTlsIdentity::generate(&SimSource::new(platform, measurement)).unwrap()
}

fn verifier() -> Arc<RaTlsVerifier> {
    Arc::new(RaTlsVerifier::new(
        Policy::sim_only(&MEASUREMENT),
        Endorsements::default(),
    ))
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        seed: 4,
        max_live_bytes: 1 << 28,
        max_tensors: 10_000,
        max_steps: 1_000,
    }
}

/// Deterministic features and labels of step `step`'s batch of dataset `data`, rows `rows`.
fn batch(data: usize, step: usize, rows: std::ops::Range<usize>) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..BATCH * 10)
        .map(|i| (((i * 31 + step * 17 + data * 7) % 23) as f32 - 11.0) / 11.0)
        .collect();
    let y: Vec<f32> = (0..BATCH).map(|i| ((i + step + data) % 3) as f32).collect();
    (x[rows.start * 10..rows.end * 10].to_vec(), y[rows].to_vec())
}

/// A linear classifier trained for `STEPS` steps on `rows` of each batch of dataset `data`.
fn train(mut e: Engine, data: usize, rows: std::ops::Range<usize>) -> Vec<f32> {
    let w = e.parameter(&[3, 10], Init::XavierUniform, 10, 3).unwrap();
    let b = e.parameter(&[3], Init::Zeros, 10, 3).unwrap();
    let opt = e
        .sgd(
            &[w, b],
            LrConfig {
                base: 0.2,
                schedule: Schedule::Constant,
                warmup: 0,
            },
            SgdConfig {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            },
        )
        .unwrap();
    for step in 0..STEPS {
        let (xv, yv) = batch(data, step, rows.clone());
        let x = e.from_data(&[yv.len() as u32, 10], &xv).unwrap();
        let y = e.from_data(&[yv.len() as u32], &yv).unwrap();
        let logits = e.linear(x, w, Some(b)).unwrap();
        let loss = e.cross_entropy(logits, y).unwrap();
        e.backward(loss).unwrap();
        e.step(opt).unwrap();
    }
    let mut out = e.to_vec(w).unwrap();
    out.extend(e.to_vec(b).unwrap());
    out
}

/// A parameter server and two workers on dataset `data`, over mutual RA-TLS on loopback.
struct Cluster {
    rt: tokio::runtime::Runtime,
    addr: String,
    platform: std::path::PathBuf,
    _dir: tempfile::TempDir,
    /// Each worker's final parameters.
    results: Vec<Vec<f32>>,
    /// Encoded (request, reply) sizes of every step, per worker.
    sizes: Vec<Vec<(usize, usize)>>,
}

fn cluster(data: usize) -> Cluster {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let platform = dir.path().join("platform.key");
    let server_identity = identity(&platform, MEASUREMENT);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let tls = server_identity.server_config(Some(verifier())).unwrap();
    rt.spawn(chiron_enclave::server::serve_parameter_server(
        ParameterServerRole::new(2, 0),
        listener,
        tls,
    ));
    let workers: Vec<_> = (0..2u32)
        .map(|w| {
            let handle = rt.handle().clone();
            let addr = addr.clone();
            let id = identity(&platform, MEASUREMENT);
            std::thread::spawn(move || {
                let config = Arc::new(id.client_config(verifier()).unwrap());
                let channel = handle
                    .block_on(chiron_proto::tls_channel(
                        &addr,
                        config,
                        ratls::server_name(),
                    ))
                    .unwrap();
                let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
                let exchange = RemoteExchange::new(handle, channel, w).with_size_log(sizes.clone());
                let half = BATCH / 2;
                let rows = w as usize * half..(w as usize + 1) * half;
                let engine = Engine::new(engine_config()).with_exchange(Box::new(exchange));
                let result = train(engine, data, rows);
                let sizes = sizes.lock().unwrap().clone();
                (result, sizes)
            })
        })
        .collect();
    let (results, sizes) = workers.into_iter().map(|h| h.join().unwrap()).unzip();
    Cluster {
        rt,
        addr,
        platform,
        _dir: dir,
        results,
        sizes,
    }
}

#[test]
fn link_traffic_has_one_size_whatever_the_data() {
    let a = cluster(0);
    let b = cluster(1);
    assert_ne!(
        a.results[0], b.results[0],
        "different data, different model"
    );
    assert_eq!(a.sizes, b.sizes);
    // One request size and one reply size for every step of every worker.
    let all: Vec<(usize, usize)> = a.sizes.iter().flatten().copied().collect();
    assert_eq!(all.len(), 2 * STEPS);
    assert!(all.iter().all(|s| *s == all[0]), "{all:?}");
    // Against the ideal 2 × |parameters| × 4 bytes per step (33 parameters): the mask and the
    // field tags are the whole overhead before TLS.
    let ideal = 2 * 33 * 4;
    let overhead = (all[0].0 + all[0].1) as f64 / ideal as f64 - 1.0;
    eprintln!(
        "bytes per step {} + {} (ideal {ideal}): overhead {:.1} %",
        all[0].0,
        all[0].1,
        overhead * 100.0
    );
    assert!(overhead < 0.2, "{overhead}");
}

#[test]
fn workers_over_mutual_ra_tls_train_the_whole_batch_model() {
    let Cluster {
        rt,
        addr,
        platform,
        _dir: _keep_platform_key,
        results,
        ..
    } = cluster(0);
    assert_eq!(results[0], results[1]);
    let single = train(Engine::new(engine_config()), 0, 0..BATCH);
    for (a, b) in results[0].iter().zip(&single) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }

    // A late join with the job's shape succeeds for a peer of the job's measurement, and the
    // same call from a peer of another measurement is refused at the TLS layer.
    let join = |measurement: [u8; 48]| {
        let config = Arc::new(
            identity(&platform, measurement)
                .client_config(verifier())
                .unwrap(),
        );
        rt.block_on(async {
            let channel = chiron_proto::tls_channel(&addr, config, ratls::server_name())
                .await
                .map_err(|e| e.to_string())?;
            chiron_proto::enclave::parameter_server_client::ParameterServerClient::new(channel)
                .join(chiron_proto::enclave::JoinRequest {
                    worker: 1,
                    spec: chiron_enclave::distributed::encode_spec(&chiron_engine::OptimizerSpec {
                        rule: chiron_engine::UpdateRule::Sgd(SgdConfig {
                            momentum: 0.9,
                            nesterov: false,
                            weight_decay: 0.0,
                        }),
                        lr: LrConfig {
                            base: 0.2,
                            schedule: Schedule::Constant,
                            warmup: 0,
                        },
                    }),
                    numels: vec![30, 3],
                    initial: vec![0; 33 * 4],
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    };
    assert_eq!(join(MEASUREMENT), Ok(()));
    assert!(join([8; 48]).is_err());
}
