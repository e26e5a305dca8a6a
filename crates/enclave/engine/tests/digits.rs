//! Learning works: an MLP trained through the engine's API on the UCI digits data (sealed with
//! chiron-data's CSV importer, then served by `SealedRecords`) reaches ≥ 0.95 test accuracy.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use chiron_data::csv::{CsvOptions, import};
use chiron_engine::{
    Engine, EngineConfig, Init, LrConfig, Normalize, RecordSource, Schedule, SealedRecords,
    SgdConfig,
};
use chiron_seal::{MasterKey, SealOptions, SealedDataset};

fn sealed_digits() -> SealedRecords {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../data/digits/digits.csv.gz");
    let opts = CsvOptions {
        label_column: "64".into(),
        has_header: false,
        ..CsvOptions::default()
    };
    let dataset = import(&[path], &opts)
        .unwrap()
        .split_by_fraction(0.2, 7)
        .unwrap();
    let key = MasterKey::from_bytes([7u8; 32]);
    let (sealed, _) = dataset
        .seal(Vec::new(), &key, SealOptions::default(), |_| {})
        .unwrap();
    let opened = SealedDataset::open(sealed, &key).unwrap();
    SealedRecords::preload(&opened).unwrap()
}

#[test]
fn mlp_learns_digits() {
    let records = sealed_digits();
    let schema = records.schema();
    assert_eq!(schema.shape, vec![64]);
    assert_eq!(schema.classes, 10);
    let n_train = schema.splits.iter().find(|s| s.0 == "train").unwrap().1;
    let n_test = schema.splits.iter().find(|s| s.0 == "test").unwrap().1;
    assert_eq!(n_train + n_test, 1797);

    let mut e = Engine::new(EngineConfig {
        seed: 1,
        max_live_bytes: 256 << 20,
        max_tensors: 10_000,
        max_steps: 10_000,
    })
    .with_data(Arc::new(records));
    let hidden = 128;
    let w1 = e
        .parameter(&[hidden, 64], Init::KaimingUniform, 64, hidden)
        .unwrap();
    let b1 = e
        .parameter(&[hidden], Init::BiasUniform, 64, hidden)
        .unwrap();
    let w2 = e
        .parameter(&[10, hidden], Init::XavierUniform, hidden, 10)
        .unwrap();
    let b2 = e.parameter(&[10], Init::BiasUniform, hidden, 10).unwrap();
    let epochs = 12u32;
    let batch = 32usize;
    let steps_per_epoch = (n_train as usize).div_ceil(batch) as u64;
    let opt = e
        .sgd(
            &[w1, b1, w2, b2],
            LrConfig {
                base: 0.05,
                schedule: Schedule::Cosine {
                    total: u64::from(epochs) * steps_per_epoch,
                    min_lr: 0.001,
                },
                warmup: 10,
            },
            SgdConfig {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-4,
            },
        )
        .unwrap();
    // Pixel values are 0..16.
    let norm = Normalize {
        mean: vec![4.9],
        std: vec![6.0],
    };
    let forward = |e: &mut Engine, x, train: bool| {
        let h = e.linear(x, w1, Some(b1)).unwrap();
        let a = e.relu(h).unwrap();
        let d = e.dropout(a, 0.1, train).unwrap();
        let logits = e.linear(d, w2, Some(b2)).unwrap();
        for t in [h, a, d] {
            e.release(t);
        }
        logits
    };
    let mut last_loss = f32::NAN;
    for epoch in 0..epochs {
        let order = e.shuffled("train", epoch).unwrap();
        let mut total = 0.0;
        for chunk in order.chunks(batch) {
            let (x, y) = e.batch("train", chunk, Some(&norm), None).unwrap();
            let logits = forward(&mut e, x, true);
            let loss = e.cross_entropy(logits, y).unwrap();
            total += e.item(loss).unwrap();
            e.backward(loss).unwrap();
            e.step(opt).unwrap();
            for t in [x, y, logits, loss] {
                e.release(t);
            }
        }
        last_loss = total / steps_per_epoch as f32;
    }
    assert!(last_loss < 0.2, "final training loss {last_loss}");
    // Only parameters and nothing else stay live (gradients were consumed by the steps).
    assert_eq!(e.live().0, 4);

    let test: Vec<u64> = (0..n_test).collect();
    let mut correct = 0usize;
    for chunk in test.chunks(256) {
        let (x, y) = e.batch("test", chunk, Some(&norm), None).unwrap();
        let logits = forward(&mut e, x, false);
        let pred = e.argmax(logits, 1).unwrap();
        let p = e.to_vec(pred).unwrap();
        let l = e.to_vec(y).unwrap();
        correct += p.iter().zip(&l).filter(|(a, b)| a == b).count();
        for t in [x, y, logits, pred] {
            e.release(t);
        }
    }
    let accuracy = correct as f64 / n_test as f64;
    eprintln!("digits MLP: final train loss {last_loss:.4}, test accuracy {accuracy:.4}");
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
}
