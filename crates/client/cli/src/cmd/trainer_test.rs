//! `chiron trainer test` (feature `dev`): trains and evaluates a trainer module.
//!
//! It runs the exact runtime path the enclave uses (sealed reader, engine, sandbox, limits)
//! outside any enclave, on data the operator may read (public or synthetic data of the owner's
//! schema), with confinement of outputs relaxed — full logs, failure texts, per-epoch metrics —
//! and says so loudly. It is never to be pointed at a data owner's private data.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chiron_engine::{Engine, EngineConfig, RecordSource, SealedRecords};
use chiron_sandbox::{
    Metric, Sandbox, SandboxLimits, TensorData, TrainConfig, run_predict, run_train,
};
use chiron_seal::SealedDataset;
use clap::Args;
use serde_json::json;

use super::CliResult;
use crate::ui::outln;

/// Records per prediction call in the final evaluation.
const EVAL_BATCH: usize = 256;

/// Arguments of `chiron trainer test`.
#[derive(Args)]
pub struct TestArgs {
    /// The trainer component (from `chiron trainer build`).
    #[arg(long)]
    trainer: PathBuf,
    /// A sealed dataset with `train` and `test` splits.
    #[arg(long)]
    data: PathBuf,
    /// The key the dataset is sealed under.
    #[arg(long)]
    key: PathBuf,
    /// Epochs (the example trainers stop earlier on large datasets once a held-out tenth
    /// stops improving; see their docs).
    #[arg(long, default_value_t = 100)]
    epochs: u32,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: u32,
    /// Seed of every random choice (initialisation, shuffles, dropout, augmentation).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A hyper-parameter for the trainer, NAME=VALUE (repeatable).
    #[arg(long, value_parser = parse_hyper)]
    hyper: Vec<(String, f32)>,
    /// Wall-clock budget of training, in seconds.
    #[arg(long, default_value_t = 3600)]
    wall_seconds: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

fn parse_hyper(s: &str) -> Result<(String, f32), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let value: f32 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    Ok((name.trim().to_string(), value))
}

/// Runs `chiron trainer test` again in a child process with the enclave process's malloc
/// settings (`chiron_host::supervisor::ENCLAVE_MALLOC_TUNABLES`) when this process started
/// without any `GLIBC_TUNABLES`: glibc reads them only at start-up, and without them every
/// training step page-faults its activation buffers afresh (measured on Fashion-MNIST: a
/// quarter of the CPU time in the kernel). The test then also times what the enclave would.
/// `None`: run in this process (tunables already set, or the child could not be started).
pub fn rerun_with_enclave_malloc() -> Option<std::process::ExitCode> {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return None;
    }
    let exe = std::env::current_exe().ok()?;
    let status = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(
            "GLIBC_TUNABLES",
            chiron_host::supervisor::ENCLAVE_MALLOC_TUNABLES,
        )
        .status()
        .ok()?;
    Some(match status.code().and_then(|c| u8::try_from(c).ok()) {
        Some(code) => std::process::ExitCode::from(code),
        None => std::process::ExitCode::FAILURE,
    })
}

/// Runs `chiron trainer test`.
pub fn run(args: &TestArgs) -> CliResult {
    test(&TestRun {
        trainer: &args.trainer,
        data: &args.data,
        key: &args.key,
        config: TrainConfig {
            epochs: args.epochs,
            batch_size: args.batch_size,
            hyper: args.hyper.clone(),
            wall_budget: Duration::from_secs(args.wall_seconds),
        },
        seed: args.seed,
        json: args.json,
    })
}

/// The failure of `trainer test`, with a hint where the code alone would leave an operator
/// guessing: a shape refused by a trainer that needs images, on records that are not.
fn training_failed(code: &str, record_shape: &[u32]) -> String {
    let mut text = format!("training failed: {code}");
    if code.ends_with("invalid-shape") && record_shape.len() != 3 {
        text.push_str(&format!(
            " (the records have shape {record_shape:?}; image trainers such as cnn and resnet \
             need image-shaped records C,H,W — seal with `--shape C,H,W` if the features are \
             pixels, or use a trainer for flat features such as mlp)"
        ));
    }
    text
}

struct TestRun<'a> {
    trainer: &'a Path,
    data: &'a Path,
    key: &'a Path,
    config: TrainConfig,
    seed: u64,
    json: bool,
}

