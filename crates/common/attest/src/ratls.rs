//! RA-TLS: TLS 1.3 (rustls) whose certificates carry TEE evidence bound to the TLS key.
//!
//! An enclave makes a fresh P-256 key pair at start, asks its TEE for evidence whose report
//! data is SHA-512 of the key's DER SubjectPublicKeyInfo, and serves a self-signed certificate
//! carrying that evidence in an X.509 extension: the raw quote under Gramine's SGX OID
//! `1.2.840.113741.1337.6`, or, for the other backends, CBOR-tagged evidence under the TCG DICE
//! tagged-evidence OID `2.23.133.5.4.9`. A peer accepts the certificate only if (1) the evidence
//! verifies, (2) its report data is the hash of this certificate's key — so evidence copied onto
//! another key is refused — and (3) the policy accepts the claims; rustls then checks that the
//! handshake was signed by that key. One verifier type serves both directions, so mutual RA-TLS
//! between enclaves is the same code as an owner attesting an enclave.

use std::sync::Arc;

use ring::digest::{SHA512, digest};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::claims::{Backend, REPORT_DATA_LEN, VerifiedClaims};
use crate::evidence::{Endorsements, Evidence, EvidenceSource, verify_evidence};
use crate::policy::Policy;
use crate::{Error, Result};

/// Gramine's (legacy, non-standard) OID for a raw SGX quote.
pub const SGX_QUOTE_OID: &[u64] = &[1, 2, 840, 113741, 1337, 6];
/// TCG DICE tagged-evidence OID (also used by Gramine ≥ 1.8).
pub const TAGGED_EVIDENCE_OID: &[u64] = &[2, 23, 133, 5, 4, 9];

/// CBOR tags marking the backend of tagged evidence. Chiron-private values (ASCII "CH" then a
/// backend number), not registered with IANA; only Chiron peers read them.
const CBOR_TAG_SIM: u64 = 0x4348_0001;
const CBOR_TAG_TDX: u64 = 0x4348_0002;
const CBOR_TAG_SNP: u64 = 0x4348_0003;
const MAX_EVIDENCE: usize = 64 << 10;

/// The report data that binds evidence to a TLS key: SHA-512 of its DER SubjectPublicKeyInfo.
pub fn report_data_for_key(spki_der: &[u8]) -> [u8; REPORT_DATA_LEN] {
    let mut out = [0u8; REPORT_DATA_LEN];
    out.copy_from_slice(digest(&SHA512, spki_der).as_ref());
    out
}

/// An enclave's TLS identity: its key and its self-signed certificate carrying evidence.
pub struct RaTlsIdentity {
    certificate: CertificateDer<'static>,
    private_key_pkcs8: Zeroizing<Vec<u8>>,
}

impl RaTlsIdentity {
    /// Generates a key pair, obtains evidence over its hash from `source`, and builds the
    /// certificate. Ed25519: its signatures have one length, so the handshake's sizes are the
    /// same on every connection (ECDSA's DER signatures vary by a byte or two) and the traffic
    /// between enclaves is the same whatever the run.
    pub fn generate(source: &dyn EvidenceSource) -> Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| Error::Platform(format!("cannot generate the TLS key: {e}")))?;
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let evidence = source.evidence(&report_data_for_key(&spki))?;
        Self::with_evidence(key, &evidence)
    }

    /// Builds the certificate for `key` carrying `evidence` as given. Public so tests (and
    /// diagnostics) can build certificates with mismatched evidence; peers refuse those.
    pub fn with_evidence(key: rcgen::KeyPair, evidence: &Evidence) -> Result<Self> {
        let mut params = rcgen::CertificateParams::new(vec!["chiron-enclave".to_string()])
            .map_err(|e| Error::Platform(format!("certificate parameters: {e}")))?;
        params.custom_extensions.push(evidence_extension(evidence));
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::Platform(format!("cannot sign the certificate: {e}")))?;
        Ok(Self {
            certificate: cert.der().clone(),
            private_key_pkcs8: Zeroizing::new(key.serialize_der()),
        })
    }

    /// The DER certificate peers receive.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.private_key_pkcs8.to_vec()))
    }

    /// A TLS 1.3 server configuration presenting this identity. With `client_verifier`, clients
    /// must present RA-TLS certificates the verifier accepts (mutual RA-TLS).
    pub fn server_config(
        &self,
        client_verifier: Option<Arc<RaTlsVerifier>>,
    ) -> Result<ServerConfig> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_config_error)?;
        let builder = match client_verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(vec![self.certificate.clone()], self.key_der())
            .map_err(tls_config_error)?;
        // No session tickets: see `without_resumption`.
        config.send_tls13_tickets = 0;
        Ok(config)
    }

    /// A TLS 1.3 client configuration that presents this identity and verifies the server with
    /// `verifier` (the enclave-to-enclave direction).
    pub fn client_config(&self, verifier: Arc<RaTlsVerifier>) -> Result<ClientConfig> {
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_config_error)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![self.certificate.clone()], self.key_der())
            .map_err(tls_config_error)
            .map(without_resumption)
    }
}

