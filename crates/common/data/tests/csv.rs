//! CSV importer: round trips (header, no header, gzip, string labels, several files, missing
//! values under each policy, value maps) and refusals whose messages name file, line and column
//! but never the cell.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use chiron_data::csv::{self, CsvOptions, MissingPolicy};
use chiron_seal::Dtype;
use common::{assert_hides, assert_mentions, err_text, f32_bytes, seal_and_compare, write};

fn opts(label: &str) -> CsvOptions {
    CsvOptions {
        label_column: label.into(),
        has_header: true,
        delimiter: b',',
        missing: MissingPolicy::Error,
        value_map: vec![],
    }
}

fn file(dir: &Path, name: &str, text: &str, gz: bool) -> PathBuf {
    let path = dir.join(name);
    write(&path, text.as_bytes(), gz);
    path
}

#[test]
fn header_with_integer_labels_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    // Label column in the middle, whitespace around cells, exponent and sign forms.
    let p = file(
        dir.path(),
        "data.csv",
        "a,label,b,c\n1.5, 2 ,-3,0.25\n 1e3,0,4.75 ,-0\n7,5,8,9\n",
        false,
    );
    let ds = csv::import(&[p], &opts("label")).unwrap();
    assert_eq!(ds.dtype, Dtype::F32);
    assert_eq!(ds.shape, vec![3]);
    assert_eq!(ds.classes, 6);
    assert!(ds.class_names.is_empty());
    assert_eq!(ds.splits.len(), 1);
    assert_eq!(ds.splits[0].name, "train");
    assert_eq!(ds.splits[0].labels, vec![2, 0, 5]);
    assert_eq!(
        ds.splits[0].features,
        f32_bytes(&[1.5, -3.0, 0.25, 1000.0, 4.75, -0.0, 7.0, 8.0, 9.0])
    );
    seal_and_compare(&ds);
}

#[test]
fn no_header_gzip_and_tab_delimiter_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "data.tsv.gz", "0.5\t1\t2\n3\t4\t0\n", true);
    let o = CsvOptions {
        has_header: false,
        delimiter: b'\t',
        ..opts("2")
    };
    let ds = csv::import(std::slice::from_ref(&p), &o).unwrap();
    assert_eq!(ds.shape, vec![2]);
    assert_eq!(ds.classes, 3);
    assert_eq!(ds.splits[0].labels, vec![2, 0]);
    assert_eq!(ds.splits[0].features, f32_bytes(&[0.5, 1.0, 3.0, 4.0]));

    let o = CsvOptions {
        has_header: false,
        delimiter: b'\t',
        ..opts("label")
    };
    let e = err_text(csv::import(&[p], &o));
    assert_mentions(&e, &["data.tsv.gz", "\"label\"", "0-based index", "0 to 2"]);
}

#[test]
fn string_labels_share_one_mapping_across_split_files() {
    let dir = tempfile::tempdir().unwrap();
    let train = file(
        dir.path(),
        "Train.csv",
        "x,y,species\n1,2,virginica\n3,4,setosa\n5,6,versicolor\n",
        false,
    );
    // The test file lacks one class: ids still come from the shared sorted set.
    let test = file(
        dir.path(),
        "test.csv.gz",
        "x,y,species\n7,8,versicolor\n9,10,virginica\n",
        true,
    );
    let ds = csv::import(&[train, test], &opts("species")).unwrap();
    assert_eq!(ds.class_names, vec!["setosa", "versicolor", "virginica"]);
    assert_eq!(ds.classes, 3);
    assert_eq!(ds.splits[0].name, "train");
    assert_eq!(ds.splits[0].labels, vec![2, 0, 1]);
    assert_eq!(
        ds.splits[0].features,
        f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    );
    assert_eq!(ds.splits[1].name, "test");
    assert_eq!(ds.splits[1].labels, vec![1, 2]);
    assert_eq!(ds.splits[1].features, f32_bytes(&[7.0, 8.0, 9.0, 10.0]));
    seal_and_compare(&ds);
}

