//! `chiron attest verify | measure`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chiron_attest::dcap::{self, Collateral};
use chiron_attest::snp::SnpCertificates;
use chiron_attest::{Backend, Endorsements, Evidence, Policy, TcbStatus, VerifiedClaims, hex, sim};
use clap::Subcommand;

use super::CliResult;
use crate::ui::outln;

/// Attestation subcommands.
#[derive(Subcommand)]
pub enum AttestCommand {
    /// Verify TEE evidence (sim report, SGX/TDX quote, SEV-SNP report) and print its claims.
    ///
    /// With --policy the claims must satisfy it. Without one the evidence itself is checked
    /// (signatures, certificate chains, collateral valid at the given time) and the claims get
    /// the checks no deployment can skip: a debug-mode TEE (its host can read its memory) and
    /// any TCB status but UpToDate are refused unless --allow-debug / --allow-tcb-status say
    /// otherwise.
    /// An SGX/TDX quote without --collateral has its collateral fetched from --pccs, or else
    /// from the policy's `pccs_url`.
    Verify {
        /// The evidence: raw bytes, or hex text.
        #[arg(long)]
        evidence: PathBuf,
        /// DCAP collateral (JSON, as PCCS serves it) for SGX and TDX quotes.
        #[arg(long)]
        collateral: Option<PathBuf>,
        /// Fetch DCAP collateral from this PCCS (or Intel PCS) base URL when --collateral is
        /// not given; overrides the policy's `pccs_url`.
        #[arg(long, value_name = "URL", value_parser = parse_pccs_url)]
        pccs: Option<String>,
        /// Folder holding the ARK, ASK and VCEK certificates for an SEV-SNP report.
        #[arg(long)]
        certs: Option<PathBuf>,
        /// Judge at this Unix time instead of now (to reproduce a decision).
        #[arg(long)]
        at: Option<u64>,
        /// Policy file (TOML); see docs/policies/.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Without --policy: accept a debug-mode TEE (for looking at test evidence only; its
        /// host can read everything inside it).
        #[arg(long, conflicts_with = "policy")]
        allow_debug: bool,
        /// Without --policy: accept this TCB status besides UpToDate (repeatable), e.g.
        /// SWHardeningNeeded.
        #[arg(long, value_name = "STATUS", value_parser = parse_tcb_status, conflicts_with = "policy")]
        allow_tcb_status: Vec<TcbStatus>,
        /// Print the claims as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the sim measurement of an enclave build (SHA-384 of executable and configuration).
    Measure {
        /// The enclave executable.
        path: PathBuf,
        /// The enclave's configuration file, measured with it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Runs an attestation subcommand.
pub fn run(command: AttestCommand) -> CliResult {
    match command {
        AttestCommand::Verify {
            evidence,
            collateral,
            pccs,
            certs,
            at,
            policy,
            allow_debug,
            allow_tcb_status,
            json,
        } => verify(
            &evidence,
            Sources {
                collateral: collateral.as_deref(),
                pccs: pccs.as_deref(),
                certs: certs.as_deref(),
            },
            at,
            match policy {
                Some(path) => Judge::Policy(Box::new(Policy::load(&path)?)),
                None => Judge::Defaults {
                    allow_debug,
                    allowed_tcb: allow_tcb_status,
                },
            },
            json,
        ),
        AttestCommand::Measure { path, config } => measure(&path, config.as_deref()),
    }
}

/// Time limit for fetching all of a quote's collateral from a PCCS.
const PCCS_TIMEOUT: Duration = Duration::from_secs(60);

fn parse_tcb_status(name: &str) -> Result<TcbStatus, String> {
    TcbStatus::from_name(name).ok_or_else(|| {
        format!("unknown TCB status {name:?} (Intel's names, e.g. SWHardeningNeeded, OutOfDate)")
    })
}

/// Where a quote's endorsements come from.
struct Sources<'a> {
    collateral: Option<&'a Path>,
    pccs: Option<&'a str>,
    certs: Option<&'a Path>,
}

/// How verified claims are judged.
enum Judge {
    /// By a policy.
    Policy(Box<Policy>),
    /// Without a policy: see [`default_checks`].
    Defaults {
        allow_debug: bool,
        allowed_tcb: Vec<TcbStatus>,
    },
}

/// The checks claims get without a policy, which no deployment can skip: a debug-mode TEE lets
/// its host read its memory, and a TCB status other than UpToDate means known, unpatched
/// weaknesses. Either is refused unless the user said so; the error names what and the flag.
fn default_checks(
    claims: &VerifiedClaims,
    allow_debug: bool,
    allowed_tcb: &[TcbStatus],
) -> Result<(), String> {
    if claims.debug && !allow_debug {
        return Err(format!(
            "the {} evidence is genuine but from a debug-mode TEE: its host can read its memory. \
             Refused without a policy; --allow-debug accepts it (test evidence only)",
            claims.backend
        ));
    }
    match &claims.tcb_status {
        Some(status) if *status != TcbStatus::UpToDate && !allowed_tcb.contains(status) => {
            Err(format!(
                "the {} evidence is genuine but its platform's TCB status is {status}, not \
                 UpToDate. Refused without a policy; --allow-tcb-status {status} accepts it",
                claims.backend
            ))
        }
        _ => Ok(()),
    }
}

fn parse_pccs_url(url: &str) -> Result<String, String> {
    chiron_attest::policy::check_pccs_url(url).map(|()| url.to_owned())
}

fn read(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// Raw bytes, or the bytes a hex text file spells (the form quotes are often shared in).
fn read_evidence(path: &Path) -> CliResult<Vec<u8>> {
    let bytes = read(path)?;
    let decoded = std::str::from_utf8(&bytes)
        .ok()
        .map(str::trim)
        .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(chiron_attest::policy::parse_hex);
    Ok(decoded.unwrap_or(bytes))
}

fn verify(
    evidence: &Path,
    Sources {
        collateral,
        pccs,
        certs,
    }: Sources<'_>,
    at: Option<u64>,
    judge: Judge,
    json: bool,
) -> CliResult {
    let evidence = Evidence::detect(read_evidence(evidence)?)?;
    let policy = match &judge {
        Judge::Policy(policy) => Some(policy),
        Judge::Defaults { .. } => None,
    };
    let pccs = pccs.or_else(|| policy.as_ref().and_then(|p| p.pccs_url.as_deref()));
    let dcap = match (collateral, pccs) {
        (Some(p), _) => Some(Collateral::from_json(&read(p)?)?),
        (None, Some(url)) if matches!(evidence.backend, Backend::Sgx | Backend::Tdx) => {
            eprintln!("fetching DCAP collateral from {url}");
            Some(dcap::fetch_collateral(url, &evidence.bytes, PCCS_TIMEOUT)?)
        }
        (None, _) => None,
    };
    let endorsements = Endorsements {
        dcap,
        snp: certs.map(SnpCertificates::from_dir).transpose()?,
    };
    let now = match at {
        Some(t) => t,
        None => SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
    };
    let claims = match &judge {
        Judge::Policy(p) => chiron_attest::verify(&evidence, &endorsements, p, now)?,
        Judge::Defaults {
            allow_debug,
            allowed_tcb,
        } => {
            let claims = chiron_attest::verify_evidence(&evidence, &endorsements, now)?;
            default_checks(&claims, *allow_debug, allowed_tcb)?;
            claims
        }
    };
    if json {
        outln!("{}", serde_json::to_string(&claims)?);
        return Ok(());
    }
    outln!(
        "evidence verified ({} at Unix time {now})",
        if policy.is_some() {
            "policy satisfied"
        } else {
            "no policy: default checks passed"
        }
    );
    outln!("  backend      {}", claims.backend);
    outln!("  measurement  {}", hex(&claims.measurement));
    if let Some(s) = &claims.signer {
        outln!("  signer       {}", hex(s));
    }
    if let Some(p) = claims.product_id {
        outln!("  product id   {p}");
    }
    if let Some(s) = claims.svn {
        outln!("  svn          {s}");
    }
    outln!(
        "  tcb status   {}",
        claims
            .tcb_status
            .as_ref()
            .map_or("(not applicable)", |s| s.name())
    );
    if !claims.advisory_ids.is_empty() {
        outln!("  advisories   {}", claims.advisory_ids.join(", "));
    }
    outln!("  debug        {}", claims.debug);
    outln!("  report data  {}", hex(&claims.report_data));
    if let Some(p) = &claims.platform_id {
        outln!("  platform id  {}", hex(p));
    }
    for (k, v) in &claims.extra {
        outln!("  {k:<12} {v}");
    }
    Ok(())
}

fn measure(path: &Path, config: Option<&Path>) -> CliResult {
    let exe = read(path)?;
    let config = config.map(read).transpose()?.unwrap_or_default();
    outln!("{}", hex(&sim::measure(&exe, &config)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(debug: bool, tcb_status: Option<TcbStatus>) -> VerifiedClaims {
        VerifiedClaims {
            backend: Backend::SevSnp,
            measurement: vec![0; 48],
            signer: None,
            product_id: None,
            svn: None,
            tcb_status,
            advisory_ids: Vec::new(),
            debug,
            report_data: [0; chiron_attest::REPORT_DATA_LEN],
            platform_id: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn without_a_policy_debug_tees_and_stale_tcbs_are_refused_unless_allowed() {
        let stale = Some(TcbStatus::OutOfDate);
        assert!(default_checks(&claims(false, None), false, &[]).is_ok());
        assert!(default_checks(&claims(false, Some(TcbStatus::UpToDate)), false, &[]).is_ok());

        let debug = default_checks(&claims(true, None), false, &[]);
        assert!(debug.is_err_and(|e| e.contains("debug-mode") && e.contains("--allow-debug")));
        assert!(default_checks(&claims(true, None), true, &[]).is_ok());

        let out_of_date = default_checks(&claims(false, stale.clone()), false, &[]);
        assert!(out_of_date.is_err_and(|e| e.contains("--allow-tcb-status OutOfDate")));
        let other = [TcbStatus::SWHardeningNeeded];
        assert!(default_checks(&claims(false, stale.clone()), false, &other).is_err());
        assert!(
            default_checks(
                &claims(false, stale.clone()),
                false,
                &[TcbStatus::OutOfDate]
            )
            .is_ok()
        );
        // Allowing one does not allow the other.
        assert!(
            default_checks(&claims(true, stale.clone()), false, &[TcbStatus::OutOfDate]).is_err()
        );
        assert!(default_checks(&claims(true, stale.clone()), true, &[]).is_err());
    }
}
