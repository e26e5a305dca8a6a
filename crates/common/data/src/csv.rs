//! Delimited text tables (CSV, TSV, ...), plain or gzip-compressed: one record per row, one
//! column holding the label and every other column a numeric feature.
//!
//! Feature-cell rules, applied to the cell text with surrounding whitespace trimmed, in order:
//! 1. text equal to a key of [`CsvOptions::value_map`] becomes that key's number;
//! 2. a *missing* cell — empty, or `NA`, `N/A`, `NaN`, `null`, `None` (any letter case) or `?` —
//!    is handled by [`CsvOptions::missing`] (NaN counts as missing, as numpy and pandas use it);
//! 3. otherwise the text must parse as a finite `f32` (`inf` and numbers beyond the `f32` range
//!    are errors whatever the missing-value policy).
//!
//! A label cell is its trimmed text; an empty one is an error (no policy fills labels).
//!
//! Errors name the file, the 1-based line and the column, and never quote the cell: the data is
//! the owner's secret and error messages travel to logs and terminals.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chiron_seal::Dtype;

use crate::{Dataset, Error, Result, SplitData, classes_from_labels};

/// How a CSV source is read.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    /// The label column: its header name, or its 0-based index (`"0"`, `"1"`, ...) when the
    /// files have no header.
    pub label_column: String,
    /// Whether the first row of every file is a header of column names.
    pub has_header: bool,
    /// Field delimiter byte (`b','`, `b'\t'`, `b';'`, ...).
    pub delimiter: u8,
    /// What to do with missing feature cells.
    pub missing: MissingPolicy,
    /// Exact cell texts (after trimming) mapped to numbers, e.g. `("yes", 1.0)`; checked before
    /// any other rule, so it can also give a meaning to `NA` or `?`. Values must be finite.
    pub value_map: Vec<(String, f32)>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label_column: "label".into(),
            has_header: true,
            delimiter: b',',
            missing: MissingPolicy::Error,
            value_map: Vec::new(),
        }
    }
}

/// What a missing feature cell becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingPolicy {
    /// A missing cell is an error naming its file, line and column.
    #[default]
    Error,
    /// A missing cell becomes 0.0.
    Zero,
    /// A missing cell becomes the mean of the present values of its column in the same file;
    /// a column with no present value at all is an error.
    Mean,
}

