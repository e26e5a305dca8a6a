//! Distributed steps: workers whose optimizer steps go through a parameter server train the
//! same model as one engine on the whole batch (synchronous SGD averages equal shards' mean
//! gradients into the whole batch's), and the server's rounds, backups and late gradients
//! behave as documented.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::{Arc, Condvar, Mutex};

use chiron_engine::{
    AdamConfig, Engine, EngineError, ExchangeReply, ExchangeRequest, GradientExchange, Init,
    LrConfig, OptimizerSpec, ParameterServer, Result, Schedule, SgdConfig, TensorId, UpdateRule,
};
use common::{config, values};

/// The server of a job in this process (created by the first step) and its worker count,
/// behind a lock; replies are signalled by the condition variable.
type Shared = Arc<(Mutex<(Option<ParameterServer>, usize)>, Condvar)>;

/// One worker's exchange with the in-process server.
struct Local {
    worker: usize,
    shared: Shared,
}

impl GradientExchange for Local {
    fn exchange(&mut self, r: &ExchangeRequest<'_>) -> Result<ExchangeReply> {
        let (lock, ready) = &*self.shared;
        let mut guard = lock.lock().unwrap();
        let workers = guard.1;
        if guard.0.is_none() {
            let initial = r.initial.ok_or(EngineError::InvalidArgument)?.to_vec();
            guard.0 = Some(ParameterServer::new(
                r.spec,
                r.numels.to_vec(),
                initial,
                workers,
                0,
            )?);
        }
        if guard
            .0
            .as_mut()
            .unwrap()
            .submit(self.worker, r.version, r.grads, r.has_grad)?
        {
            ready.notify_all();
        }
        while guard.0.as_ref().unwrap().version() <= r.version {
            guard = ready.wait(guard).unwrap();
        }
        let server = guard.0.as_ref().unwrap();
        Ok(ExchangeReply {
            version: server.version(),
            params: server.params().to_vec(),
        })
    }
}

const BATCH: usize = 16;
const STEPS: usize = 5;

/// A two-layer classifier's parameters (same seed: same values in every engine).
fn model(e: &mut Engine) -> Vec<TensorId> {
    vec![
        e.parameter(&[8, 36], Init::KaimingUniform, 36, 8).unwrap(),
        e.parameter(&[8], Init::BiasUniform, 36, 8).unwrap(),
        e.parameter(&[3, 8], Init::XavierUniform, 8, 3).unwrap(),
        e.parameter(&[3], Init::Zeros, 8, 3).unwrap(),
    ]
}

/// Step `step`'s batch rows `rows` (features [n, 36], labels [n]).
fn batch(step: usize, rows: std::ops::Range<usize>) -> (Vec<f32>, Vec<f32>) {
    let x = values(BATCH * 36, 100 + step as u64, -1.0, 1.0);
    let y: Vec<f32> = (0..BATCH).map(|i| ((i * 7 + step) % 3) as f32).collect();
    (x[rows.start * 36..rows.end * 36].to_vec(), y[rows].to_vec())
}

/// Runs `STEPS` steps on the given rows of every batch; returns the parameters' values.
fn train(mut e: Engine, rule: UpdateRule, rows: std::ops::Range<usize>) -> Vec<Vec<f32>> {
    let p = model(&mut e);
    let lr = LrConfig {
        base: 0.05,
        schedule: Schedule::Cosine {
            total: STEPS as u64,
            min_lr: 0.005,
        },
        warmup: 1,
    };
    let opt = match rule {
        UpdateRule::Sgd(c) => e.sgd(&p, lr, c).unwrap(),
        UpdateRule::Adam(c) => e.adam(&p, lr, c).unwrap(),
    };
    for step in 0..STEPS {
        let (xv, yv) = batch(step, rows.clone());
        let n = yv.len() as u32;
        let x = e.from_data(&[n, 36], &xv).unwrap();
        let y = e.from_data(&[n], &yv).unwrap();
        let h = e.linear(x, p[0], Some(p[1])).unwrap();
        let r = e.relu(h).unwrap();
        let logits = e.linear(r, p[2], Some(p[3])).unwrap();
        let loss = e.cross_entropy(logits, y).unwrap();
        e.backward(loss).unwrap();
        e.step(opt).unwrap();
        for t in [x, y, h, r, logits, loss] {
            e.release(t);
        }
    }
    p.iter().map(|&t| e.to_vec(t).unwrap()).collect()
}

