//! NumPy importer: round trips through `.npy` files written by npyz and by hand, and refusals
//! that name the file and index but never a value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use chiron_data::npy;
use chiron_seal::Dtype;
use common::{assert_hides, assert_mentions, err_text, f32_bytes, seal_and_compare, write};
use npyz::WriterBuilder;

/// An `.npy` file of `data` with numpy's default dtype for `T`.
fn npy_bytes<T: npyz::AutoSerialize + Clone>(shape: &[u64], data: &[T]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().cloned()).unwrap();
    w.finish().unwrap();
    buf
}

/// An `.npy` file with an explicit type string (e.g. big-endian `>f4`) and order.
fn npy_typed<T: npyz::Serialize + Clone>(
    type_str: &str,
    order: npyz::Order,
    shape: &[u64],
    data: &[T],
) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .dtype(npyz::DType::Plain(type_str.parse().unwrap()))
        .order(order)
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().cloned()).unwrap();
    w.finish().unwrap();
    buf
}

/// A version 1.0 `.npy` file written by hand: magic, version, u16 header length, the dict padded
/// with spaces and a newline to a multiple of 64 bytes, then `data`.
fn npy_by_hand(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn put(dir: &Path, name: &str, bytes: Vec<u8>) -> PathBuf {
    let path = dir.join(name);
    write(&path, &bytes, false);
    path
}

#[test]
fn u8_images_with_any_integer_labels_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let train_x: Vec<u8> = (0..4 * 2 * 3).map(|i| (i * 11) as u8).collect();
    let test_x: Vec<u8> = (0..2 * 2 * 3).map(|i| (200 - i) as u8).collect();
    let paths = [
        put(dir.path(), "x_train.npy", npy_bytes(&[4, 2, 3], &train_x)),
        put(
            dir.path(),
            "y_train.npy",
            npy_bytes::<i64>(&[4], &[0, 6, 2, 2]),
        ),
        put(dir.path(), "x_test.npy", npy_bytes(&[2, 2, 3], &test_x)),
        put(dir.path(), "y_test.npy", npy_bytes::<u16>(&[2], &[1, 0])),
    ];
    let ds = npy::import(&paths).unwrap();
    assert_eq!(ds.dtype, Dtype::U8);
    assert_eq!(ds.shape, vec![2, 3]);
    assert_eq!(ds.classes, 7);
    assert_eq!(ds.splits[0].name, "train");
    assert_eq!(ds.splits[0].features, train_x);
    assert_eq!(ds.splits[0].labels, vec![0, 6, 2, 2]);
    assert_eq!(ds.splits[1].name, "test");
    assert_eq!(ds.splits[1].features, test_x);
    assert_eq!(ds.splits[1].labels, vec![1, 0]);
    seal_and_compare(&ds);
}

#[test]
fn floats_and_integers_become_little_endian_f32() {
    let dir = tempfile::tempdir().unwrap();
    let train: Vec<f32> = vec![0.5, -1.25, 3.0, 1e-3, 7.75, -0.0];
    let test: Vec<f64> = vec![2.5, -8.0, 0.125];
    let paths = [
        // Big-endian on disk: the importer must still store little-endian.
        put(
            dir.path(),
            "a.npy",
            npy_typed(">f4", npyz::Order::C, &[2, 3], &train),
        ),
        put(
            dir.path(),
            "b.npy",
            npy_typed(">i4", npyz::Order::C, &[2], &[1i32, 0]),
        ),
        put(dir.path(), "c.npy", npy_bytes(&[1, 3], &test)),
        put(dir.path(), "d.npy", npy_bytes::<u8>(&[1], &[1])),
    ];
    let ds = npy::import(&paths).unwrap();
    assert_eq!(ds.dtype, Dtype::F32);
    assert_eq!(ds.shape, vec![3]);
    assert_eq!(ds.classes, 2);
    assert_eq!(ds.splits[0].features, f32_bytes(&train));
    assert_eq!(ds.splits[1].features, f32_bytes(&[2.5, -8.0, 0.125]));
    seal_and_compare(&ds);

    let ints: Vec<i16> = vec![-300, 0, 12, 32767];
    let paths = [
        put(dir.path(), "i.npy", npy_bytes(&[1, 2, 1, 2], &ints)),
        put(dir.path(), "l.npy", npy_bytes::<i8>(&[1], &[3])),
    ];
    let ds = npy::import(&paths).unwrap();
    assert_eq!(ds.dtype, Dtype::F32);
    assert_eq!(ds.shape, vec![2, 1, 2]);
    assert_eq!(ds.splits.len(), 1);
    assert_eq!(
        ds.splits[0].features,
        f32_bytes(&[-300.0, 0.0, 12.0, 32767.0])
    );
    assert_eq!(ds.classes, 4);
}

