//! AMD SEV-SNP attestation report verification with the `sev` crate, in pure Rust (RSA-PSS and
//! ECDSA P-384 from RustCrypto; no OpenSSL), offline with supplied certificates.
//!
//! [`verify_report`] checks, at an explicit time:
//!
//! 1. the report parses and is byte-for-byte what `sev` parsed (every reserved byte zero),
//!    because `sev` verifies the signature over its re-encoding of the parsed fields, not over
//!    the bytes received;
//! 2. the ARK is one of AMD's genuine root keys (its public key equals the Milan, Genoa or
//!    Turin ARK built into the `sev` crate) — a self-signed look-alike is rejected;
//! 3. ARK, ASK and VCEK are each within `notBefore..=notAfter` at `now` (the `sev` crate does
//!    not check time, so this module does);
//! 4. the ARK is self-signed, the ARK signs the ASK and the ASK signs the VCEK (`sev`);
//! 5. the report says it is signed by a VCEK with ECDSA P-384/SHA-384, and the VCEK signs it
//!    (`sev`);
//! 6. the VCEK belongs to this chip at this TCB: its hwID extension equals the report's
//!    CHIP_ID, and its boot loader / TEE / SNP / microcode (and, on Turin, FMC) SPL extensions
//!    equal the report's REPORTED_TCB — the `sev` crate offers no such check, so this module
//!    reads the extensions itself (and checks the VCEK's product name against the ARK's line).
//!
//! Not checked: revocation (the CRL AMD's KDS publishes per product line revokes ASKs; fetching
//! it needs the network, so it is left to a separate, optional step), and whether the TCB is
//! recent enough — VCEKs are bound to a TCB version, and a policy sets the minimum reported
//! TCB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sev::certs::snp::{Certificate as SevCertificate, Verifiable, builtin};
use sev::firmware::guest::AttestationReport;
use sev::firmware::host::TcbVersion;
use sev::parser::ByteParser;
use x509_cert::Certificate;
use x509_cert::der::asn1::{Ia5String, ObjectIdentifier, OctetString};
use x509_cert::der::{Decode, DecodePem, Encode};

use crate::claims::{Backend, REPORT_DATA_LEN, VerifiedClaims, hex};
use crate::{Error, Result};

/// The AMD certificates that endorse one SEV-SNP report: the AMD Root Key (ARK), the AMD SEV
/// Signing Key (ASK) and the chip's Versioned Chip Endorsement Key (VCEK), each as DER.
///
/// Holding them establishes nothing: [`verify_report`] checks the ARK against AMD's built-in
/// roots and the whole chain at a given time. The constructors only check that each is an
/// X.509 certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpCertificates {
    /// The AMD Root Key certificate (self-signed, one per product line), DER.
    pub ark: Vec<u8>,
    /// The AMD SEV Signing Key certificate (signed by the ARK), DER.
    pub ask: Vec<u8>,
    /// The chip's VCEK certificate for its current TCB (signed by the ASK), DER.
    pub vcek: Vec<u8>,
}

impl SnpCertificates {
    /// Takes the three certificates, each PEM (`-----BEGIN CERTIFICATE-----`) or DER, and
    /// stores them as DER. Fails with [`Error::Endorsements`] naming the certificate that is
    /// not a parseable X.509 certificate.
    pub fn from_pem_or_der(ark: &[u8], ask: &[u8], vcek: &[u8]) -> Result<Self> {
        Ok(Self {
            ark: to_der("ARK", ark)?,
            ask: to_der("ASK", ask)?,
            vcek: to_der("VCEK", vcek)?,
        })
    }

    /// Reads `ark`, `ask` and `vcek` from `dir`, each from `<name>.pem` or `<name>.der` (the
    /// names and formats `snpguest fetch ca` / `snpguest fetch vcek` write; AMD KDS's
    /// `cert_chain` PEM holds the ASK first, then the ARK, and needs splitting). Having both
    /// `<name>.pem` and `<name>.der` is an error, so which one counts is never ambiguous; the
    /// content decides the encoding, not the extension.
    ///
    /// Errors: [`Error::Endorsements`] for a missing, ambiguous or unparseable certificate,
    /// [`Error::Io`] for a file that exists but cannot be read.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let ark = read_cert_file(dir, "ark")?;
        let ask = read_cert_file(dir, "ask")?;
        let vcek = read_cert_file(dir, "vcek")?;
        Self::from_pem_or_der(&ark, &ask, &vcek)
    }
}

