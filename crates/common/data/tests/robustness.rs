//! Arbitrary and mutated input never panics an importer, and CSV numbers survive the text round
//! trip exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use chiron_data::cifar::{self, Cifar100Label};
use chiron_data::csv::{self, CsvOptions, MissingPolicy};
use chiron_data::images::{self, ImageOptions};
use chiron_data::{idx, npy};
use common::f32_bytes;
use proptest::prelude::*;

/// Header-like prefixes, so that random tails reach the code past the magic checks.
fn with_prefix(kind: u8, tail: Vec<u8>) -> Vec<u8> {
    let prefix: &[u8] = match kind % 5 {
        0 => b"",
        1 => &[0, 0, 8, 3],
        2 => &[0, 0, 8, 1],
        3 => b"\x93NUMPY\x01\x00",
        _ => b"\x89PNG\r\n\x1a\n",
    };
    [prefix, &tail].concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_never_panic(kind in any::<u8>(), tail in prop::collection::vec(any::<u8>(), 0..200)) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = with_prefix(kind, tail);

        let a = dir.path().join("train-images-idx3-ubyte");
        let b = dir.path().join("train-labels-idx1-ubyte");
        std::fs::write(&a, &bytes).unwrap();
        std::fs::write(&b, &bytes).unwrap();
        let _ = idx::import(&[dir.path().to_path_buf()]);
        let _ = idx::import(&[a.clone(), b.clone()]);
        let _ = cifar::import(std::slice::from_ref(&a), None, Cifar100Label::Fine);
        let _ = npy::import(&[a.clone(), b.clone()]);
        let opts = CsvOptions {
            label_column: "0".into(),
            has_header: false,
            delimiter: b',',
            missing: MissingPolicy::Mean,
            value_map: vec![],
        };
        let _ = csv::import(&[a, b], &opts);

        for class in ["x", "y"] {
            let class_dir = dir.path().join("img").join(class);
            std::fs::create_dir_all(&class_dir).unwrap();
            std::fs::write(class_dir.join("1.png"), &bytes).unwrap();
        }
        let _ = images::import(&[dir.path().join("img")], &ImageOptions::default());
    }

    #[test]
    fn csv_numbers_round_trip_exactly(
        rows in prop::collection::vec(
            (prop::collection::vec(any::<f32>().prop_filter("finite", |v| v.is_finite()), 3), 0u32..5),
            1..30,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("a,b,label,c\n");
        let mut expected = Vec::new();
        let mut labels = Vec::new();
        for (values, label) in &rows {
            text += &format!("{},{},{label},{}\n", values[0], values[1], values[2]);
            expected.extend_from_slice(values);
            labels.push(*label);
        }
        let path: PathBuf = dir.path().join("r.csv");
        std::fs::write(&path, text).unwrap();
        let opts = CsvOptions {
            label_column: "label".into(),
            has_header: true,
            delimiter: b',',
            missing: MissingPolicy::Error,
            value_map: vec![],
        };
        let ds = csv::import(&[path], &opts).unwrap();
        prop_assert_eq!(&ds.splits[0].features, &f32_bytes(&expected));
        prop_assert_eq!(&ds.splits[0].labels, &labels);
    }
}
