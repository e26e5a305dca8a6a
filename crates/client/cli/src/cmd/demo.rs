//! `chiron demo`: the whole service on one machine, on the embedded UCI digits data.
//!
//! Starts the untrusted host (blob store, enclave supervisor, relay, metrics) and a sim-TEE
//! enclave on loopback; as the owner, seals the real dataset and submits a job; as the operator,
//! registers the example `mlp` trainer and releases its key share; trains inside the sandbox;
//! predicts the held-out split through black-box queries; and prints, side by side, what the
//! owner saw and what the operator saw.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chiron_connect::Settings;
use chiron_data::csv::{CsvOptions, MissingPolicy};
use chiron_host::{EnclaveCommand, Host, HostConfig};
use chiron_proto::vocab::JobPhase;
use chiron_seal::{MasterKey, SealOptions, SealedDataset};
use clap::Args;
use serde_json::json;

use super::CliResult;
use super::dataset::{header_json, seal_to_path, split_summary};
use super::service;
use crate::ui::outln;

/// The embedded dataset: UCI optical digits as shipped by scikit-learn (BSD-3; see
/// data/digits/README.md). 1797 rows, 64 pixel columns then the label, no header.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../../../data/digits/digits.csv.gz");

/// The example `mlp` trainer (trainers/mlp), prebuilt as a component; regenerated with
/// crates/enclave/sandbox/tests/fixtures/rebuild.sh.
const MLP_TRAINER: &[u8] =
    include_bytes!("../../../../enclave/sandbox/tests/fixtures/mlp.component.wasm");

/// The demo's job policy and attestation policy (documented copies in docs/policies/).
const JOB_POLICY: &str = include_str!("../../../../../docs/config/job.toml");
pub(crate) const SIM_POLICY: &str =
    include_str!("../../../../../docs/policies/development-sim.toml");

/// Arguments of `chiron demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// Runs the demo in a fresh temporary directory.
pub fn run(args: &DemoArgs) -> CliResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