fn read_cert_file(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let candidates: Vec<PathBuf> = ["pem", "der"]
        .iter()
        .map(|ext| dir.join(format!("{name}.{ext}")))
        .filter(|p| p.exists())
        .collect();
    match candidates.as_slice() {
        [] => Err(Error::Endorsements(format!(
            "no {name}.pem or {name}.der in {}",
            dir.display()
        ))),
        [path] => std::fs::read(path)
            .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display()))),
        _ => Err(Error::Endorsements(format!(
            "both {name}.pem and {name}.der in {}; keep one",
            dir.display()
        ))),
    }
}

fn to_der(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let trimmed = bytes.trim_ascii_start();
    let cert = if trimmed.starts_with(b"-----BEGIN") {
        Certificate::from_pem(trimmed)
            .map_err(|e| Error::Endorsements(format!("{name} certificate is not valid PEM: {e}")))?
    } else {
        Certificate::from_der(bytes)
            .map_err(|e| Error::Endorsements(format!("{name} certificate is not valid DER: {e}")))?
    };
    cert.to_der()
        .map_err(|e| Error::Endorsements(format!("{name} certificate cannot be re-encoded: {e}")))
}

/// Size of an SEV-SNP attestation report (versions 2 to 5).
const REPORT_LEN: usize = 1184;
/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384, the only one defined.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// KEY_INFO.SIGNING_KEY value for the VCEK.
const SIGNING_KEY_VCEK: u32 = 0;

// VCEK certificate extensions (AMD "VCEK Certificate and KDS Interface Specification" 57230).
const OID_PRODUCT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
const OID_BL_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
const OID_TEE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
const OID_SNP_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
const OID_UCODE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
const OID_FMC_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
const OID_HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");

