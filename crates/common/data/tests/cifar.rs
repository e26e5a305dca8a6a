//! CIFAR importer: round trips through real CIFAR-10 / CIFAR-100 batch files and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use chiron_data::cifar::{self, Cifar100Label, Variant};
use chiron_seal::Dtype;
use common::{assert_hides, assert_mentions, err_text, seal_and_compare, write};

const PIXELS: usize = 3072;

/// Pixels of record `i`, distinct per record and per channel plane.
fn image(i: usize, salt: u8) -> Vec<u8> {
    (0..PIXELS)
        .map(|p| (p as u8) ^ (i as u8).wrapping_mul(7) ^ salt ^ ((p / 1024) as u8 * 85))
        .collect()
}

/// A CIFAR-10 batch: label byte then 3072 pixel bytes per record.
fn cifar10_batch(labels: &[u8], salt: u8) -> (Vec<u8>, Vec<u8>) {
    let mut file = Vec::new();
    let mut pixels = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        file.push(l);
        let img = image(i, salt);
        file.extend_from_slice(&img);
        pixels.extend_from_slice(&img);
    }
    (file, pixels)
}

/// A CIFAR-100 batch: coarse label, fine label, then 3072 pixel bytes per record.
fn cifar100_batch(labels: &[(u8, u8)], salt: u8) -> (Vec<u8>, Vec<u8>) {
    let mut file = Vec::new();
    let mut pixels = Vec::new();
    for (i, &(coarse, fine)) in labels.iter().enumerate() {
        file.push(coarse);
        file.push(fine);
        let img = image(i, salt);
        file.extend_from_slice(&img);
        pixels.extend_from_slice(&img);
    }
    (file, pixels)
}

fn write_cifar10(dir: &Path, gz: bool) -> (Vec<u8>, Vec<u32>, Vec<u8>, Vec<u32>) {
    let (b1, p1) = cifar10_batch(&[3, 9, 0], 1);
    let (b2, p2) = cifar10_batch(&[5, 5], 2);
    let (t, pt) = cifar10_batch(&[1, 8], 3);
    // Written out of order: the importer must order by file name.
    write(&dir.join("data_batch_2.bin"), &b2, gz);
    write(&dir.join("test_batch.bin"), &t, gz);
    write(&dir.join("data_batch_1.bin"), &b1, gz);
    let train_pixels = [p1, p2].concat();
    (train_pixels, vec![3, 9, 0, 5, 5], pt, vec![1, 8])
}

#[test]
fn cifar10_folder_round_trips_with_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let (train_px, train_l, test_px, test_l) = write_cifar10(dir.path(), false);
    let names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    std::fs::write(
        dir.path().join("batches.meta.txt"),
        names.join("\n") + "\n\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("readme.html"), "ignored").unwrap();

    let ds = cifar::import(&[dir.path().to_path_buf()], None, Cifar100Label::Fine).unwrap();
    assert_eq!(ds.dtype, Dtype::U8);
    assert_eq!(ds.shape, vec![3, 32, 32]);
    assert_eq!(ds.classes, 10);
    assert_eq!(ds.class_names, names);
    assert_eq!(ds.splits.len(), 2);
    assert_eq!(ds.splits[0].name, "train");
    assert_eq!(ds.splits[0].features, train_px);
    assert_eq!(ds.splits[0].labels, train_l);
    assert_eq!(ds.splits[1].name, "test");
    assert_eq!(ds.splits[1].features, test_px);
    assert_eq!(ds.splits[1].labels, test_l);
    seal_and_compare(&ds);
}

#[test]
fn cifar10_gzip_files_given_explicitly_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (train_px, train_l, test_px, test_l) = write_cifar10(dir.path(), true);
    let files: Vec<_> = ["test_batch.bin", "data_batch_2.bin", "data_batch_1.bin"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    let ds = cifar::import(&files, Some(Variant::Cifar10), Cifar100Label::Fine).unwrap();
    assert_eq!(ds.splits[0].features, train_px);
    assert_eq!(ds.splits[0].labels, train_l);
    assert_eq!(ds.splits[1].features, test_px);
    assert_eq!(ds.splits[1].labels, test_l);
    assert!(ds.class_names.is_empty());
}

/// Pixels and `(coarse, fine)` labels of one split.
type Cifar100Split = (Vec<u8>, Vec<(u8, u8)>);

fn write_cifar100(dir: &Path) -> (Cifar100Split, Cifar100Split) {
    let train_l = vec![(4, 30), (19, 99), (0, 0)];
    let test_l = vec![(7, 55)];
    let (tr, trp) = cifar100_batch(&train_l, 10);
    let (te, tep) = cifar100_batch(&test_l, 20);
    write(&dir.join("train.bin"), &tr, false);
    write(&dir.join("test.bin"), &te, false);
    ((trp, train_l), (tep, test_l))
}

