//! The importers on real datasets: Fashion-MNIST as distributed (gzip IDX) and the digits CSV
//! embedded in the repository.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use chiron_data::csv::{CsvOptions, MissingPolicy};
use chiron_data::{csv, idx};
use chiron_seal::Dtype;

const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

#[test]
fn fashion_mnist_gzip_idx() {
    let dir = Path::new(FASHION_MNIST);
    if !dir.is_dir() {
        assert!(
            std::env::var("CHIRON_REQUIRE_REAL_DATA").as_deref() != Ok("1"),
            "{FASHION_MNIST} is missing and CHIRON_REQUIRE_REAL_DATA=1"
        );
        eprintln!("skipped: {FASHION_MNIST} not present (set CHIRON_REQUIRE_REAL_DATA=1 to fail)");
        return;
    }
    let ds = idx::import(&[dir.to_path_buf()]).unwrap();
    assert_eq!(ds.dtype, Dtype::U8);
    assert_eq!(ds.shape, vec![1, 28, 28]);
    assert_eq!(ds.classes, 10);
    assert_eq!(ds.splits.len(), 2);
    assert_eq!(ds.splits[0].name, "train");
    assert_eq!(ds.splits[0].labels.len(), 60_000);
    assert_eq!(ds.splits[0].features.len(), 60_000 * 784);
    assert_eq!(ds.splits[1].name, "test");
    assert_eq!(ds.splits[1].labels.len(), 10_000);
    assert_eq!(ds.splits[1].features.len(), 10_000 * 784);
    // The published first labels: ankle boot, then t-shirt, t-shirt, dress; ankle boot, pullover.
    assert_eq!(ds.splits[0].labels[..4], [9, 0, 0, 3]);
    assert_eq!(ds.splits[1].labels[..2], [9, 2]);
    for split in &ds.splits {
        let mut counts = [0usize; 10];
        for &l in &split.labels {
            counts[l as usize] += 1;
        }
        // Fashion-MNIST is balanced: 6000 / 1000 images of each class.
        assert!(
            counts.iter().all(|&c| c == split.labels.len() / 10),
            "{counts:?}"
        );
    }
}

#[test]
fn embedded_digits_csv() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../data/digits/digits.csv.gz");
    let opts = CsvOptions {
        label_column: "64".into(),
        has_header: false,
        delimiter: b',',
        missing: MissingPolicy::Error,
        value_map: vec![],
    };
    let ds = csv::import(&[path], &opts).unwrap();
    assert_eq!(ds.dtype, Dtype::F32);
    assert_eq!(ds.shape, vec![64]);
    assert_eq!(ds.classes, 10);
    assert!(ds.class_names.is_empty());
    assert_eq!(ds.splits.len(), 1);
    assert_eq!(ds.splits[0].labels.len(), 1797);
    assert_eq!(ds.splits[0].features.len(), 1797 * 64 * 4);
    // First row of the file: 0,0,5,13,9,1,0,0,... label 0; second row's label is 1.
    let first: Vec<f32> = ds.splits[0].features[..8 * 4]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(first, [0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]);
    assert_eq!(ds.splits[0].labels[..2], [0, 1]);
    common::seal_and_compare(&ds);
}
