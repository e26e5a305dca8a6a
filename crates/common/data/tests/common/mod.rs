//! Helpers shared by the importer tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;

use chiron_data::{Dataset, Result};
use chiron_seal::{MasterKey, SealOptions, SealedDataset};

/// Writes `bytes` to `path`, gzip-compressed when `gz`.
pub fn write(path: &Path, bytes: &[u8], gz: bool) {
    if gz {
        let mut enc =
            flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), Default::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

/// The error text of an import that must fail.
pub fn err_text(result: Result<Dataset>) -> String {
    match result {
        Ok(ds) => panic!("import succeeded but should have failed: {ds:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `text` contains every one of `parts`.
#[track_caller]
pub fn assert_mentions(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{text:?} should mention {p:?}");
    }
}

/// Seals `ds` under a fixed test key, opens the result and checks every record, label and split
/// against the in-memory dataset.
pub fn seal_and_compare(ds: &Dataset) {
    let key = MasterKey::from_bytes([7; 32]);
    let (sealed, header) = ds
        .seal(Vec::new(), &key, SealOptions::default(), |_| {})
        .unwrap();
    let opened = SealedDataset::open(sealed, &MasterKey::from_bytes([7; 32])).unwrap();
    let schema = &opened.header().schema;
    assert_eq!(schema, &header.schema);
    assert_eq!(schema.dtype, ds.dtype);
    assert_eq!(schema.shape, ds.shape);
    assert_eq!(schema.classes, ds.classes);
    // Names are sealed by default: none in the clear, the owner's key opens them.
    assert!(schema.class_names.is_empty());
    assert_eq!(
        header.sealed_class_names.is_some(),
        !ds.class_names.is_empty()
    );
    assert_eq!(opened.class_names(), ds.class_names);
    let fb = ds.feature_bytes();
    for (si, split) in ds.splits.iter().enumerate() {
        assert_eq!(schema.splits[si].name, split.name);
        assert_eq!(schema.splits[si].records, split.labels.len() as u64);
        for (i, (features, &label)) in split
            .features
            .chunks_exact(fb)
            .zip(&split.labels)
            .enumerate()
        {
            let record = opened.record(si, i as u64).unwrap();
            assert_eq!(&record.features[..], features, "split {si} record {i}");
            assert_eq!(record.label, label, "split {si} record {i}");
        }
    }
}

/// f32 values as the little-endian bytes a dataset stores.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Asserts that none of `secrets` occurs in `text` once the (random) temporary folder path is
/// removed, so a secret cannot hide behind a coincidence in the folder name.
#[track_caller]
pub fn assert_hides(text: &str, dir: &Path, secrets: &[&str]) {
    let stripped = text.replace(&dir.display().to_string(), "<dir>");
    for s in secrets {
        assert!(!stripped.contains(s), "{text:?} must not contain {s:?}");
    }
}
