//! `engine-bench`: the reference CNN of the engine issue trained natively through the
//! `chiron-engine` API and through the sandbox (the `bench-refcnn` trainer component calling
//! the engine through the `chiron:trainer` world), plus prediction latency and throughput both
//! ways. Prints one JSON object on stdout; `bench/engine.sh` adds the PyTorch reference, the
//! table and the ratios.
//!
//! Fairness: both ways run the *same calls* on the *same engine*, with the same seed, on data
//! sealed with `chiron-seal` and served through the data interface (`SealedRecords`, the
//! runtime's path): the guest calls `data.batch`, the native loop calls `Engine::batch`. The
//! parameters are created in the same order from the same generator, so the two runs compute
//! the same model, and the JSON says whether the final weights are bit-identical. The only
//! difference left is the sandbox: instantiation, the guest's Wasm code, and the
//! guest↔host calls.
//!
//! Timing: each training run is timed as a whole call (instantiation and model creation
//! included) and in steady state: a wrapper around the record source timestamps every batch
//! fetch, and the steady rate is the steps between the fetch of step `warmup` and the fetch of
//! the last step. One short unmeasured run of each kind comes first; then native and sandboxed
//! runs alternate (and swap order every repetition) so
//! drift in machine load hits both alike; the overhead is the median of the per-pair ratios of
//! steady rates, and, more robust to bursts of other load, of median step times.
//!
//! Usage: `engine-bench [--steps N] [--warmup N] [--reps N] [--records N]
//!   [--predict-calls N] [--component FILE | --guest DIR]`
#![forbid(unsafe_code)]
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chiron_engine::{
    Conv2dOptions, DataSchema, Engine, EngineConfig, EngineError, Init, LrConfig, Pool2dOptions,
    RecordSource, Schedule, SealedRecords, SgdConfig, TensorId,
};
use chiron_sandbox::{
    NamedTensor, Sandbox, SandboxLimits, SavedModel, TensorData, TrainConfig, TrainerModule,
    measure_fresh_instance, run_predict, run_train,
};
use chiron_seal::{Dtype, MasterKey, Schema, SealOptions, SealWriter, SealedDataset, Split};
use serde_json::{Value, json};

/// Images per training batch (the reference setting).
const BATCH: u32 = 64;
/// Classes of the synthetic data.
const CLASSES: u32 = 10;
/// Shape of one record.
const SHAPE: [u32; 3] = [3, 32, 32];
/// Prediction batch sizes measured.
const PREDICT_BATCHES: [u32; 3] = [1, 64, 256];
/// Channels of the three convolution blocks (as the guest's `WIDTHS`).
const WIDTHS: [u32; 3] = [32, 64, 128];
/// Convolution: 3×3, stride 1, pad 1.
const CONV: Conv2dOptions = Conv2dOptions {
    stride: [1, 1],
    padding: [1, 1],
    dilation: [1, 1],
    groups: 1,
};
/// Max-pool 2×2, stride 2.
const POOL: Pool2dOptions = Pool2dOptions {
    kernel: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
};

/// Command-line settings.
struct Args {
    /// Measured training steps per run (after the warm-up).
    steps: u32,
    /// Warm-up steps per run, not counted in the steady rate.
    warmup: u32,
    /// Repetitions of each measurement (medians are reported).
    reps: u32,
    /// Records in the synthetic training split.
    records: u32,
    /// Prediction calls per batch size and repetition (for batch 1; fewer for larger ones).
    predict_calls: u32,
    /// A prebuilt component, instead of building `guest`.
    component: Option<PathBuf>,
    /// The guest crate to build.
    guest: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        steps: 30,
        warmup: 3,
        reps: 3,
        records: 2048,
        predict_calls: 50,
        component: None,
        guest: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guest-refcnn"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| -> u32 {
            v.parse()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| usage(&format!("{flag}: {v:?} is not a positive integer")))
        };
        match flag.as_str() {
            "--steps" => args.steps = number(value()),
            "--warmup" => args.warmup = number(value()),
            "--reps" => args.reps = number(value()),
            "--records" => args.records = number(value()),
            "--predict-calls" => args.predict_calls = number(value()),
            "--component" => args.component = Some(PathBuf::from(value())),
            "--guest" => args.guest = PathBuf::from(value()),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if args.records < 256 {
        usage("--records must be at least 256 (the largest prediction batch)");
    }
    args
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("engine-bench: {problem}");
    }
    eprintln!(
        "usage: engine-bench [--steps N] [--warmup N] [--reps N] [--records N] \
         [--predict-calls N] [--component FILE | --guest DIR]"
    );
    std::process::exit(2)
}

