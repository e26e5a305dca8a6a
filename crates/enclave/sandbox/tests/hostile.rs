//! Hostile trainer modules: each is refused at load or ends with its fixed code, and the host
//! then runs a good job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use chiron_sandbox::{
    EngineConfig, EngineError, FailureCode, LoadError, Sandbox, SandboxLimits, TrainerModule,
    run_train,
};
use common::{assert_healthy, config, engine, fixture, sandbox};

/// Loads a module that must be refused; returns the operator-facing message.
fn refused(sandbox: &Sandbox, name: &str) -> String {
    match TrainerModule::load(sandbox, &fixture(name)) {
        Err(e @ LoadError::Refused(_)) => {
            assert_eq!(e.code(), FailureCode::Refused);
            eprintln!("{name}: {e}");
            e.to_string()
        }
        Err(e) => panic!("{name}: expected a refusal, got {e}"),
        Ok(_) => panic!("{name}: loaded a module that must be refused"),
    }
}

/// Runs `train` of a module that must fail; returns its code.
fn train_fails(sandbox: &Sandbox, name: &str, wall: Duration) -> FailureCode {
    let module = TrainerModule::load(sandbox, &fixture(name)).expect("load");
    match run_train(&module, engine(), &config(wall)) {
        Err(code) => code,
        Ok(outcome) => panic!("{name}: train succeeded: {outcome:?}"),
    }
}

#[test]
fn a_wasi_import_links_to_the_virtual_wasi() {
    // The fixture reads the environment: the virtual WASI answers (with nothing), the call
    // completes. What each shim answers is tested on CPython in tests/python.rs.
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture("wasi")).unwrap();
    run_train(&module, engine(), &config(Duration::from_secs(5))).unwrap();
    assert_healthy(&sandbox);
}

#[test]
fn a_wasi_interface_with_an_extra_function_is_refused_at_load() {
    // `wasi:cli/environment@0.2.0` passes the name check; only the linker's type check sees
    // the function the real interface does not have.
    let sandbox = sandbox();
    let msg = refused(&sandbox, "wasi-extra");
    assert!(msg.contains("wasi:cli/environment@0.2.0"), "{msg}");
    assert!(msg.contains("get-host-secret"), "{msg}");
    assert_healthy(&sandbox);
}

#[test]
fn unknown_function_import_is_refused_at_load() {
    let sandbox = sandbox();
    let msg = refused(&sandbox, "unknown-function");
    assert!(msg.contains("`leak`"), "{msg}");
    // The message says what is allowed.
    assert!(msg.contains("virtual WASI"), "{msg}");
    assert_healthy(&sandbox);
}

#[test]
fn extra_function_inside_an_allowed_interface_is_refused_at_load() {
    // The interface name is allowed; only the linker's type check sees the extra function.
    let sandbox = sandbox();
    let msg = refused(&sandbox, "extra-function");
    assert!(msg.contains("chiron:trainer/report@0.1.0"), "{msg}");
    assert!(msg.contains("leak"), "{msg}");
    assert_healthy(&sandbox);
}

#[test]
fn not_a_component_is_refused() {
    let sandbox = sandbox();
    for bytes in [&b"not wasm at all"[..], &b"\0asm\x01\0\0\0"[..]] {
        match TrainerModule::load(&sandbox, bytes) {
            Err(e @ LoadError::Invalid(_)) => assert_eq!(e.code(), FailureCode::Refused),
            Err(e) => panic!("expected Invalid, got {e}"),
            Ok(_) => panic!("loaded garbage"),
        }
    }
    let small = Sandbox::new(SandboxLimits {
        max_module_bytes: 100,
        ..common::limits()
    })
    .unwrap();
    assert!(matches!(
        TrainerModule::load(&small, &fixture("mlp")),
        Err(LoadError::TooLarge { .. })
    ));
    assert_healthy(&sandbox);
}

#[test]
fn infinite_loop_times_out() {
    let sandbox = sandbox();
    let start = Instant::now();
    let code = train_fails(&sandbox, "loop", Duration::from_millis(200));
    let elapsed = start.elapsed();
    assert_eq!(code, FailureCode::Timeout);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_healthy(&sandbox);
}