/// Verifies a raw SEV-SNP attestation report (1184 bytes, as the guest's `SNP_GET_REPORT` or
/// configfs-tsm returns it) against `certs` at `now_unix_secs` (seconds since the Unix epoch).
///
/// On success the report was signed by the VCEK of the chip it names, at the TCB it reports,
/// under a genuine AMD root, with every certificate valid at `now` (see the module docs for the
/// exact checks). No policy is applied: debug guests and old TCBs are returned, not rejected.
///
/// Claims: `measurement` = MEASUREMENT (48 bytes), `svn` = GUEST_SVN, `debug` = the guest
/// policy's DEBUG bit, `report_data` = REPORT_DATA, `platform_id` = CHIP_ID (64 bytes),
/// `tcb_status` = `None`, no `signer` / `product_id` / advisories. `extra`:
/// `reported_tcb_bootloader`, `reported_tcb_tee`, `reported_tcb_snp`,
/// `reported_tcb_microcode` (and `reported_tcb_fmc` on Turin) as decimal; `current_tcb`,
/// `committed_tcb`, `launch_tcb` (raw 8 bytes, hex); `policy` (the 64-bit guest policy as 16
/// hex digits); `vmpl`, `report_version`, `guest_svn` (decimal); `host_data`,
/// `id_key_digest`, `author_key_digest`, `family_id`, `image_id`, `report_id`,
/// `report_id_ma` (hex); `platform_info` (16 hex digits); `product` (`Milan`, `Genoa` or
/// `Turin`, from the pinned ARK); `vcek_product_name` (e.g. `Milan-B0`).
///
/// Errors: [`Error::Malformed`] if the report cannot be parsed or has non-zero reserved
/// bytes; [`Error::Endorsements`] if a certificate cannot be parsed; [`Error::Rejected`]
/// naming the failed check otherwise (unknown ARK, certificate not yet valid / expired, a
/// chain signature, the report's signature, key or algorithm, VCEK not matching CHIP_ID or
/// REPORTED_TCB).
pub fn verify_report(
    report: &[u8],
    certs: &SnpCertificates,
    now_unix_secs: u64,
) -> Result<VerifiedClaims> {
    if report.len() != REPORT_LEN {
        return Err(Error::Malformed(format!(
            "SEV-SNP report is {} bytes, expected {REPORT_LEN}",
            report.len()
        )));
    }
    // 1. The report parses, and is exactly what was parsed.
    let parsed = AttestationReport::from_bytes(report)
        .map_err(|e| Error::Malformed(format!("cannot parse SEV-SNP report: {e}")))?;
    // `sev` verifies the signature over its re-encoding of the parsed fields, not over the
    // bytes received, and its parser ignores the reserved tail of the signature field: insist
    // that the two are the same bytes (so, every reserved byte zero).
    let reencoded = parsed
        .to_bytes()
        .map_err(|e| Error::Malformed(format!("cannot re-encode SEV-SNP report: {e}")))?;
    if reencoded.as_slice() != report {
        return Err(Error::Malformed(
            "SEV-SNP report has non-zero reserved bytes (expected to be zeroed) or fields this \
             verifier does not know"
                .into(),
        ));
    }

    let ark = parse_der("ARK", &certs.ark)?;
    let ask = parse_der("ASK", &certs.ask)?;
    let vcek = parse_der("VCEK", &certs.vcek)?;

    // 2. The root must be AMD's, not merely self-signed.
    let product = genuine_ark_product(&ark).ok_or_else(|| {
        Error::Rejected(
            "SEV-SNP ARK is not an AMD root key (not the Milan, Genoa or Turin ARK)".into(),
        )
    })?;

    // 3. Validity at `now`.
    for (name, cert) in [("ARK", &ark), ("ASK", &ask), ("VCEK", &vcek)] {
        check_validity(name, cert, now_unix_secs)?;
    }

    // 4. ARK -> ARK, ARK -> ASK, ASK -> VCEK signatures.
    let sev_ark = SevCertificate::from(ark);
    let sev_ask = SevCertificate::from(ask);
    let sev_vcek = SevCertificate::from(vcek.clone());
    (&sev_ark, &sev_ark)
        .verify()
        .map_err(|e| Error::Rejected(format!("SEV-SNP ARK is not self-signed: {e}")))?;
    (&sev_ark, &sev_ask).verify().map_err(|e| {
        Error::Rejected(format!(
            "SEV-SNP ASK signature invalid: the {product} ARK does not sign the ASK: {e}"
        ))
    })?;
    (&sev_ask, &sev_vcek).verify().map_err(|e| {
        Error::Rejected(format!(
            "SEV-SNP VCEK signature invalid: the ASK does not sign the VCEK: {e}"
        ))
    })?;

    // 5. The report's signature by the VCEK.
    if parsed.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(Error::Rejected(format!(
            "SEV-SNP report signature algorithm {} is not ECDSA P-384/SHA-384",
            parsed.sig_algo
        )));
    }
    let signing_key = parsed.key_info.signing_key();
    if signing_key != SIGNING_KEY_VCEK {
        let what = match signing_key {
            1 => "a VLEK (only VCEK-signed reports are supported)",
            7 => "no key (unsigned report)",
            _ => "an unknown key",
        };
        return Err(Error::Rejected(format!(
            "SEV-SNP report is signed by {what}"
        )));
    }
    (&sev_vcek, &parsed).verify().map_err(|e| {
        Error::Rejected(format!(
            "SEV-SNP report signature invalid: the VCEK does not sign this report: {e}"
        ))
    })?;

    // 6. The VCEK is this chip's, at this TCB.
    let vcek_product_name = check_vcek_binding(&vcek, &parsed, product)?;

    Ok(claims(
        report,
        &parsed,
        product,
        vcek_product_name.unwrap_or_default(),
    ))
}

fn parse_der(name: &str, der: &[u8]) -> Result<Certificate> {
    Certificate::from_der(der)
        .map_err(|e| Error::Endorsements(format!("SEV-SNP {name} certificate: {e}")))
}

/// The product line whose built-in ARK has the same public key as `ark`.
fn genuine_ark_product(ark: &Certificate) -> Option<&'static str> {
    let spki = &ark.tbs_certificate.subject_public_key_info;
    [
        ("Milan", builtin::milan::ark()),
        ("Genoa", builtin::genoa::ark()),
        ("Turin", builtin::turin::ark()),
    ]
    .into_iter()
    .find_map(|(product, builtin)| {
        let builtin = Certificate::from(builtin.ok()?);
        (builtin.tbs_certificate.subject_public_key_info == *spki).then_some(product)
    })
}

