//! Intel SGX and TDX DCAP quote verification, offline, with the pure-Rust `dcap-qvl` crate.
//!
//! A verifier supplies the quote, Intel's collateral for the quote's platform (TCB info, QE
//! identity, CRLs and their issuer chains, as a PCCS returns them) and the time to verify at.
//! [`verify_quote`] checks, through `dcap-qvl`:
//!
//! - the collateral: TCB info and QE identity signed by Intel's TCB signing certificate, which
//!   chains to the pinned Intel SGX Root CA; both CRLs valid and signed; everything within its
//!   validity window at `now` (TCB info / QE identity `issueDate..nextUpdate`, CRL
//!   `thisUpdate..nextUpdate`, certificate `notBefore..notAfter`);
//! - the PCK certificate chain (from the quote, or from the collateral if it carries one) up to
//!   the Intel root, and against the CRLs (revoked → rejected);
//! - the QE report's signature by the PCK key and its binding of the attestation key; the QE
//!   against the QE identity;
//! - the quote body's signature by the attestation key;
//! - the platform's TCB level (FMSPC, CPUSVN, PCESVN, and for TDX the TDX module) in the TCB
//!   info, giving the TCB status and advisories.
//!
//! What `dcap-qvl` decides by itself, and what is left to Chiron's policy:
//!
//! - **TCB status**: every status is returned (UpToDate, SWHardeningNeeded, OutOfDate, ...) for
//!   the policy to judge — except `Revoked`, which `dcap-qvl` rejects unconditionally ("TCB
//!   status is invalid: Revoked"), so a quote never yields [`TcbStatus::Revoked`] from here.
//! - **Debug**: `dcap-qvl` rejects debug enclaves / TDs unless told otherwise. This module tells
//!   it to allow them and reports [`VerifiedClaims::debug`] instead, so that the policy (which
//!   never accepts debug) gives the precise reason.
//! - **TDX attributes**: `dcap-qvl` always rejects a TD that is migratable, has reserved
//!   TD_ATTRIBUTES bits set, lacks SEPT_VE_DISABLE, or is bound to service TDs; such quotes
//!   fail here with [`Error::Rejected`].
//!
//! Fetching collateral from a PCCS URL (network) is a separate, optional feature that is not
//! part of this module: this path links no network stack. Collateral is supplied as JSON, the
//! serialisation of `dcap_qvl::QuoteCollateralV3` (what a PCCS client produces and what the
//! `dcap-qvl` sample files hold).

use std::collections::BTreeMap;

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::{EnclaveReport, Quote, Report, TDReport10};
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::{QuoteClaims, QuotePolicy};

use crate::claims::{Backend, TcbStatus, VerifiedClaims, hex};
use crate::{Error, Result};

/// Intel DCAP collateral for one quote's platform: TCB info, QE identity, the root CA and PCK
/// CRLs, their issuer chains, and optionally the PCK certificate chain.
///
/// Parsing only checks the JSON shape; nothing in it is trusted until [`verify_quote`] has
/// checked its signatures and validity against Intel's root at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collateral {
    inner: QuoteCollateralV3,
}

impl Collateral {
    /// Parses collateral from the JSON that `dcap_qvl::QuoteCollateralV3` serialises to
    /// (binary fields as hex strings; what a PCCS client returns, and the `dcap-qvl` sample
    /// files). Fails with [`Error::Endorsements`] if the JSON does not have that shape.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice::<QuoteCollateralV3>(bytes)
            .map(|inner| Self { inner })
            .map_err(|e| Error::Endorsements(format!("DCAP collateral is not valid JSON: {e}")))
    }

    /// Serialises the collateral back to the JSON form [`Collateral::from_json`] reads.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.inner)
            .map_err(|e| Error::Endorsements(format!("cannot serialise DCAP collateral: {e}")))
    }
}

