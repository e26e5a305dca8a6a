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
/// the shape is `[1, H, W]` with dtype `u8`, and `classes` is the largest label plus one (at
/// least two). Every file is checked completely (magic, element type, number of dimensions,
/// length equal to what the dimensions declare, image and label counts equal) before anything is
/// returned, and every error names the file it is about.
pub fn import(paths: &[PathBuf]) -> Result<Dataset> {
    let sources = locate(paths)?;
    let mut shape: Option<(u32, u32, PathBuf)> = None;
    let mut splits = Vec::new();
    for source in sources {
        let images = parse(&source.images, read_all(&source.images)?)?;
        expect_kind(&images, Kind::Images)?;
        let labels = parse(&source.labels, read_all(&source.labels)?)?;
        expect_kind(&labels, Kind::Labels)?;
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
    }
    let Some((h, w, _)) = shape else {
        return Err(Error::Invalid("no IDX files given".into()));
    };
    let classes = classes_from_labels(splits.iter().flat_map(|s| s.labels.iter()));
    Ok(Dataset {
        dtype: Dtype::U8,
        shape: vec![1, h, w],
        classes,
        class_names: Vec::new(),
        splits,
    })
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
fn parse(path: &Path, mut bytes: Vec<u8>) -> Result<Idx> {
    let err = |m: String| Error::format(path, m);
    let Some(&[z0, z1, code, ndims]) = bytes.first_chunk::<4>() else {
        return Err(err(format!(
            "truncated: {} bytes is too short for an IDX header",
            bytes.len()
        )));
    };
    if (z0, z1) != (0, 0) {
        return Err(err(
            "bad magic: not an IDX file (it must start with 00 00 <type> <ndims>)".into(),
        ));
    }
    if code != TYPE_U8 {
        return Err(err(format!(
            "unsupported IDX element type code 0x{code:02X}: only 0x08 (unsigned byte) is supported"
        )));
    }
    if ndims == 0 {
        return Err(err("wrong ndims: the header declares 0 dimensions".into()));
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

fn expect_kind(idx: &Idx, kind: Kind) -> Result<()> {
    if idx.dims.len() == kind.ndims() {
        return Ok(());
    }
    Err(Error::format(
        &idx.path,
        format!(
            "wrong ndims: an IDX {} file has {} dimension(s), this one has {}",
            kind.name(),
            kind.ndims(),
            idx.dims.len()
        ),
    ))
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
            "bad magic: not an IDX file (it must start with 00 00 <type> <ndims>)",
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
