//! Builds the example `mlp` trainer from source and checks the sandbox loads the component.
//!
//! Needs the wasm32-unknown-unknown target; without it the build test is skipped with a
//! message, unless CHIRON_REQUIRE_WASM_TARGET=1 (CI with the target installed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use chiron_sandbox::{Sandbox, SandboxLimits, TrainerModule};
use chiron_trainer_build::{BuildError, BuildOptions, TARGET, build_trainer_with, componentize};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Whether the standard library for [`TARGET`] is installed.
fn wasm_target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

#[test]
fn mlp_builds_from_source_and_loads_in_the_sandbox() {
    if !wasm_target_installed() {
        let required = std::env::var("CHIRON_REQUIRE_WASM_TARGET").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "CHIRON_REQUIRE_WASM_TARGET=1 but the {TARGET} target is not installed \
             (rustup target add {TARGET})"
        );
        eprintln!("SKIPPED: the {TARGET} target is not installed (rustup target add {TARGET})");
        return;
    }
    let dir = repo_root().join("trainers/mlp");
    let options = BuildOptions {
        jobs: Some(2),
        quiet: false,
    };
    let out = build_trainer_with(&dir, &options).expect("build the mlp trainer");
    assert!(
        out.to_string_lossy()
            .ends_with("trainer_mlp.component.wasm"),
        "{}",
        out.display()
    );
    let bytes = std::fs::read(&out).unwrap();

    let sandbox = Sandbox::new(SandboxLimits {
        max_instances: 2,
        ..SandboxLimits::default()
    })
    .unwrap();
    let module = TrainerModule::load(&sandbox, &bytes).expect("the sandbox loads the build");

    // The committed fixture should be this very build (same sources, same toolchain); a
    // difference means tests/fixtures/rebuild.sh should be run, which is worth saying but is
    // not a failure (another toolchain may emit other bytes).
    let fixture = repo_root().join("crates/enclave/sandbox/tests/fixtures/mlp.component.wasm");
    if let Ok(committed) = std::fs::read(&fixture) {
        let committed = TrainerModule::load(&sandbox, &committed).unwrap();
        if committed.digest() != module.digest() {
            eprintln!(
                "note: {} differs from a fresh build ({}); run \
                 crates/enclave/sandbox/tests/fixtures/rebuild.sh if the sources changed",
                fixture.display(),
                module.digest_hex()
            );
        }
    }
}

#[test]
fn a_directory_without_a_crate_is_an_error() {
    let dir = std::env::temp_dir();
    match build_trainer_with(&dir.join("no-such-trainer"), &BuildOptions::default()) {
        Err(BuildError::NoManifest(p)) => assert!(p.ends_with("no-such-trainer")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_module_without_the_world_becomes_a_component_the_sandbox_refuses() {
    // A valid core module with no `component-type` section encodes as an empty component...
    let empty = componentize(b"\0asm\x01\0\0\0").expect("an empty component");
    // ...which the sandbox refuses: it exports neither `train` nor `predict`.
    let sandbox = Sandbox::new(SandboxLimits {
        max_instances: 2,
        ..SandboxLimits::default()
    })
    .unwrap();
    let err = TrainerModule::load(&sandbox, &empty)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("does not export `train`"), "{err}");
    // Bytes that are not wasm at all are an error with the encoder's reason.
    let err = componentize(b"garbage").unwrap_err().to_string();
    assert!(
        err.starts_with("cannot make a component of this module"),
        "{err}"
    );
}
