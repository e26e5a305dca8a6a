//! What verified evidence establishes, uniformly across backends.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Bytes of report data every backend binds into its evidence.
pub const REPORT_DATA_LEN: usize = 64;

/// The TEE technology that produced evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Simulated platform for development and CI; never a security boundary.
    Sim,
    /// Intel SGX enclave (DCAP quote, under Gramine).
    Sgx,
    /// Intel TDX trust domain (DCAP quote).
    Tdx,
    /// AMD SEV-SNP confidential VM (attestation report + VCEK chain).
    SevSnp,
}

impl Backend {
    /// Name used in policies, JSON and messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sim => "sim",
            Backend::Sgx => "sgx",
            Backend::Tdx => "tdx",
            Backend::SevSnp => "sev-snp",
        }
    }

    /// Parses a policy/CLI name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sim" => Some(Backend::Sim),
            "sgx" => Some(Backend::Sgx),
            "tdx" => Some(Backend::Tdx),
            "sev-snp" | "snp" => Some(Backend::SevSnp),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// TCB (trusted computing base) status as Intel's collateral states it. Other backends report
/// the status their verifier derives (sim: [`TcbStatus::UpToDate`] by construction).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum TcbStatus {
    /// Patched to the latest TCB level.
    UpToDate,
    /// Software hardening (mitigations in enclave code) is needed.
    SWHardeningNeeded,
    /// Platform configuration changes are needed.
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded,
    /// The platform TCB is out of date.
    OutOfDate,
    /// Out of date and configuration needed.
    OutOfDateConfigurationNeeded,
    /// The platform's keys were revoked.
    Revoked,
    /// TDX 1.5: the TD should be relaunched to pick up a TDX module update.
    TDRelaunchAdvised,
    /// TDX 1.5: relaunch advised and configuration needed.
    TDRelaunchAdvisedConfigurationNeeded,
}

impl TcbStatus {
    /// The name used by Intel's collateral and in policies (e.g. `UpToDate`).
    pub fn name(&self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SWHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::Revoked => "Revoked",
            TcbStatus::TDRelaunchAdvised => "TDRelaunchAdvised",
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded => {
                "TDRelaunchAdvisedConfigurationNeeded"
            }
        }
    }

    /// Parses Intel's status names.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            TcbStatus::UpToDate,
            TcbStatus::SWHardeningNeeded,
            TcbStatus::ConfigurationNeeded,
            TcbStatus::ConfigurationAndSWHardeningNeeded,
            TcbStatus::OutOfDate,
            TcbStatus::OutOfDateConfigurationNeeded,
            TcbStatus::Revoked,
            TcbStatus::TDRelaunchAdvised,
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a verifier established from genuine evidence. Produced only by a backend's
/// verification function after every signature and certificate checked out; a policy then
/// decides whether the claims are acceptable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedClaims {
    /// Which TEE produced the evidence.
    pub backend: Backend,
    /// The code identity: SGX MRENCLAVE (32 bytes), TDX MRTD (48), SEV-SNP MEASUREMENT (48),
    /// sim SHA-384 of the enclave executable and configuration (48).
    #[serde(serialize_with = "hex_bytes")]
    pub measurement: Vec<u8>,
    /// SGX MRSIGNER (hash of the enclave signing key); `None` elsewhere.
    #[serde(serialize_with = "hex_opt")]
    pub signer: Option<Vec<u8>>,
    /// SGX ISVPRODID; `None` elsewhere.
    pub product_id: Option<u16>,
    /// Security version: SGX ISVSVN, SEV-SNP guest SVN; `None` where the backend has none.
    pub svn: Option<u32>,
    /// TCB status; `None` where the backend has no such notion (SEV-SNP: see `extra`).
    pub tcb_status: Option<TcbStatus>,
    /// Security advisories (e.g. `INTEL-SA-00615`) that apply to the platform's TCB level.
    pub advisory_ids: Vec<String>,
    /// Whether the TEE runs in debug mode (memory readable by the host): never acceptable.
    pub debug: bool,
    /// The 64 bytes the enclave bound into the evidence.
    #[serde(serialize_with = "hex_bytes")]
    pub report_data: [u8; REPORT_DATA_LEN],
    /// Platform identity where available: SGX/TDX FMSPC, SEV-SNP CHIP_ID, sim platform key id.
    #[serde(serialize_with = "hex_opt")]
    pub platform_id: Option<Vec<u8>>,
    /// Backend-specific facts (TDX RTMRs and MRCONFIGID, SNP reported TCB and guest policy, ...),
    /// as lower-case names mapped to hex or decimal strings.
    pub extra: BTreeMap<String, String>,
}

/// Lower-case hex of bytes (the project's one encoder, re-exported for this crate's users).
pub use chiron_codec::hex;

fn hex_bytes<S: serde::Serializer>(bytes: impl AsRef<[u8]>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(bytes.as_ref()))
}

fn hex_opt<S: serde::Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_str(&hex(b)),
        None => s.serialize_none(),
    }
}
