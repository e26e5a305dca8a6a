//! `SealedRecords`: one sequential pass over the sealed chunks at construction (what the host
//! sees does not depend on what the trainer asks for), u8 scaled to [0, 1], split handling.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io;
use std::sync::{Arc, Mutex};

use chiron_engine::{Augment, Engine, EngineError, Normalize, RecordSource, SealedRecords};
use chiron_seal::{
    ChunkSource, Dtype, MIN_CHUNK_SIZE, MasterKey, Schema, SealOptions, SealWriter, SealedDataset,
    Split,
};

/// A sealed file in memory that logs every read the reader makes.
struct Logged {
    bytes: Vec<u8>,
    reads: Arc<Mutex<Vec<(u64, usize)>>>,
}

impl ChunkSource for Logged {
    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.lock().unwrap().push((offset, buf.len()));
        ChunkSource::read_exact_at(&self.bytes, buf, offset)
    }
}

const TRAIN: u32 = 500;
const TEST: u32 = 100;

fn pixel(record: u32, k: u32) -> u8 {
    ((record * 7 + k * 13) % 256) as u8
}

fn sealed() -> (Vec<u8>, MasterKey) {
    let key = MasterKey::from_bytes([3u8; 32]);
    let schema = Schema {
        dtype: Dtype::U8,
        shape: vec![1, 4, 4],
        classes: 5,
        class_names: vec![],
        splits: vec![
            Split {
                name: "train".into(),
                records: u64::from(TRAIN),
            },
            Split {
                name: "test".into(),
                records: u64::from(TEST),
            },
        ],
    };
    let mut w = SealWriter::new(
        Vec::new(),
        &key,
        schema,
        SealOptions::with_chunk_size(MIN_CHUNK_SIZE),
    )
    .unwrap();
    for r in 0..TRAIN + TEST {
        let features: Vec<u8> = (0..16).map(|k| pixel(r, k)).collect();
        w.push(&features, r % 5).unwrap();
    }
    (w.finish().unwrap(), key)
}

#[test]
fn preload_reads_every_chunk_once_in_file_order() {
    let (bytes, key) = sealed();
    let reads = Arc::new(Mutex::new(Vec::new()));
    let total = bytes.len() as u64;
    let ds = SealedDataset::open(
        Logged {
            bytes,
            reads: Arc::clone(&reads),
        },
        &key,
    )
    .unwrap();
    let chunks = ds.chunk_count();
    assert!(chunks >= 3, "the test wants several chunks, got {chunks}");
    reads.lock().unwrap().clear();
    let records = SealedRecords::preload(&ds).unwrap();
    let log = reads.lock().unwrap().clone();
    assert_eq!(log.len() as u64, chunks, "{log:?}");
    assert!(log.windows(2).all(|w| w[0].0 + w[0].1 as u64 == w[1].0));
    assert_eq!(log.last().map(|(o, l)| o + *l as u64), Some(total));
    drop(ds);

    // Serving batches touches the source no more, whatever the order.
    reads.lock().unwrap().clear();
    let mut f = Vec::new();
    let mut l = Vec::new();
    records
        .gather("test", &[99, 0, 50], &mut f, &mut l)
        .unwrap();
    assert!(reads.lock().unwrap().is_empty());
    assert_eq!(f.len(), 3 * 16);
    let r = TRAIN + 99;
    assert_eq!(f[0], f32::from(pixel(r, 0)) / 255.0);
    assert_eq!(f[15], f32::from(pixel(r, 15)) / 255.0);
    assert_eq!(
        l,
        vec![
            (r % 5) as f32,
            (TRAIN % 5) as f32,
            ((TRAIN + 50) % 5) as f32
        ]
    );
    assert_eq!(
        records.gather("test", &[100], &mut f, &mut l),
        Err(EngineError::OutOfRange)
    );
    assert_eq!(
        records.gather("valid", &[0], &mut f, &mut l),
        Err(EngineError::InvalidArgument)
    );
    // Debug shows the schema only.
    let dbg = format!("{records:?}");
    assert!(dbg.contains("train") && !dbg.contains("0.0"), "{dbg}");
}

#[test]
fn engine_batches_from_sealed_records() {
    let (bytes, key) = sealed();
    let ds = SealedDataset::open(bytes, &key).unwrap();
    let records = SealedRecords::preload(&ds).unwrap();
    let schema = records.schema();
    assert_eq!(schema.shape, vec![1, 4, 4]);
    assert_eq!(schema.classes, 5);
    assert_eq!(
        schema.splits,
        vec![
            ("train".to_string(), u64::from(TRAIN)),
            ("test".to_string(), u64::from(TEST))
        ]
    );
    let mut e = Engine::new(chiron_engine::EngineConfig {
        seed: 4,
        max_live_bytes: 1 << 24,
        max_tensors: 100,
        max_steps: 10,
    })
    .with_data(Arc::new(records));
    assert_eq!(e.schema().unwrap(), schema);
    let order = e.shuffled("train", 0).unwrap();
    assert_eq!(order.len(), TRAIN as usize);
    let (x, y) = e
        .batch(
            "train",
            &order[..8],
            Some(&Normalize {
                mean: vec![0.5],
                std: vec![0.5],
            }),
            Some(Augment {
                crop_padding: 2,
                horizontal_flip: true,
            }),
        )
        .unwrap();
    assert_eq!(e.shape(x).unwrap(), vec![8, 1, 4, 4]);
    assert_eq!(e.shape(y).unwrap(), vec![8]);
    let v = e.to_vec(x).unwrap();
    // Normalised from [0, 1] (padding zeros become −1).
    assert!(v.iter().all(|&a| (-1.0..=1.0).contains(&a)));
    let labels = e.to_vec(y).unwrap();
    for (l, &i) in labels.iter().zip(&order[..8]) {
        assert_eq!(*l, (i % 5) as f32);
    }
}