/// Verifies an SGX (v3) or TDX (v4/v5) DCAP quote against `collateral` at `now_unix_secs`
/// (seconds since the Unix epoch), rooted in Intel's SGX Root CA built into `dcap-qvl`.
///
/// On success every signature, certificate, CRL and collateral validity window checked out
/// and the claims describe the quote's body (see the module docs for what is rejected here and
/// what is left to the policy). Non-UpToDate TCB statuses and debug enclaves are *returned*
/// ([`VerifiedClaims::tcb_status`], [`VerifiedClaims::debug`]), not rejected.
///
/// Claims: `backend` is detected from the quote (SGX or TDX). SGX: `measurement` = MRENCLAVE,
/// `signer` = MRSIGNER, `product_id` = ISVPRODID, `svn` = ISVSVN, `debug` = the DEBUG
/// attribute. TDX: `measurement` = MRTD, `debug` = any TD-under-debug (TUD) bit of
/// TD_ATTRIBUTES (bit 0 is DEBUG; the others enable profiling and make the TD equally
/// untrusted), and `extra` holds `rtmr0`..`rtmr3`, `mr_config_id`, `mr_owner`,
/// `mr_owner_config`, `tee_tcb_svn`, `mr_seam`, `mr_signer_seam`, `seam_attributes`,
/// `td_attributes`, `xfam` (hex) and, for TDX 1.5 bodies, `tee_tcb_svn2`, `mr_service_td`.
/// Both: `report_data`, `tcb_status`, `advisory_ids`, `platform_id` = FMSPC (from the verified
/// PCK certificate), and in `extra`: `quote_version`, `tcb_eval_data_number`, `tcb_date`
/// (Unix seconds of the matched TCB level's date), `collateral_issue_date` (Unix seconds, the
/// older of the TCB info's and QE identity's `issueDate`), `collateral_expiration_date` (Unix
/// seconds, the earliest `nextUpdate`/`notAfter` over all collateral), SGX also `attributes`,
/// `misc_select`, `cpu_svn` (hex).
///
/// Errors: [`Error::Malformed`] if the quote cannot be parsed; [`Error::Rejected`] with
/// `dcap-qvl`'s error chain for anything that fails verification (bad signature, broken or
/// revoked chain, expired or not-yet-valid collateral, collateral for another platform,
/// Revoked TCB) and for a TCB status name Chiron does not know.
pub fn verify_quote(
    quote: &[u8],
    collateral: &Collateral,
    now_unix_secs: u64,
) -> Result<VerifiedClaims> {
    // Parse first, so that garbage is reported as malformed rather than as a failed check.
    let parsed = Quote::parse(quote)
        .map_err(|e| Error::Malformed(format!("cannot parse DCAP quote: {e:#}")))?;
    let backend = match parsed.report {
        Report::SgxEnclave(_) => Backend::Sgx,
        Report::TD10(_) | Report::TD15(_) | Report::TD15Ex(_) => Backend::Tdx,
    };

    let verified: QuoteClaims = QuoteVerifier::new_prod()
        .allow_debug(true)
        .verify_with_policy(
            quote,
            &collateral.inner,
            now_unix_secs,
            &QuotePolicy::claims_only(now_unix_secs),
        )
        .map_err(|e| Error::Rejected(format!("{backend} quote: {e:#}")))?;

    let status_name = verified.tcb.status.to_string();
    let tcb_status = TcbStatus::from_name(&status_name).ok_or_else(|| {
        Error::Rejected(format!(
            "{backend} quote: TCB status {status_name:?} is not one Chiron knows"
        ))
    })?;

    let mut extra = BTreeMap::new();
    extra.insert(
        "quote_version".to_owned(),
        verified.header.version.to_string(),
    );
    extra.insert(
        "tcb_eval_data_number".to_owned(),
        verified.tcb.eval_data_number.to_string(),
    );
    extra.insert(
        "tcb_date".to_owned(),
        verified.platform.tcb_date_tag.to_string(),
    );
    extra.insert(
        "collateral_expiration_date".to_owned(),
        verified.earliest_expiration_date.to_string(),
    );
    if let Some(issued) = collateral_issue_date(&collateral.inner) {
        extra.insert("collateral_issue_date".to_owned(), issued.to_string());
    }

    let mut claims = VerifiedClaims {
        backend,
        measurement: Vec::new(),
        signer: None,
        product_id: None,
        svn: None,
        tcb_status: Some(tcb_status),
        advisory_ids: verified.tcb.advisory_ids.clone(),
        debug: false,
        report_data: [0; crate::REPORT_DATA_LEN],
        platform_id: Some(verified.platform.pck.fmspc.to_vec()),
        extra,
    };

    match &verified.report {
        Report::SgxEnclave(report) => fill_sgx(&mut claims, report),
        Report::TD10(report) => fill_tdx(&mut claims, report),
        Report::TD15(report) => {
            fill_tdx(&mut claims, &report.base);
            fill_td15(&mut claims, &report.tee_tcb_svn2, &report.mr_service_td);
        }
        Report::TD15Ex(report) => {
            fill_tdx(&mut claims, &report.base.base);
            fill_td15(
                &mut claims,
                &report.base.tee_tcb_svn2,
                &report.base.mr_service_td,
            );
        }
    }
    Ok(claims)
}