#[test]
fn hand_written_v1_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let x: Vec<u8> = (1..=6).collect();
    let paths = [
        put(
            dir.path(),
            "x.npy",
            npy_by_hand(
                "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2), }",
                &x,
            ),
        ),
        put(
            dir.path(),
            "y.npy",
            npy_by_hand(
                "{'descr': '<u4', 'fortran_order': False, 'shape': (3,), }",
                &[2u32, 0, 1]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<_>>(),
            ),
        ),
    ];
    let ds = npy::import(&paths).unwrap();
    assert_eq!(ds.shape, vec![2]);
    assert_eq!(ds.splits[0].features, x);
    assert_eq!(ds.splits[0].labels, vec![2, 0, 1]);
}

#[test]
fn odd_path_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = put(dir.path(), "x.npy", npy_bytes::<u8>(&[1, 1], &[1]));
    let e = err_text(npy::import(&[x]));
    assert_mentions(&e, &["pairs", "1 paths"]);
}

#[test]
fn fortran_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = [
        put(
            dir.path(),
            "f.npy",
            npy_typed("<f4", npyz::Order::Fortran, &[2, 2], &[1f32, 2., 3., 4.]),
        ),
        put(dir.path(), "y.npy", npy_bytes::<u8>(&[2], &[0, 1])),
    ];
    let e = err_text(npy::import(&paths));
    assert_mentions(&e, &["f.npy", "Fortran"]);
}

#[test]
fn non_finite_values_name_the_flat_index_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let y = put(dir.path(), "y.npy", npy_bytes::<u8>(&[2], &[0, 1]));
    let x = put(
        dir.path(),
        "x.npy",
        npy_bytes::<f32>(&[2, 3], &[1., 2., 3., 4., f32::NAN, 6.]),
    );
    let e = err_text(npy::import(&[x, y.clone()]));
    assert_mentions(&e, &["x.npy", "element 4", "not a finite"]);

    // Finite in f64, infinite once narrowed.
    let x = put(
        dir.path(),
        "big.npy",
        npy_bytes::<f64>(&[2, 1], &[1.0, 4.2e300]),
    );
    let e = err_text(npy::import(&[x, y]));
    assert_mentions(&e, &["big.npy", "element 1"]);
    assert_hides(&e, dir.path(), &["4.2", "e300", "e+300"]);
}

#[test]
fn bad_labels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = put(dir.path(), "x.npy", npy_bytes::<u8>(&[3, 1], &[1, 2, 3]));
    let neg = put(dir.path(), "neg.npy", npy_bytes::<i32>(&[3], &[0, 1, -77]));
    let e = err_text(npy::import(&[x.clone(), neg]));
    assert_mentions(&e, &["neg.npy", "label 2", "negative"]);
    assert_hides(&e, dir.path(), &["-77", "77"]);

    let short = put(dir.path(), "short.npy", npy_bytes::<u8>(&[2], &[0, 1]));
    let e = err_text(npy::import(&[x.clone(), short]));
    assert_mentions(&e, &["short.npy", "2 labels", "3 records"]);

    let float = put(
        dir.path(),
        "float.npy",
        npy_bytes::<f32>(&[3], &[0., 1., 0.]),
    );
    let e = err_text(npy::import(&[x.clone(), float]));
    assert_mentions(&e, &["float.npy", "integer dtype"]);

    let two_d = put(dir.path(), "2d.npy", npy_bytes::<u8>(&[3, 1], &[0, 1, 0]));
    let e = err_text(npy::import(&[x, two_d]));
    assert_mentions(&e, &["2d.npy", "1-D"]);
}

