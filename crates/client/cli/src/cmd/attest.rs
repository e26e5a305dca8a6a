//! `chiron attest verify | measure`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chiron_attest::dcap::{self, Collateral};
use chiron_attest::snp::SnpCertificates;
use chiron_attest::{Backend, Endorsements, Evidence, Policy, hex, sim};
use clap::Subcommand;

use super::CliResult;

/// Attestation subcommands.
#[derive(Subcommand)]
pub enum AttestCommand {
    /// Verify TEE evidence (sim report, SGX/TDX quote, SEV-SNP report) and print its claims.
    ///
    /// Without --policy only the evidence itself is checked (signatures, certificate chains,
    /// collateral valid at the given time); with --policy the claims must also satisfy it.
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
            json,
        } => verify(
            &evidence,
            collateral.as_deref(),
            pccs.as_deref(),
            certs.as_deref(),
            at,
            policy.as_deref(),
            json,
        ),
        AttestCommand::Measure { path, config } => measure(&path, config.as_deref()),
    }
}

/// Time limit for fetching all of a quote's collateral from a PCCS.
const PCCS_TIMEOUT: Duration = Duration::from_secs(60);

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
    collateral: Option<&Path>,
    pccs: Option<&str>,
    certs: Option<&Path>,
    at: Option<u64>,
    policy_path: Option<&Path>,
    json: bool,
) -> CliResult {
    let evidence = Evidence::detect(read_evidence(evidence)?)?;
    let policy = policy_path.map(Policy::load).transpose()?;
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
    let claims = match &policy {
        Some(p) => chiron_attest::verify(&evidence, &endorsements, p, now)?,
        None => chiron_attest::verify_evidence(&evidence, &endorsements, now)?,
    };
    if json {
        println!("{}", serde_json::to_string(&claims)?);
        return Ok(());
    }
    println!(
        "evidence verified ({} at Unix time {now})",
        if policy.is_some() {
            "policy satisfied"
        } else {
            "no policy applied"
        }
    );
    println!("  backend      {}", claims.backend);
    println!("  measurement  {}", hex(&claims.measurement));
    if let Some(s) = &claims.signer {
        println!("  signer       {}", hex(s));
    }
    if let Some(p) = claims.product_id {
        println!("  product id   {p}");
    }
    if let Some(s) = claims.svn {
        println!("  svn          {s}");
    }
    println!(
        "  tcb status   {}",
        claims
            .tcb_status
            .as_ref()
            .map_or("(not applicable)", |s| s.name())
    );
    if !claims.advisory_ids.is_empty() {
        println!("  advisories   {}", claims.advisory_ids.join(", "));
    }
    println!("  debug        {}", claims.debug);
    println!("  report data  {}", hex(&claims.report_data));
    if let Some(p) = &claims.platform_id {
        println!("  platform id  {}", hex(p));
    }
    for (k, v) in &claims.extra {
        println!("  {k:<12} {v}");
    }
    Ok(())
}

fn measure(path: &Path, config: Option<&Path>) -> CliResult {
    let exe = read(path)?;
    let config = config.map(read).transpose()?.unwrap_or_default();
    println!("{}", hex(&sim::measure(&exe, &config)));
    Ok(())
}