/// A TLS 1.3 client configuration for a party outside any TEE (owner, operator): verifies the
/// server with `verifier`, presents no certificate.
pub fn client_config(verifier: Arc<RaTlsVerifier>) -> Result<ClientConfig> {
    Ok(without_resumption(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_config_error)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// Turns session resumption off: every RA-TLS connection is a full handshake.
///
/// A resumed session skips the server's certificate, so its evidence would go unchecked on that
/// connection; and every RA-TLS server is named [`server_name`], so a client holding a ticket
/// from one enclave offers it to the next, making its ClientHello larger (a pre-shared-key
/// extension, ~95 bytes) or not depending on whether the ticket had arrived yet: a size the
/// host sees that follows timing (the cluster's traffic test caught it). Servers send no
/// tickets either.
fn without_resumption(mut config: ClientConfig) -> ClientConfig {
    config.resumption = rustls::client::Resumption::disabled();
    config
}

/// The server name clients use for RA-TLS connections; identity comes from the evidence, not
/// the name, so it is fixed.
pub fn server_name() -> ServerName<'static> {
    ServerName::DnsName(
        rustls::pki_types::DnsName::try_from("chiron-enclave").unwrap_or_else(|_| {
            // A constant, valid DNS name: the fallback cannot be reached.
            unreachable!("\"chiron-enclave\" is a valid DNS name")
        }),
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config_error(e: rustls::Error) -> Error {
    Error::Platform(format!("TLS configuration: {e}"))
}

/// When "now" is for a verifier.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// The time rustls passes in (the system clock).
    System,
    /// A fixed Unix time, for tests and for reproducing a past decision.
    Fixed(u64),
}

/// Verifies peers' RA-TLS certificates against a policy; a rustls verifier for both the
/// client and the server side.
#[derive(Debug)]
pub struct RaTlsVerifier {
    policy: Policy,
    endorsements: Arc<Endorsements>,
    clock: Clock,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for Endorsements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endorsements")
            .field("dcap", &self.dcap.is_some())
            .field("snp", &self.snp.is_some())
            .finish()
    }
}

impl RaTlsVerifier {
    /// A verifier applying `policy`, with `endorsements` for hardware evidence.
    pub fn new(policy: Policy, endorsements: Endorsements) -> Self {
        Self {
            policy,
            endorsements: Arc::new(endorsements),
            clock: Clock::System,
            algorithms: provider().signature_verification_algorithms,
        }
    }

    /// The same verifier judging at a fixed time.
    pub fn at(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Checks a certificate as a handshake would: evidence genuine, bound to the certificate's
    /// key, accepted by the policy. Returns the peer's verified claims.
    pub fn verify_certificate(&self, cert: &[u8], now: u64) -> Result<VerifiedClaims> {
        let (evidence, spki) = evidence_from_certificate(cert)?;
        let claims = verify_evidence(&evidence, &self.endorsements, now)?;
        if claims.report_data != report_data_for_key(&spki) {
            return Err(Error::Rejected(
                "the evidence's report data is not the hash of this certificate's public key (evidence copied from another key?)".into(),
            ));
        }
        self.policy.check(&claims, now)?;
        Ok(claims)
    }

    fn now(&self, tls_now: UnixTime) -> u64 {
        match self.clock {
            Clock::System => tls_now.as_secs(),
            Clock::Fixed(t) => t,
        }
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if !intermediates.is_empty() {
            return Err(reject(Error::Rejected(
                "RA-TLS peers present one self-signed certificate, not a chain".into(),
            )));
        }
        self.verify_certificate(end_entity, self.now(now))
            .map(|_| ())
            .map_err(reject)
    }
}

fn reject(e: Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

impl ServerCertVerifier for RaTlsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for RaTlsVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// After a handshake: the claims of the peer's certificate (re-verified, so the answer never
/// depends on state kept between handshake and call).
pub fn peer_claims(
    verifier: &RaTlsVerifier,
    conn: &rustls::CommonState,
    now: u64,
) -> Result<VerifiedClaims> {
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| Error::Rejected("the peer presented no certificate".into()))?;
    verifier.verify_certificate(cert, now)
}

fn evidence_extension(evidence: &Evidence) -> rcgen::CustomExtension {
    let tag = match evidence.backend {
        Backend::Sgx => {
            return rcgen::CustomExtension::from_oid_content(SGX_QUOTE_OID, evidence.bytes.clone());
        }
        Backend::Sim => CBOR_TAG_SIM,
        Backend::Tdx => CBOR_TAG_TDX,
        Backend::SevSnp => CBOR_TAG_SNP,
    };
    let mut content = Vec::with_capacity(evidence.bytes.len() + 16);
    cbor_head(&mut content, 6, tag);
    cbor_head(&mut content, 2, evidence.bytes.len() as u64);
    content.extend_from_slice(&evidence.bytes);
    rcgen::CustomExtension::from_oid_content(TAGGED_EVIDENCE_OID, content)
}

/// Extracts the evidence and the DER SubjectPublicKeyInfo from an RA-TLS certificate.
pub fn evidence_from_certificate(cert: &[u8]) -> Result<(Evidence, Vec<u8>)> {
    let (rest, parsed) = X509Certificate::from_der(cert)
        .map_err(|e| Error::Malformed(format!("peer certificate is not valid X.509: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::Malformed(
            "trailing bytes after the peer certificate".into(),
        ));
    }
    let spki = parsed.tbs_certificate.subject_pki.raw.to_vec();
    let mut found = None;
    for ext in parsed.extensions() {
        let oid: Vec<u64> = ext.oid.iter().map(|i| i.collect()).unwrap_or_default();
        let evidence = if oid == SGX_QUOTE_OID {
            Evidence {
                backend: Backend::Sgx,
                bytes: ext.value.to_vec(),
            }
        } else if oid == TAGGED_EVIDENCE_OID {
            decode_tagged(ext.value)?
        } else {
            continue;
        };
        if found.is_some() {
            return Err(Error::Malformed(
                "the certificate carries more than one evidence extension".into(),
            ));
        }
        if evidence.bytes.len() > MAX_EVIDENCE {
            return Err(Error::Malformed("evidence larger than 64 KiB".into()));
        }
        found = Some(evidence);
    }
    let evidence = found.ok_or_else(|| {
        Error::Malformed(
            "the peer certificate carries no TEE evidence (not an RA-TLS certificate)".into(),
        )
    })?;
    Ok((evidence, spki))
}

fn decode_tagged(value: &[u8]) -> Result<Evidence> {
    let bad =
        || Error::Malformed("tagged evidence is not CBOR tag(backend) over a byte string".into());
    let (major, tag, rest) = cbor_read_head(value).ok_or_else(bad)?;
    if major != 6 {
        return Err(bad());
    }
    let backend = match tag {
        CBOR_TAG_SIM => Backend::Sim,
        CBOR_TAG_TDX => Backend::Tdx,
        CBOR_TAG_SNP => Backend::SevSnp,
        other => {
            return Err(Error::Malformed(format!(
                "unknown tagged-evidence CBOR tag {other}"
            )));
        }
    };
    let (major, len, bytes) = cbor_read_head(rest).ok_or_else(bad)?;
    if major != 2 || u64::try_from(bytes.len()).ok() != Some(len) {
        return Err(bad());
    }
    Ok(Evidence {
        backend,
        bytes: bytes.to_vec(),
    })
}

/// Appends a CBOR head (RFC 8949 §3): major type and argument, shortest form.
fn cbor_head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= u64::from(u8::MAX) {
        out.extend_from_slice(&[m | 24, arg as u8]);
    } else if arg <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Reads a CBOR head; returns (major type, argument, rest). Indefinite lengths are refused.
fn cbor_read_head(input: &[u8]) -> Option<(u8, u64, &[u8])> {
    let (&first, rest) = input.split_first()?;
    let major = first >> 5;
    let info = first & 0x1f;
    let (arg, rest) = match info {
        0..=23 => (u64::from(info), rest),
        24 => (u64::from(*rest.first()?), rest.get(1..)?),
        25 => (
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            rest.get(2..)?,
        ),
        26 => (
            u64::from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
            rest.get(4..)?,
        ),
        27 => (
            u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
            rest.get(8..)?,
        ),
        _ => return None,
    };
    Some((major, arg, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbor_heads_round_trip() {
        for arg in [
            0u64,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            cbor_head(&mut buf, 6, arg);
            buf.push(0xAA);
            let (m, a, rest) = cbor_read_head(&buf).unwrap();
            assert_eq!((m, a, rest), (6, arg, &[0xAA][..]));
        }
        assert!(
            cbor_read_head(&[0x5f]).is_none(),
            "indefinite length refused"
        );
        assert!(
            cbor_read_head(&[0x59, 0x01]).is_none(),
            "truncated head refused"
        );
    }
}