/// A cheap deterministic hash (splitmix64) for the synthetic data.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `records` random 3×32×32 u8 images with random labels in `0..10`, sealed under a fresh key
/// and preloaded as the runtime does (`SealedRecords`).
fn synthetic_records(records: u32) -> SealedRecords {
    let key = MasterKey::generate().expect("generate a key");
    let schema = Schema {
        dtype: Dtype::U8,
        shape: SHAPE.to_vec(),
        classes: CLASSES,
        class_names: Vec::new(),
        splits: vec![Split {
            name: "train".into(),
            records: u64::from(records),
        }],
    };
    let mut writer =
        SealWriter::new(Vec::new(), &key, schema, SealOptions::default()).expect("start sealing");
    let elements: usize = SHAPE.iter().map(|&d| d as usize).product();
    let mut features = vec![0u8; elements];
    for r in 0..u64::from(records) {
        for (i, b) in features.iter_mut().enumerate() {
            *b = mix((r << 20) ^ i as u64) as u8;
        }
        let label = (mix(r ^ (1 << 62)) % u64::from(CLASSES)) as u32;
        writer.push(&features, label).expect("seal a record");
    }
    let sealed = writer.finish().expect("finish sealing");
    let dataset = SealedDataset::open(sealed, &key).expect("open the sealed dataset");
    SealedRecords::preload(&dataset).expect("preload the sealed dataset")
}

/// A record source that timestamps every batch fetch: the host-side clock of a training loop,
/// the same for the native loop and the sandboxed guest.
struct Timed {
    inner: Arc<SealedRecords>,
    fetches: Mutex<Vec<Instant>>,
}

impl Timed {
    fn new(inner: Arc<SealedRecords>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fetches: Mutex::new(Vec::new()),
        })
    }

    fn fetches(&self) -> Vec<Instant> {
        self.fetches.lock().expect("fetch log").clone()
    }
}

impl RecordSource for Timed {
    fn schema(&self) -> DataSchema {
        self.inner.schema()
    }

    fn gather(
        &self,
        split: &str,
        indices: &[u64],
        features: &mut Vec<f32>,
        labels: &mut Vec<f32>,
    ) -> chiron_engine::Result<()> {
        self.fetches.lock().expect("fetch log").push(Instant::now());
        self.inner.gather(split, indices, features, labels)
    }
}

/// The engine limits of a training run (as `chiron trainer test`).
fn train_engine(source: Arc<Timed>) -> Engine {
    Engine::new(EngineConfig {
        seed: 0,
        max_live_bytes: 8 << 30,
        max_tensors: 1_000_000,
        max_steps: u64::MAX,
    })
    .with_data(source)
}

/// The network's tensors in the guest's creation (and saving) order.
struct Params {
    names: Vec<String>,
    ids: Vec<TensorId>,
}

/// Creates the parameters exactly as the guest's `Vars::fresh()` network does: same order,
/// initialisers and fans, so the same seed gives the same weights.
fn create_params(e: &mut Engine) -> Result<Params, EngineError> {
    let mut names = Vec::new();
    let mut ids = Vec::new();
    let mut channels = SHAPE[0];
    for (i, &width) in WIDTHS.iter().enumerate() {
        let (fan_in, fan_out) = (channels * 9, width * 9);
        ids.push(e.parameter(
            &[width, channels, 3, 3],
            Init::KaimingUniform,
            fan_in,
            fan_out,
        )?);
        ids.push(e.parameter(&[width], Init::BiasUniform, fan_in, fan_out)?);
        names.extend([format!("conv{i}.weight"), format!("conv{i}.bias")]);
        channels = width;
    }
    for (name, inputs, outputs) in [("fc1", 128 * 4 * 4, 256), ("fc2", 256, CLASSES)] {
        ids.push(e.parameter(&[outputs, inputs], Init::KaimingUniform, inputs, outputs)?);
        ids.push(e.parameter(&[outputs], Init::BiasUniform, inputs, outputs)?);
        names.extend([format!("{name}.weight"), format!("{name}.bias")]);
    }
    Ok(Params { names, ids })
}

