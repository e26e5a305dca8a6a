//! Attestation errors. Each names precisely what failed (which signature, which certificate,
//! which policy rule), because the CLI and the TLS handshake show it to the user.

/// Everything that can go wrong producing or checking evidence.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The evidence could not be parsed.
    #[error("malformed evidence: {0}")]
    Malformed(String),
    /// A signature, certificate chain, CRL or collateral check failed.
    #[error("evidence rejected: {0}")]
    Rejected(String),
    /// The evidence is genuine but the policy does not accept it.
    #[error("policy violation: {0}")]
    Policy(String),
    /// Endorsements needed for this backend were not supplied or are unusable.
    #[error("missing or unusable endorsements: {0}")]
    Endorsements(String),
    /// The platform interface for producing evidence failed or is absent.
    #[error("evidence generation failed: {0}")]
    Platform(String),
    /// I/O error with context.
    #[error("{0}")]
    Io(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
