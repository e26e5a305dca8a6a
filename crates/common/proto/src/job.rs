//! The job policy: what the owner allows a job to do and to show (TOML; the owner's CLI checks
//! it before sending, the enclave parses it again and is the authority). Example with every
//! field explained: `docs/config/job.toml`.

use std::time::Duration;

use serde::Deserialize;

use crate::vocab::MetricName;

/// How predictions are shaped before they leave the enclave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputPolicy {
    /// The top-1 label only.
    Label,
    /// The `k` most likely labels, best first.
    TopK(u32),
    /// Softmax probabilities of every class, rounded to `digits` decimal digits.
    Probabilities(u32),
}

impl OutputPolicy {
    /// The name used on the wire (`PredictReply.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            OutputPolicy::Label => "label",
            OutputPolicy::TopK(_) => "top-k",
            OutputPolicy::Probabilities(_) => "probabilities",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictionsFile {
    output: String,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    digits: Option<u32>,
    query_budget: u64,
    rate_per_second: f64,
    #[serde(default = "default_max_batch")]
    max_batch: u32,
    #[serde(default)]
    latency_ms: Option<std::collections::BTreeMap<String, u64>>,
}

fn default_max_batch() -> u32 {
    256
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    epochs: u32,
    batch_size: u32,
    seed: u64,
    #[serde(default)]
    hyper: std::collections::BTreeMap<String, f32>,
    max_steps: u64,
    wall_seconds: u64,
    #[serde(default = "default_report_steps")]
    report_steps: u32,
    #[serde(default)]
    checkpoint_interval_ms: Option<u64>,
    #[serde(default = "default_sealed_blob_mib")]
    sealed_blob_mib: u32,
    #[serde(default = "default_memory_mib")]
    memory_mib: u32,
    #[serde(default = "default_constant_cpu")]
    constant_cpu: bool,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default = "default_metric_points")]
    metric_points: u32,
    predictions: PredictionsFile,
    #[serde(default)]
    distributed: Option<DistributedFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistributedFile {
    workers: u32,
    #[serde(default)]
    backups: u32,
    #[serde(default = "default_mode")]
    mode: String,
    #[serde(default)]
    staleness: u64,
    #[serde(default)]
    step_interval_ms: u64,
}

fn default_mode() -> String {
    "sync".into()
}

/// How the workers of a distributed job combine their gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Synchronous rounds that may go without `backups` workers.
    Sync {
        /// Workers a round may go without.
        backups: u32,
    },
    /// Asynchronous: gradients from parameters up to `staleness` versions old are applied.
    Async {
        /// The staleness bound.
        staleness: u64,
    },
}

/// A distributed job: `workers` worker enclaves train shards, the enclave the owner submitted
/// to is their parameter server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DistributedPolicy {
    /// Worker enclaves (each trains one equal shard of the `train` split).
    pub workers: u32,
    /// How gradients combine.
    pub mode: SyncMode,
    /// Fixed sending interval of every step message, in milliseconds (0: as soon as a step is
    /// ready; the schedule is then fixed in messages but not in time).
    pub step_interval_ms: u64,
}

/// Most worker enclaves a job may ask for.
pub const MAX_WORKERS: u32 = 64;

fn default_report_steps() -> u32 {
    10
}

fn default_sealed_blob_mib() -> u32 {
    4
}

fn default_memory_mib() -> u32 {
    256
}

fn default_constant_cpu() -> bool {
    true
}

fn default_metric_points() -> u32 {
    16
}

/// Most points of one metric a status may carry (`metric_points`).
pub const MAX_METRIC_POINTS: u32 = 64;

/// Longest reply time a policy may declare for a prediction request, in milliseconds.
pub const MAX_PREDICT_LATENCY_MS: u64 = 600_000;

/// Reply time of a prediction request of up to `inputs` inputs when the policy declares none:
/// 50 ms and 3 ms per input (the demo's CNN answers 256 inputs in ~7 ms on two cores; `chiron
/// trainer test` reports a trainer's own times).
pub fn default_predict_latency(inputs: u32) -> Duration {
    Duration::from_millis(50 + 3 * u64::from(inputs))
}

/// The batch-size classes of the default latencies: these, up to `max_batch`, and `max_batch`.
const DEFAULT_LATENCY_CLASSES: [u32; 4] = [1, 8, 64, 512];

/// Largest `memory_mib` a policy may declare (the enclave's own `--max-train-mib` may be less).
pub const MAX_MEMORY_MIB: u32 = 1 << 20;

