//! A whole service on loopback for the end-to-end tests: a host (in process) supervising the
//! real `chiron-enclave` binary (sim TEE), and the owner's and operator's calls over RA-TLS.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod cluster;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chiron_connect::{
    HostApi, Prediction, Settings, decode_predictions, encode_inputs, token_hash,
};
use chiron_data::Dataset;
use chiron_host::{EnclaveCommand, Host, HostConfig};
use chiron_proto::enclave::{
    JobRequest, JobStatusReply, ListJobsRequest, PredictReply, PredictRequest,
    RegisterTrainerRequest, ReleaseShareRequest, SubmitJobRequest,
};
use chiron_seal::{MasterKey, SealOptions};

pub const OWNER_TOKEN: [u8; 32] = [0x0a; 32];
pub const OPERATOR_TOKEN: [u8; 32] = [0x0b; 32];

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// A prebuilt trainer component from the sandbox fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join(format!(
        "crates/enclave/sandbox/tests/fixtures/{name}.component.wasm"
    )))
    .unwrap()
}

/// A Python trainer (a directory with `trainer.py`, relative to the repository root) built
/// with `chiron trainer build`'s library (reused while its inputs are unchanged); `None` (the
/// test is skipped) when componentize-py is not installed, unless
/// `CHIRON_REQUIRE_PYTHON_TRAINERS=1` (scripts/test.sh) makes that a failure.
pub fn python_trainer(dir: &str) -> Option<Vec<u8>> {
    let options = chiron_trainer_build::BuildOptions {
        jobs: None,
        quiet: true,
    };
    match chiron_trainer_build::build_trainer_with(&root().join(dir), &options) {
        Ok(out) => Some(std::fs::read(out).unwrap()),
        Err(e)
            if e.is_missing_tool()
                && std::env::var_os("CHIRON_REQUIRE_PYTHON_TRAINERS").is_none_or(|v| v != "1") =>
        {
            eprintln!("skipped: no componentize-py to build the Python trainer {dir}: {e}");
            None
        }
        Err(e) => panic!("cannot build the Python trainer {dir}: {e}"),
    }
}

/// UCI digits, `[1, 8, 8]`, 80/20 split with seed 42 (as `chiron demo`).
pub fn digits() -> Dataset {
    let opts = chiron_data::csv::CsvOptions {
        label_column: "64".into(),
        has_header: false,
        delimiter: b',',
        missing: chiron_data::csv::MissingPolicy::Error,
        value_map: vec![],
    };
    let mut d =
        chiron_data::csv::import(&[root().join("data/digits/digits.csv.gz")], &opts).unwrap();
    d.reshape(vec![1, 8, 8]).unwrap();
    d.split_by_fraction(0.2, 42).unwrap()
}

/// A dataset with digits' schema and split sizes but other values and labels.
pub fn other_digits() -> Dataset {
    let mut d = digits();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for split in &mut d.splits {
        match d.dtype {
            chiron_seal::Dtype::U8 => split
                .features
                .iter_mut()
                .for_each(|b| *b = (next() % 17) as u8),
            chiron_seal::Dtype::F32 => {
                for c in split.features.chunks_exact_mut(4) {
                    c.copy_from_slice(&((next() % 17) as f32).to_le_bytes());
                }
            }
        }
        split
            .labels
            .iter_mut()
            .for_each(|l| *l = (next() % 10) as u32);
    }
    d
}

/// A job policy with the given epochs, wall budget, output and metrics.
pub fn policy(epochs: u32, wall_seconds: u64, output: &str, metrics: &str) -> String {
    // Replies to predictions leave at fixed times: generous ones, for a loaded 2-core machine
    // running debug builds, unless the test declares its own.
    let latency = if output.contains("latency_ms") {
        ""
    } else {
        "latency_ms = { 8 = 300, 512 = 1000 }\n"
    };
    format!(
        "epochs = {epochs}\nbatch_size = 32\nseed = 42\nmax_steps = 1000000\n\
         wall_seconds = {wall_seconds}\nreport_steps = 10\nmemory_mib = 32\nmetrics = [{metrics}]\n\
         [predictions]\n{output}\nquery_budget = 100000\nrate_per_second = 1000\nmax_batch = 512\n{latency}"
    )
}

/// The parties' side of a service: where to reach it, the owner's master key, and the calls
/// the tests make.
pub struct Parties {
    pub settings: Settings,
    pub key: MasterKey,
}

