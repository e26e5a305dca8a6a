//! The service end to end: the operator registers a trainer, the owner submits a job on real
//! data, training runs in the sandbox inside the (sim) enclave, the owner gets black-box
//! predictions; every bad request is refused with a fixed error and loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{OWNER_TOKEN, Service, accuracy, digits, fixture, policy};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owner_and_operator_train_and_predict_on_digits() {
    let service = Service::start().await;
    let digest = service.register(fixture("mlp")).await.unwrap();
    assert_eq!(digest.len(), 64);
    let data = digits();
    let job = service
        .submit(
            &digest,
            &data,
            &policy(20, 10, "output = \"label\"", "\"test-accuracy\""),
        )
        .await;

    // Queued until the operator releases its share; no model to ask yet.
    let queued = service.status(&job).await.unwrap();
    assert_eq!(queued.status.unwrap().phase, "queued");
    // Answered in the reply, at the request's fixed time, like an answer would be.
    let early = service.predict_raw(&job, &OWNER_TOKEN, 1, &[0.0; 64]).await;
    let early = early.unwrap();
    assert_eq!(
        (early.failure.as_str(), early.outputs),
        ("no-model", vec![0; 4])
    );

    service.release(&job).await;
    let done = service.wait(&job, Duration::from_secs(300)).await;
    let status = done.status.unwrap();
    assert_eq!((status.phase.as_str(), status.coarse_step), ("ready", 10));
    assert_eq!(status.trainer_digest, digest);
    // Only the metrics the policy allows.
    assert!(!done.metrics.is_empty());
    assert!(done.metrics.iter().all(|m| m.name == "test-accuracy"));

    // Bad requests: refused with a fixed error, nothing spent.
    let wrong_owner = service.predict_raw(&job, &[9; 32], 1, &[0.0; 64]).await;
    assert_eq!(wrong_owner.unwrap_err().code(), Code::PermissionDenied);
    let wrong_size = service.predict_raw(&job, &OWNER_TOKEN, 1, &[0.0; 63]).await;
    assert_eq!(wrong_size.unwrap_err().code(), Code::InvalidArgument);
    let too_many = service
        .predict_raw(&job, &OWNER_TOKEN, 513, &vec![0.0; 513 * 64])
        .await;
    assert_eq!(too_many.unwrap_err().code(), Code::InvalidArgument);

    // A model blob the host tampered with is refused — by a fresh enclave process, the first
    // has the model in memory — and reported as damaged, never as ready. Once the host
    // restores it, the job answers again.
    let model_file = service.work.path().join("store/models").join(&job);
    let original = std::fs::read(&model_file).unwrap();
    let mut tampered = original.clone();
    tampered[40] ^= 1;
    std::fs::write(&model_file, &tampered).unwrap();
    service.host.kill_enclave();
    let started = std::time::Instant::now();
    let status = loop {
        match service.status(&job).await {
            Ok(reply) => break reply.status.unwrap(),
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(120),
                "no answer after the restart: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (status.phase.as_str(), status.failure.as_str()),
        ("failed", "model-damaged")
    );
    let refused = service.predict_raw(&job, &OWNER_TOKEN, 1, &[0.0; 64]).await;
    assert_eq!(refused.unwrap().failure, "model-damaged");
    std::fs::write(&model_file, &original).unwrap();

    let predictions = service.predict_split(&job, &data, "test").await;
    let acc = accuracy(&predictions, &data, "test");
    assert!(acc >= 0.95, "test accuracy {acc}");

    // The operator sees its job's fixed-format status, nothing else: not even its outcome.
    let listed = service.list_jobs().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].job_id, job);
    assert_eq!(
        (listed[0].phase.as_str(), listed[0].failure.as_str()),
        ("finished", "")
    );

    // The host stored the module sealed under a keyed name, never under its digest.
    let texts = service.host.transcript().texts();
    assert!(texts.iter().any(|t| t.starts_with("blob put modules/")));
    assert!(texts.iter().all(|t| !t.contains(&digest)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submissions_that_do_not_fit_are_refused_with_a_reason() {
    let service = Service::start().await;
    let digest = service.register(fixture("mlp")).await.unwrap();
    let mut owner = service.owner().await;
    let good = policy(1, 60, "output = \"label\"", "");
    let request = |digest: &str, blob: &str, key: Vec<u8>, policy: &str| {
        chiron_proto::enclave::SubmitJobRequest {
            trainer_digest: digest.to_string(),
            dataset_blob: blob.to_string(),
            data_key: key,
            policy_toml: policy.to_string(),
            owner_share: vec![1; 32],
            owner_token_hash: vec![2; 32],
        }
    };
    for (req, code, needle) in [
        (
            request(&digest, "datasets/none", vec![0; 32], &good),
            Code::NotFound,
            "dataset",
        ),
        (
            request(&"00".repeat(32), "datasets/none", vec![0; 32], &good),
            Code::NotFound,
            "trainer",
        ),
        (
            request(&digest, "datasets/none", vec![0; 31], &good),
            Code::InvalidArgument,
            "data_key",
        ),
        (
            request(
                &digest,
                "datasets/none",
                vec![0; 32],
                &good.replace("epochs = 1", "epochs = 0"),
            ),
            Code::InvalidArgument,
            "epochs",
        ),
        (
            // The tests' enclave has a 768 MiB heap: 512 MiB for jobs.
            request(
                &digest,
                "datasets/none",
                vec![0; 32],
                &good.replace("memory_mib = 32", "memory_mib = 512"),
            ),
            Code::FailedPrecondition,
            "memory_mib",
        ),
    ] {
        let e = owner.submit_job(req).await.unwrap_err();
        assert_eq!(e.code(), code, "{}", e.message());
        assert!(e.message().contains(needle), "{}", e.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_larger_than_the_sealed_size_fails_as_the_trainer_s_failure() {
    let service = Service::start().await;
    let digest = service.register(fixture("mlp")).await.unwrap();
    // ~2.4 MB of weights (plus optimizer state) against a 1 MiB sealed size.
    let policy = policy(2, 3, "output = \"label\"", "").replace(
        "seed = 42",
        "seed = 42\nsealed_blob_mib = 1\nhyper = { hidden1 = 1024, hidden2 = 512 }",
    );
    let job = service.submit(&digest, &digits(), &policy).await;
    service.release(&job).await;
    let done = service.wait(&job, Duration::from_secs(120)).await;
    let s = done.status.unwrap();
    assert_eq!(
        (s.phase.as_str(), s.failure.as_str()),
        ("failed", "trainer-failed")
    );
    // Checkpoints (dummies) and the model blob (a dummy) all have the padded size: nothing
    // of another size ever reached the host.
    let texts = service.host.transcript().texts();
    let sizes: Vec<&str> = texts
        .iter()
        .filter(|t| t.starts_with("blob put checkpoints/") || t.starts_with("blob put models/"))
        .filter_map(|t| t.split(' ').nth(3))
        .collect();
    // 3 s with the default interval (0.3 s): 9 ticks, then the model.
    assert_eq!(sizes.len(), 10, "{texts:#?}");
    assert!(sizes.iter().all(|s| *s == sizes[0]), "{texts:#?}");
    let padded = (1usize << 20) + 12 + 16;
    assert_eq!(sizes[0], padded.to_string());
}