#[test]
fn cifar100_fine_and_coarse_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let ((trp, trl), (tep, tel)) = write_cifar100(dir.path());
    let fine: Vec<String> = (0..100).map(|i| format!("fine{i}")).collect();
    let coarse: Vec<String> = (0..20).map(|i| format!("coarse{i}")).collect();
    std::fs::write(dir.path().join("fine_label_names.txt"), fine.join("\n")).unwrap();
    std::fs::write(dir.path().join("coarse_label_names.txt"), coarse.join("\n")).unwrap();

    let root = [dir.path().to_path_buf()];
    let ds = cifar::import(&root, None, Cifar100Label::Fine).unwrap();
    assert_eq!(ds.classes, 100);
    assert_eq!(ds.class_names, fine);
    assert_eq!(ds.splits[0].features, trp);
    assert_eq!(
        ds.splits[0].labels,
        trl.iter().map(|&(_, f)| u32::from(f)).collect::<Vec<_>>()
    );
    assert_eq!(ds.splits[1].features, tep);
    assert_eq!(ds.splits[1].labels, vec![55]);
    seal_and_compare(&ds);

    let ds = cifar::import(&root, None, Cifar100Label::Coarse).unwrap();
    assert_eq!(ds.classes, 20);
    assert_eq!(ds.class_names, coarse);
    assert_eq!(
        ds.splits[0].labels,
        trl.iter().map(|&(c, _)| u32::from(c)).collect::<Vec<_>>()
    );
    assert_eq!(
        ds.splits[1].labels,
        tel.iter().map(|&(c, _)| u32::from(c)).collect::<Vec<_>>()
    );
    seal_and_compare(&ds);
}

#[test]
fn variant_is_guessed_from_sizes_when_names_are_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = cifar10_batch(&[1, 2], 0);
    write(&dir.path().join("mine.bin"), &b, false);
    let ds = cifar::import(&[dir.path().join("mine.bin")], None, Cifar100Label::Fine).unwrap();
    assert_eq!(ds.classes, 10);
    assert_eq!(ds.splits[0].name, "train");

    let (b, _) = cifar100_batch(&[(1, 2)], 0);
    write(&dir.path().join("other.bin"), &b, false);
    let ds = cifar::import(&[dir.path().join("other.bin")], None, Cifar100Label::Fine).unwrap();
    assert_eq!(ds.classes, 100);
}

#[test]
fn ambiguous_variant_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 3073 × 3074 bytes: a whole number of records of either size.
    let path = dir.path().join("blob.bin");
    write(&path, &vec![0u8; 3073 * 3074], false);
    let e = err_text(cifar::import(
        std::slice::from_ref(&path),
        None,
        Cifar100Label::Fine,
    ));
    assert_mentions(&e, &["fit both", "variant explicitly"]);

    let odd = dir.path().join("odd.bin");
    write(&odd, &vec![0u8; 5000], false);
    let e = err_text(cifar::import(&[odd], None, Cifar100Label::Fine));
    assert_mentions(&e, &["odd.bin", "cannot tell"]);

    // Published names of both variants together.
    let (b, _) = cifar10_batch(&[1], 0);
    write(&dir.path().join("data_batch_1.bin"), &b, false);
    write(&dir.path().join("train.bin"), &b, false);
    let files = [
        dir.path().join("data_batch_1.bin"),
        dir.path().join("train.bin"),
    ];
    let e = err_text(cifar::import(&files, None, Cifar100Label::Fine));
    assert_mentions(&e, &["CIFAR-10", "CIFAR-100", "variant explicitly"]);
}

#[test]
fn truncated_file_names_file_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut b, _) = cifar10_batch(&[1, 2, 3], 0);
    b.truncate(2 * 3073 + 100);
    let path = dir.path().join("data_batch_1.bin");
    write(&path, &b, false);
    let e = err_text(cifar::import(&[path], None, Cifar100Label::Fine));
    assert_mentions(
        &e,
        &["data_batch_1.bin", "not a multiple", "3073", "record 2"],
    );
}

#[test]
fn out_of_range_label_names_file_and_record_not_value() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = cifar10_batch(&[1, 2, 237], 0);
    let path = dir.path().join("data_batch_1.bin");
    write(&path, &b, false);
    let e = err_text(cifar::import(&[path], None, Cifar100Label::Fine));
    assert_mentions(&e, &["data_batch_1.bin", "record 2", "label"]);
    assert_hides(&e, dir.path(), &["237"]);

    let (b, _) = cifar100_batch(&[(1, 2), (1, 2), (1, 2), (1, 213)], 0);
    let path = dir.path().join("train.bin");
    write(&path, &b, false);
    let e = err_text(cifar::import(
        std::slice::from_ref(&path),
        None,
        Cifar100Label::Coarse,
    ));
    assert_mentions(&e, &["train.bin", "record 3", "fine label"]);
    assert_hides(&e, dir.path(), &["213"]);

    let (b, _) = cifar100_batch(&[(1, 2), (57, 2)], 0);
    write(&path, &b, false);
    let e = err_text(cifar::import(&[path], None, Cifar100Label::Fine));
    assert_mentions(&e, &["train.bin", "record 1", "coarse label"]);
    assert_hides(&e, dir.path(), &["57"]);
}

#[test]
fn wrong_number_of_class_names_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar10(dir.path(), false);
    std::fs::write(dir.path().join("batches.meta.txt"), "cat\ndog\n").unwrap();
    let e = err_text(cifar::import(
        &[dir.path().to_path_buf()],
        None,
        Cifar100Label::Fine,
    ));
    assert_mentions(&e, &["batches.meta.txt", "2 class names", "10 classes"]);
}

#[test]
fn folder_without_batches_and_empty_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
    let e = err_text(cifar::import(
        &[dir.path().to_path_buf()],
        None,
        Cifar100Label::Fine,
    ));
    assert_mentions(&e, &["no CIFAR batch"]);

    let path = dir.path().join("data_batch_1.bin");
    write(&path, &[], false);
    let e = err_text(cifar::import(&[path], None, Cifar100Label::Fine));
    assert_mentions(&e, &["data_batch_1.bin", "no records"]);
}
