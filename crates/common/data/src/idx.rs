//! MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST, ...), plain or gzip-compressed.
//!
//! An IDX file is a 4-byte magic `00 00 <type> <ndims>`, `ndims` big-endian `u32` dimensions,
//! then the elements in row-major order. Images are `[N, H, W]` unsigned bytes and labels `[N]`
//! unsigned bytes; a greyscale image in row-major order is already channels-first `[1, H, W]`, so
//! the pixel bytes are stored as they are.

use std::path::{Path, PathBuf};

use chiron_seal::Dtype;

use crate::source::read_all;
use crate::{Dataset, Error, Result, SplitData, classes_from_labels};

/// IDX element type code of unsigned bytes, the only one MNIST-style data uses.
const TYPE_U8: u8 = 0x08;

/// Spellings of the image and label files after the `train-`/`t10k-` prefix: the canonical one
/// and the dotted one some mirrors use.
const IMAGE_SUFFIXES: [&str; 2] = ["images-idx3-ubyte", "images.idx3-ubyte"];
const LABEL_SUFFIXES: [&str; 2] = ["labels-idx1-ubyte", "labels.idx1-ubyte"];

/// How IDX files are imported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdxOptions {
    /// The number of classes, when the owner declares it (`--classes`): every label of every
    /// split must be below it. When absent it is the largest training label plus one, and the
    /// labels must look like a class count: see [`import_with`].
    pub classes: Option<u32>,
}

/// Imports an MNIST-style dataset with no declared class count: [`import_with`] with the default
/// [`IdxOptions`].
pub fn import(paths: &[PathBuf]) -> Result<Dataset> {
    import_with(paths, &IdxOptions::default())
}

/// Imports an MNIST-style dataset.
///
/// `paths` is either one folder holding `train-images-idx3-ubyte`, `train-labels-idx1-ubyte` and
/// optionally `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (each possibly ending in `.gz`,
/// and `images.idx3-ubyte` / `labels.idx1-ubyte` spellings accepted), or the IDX files
/// themselves. Given files are told apart by their header (3 dimensions: images, 1: labels) and
/// assigned to split `test` when their name starts with `t10k` or contains `test`, to `train`
/// otherwise.
///
/// Guarantees: splits are `train` then `test` (each only if present), records keep file order,
/// the shape is `[1, H, W]` with dtype `u8`. Every file is checked completely (magic — `00 00 08
/// 03` for images, `00 00 08 01` for labels —, length equal to what the dimensions declare,
/// image and label counts equal) before anything is returned, and every error names the file it
/// is about.
///
/// Classes: IDX files do not declare a class count, and a corrupt label byte would otherwise
/// silently add classes. With [`IdxOptions::classes`] every label must be below it. Without it,
/// `classes` is the largest label of the first split (`train`) plus one (at least two), and that
/// split must hold every label below its largest (a gap means a label that is not a class id),
/// and no later split may hold a label above it (a class never trained on). Either refusal names
/// the labels file and the record, and says to declare the count if the labels are right.
pub fn import_with(paths: &[PathBuf], opts: &IdxOptions) -> Result<Dataset> {
    let sources = locate(paths)?;
    let mut shape: Option<(u32, u32, PathBuf)> = None;
    let mut splits = Vec::new();
    let mut label_files = Vec::new();
    for source in sources {
        let images = parse(&source.images, read_all(&source.images)?, Kind::Images)?;
        let labels = parse(&source.labels, read_all(&source.labels)?, Kind::Labels)?;
        let (n, h, w) = match images.dims[..] {
            [n, h, w] => (n, h, w),
            _ => return Err(Error::format(&images.path, "expected 3 dimensions")),
        };
        if n == 0 || h == 0 || w == 0 {
            return Err(Error::format(
                &images.path,
                format!("holds no pixels: dimensions are {n} x {h} x {w}"),
            ));
        }
        let m = labels.dims.first().copied().unwrap_or(0);
        if m != n {
            return Err(Error::format(
                &labels.path,
                format!(
                    "holds {m} labels but {} holds {n} images",
                    images.path.display()
                ),
            ));
        }
        match &shape {
            None => shape = Some((h, w, images.path.clone())),
            Some((h0, w0, first)) if (*h0, *w0) != (h, w) => {
                return Err(Error::format(
                    &images.path,
                    format!(
                        "images are {h}x{w} but those of {} are {h0}x{w0}",
                        first.display()
                    ),
                ));
            }
            Some(_) => {}
        }
        splits.push(SplitData {
            name: source.split.to_string(),
            features: images.data,
            labels: labels.data.into_iter().map(u32::from).collect(),
        });
        label_files.push(labels.path);
    }
    let Some((h, w, _)) = shape else {
        return Err(Error::Invalid("no IDX files given".into()));
    };
    let classes = check_classes(&splits, &label_files, opts.classes)?;
    Ok(Dataset {
        dtype: Dtype::U8,
        shape: vec![1, h, w],
        classes,
        class_names: Vec::new(),
        splits,
    })
}

