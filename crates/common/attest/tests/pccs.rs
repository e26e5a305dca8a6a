//! Fetching DCAP collateral from a PCCS (`dcap::fetch_collateral`, feature `pccs`), against a
//! local HTTP/1.1 server on 127.0.0.1 that serves the real sample collateral of `dcap-qvl`
//! 0.7.1 (testdata/dcap/*_quote_collateral.json) re-split into the PCS/PCCS v4 API responses:
//! bodies and URL-encoded issuer-chain headers as Intel's services send them. Also the policy's
//! `pccs_url` field, which every build parses whether or not it can fetch.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use chiron_attest::Policy;

const POLICY_HEAD: &str = "backends = [\"sgx\", \"tdx\"]\nallow_any_measurement = true\n";

#[test]
fn a_policy_names_an_http_or_https_pccs_url() {
    let policy = Policy::from_toml(&format!(
        "{POLICY_HEAD}pccs_url = \"https://pccs.example.com:8081\"\n"
    ))
    .unwrap();
    assert_eq!(
        policy.pccs_url.as_deref(),
        Some("https://pccs.example.com:8081")
    );
    let policy = Policy::from_toml(&format!(
        "{POLICY_HEAD}pccs_url = \"http://127.0.0.1:8081/sgx/certification/v4/\"\n"
    ))
    .unwrap();
    assert_eq!(
        policy.pccs_url.as_deref(),
        Some("http://127.0.0.1:8081/sgx/certification/v4/")
    );
    assert_eq!(Policy::from_toml(POLICY_HEAD).unwrap().pccs_url, None);

    for bad in [
        "",
        "pccs.example.com",
        "ftp://pccs.example.com",
        "https://",
        "https://:8081/",
        "https://user:pw@pccs.example.com",
        "https://pccs.example.com:99999",
        "https://pccs.example.com/a b",
        "https://pccs.example.com/#x",
    ] {
        let err = Policy::from_toml(&format!("{POLICY_HEAD}pccs_url = {bad:?}\n")).unwrap_err();
        assert!(
            matches!(&err, chiron_attest::Error::Policy(m) if m.contains("`pccs_url`")),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn the_documented_pccs_url_example_parses() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../docs/policies/production-sgx-tdx.toml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    assert!(Policy::from_toml(&text).unwrap().pccs_url.is_none());
    let example = "# pccs_url = ";
    assert!(text.contains(example), "the example line is gone");
    let policy = Policy::from_toml(&text.replace(example, "pccs_url = ")).unwrap();
    assert_eq!(
        policy.pccs_url.as_deref(),
        Some("https://api.trustedservices.intel.com")
    );
}

#[cfg(not(feature = "pccs"))]
#[test]
fn without_the_feature_fetching_says_the_build_lacks_pccs_support() {
    let err = chiron_attest::dcap::fetch_collateral(
        "https://pccs.example.com",
        b"quote",
        std::time::Duration::from_secs(1),
    )
    .unwrap_err();
    const { assert!(!chiron_attest::dcap::PCCS_SUPPORTED) };
    assert!(
        matches!(&err, chiron_attest::Error::Endorsements(m)
            if m.contains("lacks PCCS support") && m.contains("https://pccs.example.com")),
        "{err}"
    );
}

#[cfg(feature = "pccs")]
mod fetch {
    use std::collections::HashMap;
    use std::time::Duration;

    use chiron_attest::dcap::{
        Collateral, PCCS_MAX_RESPONSE_BYTES, fetch_collateral, verify_quote,
    };
    use chiron_attest::policy::parse_hex;
    use chiron_attest::{Backend, Error, VerifiedClaims};
    use serde_json::Value;

    use super::server::{MockPccs, Response, percent_encode};

    /// 2025-07-01T00:00:00Z: inside the SGX and TDX sample collateral's windows.
    const AT: u64 = 1_751_328_000;
    const TIMEOUT: Duration = Duration::from_secs(20);

    const SGX_REQUESTS: [&str; 4] = [
        "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
        "/sgx/certification/v4/tcb?fmspc=00A067110000&update=standard",
        "/sgx/certification/v4/qe/identity?update=standard",
        "/sgx/certification/v4/rootcacrl",
    ];
    const TDX_REQUESTS: [&str; 4] = [
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
        "/tdx/certification/v4/tcb?fmspc=B0C06F000000&update=standard",
        "/tdx/certification/v4/qe/identity?update=standard",
        "/sgx/certification/v4/rootcacrl",
    ];

    fn testdata(name: &str) -> Vec<u8> {
        let path = format!("{}/testdata/dcap/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn collateral_json(name: &str) -> Value {
        serde_json::from_slice(&testdata(&format!("{name}_collateral.json"))).unwrap()
    }

    fn field<'a>(json: &'a Value, key: &str) -> &'a str {
        json[key].as_str().unwrap()
    }

    /// The PCCS v4 responses holding the sample collateral `name` (`sgx_quote`, `tdx_quote`),
    /// keyed by request target; `requests` are the targets, in the order fetched.
    fn routes(json: &Value, requests: &[&str; 4]) -> HashMap<String, Response> {
        let [pckcrl, tcb, qe_identity, rootcacrl] = requests;
        let chain = |key: &str| percent_encode(field(json, key));
        let signed = |name: &str, key: &str, signature: &str| {
            format!(
                "{{\"{name}\":{},\"signature\":\"{}\"}}",
                field(json, key),
                field(json, signature)
            )
            .into_bytes()
        };
        HashMap::from([
            (
                pckcrl.to_string(),
                Response::ok(parse_hex(field(json, "pck_crl")).unwrap())
                    .header("SGX-PCK-CRL-Issuer-Chain", &chain("pck_crl_issuer_chain")),
            ),
            (
                tcb.to_string(),
                Response::ok(signed("tcbInfo", "tcb_info", "tcb_info_signature"))
                    .header("TCB-Info-Issuer-Chain", &chain("tcb_info_issuer_chain"))
                    .header("Content-Type", "application/json"),
            ),
            (
                qe_identity.to_string(),
                Response::ok(signed(
                    "enclaveIdentity",
                    "qe_identity",
                    "qe_identity_signature",
                ))
                .header(
                    "SGX-Enclave-Identity-Issuer-Chain",
                    &chain("qe_identity_issuer_chain"),
                )
                .header("Content-Type", "application/json"),
            ),
            (
                rootcacrl.to_string(),
                // A PCCS serves the root CA CRL as hex text.
                Response::ok(field(json, "root_ca_crl").as_bytes().to_vec()),
            ),
        ])
    }

    fn file_claims(name: &str) -> VerifiedClaims {
        let collateral =
            Collateral::from_json(&testdata(&format!("{name}_collateral.json"))).unwrap();
        verify_quote(&testdata(name), &collateral, AT).unwrap()
    }

    /// The fetched collateral equals the sample file's, plus the quote's PCK chain.
    fn assert_same_collateral(fetched: &Collateral, json: &Value) {
        let mut fetched: Value = serde_json::from_slice(&fetched.to_json().unwrap()).unwrap();
        let pck_chain = fetched
            .as_object_mut()
            .unwrap()
            .remove("pck_certificate_chain")
            .unwrap();
        assert!(pck_chain.as_str().unwrap().contains("BEGIN CERTIFICATE"));
        assert_eq!(&fetched, json);
    }

    fn endorsements(err: &Error) -> &str {
        match err {
            Error::Endorsements(m) => m,
            other => panic!("expected Error::Endorsements, got {other:?}"),
        }
    }

    #[test]
    fn fetches_sgx_collateral_that_verifies_like_the_sample_file() {
        const { assert!(chiron_attest::dcap::PCCS_SUPPORTED) };
        let json = collateral_json("sgx_quote");
        let pccs = MockPccs::start(routes(&json, &SGX_REQUESTS));
        let fetched = fetch_collateral(&pccs.url, &testdata("sgx_quote"), TIMEOUT).unwrap();
        assert_eq!(pccs.requests(), SGX_REQUESTS);
        assert_same_collateral(&fetched, &json);

        let claims = verify_quote(&testdata("sgx_quote"), &fetched, AT).unwrap();
        assert_eq!(claims.backend, Backend::Sgx);
        assert_eq!(claims, file_claims("sgx_quote"));
    }

    #[test]
    fn fetches_tdx_collateral_that_verifies_like_the_sample_file() {
        let json = collateral_json("tdx_quote");
        let pccs = MockPccs::start(routes(&json, &TDX_REQUESTS));
        // The v4 path in the URL (as some PCCS configurations name it) is dropped.
        let url = format!("{}/tdx/certification/v4/", pccs.url);
        let fetched = fetch_collateral(&url, &testdata("tdx_quote"), TIMEOUT).unwrap();
        assert_eq!(pccs.requests(), TDX_REQUESTS);
        assert_same_collateral(&fetched, &json);

        let claims = verify_quote(&testdata("tdx_quote"), &fetched, AT).unwrap();
        assert_eq!(claims.backend, Backend::Tdx);
        assert_eq!(claims, file_claims("tdx_quote"));
    }

    #[test]
    fn a_tampered_tcb_info_is_fetched_but_rejected() {
        let mut json = collateral_json("sgx_quote");
        let mut tcb_info: Value = serde_json::from_str(field(&json, "tcb_info")).unwrap();
        let number = tcb_info["tcbEvaluationDataNumber"].as_u64().unwrap();
        tcb_info["tcbEvaluationDataNumber"] = (number + 1).into();
        json["tcb_info"] = tcb_info.to_string().into();
        let pccs = MockPccs::start(routes(&json, &SGX_REQUESTS));

        let fetched = fetch_collateral(&pccs.url, &testdata("sgx_quote"), TIMEOUT).unwrap();
        let err = verify_quote(&testdata("sgx_quote"), &fetched, AT).unwrap_err();
        match &err {
            Error::Rejected(m) => {
                assert!(m.contains("Signature is invalid for tcb_info"), "{m}")
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_piece_names_the_url_and_the_piece() {
        let json = collateral_json("sgx_quote");
        let mut routes = routes(&json, &SGX_REQUESTS);
        routes.remove(SGX_REQUESTS[2]);
        let pccs = MockPccs::start(routes);
        let err = fetch_collateral(&pccs.url, &testdata("sgx_quote"), TIMEOUT).unwrap_err();
        let m = endorsements(&err);
        assert!(m.contains("QE identity"), "{m}");
        assert!(
            m.contains(&format!("{}{}", pccs.url, SGX_REQUESTS[2])),
            "{m}"
        );
        assert!(m.contains("404"), "{m}");
        assert_eq!(pccs.requests(), SGX_REQUESTS[..3]);
    }

    #[test]
    fn a_missing_issuer_chain_header_is_named() {
        let json = collateral_json("sgx_quote");
        let mut routes = routes(&json, &SGX_REQUESTS);
        let tcb = routes.get_mut(SGX_REQUESTS[1]).unwrap();
        tcb.headers
            .retain(|(name, _)| name != "TCB-Info-Issuer-Chain");
        let pccs = MockPccs::start(routes);
        let err = fetch_collateral(&pccs.url, &testdata("sgx_quote"), TIMEOUT).unwrap_err();
        let m = endorsements(&err);
        assert!(m.contains("TCB info"), "{m}");
        assert!(m.contains("TCB-Info-Issuer-Chain"), "{m}");
        assert!(m.contains(&pccs.url), "{m}");
    }

    #[test]
    fn an_unreachable_pccs_is_a_clear_error() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let err = fetch_collateral(&url, &testdata("sgx_quote"), TIMEOUT).unwrap_err();
        let m = endorsements(&err);
        assert!(m.contains("PCK CRL"), "{m}");
        assert!(m.contains(&format!("{url}{}", SGX_REQUESTS[0])), "{m}");
    }

    #[test]
    fn an_invalid_url_is_refused_before_any_request() {
        for url in ["ftp://127.0.0.1/", "not a url", "http://"] {
            let err = fetch_collateral(url, &testdata("sgx_quote"), TIMEOUT).unwrap_err();
            assert!(endorsements(&err).contains("invalid PCCS URL"), "{err}");
        }
    }

    #[test]
    fn an_oversized_response_is_refused() {
        let json = collateral_json("sgx_quote");
        let mut routes = routes(&json, &SGX_REQUESTS);
        let tcb = routes.get_mut(SGX_REQUESTS[1]).unwrap();
        tcb.body = vec![b' '; usize::try_from(PCCS_MAX_RESPONSE_BYTES).unwrap() + 1];
        let pccs = MockPccs::start(routes);
        let err = fetch_collateral(&pccs.url, &testdata("sgx_quote"), TIMEOUT).unwrap_err();
        let m = endorsements(&err);
        assert!(m.contains("TCB info") && m.contains("larger than"), "{m}");
    }

    #[test]
    fn a_slow_pccs_runs_into_the_time_limit() {
        let json = collateral_json("sgx_quote");
        let mut routes = routes(&json, &SGX_REQUESTS);
        routes.get_mut(SGX_REQUESTS[1]).unwrap().delay = Some(Duration::from_secs(3));
        let pccs = MockPccs::start(routes);
        let started = std::time::Instant::now();
        let err = fetch_collateral(
            &pccs.url,
            &testdata("sgx_quote"),
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        let m = endorsements(&err);
        assert!(m.contains("TCB info") && m.contains("timeout"), "{m}");
    }

    #[test]
    fn a_malformed_body_is_named() {
        let json = collateral_json("sgx_quote");
        let mut routes = routes(&json, &SGX_REQUESTS);
        routes.get_mut(SGX_REQUESTS[2]).unwrap().body = b"{\"enclaveIdentity\": 1}".to_vec();
        let pccs = MockPccs::start(routes);
        let err = fetch_collateral(&pccs.url, &testdata("sgx_quote"), TIMEOUT).unwrap_err();
        let m = endorsements(&err);
        assert!(m.contains("QE identity") && m.contains("JSON"), "{m}");
    }

    #[test]
    fn garbage_is_not_a_quote() {
        let err = fetch_collateral("http://127.0.0.1:1", b"garbage", TIMEOUT).unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "{err:?}");
    }

    /// The SGX sample quote rewritten to carry an encrypted PPID (certification data type 3)
    /// instead of its PCK chain, as a platform without a cached PCK certificate sends it; and
    /// the PCK leaf's CPUSVN, PCESVN and PCEID. The signed header and body are unchanged.
    fn encrypted_ppid_quote() -> (Vec<u8>, [u8; 16], u16, Vec<u8>) {
        let mut quote = testdata("sgx_quote");
        let (cert, chain) = sgx_certification_data(&quote);
        let leaf = pem_blocks(&chain).remove(0);
        let leaf_der = x509_parser::pem::parse_x509_pem(leaf.as_bytes())
            .unwrap()
            .1
            .contents;
        let ext = dcap_qvl::intel::parse_pck_extension(&leaf_der).unwrap();

        quote.truncate(cert);
        quote.extend_from_slice(&3u16.to_le_bytes());
        quote.extend_from_slice(&(384u32 + 20).to_le_bytes());
        quote.extend_from_slice(&[0xa5; 384]);
        quote.extend_from_slice(&ext.cpu_svn);
        quote.extend_from_slice(&ext.pce_svn.to_le_bytes());
        quote.extend_from_slice(&ext.pce_id);
        let signature_data_len = u32::try_from(quote.len() - 436).unwrap();
        quote[432..436].copy_from_slice(&signature_data_len.to_le_bytes());
        (quote, ext.cpu_svn, ext.pce_svn, ext.pce_id)
    }

    /// Where the SGX sample quote's certification data starts, and the PCK chain it holds.
    fn sgx_certification_data(quote: &[u8]) -> (usize, String) {
        // v3: header 48, body 384, signature data length 4, signature 64, attestation key 64,
        // QE report 384, QE report signature 64, QE auth data (u16 length + data), then the
        // certification data (u16 type, u32 length, data).
        let auth = 48 + 384 + 4 + 64 + 64 + 384 + 64;
        let auth_len = usize::from(u16::from_le_bytes([quote[auth], quote[auth + 1]]));
        let cert = auth + 2 + auth_len;
        assert_eq!(u16::from_le_bytes([quote[cert], quote[cert + 1]]), 5);
        (cert, String::from_utf8(quote[cert + 6..].to_vec()).unwrap())
    }

    fn pem_blocks(chain: &str) -> Vec<String> {
        chain
            .split_inclusive("-----END CERTIFICATE-----")
            .map(str::trim)
            .filter(|b| b.contains("BEGIN CERTIFICATE"))
            .map(|b| format!("{b}\n"))
            .collect()
    }

    fn upper_hex(bytes: &[u8]) -> String {
        chiron_attest::hex(bytes).to_ascii_uppercase()
    }

    /// Routes for the encrypted-PPID quote: the SGX ones plus `pckcert`, answering with the
    /// sample's PCK leaf and its issuer chain at the TCB level `tcbm` (CPUSVN ‖ PCESVN LE).
    fn pckcert_routes(quote: &[u8], tcbm: &[u8]) -> (HashMap<String, Response>, String) {
        let (_, chain) = sgx_certification_data(&testdata("sgx_quote"));
        let blocks = pem_blocks(&chain);
        let parsed = dcap_qvl::quote::Quote::parse(quote).unwrap();
        let params = parsed.encrypted_ppid_params().unwrap();
        let target = format!(
            "/sgx/certification/v4/pckcert?qeid={}&encrypted_ppid={}&cpusvn={}&pcesvn={}&pceid={}",
            upper_hex(parsed.qeid()),
            upper_hex(&params.encrypted_ppid),
            upper_hex(&params.cpusvn),
            upper_hex(&params.pcesvn.to_le_bytes()),
            upper_hex(&params.pceid),
        );
        let mut routes = routes(&collateral_json("sgx_quote"), &SGX_REQUESTS);
        routes.insert(
            target.clone(),
            Response::ok(blocks[0].clone().into_bytes())
                .header(
                    "SGX-PCK-Certificate-Issuer-Chain",
                    &percent_encode(&blocks[1..].concat()),
                )
                .header("SGX-TCBm", &upper_hex(tcbm))
                .header("SGX-FMSPC", "00A067110000")
                .header("SGX-PCK-Certificate-CA-Type", "processor"),
        );
        (routes, target)
    }

    #[test]
    fn an_encrypted_ppid_quote_gets_its_pck_certificate_from_the_pccs() {
        let (quote, cpu_svn, pce_svn, _) = encrypted_ppid_quote();
        let tcbm = [&cpu_svn[..], &pce_svn.to_le_bytes()[..]].concat();
        let (routes, target) = pckcert_routes(&quote, &tcbm);
        let pccs = MockPccs::start(routes);

        let fetched = fetch_collateral(&pccs.url, &quote, TIMEOUT).unwrap();
        let mut expected = vec![target.as_str()];
        expected.extend(SGX_REQUESTS);
        assert_eq!(pccs.requests(), expected);
        assert_eq!(
            verify_quote(&quote, &fetched, AT).unwrap(),
            file_claims("sgx_quote")
        );
        // Without the fetched chain the quote cannot be verified at all.
        let file = Collateral::from_json(&testdata("sgx_quote_collateral.json")).unwrap();
        assert!(verify_quote(&quote, &file, AT).is_err());
    }

    #[test]
    fn a_pck_certificate_for_another_tcb_level_is_refused() {
        let (quote, cpu_svn, pce_svn, _) = encrypted_ppid_quote();
        let tcbm = [&cpu_svn[..], &(pce_svn - 1).to_le_bytes()[..]].concat();
        let (routes, _) = pckcert_routes(&quote, &tcbm);
        let pccs = MockPccs::start(routes);
        let err = fetch_collateral(&pccs.url, &quote, TIMEOUT).unwrap_err();
        let m = endorsements(&err);
        assert!(m.contains("TCB level") && m.contains(&pccs.url), "{m}");
        assert_eq!(pccs.requests().len(), 1);
    }
}

/// A PCCS stand-in: HTTP/1.1 on 127.0.0.1, one connection at a time, `Connection: close`,
/// fixed responses by request target (404 for any other), every target it was asked for
/// recorded. It serves a bounded number of connections and then stops by itself.
#[cfg(feature = "pccs")]
mod server {
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const MAX_CONNECTIONS: usize = 32;

    /// One canned response.
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
        /// Wait this long before answering.
        pub delay: Option<Duration>,
    }

    impl Response {
        pub fn ok(body: Vec<u8>) -> Self {
            Self {
                status: 200,
                headers: Vec::new(),
                body,
                delay: None,
            }
        }

        pub fn header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.to_owned(), value.to_owned()));
            self
        }
    }

    pub struct MockPccs {
        /// `http://127.0.0.1:PORT`
        pub url: String,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl MockPccs {
        pub fn start(routes: HashMap<String, Response>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&requests);
            std::thread::spawn(move || {
                for stream in listener.incoming().take(MAX_CONNECTIONS).flatten() {
                    serve(stream, &routes, &log);
                }
            });
            Self { url, requests }
        }

        /// The request targets (path and query) received so far, in order.
        pub fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    fn serve(mut stream: TcpStream, routes: &HashMap<String, Response>, log: &Mutex<Vec<String>>) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
            if head.len() > 64 * 1024 {
                return;
            }
        }
        let head = String::from_utf8_lossy(&head);
        let mut request_line = head.lines().next().unwrap_or_default().split(' ');
        let (method, target) = (request_line.next(), request_line.next().unwrap_or_default());
        log.lock().unwrap().push(target.to_owned());
        let not_found = Response {
            status: 404,
            headers: Vec::new(),
            body: b"not found".to_vec(),
            delay: None,
        };
        let response = match method {
            Some("GET") => routes.get(target).unwrap_or(&not_found),
            _ => &not_found,
        };
        if let Some(delay) = response.delay {
            std::thread::sleep(delay);
        }
        let reason = if response.status == 200 {
            "OK"
        } else {
            "Not Found"
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
            response.status,
            response.body.len()
        );
        for (name, value) in &response.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let _ = stream.write_all(out.as_bytes());
        let _ = stream.write_all(&response.body);
        let _ = stream.flush();
    }

    /// Percent-encodes like JavaScript's `encodeURIComponent`, as Intel's PCS and the PCCS do
    /// for issuer-chain headers.
    pub fn percent_encode(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'!' | b'~' => {
                    char::from(b).to_string()
                }
                b'*' | b'\'' | b'(' | b')' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
}
