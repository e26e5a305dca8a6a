//! SGX and TDX DCAP quote verification against the real sample quotes and collateral that ship
//! with `dcap-qvl` 0.7.1 (see testdata/README.md), each at a fixed time inside (or, for the
//! rejection tests, just outside) the collateral's validity window.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chiron_attest::dcap::{Collateral, verify_quote};
use chiron_attest::{Backend, Error, TcbStatus, VerifiedClaims, hex};

/// 2025-07-01T00:00:00Z: inside the SGX and TDX sample collateral's windows.
const T_2025_07_01: u64 = 1_751_328_000;

/// SGX window: TCB info issueDate 2025-06-19T10:56:11Z ..= QE identity nextUpdate
/// 2025-07-19T10:01:18Z (the earliest of every nextUpdate / notAfter in the collateral).
const SGX_NOT_BEFORE: u64 = 1_750_330_571;
const SGX_NOT_AFTER: u64 = 1_752_919_278;

/// TDX window: QE identity issueDate 2025-06-19T10:32:27Z .. PCK CRL nextUpdate
/// 2025-07-19T10:00:35Z, exclusive: webpki treats a CRL as expired from its nextUpdate on,
/// while dcap-qvl accepts TCB info and QE identity up to and including theirs.
const TDX_NOT_BEFORE: u64 = 1_750_329_147;
const TDX_NOT_AFTER: u64 = 1_752_919_234;

/// 2025-08-01T00:00:00Z: after every sample's TCB info expired.
const T_2025_08_01: u64 = 1_754_006_400;

/// 2026-10-20T00:00:00Z: inside the TDX 1.5 sample's window
/// (2026-10-08T00:28:26Z ..= 2026-11-06T23:45:11Z).
const T_2026_10_20: u64 = 1_792_454_400;

/// 2026-03-01T00:00:00Z: inside the outdated TDX sample's window
/// (2026-02-18T10:58:51Z ..= 2026-03-20T10:41:15Z).
const T_2026_03_01: u64 = 1_772_323_200;

// Offsets in the raw quotes: a 48-byte header, then the body, then a 4-byte signature-data
// length and the 64-byte ECDSA signature over header and body.
const HEADER_LEN: usize = 48;
const SGX_MRENCLAVE: usize = HEADER_LEN + 64;
const SGX_REPORT_DATA: usize = HEADER_LEN + 320;
const SGX_SIGNATURE: usize = HEADER_LEN + 384 + 4;
const TDX_MRTD: usize = HEADER_LEN + 136;
const TDX_REPORT_DATA: usize = HEADER_LEN + 520;
const TDX_SIGNATURE: usize = HEADER_LEN + 584 + 4;

fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/dcap/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn collateral(name: &str) -> Collateral {
    Collateral::from_json(&testdata(name)).unwrap()
}

/// The collateral `name` with one JSON field changed by `edit`.
fn edited_collateral(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Collateral {
    let mut json: serde_json::Value = serde_json::from_slice(&testdata(name)).unwrap();
    edit(&mut json);
    Collateral::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
}

/// Replaces the string field `field` by `f(old)`.
fn edit_str(json: &mut serde_json::Value, field: &str, f: impl FnOnce(&str) -> String) {
    let old = json[field].as_str().unwrap().to_owned();
    let new = f(&old);
    assert_ne!(old, new, "edit of {field} changed nothing");
    json[field] = serde_json::Value::String(new);
}

/// Flips the low bit of the hex digit at `index`.
fn flip_hex_digit(hex: &str, index: usize) -> String {
    let mut chars: Vec<char> = hex.chars().collect();
    let digit = chars[index].to_digit(16).unwrap() ^ 1;
    chars[index] = char::from_digit(digit, 16).unwrap();
    chars.into_iter().collect()
}

fn sgx() -> (Vec<u8>, Collateral) {
    (
        testdata("sgx_quote"),
        collateral("sgx_quote_collateral.json"),
    )
}

fn tdx() -> (Vec<u8>, Collateral) {
    (
        testdata("tdx_quote"),
        collateral("tdx_quote_collateral.json"),
    )
}

fn flipped(mut bytes: Vec<u8>, offset: usize) -> Vec<u8> {
    bytes[offset] ^= 0x01;
    bytes
}

/// Asserts `Error::Rejected` whose message contains every one of `needles`.
#[track_caller]
fn assert_rejected(result: chiron_attest::Result<VerifiedClaims>, needles: &[&str]) {
    match result {
        Err(Error::Rejected(message)) => {
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "rejection {message:?} does not mention {needle:?}"
                );
            }
        }
        Err(other) => panic!("expected Error::Rejected mentioning {needles:?}, got {other:?}"),
        Ok(claims) => panic!("expected rejection mentioning {needles:?}, got {claims:?}"),
    }
}

