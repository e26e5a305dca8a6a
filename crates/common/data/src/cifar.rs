//! CIFAR-10 and CIFAR-100 binary batches (the "binary version" the CIFAR site distributes).
//!
//! A CIFAR-10 record is 3073 bytes: the label, then 1024 red, 1024 green and 1024 blue pixels of
//! a 32×32 image in row-major order. A CIFAR-100 record is 3074 bytes: the coarse label, the fine
//! label, then the same 3072 pixel bytes. The pixel layout is already channels-first `[3, 32, 32]`,
//! so pixels are copied as they are.

use std::path::{Path, PathBuf};

use chiron_seal::Dtype;

use crate::source::read_all;
use crate::{Dataset, Error, Result, SplitData};

/// Bytes of one image's pixels.
const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR dataset a set of batches belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// CIFAR-10: 3073-byte records, 10 classes.
    Cifar10,
    /// CIFAR-100: 3074-byte records, 100 fine and 20 coarse classes.
    Cifar100,
}

impl Variant {
    /// Bytes of one record in a batch file of this variant.
    pub fn record_len(self) -> usize {
        match self {
            Variant::Cifar10 => PIXELS + 1,
            Variant::Cifar100 => PIXELS + 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Variant::Cifar10 => "CIFAR-10",
            Variant::Cifar100 => "CIFAR-100",
        }
    }
}

/// Which of CIFAR-100's two labels becomes the record's label (ignored for CIFAR-10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cifar100Label {
    /// The 100 fine classes.
    #[default]
    Fine,
    /// The 20 coarse superclasses.
    Coarse,
}

/// Imports CIFAR-10 or CIFAR-100 binary batches.
///
/// `paths` are batch files or folders; a folder contributes every `*.bin` file in it. The variant
/// is `variant` if given, else told by the file names (`data_batch_*.bin`/`test_batch.bin`:
/// CIFAR-10; `train.bin`/`test.bin`: CIFAR-100), else by which record size divides every file's
/// length; an ambiguous guess is an error asking for the variant.
///
/// Guarantees: files named `test_batch.bin` or `test.bin` (optionally `.gz`) make split `test`,
/// all others are concatenated in file-name order into split `train` (splits present only if
/// non-empty, `train` first); the shape is `[3, 32, 32]` `u8`; classes are 10, 100 (fine) or 20
/// (coarse). Class names come from `batches.meta.txt` (CIFAR-10) or `fine_label_names.txt` /
/// `coarse_label_names.txt` (CIFAR-100) when that file sits in the folder of the first batch,
/// one per non-empty line. Every file length and every label byte is checked; errors name the
/// file and, for a bad record, its index, never the byte found.
pub fn import(
    paths: &[PathBuf],
    variant: Option<Variant>,
    label: Cifar100Label,
) -> Result<Dataset> {
    let files = expand(paths)?;
    let mut batches = Vec::with_capacity(files.len());
    for path in files {
        let bytes = read_all(&path)?;
        batches.push((path, bytes));
    }
    let variant = match variant {
        Some(v) => v,
        None => guess_variant(&batches)?,
    };
    let (classes, names_file) = match (variant, label) {
        (Variant::Cifar10, _) => (10u8, "batches.meta.txt"),
        (Variant::Cifar100, Cifar100Label::Fine) => (100, "fine_label_names.txt"),
        (Variant::Cifar100, Cifar100Label::Coarse) => (20, "coarse_label_names.txt"),
    };

    // Sorted by file name so that data_batch_1..5 keep their published order whatever order
    // the paths were given in.
    batches.sort_by(|(a, _), (b, _)| a.file_name().cmp(&b.file_name()).then(a.cmp(b)));
    let record_len = variant.record_len();
    let mut train = SplitData {
        name: "train".into(),
        features: Vec::new(),
        labels: Vec::new(),
    };
    let mut test = SplitData {
        name: "test".into(),
        features: Vec::new(),
        labels: Vec::new(),
    };
    for (path, bytes) in &batches {
        if bytes.is_empty() {
            return Err(Error::format(path, "holds no records (empty file)"));
        }
        if !bytes.len().is_multiple_of(record_len) {
            return Err(Error::format(
                path,
                format!(
                    "size {} bytes is not a multiple of the {record_len}-byte {} record: \
                     record {} is truncated",
                    bytes.len(),
                    variant.name(),
                    bytes.len() / record_len
                ),
            ));
        }
        let split = if is_test_file(path) {
            &mut test
        } else {
            &mut train
        };
        let n = bytes.len() / record_len;
        split.features.reserve(n * PIXELS);
        split.labels.reserve(n);
        for (index, record) in bytes.chunks_exact(record_len).enumerate() {
            let (labels, pixels) = record.split_at(record_len - PIXELS);
            let chosen = match (variant, label, labels) {
                (Variant::Cifar10, _, &[l]) => l,
                (Variant::Cifar100, _, &[coarse, fine]) => {
                    if coarse >= 20 {
                        return Err(bad_label(path, index, "coarse", 20));
                    }
                    if fine >= 100 {
                        return Err(bad_label(path, index, "fine", 100));
                    }
                    match label {
                        Cifar100Label::Fine => fine,
                        Cifar100Label::Coarse => coarse,
                    }
                }
                _ => return Err(Error::format(path, format!("record {index} is malformed"))),
            };
            if chosen >= classes {
                return Err(bad_label(path, index, "class", classes));
            }
            split.labels.push(u32::from(chosen));
            split.features.extend_from_slice(pixels);
        }
    }
    let splits: Vec<SplitData> = [train, test]
        .into_iter()
        .filter(|s| !s.labels.is_empty())
        .collect();
    let folder = batches
        .first()
        .and_then(|(p, _)| p.parent())
        .unwrap_or(Path::new("."));
    let class_names = read_class_names(&folder.join(names_file), usize::from(classes))?;
    Ok(Dataset {
        dtype: Dtype::U8,
        shape: vec![3, 32, 32],
        classes: u32::from(classes),
        class_names,
        splits,
    })
}

