//! The simulated TEE backend, for development and CI only.
//!
//! A "platform key" (Ed25519, in a file the host owns) stands in for the hardware's attestation
//! key; evidence is a report over measurement ‖ report data signed by it; the measurement is
//! SHA-384 of the enclave executable and its configuration. None of this protects anything: the
//! host holds the platform key and can forge any report. Verifiers refuse sim evidence unless the
//! policy names `sim` explicitly, and every use prints a warning.
//!
//! Report layout (216 bytes): `"CHRNSIM1"` ‖ measurement (48) ‖ report data (64) ‖ platform
//! public key (32) ‖ Ed25519 signature (64) over everything before it.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::digest::{SHA256, SHA384, digest};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::claims::{Backend, REPORT_DATA_LEN, TcbStatus, VerifiedClaims};
use crate::evidence::{Evidence, EvidenceSource};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"CHRNSIM1";
/// Bytes of a sim measurement (SHA-384).
pub const MEASUREMENT_LEN: usize = 48;
const PK_LEN: usize = 32;
const SIG_LEN: usize = 64;
/// Bytes of a sim report.
pub const REPORT_LEN: usize = 8 + MEASUREMENT_LEN + REPORT_DATA_LEN + PK_LEN + SIG_LEN;
const MEASURE_DOMAIN: &[u8] = b"chiron/v1/sim-measurement\0";

/// The warning printed whenever sim evidence is produced or accepted.
pub const WARNING: &str = "WARNING: sim TEE backend in use: no hardware protection, the host can forge evidence and read all memory; for development and tests only";

/// The sim measurement of an enclave build: SHA-384 over a domain label, then the executable
/// and the configuration, each preceded by its length (so no two inputs collide by shifting
/// bytes between them).
pub fn measure(executable: &[u8], config: &[u8]) -> [u8; MEASUREMENT_LEN] {
    let mut input = Vec::with_capacity(MEASURE_DOMAIN.len() + 16 + executable.len() + config.len());
    input.extend_from_slice(MEASURE_DOMAIN);
    input.extend_from_slice(&(executable.len() as u64).to_le_bytes());
    input.extend_from_slice(executable);
    input.extend_from_slice(&(config.len() as u64).to_le_bytes());
    input.extend_from_slice(config);
    let mut out = [0u8; MEASUREMENT_LEN];
    out.copy_from_slice(digest(&SHA384, &input).as_ref());
    out
}

/// The simulated platform: holds the platform signing key.
pub struct SimPlatform {
    key: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl SimPlatform {
    /// Loads the platform key from `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let io =
            |what: &str, e: std::io::Error| Error::Io(format!("{what} {}: {e}", path.display()));
        match OpenOptions::new().read(true).open(path) {
            Ok(mut f) => {
                let mut pkcs8 = Zeroizing::new(Vec::new());
                f.read_to_end(&mut pkcs8)
                    .map_err(|e| io("cannot read", e))?;
                Self::from_pkcs8(pkcs8)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let platform = Self::generate()?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| io("cannot create", e))?;
                f.write_all(&platform.pkcs8)
                    .map_err(|e| io("cannot write", e))?;
                f.sync_all().map_err(|e| io("cannot write", e))?;
                Ok(platform)
            }
            Err(e) => Err(io("cannot open", e)),
        }
    }

    /// A fresh platform key held only in memory (tests).
    pub fn generate() -> Result<Self> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::Platform("random number generator failed".into()))?;
        Self::from_pkcs8(Zeroizing::new(doc.as_ref().to_vec()))
    }

    fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>) -> Result<Self> {
        let key = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| {
            Error::Platform("sim platform key file is not an Ed25519 PKCS#8 key".into())
        })?;
        Ok(Self { key, pkcs8 })
    }

    /// The platform's public identity (SHA-256 of its public key, first 16 bytes).
    pub fn platform_id(&self) -> Vec<u8> {
        platform_id(self.key.public_key().as_ref())
    }

    /// Signs a report binding `measurement` and `report_data`.
    pub fn report(
        &self,
        measurement: &[u8; MEASUREMENT_LEN],
        report_data: &[u8; REPORT_DATA_LEN],
    ) -> Vec<u8> {
        eprintln!("{WARNING}");
        let mut out = Vec::with_capacity(REPORT_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(measurement);
        out.extend_from_slice(report_data);
        out.extend_from_slice(self.key.public_key().as_ref());
        let sig = self.key.sign(&out);
        out.extend_from_slice(sig.as_ref());
        out
    }

    /// The sealing key of an enclave with `measurement` on this platform: the same measurement
    /// on the same platform always gets the same key; any other measurement gets an unrelated one.
    pub fn sealing_key(&self, measurement: &[u8; MEASUREMENT_LEN]) -> Result<Zeroizing<[u8; 32]>> {
        crate::kdf::hkdf_sha256(&self.pkcs8, b"chiron/v1/sim-sealing-key", measurement)
    }
}

