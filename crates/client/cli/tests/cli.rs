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
    assert_eq!(h["format_version"], 2);
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

#[cfg(feature = "dev")]
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

/// A small CSV dataset sealed under a new key in `dir`: (key, sealed file).
fn small_sealed(dir: &Path) -> (PathBuf, PathBuf) {
    let key = keygen(dir);
    let csv = dir.join("small.csv");
    std::fs::write(&csv, "a,b,label\n1,2,0\n3,4,1\n5,6,0\n").unwrap();
    let out = dir.join("small.chd");
    ok(&[
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
    (key, out)
}

/// Runs `chiron args` with stdout a pipe whose reading end is already closed, as in
/// `chiron ... | true` when `true` has exited before chiron writes.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_chiron"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run chiron")
}

#[test]
fn a_closed_stdout_ends_every_command_quietly_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let (key, sealed) = small_sealed(dir.path());
    let other_key = dir.path().join("other.key");
    let commands: [&[&str]; 5] = [
        &["dataset", "inspect", s(&sealed)],
        &["dataset", "inspect", "--json", s(&sealed)],
        &["dataset", "verify", "--key", s(&key), s(&sealed)],
        &["keygen", "--out", s(&other_key)],
        &["--version"],
    ];
    for args in commands {
        let out = with_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The policy (crates/client/cli/src/ui.rs): exit 0, nothing on stderr.
        assert_eq!(out.status.code(), Some(0), "chiron {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "chiron {args:?}: {stderr}");
        assert!(stderr.is_empty(), "chiron {args:?}: {stderr}");
    }
    // The key was still written: only the report of it went nowhere.
    assert_eq!(std::fs::metadata(&other_key).unwrap().len(), 32);
}

#[test]
fn a_key_path_that_is_a_directory_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (_, sealed) = small_sealed(dir.path());
    let folder = dir.path().join("keys");
    std::fs::create_dir(&folder).unwrap();
    let want = format!("{} is a directory, not a key file", folder.display());
    let err = fails(&["dataset", "verify", "--key", s(&folder), s(&sealed)]);
    assert!(err.contains(&want), "{err}");
    let err = fails(&[
        "dataset",
        "seal",
        "--format",
        "csv",
        "--label-column",
        "label",
        "--key",
        s(&folder),
        "--out",
        s(&dir.path().join("x.chd")),
        s(&dir.path().join("small.csv")),
    ]);
    assert!(err.contains(&want), "{err}");
}

#[test]
fn csv_cell_errors_name_the_flags_that_fix_them() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let seal = |csv: &Path, extra: &[&str]| {
        let out = csv.with_extension("chd");
        let mut args = vec![
            "dataset",
            "seal",
            "--format",
            "csv",
            "--label-column",
            "label",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--key", s(&key), "--out", s(&out), s(csv)]);
        let out = chiron(&args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let text = dir.path().join("text.csv");
    std::fs::write(&text, "smoker,age,label\nyes,30,1\nno,41,0\n").unwrap();
    let (done, err) = seal(&text, &[]);
    assert!(!done && err.contains("--map-value TEXT=NUMBER"), "{err}");
    assert!(!err.contains("yes"), "cell value leaked: {err}");
    let (done, err) = seal(&text, &["--map-value", "yes=1", "--map-value", "no=0"]);
    assert!(done, "{err}");

    let gaps = dir.path().join("gaps.csv");
    std::fs::write(&gaps, "a,b,label\n1,,0\n3,4,1\n").unwrap();
    let (done, err) = seal(&gaps, &[]);
    assert!(
        !done && err.contains("--missing zero") && err.contains("--missing mean"),
        "{err}"
    );
}

#[test]
fn predict_reads_csv_with_a_header_and_a_label_column_like_seal() {
    let dir = tempfile::tempdir().unwrap();
    let rows = dir.path().join("rows.csv");
    std::fs::write(&rows, "a,b,label\n1,2,0\n3,4,1\n").unwrap();
    let connect = dir.path().join("absent-client.toml");
    let predict = |extra: &[&str]| {
        let mut args = vec![
            "predict",
            "--connect",
            s(&connect),
            "--job",
            "j",
            "--token-file",
            "t",
        ];
        args.extend_from_slice(extra);
        fails(&args)
    };
    // The CSV is read (header skipped, label column left out) before the service is needed, so
    // the first error is about the connection settings, not the file.
    let err = predict(&["--label-column", "label", s(&rows)]);
    assert!(err.contains("absent-client.toml"), "{err}");
    assert!(!err.contains("rows.csv"), "{err}");
    // A headerless file is refused with the flag to pass, never read with a record lost.
    let bare = dir.path().join("bare.csv");
    std::fs::write(&bare, "1,2\n3,4\n").unwrap();
    let err = predict(&[s(&bare)]);
    assert!(
        err.contains("bare.csv") && err.contains("--no-header"),
        "{err}"
    );
    let err = predict(&["--no-header", s(&bare)]);
    assert!(err.contains("absent-client.toml"), "{err}");
}

/// Writes a `.npy` array of `shape` with `descr` (e.g. `|u1`) and `data`.
fn write_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let comma = if shape.len() == 1 { "," } else { "" };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}{comma}), }}",
        dims.join(", ")
    );
    // Magic (6) + version (2) + length (2) + header, padded to a multiple of 64 with '\n' last.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn sigterm_or_sigint_during_seal_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    // 64 MB of records: sealing takes long enough (tens of milliseconds at least) to be
    // interrupted mid-way.
    let n = 1_000_000;
    let features = dir.path().join("features.npy");
    let labels = dir.path().join("labels.npy");
    let pixels: Vec<u8> = (0..n * 64).map(|i| (i % 251) as u8).collect();
    write_npy(&features, "|u1", &[n, 64], &pixels);
    let classes: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    write_npy(&labels, "|u1", &[n], &classes);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("big.chd");

    for (signal, status) in [("TERM", 143), ("INT", 130)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chiron"))
            .args([
                "dataset",
                "seal",
                "--format",
                "npy",
                "--key",
                s(&key),
                "--out",
                s(&out),
                s(&features),
                s(&labels),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let temp_files = || -> Vec<PathBuf> {
            std::fs::read_dir(&out_dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".chiron-seal-"))
                })
                .collect()
        };
        // Wait until sealing has started writing its temporary file.
        let start = std::time::Instant::now();
        while temp_files().is_empty() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "seal ended before it could be interrupted"
            );
            assert!(
                start.elapsed().as_secs() < 120,
                "no temporary file appeared"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let result = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(status), "SIG{signal}: {stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert!(
            temp_files().is_empty(),
            "SIG{signal} left {:?}",
            temp_files()
        );
        assert!(!out.exists(), "no output after SIG{signal}");
    }
}