#[test]
fn mixed_integer_and_text_labels_become_strings_sorted_bytewise() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "d.csv", "f,l\n1,10\n2,9\n3,b\n4,B\n", false);
    let ds = csv::import(&[p], &opts("l")).unwrap();
    assert_eq!(ds.class_names, vec!["10", "9", "B", "b"]);
    assert_eq!(ds.splits[0].labels, vec![0, 1, 3, 2]);
}

const MISSING: &str = "a,b,label\n1,,0\n3,NA,1\n,6,0\n5,8,1\n";

#[test]
fn missing_cells_error_by_default_naming_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "m.csv", MISSING, false);
    let e = err_text(csv::import(&[p], &opts("label")));
    assert_mentions(&e, &["m.csv", "line 2", "column \"b\"", "missing value"]);
    // The hint names the flags that fix it.
    assert_mentions(&e, &["--missing zero", "--missing mean"]);
}

#[test]
fn missing_cells_become_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "m.csv", MISSING, false);
    let o = CsvOptions {
        missing: MissingPolicy::Zero,
        ..opts("label")
    };
    let ds = csv::import(&[p], &o).unwrap();
    assert_eq!(
        ds.splits[0].features,
        f32_bytes(&[1.0, 0.0, 3.0, 0.0, 0.0, 6.0, 5.0, 8.0])
    );
}

#[test]
fn missing_cells_become_the_column_mean_of_their_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "m.csv", MISSING, false);
    let o = CsvOptions {
        missing: MissingPolicy::Mean,
        ..opts("label")
    };
    let ds = csv::import(&[p], &o).unwrap();
    // Column a: mean(1, 3, 5) = 3; column b: mean(6, 8) = 7.
    assert_eq!(
        ds.splits[0].features,
        f32_bytes(&[1.0, 7.0, 3.0, 7.0, 3.0, 6.0, 5.0, 8.0])
    );
    seal_and_compare(&ds);

    let p = file(
        dir.path(),
        "empty_col.csv",
        "a,b,label\n1,,0\n2,?,1\n",
        false,
    );
    let e = err_text(csv::import(&[p], &o));
    assert_mentions(&e, &["empty_col.csv", "column \"b\"", "no values"]);
}

#[test]
fn nan_counts_as_missing_and_infinity_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "n.csv", "a,label\n1,0\nNaN,1\n", false);
    let e = err_text(csv::import(std::slice::from_ref(&p), &opts("label")));
    assert_mentions(&e, &["n.csv", "line 3", "column \"a\"", "missing"]);
    let o = CsvOptions {
        missing: MissingPolicy::Zero,
        ..opts("label")
    };
    assert_eq!(
        csv::import(&[p], &o).unwrap().splits[0].features,
        f32_bytes(&[1.0, 0.0])
    );

    for bad in ["inf", "-Infinity", "1e39"] {
        let p = file(
            dir.path(),
            "i.csv",
            &format!("a,label\n1,0\n{bad},1\n"),
            false,
        );
        let e = err_text(csv::import(&[p], &o));
        assert_mentions(&e, &["i.csv", "line 3", "column \"a\"", "not finite"]);
        assert_hides(&e, dir.path(), &[bad]);
    }
}

