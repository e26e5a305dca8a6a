//! The TEE this enclave runs in: where its evidence and its sealing key come from.

use std::path::PathBuf;

use chiron_attest::platform::{ConfigFsTsm, GramineSgx};
use chiron_attest::sim::{SimPlatform, SimSource};
use chiron_attest::{Backend, EvidenceSource};
use zeroize::Zeroizing;

use crate::RuntimeError;

/// Which TEE, and where its interface is.
#[derive(Clone, Debug)]
pub enum Tee {
    /// The simulated TEE (development and tests only; protects nothing): a platform key file.
    Sim {
        /// The sim platform key (created if missing).
        platform_key: PathBuf,
    },
    /// Intel SGX under Gramine (`/dev/attestation`).
    Sgx {
        /// Gramine's attestation directory.
        root: PathBuf,
    },
    /// Intel TDX through the kernel's configfs-tsm interface.
    Tdx {
        /// The configfs-tsm report directory.
        root: PathBuf,
    },
    /// AMD SEV-SNP through the kernel's configfs-tsm interface.
    Snp {
        /// The configfs-tsm report directory.
        root: PathBuf,
    },
}

/// The enclave's platform: its evidence source and its sealing key.
pub struct Platform {
    /// Produces evidence over report data (the RA-TLS key hash).
    pub source: Box<dyn EvidenceSource>,
    sealing_key: Zeroizing<[u8; 32]>,
}

impl Platform {
    /// Opens the platform. For `Sim`, the measurement is that of this executable with an empty
    /// configuration (`chiron attest measure $(which chiron-enclave)`).
    pub fn open(tee: &Tee) -> Result<Self, RuntimeError> {
        let err = |e: chiron_attest::Error| RuntimeError::Platform(e.to_string());
        let source: Box<dyn EvidenceSource> = match tee {
            Tee::Sim { platform_key } => {
                eprintln!("{}", chiron_attest::sim::WARNING);
                let platform = SimPlatform::load_or_create(platform_key).map_err(err)?;
                let exe = std::env::current_exe()
                    .map_err(|e| RuntimeError::Platform(format!("no executable path: {e}")))?;
                Box::new(SimSource::for_executable(platform, &exe, b"").map_err(err)?)
            }
            Tee::Sgx { root } => Box::new(GramineSgx::new(root).map_err(err)?),
            Tee::Tdx { root } => Box::new(ConfigFsTsm::new(Backend::Tdx, root).map_err(err)?),
            Tee::Snp { root } => Box::new(ConfigFsTsm::new(Backend::SevSnp, root).map_err(err)?),
        };
        let sealing_key = source.sealing_key().map_err(err)?;
        Ok(Self {
            source,
            sealing_key,
        })
    }

    /// The key only this measurement on this platform derives (root of everything sealed).
    pub fn sealing_key(&self) -> &[u8; 32] {
        &self.sealing_key
    }
}