/// The forward pass as the guest's `Sequential` runs it: each intermediate handle is released
/// as soon as the next exists. `p` holds the ten tensors in [`create_params`] order.
fn forward(e: &mut Engine, p: &[TensorId], x: TensorId) -> Result<TensorId, EngineError> {
    let mut h = x;
    let step = |e: &mut Engine, h: &mut TensorId, next: TensorId| {
        if *h != x {
            e.release(*h);
        }
        *h = next;
    };
    for block in 0..3 {
        let c = e.conv2d(h, p[2 * block], Some(p[2 * block + 1]), CONV)?;
        step(e, &mut h, c);
        let r = e.relu(h)?;
        step(e, &mut h, r);
        let m = e.max_pool2d(h, POOL)?;
        step(e, &mut h, m);
    }
    let f = e.flatten(h, 1)?;
    step(e, &mut h, f);
    let l1 = e.linear(h, p[6], Some(p[7]))?;
    step(e, &mut h, l1);
    let r = e.relu(h)?;
    step(e, &mut h, r);
    let logits = e.linear(h, p[8], Some(p[9]))?;
    step(e, &mut h, logits);
    Ok(h)
}

/// The guest's `train`, as direct engine calls: `steps` SGD steps on consecutive batches of
/// the `train` split, the loss read back each step, the model exported at the end.
fn native_train(
    e: &mut Engine,
    steps: u64,
) -> Result<Vec<chiron_engine::NamedTensor>, EngineError> {
    let schema = e.schema()?;
    let records = schema
        .splits
        .iter()
        .find(|(name, _)| name == "train")
        .map(|(_, n)| *n)
        .ok_or(EngineError::InvalidArgument)?;
    let batch = u64::from(BATCH);
    let params = create_params(e)?;
    let opt = e.sgd(
        &params.ids,
        LrConfig {
            base: 0.01,
            schedule: Schedule::Constant,
            warmup: 0,
        },
        SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        },
    )?;
    for step in 0..steps {
        let start = (step * batch) % (records - batch + 1);
        let idx: Vec<u64> = (start..start + batch).collect();
        let (x, y) = e.batch("train", &idx, None, None)?;
        let logits = forward(e, &params.ids, x)?;
        let loss = e.cross_entropy(logits, y)?;
        e.backward(loss)?;
        e.step(opt)?;
        let value = e.item(loss)?;
        if !value.is_finite() {
            return Err(EngineError::InvalidArgument);
        }
        for t in [x, y, logits, loss] {
            e.release(t);
        }
    }
    let named: Vec<(String, TensorId)> = params.names.into_iter().zip(params.ids).collect();
    e.export_named(&named)
}

/// The host side of `run_predict` without the sandbox: a fresh prediction engine, the saved
/// tensors and the input loaded, the guest's `predict` as direct calls, the output read back.
fn native_predict(
    limits: &SandboxLimits,
    model: &SavedModel,
    input: &TensorData,
) -> Result<TensorData, EngineError> {
    let mut e = Engine::new(limits.predict_engine.clone());
    let mut loaded = Vec::with_capacity(model.tensors.len());
    for t in &model.tensors {
        loaded.push((t.name.as_str(), e.from_data(&t.shape, &t.values)?));
    }
    let x = e.from_data(&input.shape, &input.values)?;
    // The guest looks the tensors up by name (`Vars::load`); so does this.
    let names = [
        "conv0.weight",
        "conv0.bias",
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ];
    let mut p = Vec::with_capacity(names.len());
    for name in names {
        let id = loaded
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| *id)
            .ok_or(EngineError::InvalidArgument)?;
        p.push(id);
    }
    let out = forward(&mut e, &p, x)?;
    Ok(TensorData {
        shape: e.shape(out)?,
        values: e.to_vec(out)?,
    })
}

/// Timing of one training run.
#[derive(Clone, Copy)]
struct RunTime {
    /// Images per second over the whole call (instantiation, model creation, warm-up included).
    call_img_s: f64,
    /// Images per second in steady state (from the batch-fetch timestamps).
    steady_img_s: f64,
    /// Median time of one steady-state step in milliseconds: robust to bursts of other load.
    median_step_ms: f64,
}