/// The class count of `splits` (labels read from `label_files`, one per split): `declared` if
/// given, else derived from the first split; see [`import_with`] for the rules.
fn check_classes(
    splits: &[SplitData],
    label_files: &[PathBuf],
    declared: Option<u32>,
) -> Result<u32> {
    let files = splits.iter().zip(label_files);
    if let Some(n) = declared {
        for (split, path) in files {
            if let Some((i, l)) = split.labels.iter().enumerate().find(|&(_, &l)| l >= n) {
                return Err(Error::format(
                    path,
                    format!(
                        "record {i} has label {l}, but --classes declares {n} classes (labels 0 \
                         to {})",
                        n.saturating_sub(1)
                    ),
                ));
            }
        }
        return Ok(n);
    }
    let mut files = files;
    let Some((first, first_path)) = files.next() else {
        return Ok(2);
    };
    let classes = classes_from_labels(&first.labels);
    let Some((at_max, &max)) = first
        .labels
        .iter()
        .enumerate()
        .max_by_key(|&(i, &l)| (l, std::cmp::Reverse(i)))
    else {
        return Ok(classes);
    };
    let mut seen = vec![false; max as usize + 1];
    for &l in &first.labels {
        if let Some(slot) = seen.get_mut(l as usize) {
            *slot = true;
        }
    }
    if let Some(gap) = seen.iter().position(|&s| !s) {
        return Err(Error::format(
            first_path,
            format!(
                "record {at_max} has label {max}, but no record has label {gap}: labels 0 to \
                 {max} would make {} classes, some with no {} records. If they are right, \
                 declare the class count with --classes",
                max + 1,
                first.name
            ),
        ));
    }
    for (split, path) in files {
        if let Some((i, l)) = split.labels.iter().enumerate().find(|&(_, &l)| l > max) {
            return Err(Error::format(
                path,
                format!(
                    "record {i} has label {l}, but the {} labels only go up to {max}: a class \
                     with no {} records. If the label is right, declare the class count with \
                     --classes",
                    first.name, first.name
                ),
            ));
        }
    }
    Ok(classes)
}

/// The image and label file of one split.
struct Source {
    split: &'static str,
    images: PathBuf,
    labels: PathBuf,
}

/// What an IDX file holds, as its number of dimensions says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    fn ndims(self) -> usize {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    /// The magic number an IDX file of this kind of unsigned bytes starts with.
    fn magic(self) -> &'static str {
        match self {
            Kind::Images => "00 00 08 03",
            Kind::Labels => "00 00 08 01",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Images => "images",
            Kind::Labels => "labels",
        }
    }
}

/// A parsed IDX file: its dimensions and its element bytes (header removed).
struct Idx {
    path: PathBuf,
    dims: Vec<u32>,
    data: Vec<u8>,
}

/// Parses and fully validates one IDX file of unsigned bytes. The declared size is computed with
/// checked arithmetic and compared to the bytes actually present, so a lying header is reported
/// rather than trusted.
///
/// The whole magic is checked against `kind` before any dimension is read: a file whose magic
/// declares the wrong number of dimensions would otherwise have data bytes read as dimensions.
fn parse(path: &Path, mut bytes: Vec<u8>, kind: Kind) -> Result<Idx> {
    let err = |m: String| Error::format(path, m);
    let Some(&[z0, z1, code, ndims]) = bytes.first_chunk::<4>() else {
        return Err(err(format!(
            "truncated: {} bytes is too short for an IDX header",
            bytes.len()
        )));
    };
    if (z0, z1) != (0, 0) {
        // The first bytes are not shown: in a file that is not IDX they may be data.
        return Err(err(format!(
            "bad magic: not an IDX file (an IDX {} file starts with the magic {})",
            kind.name(),
            kind.magic()
        )));
    }
    if code != TYPE_U8 {
        return Err(err(format!(
            "unsupported IDX element type code 0x{code:02X}: only 0x08 (unsigned byte) is supported"
        )));
    }
    if usize::from(ndims) != kind.ndims() {
        return Err(err(format!(
            "wrong ndims: not an IDX {} file: its magic 00 00 08 {ndims:02X} declares {ndims} \
             dimension(s), an IDX {} file has {} (magic {})",
            kind.name(),
            kind.name(),
            kind.ndims(),
            kind.magic()
        )));
    }
    let header_len = 4 + 4 * usize::from(ndims);
    let Some(dim_bytes) = bytes.get(4..header_len) else {
        return Err(err(format!(
            "truncated: the header declares {ndims} dimensions but the file ends after {} bytes",
            bytes.len()
        )));
    };
    let dims: Vec<u32> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let declared = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)));
    let actual = (bytes.len() - header_len) as u64;
    match declared {
        Some(d) if d == actual => {}
        Some(d) if d > actual => {
            return Err(err(format!(
                "truncated: dimensions {dims:?} declare {d} data bytes but the file holds {actual}"
            )));
        }
        Some(d) => {
            return Err(err(format!(
                "dimensions {dims:?} declare {d} data bytes but the file holds {actual} \
                 ({} trailing bytes)",
                actual - d
            )));
        }
        None => {
            return Err(err(format!(
                "truncated: dimensions {dims:?} declare more data than any file can hold"
            )));
        }
    }
    // Shifts the payload down in place: no second buffer the size of the data.
    bytes.drain(..header_len);
    Ok(Idx {
        path: path.to_path_buf(),
        dims,
        data: bytes,
    })
}

