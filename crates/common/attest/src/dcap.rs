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
//! Collateral is supplied as JSON, the serialisation of `dcap_qvl::QuoteCollateralV3` (what a
//! PCCS client produces and what the `dcap-qvl` sample files hold), or fetched over HTTP(S)
//! from a PCCS (or Intel's PCS) by [`fetch_collateral`]. Fetching is the optional cargo
//! feature `pccs`; without it this crate links no HTTP client and no network stack, and
//! [`fetch_collateral`] only says that the build lacks PCCS support. Where the collateral came
//! from does not matter to [`verify_quote`]: it trusts only Intel's signatures.

use std::collections::BTreeMap;
use std::time::Duration;

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

/// Largest response body [`fetch_collateral`] accepts from a PCCS (1 MiB; real ones are a few
/// KiB, a PCK CRL at most a few hundred).
pub const PCCS_MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// Whether this build can fetch collateral from a PCCS (the cargo feature `pccs`).
pub const PCCS_SUPPORTED: bool = cfg!(feature = "pccs");

/// Fetches Intel's collateral for `quote` from the PCCS (or Intel PCS) at `pccs_url`, with the
/// PCS/PCCS v4 API, as `dcap-qvl`'s own `collateral::CollateralClient::fetch` does:
///
/// 1. the PCK certificate chain: from the quote (certification data type 5), or for types 2/3
///    (encrypted PPID) `GET /sgx/certification/v4/pckcert?qeid=..&encrypted_ppid=..&cpusvn=..
///    &pcesvn=..&pceid=..` (body: the PCK certificate; header
///    `SGX-PCK-Certificate-Issuer-Chain`), refusing a certificate for another TCB level
///    (`SGX-TCBm`); the FMSPC and PCK CA (`processor` or `platform`) come from its leaf;
/// 2. `GET /sgx/certification/v4/pckcrl?ca={ca}&encoding=der`: the PCK CRL (DER body),
///    its issuer chain in `SGX-PCK-CRL-Issuer-Chain`;
/// 3. `GET /{sgx|tdx}/certification/v4/tcb?fmspc={FMSPC}&update=standard` (by the quote's TEE
///    type): `{"tcbInfo": .., "signature": hex}`, issuer chain in `SGX-TCB-Info-Issuer-Chain`
///    or `TCB-Info-Issuer-Chain`;
/// 4. `GET /{sgx|tdx}/certification/v4/qe/identity?update=standard`:
///    `{"enclaveIdentity": .., "signature": hex}`, issuer chain in
///    `SGX-Enclave-Identity-Issuer-Chain`;
/// 5. the root CA CRL: `GET /sgx/certification/v4/rootcacrl` (a PCCS serves it as hex) unless
///    `pccs_url` is Intel's PCS, which has no such endpoint; failing that, from the CRL
///    distribution point of the root certificate in the QE identity issuer chain (DER).
///
/// Issuer chains arrive URL-encoded (PEM). `pccs_url` is the service's base URL; a trailing
/// `/` or `/sgx/certification/v4` (`/tdx/...`) is dropped. Plain `http://` is allowed: the
/// collateral is authenticated by Intel's signatures in [`verify_quote`], not by the channel.
/// HTTPS is checked against the Mozilla root store (`webpki-roots`); proxies come from the
/// usual `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` variables.
///
/// Every response is limited to [`PCCS_MAX_RESPONSE_BYTES`], and `timeout` bounds all the
/// requests together, connecting included. Nothing fetched is trusted here: the result must go
/// through [`verify_quote`] like collateral read from a file.
///
/// Errors: [`Error::Malformed`] if the quote cannot be parsed or carries no usable PCK
/// certificate; [`Error::Endorsements`] naming the URL and the piece (PCK CRL, TCB info, ...)
/// that could not be fetched or read: an invalid `pccs_url`, connection failure, timeout,
/// non-2xx status, oversized body, missing header, malformed body. Without the `pccs` feature
/// it always fails with [`Error::Endorsements`] saying that this build lacks PCCS support.
pub fn fetch_collateral(pccs_url: &str, quote: &[u8], timeout: Duration) -> Result<Collateral> {
    crate::policy::check_pccs_url(pccs_url)
        .map_err(|m| Error::Endorsements(format!("invalid PCCS URL: {m}")))?;
    #[cfg(feature = "pccs")]
    {
        pccs::fetch(pccs_url, quote, timeout).map(|inner| Collateral { inner })
    }
    #[cfg(not(feature = "pccs"))]
    {
        let _ = (quote, timeout);
        Err(Error::Endorsements(format!(
            "cannot fetch DCAP collateral from the PCCS {pccs_url}: this build lacks PCCS support \
             (chiron-attest without the `pccs` feature); supply the collateral as a file"
        )))
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

/// The PCCS client behind [`fetch_collateral`]: blocking `ureq` over rustls (ring), mirroring
/// the requests and parsing of `dcap-qvl`'s `collateral` module (whose own client needs
/// `reqwest`, `tokio` and `aws-lc`).
#[cfg(feature = "pccs")]
mod pccs {
    use std::time::{Duration, Instant};

    use dcap_qvl::QuoteCollateralV3;
    use dcap_qvl::quote::Quote;
    use serde::Deserialize;
    use ureq::http::HeaderMap;
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};

    use super::PCCS_MAX_RESPONSE_BYTES;
    use crate::policy::parse_hex;
    use crate::{Error, Result};

    /// Intel's PCS: it has no `rootcacrl` endpoint, so the root CA CRL comes from the CRL
    /// distribution point of the root certificate.
    const INTEL_PCS_URL: &str = "https://api.trustedservices.intel.com";

    /// Certification data types (Intel DCAP): encrypted PPID (RSA-2048, RSA-3072), and the
    /// PCK certificate chain itself.
    const CERT_ENCRYPTED_PPID_2048: u16 = 2;
    const CERT_ENCRYPTED_PPID_3072: u16 = 3;
    const CERT_PCK_CHAIN: u16 = 5;

    /// Redirects followed per request.
    const MAX_REDIRECTS: u32 = 5;

    #[derive(Deserialize)]
    struct TcbInfoResponse {
        #[serde(rename = "tcbInfo")]
        tcb_info: serde_json::Value,
        signature: String,
    }

    #[derive(Deserialize)]
    struct QeIdentityResponse {
        #[serde(rename = "enclaveIdentity")]
        enclave_identity: serde_json::Value,
        signature: String,
    }

    /// A successful (2xx) response, its body read within the size limit.
    struct Fetched {
        url: String,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Fetched {
        /// The first of `names` present, URL-decoded (issuer chains arrive percent-encoded).
        fn header(&self, names: &[&str], what: &str) -> Result<String> {
            let fail = |m: String| {
                Error::Endorsements(format!(
                    "PCCS response for the {what} from {}: {m}",
                    self.url
                ))
            };
            let value = names
                .iter()
                .find_map(|name| self.headers.get(*name))
                .ok_or_else(|| fail(format!("header {} is missing", names.join(" or "))))?;
            let value = value
                .to_str()
                .map_err(|_| fail(format!("header {} is not ASCII", names.join(" or "))))?;
            urlencoding::decode(value)
                .map(|v| v.into_owned())
                .map_err(|e| {
                    fail(format!(
                        "header {} is not URL-encoded UTF-8: {e}",
                        names.join(" or ")
                    ))
                })
        }

        /// The body as UTF-8 text.
        fn text(&self, what: &str) -> Result<&str> {
            std::str::from_utf8(&self.body).map_err(|_| {
                Error::Endorsements(format!(
                    "PCCS response for the {what} from {} is not UTF-8 text",
                    self.url
                ))
            })
        }
    }

    /// One agent for all requests of a fetch, and the deadline they share (`None`: a timeout
    /// too long to represent, so none).
    struct Client {
        agent: ureq::Agent,
        deadline: Option<Instant>,
        timeout: Duration,
    }

    impl Client {
        fn new(timeout: Duration) -> Self {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(MAX_REDIRECTS)
                .build()
                .new_agent();
            Self {
                agent,
                deadline: Instant::now().checked_add(timeout),
                timeout,
            }
        }

        /// GETs `url`; anything but a 2xx response with a body within the limit, in time,
        /// is an error naming the URL and `what` was being fetched.
        fn get(&self, url: &str, what: &str) -> Result<Fetched> {
            let fail =
                |m: String| Error::Endorsements(format!("cannot fetch the {what} from {url}: {m}"));
            let remaining = match self.deadline {
                None => None,
                Some(deadline) => Some(
                    deadline
                        .checked_duration_since(Instant::now())
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            fail(format!(
                                "out of time ({:?} for the whole collateral)",
                                self.timeout
                            ))
                        })?,
                ),
            };
            let mut response = self
                .agent
                .get(url)
                .config()
                .timeout_global(remaining)
                .build()
                .call()
                .map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(fail(format!("HTTP {status}")));
            }
            let body = response
                .body_mut()
                .with_config()
                .limit(PCCS_MAX_RESPONSE_BYTES)
                .read_to_vec()
                .map_err(|e| match e {
                    ureq::Error::BodyExceedsLimit(_) => fail(format!(
                        "the response is larger than {PCCS_MAX_RESPONSE_BYTES} bytes"
                    )),
                    e => fail(e.to_string()),
                })?;
            Ok(Fetched {
                url: url.to_owned(),
                headers: response.headers().clone(),
                body,
            })
        }
    }

    /// The v4 API's URLs for one platform.
    struct Endpoints {
        base: String,
        tee: &'static str,
    }

    impl Endpoints {
        fn url(&self, tee: &str, path: &str) -> String {
            format!("{}/{tee}/certification/v4/{path}", self.base)
        }
    }

    /// The service's base URL, as `dcap-qvl` normalises it.
    fn base_url(pccs_url: &str) -> String {
        pccs_url
            .trim_end_matches('/')
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_owned()
    }

    pub(super) fn fetch(
        pccs_url: &str,
        quote: &[u8],
        timeout: Duration,
    ) -> Result<QuoteCollateralV3> {
        let parsed = Quote::parse(quote)
            .map_err(|e| Error::Malformed(format!("cannot parse DCAP quote: {e:#}")))?;
        let client = Client::new(timeout);
        let endpoints = Endpoints {
            base: base_url(pccs_url),
            tee: if parsed.header.is_sgx() { "sgx" } else { "tdx" },
        };

        let pck_chain = pck_chain(&client, &endpoints, &parsed)?;
        let (fmspc, ca) = fmspc_and_ca(&pck_chain)?;

        let pck_crl = client.get(
            &endpoints.url("sgx", &format!("pckcrl?ca={ca}&encoding=der")),
            "PCK CRL",
        )?;
        let pck_crl_issuer_chain = pck_crl.header(&["SGX-PCK-CRL-Issuer-Chain"], "PCK CRL")?;

        let tcb = client.get(
            &endpoints.url(endpoints.tee, &format!("tcb?fmspc={fmspc}&update=standard")),
            "TCB info",
        )?;
        let tcb_info_issuer_chain = tcb.header(
            &["SGX-TCB-Info-Issuer-Chain", "TCB-Info-Issuer-Chain"],
            "TCB info",
        )?;
        let tcb_response: TcbInfoResponse = parse_json(&tcb, "TCB info")?;

        let qe = client.get(
            &endpoints.url(endpoints.tee, "qe/identity?update=standard"),
            "QE identity",
        )?;
        let qe_identity_issuer_chain =
            qe.header(&["SGX-Enclave-Identity-Issuer-Chain"], "QE identity")?;
        let qe_response: QeIdentityResponse = parse_json(&qe, "QE identity")?;

        let root_ca_crl = root_ca_crl(&client, &endpoints, &qe_identity_issuer_chain)?;

        Ok(QuoteCollateralV3 {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl: pck_crl.body,
            tcb_info_issuer_chain,
            tcb_info: tcb_response.tcb_info.to_string(),
            tcb_info_signature: signature(&tcb_response.signature, &tcb, "TCB info")?,
            qe_identity_issuer_chain,
            qe_identity: qe_response.enclave_identity.to_string(),
            qe_identity_signature: signature(&qe_response.signature, &qe, "QE identity")?,
            pck_certificate_chain: Some(pck_chain),
        })
    }

    fn parse_json<T: for<'de> Deserialize<'de>>(fetched: &Fetched, what: &str) -> Result<T> {
        serde_json::from_slice(&fetched.body).map_err(|e| {
            Error::Endorsements(format!(
                "PCCS response for the {what} from {} is not the expected JSON: {e}",
                fetched.url
            ))
        })
    }

    fn signature(hex: &str, fetched: &Fetched, what: &str) -> Result<Vec<u8>> {
        parse_hex(hex).ok_or_else(|| {
            Error::Endorsements(format!(
                "PCCS response for the {what} from {}: the signature is not hex",
                fetched.url
            ))
        })
    }

    /// The quote's PCK certificate chain (PEM, leaf first): carried in the quote, or fetched
    /// with the encrypted PPID it carries instead.
    fn pck_chain(client: &Client, endpoints: &Endpoints, quote: &Quote) -> Result<String> {
        match quote.inner_cert_type() {
            CERT_PCK_CHAIN => Ok(String::from_utf8_lossy(quote.inner_cert_data()).into_owned()),
            CERT_ENCRYPTED_PPID_2048 | CERT_ENCRYPTED_PPID_3072 => {
                fetch_pck_certificate(client, endpoints, quote)
            }
            other => Err(Error::Malformed(format!(
                "DCAP quote: certification data type {other} is not supported for fetching \
                 collateral (expecting 5, a PCK certificate chain, or 2/3, an encrypted PPID)"
            ))),
        }
    }

    /// `pckcert` by encrypted PPID. A PCCS answers with the certificate of the best TCB level
    /// registered for the platform (`SGX-TCBm`); one for another level than the quote's means
    /// the platform's current TCB was never registered, and is refused as `dcap-qvl` does.
    fn fetch_pck_certificate(
        client: &Client,
        endpoints: &Endpoints,
        quote: &Quote,
    ) -> Result<String> {
        let params = quote
            .encrypted_ppid_params()
            .map_err(|e| Error::Malformed(format!("DCAP quote: {e:#}")))?;
        let upper = |bytes: &[u8]| crate::hex(bytes).to_ascii_uppercase();
        let url = endpoints.url(
            "sgx",
            &format!(
                "pckcert?qeid={}&encrypted_ppid={}&cpusvn={}&pcesvn={}&pceid={}",
                upper(quote.qeid()),
                upper(&params.encrypted_ppid),
                upper(&params.cpusvn),
                upper(&params.pcesvn.to_le_bytes()),
                upper(&params.pceid),
            ),
        );
        let what = "PCK certificate";
        let fetched = client.get(&url, what)?;
        if let Some(tcbm) = fetched.headers.get("SGX-TCBm") {
            let bad = || {
                Error::Endorsements(format!(
                    "PCCS response for the {what} from {url}: header SGX-TCBm is not 18 bytes of hex"
                ))
            };
            let tcbm = tcbm.to_str().ok().and_then(parse_hex).ok_or_else(bad)?;
            let (cpusvn, pcesvn) = match (tcbm.get(..16), tcbm.get(16..18), tcbm.len()) {
                (Some(cpusvn), Some(&[lo, hi]), 18) => (cpusvn, u16::from_le_bytes([lo, hi])),
                _ => return Err(bad()),
            };
            if cpusvn != params.cpusvn || pcesvn != params.pcesvn {
                return Err(Error::Endorsements(format!(
                    "the PCCS {} has no PCK certificate for the quote's TCB level (cpusvn {}, \
                     pcesvn {}), only for cpusvn {}, pcesvn {pcesvn}: the platform's current TCB \
                     was not registered with Intel (re-run MPA registration)",
                    endpoints.base,
                    crate::hex(&params.cpusvn),
                    params.pcesvn,
                    crate::hex(cpusvn),
                )));
            }
        }
        let issuer_chain = fetched.header(&["SGX-PCK-Certificate-Issuer-Chain"], what)?;
        let leaf = fetched.text(what)?;
        Ok(format!("{leaf}\n{issuer_chain}"))
    }

    /// DER of each certificate of a PEM chain, in order.
    fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
        x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
            .map_while(|p| p.ok())
            .filter(|p| p.label == "CERTIFICATE")
            .map(|p| p.contents)
            .collect()
    }

    /// FMSPC (upper-case hex) and PCK CA (`processor` / `platform`) of the chain's leaf.
    fn fmspc_and_ca(pck_chain: &str) -> Result<(String, &'static str)> {
        let certs = pem_certificates(pck_chain);
        let leaf = certs.first().ok_or_else(|| {
            Error::Malformed("DCAP quote: the PCK certificate chain holds no certificate".into())
        })?;
        let extension = dcap_qvl::intel::parse_pck_extension(leaf)
            .map_err(|e| Error::Malformed(format!("DCAP quote: PCK certificate: {e:#}")))?;
        let ca = dcap_qvl::intel::pck_ca(leaf)
            .map_err(|e| Error::Malformed(format!("DCAP quote: PCK certificate: {e:#}")))?;
        Ok((
            crate::hex(&extension.fmspc).to_ascii_uppercase(),
            ca.as_id_str(),
        ))
    }

    /// The root CA CRL: from the PCCS (hex), or else from the CRL distribution point of the
    /// root certificate ending the QE identity issuer chain (DER).
    fn root_ca_crl(
        client: &Client,
        endpoints: &Endpoints,
        qe_identity_issuer_chain: &str,
    ) -> Result<Vec<u8>> {
        let what = "root CA CRL";
        let mut pccs_failure = None;
        if !endpoints.base.starts_with(INTEL_PCS_URL) {
            match client.get(&endpoints.url("sgx", "rootcacrl"), what) {
                Ok(fetched) => {
                    // A PCCS serves the DER CRL hex-encoded.
                    return fetched.text(what).ok().and_then(parse_hex).ok_or_else(|| {
                        Error::Endorsements(format!(
                            "PCCS response for the {what} from {} is not hex",
                            fetched.url
                        ))
                    });
                }
                Err(e) => pccs_failure = Some(e),
            }
        }
        let fallback = || -> Result<Vec<u8>> {
            let certs = pem_certificates(qe_identity_issuer_chain);
            let root = certs.last().ok_or_else(|| {
                Error::Endorsements(format!(
                    "cannot locate the {what}: the QE identity issuer chain holds no certificate"
                ))
            })?;
            let url = crl_distribution_point(root).ok_or_else(|| {
                Error::Endorsements(format!(
                    "cannot locate the {what}: the root certificate of the QE identity issuer \
                     chain names no CRL distribution point"
                ))
            })?;
            Ok(client.get(&url, what)?.body)
        };
        fallback().map_err(|e| match pccs_failure {
            Some(first) => Error::Endorsements(format!("{first}; and then {e}")),
            None => e,
        })
    }

    /// The first URI of a certificate's CRL distribution points.
    fn crl_distribution_point(cert_der: &[u8]) -> Option<String> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
        cert.extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::CRLDistributionPoints(points) => {
                    points
                        .points
                        .iter()
                        .find_map(|point| match &point.distribution_point {
                            Some(DistributionPointName::FullName(names)) => {
                                names.iter().find_map(|name| match name {
                                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                                    _ => None,
                                })
                            }
                            _ => None,
                        })
                }
                _ => None,
            })
    }

    #[cfg(test)]
    mod tests {
        use super::base_url;

        #[test]
        fn normalises_the_base_url_as_dcap_qvl_does() {
            for url in [
                "https://pccs.example.com",
                "https://pccs.example.com/",
                "https://pccs.example.com/sgx/certification/v4",
                "https://pccs.example.com/tdx/certification/v4/",
            ] {
                assert_eq!(base_url(url), "https://pccs.example.com");
            }
        }
    }
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
