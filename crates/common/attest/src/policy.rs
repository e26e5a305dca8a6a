//! What a verifier accepts: the policy file (TOML) and its check against verified claims.
//!
//! A policy is an allow-list. Nothing is accepted by default: the backends and measurements must
//! be named; `sim` is never implied; TCB statuses other than `UpToDate` need an explicit opt-in;
//! a debug-mode TEE is refused whatever the policy says (there is no field to allow it).
//! Examples with every field explained are in `docs/policies/`.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::claims::{Backend, TcbStatus, VerifiedClaims, hex};
use crate::{Error, Result};

/// Minimum SEV-SNP TCB component versions (from the report's reported TCB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpMinTcb {
    /// Minimum boot loader SVN.
    #[serde(default)]
    pub bootloader: u8,
    /// Minimum TEE (PSP OS) SVN.
    #[serde(default)]
    pub tee: u8,
    /// Minimum SNP firmware SVN.
    #[serde(default)]
    pub snp: u8,
    /// Minimum CPU microcode SVN.
    #[serde(default)]
    pub microcode: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    backends: Vec<String>,
    #[serde(default)]
    measurements: Vec<String>,
    #[serde(default)]
    allow_any_measurement: bool,
    #[serde(default)]
    sgx_signers: Vec<String>,
    #[serde(default)]
    sgx_product_ids: Vec<u16>,
    #[serde(default)]
    min_svn: Option<u32>,
    #[serde(default)]
    tcb_statuses: Option<Vec<String>>,
    #[serde(default)]
    allowed_advisories: Vec<String>,
    #[serde(default)]
    max_collateral_age_days: Option<u64>,
    #[serde(default)]
    sim_platform_ids: Vec<String>,
    #[serde(default)]
    snp_min_tcb: Option<SnpMinTcb>,
    #[serde(default)]
    pccs_url: Option<String>,
}

/// A parsed, validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Accepted backends.
    pub backends: BTreeSet<Backend>,
    /// Accepted measurements; `None` means any (only with `allow_any_measurement = true`).
    pub measurements: Option<BTreeSet<Vec<u8>>>,
    /// Accepted SGX signers (MRSIGNER); empty means any.
    pub sgx_signers: BTreeSet<Vec<u8>>,
    /// Accepted SGX product ids; empty means any.
    pub sgx_product_ids: BTreeSet<u16>,
    /// Minimum security version, where the backend has one.
    pub min_svn: Option<u32>,
    /// Accepted TCB statuses (default: `UpToDate` only).
    pub tcb_statuses: BTreeSet<TcbStatus>,
    /// If non-empty, every advisory applying to the platform must be in this list.
    pub allowed_advisories: BTreeSet<String>,
    /// Maximum age of DCAP collateral (from its issue date), in seconds.
    pub max_collateral_age_secs: Option<u64>,
    /// Accepted sim platform ids (hex in the file); empty means any sim platform.
    pub sim_platform_ids: BTreeSet<Vec<u8>>,
    /// Minimum SEV-SNP reported TCB.
    pub snp_min_tcb: Option<SnpMinTcb>,
    /// Where to fetch DCAP collateral for SGX/TDX quotes when none is supplied: a PCCS (or
    /// Intel's PCS) base URL, `http://` or `https://`. Only data: what the collateral says is
    /// trusted because Intel signed it, not because of where it came from. Fetching needs a
    /// build with the `pccs` feature ([`crate::dcap::fetch_collateral`]); a build without it
    /// still parses this field and fails clearly if asked to fetch.
    pub pccs_url: Option<String>,
}