/// A checked job policy.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPolicy {
    /// Epochs the trainer is asked to run.
    pub epochs: u32,
    /// Batch size the trainer is asked to use.
    pub batch_size: u32,
    /// Seed of every random choice of the job.
    pub seed: u64,
    /// Hyper-parameters passed to the trainer, by name.
    pub hyper: Vec<(String, f32)>,
    /// Step budget: optimizer steps the engine allows.
    pub max_steps: u64,
    /// Wall-time budget of training, in seconds. Every job, successful or not, ends exactly
    /// when it is spent: that is when its model (or a dummy of the same size) is written and
    /// its status becomes final.
    pub wall_seconds: u64,
    /// Granularity of the progress anyone outside sees: `step k of report_steps`, the share of
    /// the wall budget that has elapsed.
    pub report_steps: u32,
    /// The runtime's checkpoint grid: a sealed checkpoint (the state the trainer last offered,
    /// or a dummy of the same size) is written every interval of the wall budget, and at no
    /// other time. Defaults to `wall_seconds / report_steps`.
    pub checkpoint_interval: Duration,
    /// Every sealed checkpoint and the sealed model are padded to this many MiB, so their sizes
    /// say nothing about the model or the reports; a larger one fails the job.
    pub sealed_blob_mib: u32,
    /// The job's engine memory, in MiB: its live tensors may take this much, and the enclave
    /// reserves it (with a margin) from its resident heap when the job starts; a job that
    /// does not fit then fails at once (`resources-unavailable`), never midway.
    pub memory_mib: u32,
    /// Keep the enclave's cores busy for the whole budget (lowest-priority spinning threads
    /// while the job runs), so the enclave's CPU time does not follow the trainer's work. On
    /// by default; `false` is for development (the host then sees when the trainer computes).
    pub constant_cpu: bool,
    /// Metrics the owner sees.
    pub metrics: Vec<MetricName>,
    /// Points of each metric the owner's status holds (the latest ones): every status reply
    /// has room for exactly this many per metric, filled or not, so its size does not say how
    /// many the trainer reported.
    pub metric_points: u32,
    /// The shape of predictions.
    pub output: OutputPolicy,
    /// Inputs the owner may ask predictions for, in all.
    pub query_budget: u64,
    /// Prediction requests per second (sustained; bursts up to one second's worth).
    pub rate_per_second: f64,
    /// Inputs per prediction request.
    pub max_batch: u32,
    /// When a prediction request is answered, by batch-size class: `(inputs, latency)` pairs,
    /// ascending, the last class at least `max_batch`. A request of `n` inputs is answered
    /// exactly the latency of the smallest class of at least `n` inputs after it arrived —
    /// with the answer, or with the one failure if the trainer failed or had not finished —
    /// so its timing says nothing about the model or the data. A latency of zero (for
    /// development and baselines only) answers as soon as the trainer has: the host then sees
    /// how long it took.
    pub predict_latency: Vec<(u32, Duration)>,
    /// For a distributed job: its workers and mode. Every worker sends exactly `max_steps`
    /// step messages (dummies once its trainer ended), so `max_steps` is also the job's length
    /// on the wire.
    pub distributed: Option<DistributedPolicy>,
}

/// Shortest checkpoint interval a policy may declare (each checkpoint seals and writes a
/// whole padded blob).
pub const MIN_CHECKPOINT_INTERVAL_MS: u64 = 100;

/// Longest policy text accepted.
pub const MAX_POLICY_BYTES: usize = 16 * 1024;