fn test(args: &TestRun<'_>) -> CliResult {
    eprintln!(
        "WARNING: operator test mode — runs outside any enclave with outputs unconfined (logs, failure texts, metrics). Use only on data you are allowed to read."
    );
    let key = super::keygen::read_key(args.key)?;
    let dataset = SealedDataset::open_path(args.data, &key)?;
    let records = Arc::new(SealedRecords::preload(&dataset)?);
    let schema = records.schema();
    let test_split = schema
        .splits
        .iter()
        .find(|(name, _)| name == "test")
        .map(|(_, n)| *n)
        .ok_or("the dataset has no `test` split to evaluate on (seal with --test-fraction)")?;

    let module_bytes = std::fs::read(args.trainer)
        .map_err(|e| format!("cannot read {}: {e}", args.trainer.display()))?;
    let sandbox = Sandbox::new(SandboxLimits {
        debug_log: true,
        // A Python trainer's prints and tracebacks, on the operator's terminal.
        console_bytes: 1 << 20,
        // Compiled as the enclave compiles: in a child, so the steps timed below run on a heap
        // the compiler never fragmented.
        compile_child: Some(chiron_sandbox::compile_child::OWN_EXECUTABLE.into()),
        // What the trainer's own code costs per step, apart from the engine's work.
        time_guest: true,
        ..SandboxLimits::default()
    })?;
    let compiling = Instant::now();
    let module = sandbox.load(&module_bytes)?;
    let compile_seconds = compiling.elapsed().as_secs_f64();
    let fresh_instance_ms = fresh_instance_median(&module)?.as_secs_f64() * 1e3;
    outln!("trainer digest {}", module.digest_hex());
    outln!(
        "component {:.1} MB, compiled in {compile_seconds:.1} s (once per registration); a fresh \
         instance takes {fresh_instance_ms:.3} ms (one per prediction request)",
        module_bytes.len() as f64 / 1e6
    );

    let engine = Engine::new(EngineConfig {
        seed: args.seed,
        max_live_bytes: 8 << 30,
        max_tensors: 1_000_000,
        max_steps: u64::MAX,
    })
    .with_data(records.clone());
    let started = Instant::now();
    // The whole run inside the engine's pool, on one of its workers: this process runs one
    // job, so no other job's work can land inside its operations (the hazard
    // `chiron_engine::thread_pool` names), and each operation runs inline instead of waking
    // the workers from outside (a few per cent faster on the reference CNN).
    let train = || run_train(&module, engine, &args.config);
    let outcome = match chiron_engine::thread_pool() {
        Some(pool) => pool.install(train),
        None => train(),
    }
    .map_err(|code| training_failed(code.as_str(), &schema.shape))?;
    let train_seconds = started.elapsed().as_secs_f64();
    for point in &outcome.metrics {
        outln!(
            "step {:>7}  {:<15} {:.5}",
            point.step,
            metric_name(point.metric),
            point.value
        );
    }
    outln!(
        "trained: {} optimizer steps in {train_seconds:.1} s ({} progress reports)",
        outcome.steps_taken,
        outcome.progress.len()
    );
    let per_step = StepTimes::of(outcome.time_split.as_ref(), outcome.steps_taken);
    if let Some(t) = &per_step {
        outln!(
            "per optimizer step: {:.3} ms in the trainer's own code, {:.3} ms in {:.1} engine \
             calls; median {:.3} ms between progress reports",
            t.guest_ms,
            t.host_ms,
            t.host_calls,
            t.progress_interval_median_ms
        );
    }
    let model = outcome
        .model
        .ok_or("the trainer finished without saving a model")?;

    let model_digest = chiron_codec::hex(&model.digest());
    outln!("model digest {model_digest} (equal digests: bit-identical weights)");
    let eval = evaluate(&module, &model, records.as_ref(), &schema.shape, test_split)?;
    let (correct, total) = (eval.correct, eval.total);
    let accuracy = correct as f64 / total.max(1) as f64;
    outln!("test accuracy {accuracy:.4} ({correct}/{total})");
    let single_ms = eval.worst_single.as_secs_f64() * 1e3;
    let batch_ms = eval.worst_batch.as_secs_f64() * 1e3;
    outln!(
        "prediction time, worst seen: {single_ms:.1} ms for 1 input, {batch_ms:.1} ms for {} \
         inputs (one thread, as in the service): set the job policy's [predictions] latency_ms \
         above these, with a margin",
        eval.batch
    );
    if args.json {
        outln!(
            "{}",
            json!({
                "test_accuracy": accuracy,
                "epochs": args.config.epochs,
                "train_seconds": train_seconds,
                "steps": outcome.steps_taken,
                "parameters": outcome.optimized_values,
                "test_records": total,
                "predict_worst_ms_single": single_ms,
                "predict_worst_ms_batch": batch_ms,
                "predict_batch": eval.batch,
                "trainer_digest": module.digest_hex(),
                "model_digest": model_digest,
                "component_bytes": module_bytes.len(),
                "compile_seconds": compile_seconds,
                "fresh_instance_ms": fresh_instance_ms,
                "guest_ms_per_step": per_step.as_ref().map(|t| t.guest_ms),
                "host_ms_per_step": per_step.as_ref().map(|t| t.host_ms),
                "host_calls_per_step": per_step.as_ref().map(|t| t.host_calls),
                "progress_interval_median_ms": per_step.as_ref().map(|t| t.progress_interval_median_ms),
            })
        );
    }
    Ok(())
}

