//! Evidence from real TEEs through the files their Linux interfaces expose.
//!
//! - SGX under Gramine: write the report data to `/dev/attestation/user_report_data`, read the
//!   DCAP quote from `/dev/attestation/quote`; the sealing key is Gramine's MRENCLAVE-bound key
//!   `/dev/attestation/keys/_sgx_mrenclave`.
//! - TDX and SEV-SNP confidential VMs: the kernel's configfs-tsm interface
//!   (`/sys/kernel/config/tsm/report/<entry>/{inblob,outblob,provider,generation}`).
//!
//! Roots are parameters so the file protocol is tested against a directory holding recorded
//! real evidence; in production they are the defaults.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

use crate::claims::{Backend, REPORT_DATA_LEN};
use crate::evidence::{Evidence, EvidenceSource};
use crate::{Error, Result};

/// Gramine's attestation pseudo-filesystem.
pub const GRAMINE_ROOT: &str = "/dev/attestation";
/// The kernel's configfs-tsm report directory.
pub const TSM_ROOT: &str = "/sys/kernel/config/tsm/report";

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::Platform(format!("cannot read {}: {e}", path.display())))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes)
        .map_err(|e| Error::Platform(format!("cannot write {}: {e}", path.display())))
}

/// SGX evidence through Gramine's `/dev/attestation`.
pub struct GramineSgx {
    root: PathBuf,
}