impl JobPolicy {
    /// The job's engine budget in bytes (`memory_mib`).
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_mib) << 20
    }

    /// Bytes every sealed checkpoint and model is padded to.
    pub fn sealed_blob_bytes(&self) -> usize {
        (self.sealed_blob_mib as usize) << 20
    }

    /// When a request of `inputs` inputs is answered, after it arrived (see
    /// [`Self::predict_latency`]); `None` above every class (more than `max_batch` inputs).
    pub fn predict_latency_for(&self, inputs: u32) -> Option<Duration> {
        self.predict_latency
            .iter()
            .find(|(class, _)| *class >= inputs)
            .map(|(_, latency)| *latency)
    }

    /// The declared wall-time budget.
    pub fn wall(&self) -> Duration {
        Duration::from_secs(self.wall_seconds)
    }

    /// Checkpoints the runtime writes in a whole budget: one per interval that ends strictly
    /// before the budget does (the end writes the model instead).
    pub fn checkpoint_ticks(&self) -> u64 {
        let interval = self.checkpoint_interval.as_millis().max(1);
        let wall = self.wall().as_millis();
        u64::try_from(wall.div_ceil(interval).saturating_sub(1)).unwrap_or(u64::MAX)
    }

    /// Parses and checks a policy; the error names the offending field.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(format!("job policy longer than {MAX_POLICY_BYTES} bytes"));
        }
        let f: PolicyFile =
            toml::from_str(text).map_err(|e| format!("job policy: {}", e.message()))?;
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("job policy: {what}"))
            }
        };
        check(
            (1..=100_000).contains(&f.epochs),
            "epochs must be 1..=100000",
        )?;
        check(
            (1..=65_536).contains(&f.batch_size),
            "batch_size must be 1..=65536",
        )?;
        check(f.max_steps >= 1, "max_steps must be at least 1")?;
        check(
            (1..=30 * 24 * 3600).contains(&f.wall_seconds),
            "wall_seconds must be 1..=2592000",
        )?;
        check(
            (1..=100).contains(&f.report_steps),
            "report_steps must be 1..=100",
        )?;
        check(
            (1..=MAX_MEMORY_MIB).contains(&f.memory_mib),
            &format!("memory_mib must be 1..={MAX_MEMORY_MIB}"),
        )?;
        check(f.hyper.len() <= 64, "at most 64 hyper-parameters")?;
        for (name, value) in &f.hyper {
            check(
                !name.is_empty() && name.len() <= 64 && value.is_finite(),
                "hyper-parameters need names of 1..=64 characters and finite values",
            )?;
        }
        let mut metrics = Vec::with_capacity(f.metrics.len());
        for m in &f.metrics {
            let known: Vec<&str> = MetricName::ALL.iter().map(|m| m.as_str()).collect();
            let name = MetricName::parse(m).ok_or_else(|| {
                format!(
                    "job policy: unknown metric {m:?} (known: {})",
                    known.join(", ")
                )
            })?;
            if !metrics.contains(&name) {
                metrics.push(name);
            }
        }
        check(
            (1..=MAX_METRIC_POINTS).contains(&f.metric_points),
            &format!("metric_points must be 1..={MAX_METRIC_POINTS}"),
        )?;
        let wall_ms = f.wall_seconds.saturating_mul(1000);
        let interval_ms = match f.checkpoint_interval_ms {
            Some(ms) => ms,
            None => (wall_ms / u64::from(f.report_steps)).max(MIN_CHECKPOINT_INTERVAL_MS),
        };
        check(
            (MIN_CHECKPOINT_INTERVAL_MS..=wall_ms).contains(&interval_ms),
            &format!(
                "checkpoint_interval_ms must be {MIN_CHECKPOINT_INTERVAL_MS}..=wall_seconds × 1000"
            ),
        )?;
        let p = &f.predictions;
        let output = match p.output.as_str() {
            "label" => OutputPolicy::Label,
            "top-k" => {
                let k = p.top_k.ok_or("job policy: output \"top-k\" needs top_k")?;
                check((1..=1000).contains(&k), "top_k must be 1..=1000")?;
                OutputPolicy::TopK(k)
            }
            "probabilities" => {
                let d = p
                    .digits
                    .ok_or("job policy: output \"probabilities\" needs digits")?;
                check(d <= 6, "digits must be 0..=6")?;
                OutputPolicy::Probabilities(d)
            }
            other => {
                return Err(format!(
                    "job policy: unknown output {other:?} (label, top-k or probabilities)"
                ));
            }
        };
        check(
            p.rate_per_second.is_finite() && p.rate_per_second > 0.0,
            "rate_per_second must be positive",
        )?;
        check(
            (1..=65_536).contains(&p.max_batch),
            "max_batch must be 1..=65536",
        )?;
        let predict_latency = predict_latency(p)?;
        let distributed = match &f.distributed {
            None => None,
            Some(d) => {
                check(
                    (1..=MAX_WORKERS).contains(&d.workers),
                    &format!("distributed.workers must be 1..={MAX_WORKERS}"),
                )?;
                check(
                    f.max_steps <= 10_000_000,
                    "max_steps of a distributed job must be at most 10000000 (every worker sends that many messages)",
                )?;
                check(
                    d.step_interval_ms <= 60_000,
                    "distributed.step_interval_ms must be at most 60000",
                )?;
                let mode = match d.mode.as_str() {
                    "sync" => {
                        check(
                            d.backups < d.workers,
                            "distributed.backups must be fewer than distributed.workers",
                        )?;
                        check(
                            d.staleness == 0,
                            "distributed.staleness is for mode \"async\"",
                        )?;
                        SyncMode::Sync { backups: d.backups }
                    }
                    "async" => {
                        check(d.backups == 0, "distributed.backups is for mode \"sync\"")?;
                        SyncMode::Async {
                            staleness: d.staleness,
                        }
                    }
                    other => {
                        return Err(format!(
                            "job policy: unknown distributed.mode {other:?} (sync or async)"
                        ));
                    }
                };
                Some(DistributedPolicy {
                    workers: d.workers,
                    mode,
                    step_interval_ms: d.step_interval_ms,
                })
            }
        };
        Ok(Self {
            distributed,
            epochs: f.epochs,
            batch_size: f.batch_size,
            seed: f.seed,
            hyper: f.hyper.into_iter().collect(),
            max_steps: f.max_steps,
            wall_seconds: f.wall_seconds,
            report_steps: f.report_steps,
            checkpoint_interval: Duration::from_millis(interval_ms),
            sealed_blob_mib: f.sealed_blob_mib,
            memory_mib: f.memory_mib,
            constant_cpu: f.constant_cpu,
            metrics,
            metric_points: f.metric_points,
            predict_latency,
            output,
            query_budget: p.query_budget,
            rate_per_second: p.rate_per_second,
            max_batch: p.max_batch,
        })
    }
}

