//! End-to-end tests of the `chiron` binary: real processes, real files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn chiron(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chiron"))
        .args(args)
        .output()
        .expect("run chiron")
}

fn ok(args: &[&str]) -> String {
    let out = chiron(args);
    assert!(
        out.status.success(),
        "chiron {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn fails(args: &[&str]) -> String {
    let out = chiron(args);
    assert!(!out.status.success(), "chiron {args:?} should have failed");
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

fn digits() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../data/digits/digits.csv.gz")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn keygen(dir: &Path) -> PathBuf {
    let key = dir.join("owner.key");
    ok(&["keygen", "--out", s(&key)]);
    key
}

fn inspect_json(file: &Path) -> serde_json::Value {
    let out = ok(&["dataset", "inspect", "--json", s(file)]);
    serde_json::from_str(out.trim()).expect("inspect --json prints one JSON object")
}

/// Flips one byte `offset` bytes into chunk `chunk`; returns nothing, edits in place.
fn flip_in_chunk(file: &Path, chunk: u64, offset: u64) {
    let header = inspect_json(file);
    let header_bytes = header["header_bytes"].as_u64().unwrap();
    let chunk_bytes = header["chunk_size"].as_u64().unwrap() + 16;
    let mut bytes = std::fs::read(file).unwrap();
    bytes[(header_bytes + chunk * chunk_bytes + offset) as usize] ^= 0x01;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn keygen_writes_a_private_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.len(), 32);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let before = std::fs::read(&key).unwrap();
    let err = fails(&["keygen", "--out", s(&key)]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "existing key untouched"
    );
}

#[test]
fn seal_inspect_verify_and_tamper_on_embedded_digits() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let out = dir.path().join("digits.chd");
    let printed = ok(&[
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
        "--chunk-size",
        "4096",
        "--key",
        s(&key),
        "--out",
        s(&out),
        s(&digits()),
    ]);
    assert!(printed.contains("sealed 1797 records"), "{printed}");

    let h = inspect_json(&out);
    assert_eq!(h["format_version"], 1);
    assert_eq!(h["shape"], serde_json::json!([1, 8, 8]));
    assert_eq!(h["dtype"], "f32");
    assert_eq!(h["classes"], 10);
    assert_eq!(h["splits"]["train"]["records"], 1438);
    assert_eq!(h["splits"]["test"]["records"], 359);
    let record_bytes = 64 * 4 + 4;
    let chunks = (1797u64 * record_bytes).div_ceil(4096);
    assert_eq!(h["chunks"], chunks);
    assert_eq!(
        h["file_bytes"].as_u64().unwrap(),
        h["header_bytes"].as_u64().unwrap() + chunks * (4096 + 16)
    );

    let text = ok(&["dataset", "inspect", s(&out)]);
    assert!(text.contains("train 1438, test 359"), "{text}");

    let verified = ok(&["dataset", "verify", "--key", s(&key), s(&out)]);
    assert!(
        verified.contains(&format!("{chunks} chunks authenticated")),
        "{verified}"
    );

    flip_in_chunk(&out, 57, 123);
    let err = fails(&["dataset", "verify", "--key", s(&key), s(&out)]);
    assert!(
        err.contains(&format!("chunk 57 of {chunks} failed authentication")),
        "{err}"
    );

    let other = dir.path().join("other.key");
    ok(&["keygen", "--out", s(&other)]);
    let err = fails(&["dataset", "verify", "--key", s(&other), s(&out)]);
    assert!(err.contains("wrong key"), "{err}");
}

#[test]
fn failed_or_refused_seals_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let out = dir.path().join("x.chd");

    // A CSV with a non-numeric cell: the error names file, line and column, not the value.
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "a,b,label\n1,2,0\n3,SECRETVALUE,1\n").unwrap();
    let err = fails(&[
        "dataset",
        "seal",
        "--format",
        "csv",
        "--label-column",
        "label",
        "--key",
        s(&key),
        "--out",
        s(&out),
        s(&csv),
    ]);
    assert!(
        err.contains("bad.csv") && err.contains('3') && err.contains('b'),
        "{err}"
    );
    assert!(!err.contains("SECRETVALUE"), "cell value leaked: {err}");
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 2, "only the key and the csv remain");

    // An existing output is never replaced.
    std::fs::write(&out, b"precious").unwrap();
    let err = fails(&[
        "dataset",
        "seal",
        "--format",
        "csv",
        "--no-header",
        "--label-column",
        "64",
        "--key",
        s(&key),
        "--out",
        s(&out),
        s(&digits()),
    ]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    // A key readable by others is refused before any work.
    let loose = dir.path().join("loose.key");
    std::fs::copy(&key, &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = fails(&["dataset", "verify", "--key", s(&loose), s(&out)]);
    assert!(err.contains("chmod 600"), "{err}");

    // Not a sealed dataset at all.
    let err = fails(&["dataset", "inspect", s(&out)]);
    assert!(
        err.contains("bad magic") || err.contains("shorter"),
        "{err}"
    );
}

#[test]
fn demo_runs_end_to_end_and_reports_json() {
    let out = ok(&["demo", "--json"]);
    let last = out.lines().last().expect("demo prints something");
    let v: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(
        v["train_records"].as_u64().unwrap() + v["test_records"].as_u64().unwrap(),
        1797
    );
    assert_eq!(v["tamper_detected"], true);
    // Trained in the sim enclave, predicted through black-box queries.
    let accuracy = v["test_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
    assert!(out.contains("\"splits\""), "demo shows the public header");
    // Both parties' views are printed, and the operator's never shows a metric value.
    assert!(out.contains("OWNER") && out.contains("OPERATOR"), "{out}");
    let operator_column: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once(" | ").map(|(_, r)| r))
        .collect();
    assert!(
        operator_column.iter().any(|l| l.contains("status job")),
        "{out}"
    );
    assert!(
        operator_column
            .iter()
            .all(|l| !l.contains("test-accuracy") && !l.contains("train-loss")),
        "{out}"
    );
}

/// The acceptance check on the real Fashion-MNIST files from Debian's
/// `dataset-fashion-mnist` (installed by scripts/test.sh).
#[test]
fn real_fashion_mnist_seal_inspect_verify_tamper() {
    let src = Path::new("/usr/share/datasets/fashion-mnist");
    if !src.is_dir() {
        assert!(
            std::env::var("CHIRON_REQUIRE_REAL_DATA").as_deref() != Ok("1"),
            "{} missing but CHIRON_REQUIRE_REAL_DATA=1",
            src.display()
        );
        eprintln!(
            "skipped: {} not installed (apt-get install dataset-fashion-mnist)",
            src.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let out = dir.path().join("fmnist.chd");
    ok(&[
        "dataset",
        "seal",
        "--format",
        "idx",
        "--key",
        s(&key),
        "--out",
        s(&out),
        s(src),
    ]);
    let h = inspect_json(&out);
    assert_eq!(h["splits"]["train"]["records"], 60000);
    assert_eq!(h["splits"]["test"]["records"], 10000);
    assert_eq!(h["shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(h["classes"], 10);
    ok(&["dataset", "verify", "--key", s(&key), s(&out)]);
    flip_in_chunk(&out, 300, 9);
    let err = fails(&["dataset", "verify", "--key", s(&key), s(&out)]);
    assert!(err.contains("chunk 300 of"), "{err}");
}