#[test]
fn feature_shapes_must_fit_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let y2 = put(dir.path(), "y2.npy", npy_bytes::<u8>(&[2], &[0, 1]));
    let flat = put(dir.path(), "flat.npy", npy_bytes::<u8>(&[2], &[0, 1]));
    let e = err_text(npy::import(&[flat, y2.clone()]));
    assert_mentions(&e, &["flat.npy", "1 dimension"]);

    let deep = put(
        dir.path(),
        "deep.npy",
        npy_bytes::<u8>(&[2, 1, 1, 1, 1], &[0, 1]),
    );
    let e = err_text(npy::import(&[deep, y2.clone()]));
    assert_mentions(&e, &["deep.npy", "5 dimension"]);

    let a = put(dir.path(), "a.npy", npy_bytes::<u8>(&[2, 2], &[0, 1, 2, 3]));
    let b = put(dir.path(), "b.npy", npy_bytes::<u8>(&[1, 3], &[0, 1, 2]));
    let y1 = put(dir.path(), "y1.npy", npy_bytes::<u8>(&[1], &[0]));
    let e = err_text(npy::import(&[a.clone(), y2.clone(), b, y1.clone()]));
    assert_mentions(&e, &["b.npy", "[3]", "[2]", "a.npy"]);

    let f = put(dir.path(), "f.npy", npy_bytes::<f32>(&[1, 2], &[0., 1.]));
    let e = err_text(npy::import(&[a, y2, f, y1]));
    assert_mentions(&e, &["f.npy", "f32", "u8"]);
}

#[test]
fn malformed_and_hostile_files_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let y = put(dir.path(), "y.npy", npy_bytes::<u8>(&[1], &[0]));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("magic.npy", b"NOTNUMPY-at-all".to_vec(), "bad magic"),
        (
            "trunc.npy",
            npy_by_hand(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4), }",
                &[0; 15],
            ),
            "truncated",
        ),
        (
            "trail.npy",
            npy_by_hand(
                "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 4), }",
                &[0; 5],
            ),
            "trailing",
        ),
        (
            // 2^120 elements declared: the size product overflows u64.
            "huge.npy",
            npy_by_hand(
                "{'descr': '|u1', 'fortran_order': False, 'shape': (1099511627776, 1099511627776, 1099511627776), }",
                &[0; 8],
            ),
            "truncated",
        ),
        (
            "zero.npy",
            npy_by_hand(
                "{'descr': '|u1', 'fortran_order': False, 'shape': (0, 4), }",
                &[],
            ),
            "zero-length",
        ),
        (
            "nested.npy",
            npy_by_hand(
                &format!(
                    "{{'descr': {}'|u1'{}, 'fortran_order': False, 'shape': (1, 1), }}",
                    "[".repeat(200),
                    "]".repeat(200)
                ),
                &[0],
            ),
            "structured",
        ),
        (
            "half.npy",
            npy_by_hand(
                "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2), }",
                &[0; 4],
            ),
            "not supported",
        ),
    ];
    for (name, bytes, why) in cases {
        let x = put(dir.path(), name, bytes);
        let e = err_text(npy::import(&[x, y.clone()]));
        assert_mentions(&e, &[name, why]);
    }

    // Version 2 header declaring a 4 GiB header text in a tiny file.
    let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
    v2.extend_from_slice(&u32::MAX.to_le_bytes());
    v2.extend_from_slice(b"{}");
    let x = put(dir.path(), "v2.npy", v2);
    let e = err_text(npy::import(&[x, y]));
    assert_mentions(&e, &["v2.npy", "truncated"]);
}
