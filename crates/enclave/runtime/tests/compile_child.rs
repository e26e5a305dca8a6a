//! Trainers compiled in a child process (`chiron_sandbox::compile_child`), as the enclave
//! compiles them: through the real `chiron-enclave` binary, the module is the one an
//! in-process compile gives; a component that does not compile is the module's fault, with the
//! compiler's message; a program that is no compile child is an internal failure and loads
//! nothing; a child that cannot be started leaves the compile to the process itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use chiron_sandbox::{
    EngineConfig, LoadError, Sandbox, SandboxLimits, TrainConfig, TrainerModule, run_train,
};
use common::fixture;

fn sandbox(compile_child: Option<PathBuf>) -> Sandbox {
    Sandbox::new(SandboxLimits {
        max_instances: 2,
        compile_child,
        ..SandboxLimits::default()
    })
    .unwrap()
}

fn enclave_binary() -> Option<PathBuf> {
    Some(PathBuf::from(env!("CARGO_BIN_EXE_chiron-enclave")))
}

#[test]
fn a_module_compiled_by_the_enclave_binary_is_the_one_compiled_in_process() {
    let bytes = fixture("report");
    let in_process = TrainerModule::load(&sandbox(None), &bytes).unwrap();
    let child = TrainerModule::load(&sandbox(enclave_binary()), &bytes).unwrap();
    assert_eq!(child.digest(), in_process.digest());
    assert_eq!(
        child.compiled_code().unwrap(),
        in_process.compiled_code().unwrap(),
        "the child compiles the same native code"
    );
    let run = |module: &TrainerModule| {
        let engine = chiron_engine::Engine::new(EngineConfig {
            seed: 7,
            max_live_bytes: 64 << 20,
            max_tensors: 1_000,
            max_steps: u64::MAX,
        });
        let config = TrainConfig {
            epochs: 2,
            batch_size: 8,
            hyper: vec![],
            wall_budget: Duration::from_secs(30),
        };
        let outcome = run_train(module, engine, &config).unwrap();
        (outcome.progress, outcome.metrics, outcome.steps_taken)
    };
    assert_eq!(run(&child), run(&in_process));
}

#[test]
fn a_component_that_does_not_compile_is_refused_with_the_compiler_s_message() {
    // A component header followed by a truncated section.
    let bytes = b"\0asm\x0d\0\x01\0\x01\x7f";
    for sandbox in [sandbox(None), sandbox(enclave_binary())] {
        match TrainerModule::load(&sandbox, bytes) {
            Err(LoadError::Invalid(text)) => assert!(!text.trim().is_empty()),
            Err(e) => panic!("expected the module's fault, got {e}"),
            Ok(_) => panic!("a broken component loaded"),
        }
    }
}

#[test]
fn a_program_that_is_no_compile_child_loads_nothing() {
    let bytes = fixture("report");
    for program in ["/bin/false", "/bin/true"] {
        match TrainerModule::load(&sandbox(Some(program.into())), &bytes) {
            Err(e @ LoadError::Internal(_)) => eprintln!("{program}: {e}"),
            Err(e) => panic!("{program}: expected an internal failure, got {e}"),
            Ok(_) => panic!("{program}: loaded a module it never compiled"),
        }
    }
}

#[test]
fn without_a_child_to_start_the_module_compiles_in_process() {
    let bytes = fixture("report");
    let module =
        TrainerModule::load(&sandbox(Some("/nonexistent/chiron-enclave".into())), &bytes).unwrap();
    let in_process = TrainerModule::load(&sandbox(None), &bytes).unwrap();
    assert_eq!(module.digest(), in_process.digest());
}