/// SGX enclave report fields. The DEBUG attribute is bit 1 of the first ATTRIBUTES byte.
fn fill_sgx(claims: &mut VerifiedClaims, report: &EnclaveReport) {
    const SGX_FLAGS_DEBUG: u8 = 0x02;
    claims.measurement = report.mr_enclave.to_vec();
    claims.signer = Some(report.mr_signer.to_vec());
    claims.product_id = Some(report.isv_prod_id);
    claims.svn = Some(u32::from(report.isv_svn));
    claims.debug = report
        .attributes
        .first()
        .is_some_and(|flags| flags & SGX_FLAGS_DEBUG != 0);
    claims.report_data = report.report_data;
    let extra = &mut claims.extra;
    extra.insert("attributes".to_owned(), hex(&report.attributes));
    extra.insert(
        "misc_select".to_owned(),
        format!("{:08x}", report.misc_select),
    );
    extra.insert("cpu_svn".to_owned(), hex(&report.cpu_svn));
}

/// TDX 1.0 TD report fields (shared by the 1.5 bodies). Byte 0 of TD_ATTRIBUTES is the
/// TD-under-debug group: bit 0 DEBUG, the rest profiling; any of them makes the TD untrusted.
fn fill_tdx(claims: &mut VerifiedClaims, report: &TDReport10) {
    claims.measurement = report.mr_td.to_vec();
    claims.debug = report.td_attributes.first().is_some_and(|tud| *tud != 0);
    claims.report_data = report.report_data;
    let extra = &mut claims.extra;
    for (name, value) in [
        ("rtmr0", &report.rt_mr0[..]),
        ("rtmr1", &report.rt_mr1[..]),
        ("rtmr2", &report.rt_mr2[..]),
        ("rtmr3", &report.rt_mr3[..]),
        ("mr_config_id", &report.mr_config_id[..]),
        ("mr_owner", &report.mr_owner[..]),
        ("mr_owner_config", &report.mr_owner_config[..]),
        ("tee_tcb_svn", &report.tee_tcb_svn[..]),
        ("mr_seam", &report.mr_seam[..]),
        ("mr_signer_seam", &report.mr_signer_seam[..]),
        ("seam_attributes", &report.seam_attributes[..]),
        ("td_attributes", &report.td_attributes[..]),
        ("xfam", &report.xfam[..]),
    ] {
        extra.insert(name.to_owned(), hex(value));
    }
}

/// The fields TDX 1.5 bodies add: the current TEE TCB SVN and the service TD hash.
fn fill_td15(claims: &mut VerifiedClaims, tee_tcb_svn2: &[u8], mr_service_td: &[u8]) {
    let extra = &mut claims.extra;
    extra.insert("tee_tcb_svn2".to_owned(), hex(tee_tcb_svn2));
    extra.insert("mr_service_td".to_owned(), hex(mr_service_td));
}

/// The older of the TCB info's and the QE identity's `issueDate`, in Unix seconds: how old
/// Intel's verdict on this platform is. Called after verification, so both are authentic;
/// `None` if a date is absent or not in Intel's `YYYY-MM-DDTHH:MM:SS[.fff]Z` form.
fn collateral_issue_date(collateral: &QuoteCollateralV3) -> Option<u64> {
    let issue_date = |json: &str| -> Option<u64> {
        let value: serde_json::Value = serde_json::from_str(json).ok()?;
        parse_utc_timestamp(value.get("issueDate")?.as_str()?)
    };
    let tcb = issue_date(&collateral.tcb_info)?;
    let qe = issue_date(&collateral.qe_identity)?;
    Some(tcb.min(qe))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)` to Unix seconds (fraction dropped).
fn parse_utc_timestamp(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let time = time.split_once('.').map_or(time, |(whole, _)| whole);
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let mut time_parts = time.splitn(3, ':');
    let hour: u64 = time_parts.next()?.parse().ok()?;
    let minute: u64 = time_parts.next()?.parse().ok()?;
    let second: u64 = time_parts.next()?.parse().ok()?;
    // Four-digit years keep the arithmetic below far from overflow.
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_utc_timestamp;

    #[test]
    fn parses_intel_timestamps() {
        assert_eq!(parse_utc_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_utc_timestamp("2025-06-19T10:56:11Z"),
            Some(1_750_330_571)
        );
        assert_eq!(
            parse_utc_timestamp("2024-02-29T23:59:59.123Z"),
            Some(1_709_251_199)
        );
        assert_eq!(
            parse_utc_timestamp("2025-07-01T00:00:00+00:00"),
            Some(1_751_328_000)
        );
        assert_eq!(parse_utc_timestamp("2025-07-01T00:00:00"), None);
        assert_eq!(parse_utc_timestamp("2025-13-01T00:00:00Z"), None);
        assert_eq!(parse_utc_timestamp("1969-12-31T23:59:59Z"), None);
    }
}