/// Imports one or more CSV files.
///
/// One file makes split `train`; with several, each file's split is its file name lower-cased
/// without `.gz` and `.csv` (`train.csv` → `train`, `Test.csv.gz` → `test`), which must be a valid
/// split name (`[a-z0-9_-]{1,32}`) and differ between files. Files may be gzip-compressed (told by
/// content). All files must have the same columns (the same header, or without a header the same
/// number of fields).
///
/// Guarantees: dtype `f32`, shape `[features]` with features in column order, every value
/// finite; records in file order. Labels: if every label cell of every file is a non-negative
/// integer, those are the class ids and `classes` is the largest plus one (at least two), with no
/// class names; otherwise every distinct label text is a class, ids follow the byte-wise sorted
/// order of the texts over all files, and `class_names` holds the texts. A row with the wrong
/// number of fields, an empty file or one with only a header is an error.
pub fn import(paths: &[PathBuf], opts: &CsvOptions) -> Result<Dataset> {
    if paths.is_empty() {
        return Err(Error::Invalid("no CSV input given".into()));
    }
    if let Some(i) = opts.value_map.iter().position(|(_, v)| !v.is_finite()) {
        return Err(Error::Invalid(format!(
            "value map entry {} maps to a number that is not finite",
            i + 1
        )));
    }
    let split_names: Vec<String> = if paths.len() == 1 {
        vec!["train".into()]
    } else {
        let mut names: Vec<String> = Vec::with_capacity(paths.len());
        for path in paths {
            let name = split_name_from_file(path, &[".gz", ".csv"])?;
            if let Some(i) = names.iter().position(|n| *n == name) {
                return Err(Error::Invalid(format!(
                    "{} and {} would both become split {name:?}; every file must name a \
                     different split",
                    paths[i].display(),
                    path.display()
                )));
            }
            names.push(name);
        }
        names
    };
    let value_map: HashMap<&str, f32> = opts
        .value_map
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();

    let mut tables: Vec<Table> = Vec::with_capacity(paths.len());
    for path in paths {
        let table = read_table(path, opts, &value_map, Purpose::Import)?;
        if let Some(first) = tables.first()
            && first.columns != table.columns
        {
            return Err(Error::format(
                path,
                format!(
                    "its columns differ from those of {}: all files must have the same columns \
                     in the same order",
                    first.path.display()
                ),
            ));
        }
        tables.push(table);
    }
    let n_features = tables
        .first()
        .map_or(0, |t| t.columns.len().saturating_sub(1));

    let ids: Option<Vec<Vec<u32>>> = tables
        .iter()
        .map(|t| t.labels.iter().map(|l| l.parse::<u32>().ok()).collect())
        .collect();
    let (labels, class_names, classes) = match ids {
        Some(ids) => {
            let classes = classes_from_labels(ids.iter().flatten());
            (ids, Vec::new(), classes)
        }
        None => {
            let names: BTreeSet<&str> = tables
                .iter()
                .flat_map(|t| t.labels.iter().map(String::as_str))
                .collect();
            if names.len() < 2 {
                return Err(Error::Invalid(format!(
                    "label column {:?} holds a single class over all files; a dataset needs at \
                     least two",
                    opts.label_column
                )));
            }
            let index: HashMap<&str, u32> =
                names.iter().zip(0u32..).map(|(&n, i)| (n, i)).collect();
            let ids = tables
                .iter()
                .map(|t| {
                    t.labels
                        .iter()
                        .map(|l| index.get(l.as_str()).copied().unwrap_or(0))
                        .collect()
                })
                .collect();
            let classes = u32::try_from(names.len()).map_err(|_| {
                Error::Invalid("the label column holds too many distinct classes".into())
            })?;
            let class_names = names.into_iter().map(str::to_string).collect();
            (ids, class_names, classes)
        }
    };
    let shape = u32::try_from(n_features)
        .map_err(|_| Error::Invalid(format!("{n_features} feature columns are too many")))?;
    let splits = tables
        .into_iter()
        .zip(labels)
        .zip(split_names)
        .map(|((t, labels), name)| SplitData {
            name,
            features: t.features.iter().flat_map(|v| v.to_le_bytes()).collect(),
            labels,
        })
        .collect();
    Ok(Dataset {
        dtype: Dtype::F32,
        shape: vec![shape],
        classes,
        class_names,
        splits,
    })
}

/// Reads the records of one CSV file to predict on. The rules of [`import`] apply (header
/// unless `opts.has_header` is false, delimiter, feature cells, missing cells, value map), except
/// that there are no labels: the column `opts.label_column` names, if it is not empty, is left
/// out (a file exported with its labels), and every other column is a feature. Returns the
/// number of rows and their features, row-major.
///
/// With `has_header`, a first line of numbers only is refused: it is a record, and taking it as
/// the header would silently leave it out.
pub fn read_features(path: &Path, opts: &CsvOptions) -> Result<(usize, Vec<f32>)> {
    let value_map: HashMap<&str, f32> = opts
        .value_map
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let table = read_table(path, opts, &value_map, Purpose::Predict)?;
    Ok((table.rows, table.features))
}

/// What a table is read for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A labelled dataset: the label column must exist.
    Import,
    /// Records to predict: a label column is optional and left out.
    Predict,
}

/// A split name derived from a file name: lower-cased, with the given suffixes stripped (each at
/// most once, in order), and checked against the sealed format's rule for split names.
pub(crate) fn split_name_from_file(path: &Path, suffixes: &[&str]) -> Result<String> {
    let mut name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    for suffix in suffixes {
        if let Some(stem) = name.strip_suffix(suffix) {
            name = stem.to_string();
        }
    }
    check_split_name(&name).map_err(|why| {
        Error::format(
            path,
            format!(
                "with several inputs each names its split, and this name gives {name:?}, which {why}"
            ),
        )
    })?;
    Ok(name)
}

