//! Attestation for Chiron: evidence that code runs as a given measurement inside a genuine TEE,
//! its verification against an explicit policy, attested TLS channels, and key release.
//!
//! One abstraction, several backends: an enclave produces [`Evidence`] over 64 bytes of report
//! data it chooses (the hash of its TLS public key, for RA-TLS); a verifier turns evidence plus
//! [`Endorsements`] (DCAP collateral, SEV-SNP certificates) into [`VerifiedClaims`] at an
//! explicit time, and a [`Policy`] decides whether those claims are enough.

#![forbid(unsafe_code)]

mod claims;
mod error;
mod evidence;
mod kdf;

pub mod dcap;
pub mod grant;
pub mod platform;
pub mod policy;
pub mod ratls;
pub mod sim;
pub mod snp;

pub use claims::{Backend, REPORT_DATA_LEN, TcbStatus, VerifiedClaims, hex};
pub use error::{Error, Result};
pub use evidence::{Endorsements, Evidence, EvidenceSource, verify, verify_evidence};
pub use policy::Policy;