/// A CSV whose label column holds class names, sealed under a new key with `extra` flags:
/// (key, sealed file, CSV).
fn named_sealed(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let key = dir.join("owner.key");
    if !key.exists() {
        ok(&["keygen", "--out", s(&key)]);
    }
    let csv = dir.join("pets.csv");
    std::fs::write(
        &csv,
        "a,b,label\n1,2,tabby-cat\n3,4,beagle-dog\n5,6,tabby-cat\n",
    )
    .unwrap();
    let out = dir.join(format!("pets{}.chd", extra.join("")));
    let mut args = vec![
        "dataset",
        "seal",
        "--format",
        "csv",
        "--label-column",
        "label",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--key", s(&key), "--out", s(&out), s(&csv)]);
    let printed = ok(&args);
    assert!(printed.contains("sealed 3 records"), "{printed}");
    (key, out, csv)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn class_names_are_sealed_by_default_and_only_the_key_opens_them() {
    let dir = tempfile::tempdir().unwrap();
    let (key, sealed, _) = named_sealed(dir.path(), &[]);
    // Nowhere in the file, the header included.
    let bytes = std::fs::read(&sealed).unwrap();
    assert!(!contains(&bytes, b"tabby-cat") && !contains(&bytes, b"beagle-dog"));
    let h = inspect_json(&sealed);
    assert_eq!(h["class_names"], serde_json::json!([]));
    assert_eq!(h["sealed_class_names_bytes"], 256 + 16);
    let text = ok(&["dataset", "inspect", s(&sealed)]);
    assert!(text.contains("class names sealed (272 bytes"), "{text}");
    assert!(!text.contains("tabby-cat"), "{text}");

    // The owner's key opens them, in text and JSON.
    let text = ok(&["dataset", "inspect", "--key", s(&key), s(&sealed)]);
    assert!(text.contains("class names beagle-dog, tabby-cat"), "{text}");
    let json = ok(&["dataset", "inspect", "--json", "--key", s(&key), s(&sealed)]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        v["class_names"],
        serde_json::json!(["beagle-dog", "tabby-cat"])
    );

    // Another key is refused by key id; an edited ciphertext fails authentication, and the
    // file is refused as a whole (the names are opened with it).
    let other = dir.path().join("other.key");
    ok(&["keygen", "--out", s(&other)]);
    let err = fails(&["dataset", "inspect", "--key", s(&other), s(&sealed)]);
    assert!(err.contains("wrong key"), "{err}");
    let header_bytes = h["header_bytes"].as_u64().unwrap() as usize;
    let mut edited = bytes.clone();
    edited[header_bytes - 40] ^= 1; // inside the sealed names (the two splits follow them)
    std::fs::write(&sealed, &edited).unwrap();
    let err = fails(&["dataset", "inspect", "--key", s(&key), s(&sealed)]);
    assert!(
        err.contains("sealed class names failed authentication"),
        "{err}"
    );
    let err = fails(&["dataset", "verify", "--key", s(&key), s(&sealed)]);
    assert!(
        err.contains("sealed class names failed authentication"),
        "{err}"
    );
}

#[test]
fn public_or_dropped_class_names_are_the_owners_explicit_choice() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public, _) = named_sealed(dir.path(), &["--public-class-names"]);
    let h = inspect_json(&public);
    assert_eq!(
        h["class_names"],
        serde_json::json!(["beagle-dog", "tabby-cat"])
    );
    assert_eq!(h["sealed_class_names_bytes"], serde_json::Value::Null);
    let text = ok(&["dataset", "inspect", s(&public)]);
    assert!(
        text.contains("class names beagle-dog, tabby-cat (public)"),
        "{text}"
    );

    let (_, dropped, _) = named_sealed(dir.path(), &["--drop-class-names"]);
    let text = ok(&["dataset", "inspect", s(&dropped)]);
    assert!(text.contains("class names none"), "{text}");
    let err = fails(&[
        "dataset",
        "seal",
        "--format",
        "csv",
        "--label-column",
        "label",
        "--public-class-names",
        "--drop-class-names",
        "--key",
        "k",
        "--out",
        "o.chd",
        "x.csv",
    ]);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// Connection settings whose host and enclave refuse every connection (port 1 on loopback).
fn unreachable_settings(dir: &Path) -> PathBuf {
    let path = dir.join("client.toml");
    std::fs::write(
        &path,
        "host_api = \"http://127.0.0.1:1\"\nenclave = \"127.0.0.1:1\"\nattestation_policy = \"absent.toml\"\n",
    )
    .unwrap();
    path
}

#[test]
fn predict_opens_class_names_before_any_query() {
    let dir = tempfile::tempdir().unwrap();
    let (key, sealed, _) = named_sealed(dir.path(), &[]);
    let rows = dir.path().join("rows.csv");
    std::fs::write(&rows, "a,b\n1,2\n").unwrap();
    let connect = unreachable_settings(dir.path());
    let token = dir.path().join("owner.token");
    let predict = |extra: &[&str]| {
        let mut args = vec![
            "predict",
            "--connect",
            s(&connect),
            "--job",
            "j",
            "--token-file",
            s(&token),
        ];
        args.extend_from_slice(extra);
        args.push(s(&rows));
        fails(&args)
    };
    // Sealed names need the key, named before anything is sent.
    let err = predict(&["--dataset", s(&sealed)]);
    assert!(
        err.contains("class names are sealed") && err.contains("--key"),
        "{err}"
    );
    let other = dir.path().join("other.key");
    ok(&["keygen", "--out", s(&other)]);
    let err = predict(&["--dataset", s(&sealed), "--key", s(&other)]);
    assert!(err.contains("wrong key"), "{err}");
    // With the right key the names open and the command goes on to the (unreachable) enclave.
    let err = predict(&["--dataset", s(&sealed), "--key", s(&key)]);
    assert!(
        !err.contains("class names") && !err.contains("wrong key") && err.contains("absent.toml"),
        "{err}"
    );
}

#[test]
fn submit_authenticates_the_dataset_under_the_key_before_uploading() {
    let dir = tempfile::tempdir().unwrap();
    let (key, sealed) = small_sealed(dir.path());
    let connect = unreachable_settings(dir.path());
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/config/job.toml");
    let submit = |data: &Path, key: &Path| {
        fails(&[
            "job",
            "submit",
            "--connect",
            s(&connect),
            "--trainer",
            "0000",
            "--data",
            s(data),
            "--key",
            s(key),
            "--policy",
            s(&policy),
            "--token-file",
            s(&dir.path().join("owner.token")),
        ])
    };
    // A good file passes the local checks and fails only at the unreachable host.
    let err = submit(&sealed, &key);
    assert!(!err.contains("does not open"), "{err}");

    // A header edited to name another key's id passes the id check but not authentication.
    let other = dir.path().join("other.key");
    ok(&["keygen", "--out", s(&other)]);
    let csv = dir.path().join("small.csv");
    let other_sealed = dir.path().join("other.chd");
    ok(&[
        "dataset",
        "seal",
        "--format",
        "csv",
        "--label-column",
        "label",
        "--key",
        s(&other),
        "--out",
        s(&other_sealed),
        s(&csv),
    ]);
    let mut bytes = std::fs::read(&sealed).unwrap();
    let other_bytes = std::fs::read(&other_sealed).unwrap();
    // Preamble (14) and dataset id (16), then the 16-byte key id.
    bytes[30..46].copy_from_slice(&other_bytes[30..46]);
    let forged = dir.path().join("forged.chd");
    std::fs::write(&forged, &bytes).unwrap();
    let err = submit(&forged, &other);
    assert!(err.contains("does not open under this key"), "{err}");
    assert!(err.contains("chunk 0 of 1 failed authentication"), "{err}");

    // A damaged first chunk is refused too, before any upload.
    let damaged = dir.path().join("damaged.chd");
    std::fs::copy(&sealed, &damaged).unwrap();
    flip_in_chunk(&damaged, 0, 7);
    let err = submit(&damaged, &key);
    assert!(err.contains("does not open under this key"), "{err}");
}
