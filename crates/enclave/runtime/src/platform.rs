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
    /// Sim only: this enclave's measurement and platform id.
    sim: Option<([u8; chiron_attest::sim::MEASUREMENT_LEN], Vec<u8>)>,
}

impl Platform {
    /// Opens the platform. For `Sim`, the measurement is that of this executable with an empty
    /// configuration (`chiron attest measure $(which chiron-enclave)`).
    pub fn open(tee: &Tee) -> Result<Self, RuntimeError> {
        let err = |e: chiron_attest::Error| RuntimeError::Platform(e.to_string());
        let mut sim = None;
        let source: Box<dyn EvidenceSource> = match tee {
            Tee::Sim { platform_key } => {
                eprintln!("{}", chiron_attest::sim::WARNING);
                let platform = SimPlatform::load_or_create(platform_key).map_err(err)?;
                let platform_id = platform.platform_id();
                let exe = std::env::current_exe()
                    .map_err(|e| RuntimeError::Platform(format!("no executable path: {e}")))?;
                let source = SimSource::for_executable(platform, &exe, b"").map_err(err)?;
                sim = Some((*source.measurement(), platform_id));
                Box::new(source)
            }
            Tee::Sgx { root } => Box::new(GramineSgx::new(root).map_err(err)?),
            Tee::Tdx { root } => Box::new(ConfigFsTsm::new(Backend::Tdx, root).map_err(err)?),
            Tee::Snp { root } => Box::new(ConfigFsTsm::new(Backend::SevSnp, root).map_err(err)?),
        };
        let sealing_key = source.sealing_key().map_err(err)?;
        Ok(Self {
            source,
            sealing_key,
            sim,
        })
    }

    /// How this enclave verifies a peer enclave (mutual RA-TLS between the instances of a
    /// distributed job): a peer must run **this** enclave's measurement on this backend. On
    /// sim: on this sim platform too. On hardware: `policy_file` gives the rest (TCB statuses,
    /// collateral age, ...) and `endorsements` the collateral to check quotes with; whatever
    /// measurements the file names, they are replaced by this enclave's own (read from its own
    /// evidence), so a host that edits the file cannot admit another build.
    pub fn peer_verifier(
        &self,
        policy_file: Option<&std::path::Path>,
        endorsements: chiron_attest::Endorsements,
    ) -> Result<chiron_attest::ratls::RaTlsVerifier, RuntimeError> {
        let err = |e: chiron_attest::Error| RuntimeError::Platform(e.to_string());
        if let Some((measurement, platform_id)) = &self.sim {
            let mut policy = chiron_attest::Policy::sim_only(measurement);
            policy.sim_platform_ids.insert(platform_id.clone());
            return Ok(chiron_attest::ratls::RaTlsVerifier::new(
                policy,
                endorsements,
            ));
        }
        let file = policy_file.ok_or_else(|| {
            RuntimeError::Platform(
                "a hardware enclave needs --peer-policy to attest its peers".into(),
            )
        })?;
        let mut policy = chiron_attest::Policy::load(file).map_err(err)?;
        let own = self
            .source
            .evidence(&[0; chiron_attest::REPORT_DATA_LEN])
            .map_err(err)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = chiron_attest::verify_evidence(&own, &endorsements, now).map_err(err)?;
        policy.measurements = Some(std::collections::BTreeSet::from([claims.measurement]));
        policy.backends = std::collections::BTreeSet::from([claims.backend]);
        Ok(chiron_attest::ratls::RaTlsVerifier::new(
            policy,
            endorsements,
        ))
    }

    /// The key only this measurement on this platform derives (root of everything sealed).
    pub fn sealing_key(&self) -> &[u8; 32] {
        &self.sealing_key
    }
}