fn bad_label(path: &Path, index: usize, which: &str, classes: u8) -> Error {
    Error::format(
        path,
        format!("record {index}: {which} label byte outside 0..{classes}"),
    )
}

/// The batch files named by `paths`: files as given, folders replaced by their `*.bin` files.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::Invalid("no CIFAR input given".into()));
    }
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let p = entry.path();
            let is_bin = file_name_lower(&p).ends_with(".bin");
            if is_bin && p.is_file() {
                found.push(p);
            }
        }
        if found.is_empty() {
            return Err(Error::format(
                path,
                "folder holds no CIFAR batch (*.bin) files",
            ));
        }
        files.extend(found);
    }
    Ok(files)
}

/// Lower-cased file name without a trailing `.gz`.
fn file_name_lower(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match name.strip_suffix(".gz") {
        Some(stem) => stem.to_string(),
        None => name,
    }
}

fn is_test_file(path: &Path) -> bool {
    matches!(
        file_name_lower(path).as_str(),
        "test_batch.bin" | "test.bin"
    )
}

fn variant_from_name(path: &Path) -> Option<Variant> {
    let name = file_name_lower(path);
    if name == "test_batch.bin" || (name.starts_with("data_batch_") && name.ends_with(".bin")) {
        Some(Variant::Cifar10)
    } else if name == "train.bin" || name == "test.bin" {
        Some(Variant::Cifar100)
    } else {
        None
    }
}

/// Names first (the published file names are unambiguous), then record sizes.
fn guess_variant(batches: &[(PathBuf, Vec<u8>)]) -> Result<Variant> {
    let named: Vec<(&PathBuf, Variant)> = batches
        .iter()
        .filter_map(|(p, _)| variant_from_name(p).map(|v| (p, v)))
        .collect();
    if let Some(&(first, v)) = named.first() {
        if let Some(&(other, w)) = named.iter().find(|(_, w)| *w != v) {
            return Err(Error::Invalid(format!(
                "{} is named like a {} batch but {} like a {} batch; pass the variant explicitly",
                first.display(),
                v.name(),
                other.display(),
                w.name()
            )));
        }
        return Ok(v);
    }
    let fits = |len: usize, v: Variant| len > 0 && len.is_multiple_of(v.record_len());
    let mut candidates = vec![Variant::Cifar10, Variant::Cifar100];
    for (path, bytes) in batches {
        candidates.retain(|&v| fits(bytes.len(), v));
        if candidates.is_empty() {
            return Err(Error::format(
                path,
                format!(
                    "cannot tell the CIFAR variant: file names are not the published ones and \
                     the sizes fit neither {}-byte CIFAR-10 nor {}-byte CIFAR-100 records in \
                     every file; pass the variant explicitly",
                    Variant::Cifar10.record_len(),
                    Variant::Cifar100.record_len()
                ),
            ));
        }
    }
    match candidates[..] {
        [v] => Ok(v),
        _ => Err(Error::Invalid(
            "cannot tell the CIFAR variant: the file sizes fit both CIFAR-10 and CIFAR-100 \
             records; pass the variant explicitly"
                .into(),
        )),
    }
}

/// Class names from a label-names file next to the batches, if there is one.
fn read_class_names(path: &Path, classes: usize) -> Result<Vec<String>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let bytes = read_all(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::format(path, "label names file is not valid UTF-8"))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != classes {
        return Err(Error::format(
            path,
            format!("holds {} class names for {classes} classes", names.len()),
        ));
    }
    Ok(names)
}