fn check_validity(name: &str, cert: &Certificate, now: u64) -> Result<()> {
    let validity = &cert.tbs_certificate.validity;
    let not_before = validity.not_before.to_unix_duration().as_secs();
    let not_after = validity.not_after.to_unix_duration().as_secs();
    if now < not_before {
        return Err(Error::Rejected(format!(
            "SEV-SNP {name} certificate is not yet valid: valid from {} (Unix {not_before}), \
             now is Unix {now}",
            validity.not_before
        )));
    }
    if now > not_after {
        return Err(Error::Rejected(format!(
            "SEV-SNP {name} certificate expired at {} (Unix {not_after}), now is Unix {now}",
            validity.not_after
        )));
    }
    Ok(())
}

/// Checks the VCEK's hwID against CHIP_ID and its SPL extensions against REPORTED_TCB; returns
/// its product name extension, if any. The product name (e.g. `Milan-B0`) must belong to the
/// ARK's product line.
fn check_vcek_binding(
    vcek: &Certificate,
    report: &AttestationReport,
    product: &str,
) -> Result<Option<String>> {
    let extension = |oid: ObjectIdentifier| -> Option<&[u8]> {
        vcek.tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    };

    let product_name = match extension(OID_PRODUCT_NAME) {
        None => None,
        Some(value) => {
            let name = Ia5String::from_der(value)
                .map(|s| s.to_string())
                .map_err(|e| {
                    Error::Rejected(format!("SEV-SNP VCEK product name is malformed: {e}"))
                })?;
            if !name.starts_with(product) {
                return Err(Error::Rejected(format!(
                    "SEV-SNP VCEK is for product {name:?}, but the ARK is {product}'s"
                )));
            }
            Some(name)
        }
    };

    let hw_id = extension(OID_HW_ID)
        .ok_or_else(|| Error::Rejected("SEV-SNP VCEK has no hwID extension (a VLEK?)".into()))?;
    // Legacy VCEKs hold the raw bytes; current ones a DER OCTET STRING.
    let hw_id = match OctetString::from_der(hw_id) {
        Ok(octets) => octets.as_bytes().to_vec(),
        Err(_) => hw_id.to_vec(),
    };
    let chip_id = &report.chip_id[..];
    let rest_zero = chip_id
        .get(hw_id.len()..)
        .is_some_and(|rest| rest.iter().all(|b| *b == 0));
    if hw_id.is_empty() || !chip_id.starts_with(&hw_id) || !rest_zero {
        return Err(Error::Rejected(format!(
            "SEV-SNP VCEK is for another chip: its hwID {} is not the report's CHIP_ID {}",
            hex(&hw_id),
            hex(chip_id)
        )));
    }

    let tcb: &TcbVersion = &report.reported_tcb;
    let mut components = vec![
        ("boot loader", OID_BL_SPL, tcb.bootloader),
        ("TEE", OID_TEE_SPL, tcb.tee),
        ("SNP", OID_SNP_SPL, tcb.snp),
        ("microcode", OID_UCODE_SPL, tcb.microcode),
    ];
    if let Some(fmc) = tcb.fmc {
        components.push(("FMC", OID_FMC_SPL, fmc));
    }
    for (name, oid, reported) in components {
        let value = extension(oid).ok_or_else(|| {
            Error::Rejected(format!("SEV-SNP VCEK has no {name} SPL extension ({oid})"))
        })?;
        let certified = u8::from_der(value).map_err(|e| {
            Error::Rejected(format!(
                "SEV-SNP VCEK {name} SPL extension is malformed: {e}"
            ))
        })?;
        if certified != reported {
            return Err(Error::Rejected(format!(
                "SEV-SNP VCEK is for another TCB: it certifies {name} SVN {certified}, the \
                 report's REPORTED_TCB has {reported}"
            )));
        }
    }
    Ok(product_name)
}

