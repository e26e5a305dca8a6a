//! The owner's and the operator's calls to a running Chiron service: register a trainer,
//! submit a job, follow it, release the operator's share, list jobs, ask for predictions.
//!
//! Every call to the enclave goes over RA-TLS: the connection is refused unless the enclave's
//! evidence satisfies the attestation policy named in the settings file.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chiron_connect::{
    HostApi, Prediction, Settings, decode_predictions, encode_inputs, token_hash,
};
use chiron_proto::enclave::{
    JobList, JobRequest, JobStatusReply, ListJobsRequest, PredictRequest, RegisterTrainerRequest,
    ReleaseShareRequest, SubmitJobRequest,
};
use chiron_proto::job::JobPolicy;
use chiron_proto::vocab::JobPhase;
use chiron_seal::{MasterKey, SealedDataset};
use clap::Subcommand;
use serde_json::json;
use zeroize::Zeroizing;

use super::CliResult;
use crate::ui::outln;

/// Runs an async call on a fresh single-threaded runtime.
pub fn block_on<F: std::future::Future>(f: F) -> CliResult<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f))
}

/// Reads a 32-byte token file, creating it (mode 0600, random) if it does not exist.
pub fn token(path: &Path) -> CliResult<Zeroizing<[u8; 32]>> {
    match OpenOptions::new().read(true).open(path) {
        Ok(mut f) => {
            let mut buf = Zeroizing::new(Vec::new());
            f.read_to_end(&mut buf)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut t = Zeroizing::new([0u8; 32]);
            if buf.len() != 32 {
                return Err(format!("{} is not a 32-byte token file", path.display()).into());
            }
            t.copy_from_slice(&buf);
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = chiron_connect::random_secret()?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            f.write_all(t.as_ref())?;
            Ok(t)
        }
        Err(e) => Err(format!("cannot open {}: {e}", path.display()).into()),
    }
}

/// Service subcommands of the owner (`job submit | status`) and the operator
/// (`job list | release`).
#[derive(Subcommand)]
pub enum JobCommand {
    /// Owner: upload a sealed dataset to the host and start a job on a registered trainer.
    Submit {
        /// Connection settings (TOML; see docs/config/client.toml).
        #[arg(long)]
        connect: PathBuf,
        /// The trainer's digest (from the operator's `chiron trainer register`).
        #[arg(long)]
        trainer: String,
        /// The sealed dataset.
        #[arg(long)]
        data: PathBuf,
        /// The owner's master key the dataset is sealed under (only the dataset's data key is
        /// sent, to the attested enclave).
        #[arg(long)]
        key: PathBuf,
        /// The job policy (TOML; see docs/config/job.toml).
        #[arg(long)]
        policy: PathBuf,
        /// The owner's token file (created if missing).
        #[arg(long)]
        token_file: PathBuf,
    },
    /// Owner: a job's status and the metrics its policy allows; `--watch` follows it to the end.
    Status {
        /// Connection settings.
        #[arg(long)]
        connect: PathBuf,
        /// The job id.
        #[arg(long)]
        job: String,
        /// The owner's token file.
        #[arg(long)]
        token_file: PathBuf,
        /// Follow the job with a progress bar until it is ready or failed.
        #[arg(long)]
        watch: bool,
    },
    /// Operator: every job of the operator's trainers, exactly as the operator may see it.
    List {
        /// Connection settings.
        #[arg(long)]
        connect: PathBuf,
        /// The operator's token file.
        #[arg(long)]
        token_file: PathBuf,
    },
    /// Operator: release the operator's share of a job's model key (training starts).
    Release {
        /// Connection settings.
        #[arg(long)]
        connect: PathBuf,
        /// The job id.
        #[arg(long)]
        job: String,
        /// The operator's token file.
        #[arg(long)]
        token_file: PathBuf,
    },
}

/// Runs a job subcommand.
pub fn run(command: JobCommand) -> CliResult {
    block_on(run_async(command))?
}

