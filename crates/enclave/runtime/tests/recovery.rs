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
    // The restarted enclave loaded the trainer from its sealed compiled code: nothing was
    // compiled and stored again.
    assert!(
        texts[restart..]
            .iter()
            .all(|t| !t.starts_with("blob put modules/")),
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

/// Names of the `modules/` blobs the host was asked to store, in order.
fn module_puts(service: &Service) -> Vec<String> {
    service
        .host
        .transcript()
        .texts()
        .iter()
        .filter_map(|t| t.strip_prefix("blob put "))
        .filter(|t| t.starts_with("modules/"))
        .filter_map(|t| t.split(' ').next().map(str::to_owned))
        .collect()
}

/// A trainer's compiled code is sealed beside its module; a copy the host damaged is refused
/// (never run), the module is compiled again and its code stored anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_compiled_code_is_never_run_the_trainer_is_compiled_again() {
    let data = digits();
    let service = Service::start().await;
    let digest = service.register(fixture("mlp")).await.unwrap();
    let puts = module_puts(&service);
    assert_eq!(
        puts.len(),
        2,
        "the module, then its compiled code: {puts:?}"
    );
    let code = service.work.path().join("store").join(&puts[1]);
    let mut bytes = std::fs::read(&code).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&code, &bytes).unwrap();

    service.host.kill_enclave();
    // Up again once it answers for itself (an unknown job), not for a missing process.
    let started = Instant::now();
    while let Err(e) = service.status(&"0".repeat(32)).await {
        if e.code() == tonic::Code::NotFound {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no restart: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = service
        .submit(&digest, &data, &policy(2, 3, "output = \"label\"", ""))
        .await;
    service.release(&job).await;
    let done = service.wait(&job, Duration::from_secs(300)).await;
    assert_eq!(done.status.unwrap().phase, "ready");
    assert_eq!(service.host.enclave_restarts(), 1);
    let puts = module_puts(&service);
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert_eq!(puts[2], puts[1], "the code is stored again under its name");
    assert_ne!(std::fs::read(&code).unwrap(), bytes);
    service.host.shutdown().await;
}
