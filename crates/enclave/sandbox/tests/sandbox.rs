//! Loading, digests, fresh instances per call, report collection, prediction plumbing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chiron_sandbox::{
    EngineError, FailureCode, LoadError, Metric, MetricPoint, NamedTensor, Progress, Sandbox,
    SandboxLimits, SavedModel, TensorData, TrainerModule, run_predict, run_train,
};
use common::{config, engine, fixture, sandbox};

fn input() -> TensorData {
    TensorData {
        shape: vec![1, 4],
        values: vec![0.0; 4],
    }
}

#[test]
fn example_trainers_load() {
    let sandbox = sandbox();
    for name in ["mlp", "cnn"] {
        TrainerModule::load(&sandbox, &fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn digest_is_the_sha256_of_the_bytes_and_stable() {
    let sandbox = sandbox();
    let bytes = fixture("mlp");
    let a = TrainerModule::load(&sandbox, &bytes).unwrap();
    let b = TrainerModule::load(&sandbox, &bytes).unwrap();
    assert_eq!(a.digest(), b.digest());
    let expected = ring::digest::digest(&ring::digest::SHA256, &bytes);
    assert_eq!(&a.digest()[..], expected.as_ref());
    let hex = a.digest_hex();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    // Another sandbox (another process, in practice) computes the same digest.
    let other = Sandbox::new(common::limits()).unwrap();
    assert_eq!(
        TrainerModule::load(&other, &bytes).unwrap().digest(),
        a.digest()
    );
    // A different module has a different digest.
    let c = TrainerModule::load(&sandbox, &fixture("cnn")).unwrap();
    assert_ne!(a.digest(), c.digest());
}

#[test]
fn compiled_code_loads_back_as_the_same_trainer_and_only_into_the_same_configuration() {
    let sandbox = sandbox();
    let compiled = TrainerModule::load(&sandbox, &fixture("report")).unwrap();
    let code = compiled.compiled_code().unwrap();
    let loaded = TrainerModule::load_compiled(&sandbox, &code, *compiled.digest()).unwrap();
    assert_eq!(loaded.digest(), compiled.digest());
    let config = config(Duration::from_secs(30));
    let a = run_train(&compiled, engine(), &config).unwrap();
    let b = run_train(&loaded, engine(), &config).unwrap();
    assert_eq!((a.progress.len(), a.metrics.len()), (3, 2));
    assert_eq!((a.progress, a.metrics), (b.progress, b.metrics));

    // Another sandbox configuration (here: another memory reservation) compiles other code:
    // its wasmtime refuses this code, and the caller compiles the component again.
    let other = Sandbox::new(SandboxLimits {
        max_memory_bytes: 32 << 20,
        ..common::limits()
    })
    .unwrap();
    let refused = TrainerModule::load_compiled(&other, &code, *compiled.digest());
    assert!(matches!(refused, Err(LoadError::Invalid(_))));
}

#[test]
fn every_predict_call_gets_a_fresh_instance() {
    // The guest bumps a static counter and answers `invalid-argument` only when it is 1.
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture("counter")).unwrap();
    let model = SavedModel::default();
    for _ in 0..3 {
        assert_eq!(
            run_predict(&module, &model, &input()),
            Err(FailureCode::GuestError(EngineError::InvalidArgument)),
            "state survived from an earlier call"
        );
    }
    // Train calls are fresh too, and do not leak into predict.
    assert_eq!(
        run_train(&module, engine(), &config(Duration::from_secs(5))).unwrap_err(),
        FailureCode::GuestError(EngineError::InvalidArgument)
    );
    assert_eq!(
        run_predict(&module, &model, &input()),
        Err(FailureCode::GuestError(EngineError::InvalidArgument))
    );
}

#[test]
fn reports_are_collected_in_order() {
    let sandbox = sandbox();
    let outcome = common::assert_healthy(&sandbox);
    assert_eq!(
        outcome.progress,
        vec![
            Progress { step: 1, total: 3 },
            Progress { step: 2, total: 3 },
            Progress { step: 3, total: 3 },
        ]
    );
    assert_eq!(
        outcome.metrics,
        vec![
            MetricPoint {
                metric: Metric::TrainLoss,
                step: 1,
                value: 0.5
            },
            MetricPoint {
                metric: Metric::TestAccuracy,
                step: 2,
                value: 0.875
            },
        ]
    );
    assert_eq!(outcome.dropped_reports, 0);
    // The guest never saved; it also checked that `model.load` is refused during training.
    assert_eq!(outcome.model, None);
    assert_eq!(outcome.steps_taken, 0);
}

#[test]
fn test_mode_splits_a_runs_time_between_guest_and_host_and_the_enclave_mode_does_not() {
    // `hostcall-bench`: one `full`, then `epochs` × (`add`, drop of its result), then
    // `batch_size` × `item`: every one a host call.
    let mut cfg = config(Duration::from_secs(20));
    cfg.epochs = 2_000;
    cfg.batch_size = 500;
    let plain = TrainerModule::load(&sandbox(), &fixture("hostcall-bench")).unwrap();
    assert_eq!(run_train(&plain, engine(), &cfg).unwrap().time_split, None);

    let timed = Sandbox::new(SandboxLimits {
        time_guest: true,
        ..common::limits()
    })
    .unwrap();
    let module = TrainerModule::load(&timed, &fixture("hostcall-bench")).unwrap();
    let started = std::time::Instant::now();
    let split = run_train(&module, engine(), &cfg)
        .unwrap()
        .time_split
        .expect("a split in test mode");
    let wall = started.elapsed();
    assert!(
        split.host_calls >= 1 + 2 * 2_000 + 500,
        "{}",
        split.host_calls
    );
    assert!(split.host_calls < 10_000, "{}", split.host_calls);
    assert!(split.guest > Duration::ZERO && split.host > Duration::ZERO);
    assert!(split.guest + split.host <= wall, "{split:?} in {wall:?}");
    assert!(
        split.progress_intervals.is_empty(),
        "the guest reports nothing"
    );

    // One interval between each two progress reports (the `report` guest makes three).
    let report = TrainerModule::load(&timed, &fixture("report")).unwrap();
    let split = run_train(&report, engine(), &config(Duration::from_secs(10)))
        .unwrap()
        .time_split
        .unwrap();
    assert_eq!(split.progress_intervals.len(), 2);
}

#[test]
fn reports_beyond_the_cap_are_counted_and_dropped() {
    let sandbox = Sandbox::new(SandboxLimits {
        max_reports: 10,
        ..common::limits()
    })
    .unwrap();
    let module = TrainerModule::load(&sandbox, &fixture("report")).unwrap();
    let mut cfg = config(Duration::from_secs(5));
    cfg.hyper = vec![("extra".into(), 20.0)];
    let outcome = run_train(&module, engine(), &cfg).unwrap();
    assert_eq!(outcome.progress.len() + outcome.metrics.len(), 10);
    assert_eq!(outcome.dropped_reports, 25 - 10);
}

#[test]
fn predict_rejects_an_input_that_is_not_a_tensor() {
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture("mlp")).unwrap();
    let bad = TensorData {
        shape: vec![2, 3],
        values: vec![1.0; 5],
    };
    assert_eq!(
        run_predict(&module, &SavedModel::default(), &bad),
        Err(FailureCode::InvalidInput)
    );
}

#[test]
fn predict_with_a_model_that_does_not_fit_is_a_guest_error() {
    // The mlp finds no saved tensors: its `predict` returns `invalid-argument`.
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture("mlp")).unwrap();
    assert_eq!(
        run_predict(&module, &SavedModel::default(), &input()),
        Err(FailureCode::GuestError(EngineError::InvalidArgument))
    );
    let model = SavedModel {
        tensors: vec![NamedTensor {
            name: "fc1.weight".into(),
            shape: vec![2],
            values: vec![1.0],
        }],
    };
    // A saved model that does not load is the trainer's output gone wrong, not the input.
    assert_eq!(
        run_predict(&module, &model, &input()),
        Err(FailureCode::InvalidOutput)
    );
}