async fn run_async(command: JobCommand) -> CliResult {
    match command {
        JobCommand::Submit {
            connect,
            trainer,
            data,
            key,
            policy,
            token_file,
        } => {
            let settings = Settings::load(&connect)?;
            let key = super::keygen::read_key(&key)?;
            let policy = std::fs::read_to_string(&policy)
                .map_err(|e| format!("cannot read {}: {e}", policy.display()))?;
            let token = token(&token_file)?;
            let id = submit(&settings, &trainer, &data, &key, &policy, &token).await?;
            outln!("{id}");
            Ok(())
        }
        JobCommand::Status {
            connect,
            job,
            token_file,
            watch,
        } => {
            let settings = Settings::load(&connect)?;
            let token = token(&token_file)?;
            let reply = if watch {
                watch_job(&settings, &job, &token).await?
            } else {
                status(&settings, &job, &token).await?
            };
            print_status(&reply);
            Ok(())
        }
        JobCommand::List {
            connect,
            token_file,
        } => {
            let settings = Settings::load(&connect)?;
            let token = token(&token_file)?;
            let list = list_jobs(&settings, &token).await?;
            for j in &list.jobs {
                // The operator sees public phases only: `finished`, never the outcome.
                outln!(
                    "{}  {:<8} step {}/{}",
                    j.job_id,
                    j.phase,
                    j.coarse_step,
                    j.coarse_steps
                );
            }
            for d in &list.damaged {
                outln!(
                    "{}  damaged ({}): {}",
                    d.job_id,
                    d.reason,
                    d.blobs.join(" ")
                );
            }
            Ok(())
        }
        JobCommand::Release {
            connect,
            job,
            token_file,
        } => {
            let settings = Settings::load(&connect)?;
            let token = token(&token_file)?;
            release(&settings, &job, &token).await?;
            outln!("released the operator's share for job {job}");
            Ok(())
        }
    }
}

/// Operator: registers a trainer component; returns its digest.
pub async fn register(settings: &Settings, module: Vec<u8>, token: &[u8; 32]) -> CliResult<String> {
    let mut op = chiron_connect::operator(
        chiron_connect::enclave_channel(&settings.enclave, settings.verifier()?).await?,
    );
    Ok(op
        .register_trainer(RegisterTrainerRequest {
            module,
            operator_token_hash: token_hash(token),
        })
        .await
        .map_err(chiron_connect::ConnectError::from)?
        .into_inner()
        .digest)
}

/// Operator: every job of its trainers, as the enclave shows them to it, and the job blobs at
/// the host that no job accounts for.
pub async fn list_jobs(settings: &Settings, token: &[u8; 32]) -> CliResult<JobList> {
    let mut op = chiron_connect::operator(
        chiron_connect::enclave_channel(&settings.enclave, settings.verifier()?).await?,
    );
    Ok(op
        .list_jobs(ListJobsRequest {
            operator_token: token.to_vec(),
        })
        .await
        .map_err(chiron_connect::ConnectError::from)?
        .into_inner())
}

/// Operator: releases a fresh random share for `job`.
pub async fn release(settings: &Settings, job: &str, token: &[u8; 32]) -> CliResult {
    let share = chiron_connect::random_secret()?;
    let mut op = chiron_connect::operator(
        chiron_connect::enclave_channel(&settings.enclave, settings.verifier()?).await?,
    );
    op.release_operator_share(ReleaseShareRequest {
        job_id: job.to_string(),
        operator_token: token.to_vec(),
        share: share.to_vec(),
    })
    .await
    .map_err(chiron_connect::ConnectError::from)?;
    Ok(())
}

