//! Distributed training end to end, at process level: a server enclave and worker enclaves
//! (the real `chiron-enclave` binary, sim TEE, each under its own host), every peer link
//! mutual RA-TLS through a relay that records what the network sees.
//!
//! - the owner's job trains across the workers and predicts as well as one enclave would;
//! - the traffic between instances is the same, connection by connection, in bytes and TLS
//!   records, for two datasets of one schema;
//! - a worker and then the server are killed mid-job; both are restarted by their hosts, the
//!   job resumes and completes;
//! - a worker on another (sim) platform is refused: it never receives the assignment.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use chiron_host::observe::ObservingRelay;

use common::cluster::{Cluster, distributed_policy};
use common::{accuracy, digits, fixture, other_digits};

/// Steps per worker: 10 epochs of ceil(718 / 32) batches, and a few dummies after.
const EPOCHS: u32 = 10;
const MAX_STEPS: u64 = 240;

/// Runs one job on a fresh two-worker cluster; returns its test accuracy and what the relays
/// saw (server → workers, workers → server).
async fn run(data: &chiron_data::Dataset) -> (f64, Shapes, Shapes) {
    let cluster = Cluster::start(2).await;
    let s = &cluster.service;
    let digest = s.register(fixture("mlp")).await.unwrap();
    let policy = distributed_policy(2, 0, EPOCHS, MAX_STEPS, 4, 15);
    let job = s.submit(&digest, data, &policy).await;
    s.release(&job).await;
    let status = s.wait(&job, Duration::from_secs(300)).await;
    assert_eq!(status.status.unwrap().phase, "ready");
    let predictions = s.predict_split(&job, data, "test").await;
    let shapes = |relays: &[&ObservingRelay]| {
        let mut v: Shapes = relays
            .iter()
            .flat_map(|r| r.connections())
            .map(|c| c.shape())
            .collect();
        // Connections are told apart by what they carry, not by when they were opened.
        v.sort_unstable();
        v
    };
    (
        accuracy(&predictions, data, "test"),
        shapes(&cluster.to_workers.iter().collect::<Vec<_>>()),
        shapes(&[&cluster.to_server]),
    )
}

/// Per connection: content bytes and message records, up and down.
type Shapes = Vec<(u64, u64, u64, u64)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_train_and_their_traffic_does_not_depend_on_the_data() {
    let (acc, to_workers, to_server) = run(&digits()).await;
    assert!(acc > 0.85, "distributed accuracy {acc}");
    let (_, other_to_workers, other_to_server) = run(&other_digits()).await;
    // One connection per worker each way; the same bytes and records on each.
    assert_eq!(to_workers.len(), 2, "{to_workers:?}");
    assert_eq!(to_workers, other_to_workers);
    assert_eq!(to_server, other_to_server);
    eprintln!("server→workers {to_workers:?}\nworkers→server {to_server:?}");
}

/// Polls the job's coarse step (the share of its budget elapsed) until `at_least`.
async fn wait_step(s: &common::Service, job: &str, at_least: u32) {
    let start = std::time::Instant::now();
    loop {
        if let Ok(reply) = s.status(job).await {
            let st = reply.status.unwrap();
            assert_ne!(st.phase, "failed", "the job failed");
            if st.coarse_step >= at_least {
                return;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_and_a_killed_server_are_replaced_and_the_job_completes() {
    let data = digits();
    let cluster = Cluster::start(2).await;
    let s = &cluster.service;
    let digest = s.register(fixture("mlp")).await.unwrap();
    // One backup: rounds go on with one worker while the other is replaced. 40 ms per
    // message: training takes about ten seconds of the 30 s budget, long enough to kill twice
    // (at 3 s and 6 s: progress counts the budget, 3 s a step).
    let policy = distributed_policy(2, 1, EPOCHS, MAX_STEPS, 40, 30);
    let job = s.submit(&digest, &data, &policy).await;
    s.release(&job).await;

    wait_step(s, &job, 1).await;
    cluster.workers[1].kill_enclave();
    let start = std::time::Instant::now();
    while cluster.workers[1].enclave_restarts() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "worker not restarted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_step(s, &job, 2).await;
    s.host.kill_enclave();

    let status = s.wait(&job, Duration::from_secs(300)).await;
    assert_eq!(status.status.unwrap().phase, "ready");
    assert!(s.host.enclave_restarts() >= 1);
    // The restarted server resumed from its sealed checkpoint (it read one back).
    let texts = s.host.transcript().texts();
    let restart = texts
        .iter()
        .position(|t| t.contains("restarting"))
        .expect("the server restarted");
    assert!(
        texts[restart..]
            .iter()
            .any(|t| t.starts_with("blob get checkpoints/")),
        "{texts:?}"
    );
    let acc = accuracy(&s.predict_split(&job, &data, "test").await, &data, "test");
    assert!(acc > 0.8, "accuracy after faults {acc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_with_other_evidence_is_refused_and_never_sees_the_job() {
    let data = digits();
    let work = tempfile::tempdir().unwrap();
    // Worker 1 runs on another sim platform: its evidence does not pass the server's peer
    // policy (this enclave's measurement, on this platform).
    let keys = [
        work.path().join("platform.key"),
        work.path().join("elsewhere.key"),
    ];
    let cluster = Cluster::start_with_keys(work, &keys).await;
    let s = &cluster.service;
    let digest = s.register(fixture("mlp")).await.unwrap();
    let policy = distributed_policy(2, 0, 2, 60, 0, 8);
    let job = s.submit(&digest, &data, &policy).await;
    s.release(&job).await;
    let status = s.wait(&job, Duration::from_secs(120)).await.status.unwrap();
    assert_eq!(
        (status.phase.as_str(), status.failure.as_str()),
        ("failed", "trainer-failed")
    );
    let fetched_data = |h: &chiron_host::Host| {
        h.transcript()
            .texts()
            .iter()
            .any(|t| t.starts_with("blob get datasets/"))
    };
    assert!(
        fetched_data(&cluster.workers[0]),
        "the genuine worker was assigned"
    );
    assert!(
        !fetched_data(&cluster.workers[1]),
        "the refused worker never received the data key"
    );

    // Nor may a caller with another measurement reach the server's parameter service.
    let platform = chiron_attest::sim::SimPlatform::load_or_create(&keys[0]).unwrap();
    let impostor = chiron_attest::ratls::RaTlsIdentity::generate(
        &chiron_attest::sim::SimSource::new(platform, [9; 48]),
    )
    .unwrap();
    let verifier = std::sync::Arc::new(chiron_attest::ratls::RaTlsVerifier::new(
        chiron_attest::Policy::sim_only(&[9; 48]),
        chiron_attest::Endorsements::default(),
    ));
    let config = std::sync::Arc::new(impostor.client_config(verifier).unwrap());
    let joined = async {
        let channel = chiron_proto::peer_channel(
            &cluster.to_server.addr,
            config,
            chiron_attest::ratls::server_name(),
        )
        .await
        .map_err(|e| e.to_string())?;
        chiron_proto::enclave::parameter_server_client::ParameterServerClient::new(channel)
            .join(chiron_proto::enclave::JoinRequest::default())
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    assert!(joined.is_err(), "{joined:?}");
}