/// The `chiron-enclave` executable: `$CHIRON_ENCLAVE_BIN`, or next to this executable.
pub(crate) fn enclave_program() -> CliResult<PathBuf> {
    if let Some(p) = std::env::var_os("CHIRON_ENCLAVE_BIN") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::current_exe()?.with_file_name("chiron-enclave");
    if !path.exists() {
        return Err(format!(
            "{} not found: build it next to chiron (cargo build --release -p chiron-enclave) or set CHIRON_ENCLAVE_BIN",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// A host with a sim-TEE enclave on loopback, its store and keys under `work`, and the
/// parties' settings for it (the development attestation policy).
pub(crate) async fn start_local_service(work: &Path) -> CliResult<(Host, Settings)> {
    let host = Host::start(HostConfig {
        api_listen: "127.0.0.1:0".into(),
        enclave_listen: "127.0.0.1:0".into(),
        metrics_listen: "127.0.0.1:0".into(),
        store: work.join("host-store").display().to_string(),
        enclave: EnclaveCommand {
            program: enclave_program()?,
            args: vec![
                "--platform-key".into(),
                work.join("sim-platform.key").display().to_string(),
            ],
        },
        echo_log: false,
        shared_store: false,
        transcript_entries: chiron_host::transcript::DEFAULT_ENTRIES,
    })
    .await?;
    let policy_path = work.join("development-sim.toml");
    std::fs::write(&policy_path, SIM_POLICY)?;
    let settings = Settings {
        host_api: format!("http://{}", host.api_addr),
        enclave: host.enclave_addr.to_string(),
        attestation_policy: policy_path,
    };
    Ok((host, settings))
}

async fn run_async(args: &DemoArgs) -> CliResult {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let work = dir.path();
    let mut owner_saw: Vec<String> = Vec::new();

    section("owner: create a key, import and seal the embedded UCI digits data");
    let key_path = work.join("owner.key");
    let key = MasterKey::generate()?;
    key.write_new_file(&key_path)?;
    let csv_path = work.join("digits.csv.gz");
    std::fs::write(&csv_path, DIGITS_CSV_GZ)?;
    let opts = CsvOptions {
        label_column: "64".into(),
        has_header: false,
        delimiter: b',',
        missing: MissingPolicy::Error,
        value_map: vec![],
    };
    let mut dataset = chiron_data::csv::import(&[csv_path], &opts)?;
    dataset.reshape(vec![1, 8, 8])?;
    let dataset = dataset.split_by_fraction(0.2, 42)?;
    let sealed_path = work.join("digits.chd");
    let header = seal_to_path(&dataset, &key, SealOptions::default(), &sealed_path)?;
    let file_bytes = std::fs::metadata(&sealed_path)?.len();
    outln!(
        "  {} records ({}) -> {file_bytes} bytes sealed, key id {}",
        header.schema.total_records(),
        split_summary(&header),
        header.key_id
    );
    let header_bytes = header.encode().len() as u64;
    outln!(
        "  public header (all the host can read): {}",
        header_json(&header, header_bytes, file_bytes)
    );
    let tamper = tamper_is_detected(&sealed_path, &key, header_bytes)?;
    outln!(
        "  a flipped byte in a copy: {}",
        if tamper.0 { "rejected" } else { "NOT DETECTED" }
    );
    if !tamper.0 {
        return Err("a tampered dataset was accepted".into());
    }

    section("host: blob store, sim enclave under supervision, relay, metrics (loopback)");
    let (host, settings) = start_local_service(work).await?;
    outln!(
        "  api {}  enclave relay {}  metrics {}",
        host.api_addr,
        host.enclave_addr,
        host.metrics_addr
    );

    section("operator: register the mlp trainer over RA-TLS (sealed to the enclave)");
    let operator_token = service::token(&work.join("operator.token"))?;
    let digest = service::register(&settings, MLP_TRAINER.to_vec(), &operator_token).await?;
    outln!("  trainer digest {digest}");

    section("owner: upload the sealed dataset to the host, submit the job over RA-TLS");
    let owner_token = service::token(&work.join("owner.token"))?;
    let job = service::submit(
        &settings,
        &digest,
        &sealed_path,
        &key,
        JOB_POLICY,
        &owner_token,
    )
    .await?;
    outln!("  job {job} (policy: docs/config/job.toml)");
    owner_saw.push(format!("job {job}"));
    owner_saw.push(format!("trainer {}…", &digest[..16]));

    section("operator: list its jobs, release its share of the model key");
    let mut operator_saw = operator_list(&settings, &operator_token).await?;
    service::release(&settings, &job, &operator_token).await?;
    outln!("  share released; training starts");

    section("owner: follow the job");
    let train_started = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    let reply = loop {
        let reply = service::status(&settings, &job, &owner_token).await?;
        if let Some(s) = &reply.status {
            let line = format!(
                "status {} step {}/{}",
                s.phase, s.coarse_step, s.coarse_steps
            );
            if seen.last() != Some(&line) {
                outln!("  {line}");
                seen.push(line);
            }
            if JobPhase::parse(&s.phase).is_some_and(JobPhase::is_terminal) {
                break reply;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let train_seconds = train_started.elapsed().as_secs_f64();
    owner_saw.extend(seen);
    let status = reply.status.clone().unwrap_or_default();
    if JobPhase::parse(&status.phase) != Some(JobPhase::Ready) {
        return Err(format!("the job failed: {}", status.failure).into());
    }
    for m in &reply.metrics {
        owner_saw.push(format!("metric {} @{} = {:.4}", m.name, m.step, m.value));
    }
    operator_saw.extend(operator_list(&settings, &operator_token).await?);

    section("owner: black-box predictions for the held-out test split");
    let test = dataset
        .split("test")
        .ok_or("the demo dataset has no test split")?;
    let values = dataset
        .split_f32("test")
        .ok_or("the demo dataset has no test split")?;
    let predictions = service::predict(
        &settings,
        &job,
        &owner_token,
        &values,
        test.labels.len(),
        256,
    )
    .await?;
    let correct = predictions
        .iter()
        .zip(&test.labels)
        .filter(|(p, l)| p.best() == Some(**l))
        .count();
    let accuracy = correct as f64 / test.labels.len().max(1) as f64;
    outln!(
        "  {} queries answered ({} values each, output policy top-2); test accuracy {accuracy:.4}",
        predictions.len(),
        match predictions.first() {
            Some(chiron_connect::Prediction::TopK(k)) => k.len(),
            _ => 1,
        }
    );
    for (p, l) in predictions.iter().zip(&test.labels).take(3) {
        owner_saw.push(format!("prediction {p:?} (true {l})"));
    }
    owner_saw.push(format!(
        "test accuracy {accuracy:.4} ({correct}/{})",
        test.labels.len()
    ));

    operator_saw.extend(
        host.transcript()
            .texts()
            .into_iter()
            .map(|t| format!("host: {t}")),
    );
    let metrics = metrics_text(&host.metrics_addr.to_string()).await;
    operator_saw.extend(
        metrics
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("metric {l}")),
    );

    section("what each party saw");
    side_by_side(
        "OWNER",
        &owner_saw,
        "OPERATOR (enclave job list, host)",
        &operator_saw,
    );
    host.shutdown().await;

    let seconds = started.elapsed().as_secs_f64();
    let train = dataset.split("train").map_or(0, |s| s.labels.len());
    if args.json {
        outln!(
            "{}",
            json!({
                "test_accuracy": accuracy,
                "train_records": train,
                "test_records": test.labels.len(),
                "train_seconds": train_seconds,
                "sealed_bytes": file_bytes,
                "tamper_detected": tamper.0,
                "trainer_digest": digest,
                "seconds": seconds,
            })
        );
    } else {
        outln!("\ndone in {seconds:.1} s");
    }
    Ok(())
}

/// The operator's view of its jobs (the enclave's `ListJobs`), as lines.
async fn operator_list(settings: &Settings, token: &[u8; 32]) -> CliResult<Vec<String>> {
    let lines: Vec<String> = service::list_jobs(settings, token)
        .await?
        .jobs
        .iter()
        .map(|j| {
            format!(
                "list: job {}… {} step {}/{}",
                &j.job_id[..8.min(j.job_id.len())],
                j.phase,
                j.coarse_step,
                j.coarse_steps
            )
        })
        .collect();
    for l in &lines {
        outln!("  {l}");
    }
    Ok(lines)
}

/// The host's Prometheus text (empty if it cannot be fetched).
async fn metrics_text(addr: &str) -> String {
    let url = format!("http://{addr}/metrics");
    tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default()
}

/// Prints two columns.
fn side_by_side(left_title: &str, left: &[String], right_title: &str, right: &[String]) {
    const W: usize = 52;
    let clip = |s: &str| -> String {
        if s.chars().count() > W {
            let mut t: String = s.chars().take(W - 1).collect();
            t.push('…');
            t
        } else {
            s.to_string()
        }
    };
    outln!("  {:<W$} | {}", left_title, right_title);
    outln!("  {:-<W$}-+-{:-<W$}", "", "");
    for i in 0..left.len().max(right.len()) {
        let l = left.get(i).map_or(String::new(), |s| clip(s));
        let r = right.get(i).map_or(String::new(), |s| s.clone());
        outln!("  {l:<W$} | {r}");
    }
}

/// Flips one byte in the middle of the first chunk of a copy and verifies the copy.
fn tamper_is_detected(
    path: &Path,
    key: &MasterKey,
    header_bytes: u64,
) -> CliResult<(bool, String)> {
    let mut bytes = std::fs::read(path)?;
    let pos = header_bytes as usize + 1000;
    let Some(b) = bytes.get_mut(pos) else {
        return Err("sealed file unexpectedly small".into());
    };
    *b ^= 0x20;
    let result = SealedDataset::open(bytes, key).and_then(|d| d.verify(|_| {}));
    Ok(match result {
        Ok(_) => (false, String::new()),
        Err(e) => (true, e.to_string()),
    })
}

fn section(title: &str) {
    outln!("\n== {title}");
}