#[test]
fn infinite_loop_runs_out_of_fuel_when_fuel_is_set() {
    let sandbox = Sandbox::new(SandboxLimits {
        train_fuel: Some(10_000_000),
        ..common::limits()
    })
    .unwrap();
    let code = train_fails(&sandbox, "loop", Duration::from_secs(60));
    assert_eq!(code, FailureCode::InstructionBudget);
    assert_healthy(&sandbox);
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let sandbox = sandbox();
    let code = train_fails(&sandbox, "recursion", Duration::from_secs(10));
    assert_eq!(code, FailureCode::StackOverflow);
    assert_healthy(&sandbox);
}

#[test]
fn unreachable_traps() {
    let sandbox = sandbox();
    let code = train_fails(&sandbox, "trap", Duration::from_secs(10));
    assert_eq!(code, FailureCode::Trap);
    assert_healthy(&sandbox);
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let sandbox = sandbox();
    let code = train_fails(&sandbox, "memory-bomb", Duration::from_secs(10));
    assert_eq!(code, FailureCode::OutOfMemory);
    assert_healthy(&sandbox);
}

#[test]
fn oversized_copy_into_the_host_hits_the_hostcall_budget() {
    let sandbox = Sandbox::new(SandboxLimits {
        hostcall_fuel: 1 << 20,
        ..common::limits()
    })
    .unwrap();
    let module = TrainerModule::load(&sandbox, &fixture("big-copy")).unwrap();
    let mut cfg = config(Duration::from_secs(10));
    cfg.hyper = vec![("floats".into(), 1_000_000.0)]; // 4 MB in one call, budget 1 MiB
    assert_eq!(
        run_train(&module, engine(), &cfg).unwrap_err(),
        FailureCode::HostcallBudget
    );
    assert_healthy(&sandbox);
}

#[test]
fn the_same_sandbox_survives_every_hostile_module_in_turn() {
    let sandbox = sandbox();
    for (name, expected) in [
        ("loop", FailureCode::Timeout),
        ("recursion", FailureCode::StackOverflow),
        ("trap", FailureCode::Trap),
        ("memory-bomb", FailureCode::OutOfMemory),
    ] {
        assert_eq!(
            train_fails(&sandbox, name, Duration::from_millis(200)),
            expected,
            "{name}"
        );
        assert_healthy(&sandbox);
    }
    for name in ["wasi-extra", "unknown-function", "extra-function"] {
        refused(&sandbox, name);
    }
    assert_healthy(&sandbox);
}

/// Needs the engine's `tensor.full`: the store's handle limit (lower than the engine's tensor
/// budget) ends a guest that keeps every tensor it creates.
#[test]
fn tensor_bomb_hits_the_handle_limit() {
    let sandbox = Sandbox::new(SandboxLimits {
        max_handles: 1_000,
        ..common::limits()
    })
    .unwrap();
    let module = TrainerModule::load(&sandbox, &fixture("tensor-bomb")).unwrap();
    let code = run_train(&module, engine(), &config(Duration::from_secs(10))).unwrap_err();
    assert_eq!(code, FailureCode::HandleLimit);
    assert_healthy(&sandbox);
}

/// Needs the engine's `tensor.full`: the engine's tensor budget (lower than the store's handle
/// limit) refuses the next tensor; the guest returns that error.
#[test]
fn tensor_bomb_hits_the_engine_budget() {
    let sandbox = sandbox();
    let module = TrainerModule::load(&sandbox, &fixture("tensor-bomb")).unwrap();
    let engine = chiron_engine::Engine::new(EngineConfig {
        max_tensors: 500,
        ..common::engine_config()
    });
    let code = run_train(&module, engine, &config(Duration::from_secs(10))).unwrap_err();
    assert_eq!(
        code,
        FailureCode::GuestError(EngineError::ResourceExhausted)
    );
    assert_healthy(&sandbox);
}