/// Owner: uploads `data` and submits a job; returns the job id.
pub async fn submit(
    settings: &Settings,
    trainer: &str,
    data: &Path,
    key: &MasterKey,
    policy: &str,
    token: &[u8; 32],
) -> CliResult<String> {
    // Check the policy here too, so a mistake is named before anything is uploaded.
    JobPolicy::parse(policy)?;
    let bytes = std::fs::read(data).map_err(|e| format!("cannot read {}: {e}", data.display()))?;
    let (header, _) = SealedDataset::read_header(&bytes)?;
    if header.key_id != key.id()? {
        return Err(format!("{} is not sealed under this key", data.display()).into());
    }
    // A matching key id is not proof: authenticate the sealed class names and the first chunk,
    // so a damaged file or a wrong key fails here, before the upload and the job.
    SealedDataset::open(bytes.as_slice(), key)
        .and_then(|d| d.check_key())
        .map_err(|e| format!("{} does not open under this key: {e}", data.display()))?;
    let data_key = key.data_key(&header.dataset_id)?;
    let blob = format!("datasets/{}", chiron_attest::hex(&header.dataset_id));
    HostApi::connect(&settings.host_api)
        .await?
        .upload(&blob, &bytes)
        .await?;
    let share = chiron_connect::random_secret()?;
    let mut owner = chiron_connect::owner(
        chiron_connect::enclave_channel(&settings.enclave, settings.verifier()?).await?,
    );
    Ok(owner
        .submit_job(SubmitJobRequest {
            trainer_digest: trainer.to_string(),
            dataset_blob: blob,
            data_key: data_key.expose_secret().to_vec(),
            policy_toml: policy.to_string(),
            owner_share: share.to_vec(),
            owner_token_hash: token_hash(token),
        })
        .await
        .map_err(chiron_connect::ConnectError::from)?
        .into_inner()
        .job_id)
}

/// Owner: one status call.
pub async fn status(settings: &Settings, job: &str, token: &[u8; 32]) -> CliResult<JobStatusReply> {
    let mut owner = chiron_connect::owner(
        chiron_connect::enclave_channel(&settings.enclave, settings.verifier()?).await?,
    );
    Ok(owner
        .job_status(JobRequest {
            job_id: job.to_string(),
            owner_token: token.to_vec(),
        })
        .await
        .map_err(chiron_connect::ConnectError::from)?
        .into_inner())
}

