//! IDX importer: round trips through real IDX files (plain and gzip) and every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use chiron_data::idx;
use chiron_seal::Dtype;
use common::{assert_mentions, err_text, seal_and_compare, write};

/// An IDX file: magic `00 00 <type> <ndims>`, big-endian dimensions, data.
fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn pixels(n: usize, h: usize, w: usize, salt: u8) -> Vec<u8> {
    (0..n * h * w)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

struct Mnist {
    train_images: Vec<u8>,
    train_labels: Vec<u8>,
    test_images: Vec<u8>,
    test_labels: Vec<u8>,
}

const H: usize = 4;
const W: usize = 3;

/// Writes a tiny MNIST-style folder (5 train, 3 test images of 4x3) under `dir`.
fn write_mnist(dir: &Path, gz: bool, dotted: bool, with_test: bool) -> Mnist {
    let m = Mnist {
        train_images: pixels(5, H, W, 1),
        train_labels: vec![3, 0, 2, 1, 3],
        test_images: pixels(3, H, W, 99),
        test_labels: vec![2, 3, 0],
    };
    let name = |prefix: &str, kind: &str| {
        let (what, nd) = if kind == "images" {
            ("images", 3)
        } else {
            ("labels", 1)
        };
        let sep = if dotted { "." } else { "-" };
        let ext = if gz { ".gz" } else { "" };
        dir.join(format!("{prefix}-{what}{sep}idx{nd}-ubyte{ext}"))
    };
    let dims = |n: usize| [n as u32, H as u32, W as u32];
    write(
        &name("train", "images"),
        &idx_bytes(8, &dims(5), &m.train_images),
        gz,
    );
    write(
        &name("train", "labels"),
        &idx_bytes(8, &[5], &m.train_labels),
        gz,
    );
    if with_test {
        write(
            &name("t10k", "images"),
            &idx_bytes(8, &dims(3), &m.test_images),
            gz,
        );
        write(
            &name("t10k", "labels"),
            &idx_bytes(8, &[3], &m.test_labels),
            gz,
        );
    }
    m
}

fn check(ds: &chiron_data::Dataset, m: &Mnist, with_test: bool) {
    assert_eq!(ds.dtype, Dtype::U8);
    assert_eq!(ds.shape, vec![1, H as u32, W as u32]);
    assert_eq!(ds.classes, 4);
    assert!(ds.class_names.is_empty());
    assert_eq!(ds.splits[0].name, "train");
    assert_eq!(ds.splits[0].features, m.train_images);
    assert_eq!(
        ds.splits[0].labels,
        m.train_labels
            .iter()
            .map(|&l| u32::from(l))
            .collect::<Vec<_>>()
    );
    if with_test {
        assert_eq!(ds.splits.len(), 2);
        assert_eq!(ds.splits[1].name, "test");
        assert_eq!(ds.splits[1].features, m.test_images);
        assert_eq!(ds.splits[1].labels, vec![2, 3, 0]);
    } else {
        assert_eq!(ds.splits.len(), 1);
    }
}

#[test]
fn plain_folder_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_mnist(dir.path(), false, false, true);
    let ds = idx::import(&[dir.path().to_path_buf()]).unwrap();
    check(&ds, &m, true);
}

#[test]
fn gzip_folder_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_mnist(dir.path(), true, false, true);
    let ds = idx::import(&[dir.path().to_path_buf()]).unwrap();
    check(&ds, &m, true);
}

#[test]
fn dotted_spelling_and_train_only_folder() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_mnist(dir.path(), false, true, false);
    let ds = idx::import(&[dir.path().to_path_buf()]).unwrap();
    check(&ds, &m, false);
}

#[test]
fn explicit_files_in_any_order_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let m = write_mnist(dir.path(), true, false, true);
    let p = |n: &str| dir.path().join(n);
    let files = vec![
        p("t10k-labels-idx1-ubyte.gz"),
        p("train-images-idx3-ubyte.gz"),
        p("t10k-images-idx3-ubyte.gz"),
        p("train-labels-idx1-ubyte.gz"),
    ];
    let ds = idx::import(&files).unwrap();
    check(&ds, &m, true);
}

