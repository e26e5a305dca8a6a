//! Chiron's wire types: the enclave's API (`chiron.v1`: the owner's and the operator's
//! services, served over RA-TLS) and the untrusted host's API (`chiron.host.v1`: blobs and
//! status records). Generated from `proto/` at build time.
//!
//! Fields whose values depend on data, weights or the trainer are fixed-width in the protos, so
//! message sizes depend only on counts the parties already know.

#![forbid(unsafe_code)]

/// The enclave's API.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod enclave {
    tonic::include_proto!("chiron.v1");
}

/// The job policy (TOML) an owner sends with a job.
pub mod job;

/// The host's API.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod host {
    tonic::include_proto!("chiron.host.v1");
}