/// Why `name` is not a valid split name, if it is not.
pub(crate) fn check_split_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() || name.len() > 32 {
        return Err("must be 1 to 32 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err("may only use a-z, 0-9, '_' and '-'");
    }
    Ok(())
}

/// One file read and checked: features row-major (missing cells already filled), raw label texts.
struct Table {
    path: PathBuf,
    /// Every column's name, the label column included.
    columns: Vec<String>,
    features: Vec<f32>,
    labels: Vec<String>,
    /// Number of data rows.
    rows: usize,
}

/// What a feature cell holds, before the missing-value policy applies.
enum Cell {
    Value(f32),
    Missing,
}

fn classify(text: &str, value_map: &HashMap<&str, f32>) -> std::result::Result<Cell, &'static str> {
    if let Some(&v) = value_map.get(text) {
        return Ok(Cell::Value(v));
    }
    if is_missing(text) {
        return Ok(Cell::Missing);
    }
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(Cell::Value(v)),
        Ok(_) => Err("number that is not finite or is beyond the f32 range"),
        // The hints name the `chiron dataset seal` flags that set these options: the CLI is
        // where a user meets this message.
        Err(_) => Err(
            "non-numeric value (if it has a meaning, map it to a number with \
                       --map-value TEXT=NUMBER)",
        ),
    }
}

fn is_missing(text: &str) -> bool {
    const TOKENS: [&str; 6] = ["na", "n/a", "nan", "null", "none", "?"];
    text.is_empty() || TOKENS.iter().any(|t| text.eq_ignore_ascii_case(t))
}