#[test]
fn sealed_records_equal_imported_records() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), true, false, true);
    let ds = idx::import(&[dir.path().to_path_buf()]).unwrap();
    seal_and_compare(&ds);
}

/// A folder with valid train files, then `name` overwritten with `bytes`.
fn broken(name: &str, bytes: Vec<u8>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false, false, false);
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn import_dir(dir: &tempfile::TempDir) -> String {
    err_text(idx::import(&[dir.path().to_path_buf()]))
}

#[test]
fn bad_magic_is_refused_naming_the_file() {
    let (dir, _) = broken(
        "train-images-idx3-ubyte",
        b"\x01\x02\x08\x03garbage-garbage".to_vec(),
    );
    let e = import_dir(&dir);
    assert_mentions(&e, &["train-images-idx3-ubyte", "bad magic"]);
}

#[test]
fn unsupported_type_code_is_refused() {
    let data = vec![0u8; 5 * H * W * 4];
    let (dir, _) = broken(
        "train-images-idx3-ubyte",
        idx_bytes(0x0D, &[5, H as u32, W as u32], &data),
    );
    let e = import_dir(&dir);
    assert_mentions(&e, &["train-images-idx3-ubyte", "unsupported", "0x0D"]);
}

#[test]
fn wrong_ndims_is_refused() {
    let (dir, _) = broken(
        "train-images-idx3-ubyte",
        idx_bytes(8, &[5, (H * W) as u32], &pixels(5, H, W, 0)),
    );
    let e = import_dir(&dir);
    assert_mentions(
        &e,
        &[
            "train-images-idx3-ubyte",
            "wrong ndims",
            "not an IDX images file",
            "00 00 08 02",
            "00 00 08 03",
        ],
    );
    let (dir, _) = broken("train-labels-idx1-ubyte", idx_bytes(8, &[5, 1], &[1; 5]));
    let e = import_dir(&dir);
    assert_mentions(
        &e,
        &["train-labels-idx1-ubyte", "wrong ndims", "00 00 08 01"],
    );
}

#[test]
fn a_magic_declaring_more_dimensions_never_reads_data_as_dimensions() {
    // The magic of a 4-dimension file on 3-dimension data: its "fourth dimension" would be the
    // first pixel bytes. Refused from the magic, and no number from the data shows.
    let mut bytes = idx_bytes(8, &[5, H as u32, W as u32], &[0xAB; 5 * H * W]);
    bytes[3] = 4;
    let (dir, _) = broken("train-images-idx3-ubyte", bytes);
    let e = import_dir(&dir);
    assert_mentions(
        &e,
        &[
            "train-images-idx3-ubyte",
            "not an IDX images file",
            "00 00 08 04",
        ],
    );
    assert!(!e.contains(&0xABAB_ABABu32.to_string()), "{e}");
    assert!(!e.contains("truncated") && !e.contains("trailing"), "{e}");

    // A labels file with an images magic: its label bytes are not read as dimensions either.
    let mut labels = idx_bytes(8, &[5], &[0xCD; 5]);
    labels[3] = 3;
    let (dir, _) = broken("train-labels-idx1-ubyte", labels);
    let e = import_dir(&dir);
    assert_mentions(
        &e,
        &[
            "train-labels-idx1-ubyte",
            "not an IDX labels file",
            "00 00 08 01",
        ],
    );
}

