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
    sealed_digits_with(dir, &["--shape", "1,8,8"])
}

/// The embedded digits with a 20 % test split and `extra` flags for `dataset seal`.
fn sealed_digits_with(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf) {
    let key = dir.join("owner.key");
    let data = dir.join("digits.chd");
    let digits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../data/digits/digits.csv.gz");
    let mut seal = vec![
        "dataset",
        "seal",
        "--format",
        "csv",
        "--no-header",
        "--label-column",
        "64",
        "--test-fraction",
        "0.2",
        "--seed",
        "42",
        "--key",
        key.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
    ];
    seal.extend_from_slice(extra);
    seal.push(digits.to_str().unwrap());
    for args in [vec!["keygen", "--out", key.to_str().unwrap()], seal] {
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

    // WASI's environment interface with a function the real one does not have.
    let o = run("wasi-extra");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.to_lowercase().contains("import"), "{err}");
}

#[test]
fn an_image_trainer_on_flat_records_says_it_needs_image_shaped_ones() {
    let dir = tempfile::tempdir().unwrap();
    // No --shape: records stay 64 flat features, as a tabular dataset's are.
    let (key, data) = sealed_digits_with(dir.path(), &[]);
    let o = chiron(&[
        "trainer",
        "test",
        "--trainer",
        &fixture("cnn"),
        "--data",
        data.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid-shape"), "{err}");
    assert!(
        err.contains("shape [64]") && err.contains("image-shaped records C,H,W"),
        "{err}"
    );
}

#[test]
fn mlp_stops_early_when_a_held_out_tenth_stops_improving() {
    let dir = tempfile::tempdir().unwrap();
    let (key, data) = sealed_digits(dir.path());
    let mlp = fixture("mlp");
    let run = |epochs: &str, hypers: &[&str]| {
        let mut args = vec![
            "trainer",
            "test",
            "--trainer",
            &mlp,
            "--data",
            data.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--epochs",
            epochs,
            "--json",
        ];
        for h in hypers {
            args.extend_from_slice(&["--hyper", h]);
        }
        let o = chiron(&args);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        (
            v["steps"].as_u64().unwrap(),
            v["test_accuracy"].as_f64().unwrap(),
        )
    };
    // Validation forced on this small split (1,438 train records; 1,294 fitted, 21 batches of
    // 64 per epoch): far fewer than 200 epochs' steps, and the best epoch's model is good.
    let (steps, accuracy) = run("200", &["validate_from=100", "patience=3"]);
    assert!(steps < 60 * 21, "no early stop: {steps} steps");
    assert!(accuracy >= 0.93, "test accuracy {accuracy}");
    // Below validate_from (the default 5,000), every epoch runs on all of train: 23 batches.
    let (steps, _) = run("10", &[]);
    assert_eq!(steps, 10 * 23);
}