#[test]
fn training_phase_rules_hold_without_data() {
    // The mlp asks for the schema; a job engine without data cannot give one, and `schema`
    // has no error result in WIT, so the call ends the job with a fixed code.
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture("mlp")).unwrap();
    let code = run_train(&module, engine(), &config(Duration::from_secs(5))).unwrap_err();
    assert!(matches!(code, FailureCode::CallFailed(_)), "{code:?}");
}

#[test]
fn fresh_instances_cost_microseconds() {
    // A generous bound (debug builds, shared CI machines); the release figure is in the
    // report, measured with `cargo run --release -p chiron-sandbox --example costs`.
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture("mlp")).unwrap();
    let mut times: Vec<Duration> = (0..200)
        .map(|_| chiron_sandbox::measure_fresh_instance(&module).unwrap())
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("fresh instance (mlp, test profile): median {median:?}");
    assert!(median < Duration::from_millis(2), "{median:?}");
}

#[test]
fn modules_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Sandbox>();
    send_sync::<TrainerModule>();
}

#[test]
fn a_full_instance_pool_is_internal_not_the_guests_fault() {
    let sandbox = Sandbox::new(SandboxLimits {
        max_instances: 1,
        ..common::limits()
    })
    .unwrap();
    let looping = TrainerModule::load(&sandbox, &fixture("loop")).unwrap();
    let counter = TrainerModule::load(&sandbox, &fixture("counter")).unwrap();
    std::thread::scope(|s| {
        let busy = s.spawn(|| run_train(&looping, engine(), &config(Duration::from_millis(500))));
        // Wait until the looping job holds the only slot.
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(
            run_predict(&counter, &SavedModel::default(), &input()),
            Err(FailureCode::Internal)
        );
        assert_eq!(busy.join().unwrap().unwrap_err(), FailureCode::Timeout);
    });
    // The slot is free again.
    assert_eq!(
        run_predict(&counter, &SavedModel::default(), &input()),
        Err(FailureCode::GuestError(EngineError::InvalidArgument))
    );
}

/// The process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn resident_memory_touches_every_slot_at_start_and_gives_nothing_back() {
    let (slots, cap_mib) = (2u64, 32u64);
    let before = rss_kib();
    let sandbox = Sandbox::new(SandboxLimits {
        max_memory_bytes: (cap_mib << 20) as usize,
        max_instances: slots as u32,
        resident_memory: true,
        ..common::limits()
    })
    .unwrap();
    let started = rss_kib();
    assert!(
        started - before >= slots * cap_mib * 1024 * 9 / 10,
        "Sandbox::new made {} KiB resident, not the {slots} slots of {cap_mib} MiB",
        started - before
    );
    // A guest that writes 16 MiB of its linear memory (and hands them to the engine).
    let module = TrainerModule::load(&sandbox, &fixture("big-copy")).unwrap();
    let loaded = rss_kib();
    let mut cfg = config(Duration::from_secs(10));
    cfg.hyper = vec![("floats".into(), (4u32 << 20) as f32)];
    run_train(&module, engine(), &cfg).unwrap();
    // Its pages were resident already, and freeing its instance zeroed them in place.
    let after = rss_kib();
    assert!(
        after + 2048 >= loaded,
        "{} KiB went back to the OS when the instance ended",
        loaded - after
    );
}
