//! `chiron trainer test`: the operator's debug loop, through the real sandbox and engine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn chiron(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chiron"))
        .args(args)
        .output()
        .unwrap()
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../enclave/sandbox/tests/fixtures")
        .join(format!("{name}.component.wasm"))
        .to_str()
        .unwrap()
        .to_string()
}

/// The embedded digits, sealed as the demo does: [1, 8, 8], 20 % test split.
fn sealed_digits(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("owner.key");
    let data = dir.join("digits.chd");
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../data/digits/digits.csv.gz");
    for args in [
        vec!["keygen", "--out", key.to_str().unwrap()],
        vec![
            "dataset",
            "seal",
            "--format",
            "csv",
            "--no-header",
            "--label-column",
            "64",
            "--shape",
            "1,8,8",
            "--test-fraction",
            "0.2",
            "--seed",
            "42",
            "--key",
            key.to_str().unwrap(),
            "--out",
            data.to_str().unwrap(),
            digits.to_str().unwrap(),
        ],
    ] {
        let o = chiron(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    (key, data)
}

#[test]
fn mlp_trains_to_at_least_97_percent_on_digits() {
    let dir = tempfile::tempdir().unwrap();
    let (key, data) = sealed_digits(dir.path());
    let o = chiron(&[
        "trainer",
        "test",
        "--trainer",
        &fixture("mlp"),
        "--data",
        data.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--epochs",
        "20",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let acc = v["test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.97, "test accuracy {acc}");
    assert_eq!(v["epochs"], 20);
    assert_eq!(v["test_records"], 359);
    assert!(v["train_seconds"].as_f64().unwrap() > 0.0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("operator test mode"));
}

#[test]
fn a_hostile_trainer_fails_with_its_fixed_code_and_a_foreign_import_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (key, data) = sealed_digits(dir.path());
    let run = |name: &str| {
        chiron(&[
            "trainer",
            "test",
            "--trainer",
            &fixture(name),
            "--data",
            data.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--epochs",
            "1",
            "--wall-seconds",
            "2",
        ])
    };
    let o = run("trap");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("training failed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = run("wasi");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.to_lowercase().contains("import"), "{err}");
}