/// The checked latency classes of `[predictions]` (see [`JobPolicy::predict_latency`]).
fn predict_latency(p: &PredictionsFile) -> Result<Vec<(u32, Duration)>, String> {
    let Some(declared) = &p.latency_ms else {
        let mut classes: Vec<u32> = DEFAULT_LATENCY_CLASSES
            .into_iter()
            .filter(|c| *c < p.max_batch)
            .collect();
        classes.push(p.max_batch);
        return Ok(classes
            .into_iter()
            .map(|c| (c, default_predict_latency(c)))
            .collect());
    };
    let mut classes = Vec::with_capacity(declared.len());
    for (inputs, ms) in declared {
        let n: u32 = inputs
            .parse()
            .ok()
            .filter(|n| (1..=p.max_batch).contains(n))
            .ok_or_else(|| {
                format!(
                    "job policy: predictions.latency_ms: class {inputs:?} must be a number of \
                     inputs, 1..=max_batch ({})",
                    p.max_batch
                )
            })?;
        if *ms > MAX_PREDICT_LATENCY_MS {
            return Err(format!(
                "job policy: predictions.latency_ms: {ms} ms for class {n} must be \
                 0..={MAX_PREDICT_LATENCY_MS}"
            ));
        }
        classes.push((n, Duration::from_millis(*ms)));
    }
    classes.sort_unstable();
    match classes.last() {
        Some((largest, _)) if *largest == p.max_batch => Ok(classes),
        _ => Err(format!(
            "job policy: predictions.latency_ms needs a class for max_batch ({}) inputs, e.g. \
             {{ {} = 500 }}",
            p.max_batch, p.max_batch
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"
epochs = 3
batch_size = 32
seed = 7
hyper = { lr = 0.01 }
max_steps = 1000
wall_seconds = 60
metrics = ["test-accuracy"]
[predictions]
output = "top-k"
top_k = 2
query_budget = 100
rate_per_second = 10
"#;

    #[test]
    fn parses_a_good_policy() {
        let p = JobPolicy::parse(GOOD).unwrap();
        assert_eq!(p.output, OutputPolicy::TopK(2));
        assert_eq!(p.hyper, vec![("lr".to_string(), 0.01)]);
        assert_eq!(p.report_steps, 10);
        assert_eq!(p.max_batch, 256);
        // The default grid: one checkpoint per reporting step, none at the end.
        assert_eq!(p.checkpoint_interval, Duration::from_secs(6));
        assert_eq!(p.checkpoint_ticks(), 9);
        let q =
            JobPolicy::parse(&GOOD.replace("seed = 7", "seed = 7\ncheckpoint_interval_ms = 7000"))
                .unwrap();
        assert_eq!(q.checkpoint_ticks(), 8);
        assert_eq!(p.distributed, None);
        let d = JobPolicy::parse(&format!(
            "{GOOD}[distributed]\nworkers = 4\nbackups = 1\nstep_interval_ms = 5\n"
        ))
        .unwrap();
        assert_eq!(
            d.distributed,
            Some(DistributedPolicy {
                workers: 4,
                mode: SyncMode::Sync { backups: 1 },
                step_interval_ms: 5
            })
        );
        let a = JobPolicy::parse(&format!(
            "{GOOD}[distributed]\nworkers = 2\nmode = \"async\"\nstaleness = 3\n"
        ))
        .unwrap();
        assert_eq!(
            a.distributed.map(|d| d.mode),
            Some(SyncMode::Async { staleness: 3 })
        );
    }

    #[test]
    fn memory_and_cpu_default_to_strict_and_are_checked() {
        let p = JobPolicy::parse(GOOD).unwrap();
        assert_eq!((p.memory_mib, p.memory_bytes()), (256, 256 << 20));
        assert!(p.constant_cpu);
        let relaxed = JobPolicy::parse(&GOOD.replace(
            "seed = 7",
            "seed = 7\nmemory_mib = 16\nconstant_cpu = false",
        ))
        .unwrap();
        assert_eq!((relaxed.memory_mib, relaxed.constant_cpu), (16, false));
        for bad in ["memory_mib = 0", "memory_mib = 1048577"] {
            let err = JobPolicy::parse(&GOOD.replace("seed = 7", &format!("seed = 7\n{bad}")))
                .unwrap_err();
            assert!(err.contains("memory_mib must be"), "{bad}: {err}");
        }
    }

    #[test]
    fn prediction_latencies_by_batch_class_default_and_are_checked() {
        let p = JobPolicy::parse(GOOD).unwrap();
        assert_eq!(p.metric_points, 16);
        // max_batch 256: the default classes below it, then max_batch itself.
        let classes: Vec<u32> = p.predict_latency.iter().map(|c| c.0).collect();
        assert_eq!(classes, [1, 8, 64, 256]);
        assert_eq!(p.predict_latency_for(1), Some(Duration::from_millis(53)));
        assert_eq!(
            p.predict_latency_for(9),
            Some(Duration::from_millis(50 + 3 * 64))
        );
        assert_eq!(
            p.predict_latency_for(256),
            Some(default_predict_latency(256))
        );
        assert_eq!(p.predict_latency_for(257), None);

        let declared = JobPolicy::parse(&GOOD.replace(
            "rate_per_second = 10",
            "rate_per_second = 10\nmax_batch = 64\nlatency_ms = { 64 = 300, 1 = 20 }",
        ))
        .unwrap();
        assert_eq!(
            declared.predict_latency,
            [
                (1, Duration::from_millis(20)),
                (64, Duration::from_millis(300))
            ]
        );
        assert_eq!(
            declared.predict_latency_for(2),
            Some(Duration::from_millis(300))
        );

        for (bad, needle) in [
            (
                "latency_ms = { 1 = 20 }",
                "needs a class for max_batch (64)",
            ),
            ("latency_ms = { 65 = 20, 64 = 10 }", "class \"65\""),
            ("latency_ms = { x = 20, 64 = 10 }", "class \"x\""),
            ("latency_ms = { 64 = 600001 }", "600001 ms for class 64"),
            ("latency_ms = {}", "needs a class"),
        ] {
            let e = JobPolicy::parse(&GOOD.replace(
                "rate_per_second = 10",
                &format!("rate_per_second = 10\nmax_batch = 64\n{bad}"),
            ))
            .unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        for bad in ["metric_points = 0", "metric_points = 65"] {
            let e = JobPolicy::parse(&GOOD.replace("seed = 7", &format!("seed = 7\n{bad}")))
                .unwrap_err();
            assert!(e.contains("metric_points must be"), "{bad}: {e}");
        }
    }

    #[test]
    fn distributed_errors_name_the_field() {
        for (table, needle) in [
            ("workers = 0", "distributed.workers"),
            ("workers = 2\nbackups = 2", "distributed.backups"),
            ("workers = 2\nmode = \"gossip\"", "distributed.mode"),
            ("workers = 2\nstaleness = 1", "distributed.staleness"),
            (
                "workers = 2\nmode = \"async\"\nbackups = 1",
                "distributed.backups",
            ),
            ("workers = 2\nstep_interval_ms = 100000", "step_interval_ms"),
        ] {
            let e = JobPolicy::parse(&format!("{GOOD}[distributed]\n{table}\n")).unwrap_err();
            assert!(e.contains(needle), "{table}: {e}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        for (from, to, needle) in [
            ("epochs = 3", "epochs = 0", "epochs"),
            ("\"test-accuracy\"", "\"weights\"", "unknown metric"),
            ("output = \"top-k\"", "output = \"raw\"", "unknown output"),
            ("top_k = 2", "", "needs top_k"),
            ("seed = 7", "seed = 7\nsurprise = 1", "surprise"),
            (
                "seed = 7",
                "seed = 7\ncheckpoint_interval_ms = 99",
                "checkpoint_interval_ms",
            ),
            (
                "seed = 7",
                "seed = 7\ncheckpoint_interval_ms = 60001",
                "checkpoint_interval_ms",
            ),
            (
                "rate_per_second = 10",
                "rate_per_second = 0",
                "rate_per_second",
            ),
        ] {
            let e = JobPolicy::parse(&GOOD.replace(from, to)).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }
}