#[test]
fn accepts_sgx_quote_with_its_claims() {
    let (quote, collateral) = sgx();
    let claims = verify_quote(&quote, &collateral, T_2025_07_01).unwrap();

    assert_eq!(claims.backend, Backend::Sgx);
    assert_eq!(
        hex(&claims.measurement),
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        hex(claims.signer.as_deref().unwrap()),
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    assert_eq!(claims.product_id, Some(0));
    assert_eq!(claims.svn, Some(0));
    // A genuine quote whose TCB is not UpToDate is returned with its status, not rejected.
    assert_eq!(
        claims.tcb_status,
        Some(TcbStatus::ConfigurationAndSWHardeningNeeded)
    );
    assert_eq!(claims.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert!(!claims.debug);
    assert!(claims.report_data.starts_with(b"Hello, world!\0"));
    assert!(claims.report_data[13..].iter().all(|b| *b == 0));
    assert_eq!(hex(claims.platform_id.as_deref().unwrap()), "00a067110000");
    assert_eq!(claims.extra["quote_version"], "3");
    assert_eq!(
        claims.extra["attributes"],
        "0500000000000000e700000000000000"
    );
    assert_eq!(claims.extra["tcb_eval_data_number"], "17");
    // QE identity issueDate 2025-06-19T10:01:18Z (older than the TCB info's).
    assert_eq!(claims.extra["collateral_issue_date"], "1750327278");
    assert_eq!(
        claims.extra["collateral_expiration_date"],
        SGX_NOT_AFTER.to_string()
    );
}

#[test]
fn accepts_tdx_quote_with_its_claims() {
    let (quote, collateral) = tdx();
    let claims = verify_quote(&quote, &collateral, T_2025_07_01).unwrap();

    assert_eq!(claims.backend, Backend::Tdx);
    assert_eq!(
        hex(&claims.measurement),
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(claims.signer, None);
    assert_eq!(claims.product_id, None);
    assert_eq!(claims.svn, None);
    assert_eq!(claims.tcb_status, Some(TcbStatus::UpToDate));
    assert!(claims.advisory_ids.is_empty());
    assert!(!claims.debug);
    assert_eq!(
        hex(&claims.report_data),
        "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9\
         eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20"
    );
    assert_eq!(hex(claims.platform_id.as_deref().unwrap()), "b0c06f000000");
    let extra = &claims.extra;
    assert_eq!(extra["quote_version"], "4");
    assert_eq!(
        extra["rtmr0"],
        "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0"
    );
    assert_eq!(
        extra["rtmr2"],
        "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132"
    );
    assert_eq!(extra["rtmr3"], "00".repeat(48));
    for zero in ["mr_config_id", "mr_owner", "mr_owner_config"] {
        assert_eq!(extra[zero], "00".repeat(48), "{zero}");
    }
    assert_eq!(extra["tee_tcb_svn"], "06010300000000000000000000000000");
    // Only SEPT_VE_DISABLE (bit 28) set: no debug, no profiling.
    assert_eq!(extra["td_attributes"], "0000001000000000");
    assert!(!extra.contains_key("tee_tcb_svn2"));
}

#[test]
fn accepts_tdx15_quote_with_pck_chain_in_collateral() {
    let quote = testdata("tdx_quote_td15ex");
    let collateral = collateral("tdx_quote_td15ex_collateral.json");
    let claims = verify_quote(&quote, &collateral, T_2026_10_20).unwrap();

    assert_eq!(claims.backend, Backend::Tdx);
    assert_eq!(
        hex(&claims.measurement),
        "2a674327c50218dba880066b349b8d559d749ed68dce33fd651c184a877d084b07a9e583767a7ad5da13ed91deec2b70"
    );
    assert_eq!(claims.tcb_status, Some(TcbStatus::UpToDate));
    assert!(!claims.debug);
    assert_eq!(claims.extra["quote_version"], "5");
    assert_eq!(
        claims.extra["tee_tcb_svn2"],
        "0f010400000000000000000000000000"
    );
    assert_eq!(claims.extra["mr_service_td"], "00".repeat(48));
    assert_eq!(
        claims.extra["rtmr3"],
        "556d4986cae57e7e3756b6471e4951be6f5f1b4e70942c72325223d6af239da90f1484eeb627727e6d2c0755393b5fdf"
    );
}

#[test]
fn accepts_at_both_ends_of_the_validity_window() {
    let (quote, collateral) = sgx();
    verify_quote(&quote, &collateral, SGX_NOT_BEFORE).unwrap();
    verify_quote(&quote, &collateral, SGX_NOT_AFTER).unwrap();
    let (quote, collateral) = tdx();
    verify_quote(&quote, &collateral, TDX_NOT_BEFORE).unwrap();
    verify_quote(&quote, &collateral, TDX_NOT_AFTER).unwrap();
}

#[test]
fn rejects_after_collateral_expiry() {
    let (quote, collateral) = sgx();
    assert_rejected(
        verify_quote(&quote, &collateral, SGX_NOT_AFTER + 1),
        &["QE Identity expired"],
    );
    assert_rejected(
        verify_quote(&quote, &collateral, T_2025_08_01),
        &["TCBInfo expired"],
    );
    let (quote, collateral) = tdx();
    // The PCK CRL is the first to expire in the TDX collateral.
    assert_rejected(
        verify_quote(&quote, &collateral, TDX_NOT_AFTER + 1),
        &["tdx quote", "certificate chain", "Expired"],
    );
    assert_rejected(
        verify_quote(&quote, &collateral, T_2025_08_01),
        &["TCBInfo expired"],
    );
}

#[test]
fn rejects_before_collateral_is_valid() {
    let (quote, collateral) = sgx();
    assert_rejected(
        verify_quote(&quote, &collateral, SGX_NOT_BEFORE - 1),
        &["TCBInfo issue date is in the future"],
    );
    let (quote, collateral) = tdx();
    assert_rejected(
        verify_quote(&quote, &collateral, TDX_NOT_BEFORE - 1),
        &["QE Identity issue date is in the future"],
    );
}

#[test]
fn rejects_tampered_sgx_quote_body() {
    let (quote, collateral) = sgx();
    for offset in [SGX_REPORT_DATA, SGX_REPORT_DATA + 63, SGX_MRENCLAVE] {
        assert_rejected(
            verify_quote(&flipped(quote.clone(), offset), &collateral, T_2025_07_01),
            &["sgx quote", "ISV enclave report signature is invalid"],
        );
    }
}

#[test]
fn rejects_tampered_sgx_quote_signature() {
    let (quote, collateral) = sgx();
    for offset in [SGX_SIGNATURE, SGX_SIGNATURE + 40] {
        assert_rejected(
            verify_quote(&flipped(quote.clone(), offset), &collateral, T_2025_07_01),
            &["ISV enclave report signature is invalid"],
        );
    }
}

#[test]
fn rejects_tampered_tdx_quote() {
    let (quote, collateral) = tdx();
    for offset in [TDX_MRTD, TDX_REPORT_DATA, TDX_SIGNATURE, TDX_SIGNATURE + 63] {
        assert_rejected(
            verify_quote(&flipped(quote.clone(), offset), &collateral, T_2025_07_01),
            &["tdx quote", "ISV enclave report signature is invalid"],
        );
    }
}

#[test]
fn rejects_tampered_tcb_info() {
    let collateral = edited_collateral("sgx_quote_collateral.json", |json| {
        edit_str(json, "tcb_info", |s| {
            s.replace(
                "\"tcbEvaluationDataNumber\":17",
                "\"tcbEvaluationDataNumber\":18",
            )
        });
    });
    assert_rejected(
        verify_quote(&testdata("sgx_quote"), &collateral, T_2025_07_01),
        &["Signature is invalid for tcb_info"],
    );
}

#[test]
fn rejects_tampered_tcb_info_signature() {
    let collateral = edited_collateral("tdx_quote_collateral.json", |json| {
        edit_str(json, "tcb_info_signature", |s| flip_hex_digit(s, 10));
    });
    assert_rejected(
        verify_quote(&testdata("tdx_quote"), &collateral, T_2025_07_01),
        &["Signature is invalid for tcb_info"],
    );
}

#[test]
fn rejects_tampered_qe_identity() {
    let collateral = edited_collateral("sgx_quote_collateral.json", |json| {
        edit_str(json, "qe_identity", |s| {
            s.replace(
                "\"tcbEvaluationDataNumber\":17",
                "\"tcbEvaluationDataNumber\":16",
            )
        });
    });
    assert_rejected(
        verify_quote(&testdata("sgx_quote"), &collateral, T_2025_07_01),
        &["Signature is invalid for qe_identity"],
    );
}

#[test]
fn rejects_tampered_crls() {
    // Flip a digit near the end of each CRL: inside its signature.
    let root = edited_collateral("sgx_quote_collateral.json", |json| {
        edit_str(json, "root_ca_crl", |s| flip_hex_digit(s, s.len() - 4));
    });
    assert_rejected(
        verify_quote(&testdata("sgx_quote"), &root, T_2025_07_01),
        &["root CA CRL"],
    );
    let pck = edited_collateral("sgx_quote_collateral.json", |json| {
        edit_str(json, "pck_crl", |s| flip_hex_digit(s, s.len() - 4));
    });
    assert_rejected(
        verify_quote(&testdata("sgx_quote"), &pck, T_2025_07_01),
        &["certificate chain", "Crl"],
    );
}

#[test]
fn rejects_collateral_of_another_platform() {
    let (quote, _) = sgx();
    let (_, tdx_collateral) = tdx();
    assert_rejected(
        verify_quote(&quote, &tdx_collateral, T_2025_07_01),
        &["sgx quote"],
    );
}

#[test]
fn rejects_tdx_quote_below_every_tcb_level() {
    // dcap-qvl's "outdated" sample: genuine, but its platform TCB is below every level in the
    // TCB info, so there is no status to report (Intel's QVL fails such quotes, too).
    let quote = testdata("tdx_quote_outdated");
    let collateral = collateral("tdx_quote_outdated_collateral.json");
    assert_rejected(
        verify_quote(&quote, &collateral, T_2026_03_01),
        &["No matching TCB level found"],
    );
}

#[test]
fn malformed_quotes_are_malformed() {
    let (quote, collateral) = sgx();
    for bad in [&[][..], &quote[..100], &[0xff; 600][..]] {
        match verify_quote(bad, &collateral, T_2025_07_01) {
            Err(Error::Malformed(message)) => assert!(message.contains("DCAP quote"), "{message}"),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn collateral_json_round_trips_and_garbage_is_unusable() {
    let (_, collateral) = sgx();
    let again = Collateral::from_json(&collateral.to_json().unwrap()).unwrap();
    assert_eq!(again, collateral);
    for bad in [&b"not json"[..], b"{}", b"{\"tcb_info\": 1}"] {
        assert!(matches!(
            Collateral::from_json(bad),
            Err(Error::Endorsements(_))
        ));
    }
}
