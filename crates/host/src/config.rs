//! The host's configuration (TOML; example with every field in `docs/config/host.toml`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::HostError;

/// How to launch the enclave process.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveCommand {
    /// The `chiron-enclave` executable (or a TEE loader such as `gramine-sgx`).
    pub program: PathBuf,
    /// Its arguments. The host appends `--host-api http://ADDR` (its API address); the enclave
    /// prints `listening ADDR` on standard output once it serves.
    #[serde(default)]
    pub args: Vec<String>,
}

/// Everything the host needs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Address of the host API (blobs, status; plaintext gRPC). Port 0 picks a free port.
    #[serde(default = "loopback_any")]
    pub api_listen: String,
    /// Address parties connect to; connections are relayed to the enclave.
    #[serde(default = "loopback_any")]
    pub enclave_listen: String,
    /// Address of the Prometheus endpoint (`GET /metrics`).
    #[serde(default = "loopback_any")]
    pub metrics_listen: String,
    /// Blob storage: a local directory path (or `file:///abs/path`), or `s3://bucket/prefix`
    /// (build with the `s3` feature; credentials from the usual `AWS_*` variables).
    pub store: String,
    /// The enclave process.
    pub enclave: EnclaveCommand,
    /// Also print the transcript's log lines on standard error.
    #[serde(default)]
    pub echo_log: bool,
    /// Share the store with other hosts: only for hosts of worker enclaves, which read
    /// datasets and keep no jobs. Without it the host claims the store (a local directory) for
    /// itself and refuses to start while another host holds it.
    #[serde(default)]
    pub shared_store: bool,
    /// Transcript entries kept in memory (the oldest are dropped first; the echo on standard
    /// error, if on, has them all).
    #[serde(default = "default_transcript_entries")]
    pub transcript_entries: usize,
}

fn default_transcript_entries() -> usize {
    crate::transcript::DEFAULT_ENTRIES
}

fn loopback_any() -> String {
    "127.0.0.1:0".into()
}

impl HostConfig {
    /// Reads and checks a TOML configuration file.
    pub fn load(path: &Path) -> Result<Self, HostError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HostError::Config(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text)
            .map_err(|e| HostError::Config(format!("{}: {}", path.display(), e.message())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_documented_example_parses_and_unknown_fields_are_refused() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config/host.toml");
        let c = HostConfig::load(&example).unwrap();
        assert_eq!(c.api_listen, "127.0.0.1:7100");
        assert_eq!(c.enclave.args[0], "--tee");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "store = \"x\"\nsurprise = 1\n[enclave]\nprogram = \"e\"\n",
        )
        .unwrap();
        let e = HostConfig::load(&bad).unwrap_err().to_string();
        assert!(e.contains("surprise"), "{e}");
    }
}