#[test]
fn value_map_maps_exact_texts_and_other_text_is_refused_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(
        dir.path(),
        "v.csv",
        "smoker,age,label\nyes,30,1\n no ,41,0\nNA,50,1\n",
        false,
    );
    let o = CsvOptions {
        value_map: vec![("yes".into(), 1.0), ("no".into(), 0.0), ("NA".into(), -1.0)],
        ..opts("label")
    };
    let ds = csv::import(std::slice::from_ref(&p), &o).unwrap();
    assert_eq!(
        ds.splits[0].features,
        f32_bytes(&[1.0, 30.0, 0.0, 41.0, -1.0, 50.0])
    );

    let p = file(
        dir.path(),
        "secret.csv",
        "smoker,age,label\nyes,30,1\nyes,S3cr3tPatientName,0\n",
        false,
    );
    let e = err_text(csv::import(&[p], &o));
    assert_mentions(
        &e,
        &[
            "secret.csv",
            "line 3",
            "column \"age\"",
            "non-numeric value",
            "--map-value TEXT=NUMBER",
        ],
    );
    assert_hides(&e, dir.path(), &["S3cr3tPatientName"]);

    let bad = CsvOptions {
        value_map: vec![("x".into(), f32::NAN)],
        ..opts("label")
    };
    let e = err_text(csv::import(&[dir.path().join("v.csv")], &bad));
    assert_mentions(&e, &["value map entry 1", "not finite"]);
}

#[test]
fn wrong_field_count_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "w.csv", "a,b,label\n1,2,0\n3,4,5,1\n", false);
    let e = err_text(csv::import(&[p], &opts("label")));
    assert_mentions(&e, &["w.csv", "line 3", "4 fields", "expected 3"]);
}

#[test]
fn empty_and_header_only_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "empty.csv", "", false);
    assert_mentions(
        &err_text(csv::import(&[p], &opts("label"))),
        &["empty.csv", "empty"],
    );
    let p = file(dir.path(), "head.csv", "a,b,label\n", false);
    assert_mentions(
        &err_text(csv::import(&[p], &opts("label"))),
        &["head.csv", "only a header"],
    );
}

#[test]
fn absent_label_column_lists_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(dir.path(), "c.csv", "alpha,beta,gamma\n1,2,0\n", false);
    let e = err_text(csv::import(&[p], &opts("label")));
    assert_mentions(
        &e,
        &["c.csv", "\"label\"", "\"alpha\"", "\"beta\"", "\"gamma\""],
    );
}

#[test]
fn missing_label_names_line_and_column_not_other_cells() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(
        dir.path(),
        "l.csv",
        "a,label\n1,cat\n2,dog\n31337, \n",
        false,
    );
    let e = err_text(csv::import(&[p], &opts("label")));
    assert_mentions(
        &e,
        &["l.csv", "line 4", "column \"label\"", "missing label"],
    );
    assert_hides(&e, dir.path(), &["31337", "cat", "dog"]);
}

#[test]
fn single_string_class_is_refused_without_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = file(
        dir.path(),
        "one.csv",
        "a,label\n1,onlyclass\n2,onlyclass\n",
        false,
    );
    let e = err_text(csv::import(&[p], &opts("label")));
    assert_mentions(&e, &["single class"]);
    assert_hides(&e, dir.path(), &["onlyclass"]);
}

#[test]
fn several_files_need_distinct_valid_split_names_and_equal_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let a = file(dir.path(), "train.csv", "a,label\n1,0\n2,1\n", false);
    let b = file(&sub, "TRAIN.csv.gz", "a,label\n1,0\n", true);
    let e = err_text(csv::import(&[a.clone(), b], &opts("label")));
    assert_mentions(&e, &["train.csv", "TRAIN.csv.gz", "\"train\""]);

    let c = file(dir.path(), "my data.csv", "a,label\n1,0\n", false);
    let e = err_text(csv::import(&[a.clone(), c], &opts("label")));
    assert_mentions(&e, &["my data.csv", "\"my data\"", "a-z"]);

    let d = file(dir.path(), "test.csv", "b,label\n1,0\n", false);
    let e = err_text(csv::import(&[a, d], &opts("label")));
    assert_mentions(&e, &["test.csv", "columns differ", "train.csv"]);
}

#[test]
fn non_utf8_cell_is_refused_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.csv");
    std::fs::write(&path, b"a,label\n1,0\n\xff\xfe,1\n").unwrap();
    let e = err_text(csv::import(&[path], &opts("label")));
    assert_mentions(&e, &["u.csv", "line 3", "column \"a\"", "UTF-8"]);
}
