//! SEV-SNP report verification against the real Milan report, VCEK and AMD chain that ship
//! with the `sev` crate 8.0.0 (see testdata/README.md), at fixed times.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use chiron_attest::snp::{SnpCertificates, verify_report};
use chiron_attest::{Backend, Error, VerifiedClaims, hex};

/// 2025-07-01T00:00:00Z: inside every certificate's validity.
const T_2025_07_01: u64 = 1_751_328_000;
/// The VCEK's validity, the narrowest of the chain: 2023-04-03T19:23:43Z ..=
/// 2030-04-03T19:23:43Z (ARK and ASK: 2020-10-22 .. 2045-10-22).
const VCEK_NOT_BEFORE: u64 = 1_680_549_823;
const VCEK_NOT_AFTER: u64 = 1_901_474_623;

// Offsets in the 1184-byte report (AMD SEV-SNP ABI, ATTESTATION_REPORT).
const REPORT_DATA: usize = 0x50;
const MEASUREMENT: usize = 0x90;
const RESERVED_AFTER_KEY_INFO: usize = 0x4C;
const REPORTED_TCB: usize = 0x180;
const CHIP_ID: usize = 0x1A0;
const SIGNATURE_R: usize = 0x2A0;
const SIGNATURE_S: usize = 0x2A0 + 72;