#[test]
fn labels_that_are_not_class_ids_are_refused_naming_file_and_record() {
    // A corrupt training label far above the rest would have made 201 classes.
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false, false, true);
    let labels = dir.path().join("train-labels-idx1-ubyte");
    std::fs::write(&labels, idx_bytes(8, &[5], &[3, 0, 2, 200, 1])).unwrap();
    let e = import_dir(&dir);
    assert_mentions(
        &e,
        &[
            "train-labels-idx1-ubyte",
            "record 3",
            "label 200",
            "no record has label 4",
            "--classes",
        ],
    );
    // Declared, the class count is checked instead, and a too-small one is refused.
    let declared = |n| {
        idx::import_with(
            &[dir.path().to_path_buf()],
            &idx::IdxOptions { classes: Some(n) },
        )
    };
    assert_eq!(declared(201).unwrap().classes, 201);
    let e = err_text(declared(10));
    assert_mentions(
        &e,
        &[
            "train-labels-idx1-ubyte",
            "record 3",
            "label 200",
            "--classes declares 10",
        ],
    );

    // A test label above every training label: a class the model never sees in training.
    std::fs::write(&labels, idx_bytes(8, &[5], &[3, 0, 2, 1, 3])).unwrap();
    let test_labels = dir.path().join("t10k-labels-idx1-ubyte");
    std::fs::write(&test_labels, idx_bytes(8, &[3], &[2, 0, 4])).unwrap();
    let e = import_dir(&dir);
    assert_mentions(
        &e,
        &[
            "t10k-labels-idx1-ubyte",
            "record 2",
            "label 4",
            "only go up to 3",
            "--classes",
        ],
    );
    let ds = declared(5).unwrap();
    assert_eq!(ds.classes, 5);
    assert_eq!(ds.splits[1].labels, vec![2, 0, 4]);
    let e = err_text(declared(4));
    assert_mentions(&e, &["t10k-labels-idx1-ubyte", "record 2", "label 4"]);
}

#[test]
fn truncated_and_oversized_files_are_refused() {
    let mut short = pixels(5, H, W, 0);
    short.pop();
    let (dir, _) = broken(
        "train-images-idx3-ubyte",
        idx_bytes(8, &[5, H as u32, W as u32], &short),
    );
    assert_mentions(&import_dir(&dir), &["train-images-idx3-ubyte", "truncated"]);

    let mut long = pixels(5, H, W, 0);
    long.push(0);
    let (dir, _) = broken(
        "train-images-idx3-ubyte",
        idx_bytes(8, &[5, H as u32, W as u32], &long),
    );
    assert_mentions(&import_dir(&dir), &["train-images-idx3-ubyte", "trailing"]);

    // Header cut inside its dimensions.
    let (dir, _) = broken("train-images-idx3-ubyte", vec![0, 0, 8, 3, 0, 0]);
    assert_mentions(&import_dir(&dir), &["train-images-idx3-ubyte", "truncated"]);
    let (dir, _) = broken("train-labels-idx1-ubyte", vec![0, 0]);
    assert_mentions(&import_dir(&dir), &["train-labels-idx1-ubyte", "truncated"]);
}

#[test]
fn hostile_dimensions_do_not_allocate() {
    // 2^96 declared pixels in a 20-byte file: must be refused from the header alone.
    let (dir, _) = broken(
        "train-images-idx3-ubyte",
        idx_bytes(8, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3, 4]),
    );
    assert_mentions(&import_dir(&dir), &["train-images-idx3-ubyte", "truncated"]);
}

#[test]
fn count_mismatch_is_refused() {
    let (dir, _) = broken("train-labels-idx1-ubyte", idx_bytes(8, &[4], &[1, 2, 3, 4]));
    let e = import_dir(&dir);
    assert_mentions(&e, &["train-labels-idx1-ubyte", "4 labels", "5 images"]);
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false, false, true);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let e = import_dir(&dir);
    assert_mentions(&e, &["t10k-images-idx3-ubyte", "missing labels file"]);

    let empty = tempfile::tempdir().unwrap();
    let e = import_dir(&empty);
    assert_mentions(&e, &["no training images", "train-images-idx3-ubyte"]);

    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false, false, false);
    let e = err_text(idx::import(&[dir.path().join("train-images-idx3-ubyte")]));
    assert_mentions(&e, &["train-images-idx3-ubyte", "missing labels file"]);
}

#[test]
fn mismatched_image_sizes_between_splits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false, false, true);
    write(
        &dir.path().join("t10k-images-idx3-ubyte"),
        &idx_bytes(8, &[3, 2, 2], &pixels(3, 2, 2, 0)),
        false,
    );
    let e = import_dir(&dir);
    assert_mentions(&e, &["t10k-images-idx3-ubyte", "2x2", "4x3"]);
}
