//! `chiron bench predict`: what predictions cost through the whole service.
//!
//! Starts a host and a sim-TEE enclave on loopback (as `chiron demo` does), trains one job per
//! `--latency-ms` value on the same data with the same seed (so the models are the same), then
//! sends each job the same requests — `--batch` inputs each, `--concurrency` at a time — and
//! reports the latency the owner saw (p50, p90, p99), throughput, failures and the enclave's
//! resident memory. A latency of 0 is the policy that answers as soon as the trainer has (no
//! fixed reply time): the baseline the fixed times are compared with. With `--host-process` the
//! host runs as `chiron-host` in a process of its own, so its memory is measured apart from
//! this process's load generator.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chiron_connect::Settings;
use chiron_host::Host;
use chiron_proto::enclave::PredictRequest;
use chiron_proto::vocab::JobPhase;
use chiron_seal::{MasterKey, SealOptions};
use clap::{Args, Subcommand};
use serde_json::json;

use super::CliResult;
use super::dataset::seal_to_path;
use super::demo::{SIM_POLICY, enclave_program, start_local_service};
use super::service;
use crate::ui::outln;

/// The example `cnn` trainer (trainers/cnn), prebuilt as a component.
const CNN_TRAINER: &[u8] =
    include_bytes!("../../../../enclave/sandbox/tests/fixtures/cnn.component.wasm");

/// Benchmarks against a service started for the purpose.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Prediction latency and throughput, with and without fixed reply times.
    Predict(PredictBenchArgs),
}

