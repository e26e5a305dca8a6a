//! `chiron attest` on the real sample evidence that ships with dcap-qvl and sev.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AT: &str = "1751328000"; // 2025-07-01, inside the samples' collateral validity

fn chiron(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chiron"))
        .args(args)
        .output()
        .unwrap()
}

fn testdata(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../common/attest/testdata")
        .join(rel)
        .to_str()
        .unwrap()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn accepts_the_sample_sgx_and_tdx_quotes_and_prints_tcb_status() {
    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--collateral",
        &testdata("dcap/sgx_quote_collateral.json"),
        "--at",
        AT,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("tcb status   ConfigurationAndSWHardeningNeeded"),
        "{}",
        stdout(&o)
    );

    let o = chiron(&[
        "attest",
        "verify",
        "--json",
        "--evidence",
        &testdata("dcap/tdx_quote"),
        "--collateral",
        &testdata("dcap/tdx_quote_collateral.json"),
        "--at",
        AT,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["backend"], "tdx");
    assert_eq!(v["tcb_status"], "UpToDate");
    assert_eq!(v["measurement"].as_str().unwrap().len(), 96);
}

#[test]
fn rejects_tampered_and_expired_evidence_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut quote = std::fs::read(testdata("dcap/sgx_quote")).unwrap();
    quote[48 + 64] ^= 1; // inside the enclave report body (MRENCLAVE)
    let bad: PathBuf = dir.path().join("bad_quote");
    std::fs::write(&bad, &quote).unwrap();
    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        bad.to_str().unwrap(),
        "--collateral",
        &testdata("dcap/sgx_quote_collateral.json"),
        "--at",
        AT,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("evidence rejected"), "{}", stderr(&o));

    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--collateral",
        &testdata("dcap/sgx_quote_collateral.json"),
        "--at",
        "1900000000",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).to_lowercase().contains("expired"),
        "{}",
        stderr(&o)
    );

    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("need DCAP collateral"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_policy_turns_genuine_evidence_into_a_decision() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "backends = [\"sgx\"]\nmeasurements = [\"33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb\"]\n",
    )
    .unwrap();
    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--collateral",
        &testdata("dcap/sgx_quote_collateral.json"),
        "--at",
        AT,
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "policy violation: TCB status ConfigurationAndSWHardeningNeeded is not accepted"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn measure_prints_the_sha384_measurement() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("enclave");
    std::fs::write(&exe, b"binary").unwrap();
    let o = chiron(&["attest", "measure", exe.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        chiron_attest::hex(&chiron_attest::sim::measure(b"binary", b""))
    );
}

#[test]
fn accepts_the_sample_snp_report_with_its_vcek_chain_and_rejects_another_chip() {
    let o = chiron(&[
        "attest",
        "verify",
        "--json",
        "--evidence",
        &testdata("snp/milan/report.hex"),
        "--certs",
        &testdata("snp/milan"),
        "--at",
        AT,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["backend"], "sev-snp");
    assert_eq!(v["debug"], false);
    assert_eq!(v["extra"]["reported_tcb_snp"], "8");

    let dir = tempfile::tempdir().unwrap();
    for f in ["ark.pem", "ask.pem"] {
        std::fs::copy(testdata(&format!("snp/milan/{f}")), dir.path().join(f)).unwrap();
    }
    std::fs::copy(
        testdata("snp/other/vcek_turin.der"),
        dir.path().join("vcek.der"),
    )
    .unwrap();
    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("snp/milan/report.hex"),
        "--certs",
        dir.path().to_str().unwrap(),
        "--at",
        AT,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("evidence rejected"), "{}", stderr(&o));
}