impl GramineSgx {
    /// Uses Gramine's interface at `root` (normally [`GRAMINE_ROOT`]); fails unless Gramine
    /// reports DCAP attestation.
    pub fn new(root: &Path) -> Result<Self> {
        let kind = read(&root.join("attestation_type"))?;
        let kind = String::from_utf8_lossy(&kind);
        if kind.trim() != "dcap" {
            return Err(Error::Platform(format!(
                "Gramine attestation type is {:?}; Chiron needs \"dcap\" (set sgx.remote_attestation = \"dcap\" in the manifest)",
                kind.trim()
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }
}

impl EvidenceSource for GramineSgx {
    fn backend(&self) -> Backend {
        Backend::Sgx
    }

    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Evidence> {
        write(&self.root.join("user_report_data"), report_data)?;
        Ok(Evidence {
            backend: Backend::Sgx,
            bytes: read(&self.root.join("quote"))?,
        })
    }

    fn sealing_key(&self) -> Result<Zeroizing<[u8; 32]>> {
        // 16 bytes from the CPU's EGETKEY, bound to MRENCLAVE: another build cannot derive it.
        let raw = Zeroizing::new(read(&self.root.join("keys/_sgx_mrenclave"))?);
        if raw.len() != 16 {
            return Err(Error::Platform(format!(
                "Gramine sealing key has {} bytes, expected 16",
                raw.len()
            )));
        }
        crate::kdf::hkdf_sha256(&raw, b"chiron/v1/sgx-sealing-key", b"")
    }
}

/// TDX or SEV-SNP evidence through Linux configfs-tsm.
pub struct ConfigFsTsm {
    backend: Backend,
    root: PathBuf,
}

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ConfigFsTsm {
    /// Uses configfs-tsm at `root` (normally [`TSM_ROOT`]) for `backend` (TDX or SEV-SNP).
    pub fn new(backend: Backend, root: &Path) -> Result<Self> {
        if !matches!(backend, Backend::Tdx | Backend::SevSnp) {
            return Err(Error::Platform(format!(
                "configfs-tsm does not serve {backend}"
            )));
        }
        if !root.is_dir() {
            return Err(Error::Platform(format!(
                "{} not found: not a confidential VM, or configfs / the TSM report driver is not available",
                root.display()
            )));
        }
        Ok(Self {
            backend,
            root: root.to_path_buf(),
        })
    }

    fn expected_provider(&self) -> &'static str {
        match self.backend {
            Backend::SevSnp => "sev_guest",
            _ => "tdx_guest",
        }
    }
}

impl EvidenceSource for ConfigFsTsm {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn evidence(&self, report_data: &[u8; REPORT_DATA_LEN]) -> Result<Evidence> {
        let name = format!(
            "chiron-{}-{}",
            std::process::id(),
            ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let entry = self.root.join(name);
        // configfs creates the attribute files when the directory is made.
        fs::create_dir(&entry)
            .map_err(|e| Error::Platform(format!("cannot create {}: {e}", entry.display())))?;
        let result = (|| {
            let provider = read(&entry.join("provider"))?;
            let provider = String::from_utf8_lossy(&provider).trim().to_string();
            if provider != self.expected_provider() {
                return Err(Error::Platform(format!(
                    "configfs-tsm provider is {provider:?}, expected {:?} for {}",
                    self.expected_provider(),
                    self.backend
                )));
            }
            write(&entry.join("inblob"), report_data)?;
            let before = read(&entry.join("generation"))?;
            let outblob = read(&entry.join("outblob"))?;
            // Another writer between our inblob and outblob would bump the generation: the
            // report could then cover someone else's data.
            if read(&entry.join("generation"))? != before {
                return Err(Error::Platform(
                    "configfs-tsm entry changed while reading the report; retry".into(),
                ));
            }
            Ok(outblob)
        })();
        let _ = fs::remove_dir(&entry);
        Ok(Evidence {
            backend: self.backend,
            bytes: result?,
        })
    }

    fn sealing_key(&self) -> Result<Zeroizing<[u8; 32]>> {
        match self.backend {
            Backend::SevSnp => snp_derived_key(),
            _ => Err(Error::Platform(
                "TDX has no guest sealing-key interface in Linux; a restarted TDX enclave needs a fresh key grant".into(),
            )),
        }
    }
}

/// An SEV-SNP sealing key: the AMD secure processor's MSG_KEY_REQ through `/dev/sev-guest`,
/// derived from the chip's VCEK and mixed with the guest's launch measurement and policy, so a
/// different image or policy on the same chip derives an unrelated key. (Not exercised in CI:
/// it needs an SNP guest.)
fn snp_derived_key() -> Result<Zeroizing<[u8; 32]>> {
    use sev::firmware::guest::{DerivedKey, Firmware, GuestFieldSelect};
    let mut fw = Firmware::open()
        .map_err(|e| Error::Platform(format!("cannot open /dev/sev-guest: {e}")))?;
    let mut fields = GuestFieldSelect::default();
    fields.set_measurement(true);
    fields.set_guest_policy(true);
    let request = DerivedKey::new(false, fields, 0, 0, 0, None);
    let raw = Zeroizing::new(
        fw.get_derived_key(Some(1), request)
            .map_err(|e| Error::Platform(format!("SEV-SNP key request failed: {e}")))?,
    );
    crate::kdf::hkdf_sha256(raw.as_ref(), b"chiron/v1/snp-sealing-key", b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gramine_file_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("attestation_type"), "dcap\n").unwrap();
        fs::write(root.join("quote"), b"recorded quote").unwrap();
        fs::create_dir(root.join("keys")).unwrap();
        fs::write(root.join("keys/_sgx_mrenclave"), [9u8; 16]).unwrap();
        let sgx = GramineSgx::new(root).unwrap();
        let ev = sgx.evidence(&[5; 64]).unwrap();
        assert_eq!(ev.bytes, b"recorded quote");
        assert_eq!(fs::read(root.join("user_report_data")).unwrap(), [5u8; 64]);
        let k1 = sgx.sealing_key().unwrap();
        fs::write(root.join("keys/_sgx_mrenclave"), [8u8; 16]).unwrap();
        assert_ne!(
            *k1,
            *sgx.sealing_key().unwrap(),
            "another MRENCLAVE key, another sealing key"
        );

        fs::write(root.join("attestation_type"), "none\n").unwrap();
        let err = GramineSgx::new(root).err().unwrap().to_string();
        assert!(err.contains("needs \"dcap\""), "{err}");
    }

    #[test]
    fn tsm_refuses_a_missing_interface_and_a_wrong_provider() {
        let err = ConfigFsTsm::new(Backend::Tdx, Path::new("/nonexistent/tsm"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a confidential VM"), "{err}");
        assert!(ConfigFsTsm::new(Backend::Sim, Path::new("/")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let tsm = ConfigFsTsm::new(Backend::SevSnp, dir.path()).unwrap();
        // A plain directory has no provider file: the error names it.
        let err = tsm.evidence(&[0; 64]).unwrap_err().to_string();
        assert!(err.contains("provider"), "{err}");
        // No /dev/sev-guest here: the error says so rather than inventing a key.
        let err = tsm.sealing_key().unwrap_err().to_string();
        assert!(err.contains("sev-guest"), "{err}");
    }
}