/// Owner: polls until the job is ready or failed, with a progress bar; returns the last reply
/// and every distinct (phase, step) seen.
pub async fn watch_job(
    settings: &Settings,
    job: &str,
    token: &[u8; 32],
) -> CliResult<JobStatusReply> {
    let pb = crate::ui::bar(10, "training", "steps");
    loop {
        let reply = status(settings, job, token).await?;
        if let Some(s) = &reply.status {
            pb.set_length(u64::from(s.coarse_steps));
            pb.set_position(u64::from(s.coarse_step));
            if JobPhase::parse(&s.phase).is_some_and(JobPhase::is_terminal) {
                pb.finish_and_clear();
                return Ok(reply);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints a status reply for the owner.
pub fn print_status(reply: &JobStatusReply) {
    if let Some(s) = &reply.status {
        outln!(
            "job {}  {}  step {}/{}{}  trainer {}",
            s.job_id,
            s.phase,
            s.coarse_step,
            s.coarse_steps,
            if s.failure.is_empty() {
                String::new()
            } else {
                format!("  failure {}", s.failure)
            },
            s.trainer_digest
        );
    }
    for m in &reply.metrics {
        outln!("  step {:>6}  {:<15} {:.4}", m.step, m.name, m.value);
    }
}

/// Owner: predictions for `count` records given as f32 values, in batches of `batch`.
pub async fn predict(
    settings: &Settings,
    job: &str,
    token: &[u8; 32],
    values: &[f32],
    count: usize,
    batch: usize,
) -> CliResult<Vec<Prediction>> {
    if count == 0 || !values.len().is_multiple_of(count) {
        return Err("inputs do not split into records of one size".into());
    }
    let per = values.len() / count;
    let mut owner = chiron_connect::owner(
        chiron_connect::enclave_channel(&settings.enclave, settings.verifier()?).await?,
    );
    let mut out = Vec::with_capacity(count);
    for chunk in values.chunks(per * batch.max(1)) {
        let reply = owner
            .predict(PredictRequest {
                job_id: job.to_string(),
                owner_token: token.to_vec(),
                count: (chunk.len() / per) as u32,
                inputs: encode_inputs(chunk),
            })
            .await
            .map_err(chiron_connect::ConnectError::from)?
            .into_inner();
        out.extend(decode_predictions(&reply)?);
    }
    Ok(out)
}

/// Prints predictions, one line per input, or one JSON object: [`render_predictions`].
pub fn print_predictions(
    names: &[String],
    predictions: &[Prediction],
    class_names: &[String],
    as_json: bool,
) {
    outln!(
        "{}",
        render_predictions(names, predictions, class_names, as_json)
    );
}

/// Predictions as text, one line per input (`input<TAB>answer`), or as one JSON object. With the
/// dataset's class names (from the owner's sealed header) a line shows names; the JSON object
/// carries both the label numbers and the names.
pub fn render_predictions(
    names: &[String],
    predictions: &[Prediction],
    class_names: &[String],
    as_json: bool,
) -> String {
    // A label the names do not cover (a names list from another dataset) shows as its number.
    let class = |l: u32| -> String {
        class_names
            .get(l as usize)
            .cloned()
            .unwrap_or_else(|| l.to_string())
    };
    if as_json {
        let named = !class_names.is_empty();
        let rows: Vec<serde_json::Value> = names
            .iter()
            .zip(predictions)
            .map(|(n, p)| match p {
                Prediction::Label(l) if named => {
                    json!({"input": n, "label": l, "class": class(*l)})
                }
                Prediction::Label(l) => json!({"input": n, "label": l}),
                Prediction::TopK(k) if named => json!({
                    "input": n,
                    "top_k": k,
                    "top_k_classes": k.iter().map(|&l| class(l)).collect::<Vec<_>>(),
                }),
                Prediction::TopK(k) => json!({"input": n, "top_k": k}),
                Prediction::Probabilities(v) => json!({"input": n, "probabilities": v}),
            })
            .collect();
        let mut out = json!({ "predictions": rows });
        if named {
            out["class_names"] = json!(class_names);
        }
        return out.to_string();
    }
    let lines: Vec<String> = names
        .iter()
        .zip(predictions)
        .map(|(n, p)| {
            let answer = match p {
                Prediction::Label(l) => class(*l),
                Prediction::TopK(k) => k.iter().map(|&l| class(l)).collect::<Vec<_>>().join(", "),
                Prediction::Probabilities(v) => v
                    .iter()
                    .enumerate()
                    .map(|(l, p)| format!("{} {p}", class(l as u32)))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            format!("{n}\t{answer}")
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic in a test is a failed test

    use super::*;

    #[test]
    fn predictions_show_class_names_and_json_carries_both() {
        let inputs = ["a.png".to_string(), "b.png".to_string()];
        let labels = [Prediction::Label(1), Prediction::Label(0)];
        let names = ["cat".to_string(), "dog".to_string()];
        assert_eq!(
            render_predictions(&inputs, &labels, &names, false),
            "a.png\tdog\nb.png\tcat"
        );
        // Without names, the numbers.
        assert_eq!(
            render_predictions(&inputs, &labels, &[], false),
            "a.png\t1\nb.png\t0"
        );
        let v: serde_json::Value =
            serde_json::from_str(&render_predictions(&inputs, &labels, &names, true)).unwrap();
        assert_eq!(
            v["predictions"][0],
            json!({"input": "a.png", "label": 1, "class": "dog"})
        );
        assert_eq!(v["class_names"], json!(["cat", "dog"]));
        let v: serde_json::Value =
            serde_json::from_str(&render_predictions(&inputs, &labels, &[], true)).unwrap();
        assert_eq!(v["predictions"][1], json!({"input": "b.png", "label": 0}));
        assert!(v.get("class_names").is_none());

        let top = [Prediction::TopK(vec![1, 0])];
        assert_eq!(
            render_predictions(&inputs[..1], &top, &names, false),
            "a.png\tdog, cat"
        );
        let v: serde_json::Value =
            serde_json::from_str(&render_predictions(&inputs[..1], &top, &names, true)).unwrap();
        assert_eq!(v["predictions"][0]["top_k_classes"], json!(["dog", "cat"]));
        let probs = [Prediction::Probabilities(vec![0.25, 0.75])];
        assert_eq!(
            render_predictions(&inputs[..1], &probs, &names, false),
            "a.png\tcat 0.25, dog 0.75"
        );
        // A label past the names (names of another dataset) shows as its number.
        assert_eq!(
            render_predictions(&inputs[..1], &[Prediction::Label(7)], &names, false),
            "a.png\t7"
        );
    }
}