/// A training run's time per optimizer step, split at the sandbox boundary (the whole run's
/// guest and host time, evaluation passes included, over its steps).
struct StepTimes {
    guest_ms: f64,
    host_ms: f64,
    host_calls: f64,
    /// Median wall time between progress reports (the example trainers report every step): a
    /// step's time that a burst of other load on the machine hardly moves.
    progress_interval_median_ms: f64,
}

impl StepTimes {
    fn of(split: Option<&chiron_sandbox::TimeSplit>, steps: u64) -> Option<Self> {
        let split = split?;
        if steps == 0 {
            return None;
        }
        let steps = steps as f64;
        let mut intervals = split.progress_intervals.clone();
        intervals.sort();
        let median = intervals
            .get(intervals.len() / 2)
            .copied()
            .unwrap_or_default();
        Some(Self {
            guest_ms: split.guest.as_secs_f64() * 1e3 / steps,
            host_ms: split.host.as_secs_f64() * 1e3 / steps,
            host_calls: split.host_calls as f64 / steps,
            progress_interval_median_ms: median.as_secs_f64() * 1e3,
        })
    }
}

/// What [`evaluate`] found: correct top-1 answers of the `test` split, and the slowest
/// prediction seen for one input and for a batch.
struct Evaluation {
    correct: u64,
    total: u64,
    worst_single: Duration,
    worst_batch: Duration,
    /// Inputs of the largest batch timed.
    batch: usize,
}

/// The median of 51 fresh instances of `module` (store, instance, drop): what each prediction
/// request pays before the trainer's code runs.
fn fresh_instance_median(module: &chiron_sandbox::TrainerModule) -> CliResult<Duration> {
    let mut times = (0..51)
        .map(|_| chiron_sandbox::measure_fresh_instance(module))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|code| format!("the trainer does not instantiate: {code}"))?;
    times.sort();
    Ok(times[times.len() / 2])
}

/// Records of the `test` split also predicted one by one, for the single-input time.
const TIMED_SINGLES: usize = 32;

/// Predicts the whole `test` split through fresh sandbox instances, as the enclave's prediction
/// service would (one thread per request, as a confined job's), counts correct top-1 answers
/// and times the requests.
fn evaluate(
    module: &chiron_sandbox::TrainerModule,
    model: &chiron_sandbox::SavedModel,
    records: &dyn RecordSource,
    shape: &[u32],
    test_records: u64,
) -> CliResult<Evaluation> {
    let predict = |chunk: &[u64]| -> CliResult<(chiron_sandbox::TensorData, Vec<f32>, Duration)> {
        let mut features = Vec::new();
        let mut labels = Vec::new();
        records
            .gather("test", chunk, &mut features, &mut labels)
            .map_err(|e| format!("reading test records: {e}"))?;
        let mut input_shape = vec![chunk.len() as u32];
        input_shape.extend_from_slice(shape);
        let input = TensorData {
            shape: input_shape,
            values: features,
        };
        let started = Instant::now();
        let scores = chiron_engine::on_this_thread(|| run_predict(module, model, &input))
            .map_err(|code| format!("prediction failed: {}", code.as_str()))?;
        Ok((scores, labels, started.elapsed()))
    };
    let indices: Vec<u64> = (0..test_records).collect();
    let mut worst_single = Duration::ZERO;
    for one in indices.chunks(1).take(TIMED_SINGLES) {
        worst_single = worst_single.max(predict(one)?.2);
    }
    let mut worst_batch = Duration::ZERO;
    let mut correct = 0u64;
    for chunk in indices.chunks(EVAL_BATCH) {
        let (scores, labels, took) = predict(chunk)?;
        worst_batch = worst_batch.max(took);
        let classes = match scores.shape.as_slice() {
            [n, c] if *n as usize == chunk.len() && *c > 0 => *c as usize,
            other => {
                return Err(format!(
                    "predict returned shape {other:?}, expected [{}, classes]",
                    chunk.len()
                )
                .into());
            }
        };
        for (row, &label) in scores.values.chunks_exact(classes).zip(&labels) {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            if best as f32 == label {
                correct += 1;
            }
        }
    }
    Ok(Evaluation {
        correct,
        total: test_records,
        worst_single,
        worst_batch,
        batch: EVAL_BATCH.min(indices.len()),
    })
}

/// The metric's name in the one vocabulary every side uses (`chiron_proto::vocab`).
fn metric_name(m: Metric) -> &'static str {
    use chiron_proto::vocab::MetricName;
    match m {
        Metric::TrainLoss => MetricName::TrainLoss,
        Metric::TrainAccuracy => MetricName::TrainAccuracy,
        Metric::TestLoss => MetricName::TestLoss,
        Metric::TestAccuracy => MetricName::TestAccuracy,
        Metric::LearningRate => MetricName::LearningRate,
    }
    .as_str()
}