/// A running service (its host in this process) and the parties' settings.
pub struct Service {
    pub host: Host,
    pub parties: Parties,
    pub work: tempfile::TempDir,
}

impl std::ops::Deref for Service {
    type Target = Parties;
    fn deref(&self) -> &Parties {
        &self.parties
    }
}

/// Enclave memory for tests (several enclaves run at once on a small machine): a 768 MiB
/// heap (512 MiB for jobs: six of the tests' `memory_mib = 32`) and six 32 MiB instance
/// slots, all resident from start-up as in production.
pub fn small_enclave() -> Vec<String> {
    [
        "--memory-mib",
        "768",
        "--guest-memory-mib",
        "32",
        "--instances",
        "6",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// The tests' host configuration: store and sim platform key in `work`, the enclave with
/// [`small_enclave`]'s arguments (those `extra` sets replaced) and `extra`.
pub fn host_config(work: &Path, extra: Vec<String>) -> HostConfig {
    HostConfig {
        api_listen: "127.0.0.1:0".into(),
        enclave_listen: "127.0.0.1:0".into(),
        metrics_listen: "127.0.0.1:0".into(),
        store: work.join("store").display().to_string(),
        enclave: EnclaveCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_chiron-enclave")),
            args: [
                "--platform-key".into(),
                work.join("platform.key").display().to_string(),
            ]
            .into_iter()
            .chain(
                // `extra` may set one of these itself (the enclave takes each option once).
                small_enclave()
                    .chunks(2)
                    .filter(|option| !extra.contains(&option[0]))
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .chain(extra)
            .collect(),
        },
        echo_log: std::env::var_os("CHIRON_TEST_ECHO").is_some(),
        shared_store: false,
        transcript_entries: chiron_host::transcript::DEFAULT_ENTRIES,
    }
}

impl Parties {
    /// The parties of a host whose API and relay listen at these addresses.
    pub fn new(api: std::net::SocketAddr, relay: std::net::SocketAddr, key: MasterKey) -> Self {
        Self {
            settings: Settings {
                host_api: format!("http://{api}"),
                enclave: relay.to_string(),
                attestation_policy: root().join("docs/policies/development-sim.toml"),
            },
            key,
        }
    }
}

impl Service {
    pub async fn start() -> Self {
        Self::start_with(tempfile::tempdir().unwrap(), Vec::new()).await
    }

    /// A service whose enclave gets `extra` arguments, with its store and sim platform key in
    /// `work`.
    pub async fn start_with(work: tempfile::TempDir, extra: Vec<String>) -> Self {
        let host = Host::start(host_config(work.path(), extra)).await.unwrap();
        let parties = Parties::new(
            host.api_addr,
            host.enclave_addr,
            MasterKey::generate().unwrap(),
        );
        Self {
            host,
            parties,
            work,
        }
    }

    /// The host transcript with ids and addresses replaced by placeholders.
    pub fn transcript(&self) -> Vec<String> {
        self.host
            .transcript()
            .texts()
            .iter()
            .map(|t| normalise(t))
            .collect()
    }
}

impl Parties {
    async fn channel(&self) -> tonic::transport::Channel {
        chiron_connect::enclave_channel(&self.settings.enclave, self.settings.verifier().unwrap())
            .await
            .unwrap()
    }

    pub async fn owner(&self) -> chiron_connect::OwnerClient<tonic::transport::Channel> {
        chiron_connect::owner(self.channel().await)
    }

    /// An owner connection through `relay` (an address forwarding to the host's relay).
    pub async fn owner_via(
        &self,
        relay: &str,
    ) -> chiron_connect::OwnerClient<tonic::transport::Channel> {
        chiron_connect::owner(
            chiron_connect::enclave_channel(relay, self.settings.verifier().unwrap())
                .await
                .unwrap(),
        )
    }

    pub async fn operator(&self) -> chiron_connect::OperatorClient<tonic::transport::Channel> {
        chiron_connect::operator(self.channel().await)
    }

    pub async fn register(&self, module: Vec<u8>) -> Result<String, tonic::Status> {
        self.operator()
            .await
            .register_trainer(RegisterTrainerRequest {
                module,
                operator_token_hash: token_hash(&OPERATOR_TOKEN),
            })
            .await
            .map(|r| r.into_inner().digest)
    }

    /// Seals `dataset`, uploads it, submits a job; returns the job id.
    pub async fn submit(&self, digest: &str, dataset: &Dataset, policy: &str) -> String {
        let (bytes, header) = dataset
            .seal(Vec::new(), &self.key, SealOptions::default(), |_| {})
            .unwrap();
        let blob = format!("datasets/{}", chiron_attest::hex(&header.dataset_id));
        HostApi::connect(&self.settings.host_api)
            .await
            .unwrap()
            .upload(&blob, &bytes)
            .await
            .unwrap();
        self.owner()
            .await
            .submit_job(SubmitJobRequest {
                trainer_digest: digest.to_string(),
                dataset_blob: blob,
                data_key: self
                    .key
                    .data_key(&header.dataset_id)
                    .unwrap()
                    .expose_secret()
                    .to_vec(),
                policy_toml: policy.to_string(),
                owner_share: vec![0x11; 32],
                owner_token_hash: token_hash(&OWNER_TOKEN),
            })
            .await
            .unwrap()
            .into_inner()
            .job_id
    }

    pub async fn release(&self, job: &str) {
        self.operator()
            .await
            .release_operator_share(ReleaseShareRequest {
                job_id: job.to_string(),
                operator_token: OPERATOR_TOKEN.to_vec(),
                share: vec![0x22; 32],
            })
            .await
            .unwrap();
    }

    pub async fn status(&self, job: &str) -> Result<JobStatusReply, tonic::Status> {
        // A connection may fail while the enclave restarts: reported as `unavailable`.
        let channel = chiron_connect::enclave_channel(
            &self.settings.enclave,
            self.settings.verifier().unwrap(),
        )
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        chiron_connect::owner(channel)
            .job_status(JobRequest {
                job_id: job.to_string(),
                owner_token: OWNER_TOKEN.to_vec(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Polls until the job is ready or failed (or `limit` passes).
    pub async fn wait(&self, job: &str, limit: Duration) -> JobStatusReply {
        let start = Instant::now();
        loop {
            if let Ok(reply) = self.status(job).await {
                let phase = reply
                    .status
                    .as_ref()
                    .map(|s| s.phase.clone())
                    .unwrap_or_default();
                if phase == "ready" || phase == "failed" {
                    return reply;
                }
            }
            assert!(
                start.elapsed() < limit,
                "job {job} did not finish in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn predict_raw(
        &self,
        job: &str,
        token: &[u8],
        count: u32,
        values: &[f32],
    ) -> Result<PredictReply, tonic::Status> {
        self.owner()
            .await
            .predict(PredictRequest {
                job_id: job.to_string(),
                owner_token: token.to_vec(),
                count,
                inputs: encode_inputs(values),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Predictions for every record of `split`.
    pub async fn predict_split(
        &self,
        job: &str,
        dataset: &Dataset,
        split: &str,
    ) -> Vec<Prediction> {
        let values = dataset.split_f32(split).unwrap();
        let n = dataset.split(split).unwrap().labels.len();
        let per = values.len() / n;
        let mut out = Vec::new();
        for chunk in values.chunks(per * 256) {
            let reply = self
                .predict_raw(job, &OWNER_TOKEN, (chunk.len() / per) as u32, chunk)
                .await
                .unwrap();
            out.extend(decode_predictions(&reply).unwrap());
        }
        out
    }

    pub async fn list_jobs(&self) -> Vec<chiron_proto::enclave::JobStatus> {
        self.job_list().await.jobs
    }

    /// The operator's whole `ListJobs` reply (jobs and damaged job blobs).
    pub async fn job_list(&self) -> chiron_proto::enclave::JobList {
        self.operator()
            .await
            .list_jobs(ListJobsRequest {
                operator_token: OPERATOR_TOKEN.to_vec(),
            })
            .await
            .unwrap()
            .into_inner()
    }
}

/// Replaces 32-hex-digit ids and loopback addresses (random per run) with placeholders.
pub fn normalise(line: &str) -> String {
    line.split(' ')
        .map(|token| {
            token
                .split('/')
                .map(|seg| {
                    let bare = seg.trim_end_matches(',');
                    if bare.len() == 32 && bare.bytes().all(|b| b.is_ascii_hexdigit()) {
                        seg.replace(bare, "<id>")
                    } else if bare.starts_with("127.0.0.1:") {
                        seg.replace(bare, "<addr>")
                    } else {
                        seg.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Top-1 accuracy of predictions against `split`'s labels.
pub fn accuracy(predictions: &[Prediction], dataset: &Dataset, split: &str) -> f64 {
    let labels = &dataset.split(split).unwrap().labels;
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p.best() == Some(**l))
        .count();
    correct as f64 / labels.len() as f64
}