fn distributed(rule: UpdateRule, workers: usize) -> Vec<Vec<Vec<f32>>> {
    let shared = Arc::new((Mutex::new((None, workers)), Condvar::new()));
    let per = BATCH / workers;
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let exchange = Local {
                worker: w,
                shared: shared.clone(),
            };
            std::thread::spawn(move || {
                let e = Engine::new(config(9)).with_exchange(Box::new(exchange));
                train(e, rule, w * per..(w + 1) * per)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

const RULES: [UpdateRule; 2] = [
    UpdateRule::Sgd(SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-3,
    }),
    UpdateRule::Adam(AdamConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        decoupled: true,
    }),
];

#[test]
fn synchronous_workers_train_the_same_model_as_one_engine() {
    for rule in RULES {
        let single = train(Engine::new(config(9)), rule, 0..BATCH);
        // The comparison can tell: one shard alone trains a visibly different model.
        let shard = train(Engine::new(config(9)), rule, 0..BATCH / 2);
        let gap = shard
            .iter()
            .flatten()
            .zip(single.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(gap > 1e-3, "{gap}");
        for workers in [2, 4] {
            let results = distributed(rule, workers);
            // Every worker ends with the server's parameters...
            for r in &results[1..] {
                assert_eq!(r, &results[0]);
            }
            // ...which are the whole batch's update, up to rounding.
            assert_close(&results[0], &single);
        }
    }
}

fn spec() -> OptimizerSpec {
    OptimizerSpec {
        rule: RULES[0],
        lr: LrConfig {
            base: 0.1,
            schedule: Schedule::Constant,
            warmup: 0,
        },
    }
}

#[test]
fn a_round_closes_without_its_backup_workers_and_late_gradients_are_dropped() {
    let mut s = ParameterServer::new(spec(), vec![2], vec![1.0, 1.0], 3, 1).unwrap();
    assert!(!s.submit(2, 0, &[1.0, 1.0], &[true]).unwrap());
    assert_eq!(
        s.submit(2, 0, &[1.0, 1.0], &[true]),
        Err(EngineError::InvalidArgument),
        "one gradient per worker and round"
    );
    assert!(s.submit(0, 0, &[3.0, 3.0], &[true]).unwrap());
    assert_eq!(s.version(), 1);
    // Mean gradient 2, first momentum step: p = 1 - 0.1 * (2 + 0.9 * 2) (Nesterov, wd 1e-3).
    let d = 2.0 + 1e-3;
    let expected = 1.0 - 0.1 * (d + 0.9 * d);
    assert!((s.params()[0] - expected).abs() < 1e-6, "{}", s.params()[0]);
    // The backup's gradient for the closed round is late: dropped, nothing changes.
    let before = s.params().to_vec();
    assert!(!s.submit(1, 0, &[100.0, 100.0], &[true]).unwrap());
    assert_eq!(s.params(), &before[..]);
    // Future versions, unknown workers and wrong sizes are refused.
    assert_eq!(
        s.submit(0, 5, &[0.0, 0.0], &[true]),
        Err(EngineError::InvalidArgument)
    );
    assert_eq!(
        s.submit(3, 1, &[0.0, 0.0], &[true]),
        Err(EngineError::InvalidArgument)
    );
    assert_eq!(
        s.submit(0, 1, &[0.0], &[true]),
        Err(EngineError::InvalidArgument)
    );
    // Parameters no worker has a gradient for do not move.
    assert!(!s.submit(0, 1, &[0.0, 0.0], &[false]).unwrap());
    assert!(s.submit(1, 1, &[0.0, 0.0], &[false]).unwrap());
    assert_eq!(s.params(), &before[..]);
}

#[test]
fn a_server_needs_fewer_backups_than_workers() {
    assert!(ParameterServer::new(spec(), vec![1], vec![0.0], 2, 2).is_err());
    assert!(ParameterServer::new(spec(), vec![2], vec![0.0], 2, 0).is_err());
    assert!(ParameterServer::new(spec(), vec![1], vec![0.0], 0, 0).is_err());
}

/// 10 train records (feature = index) and 2 test records.
struct Numbered;

impl chiron_engine::RecordSource for Numbered {
    fn schema(&self) -> chiron_engine::DataSchema {
        chiron_engine::DataSchema {
            shape: vec![1],
            classes: 2,
            splits: vec![("train".into(), 10), ("test".into(), 2)],
        }
    }
    fn gather(
        &self,
        split: &str,
        indices: &[u64],
        features: &mut Vec<f32>,
        labels: &mut Vec<f32>,
    ) -> Result<()> {
        let n = if split == "train" { 10 } else { 2 };
        for &i in indices {
            if i >= n {
                return Err(EngineError::OutOfRange);
            }
            features.push(i as f32);
            labels.push((i % 2) as f32);
        }
        Ok(())
    }
}

#[test]
fn shards_cut_the_train_split_into_equal_disjoint_parts() {
    use chiron_engine::{RecordSource, Shard};
    let data: Arc<dyn RecordSource> = Arc::new(Numbered);
    let mut seen = Vec::new();
    for index in 0..3 {
        let shard = Shard::new(data.clone(), index, 3).unwrap();
        let schema = shard.schema();
        assert_eq!(schema.splits, vec![("train".into(), 3), ("test".into(), 2)]);
        let (mut f, mut l) = (Vec::new(), Vec::new());
        shard.gather("train", &[0, 1, 2], &mut f, &mut l).unwrap();
        seen.extend(f);
        assert_eq!(
            shard.gather("train", &[3], &mut Vec::new(), &mut Vec::new()),
            Err(EngineError::OutOfRange)
        );
        // Other splits are whole.
        let mut t = Vec::new();
        shard
            .gather("test", &[0, 1], &mut t, &mut Vec::new())
            .unwrap();
        assert_eq!(t, vec![0.0, 1.0]);
    }
    // Records 0..9 once each; record 9 (the remainder) left out.
    assert_eq!(seen, (0..9).map(|i| i as f32).collect::<Vec<_>>());
    assert!(Shard::new(data.clone(), 3, 3).is_err());
    assert!(Shard::new(data, 0, 11).is_err());
}
