//! `chiron attest` on the real sample evidence that ships with dcap-qvl and sev.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AT: &str = "1751328000"; // 2025-07-01, inside the samples' collateral validity

/// The sample SGX quote's platform status, accepted where a test is about something else.
const ALLOW_SAMPLE_TCB: [&str; 2] = ["--allow-tcb-status", "ConfigurationAndSWHardeningNeeded"];

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
    let sgx = [
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--collateral",
        &testdata("dcap/sgx_quote_collateral.json"),
        "--at",
        AT,
    ];
    // Genuine, but its platform needs configuration and hardening: without a policy that is
    // refused, naming the status and the flag that accepts it.
    let o = chiron(&sgx);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("TCB status is ConfigurationAndSWHardeningNeeded, not UpToDate")
            && stderr(&o).contains("--allow-tcb-status ConfigurationAndSWHardeningNeeded"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
    let o = chiron(&[&sgx[..], &ALLOW_SAMPLE_TCB].concat());
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

/// A PCCS stand-in for the CLI: HTTP/1.1 on 127.0.0.1 serving the SGX sample collateral as the
/// PCS/PCCS v4 API responses (issuer chains URL-encoded in headers), 404 for anything else,
/// recording the request targets. It answers a bounded number of connections, then stops.
mod pccs {
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    pub const SGX_REQUESTS: [&str; 4] = [
        "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
        "/sgx/certification/v4/tcb?fmspc=00A067110000&update=standard",
        "/sgx/certification/v4/qe/identity?update=standard",
        "/sgx/certification/v4/rootcacrl",
    ];

    type Routes = HashMap<String, (Vec<(String, String)>, Vec<u8>)>;

    pub struct MockPccs {
        pub url: String,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl MockPccs {
        /// Serves the SGX sample collateral.
        pub fn sgx() -> Self {
            let json: serde_json::Value = serde_json::from_slice(
                &std::fs::read(super::testdata("dcap/sgx_quote_collateral.json")).unwrap(),
            )
            .unwrap();
            let field = |key: &str| json[key].as_str().unwrap().to_owned();
            let chain = |key: &str| percent_encode(&field(key));
            let [pckcrl, tcb, qe, rootcacrl] = SGX_REQUESTS.map(str::to_owned);
            let routes: Routes = HashMap::from([
                (
                    pckcrl,
                    (
                        vec![(
                            "SGX-PCK-CRL-Issuer-Chain".into(),
                            chain("pck_crl_issuer_chain"),
                        )],
                        chiron_attest::policy::parse_hex(&field("pck_crl")).unwrap(),
                    ),
                ),
                (
                    tcb,
                    (
                        vec![(
                            "TCB-Info-Issuer-Chain".into(),
                            chain("tcb_info_issuer_chain"),
                        )],
                        format!(
                            "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
                            field("tcb_info"),
                            field("tcb_info_signature")
                        )
                        .into_bytes(),
                    ),
                ),
                (
                    qe,
                    (
                        vec![(
                            "SGX-Enclave-Identity-Issuer-Chain".into(),
                            chain("qe_identity_issuer_chain"),
                        )],
                        format!(
                            "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
                            field("qe_identity"),
                            field("qe_identity_signature")
                        )
                        .into_bytes(),
                    ),
                ),
                (rootcacrl, (Vec::new(), field("root_ca_crl").into_bytes())),
            ]);

            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&requests);
            std::thread::spawn(move || {
                for stream in listener.incoming().take(16).flatten() {
                    serve(stream, &routes, &log);
                }
            });
            Self { url, requests }
        }

        pub fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    fn serve(mut stream: TcpStream, routes: &Routes, log: &Mutex<Vec<String>>) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let target = head
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("GET "))
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        let (status, headers, body) = match routes.get(&target) {
            Some((headers, body)) => ("200 OK", headers.clone(), body.clone()),
            None => ("404 Not Found", Vec::new(), b"not found".to_vec()),
        };
        log.lock().unwrap().push(target);
        let mut out = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let _ = stream.write_all(out.as_bytes());
        let _ = stream.write_all(&body);
    }

    /// Like JavaScript's `encodeURIComponent`, as Intel's PCS encodes issuer-chain headers.
    fn percent_encode(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
}

#[test]
fn fetches_dcap_collateral_from_the_pccs_named_by_the_pccs_flag() {
    let server = pccs::MockPccs::sgx();
    let o = chiron(&[
        "attest",
        "verify",
        "--json",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--pccs",
        &server.url,
        "--at",
        AT,
        ALLOW_SAMPLE_TCB[0],
        ALLOW_SAMPLE_TCB[1],
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.requests(), pccs::SGX_REQUESTS);
    let fetched: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();

    // The same claims as with the collateral file.
    let o = chiron(&[
        "attest",
        "verify",
        "--json",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--collateral",
        &testdata("dcap/sgx_quote_collateral.json"),
        "--at",
        AT,
        ALLOW_SAMPLE_TCB[0],
        ALLOW_SAMPLE_TCB[1],
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let from_file: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(fetched, from_file);
    assert_eq!(fetched["tcb_status"], "ConfigurationAndSWHardeningNeeded");

    // A PCCS that is not there: the error names the URL and the missing piece.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--pccs",
        &url,
        "--at",
        AT,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "cannot fetch the PCK CRL from {url}/sgx/certification/v4/pckcrl"
        )),
        "{}",
        stderr(&o)
    );

    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--pccs",
        "ftp://pccs.example.com",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not an http:// or https:// URL"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn fetches_dcap_collateral_from_the_policys_pccs_url() {
    let server = pccs::MockPccs::sgx();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        format!(
            "backends = [\"sgx\"]\n\
             measurements = [\"33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb\"]\n\
             tcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\n\
             pccs_url = \"{}/sgx/certification/v4\"\n",
            server.url
        ),
    )
    .unwrap();
    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--policy",
        policy.to_str().unwrap(),
        "--at",
        AT,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("policy satisfied"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&format!("fetching DCAP collateral from {}", server.url)),
        "{}",
        stderr(&o)
    );
    assert_eq!(server.requests(), pccs::SGX_REQUESTS);

    // --collateral wins over the policy's PCCS: nothing more is fetched.
    let o = chiron(&[
        "attest",
        "verify",
        "--evidence",
        &testdata("dcap/sgx_quote"),
        "--collateral",
        &testdata("dcap/sgx_quote_collateral.json"),
        "--policy",
        policy.to_str().unwrap(),
        "--at",
        AT,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(server.requests().len(), pccs::SGX_REQUESTS.len());
}
