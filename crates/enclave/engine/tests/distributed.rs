//! Distributed steps: workers whose optimizer steps go through a parameter server train the
//! same model as one engine on the whole batch (synchronous SGD averages equal shards' mean
//! gradients into the whole batch's), and the server's rounds, backups and late gradients
//! behave as documented.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::{Arc, Condvar, Mutex};

use chiron_engine::{
    AdamConfig, Consistency, Engine, EngineError, ExchangeReply, ExchangeRequest, Gradient,
    GradientExchange, Init, LrConfig, OptimizerSpec, ParameterServer, Result, Schedule, SgdConfig,
    Submitted, TensorId, UpdateRule,
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
                Consistency::Sync { backups: 0 },
            )?);
        }
        let submitted = guard.0.as_mut().unwrap().submit(
            self.worker,
            r.version,
            Some(Gradient {
                grads: r.grads,
                has_grad: r.has_grad,
            }),
        )?;
        ready.notify_all();
        let Submitted::Round(round) = submitted else {
            panic!("synchronous workers in step are never late");
        };
        while guard.0.as_ref().unwrap().version() <= round {
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

fn g<'a>(grads: &'a [f32], has_grad: &'a [bool]) -> Option<Gradient<'a>> {
    Some(Gradient { grads, has_grad })
}

const SYNC_1: Consistency = Consistency::Sync { backups: 1 };

#[test]
fn a_round_closes_without_its_backup_workers_and_late_gradients_are_dropped() {
    let mut s = ParameterServer::new(spec(), vec![2], vec![1.0, 1.0], 3, SYNC_1).unwrap();
    assert_eq!(
        s.submit(2, 0, g(&[5.0, 5.0], &[true])),
        Ok(Submitted::Round(0))
    );
    // A worker's second message for a round replaces its first (a replacement's retry).
    assert_eq!(
        s.submit(2, 0, g(&[1.0, 1.0], &[true])),
        Ok(Submitted::Round(0))
    );
    assert_eq!(s.version(), 0);
    assert_eq!(
        s.submit(0, 0, g(&[3.0, 3.0], &[true])),
        Ok(Submitted::Round(0))
    );
    assert_eq!(s.version(), 1);
    // Mean gradient 2, first momentum step: p = 1 - 0.1 * (2 + 0.9 * 2) (Nesterov, wd 1e-3).
    let d = 2.0 + 1e-3;
    let expected = 1.0 - 0.1 * (d + 0.9 * d);
    assert!((s.params()[0] - expected).abs() < 1e-6, "{}", s.params()[0]);
    // The backup's gradient for the closed round is late: dropped, answered at once.
    let before = s.params().to_vec();
    assert_eq!(
        s.submit(1, 0, g(&[100.0, 100.0], &[true])),
        Ok(Submitted::Now)
    );
    assert_eq!(s.params(), &before[..]);
    // Unknown workers and wrong sizes are refused.
    assert_eq!(
        s.submit(3, 1, g(&[0.0, 0.0], &[true])),
        Err(EngineError::InvalidArgument)
    );
    assert_eq!(
        s.submit(0, 1, g(&[0.0], &[true])),
        Err(EngineError::InvalidArgument)
    );
    // A version ahead of the server's (it resumed from a checkpoint) joins the open round.
    assert_eq!(
        s.submit(0, 7, g(&[0.0, 0.0], &[false])),
        Ok(Submitted::Round(1))
    );
    // Parameters no worker has a gradient for do not move.
    assert_eq!(
        s.submit(1, 1, g(&[0.0, 0.0], &[false])),
        Ok(Submitted::Round(1))
    );
    assert_eq!(s.version(), 2);
    assert_eq!(s.params(), &before[..]);
}

#[test]
fn dummies_keep_the_schedule_without_holding_rounds_open() {
    let mut s = ParameterServer::new(
        spec(),
        vec![1],
        vec![1.0],
        3,
        Consistency::Sync { backups: 0 },
    )
    .unwrap();
    // Workers 1 and 2 have finished: their dummies wait in the round for the one that trains.
    assert_eq!(s.submit(1, 0, None), Ok(Submitted::Round(0)));
    assert_eq!(s.submit(2, 0, None), Ok(Submitted::Round(0)));
    assert_eq!(
        s.version(),
        0,
        "dummies do not close a round while a worker trains"
    );
    assert_eq!(s.submit(0, 0, g(&[1.0], &[true])), Ok(Submitted::Round(0)));
    assert_eq!(s.version(), 1);
    let after_one = s.params()[0];
    assert!(after_one < 1.0);
    // The last worker's gradient closes the next round alone, whoever's dummies came first.
    assert_eq!(s.submit(0, 1, g(&[1.0], &[true])), Ok(Submitted::Round(1)));
    assert_eq!(s.version(), 2);
    assert!(s.params()[0] < after_one);
    // Once every worker sends dummies, rounds close on dummies alone and nothing moves.
    let p = s.params().to_vec();
    for w in 0..3 {
        assert_eq!(s.version(), 2);
        assert_eq!(s.submit(w, 2, None), Ok(Submitted::Round(2)));
    }
    assert_eq!(s.version(), 3);
    assert_eq!(s.params(), &p[..]);
    // Workers 1 and 2 sent their whole schedule: worker 0's last dummies do not wait for them.
    s.retire(1);
    s.retire(2);
    assert_eq!(s.submit(0, 3, None), Ok(Submitted::Round(3)));
    assert_eq!(s.version(), 4);
    // Nor does an open round: retiring the last awaited worker closes it.
    let mut s = ParameterServer::new(
        spec(),
        vec![1],
        vec![1.0],
        2,
        Consistency::Sync { backups: 0 },
    )
    .unwrap();
    assert_eq!(s.submit(0, 0, g(&[1.0], &[true])), Ok(Submitted::Round(0)));
    s.retire(1);
    assert_eq!(s.version(), 1);
}

#[test]
fn asynchronous_gradients_apply_on_arrival_within_the_staleness_bound() {
    let mut s = ParameterServer::new(
        spec(),
        vec![1],
        vec![1.0],
        2,
        Consistency::Async { staleness: 1 },
    )
    .unwrap();
    assert_eq!(s.submit(0, 0, g(&[1.0], &[true])), Ok(Submitted::Now));
    assert_eq!(s.version(), 1);
    // Computed from version 0, one behind: within the bound, applied.
    assert_eq!(s.submit(1, 0, g(&[1.0], &[true])), Ok(Submitted::Now));
    assert_eq!(s.version(), 2);
    // Two behind: stale, dropped; dummies change nothing either.
    let p = s.params().to_vec();
    assert_eq!(s.submit(1, 0, g(&[1.0], &[true])), Ok(Submitted::Now));
    assert_eq!(s.submit(0, 2, None), Ok(Submitted::Now));
    assert_eq!((s.version(), s.params()), (2, &p[..]));
}

#[test]
fn a_server_checkpoint_resumes_the_same_updates() {
    for rule in RULES {
        let spec = OptimizerSpec {
            rule,
            lr: LrConfig {
                base: 0.05,
                schedule: Schedule::Cosine {
                    total: 10,
                    min_lr: 0.0,
                },
                warmup: 1,
            },
        };
        let grads = [0.5f32, -1.0, 2.0];
        let step = |s: &mut ParameterServer| {
            for w in 0..2 {
                s.submit(w, s.version(), g(&grads, &[true, true])).unwrap();
            }
        };
        let mut a = ParameterServer::new(spec, vec![2, 1], vec![1.0, 2.0, 3.0], 2, SYNC_1).unwrap();
        step(&mut a);
        step(&mut a);
        let bytes = a.to_bytes();
        let mut b = ParameterServer::from_bytes(&bytes).unwrap();
        assert_eq!(b.to_bytes(), bytes);
        step(&mut a);
        step(&mut b);
        assert_eq!((a.version(), a.params()), (b.version(), b.params()));
        // Truncated, extended or re-tagged bytes are refused.
        assert!(ParameterServer::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(ParameterServer::from_bytes(&[&bytes[..], &[0]].concat()).is_err());
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(ParameterServer::from_bytes(&bad).is_err());
    }
}

#[test]
fn optimizer_specs_round_trip_in_a_fixed_size() {
    for rule in RULES {
        let spec = OptimizerSpec {
            rule,
            lr: LrConfig {
                base: 3e-3,
                schedule: Schedule::Step {
                    every: 10,
                    gamma: 0.5,
                },
                warmup: 7,
            },
        };
        let b = spec.to_bytes();
        assert_eq!(b.len(), chiron_engine::SPEC_BYTES);
        assert_eq!(OptimizerSpec::from_bytes(&b), Some(spec));
    }
    assert_eq!(
        OptimizerSpec::from_bytes(&[9; chiron_engine::SPEC_BYTES]),
        None
    );
    assert_eq!(OptimizerSpec::from_bytes(&[0; 3]), None);
}

#[test]
fn a_server_needs_fewer_backups_than_workers() {
    assert!(
        ParameterServer::new(
            spec(),
            vec![1],
            vec![0.0],
            2,
            Consistency::Sync { backups: 2 }
        )
        .is_err()
    );
    assert!(ParameterServer::new(spec(), vec![2], vec![0.0], 2, SYNC_1).is_err());
    assert!(ParameterServer::new(spec(), vec![1], vec![0.0], 0, SYNC_1).is_err());
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