fn read_table(
    path: &Path,
    opts: &CsvOptions,
    value_map: &HashMap<&str, f32>,
    purpose: Purpose,
) -> Result<Table> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(opts.delimiter)
        // Row lengths are checked here, so the error can say which line and what was expected.
        .flexible(true)
        .from_reader(crate::open_maybe_gzip(path)?);
    let csv_err = |e: ::csv::Error| {
        let line = e.position().map(|p| p.line());
        let message = match e.into_kind() {
            ::csv::ErrorKind::Io(io) => return Error::io(path, io),
            // Only I/O errors arise from byte records; anything else is reported by kind alone
            // so that no cell content can reach the message.
            _ => "malformed CSV".to_string(),
        };
        match line {
            Some(l) => Error::format(path, format!("line {l}: {message}")),
            None => Error::format(path, message),
        }
    };
    let mut record = ::csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(csv_err)? {
        return Err(Error::format(path, "empty file: no header and no rows"));
    }
    let (columns, mut pending) = if opts.has_header {
        let line = line_of(&record);
        let mut columns = Vec::with_capacity(record.len());
        for (i, field) in record.iter().enumerate() {
            let name = std::str::from_utf8(field).map_err(|_| {
                Error::format(
                    path,
                    format!("line {line}: header column {} is not valid UTF-8", i + 1),
                )
            })?;
            // A spreadsheet's byte-order mark would otherwise become part of the first name.
            let name = if i == 0 {
                name.trim_start_matches('\u{feff}')
            } else {
                name
            };
            columns.push(name.trim().to_string());
        }
        if purpose == Purpose::Predict && columns.iter().all(|c| c.parse::<f32>().is_ok()) {
            return Err(Error::format(
                path,
                format!(
                    "line {line} holds only numbers, so it is a record, not a header of column \
                     names: pass --no-header if the file has no header"
                ),
            ));
        }
        (columns, false)
    } else {
        ((0..record.len()).map(|i| i.to_string()).collect(), true)
    };
    let label_index = match purpose {
        Purpose::Predict if opts.label_column.is_empty() => None,
        _ => Some(find_label_column(path, &columns, opts)?),
    };
    let n_features = columns.len() - usize::from(label_index.is_some());
    if n_features == 0 {
        return Err(Error::format(
            path,
            "no feature columns: the label column is the only column",
        ));
    }

    let mut features: Vec<f32> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut sums = vec![0f64; n_features];
    let mut counts = vec![0u64; n_features];
    let mut missing_at: Vec<usize> = Vec::new();
    let mut rows = 0usize;
    loop {
        if !pending && !reader.read_byte_record(&mut record).map_err(csv_err)? {
            break;
        }
        pending = false;
        let line = line_of(&record);
        if record.len() != columns.len() {
            return Err(Error::format(
                path,
                format!(
                    "line {line}: {} fields, expected {} (one per column)",
                    record.len(),
                    columns.len()
                ),
            ));
        }
        let mut feature = 0usize;
        for (i, (field, column)) in record.iter().zip(&columns).enumerate() {
            let cell_err =
                |what: &str| Error::format(path, format!("line {line}, column {column:?}: {what}"));
            let text = std::str::from_utf8(field)
                .map_err(|_| cell_err("not valid UTF-8"))?
                .trim();
            if Some(i) == label_index {
                if purpose == Purpose::Import {
                    if text.is_empty() {
                        return Err(cell_err("missing label"));
                    }
                    labels.push(text.to_string());
                }
                continue;
            }
            match classify(text, value_map).map_err(cell_err)? {
                Cell::Value(v) => {
                    features.push(v);
                    if let (Some(s), Some(c)) = (sums.get_mut(feature), counts.get_mut(feature)) {
                        *s += f64::from(v);
                        *c += 1;
                    }
                }
                Cell::Missing => match opts.missing {
                    MissingPolicy::Error => {
                        return Err(cell_err(
                            "missing value (fill missing cells with --missing zero or \
                             --missing mean)",
                        ));
                    }
                    MissingPolicy::Zero => features.push(0.0),
                    MissingPolicy::Mean => {
                        // Filled in once the column's mean over the whole file is known.
                        missing_at.push(features.len());
                        features.push(0.0);
                    }
                },
            }
            feature += 1;
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(Error::format(path, "no data rows (only a header)"));
    }
    if !missing_at.is_empty() {
        let feature_columns: Vec<&String> = columns
            .iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != label_index)
            .map(|(_, c)| c)
            .collect();
        // f64 accumulation keeps the mean of f32 values accurate, and a mean of finite f32
        // values is itself a finite f32.
        let means: Vec<Option<f32>> = sums
            .iter()
            .zip(&counts)
            .map(|(&sum, &count)| (count > 0).then(|| (sum / count as f64) as f32))
            .collect();
        for &at in &missing_at {
            // Every row holds exactly `n_features` features, so the position gives the column.
            let j = at % n_features;
            let mean = match means.get(j) {
                Some(Some(m)) => *m,
                _ => {
                    let column = feature_columns.get(j).map_or("?", |c| c.as_str());
                    return Err(Error::format(
                        path,
                        format!(
                            "column {column:?} has no values at all, so its mean cannot fill \
                             the missing cells"
                        ),
                    ));
                }
            };
            if let Some(slot) = features.get_mut(at) {
                *slot = mean;
            }
        }
    }
    Ok(Table {
        path: path.to_path_buf(),
        columns,
        features,
        labels,
        rows,
    })
}

fn line_of(record: &::csv::ByteRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

fn find_label_column(path: &Path, columns: &[String], opts: &CsvOptions) -> Result<usize> {
    let wanted = opts.label_column.as_str();
    if !opts.has_header {
        return match wanted.parse::<usize>() {
            Ok(i) if i < columns.len() => Ok(i),
            _ => Err(Error::format(
                path,
                format!(
                    "no label column {wanted:?}: without a header, columns are named by their \
                     0-based index, here 0 to {}",
                    columns.len().saturating_sub(1)
                ),
            )),
        };
    }
    let mut hits = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.as_str() == wanted);
    match (hits.next(), hits.next()) {
        (Some((i, _)), None) => Ok(i),
        (Some(_), Some(_)) => Err(Error::format(
            path,
            format!("the header names more than one column {wanted:?}"),
        )),
        (None, _) => {
            const SHOWN: usize = 40;
            let mut list: Vec<String> = columns
                .iter()
                .take(SHOWN)
                .map(|c| format!("{c:?}"))
                .collect();
            if columns.len() > SHOWN {
                list.push(format!("... ({} more)", columns.len() - SHOWN));
            }
            Err(Error::format(
                path,
                format!(
                    "no label column {wanted:?} in the header; available columns: {}",
                    list.join(", ")
                ),
            ))
        }
    }
}
