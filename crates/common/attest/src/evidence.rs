//! Evidence as it travels (backend + bytes), the endorsements a verifier needs beside it, and
//! the one entry point that verifies any backend's evidence.

use crate::claims::{Backend, REPORT_DATA_LEN, VerifiedClaims};
use crate::policy::Policy;
use crate::{Error, Result, dcap, sim, snp};

/// Evidence produced by a TEE over 64 bytes of report data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Which backend produced it (and so how to parse `bytes`).
    pub backend: Backend,
    /// Sim report, raw SGX/TDX DCAP quote, or SEV-SNP attestation report.
    pub bytes: Vec<u8>,
}

impl Evidence {
    /// Recognises evidence by its content: a sim report (magic), a DCAP quote (version 3–5
    /// header with TEE type SGX `0x00` or TDX `0x81`), or an SEV-SNP report (1184 bytes).
    pub fn detect(bytes: Vec<u8>) -> Result<Self> {
        let backend = if bytes.starts_with(b"CHRNSIM1") {
            Backend::Sim
        } else if bytes.len() == SNP_REPORT_LEN {
            Backend::SevSnp
        } else {
            let version = bytes.get(..2).map(|v| u16::from_le_bytes([v[0], v[1]]));
            let tee = bytes
                .get(4..8)
                .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]));
            match (version, tee) {
                (Some(3..=5), Some(0x00)) => Backend::Sgx,
                (Some(4..=5), Some(0x81)) => Backend::Tdx,
                _ => {
                    return Err(Error::Malformed(
                        "unrecognised evidence: not a sim report, an SGX/TDX DCAP quote or an SEV-SNP report".into(),
                    ));
                }
            }
        };
        Ok(Self { backend, bytes })
    }
}

/// Size of an SEV-SNP attestation report.
const SNP_REPORT_LEN: usize = 1184;

/// What a verifier needs besides the evidence: Intel's DCAP collateral for SGX/TDX quotes and
/// the VCEK chain for SEV-SNP reports. Sim evidence needs none.
#[derive(Default)]
pub struct Endorsements {
    /// DCAP collateral (TCB info, QE identity, CRLs) for SGX and TDX quotes.
    pub dcap: Option<dcap::Collateral>,
    /// ARK, ASK and VCEK certificates for SEV-SNP reports.
    pub snp: Option<snp::SnpCertificates>,
}

/// Produces evidence inside a TEE: the abstraction each backend implements.
pub trait EvidenceSource: Send + Sync {
    /// The backend this source belongs to.
    fn backend(&self) -> Backend;
    /// Evidence binding `report_data`.
    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Evidence>;
    /// A key only this measurement on this platform can derive, for sealing state across
    /// restarts.
    fn sealing_key(&self) -> Result<zeroize::Zeroizing<[u8; 32]>>;
}

/// Checks the evidence itself (signatures, certificate chains, collateral validity at `now`,
/// Unix seconds) and returns its claims, without any policy.
pub fn verify_evidence(
    evidence: &Evidence,
    endorsements: &Endorsements,
    now: u64,
) -> Result<VerifiedClaims> {
    let claims = match evidence.backend {
        Backend::Sim => sim::verify_report(&evidence.bytes)?,
        Backend::Sgx | Backend::Tdx => {
            let collateral = endorsements.dcap.as_ref().ok_or_else(|| {
                Error::Endorsements(format!(
                    "{} quotes need DCAP collateral (--collateral FILE or the policy's PCCS)",
                    evidence.backend
                ))
            })?;
            dcap::verify_quote(&evidence.bytes, collateral, now)?
        }
        Backend::SevSnp => {
            let certs = endorsements.snp.as_ref().ok_or_else(|| {
                Error::Endorsements(
                    "SEV-SNP reports need the ARK/ASK/VCEK certificates (--certs DIR)".into(),
                )
            })?;
            snp::verify_report(&evidence.bytes, certs, now)?
        }
    };
    if claims.backend != evidence.backend {
        return Err(Error::Rejected(format!(
            "evidence labelled {} is a {} quote",
            evidence.backend, claims.backend
        )));
    }
    Ok(claims)
}

/// Verifies evidence and checks it against a policy: the whole decision a relying party makes.
pub fn verify(
    evidence: &Evidence,
    endorsements: &Endorsements,
    policy: &Policy,
    now: u64,
) -> Result<VerifiedClaims> {
    let claims = verify_evidence(evidence, endorsements, now)?;
    policy.check(&claims, now)?;
    Ok(claims)
}