fn claims(
    raw: &[u8],
    report: &AttestationReport,
    product: &str,
    vcek_product_name: String,
) -> VerifiedClaims {
    let raw_field = |start: usize, len: usize| -> String {
        raw.get(start..start.saturating_add(len))
            .map(hex)
            .unwrap_or_default()
    };
    // Guest policy at 0x08 (u64, little endian), read raw: `sev` forces reserved bit 17 on
    // when converting.
    let policy = raw
        .get(0x08..0x10)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .unwrap_or_default();

    let mut extra = BTreeMap::new();
    let tcb = &report.reported_tcb;
    let mut put = |k: &str, v: String| {
        extra.insert(k.to_owned(), v);
    };
    put("reported_tcb_bootloader", tcb.bootloader.to_string());
    put("reported_tcb_tee", tcb.tee.to_string());
    put("reported_tcb_snp", tcb.snp.to_string());
    put("reported_tcb_microcode", tcb.microcode.to_string());
    if let Some(fmc) = tcb.fmc {
        put("reported_tcb_fmc", fmc.to_string());
    }
    put("current_tcb", raw_field(0x38, 8));
    put("reported_tcb", raw_field(0x180, 8));
    put("committed_tcb", raw_field(0x1E0, 8));
    put("launch_tcb", raw_field(0x1F0, 8));
    put("policy", format!("{policy:016x}"));
    put("vmpl", report.vmpl.to_string());
    put("report_version", report.version.to_string());
    put("guest_svn", report.guest_svn.to_string());
    put("host_data", hex(&report.host_data));
    put("id_key_digest", hex(&report.id_key_digest));
    put("author_key_digest", hex(&report.author_key_digest));
    put("family_id", hex(&report.family_id));
    put("image_id", hex(&report.image_id));
    put("report_id", hex(&report.report_id));
    put("report_id_ma", hex(&report.report_id_ma));
    put(
        "platform_info",
        format!("{:016x}", u64::from(report.plat_info)),
    );
    put("product", product.to_owned());
    if !vcek_product_name.is_empty() {
        put("vcek_product_name", vcek_product_name);
    }

    let report_data: [u8; REPORT_DATA_LEN] = report.report_data;
    VerifiedClaims {
        backend: Backend::SevSnp,
        measurement: report.measurement.to_vec(),
        signer: None,
        product_id: None,
        svn: Some(report.guest_svn),
        tcb_status: None,
        advisory_ids: Vec::new(),
        debug: report.policy.debug_allowed(),
        report_data,
        platform_id: Some(report.chip_id.to_vec()),
        extra,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/snp/milan");

    fn milan() -> (AttestationReport, Certificate) {
        let text = std::fs::read_to_string(format!("{DIR}/report.hex")).unwrap();
        let bytes: Vec<u8> = (0..text.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect();
        let report = AttestationReport::from_bytes(&bytes).unwrap();
        let vcek =
            Certificate::from_der(&std::fs::read(format!("{DIR}/vcek.der")).unwrap()).unwrap();
        (report, vcek)
    }

    fn rejection(result: Result<Option<String>>) -> String {
        match result {
            Err(Error::Rejected(message)) => message,
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    // The binding checks run after the report signature, so real evidence cannot reach them
    // with a mismatch; these tests call them on parsed, edited reports.

    #[test]
    fn vcek_binding_holds_for_the_sample() {
        let (report, vcek) = milan();
        assert_eq!(
            check_vcek_binding(&vcek, &report, "Milan")
                .unwrap()
                .as_deref(),
            Some("Milan-B0")
        );
    }

    #[test]
    fn vcek_for_another_tcb_is_rejected() {
        let (mut report, vcek) = milan();
        report.reported_tcb.snp = 9;
        let message = rejection(check_vcek_binding(&vcek, &report, "Milan"));
        assert!(
            message.contains("another TCB") && message.contains("SNP SVN 8"),
            "{message}"
        );

        let (mut report, vcek) = milan();
        report.reported_tcb.microcode = 0x72;
        let message = rejection(check_vcek_binding(&vcek, &report, "Milan"));
        assert!(message.contains("microcode SVN 115"), "{message}");

        let (mut report, vcek) = milan();
        report.reported_tcb.fmc = Some(1);
        let message = rejection(check_vcek_binding(&vcek, &report, "Milan"));
        assert!(message.contains("no FMC SPL extension"), "{message}");
    }

    #[test]
    fn vcek_for_another_chip_is_rejected() {
        let (mut report, vcek) = milan();
        report.chip_id[63] ^= 1;
        let message = rejection(check_vcek_binding(&vcek, &report, "Milan"));
        assert!(message.contains("another chip"), "{message}");
    }

    #[test]
    fn vcek_for_another_product_is_rejected() {
        let (report, vcek) = milan();
        let message = rejection(check_vcek_binding(&vcek, &report, "Genoa"));
        assert!(
            message.contains("\"Milan-B0\"") && message.contains("Genoa"),
            "{message}"
        );
    }
}
