//! Recovery: the enclave process is killed mid-training; the host restarts it; the job resumes
//! from its last sealed checkpoint (written on the runtime's grid, holding the state the
//! trainer last offered) and ends with the same model as an uninterrupted run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{Service, digits, fixture, policy};

const EPOCHS: u32 = 60;

async fn predictions(service: &Service, job: &str, data: &chiron_data::Dataset) -> Vec<String> {
    service
        .predict_split(job, data, "test")
        .await
        .iter()
        .map(|p| format!("{p:?}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_enclave_resumes_from_its_checkpoint_with_the_same_model() {
    let data = digits();
    // 15 s, a checkpoint every 1.5 s: the first tick comes while the trainer is at work.
    let policy = policy(EPOCHS, 15, "output = \"probabilities\"\ndigits = 6", "");

    // Interrupted run.
    let service = Service::start().await;
    let digest = service.register(fixture("mlp")).await.unwrap();
    let job = service.submit(&digest, &data, &policy).await;
    service.release(&job).await;
    let start = Instant::now();
    loop {
        // Kill once a checkpoint exists and the job is still training.
        let texts = service.host.transcript().texts();
        let checkpointed = texts.iter().any(|t| {
            t.starts_with("status job") && t.contains(" training step ") && !t.contains("step 0/")
        });
        if checkpointed {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint: {texts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.host.kill_enclave();
    let done = service.wait(&job, Duration::from_secs(600)).await;
    let s = done.status.unwrap();
    assert_eq!((s.phase.as_str(), s.failure.as_str()), ("ready", ""));
    assert_eq!(service.host.enclave_restarts(), 1);
    let texts = service.host.transcript().texts();
    assert!(
        texts.iter().any(|t| t.starts_with("enclave exited")),
        "{texts:#?}"
    );
    // After the restart the job was resumed from a checkpoint, not started over.
    let restart = texts
        .iter()
        .position(|t| t.starts_with("enclave exited"))
        .unwrap();
    assert!(
        texts[restart..]
            .iter()
            .any(|t| t.starts_with("blob get checkpoints/")),
        "{texts:#?}"
    );
    let resumed = predictions(&service, &job, &data).await;
    service.host.shutdown().await;

    // Uninterrupted run, same seed.
    let service = Service::start().await;
    let digest2 = service.register(fixture("mlp")).await.unwrap();
    assert_eq!(digest, digest2);
    let job = service.submit(&digest2, &data, &policy).await;
    service.release(&job).await;
    let done = service.wait(&job, Duration::from_secs(600)).await;
    let s = done.status.unwrap();
    assert_eq!((s.phase.as_str(), s.failure.as_str()), ("ready", ""));
    let uninterrupted = predictions(&service, &job, &data).await;
    assert_eq!(resumed, uninterrupted);
}