fn milan_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/snp/milan")
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn report() -> Vec<u8> {
    let text = String::from_utf8(read(milan_dir().join("report.hex"))).unwrap();
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn certs() -> SnpCertificates {
    SnpCertificates::from_dir(&milan_dir()).unwrap()
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
fn accepts_milan_report_with_its_claims() {
    let claims = verify_report(&report(), &certs(), T_2025_07_01).unwrap();

    assert_eq!(claims.backend, Backend::SevSnp);
    assert_eq!(
        hex(&claims.measurement),
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert_eq!(claims.signer, None);
    assert_eq!(claims.product_id, None);
    assert_eq!(claims.svn, Some(0));
    assert_eq!(claims.tcb_status, None);
    assert!(claims.advisory_ids.is_empty());
    assert!(!claims.debug);
    assert_eq!(
        hex(&claims.report_data),
        "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c64581\
         0b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd"
    );
    assert_eq!(
        hex(claims.platform_id.as_deref().unwrap()),
        "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc\
         15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6"
    );
    let extra = &claims.extra;
    assert_eq!(extra["reported_tcb_bootloader"], "3");
    assert_eq!(extra["reported_tcb_tee"], "0");
    assert_eq!(extra["reported_tcb_snp"], "8");
    assert_eq!(extra["reported_tcb_microcode"], "115");
    assert!(!extra.contains_key("reported_tcb_fmc"));
    assert_eq!(extra["reported_tcb"], "0300000000000873");
    // ABI 0.0, SMT allowed, reserved bit 17; DEBUG (bit 19) clear.
    assert_eq!(extra["policy"], "0000000000030000");
    assert_eq!(extra["vmpl"], "0");
    assert_eq!(extra["report_version"], "2");
    assert_eq!(extra["host_data"], "00".repeat(32));
    assert_eq!(extra["id_key_digest"], "00".repeat(48));
    assert_eq!(extra["product"], "Milan");
    assert_eq!(extra["vcek_product_name"], "Milan-B0");
}

#[test]
fn pem_and_der_load_the_same() {
    let dir = milan_dir();
    let from_dir = certs();
    let explicit = SnpCertificates::from_pem_or_der(
        &read(dir.join("ark.pem")),
        &read(dir.join("ask.pem")),
        &read(dir.join("vcek.der")),
    )
    .unwrap();
    assert_eq!(from_dir, explicit);
    assert_eq!(from_dir.vcek, read(dir.join("vcek.der")));
    // The stored form is DER, so the ARK re-loads as DER.
    let again = SnpCertificates::from_pem_or_der(&from_dir.ark, &from_dir.ask, &from_dir.vcek);
    assert_eq!(again.unwrap(), from_dir);
}

#[test]
fn accepts_at_both_ends_of_the_vcek_validity() {
    verify_report(&report(), &certs(), VCEK_NOT_BEFORE).unwrap();
    verify_report(&report(), &certs(), VCEK_NOT_AFTER).unwrap();
}

#[test]
fn rejects_outside_certificate_validity() {
    assert_rejected(
        verify_report(&report(), &certs(), VCEK_NOT_BEFORE - 1),
        &["VCEK certificate is not yet valid"],
    );
    assert_rejected(
        verify_report(&report(), &certs(), VCEK_NOT_AFTER + 1),
        &["VCEK certificate expired"],
    );
    // 2046-01-01: the ARK itself has expired.
    assert_rejected(
        verify_report(&report(), &certs(), 2_398_377_600),
        &["ARK certificate expired"],
    );
}

#[test]
fn rejects_flipped_report_bytes() {
    for offset in [
        REPORT_DATA,
        REPORT_DATA + 63,
        MEASUREMENT,
        REPORTED_TCB,
        CHIP_ID + 5,
    ] {
        assert_rejected(
            verify_report(&flipped(report(), offset), &certs(), T_2025_07_01),
            &["report signature invalid"],
        );
    }
}

#[test]
fn rejects_flipped_signature() {
    for offset in [SIGNATURE_R, SIGNATURE_R + 40, SIGNATURE_S + 1] {
        assert_rejected(
            verify_report(&flipped(report(), offset), &certs(), T_2025_07_01),
            &["report signature invalid"],
        );
    }
}

#[test]
fn nonzero_reserved_bytes_are_malformed() {
    // Outside every field: `sev` verifies the signature over its re-encoding of the parsed
    // fields, so these bytes must be refused before that. Its parser refuses the first two;
    // the last (in the signature field's reserved tail) only this module's comparison of the
    // re-encoding with the bytes received catches.
    for offset in [RESERVED_AFTER_KEY_INFO, 0x1F8, 1183] {
        match verify_report(&flipped(report(), offset), &certs(), T_2025_07_01) {
            Err(Error::Malformed(message)) => assert!(message.contains("zeroed"), "{message}"),
            other => panic!("offset {offset:#x}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn rejects_another_chips_vcek() {
    let mut certs = certs();
    certs.vcek =
        read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/snp/other/vcek_turin.der"));
    assert_rejected(
        verify_report(&report(), &certs, T_2025_07_01),
        &["VCEK signature invalid", "ASK does not sign the VCEK"],
    );
}

#[test]
fn rejects_another_products_ark() {
    let genoa_ark =
        read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/snp/other/ark_genoa.pem"));
    let certs = SnpCertificates::from_pem_or_der(
        &genoa_ark,
        &read(milan_dir().join("ask.pem")),
        &read(milan_dir().join("vcek.der")),
    )
    .unwrap();
    assert_rejected(
        verify_report(&report(), &certs, T_2025_07_01),
        &["ASK signature invalid", "Genoa ARK does not sign the ASK"],
    );
}

#[test]
fn rejects_a_root_that_is_not_amds() {
    let mut certs = certs();
    certs.ark = certs.vcek.clone();
    assert_rejected(
        verify_report(&report(), &certs, T_2025_07_01),
        &["ARK is not an AMD root key"],
    );
}

#[test]
fn malformed_reports_and_certificates() {
    let report = report();
    for bad in [
        &[][..],
        &report[..1183],
        &[report.clone(), vec![0]].concat()[..],
    ] {
        assert!(matches!(
            verify_report(bad, &certs(), T_2025_07_01),
            Err(Error::Malformed(_))
        ));
    }
    // Version 1 reports are not supported by the parser.
    let mut v1 = report.clone();
    v1[0] = 1;
    assert!(matches!(
        verify_report(&v1, &certs(), T_2025_07_01),
        Err(Error::Malformed(_))
    ));

    let mut garbage = certs();
    garbage.vcek = b"not a certificate".to_vec();
    assert!(matches!(
        verify_report(&report, &garbage, T_2025_07_01),
        Err(Error::Endorsements(m)) if m.contains("VCEK")
    ));
    assert!(matches!(
        SnpCertificates::from_pem_or_der(b"x", b"y", b"z"),
        Err(Error::Endorsements(m)) if m.contains("ARK")
    ));
}

#[test]
fn from_dir_wants_exactly_one_file_per_certificate() {
    let dir = tempfile::tempdir().unwrap();
    match SnpCertificates::from_dir(dir.path()) {
        Err(Error::Endorsements(m)) => assert!(m.contains("ark.pem or ark.der"), "{m}"),
        other => panic!("expected Endorsements, got {other:?}"),
    }
    for name in ["ark.pem", "ask.pem", "vcek.der"] {
        std::fs::copy(milan_dir().join(name), dir.path().join(name)).unwrap();
    }
    assert_eq!(SnpCertificates::from_dir(dir.path()).unwrap(), certs());
    // Encoding is decided by content: PEM in a .der file still loads.
    std::fs::rename(dir.path().join("ask.pem"), dir.path().join("ask.der")).unwrap();
    assert_eq!(SnpCertificates::from_dir(dir.path()).unwrap(), certs());
    std::fs::copy(milan_dir().join("vcek.der"), dir.path().join("vcek.pem")).unwrap();
    match SnpCertificates::from_dir(dir.path()) {
        Err(Error::Endorsements(m)) => assert!(m.contains("both vcek.pem and vcek.der"), "{m}"),
        other => panic!("expected Endorsements, got {other:?}"),
    }
}