/// The sim evidence source of one enclave: a platform and the enclave's measurement.
pub struct SimSource {
    platform: SimPlatform,
    measurement: [u8; MEASUREMENT_LEN],
}

impl SimSource {
    /// An enclave with a given measurement on `platform`.
    pub fn new(platform: SimPlatform, measurement: [u8; MEASUREMENT_LEN]) -> Self {
        Self {
            platform,
            measurement,
        }
    }

    /// An enclave measured from its executable file and configuration bytes.
    pub fn for_executable(platform: SimPlatform, executable: &Path, config: &[u8]) -> Result<Self> {
        let exe = std::fs::read(executable)
            .map_err(|e| Error::Io(format!("cannot read {}: {e}", executable.display())))?;
        Ok(Self::new(platform, measure(&exe, config)))
    }

    /// This enclave's measurement.
    pub fn measurement(&self) -> &[u8; MEASUREMENT_LEN] {
        &self.measurement
    }
}

impl EvidenceSource for SimSource {
    fn backend(&self) -> Backend {
        Backend::Sim
    }

    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Evidence> {
        Ok(Evidence {
            backend: Backend::Sim,
            bytes: self.platform.report(&self.measurement, report_data),
        })
    }

    fn sealing_key(&self) -> Result<Zeroizing<[u8; 32]>> {
        self.platform.sealing_key(&self.measurement)
    }
}

fn platform_id(public_key: &[u8]) -> Vec<u8> {
    digest(&SHA256, public_key).as_ref()[..16].to_vec()
}

/// Verifies a sim report's structure and signature and returns its claims. The signature only
/// shows the report came from the holder of the platform key named in it; which platform keys
/// to trust is the policy's business (`sim_platform_ids`).
pub fn verify_report(report: &[u8]) -> Result<VerifiedClaims> {
    if report.len() != REPORT_LEN {
        return Err(Error::Malformed(format!(
            "sim report must be {REPORT_LEN} bytes, is {}",
            report.len()
        )));
    }
    if &report[..8] != MAGIC {
        return Err(Error::Malformed("not a sim report (bad magic)".into()));
    }
    let signed = &report[..REPORT_LEN - SIG_LEN];
    let pk = &report[8 + MEASUREMENT_LEN + REPORT_DATA_LEN..REPORT_LEN - SIG_LEN];
    let sig = &report[REPORT_LEN - SIG_LEN..];
    UnparsedPublicKey::new(&ED25519, pk)
        .verify(signed, sig)
        .map_err(|_| Error::Rejected("sim report signature does not verify".into()))?;
    eprintln!("{WARNING}");
    let mut report_data = [0u8; REPORT_DATA_LEN];
    report_data
        .copy_from_slice(&report[8 + MEASUREMENT_LEN..8 + MEASUREMENT_LEN + REPORT_DATA_LEN]);
    Ok(VerifiedClaims {
        backend: Backend::Sim,
        measurement: report[8..8 + MEASUREMENT_LEN].to_vec(),
        signer: None,
        product_id: None,
        svn: None,
        tcb_status: Some(TcbStatus::UpToDate),
        advisory_ids: vec![],
        debug: false,
        report_data,
        platform_id: Some(platform_id(pk)),
        extra: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trip_and_tampering() {
        let p = SimPlatform::generate().unwrap();
        let m = measure(b"exe", b"cfg");
        let r = p.report(&m, &[7; 64]);
        let c = verify_report(&r).unwrap();
        assert_eq!(c.measurement, m.to_vec());
        assert_eq!(c.report_data, [7; 64]);
        assert_eq!(c.platform_id, Some(p.platform_id()));
        for i in [0, 8, 60, 130, 180, REPORT_LEN - 1] {
            let mut bad = r.clone();
            bad[i] ^= 1;
            assert!(verify_report(&bad).is_err(), "flip at {i}");
        }
        assert!(verify_report(&r[1..]).is_err());
    }

    #[test]
    fn measurement_separates_inputs_and_sealing_keys_follow_measurement() {
        assert_ne!(measure(b"ab", b"c"), measure(b"a", b"bc"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.key");
        let p1 = SimPlatform::load_or_create(&path).unwrap();
        let p2 = SimPlatform::load_or_create(&path).unwrap();
        let m = measure(b"exe", b"");
        assert_eq!(*p1.sealing_key(&m).unwrap(), *p2.sealing_key(&m).unwrap());
        assert_ne!(
            *p1.sealing_key(&m).unwrap(),
            *p1.sealing_key(&measure(b"exe2", b"")).unwrap()
        );
        assert_ne!(
            *p1.sealing_key(&m).unwrap(),
            *SimPlatform::generate().unwrap().sealing_key(&m).unwrap()
        );
    }
}