fn run_time(total: Duration, fetches: &[Instant], warmup: u32, steps: u64) -> RunTime {
    let first = fetches.get(warmup as usize).expect("a fetch per step");
    let last = fetches.last().expect("a fetch per step");
    let measured = (fetches.len() - 1 - warmup as usize) as f64;
    let step_ms: Vec<f64> = fetches[warmup as usize..]
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    RunTime {
        call_img_s: steps as f64 * f64::from(BATCH) / total.as_secs_f64(),
        steady_img_s: measured * f64::from(BATCH) / (*last - *first).as_secs_f64(),
        median_step_ms: median(&step_ms),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Largest absolute difference between two models with the same tensors (∞ if they differ in
/// names or shapes).
fn model_diff(a: &[NamedTensor], b: &[chiron_engine::NamedTensor]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let mut worst = 0f64;
    for (x, (name, shape, values)) in a.iter().zip(b) {
        if &x.name != name || &x.shape != shape || x.values.len() != values.len() {
            return f64::INFINITY;
        }
        for (u, v) in x.values.iter().zip(values) {
            worst = worst.max(f64::from((u - v).abs()));
        }
    }
    worst
}

fn main() {
    let args = parse_args();
    let threads = chiron_engine::thread_pool().map_or(0, |p| p.current_num_threads());

    let component_path = match &args.component {
        Some(path) => path.clone(),
        None => {
            eprintln!("== building the guest {}", args.guest.display());
            chiron_trainer_build::build_trainer(&args.guest).expect("build the guest trainer")
        }
    };
    let component = std::fs::read(&component_path).expect("read the component");

    eprintln!("== sealing {} synthetic 3x32x32 u8 records", args.records);
    let records = Arc::new(synthetic_records(args.records));

    let limits = SandboxLimits {
        debug_log: true,
        ..SandboxLimits::default()
    };
    let sandbox = Sandbox::new(limits.clone()).expect("start the sandbox");
    let module = TrainerModule::load(&sandbox, &component).expect("load the trainer component");

    // Training: native and sandboxed runs alternate, swapping order every repetition.
    let total_steps = u64::from(args.warmup) + u64::from(args.steps) + 1;
    let config = TrainConfig {
        epochs: 1,
        batch_size: BATCH,
        hyper: vec![("steps".into(), total_steps as f32)],
        wall_budget: Duration::from_secs(3600),
    };
    // One unmeasured run each first: the engine's pool, the allocator's thresholds and the
    // caches settle, so the first measured run is not penalised.
    {
        let short = TrainConfig {
            hyper: vec![("steps".into(), (args.warmup + 3) as f32)],
            ..config.clone()
        };
        let source = Timed::new(Arc::clone(&records));
        native_train(&mut train_engine(source), u64::from(args.warmup) + 3)
            .expect("native warm-up run");
        let source = Timed::new(Arc::clone(&records));
        run_train(&module, train_engine(source), &short).expect("sandboxed warm-up run");
    }
    let mut native_runs = Vec::new();
    let mut sandbox_runs = Vec::new();
    let mut saved = None;
    let mut native_model = None;
    for rep in 0..args.reps {
        for sandboxed in if rep % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        } {
            let source = Timed::new(Arc::clone(&records));
            let mut engine = train_engine(Arc::clone(&source));
            let start = Instant::now();
            if sandboxed {
                let outcome = run_train(&module, engine, &config).expect("sandboxed training");
                let total = start.elapsed();
                assert_eq!(outcome.steps_taken, total_steps);
                saved = outcome.model;
                let t = run_time(total, &source.fetches(), args.warmup, total_steps);
                eprintln!(
                    "rep {rep} sandbox: {:.0} img/s steady, {:.0} img/s whole call, \
                     median step {:.1} ms",
                    t.steady_img_s, t.call_img_s, t.median_step_ms
                );
                sandbox_runs.push(t);
            } else {
                let model = native_train(&mut engine, total_steps).expect("native training");
                let total = start.elapsed();
                native_model = Some(model);
                let t = run_time(total, &source.fetches(), args.warmup, total_steps);
                eprintln!(
                    "rep {rep} native:  {:.0} img/s steady, {:.0} img/s whole call, \
                     median step {:.1} ms",
                    t.steady_img_s, t.call_img_s, t.median_step_ms
                );
                native_runs.push(t);
            }
        }
    }
    let saved = saved.expect("the guest saved a model");
    let native_model = native_model.expect("a native model");
    let weight_diff = model_diff(&saved.tensors, &native_model);
    let pairs = |f: fn(&RunTime) -> f64| -> Vec<f64> {
        native_runs
            .iter()
            .zip(&sandbox_runs)
            .map(|(n, s)| f(n) / f(s) - 1.0)
            .collect()
    };
    let steady_overheads = pairs(|t| t.steady_img_s);
    let step_overheads = pairs(|t| 1.0 / t.median_step_ms);
    let call_overheads = pairs(|t| t.call_img_s);
    let runs = |v: &[RunTime], f: fn(&RunTime) -> f64| -> Vec<f64> { v.iter().map(f).collect() };

    // Prediction: fresh engine (and, sandboxed, a fresh instance) per call; calls alternate.
    let mut predict = Vec::new();
    for b in PREDICT_BATCHES {
        let idx: Vec<u64> = (0..u64::from(b)).collect();
        let mut features = Vec::new();
        let mut labels = Vec::new();
        records
            .gather("train", &idx, &mut features, &mut labels)
            .expect("gather prediction inputs");
        let input = TensorData {
            shape: vec![b, SHAPE[0], SHAPE[1], SHAPE[2]],
            values: features,
        };
        let calls = (args.predict_calls / b.div_ceil(16)).max(3);
        let mut native_ms = Vec::new();
        let mut sandbox_ms = Vec::new();
        let mut worst = 0f64;
        for _ in 0..args.reps {
            let mut n_round = Vec::new();
            let mut s_round = Vec::new();
            // One unmeasured call each first.
            let _ = native_predict(&limits, &saved, &input).expect("native prediction");
            let _ = run_predict(&module, &saved, &input).expect("sandboxed prediction");
            for _ in 0..calls {
                let t = Instant::now();
                let n = native_predict(&limits, &saved, &input).expect("native prediction");
                n_round.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                let s = run_predict(&module, &saved, &input).expect("sandboxed prediction");
                s_round.push(t.elapsed().as_secs_f64() * 1e3);
                assert_eq!(n.shape, s.shape);
                for (u, v) in n.values.iter().zip(&s.values) {
                    worst = worst.max(f64::from((u - v).abs()));
                }
            }
            native_ms.push(median(&n_round));
            sandbox_ms.push(median(&s_round));
        }
        let (n, s) = (median(&native_ms), median(&sandbox_ms));
        eprintln!("predict batch {b}: native {n:.3} ms, sandbox {s:.3} ms per call");
        predict.push(json!({
            "batch": b,
            "calls_per_rep": calls,
            "native_ms": n,
            "sandbox_ms": s,
            "native_img_s": f64::from(b) / n * 1e3,
            "sandbox_img_s": f64::from(b) / s * 1e3,
            "overhead": s / n - 1.0,
            "native_ms_runs": native_ms,
            "sandbox_ms_runs": sandbox_ms,
            "max_abs_output_diff": worst,
        }));
    }
    let mut fresh = Vec::new();
    for _ in 0..200 {
        fresh.push(
            measure_fresh_instance(&module)
                .expect("fresh instance")
                .as_secs_f64()
                * 1e6,
        );
    }

    let out: Value = json!({
        "config": {
            "batch": BATCH,
            "warmup_steps": args.warmup,
            "measured_steps": args.steps,
            "reps": args.reps,
            "records": args.records,
            "engine_threads": threads,
        },
        "component": {
            "path": component_path.display().to_string(),
            "bytes": component.len(),
            "sha256": module.digest_hex(),
        },
        "train": {
            "native_img_s": median(&runs(&native_runs, |t| t.steady_img_s)),
            "sandbox_img_s": median(&runs(&sandbox_runs, |t| t.steady_img_s)),
            "overhead": median(&steady_overheads),
            "native_img_s_runs": runs(&native_runs, |t| t.steady_img_s),
            "sandbox_img_s_runs": runs(&sandbox_runs, |t| t.steady_img_s),
            "overhead_runs": steady_overheads,
            "native_median_step_ms_runs": runs(&native_runs, |t| t.median_step_ms),
            "sandbox_median_step_ms_runs": runs(&sandbox_runs, |t| t.median_step_ms),
            "median_step_overhead": median(&step_overheads),
            "median_step_overhead_runs": step_overheads,
            "whole_call": {
                "native_img_s": median(&runs(&native_runs, |t| t.call_img_s)),
                "sandbox_img_s": median(&runs(&sandbox_runs, |t| t.call_img_s)),
                "overhead": median(&call_overheads),
                "overhead_runs": call_overheads,
            },
            "max_abs_weight_diff": weight_diff,
        },
        "predict": predict,
        "fresh_instance_us": median(&fresh),
    });
    println!("{out}");
}