/// Finds the image and label files of each split, from a folder or from the files given.
fn locate(paths: &[PathBuf]) -> Result<Vec<Source>> {
    match paths {
        [] => Err(Error::Invalid("no IDX input given".into())),
        [dir] if dir.is_dir() => locate_in_folder(dir),
        _ => {
            if let Some(dir) = paths.iter().find(|p| p.is_dir()) {
                return Err(Error::format(
                    dir,
                    "is a folder: give either one folder or the IDX files themselves",
                ));
            }
            locate_files(paths)
        }
    }
}

fn locate_in_folder(dir: &Path) -> Result<Vec<Source>> {
    let find = |prefix: &str, suffixes: &[&str]| {
        suffixes
            .iter()
            .flat_map(|s| ["", ".gz"].map(|gz| dir.join(format!("{prefix}-{s}{gz}"))))
            .find(|p| p.is_file())
    };
    let mut out = Vec::new();
    for (prefix, split) in [("train", "train"), ("t10k", "test")] {
        let images = find(prefix, &IMAGE_SUFFIXES);
        let labels = find(prefix, &LABEL_SUFFIXES);
        match (images, labels) {
            (Some(images), Some(labels)) => out.push(Source {
                split,
                images,
                labels,
            }),
            (Some(images), None) => {
                return Err(Error::format(
                    &images,
                    format!(
                        "missing labels file: expected {prefix}-{}[.gz] in the same folder",
                        LABEL_SUFFIXES[0]
                    ),
                ));
            }
            (None, Some(labels)) => {
                return Err(Error::format(
                    &labels,
                    format!(
                        "missing images file: expected {prefix}-{}[.gz] in the same folder",
                        IMAGE_SUFFIXES[0]
                    ),
                ));
            }
            (None, None) if split == "train" => {
                return Err(Error::format(
                    dir,
                    format!(
                        "no training images: expected train-{}[.gz] and train-{}[.gz] in this folder",
                        IMAGE_SUFFIXES[0], LABEL_SUFFIXES[0]
                    ),
                ));
            }
            (None, None) => {}
        }
    }
    Ok(out)
}

/// Pairs explicitly given files: the header's number of dimensions says images or labels, the
/// file name says which split.
fn locate_files(paths: &[PathBuf]) -> Result<Vec<Source>> {
    let mut found: [[Option<PathBuf>; 2]; 2] = Default::default();
    for path in paths {
        let kind = match peek_ndims(path)? {
            3 => Kind::Images,
            1 => Kind::Labels,
            n => {
                return Err(Error::format(
                    path,
                    format!(
                        "wrong ndims: IDX images have 3 dimensions and labels 1, this file has {n}"
                    ),
                ));
            }
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let split = usize::from(name.starts_with("t10k") || name.contains("test"));
        let slot = &mut found[split][usize::from(kind == Kind::Labels)];
        if let Some(other) = slot {
            return Err(Error::format(
                path,
                format!(
                    "two {} files for split {}: this one and {}",
                    kind.name(),
                    ["train", "test"][split],
                    other.display()
                ),
            ));
        }
        *slot = Some(path.clone());
    }
    let mut out = Vec::new();
    for (split, [images, labels]) in ["train", "test"].into_iter().zip(found) {
        match (images, labels) {
            (Some(images), Some(labels)) => out.push(Source {
                split,
                images,
                labels,
            }),
            (Some(images), None) => {
                return Err(Error::format(
                    &images,
                    format!("missing labels file for the {split} images"),
                ));
            }
            (None, Some(labels)) => {
                return Err(Error::format(
                    &labels,
                    format!("missing images file for the {split} labels"),
                ));
            }
            (None, None) => {}
        }
    }
    Ok(out)
}

/// Number of dimensions an IDX file declares, reading only its first bytes.
fn peek_ndims(path: &Path) -> Result<u8> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4);
    crate::open_maybe_gzip(path)?
        .take(4)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    match head[..] {
        [0, 0, _, ndims] => Ok(ndims),
        [_, _, _, _] => Err(Error::format(
            path,
            format!(
                "bad magic: not an IDX file (IDX images start with the magic {}, labels with {})",
                Kind::Images.magic(),
                Kind::Labels.magic()
            ),
        )),
        _ => Err(Error::format(
            path,
            format!(
                "truncated: {} bytes is too short for an IDX header",
                head.len()
            ),
        )),
    }
}