impl Policy {
    /// Parses a policy from TOML text; unknown fields are errors (a misspelt field must not
    /// silently weaken a policy).
    pub fn from_toml(text: &str) -> Result<Self> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| Error::Policy(format!("invalid policy file: {e}")))?;
        let bad = |m: String| Error::Policy(format!("invalid policy file: {m}"));
        let mut backends = BTreeSet::new();
        for name in &file.backends {
            backends.insert(Backend::from_name(name).ok_or_else(|| {
                bad(format!(
                    "unknown backend {name:?} (known: sim, sgx, tdx, sev-snp)"
                ))
            })?);
        }
        if backends.is_empty() {
            return Err(bad("`backends` must name at least one backend".into()));
        }
        let measurements = match (file.allow_any_measurement, file.measurements.is_empty()) {
            (true, true) => None,
            (true, false) => {
                return Err(bad(
                    "`allow_any_measurement = true` contradicts a `measurements` list".into(),
                ));
            }
            (false, true) => {
                return Err(bad(
                    "`measurements` must list at least one accepted measurement (or set `allow_any_measurement = true` for development)".into(),
                ));
            }
            (false, false) => Some(parse_hex_set(&file.measurements, "measurements")?),
        };
        let tcb_statuses = match file.tcb_statuses {
            None => BTreeSet::from([TcbStatus::UpToDate]),
            Some(list) => list
                .iter()
                .map(|s| {
                    TcbStatus::from_name(s).ok_or_else(|| bad(format!("unknown TCB status {s:?}")))
                })
                .collect::<Result<_>>()?,
        };
        if let Some(url) = &file.pccs_url {
            check_pccs_url(url).map_err(|m| bad(format!("`pccs_url`: {m}")))?;
        }
        Ok(Policy {
            backends,
            measurements,
            sgx_signers: parse_hex_set(&file.sgx_signers, "sgx_signers")?,
            sgx_product_ids: file.sgx_product_ids.into_iter().collect(),
            min_svn: file.min_svn,
            tcb_statuses,
            allowed_advisories: file.allowed_advisories.into_iter().collect(),
            max_collateral_age_secs: file
                .max_collateral_age_days
                .map(|d| d.saturating_mul(86_400)),
            sim_platform_ids: parse_hex_set(&file.sim_platform_ids, "sim_platform_ids")?,
            snp_min_tcb: file.snp_min_tcb,
            pccs_url: file.pccs_url,
        })
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("cannot read policy {}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    /// A development policy accepting exactly one sim measurement.
    pub fn sim_only(measurement: &[u8]) -> Self {
        Policy {
            backends: BTreeSet::from([Backend::Sim]),
            measurements: Some(BTreeSet::from([measurement.to_vec()])),
            sgx_signers: BTreeSet::new(),
            sgx_product_ids: BTreeSet::new(),
            min_svn: None,
            tcb_statuses: BTreeSet::from([TcbStatus::UpToDate]),
            allowed_advisories: BTreeSet::new(),
            max_collateral_age_secs: None,
            sim_platform_ids: BTreeSet::new(),
            snp_min_tcb: None,
            pccs_url: None,
        }
    }

    /// Decides whether genuine evidence with these claims is acceptable at `now` (Unix seconds).
    /// The error names the first rule the claims break.
    pub fn check(&self, claims: &VerifiedClaims, now: u64) -> Result<()> {
        let deny = |m: String| Err(Error::Policy(m));
        if claims.debug {
            return deny(format!(
                "{} TEE runs in debug mode (its memory is readable by the host); never accepted",
                claims.backend
            ));
        }
        if !self.backends.contains(&claims.backend) {
            let allowed: Vec<&str> = self.backends.iter().map(|b| b.name()).collect();
            return deny(format!(
                "backend {} is not allowed (policy allows: {})",
                claims.backend,
                allowed.join(", ")
            ));
        }
        if let Some(list) = &self.measurements
            && !list.contains(&claims.measurement)
        {
            return deny(format!(
                "measurement {} is not in the policy's allow-list",
                hex(&claims.measurement)
            ));
        }
        if claims.backend == Backend::Sgx {
            if !self.sgx_signers.is_empty()
                && !claims
                    .signer
                    .as_ref()
                    .is_some_and(|s| self.sgx_signers.contains(s))
            {
                return deny("SGX signer (MRSIGNER) is not in the policy's allow-list".into());
            }
            if !self.sgx_product_ids.is_empty()
                && !claims
                    .product_id
                    .is_some_and(|p| self.sgx_product_ids.contains(&p))
            {
                return deny(format!(
                    "SGX product id {:?} is not in the policy's allow-list",
                    claims.product_id
                ));
            }
        }
        if let Some(min) = self.min_svn
            && let Some(svn) = claims.svn
            && svn < min
        {
            return deny(format!(
                "security version {svn} is below the policy's minimum {min}"
            ));
        }
        if let Some(status) = &claims.tcb_status {
            if !self.tcb_statuses.contains(status) {
                return deny(format!(
                    "TCB status {status} is not accepted (policy accepts: {})",
                    self.tcb_statuses
                        .iter()
                        .map(TcbStatus::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if *status != TcbStatus::UpToDate
                && !self.allowed_advisories.is_empty()
                && let Some(a) = claims
                    .advisory_ids
                    .iter()
                    .find(|a| !self.allowed_advisories.contains(*a))
            {
                return deny(format!(
                    "advisory {a} is not in the policy's accepted advisories"
                ));
            }
        }
        if let Some(max_age) = self.max_collateral_age_secs
            && matches!(claims.backend, Backend::Sgx | Backend::Tdx)
        {
            let issued = claims
                .extra
                .get("collateral_issue_date")
                .and_then(|s| s.parse::<u64>().ok());
            let Some(issued) = issued else {
                return deny(
                    "collateral issue date unknown; cannot enforce max_collateral_age_days".into(),
                );
            };
            let age = now.saturating_sub(issued);
            if age > max_age {
                return deny(format!(
                    "collateral is {} days old, the policy allows {}",
                    age / 86_400,
                    max_age / 86_400
                ));
            }
        }
        if claims.backend == Backend::Sim
            && !self.sim_platform_ids.is_empty()
            && !claims
                .platform_id
                .as_ref()
                .is_some_and(|p| self.sim_platform_ids.contains(p))
        {
            return deny("sim platform is not in the policy's sim_platform_ids".into());
        }
        if claims.backend == Backend::SevSnp
            && let Some(min) = self.snp_min_tcb
        {
            for (name, minimum) in [
                ("bootloader", min.bootloader),
                ("tee", min.tee),
                ("snp", min.snp),
                ("microcode", min.microcode),
            ] {
                let key = format!("reported_tcb_{name}");
                let value = claims.extra.get(&key).and_then(|v| v.parse::<u8>().ok());
                match value {
                    Some(v) if v >= minimum => {}
                    Some(v) => {
                        return deny(format!(
                            "SEV-SNP reported TCB {name} {v} is below the policy's minimum {minimum}"
                        ));
                    }
                    None => return deny(format!("SEV-SNP reported TCB {name} unknown")),
                }
            }
        }
        Ok(())
    }
}

/// Checks that `url` can name a PCCS: an absolute `http://` or `https://` URL with a host, no
/// user info, no fragment, and nothing but printable ASCII (so that it cannot smuggle
/// whitespace or control characters into requests or error messages). The error says what is
/// wrong with it.
pub fn check_pccs_url(url: &str) -> std::result::Result<(), String> {
    if url.is_empty() {
        return Err("the URL is empty".into());
    }
    if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("{url:?} contains the character {c:?}"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "{url:?} carries user info; name the PCCS host only"
        ));
    }
    if url.contains('#') {
        return Err(format!("{url:?} has a fragment"));
    }
    let host = match authority.strip_prefix('[') {
        // An IPv6 literal: `[addr]` or `[addr]:port`.
        Some(v6) => v6.split_once(']').map(|(addr, _)| addr).unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if let Some((_, port)) = authority.rsplit_once(':')
        && !authority.ends_with(']')
        && !port.parse::<u16>().is_ok_and(|p| p != 0)
    {
        return Err(format!("{url:?} has an invalid port"));
    }
    Ok(())
}

fn parse_hex_set(list: &[String], field: &str) -> Result<BTreeSet<Vec<u8>>> {
    list.iter()
        .map(|h| {
            parse_hex(h).ok_or_else(|| {
                Error::Policy(format!(
                    "invalid policy file: `{field}` entry {h:?} is not hex"
                ))
            })
        })
        .collect()
}

/// Parses lower- or upper-case hex with an even number of digits.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}