/// Arguments of `chiron bench predict`.
#[derive(Args)]
pub struct PredictBenchArgs {
    /// An MNIST-style IDX folder (e.g. /usr/share/datasets/fashion-mnist).
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist")]
    idx: PathBuf,
    /// Training records kept (the model only has to answer, not to be good).
    #[arg(long, default_value_t = 2048)]
    train_records: usize,
    /// The trainer component; default: the example cnn.
    #[arg(long)]
    trainer: Option<PathBuf>,
    /// Each job's wall budget (it must cover the training).
    #[arg(long, default_value_t = 30)]
    wall_seconds: u64,
    /// Inputs per request.
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Requests per job, after 5 unmeasured ones.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Requests in flight at once (each client on its own connection).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Instead of --requests: send for this many seconds per job, and sample the enclave's and
    /// this process's (the host's) resident memory every 10 s.
    #[arg(long)]
    duration_seconds: Option<u64>,
    /// Fixed reply times to compare, in ms (one job each; 0: no fixed time).
    #[arg(long, num_args = 1.., default_values_t = [0, 50])]
    latency_ms: Vec<u64>,
    /// The jobs' `constant_cpu` policy: `true` (the default) runs each prediction confined, on
    /// a thread of its own with the cores kept busy; `false` shows what that costs.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    constant_cpu: bool,
    /// Run the host as `chiron-host` (found next to this program) in a process of its own, so
    /// the host's resident memory is sampled apart from this load generator's.
    #[arg(long)]
    host_process: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// Runs a benchmark.
pub fn run(command: BenchCommand) -> CliResult {
    match command {
        BenchCommand::Predict(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(predict(&args))
        }
    }
}

/// What one job's requests showed.
struct Measured {
    latency_ms: u64,
    /// Latencies the owner saw, sorted.
    seen: Vec<Duration>,
    failures: usize,
    seconds: f64,
    rss_kib: (u64, u64),
    /// (seconds into the run, enclave RSS KiB, host process RSS KiB), every 10 s; the host
    /// process is this one (host and load generator) unless `--host-process`.
    rss_over_time: Vec<(f64, u64, u64)>,
}

impl Measured {
    fn percentile(&self, p: f64) -> f64 {
        let i = ((self.seen.len() as f64 - 1.0) * p).round() as usize;
        self.seen.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
}

async fn predict(args: &PredictBenchArgs) -> CliResult {
    if args.latency_ms.is_empty() || args.requests == 0 || args.batch == 0 {
        return Err("give --latency-ms, and --requests and --batch above 0".into());
    }
    let dir = tempfile::tempdir()?;
    let work = dir.path();
    let key = MasterKey::generate()?;
    let mut dataset = chiron_data::idx::import(std::slice::from_ref(&args.idx))?;
    let bytes = dataset.feature_bytes();
    for split in &mut dataset.splits {
        if split.name == "train" {
            split.labels.truncate(args.train_records);
            split.features.truncate(split.labels.len() * bytes);
        }
    }
    let test = dataset
        .split_f32("test")
        .ok_or("the IDX data has no test split (t10k files)")?;
    let per_record = dataset.feature_bytes() / dataset.dtype.size();
    let sealed = work.join("data.chd");
    seal_to_path(&dataset, &key, SealOptions::default(), &sealed)?;

    let (host, settings) = if args.host_process {
        ServiceUnderLoad::start_process(work).await?
    } else {
        let (host, settings) = start_local_service(work).await?;
        (ServiceUnderLoad::InProcess(host), settings)
    };
    let trainer = match &args.trainer {
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        None => CNN_TRAINER.to_vec(),
    };
    let operator = service::token(&work.join("operator.token"))?;
    let owner = service::token(&work.join("owner.token"))?;
    let digest = service::register(&settings, trainer, &operator).await?;

    // One job per latency, trained at once (each on a thread of its own) from the same seed.
    let mut jobs = Vec::new();
    for &latency in &args.latency_ms {
        let policy = format!(
            "epochs = 1\nbatch_size = 64\nseed = 7\nmax_steps = 1000000\n\
             wall_seconds = {}\nmemory_mib = 512\nsealed_blob_mib = 16\nconstant_cpu = {}\n\
             [predictions]\noutput = \"label\"\n\
             query_budget = 100000000\nrate_per_second = 100000\nmax_batch = {}\n\
             latency_ms = {{ {} = {latency} }}\n",
            args.wall_seconds, args.constant_cpu, args.batch, args.batch
        );
        let job = service::submit(&settings, &digest, &sealed, &key, &policy, &owner).await?;
        service::release(&settings, &job, &operator).await?;
        jobs.push((latency, job));
    }
    eprintln!(
        "training {} job(s) for their {} s budget ...",
        jobs.len(),
        args.wall_seconds
    );
    for (_, job) in &jobs {
        loop {
            let reply = service::status(&settings, job, &owner).await?;
            let phase = reply.status.map(|s| (s.phase, s.failure));
            match phase.as_ref().and_then(|(p, _)| JobPhase::parse(p)) {
                Some(JobPhase::Ready) => break,
                Some(JobPhase::Failed) => {
                    let failure = phase.map(|(_, f)| f).unwrap_or_default();
                    return Err(format!("a job failed: {failure}").into());
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    let inputs: Vec<f32> = test
        .chunks(per_record)
        .cycle()
        .take(args.batch as usize)
        .flatten()
        .copied()
        .collect();
    let mut results = Vec::new();
    for (latency, job) in &jobs {
        let rss_before = enclave_rss_kib(&host);
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sampler = {
            let samples = samples.clone();
            let enclave = host.enclave_pid().map(|p| format!("/proc/{p}/status"));
            let host_status = host.status_path();
            tokio::spawn(async move {
                let start = Instant::now();
                loop {
                    let sample = (
                        start.elapsed().as_secs_f64(),
                        enclave.as_deref().map_or(0, rss_kib),
                        rss_kib(&host_status),
                    );
                    if let Ok(mut s) = samples.lock() {
                        s.push(sample);
                    }
                    tokio::time::sleep(RSS_SAMPLE_INTERVAL).await;
                }
            })
        };
        let loaded = load(&settings, job, &owner, &inputs, args).await;
        sampler.abort();
        let (seen, failures, seconds) = loaded?;
        let mut seen = seen;
        seen.sort();
        let mut rss_over_time = samples.lock().map(|s| s.clone()).unwrap_or_default();
        rss_over_time.push((
            seconds,
            enclave_rss_kib(&host),
            rss_kib(&host.status_path()),
        ));
        results.push(Measured {
            latency_ms: *latency,
            seen,
            failures,
            seconds,
            rss_kib: (rss_before, enclave_rss_kib(&host)),
            rss_over_time,
        });
    }
    host.shutdown().await;

    match args.duration_seconds {
        Some(secs) => outln!(
            "predictions of {} input(s) for {secs} s per job, {} at a time (owner's latency, ms)",
            args.batch,
            args.concurrency
        ),
        None => outln!(
            "predictions of {} input(s), {} requests, {} at a time (owner's latency, ms)",
            args.batch,
            args.requests,
            args.concurrency
        ),
    }
    outln!(
        "  {:>10} {:>8} {:>8} {:>8} {:>12} {:>9} {:>16}",
        "latency_ms",
        "p50",
        "p90",
        "p99",
        "inputs/s",
        "failures",
        "enclave RSS MiB"
    );
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|m| {
            let throughput = (m.seen.len() * args.batch as usize) as f64 / m.seconds;
            outln!(
                "  {:>10} {:>8.2} {:>8.2} {:>8.2} {:>12.0} {:>9} {:>7.0} → {:>6.0}",
                if m.latency_ms == 0 {
                    "none".to_string()
                } else {
                    m.latency_ms.to_string()
                },
                m.percentile(0.5),
                m.percentile(0.9),
                m.percentile(0.99),
                throughput,
                m.failures,
                m.rss_kib.0 as f64 / 1024.0,
                m.rss_kib.1 as f64 / 1024.0
            );
            json!({
                "latency_ms": m.latency_ms,
                "p50_ms": m.percentile(0.5),
                "p90_ms": m.percentile(0.9),
                "p99_ms": m.percentile(0.99),
                "inputs_per_s": throughput,
                "failures": m.failures,
                "rss_kib": [m.rss_kib.0, m.rss_kib.1],
                "rss_over_time": m.rss_over_time,
            })
        })
        .collect();
    if args.duration_seconds.is_some() {
        outln!("resident memory over each run (MiB; growth from the first sample)");
        for m in &results {
            let (Some(first), Some(last)) = (m.rss_over_time.first(), m.rss_over_time.last())
            else {
                continue;
            };
            let growth = |a: u64, b: u64| (b as f64 / a.max(1) as f64 - 1.0) * 100.0;
            outln!(
                "  latency {:>5}: enclave {:.0} → {:.0} ({:+.1} %), host {:.0} → {:.0} ({:+.1} %) \
                 over {:.0} s, {} samples",
                m.latency_ms,
                first.1 as f64 / 1024.0,
                last.1 as f64 / 1024.0,
                growth(first.1, last.1),
                first.2 as f64 / 1024.0,
                last.2 as f64 / 1024.0,
                growth(first.2, last.2),
                last.0,
                m.rss_over_time.len()
            );
        }
    }
    if args.json {
        outln!(
            "{}",
            json!({
                "batch": args.batch,
                "requests": args.requests,
                "concurrency": args.concurrency,
                "train_records": args.train_records,
                "results": rows,
            })
        );
    }
    Ok(())
}

/// Sends `args.requests` requests of `inputs` to `job`, `args.concurrency` at a time on as many
/// connections, after 5 unmeasured ones: the latencies, the failed replies and the seconds.
async fn load(
    settings: &Settings,
    job: &str,
    token: &[u8; 32],
    inputs: &[f32],
    args: &PredictBenchArgs,
) -> CliResult<(Vec<Duration>, usize, f64)> {
    let request = PredictRequest {
        job_id: job.to_string(),
        owner_token: token.to_vec(),
        count: args.batch,
        inputs: chiron_connect::encode_inputs(inputs),
    };
    let mut clients = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let channel =
            chiron_connect::enclave_channel(&settings.enclave, settings.verifier()?).await?;
        clients.push(chiron_connect::owner(channel));
    }
    if let Some(first) = clients.first_mut() {
        for _ in 0..5 {
            first
                .predict(request.clone())
                .await
                .map_err(chiron_connect::ConnectError::from)?;
        }
    }
    let per_client = match args.duration_seconds {
        Some(_) => usize::MAX,
        None => args.requests.div_ceil(clients.len()),
    };
    let started = Instant::now();
    let stop = args
        .duration_seconds
        .map(|s| started + Duration::from_secs(s));
    let mut tasks = tokio::task::JoinSet::new();
    for mut client in clients {
        let request = request.clone();
        tasks.spawn(async move {
            let mut seen = Vec::new();
            let mut failures = 0usize;
            for _ in 0..per_client {
                let sent = Instant::now();
                if stop.is_some_and(|s| sent >= s) {
                    break;
                }
                match client.predict(request.clone()).await {
                    Ok(reply) if reply.get_ref().failure.is_empty() => seen.push(sent.elapsed()),
                    _ => failures += 1,
                }
            }
            (seen, failures)
        });
    }
    let mut seen = Vec::new();
    let mut failures = 0;
    while let Some(done) = tasks.join_next().await {
        let (s, f) = done.map_err(|e| format!("a load task failed: {e}"))?;
        seen.extend(s);
        failures += f;
    }
    Ok((seen, failures, started.elapsed().as_secs_f64()))
}

/// How often `--duration-seconds` runs sample resident memory.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// The service the load goes to: the host in this process (as `chiron demo` runs it), or
/// `chiron-host` in a child process with its enclave.
enum ServiceUnderLoad {
    InProcess(Host),
    Process {
        host: tokio::process::Child,
        host_pid: u32,
    },
}

impl ServiceUnderLoad {
    /// Starts `chiron-host` (next to this program) on loopback ports it picks, as `chiron demo`
    /// configures its host, and reads the addresses it prints.
    async fn start_process(work: &Path) -> CliResult<(Self, Settings)> {
        use tokio::io::AsyncBufReadExt;
        let program = std::env::current_exe()?.with_file_name("chiron-host");
        if !program.exists() {
            return Err(format!(
                "{} not found: build it next to chiron (cargo build --release -p chiron-host)",
                program.display()
            )
            .into());
        }
        // Listen addresses default to loopback ports the host picks.
        let path_value = |p: &Path| toml::Value::from(p.display().to_string());
        let mut enclave = toml::Table::new();
        enclave.insert("program".into(), path_value(&enclave_program()?));
        let key = path_value(&work.join("sim-platform.key"));
        enclave.insert("args".into(), vec!["--platform-key".into(), key].into());
        let mut table = toml::Table::new();
        table.insert("store".into(), path_value(&work.join("host-store")));
        table.insert("enclave".into(), enclave.into());
        let config = work.join("host.toml");
        std::fs::write(&config, toml::to_string(&table)?)?;
        let mut child = tokio::process::Command::new(&program)
            .arg("--config")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let host_pid = child.id().ok_or("chiron-host exited at once")?;
        let stdout = child.stdout.take().ok_or("chiron-host has no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let (mut api, mut enclave) = (None, None);
        while api.is_none() || enclave.is_none() {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .map_err(|_| "chiron-host did not print its addresses within 60 s")??
                .ok_or("chiron-host exited before printing its addresses")?;
            if let Some(a) = line.strip_prefix("api ") {
                api = Some(a.to_string());
            } else if let Some(e) = line.strip_prefix("enclave ") {
                enclave = Some(e.to_string());
            }
        }
        // Nothing more is expected on standard output (the transcript echo goes to standard
        // error), but whatever comes is read, so the host never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let policy_path = work.join("development-sim.toml");
        std::fs::write(&policy_path, SIM_POLICY)?;
        let settings = Settings {
            host_api: format!("http://{}", api.unwrap_or_default()),
            enclave: enclave.unwrap_or_default(),
            attestation_policy: policy_path,
        };
        Ok((
            Self::Process {
                host: child,
                host_pid,
            },
            settings,
        ))
    }

    /// The enclave's process id, once it runs.
    fn enclave_pid(&self) -> Option<u32> {
        match self {
            Self::InProcess(host) => host.enclave_pid(),
            // The host's only child: listed by whichever of its threads started it.
            Self::Process { host_pid, .. } => std::fs::read_dir(format!("/proc/{host_pid}/task"))
                .ok()?
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
                .find_map(|children| children.split_whitespace().next()?.parse().ok()),
        }
    }

    /// The `/proc/…/status` file of the process the host runs in.
    fn status_path(&self) -> String {
        match self {
            Self::InProcess(_) => "/proc/self/status".to_string(),
            Self::Process { host_pid, .. } => format!("/proc/{host_pid}/status"),
        }
    }

    /// Stops the host and its enclave (which exits when the host's pipe to it closes).
    async fn shutdown(self) {
        match self {
            Self::InProcess(host) => host.shutdown().await,
            Self::Process { mut host, .. } => {
                let _ = host.kill().await;
            }
        }
    }
}

/// The enclave process's resident memory (`VmRSS`), or 0 if it cannot be read.
fn enclave_rss_kib(host: &ServiceUnderLoad) -> u64 {
    host.enclave_pid()
        .map_or(0, |pid| rss_kib(&format!("/proc/{pid}/status")))
}

/// `VmRSS` of a `/proc/<pid>/status` file, or 0 if it cannot be read.
fn rss_kib(status_path: &str) -> u64 {
    std::fs::read_to_string(status_path)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
