//! NumPy `.npy` arrays: a features array and a labels array per split.
//!
//! The header is interpreted by the `npyz` crate, but only after this module has checked the
//! header's length and the declared shape against the bytes actually present, so a hostile header
//! can neither make it allocate nor overflow its size arithmetic.

use std::path::{Path, PathBuf};

use chiron_seal::Dtype;
use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar};

use crate::source::read_all;
use crate::{Dataset, Error, Result, SplitData, classes_from_labels};

/// Split names of the first and second pair of arrays.
const SPLITS: [&str; 2] = ["train", "test"];

/// Imports `.npy` arrays given in pairs `features.npy, labels.npy`: the first pair becomes split
/// `train`, the second (optional) split `test`.
///
/// Features are an array of shape `[N, d1, .., dk]` with `k` from 1 to 3, in C order; `u8`
/// arrays keep dtype `u8`, every other integer and float dtype becomes `f32` (`f64` narrowed,
/// wide integers rounded to the nearest `f32`). Labels are a 1-D array of any integer dtype with
/// `N` non-negative values that fit `u32`. Files may be gzip-compressed (told by content).
///
/// Guarantees: record shape `[d1, .., dk]`, equal for both pairs, as is the resulting dtype;
/// every `f32` is finite; `classes` is the largest label plus one (at least two). Errors name the
/// file and, for a bad element, its flat index, never its value.
pub fn import(paths: &[PathBuf]) -> Result<Dataset> {
    if paths.is_empty() || !paths.len().is_multiple_of(2) || paths.len() > 2 * SPLITS.len() {
        return Err(Error::Invalid(format!(
            "NumPy input comes in pairs (features.npy labels.npy), one pair for train and \
             optionally one for test; {} paths were given",
            paths.len()
        )));
    }
    let mut first: Option<(Dtype, Vec<u32>, PathBuf)> = None;
    let mut splits = Vec::new();
    for (pair, name) in paths.chunks_exact(2).zip(SPLITS) {
        let [features_path, labels_path] = pair else {
            continue;
        };
        let (dtype, dims, features) = read_features(features_path)?;
        let n = dims.first().copied().unwrap_or(0);
        let record_shape = dims.get(1..).unwrap_or(&[]).to_vec();
        match &first {
            None => first = Some((dtype, record_shape.clone(), features_path.clone())),
            Some((d0, s0, p0)) => {
                if *s0 != record_shape {
                    return Err(Error::format(
                        features_path,
                        format!(
                            "records have shape {record_shape:?} but those of {} have {s0:?}",
                            p0.display()
                        ),
                    ));
                }
                if *d0 != dtype {
                    return Err(Error::format(
                        features_path,
                        format!(
                            "features become {} but those of {} become {}; convert both arrays \
                             to the same dtype",
                            dtype.name(),
                            p0.display(),
                            d0.name()
                        ),
                    ));
                }
            }
        }
        let labels = read_labels(labels_path)?;
        if labels.len() as u64 != u64::from(n) {
            return Err(Error::format(
                labels_path,
                format!(
                    "holds {} labels but {} holds {n} records",
                    labels.len(),
                    features_path.display()
                ),
            ));
        }
        splits.push(SplitData {
            name: name.to_string(),
            features,
            labels,
        });
    }
    let Some((dtype, shape, _)) = first else {
        return Err(Error::Invalid("no NumPy input given".into()));
    };
    let classes = classes_from_labels(splits.iter().flat_map(|s| s.labels.iter()));
    Ok(Dataset {
        dtype,
        shape,
        classes,
        class_names: Vec::new(),
        splits,
    })
}

/// A checked array: its header, and its element bytes (exactly `len × item size`).
struct Array {
    header: NpyHeader,
    data: Vec<u8>,
    data_start: usize,
}

impl Array {
    fn data(&self) -> &[u8] {
        self.data.get(self.data_start..).unwrap_or(&[])
    }
}

/// One features array: its dtype after conversion, its shape `[N, ..]` and its bytes (`u8`, or
/// `f32` little-endian), checked as in [`import`].
pub fn read_features(path: &Path) -> Result<(Dtype, Vec<u32>, Vec<u8>)> {
    let array = read_array(path)?;
    let shape = array.header.shape();
    if !(2..=4).contains(&shape.len()) {
        return Err(Error::format(
            path,
            format!(
                "features must be an array of shape [N, d1, .., dk] with k from 1 to 3, this one \
                 has {} dimension(s)",
                shape.len()
            ),
        ));
    }
    let dims = shape
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<std::result::Result<Vec<u32>, _>>()
        .map_err(|_| {
            Error::format(
                path,
                format!("shape {shape:?} has a dimension beyond 2^32 - 1"),
            )
        })?;
    let (type_char, size) = scalar_type(path, &array)?;
    let data = array.data();
    let floats: Vec<f32> = match (type_char, size) {
        (TypeChar::Uint, 1) => return Ok((Dtype::U8, dims, data.to_vec())),
        (TypeChar::Uint, 2) => ints::<u16>(path, &array)?,
        (TypeChar::Uint, 4) => ints::<u32>(path, &array)?,
        (TypeChar::Uint, 8) => ints::<u64>(path, &array)?,
        (TypeChar::Int, 1) => ints::<i8>(path, &array)?,
        (TypeChar::Int, 2) => ints::<i16>(path, &array)?,
        (TypeChar::Int, 4) => ints::<i32>(path, &array)?,
        (TypeChar::Int, 8) => ints::<i64>(path, &array)?,
        (TypeChar::Float, 4) => elements::<f32>(path, &array)?,
        (TypeChar::Float, 8) => elements::<f64>(path, &array)?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        _ => return Err(unsupported(path, &array, "features")),
    };
    if let Some(i) = floats.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(
            path,
            format!("element {i} (flat index) is not a finite f32 (NaN, infinite or out of range)"),
        ));
    }
    Ok((
        Dtype::F32,
        dims,
        floats.iter().flat_map(|v| v.to_le_bytes()).collect(),
    ))
}

/// Reads a labels array: 1-D, any integer dtype, every value in `0..=u32::MAX`.
fn read_labels(path: &Path) -> Result<Vec<u32>> {
    let array = read_array(path)?;
    if array.header.shape().len() != 1 {
        return Err(Error::format(
            path,
            format!(
                "labels must be a 1-D array, this one has {} dimensions",
                array.header.shape().len()
            ),
        ));
    }
    let wide: Vec<i128> = match scalar_type(path, &array)? {
        (TypeChar::Uint, 1) => widen::<u8>(path, &array)?,
        (TypeChar::Uint, 2) => widen::<u16>(path, &array)?,
        (TypeChar::Uint, 4) => widen::<u32>(path, &array)?,
        (TypeChar::Uint, 8) => widen::<u64>(path, &array)?,
        (TypeChar::Int, 1) => widen::<i8>(path, &array)?,
        (TypeChar::Int, 2) => widen::<i16>(path, &array)?,
        (TypeChar::Int, 4) => widen::<i32>(path, &array)?,
        (TypeChar::Int, 8) => widen::<i64>(path, &array)?,
        _ => {
            return Err(unsupported(
                path,
                &array,
                "labels (an integer dtype is required)",
            ));
        }
    };
    wide.into_iter()
        .enumerate()
        .map(|(i, v)| {
            u32::try_from(v).map_err(|_| {
                Error::format(
                    path,
                    format!("label {i} is negative or does not fit a 32-bit class id"),
                )
            })
        })
        .collect()
}

fn unsupported(path: &Path, array: &Array, what: &str) -> Error {
    Error::format(
        path,
        format!(
            "dtype {} is not supported for {what}",
            array.header.dtype().descr()
        ),
    )
}

/// The element type of a plain (non-structured) array.
fn scalar_type(path: &Path, array: &Array) -> Result<(TypeChar, u64)> {
    match array.header.dtype() {
        DType::Plain(ts) => Ok((ts.type_char(), ts.size_field())),
        other => Err(Error::format(
            path,
            format!(
                "structured or sub-array dtype {} is not supported; save a plain numeric array",
                other.descr()
            ),
        )),
    }
}

fn elements<T: npyz::Deserialize>(path: &Path, array: &Array) -> Result<Vec<T>> {
    let reader = NpyFile::with_header(array.header.clone(), array.data())
        .data::<T>()
        .map_err(|e| Error::format(path, format!("cannot read the elements: {e}")))?;
    reader
        .collect::<std::io::Result<Vec<T>>>()
        .map_err(|e| Error::io(path, e))
}

/// Integers to `f32`, rounding to nearest where the integer is wider than `f32`'s mantissa.
fn ints<T: npyz::Deserialize + Into<Wide>>(path: &Path, array: &Array) -> Result<Vec<f32>> {
    Ok(elements::<T>(path, array)?
        .into_iter()
        .map(|v| v.into().0 as f32)
        .collect())
}

fn widen<T: npyz::Deserialize + Into<Wide>>(path: &Path, array: &Array) -> Result<Vec<i128>> {
    Ok(elements::<T>(path, array)?
        .into_iter()
        .map(|v| v.into().0)
        .collect())
}

/// Any NumPy integer, losslessly.
struct Wide(i128);

macro_rules! wide_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Wide {
            fn from(v: $t) -> Self {
                Wide(i128::from(v))
            }
        }
    )*};
}
wide_from!(u8, u16, u32, u64, i8, i16, i32, i64);

/// Reads a whole `.npy` file and checks its header against its length before `npyz` sees it.
fn read_array(path: &Path) -> Result<Array> {
    let bytes = read_all(path)?;
    let err = |m: String| Error::format(path, m);
    if !bytes.starts_with(b"\x93NUMPY") {
        return Err(err("bad magic: not a NumPy .npy file".into()));
    }
    let (text_start, text_len) = match bytes.get(6..12) {
        Some(&[1, _, a, b, _, _]) => (10, usize::from(u16::from_le_bytes([a, b]))),
        Some(&[2 | 3, _, a, b, c, d]) => (
            12,
            usize::try_from(u32::from_le_bytes([a, b, c, d])).unwrap_or(usize::MAX / 2),
        ),
        Some(&[major, minor, ..]) => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor}"
            )));
        }
        _ => return Err(err("truncated: the .npy header is incomplete".into())),
    };
    let data_start = text_start + text_len;
    let Some(text) = bytes.get(text_start..data_start) else {
        return Err(err(format!(
            "truncated: the header declares {text_len} bytes of text but the file holds {}",
            bytes.len()
        )));
    };
    let data_len = (bytes.len() - data_start) as u64;
    precheck_header_text(text, data_len).map_err(err)?;
    let header = NpyHeader::from_reader(bytes.get(..data_start).unwrap_or(&[]))
        .map_err(|e| err(format!("invalid .npy header: {e}")))?;
    if header.order() == Order::Fortran {
        return Err(err(
            "Fortran-order arrays are not supported; save the array in C order \
             (numpy.ascontiguousarray)"
                .into(),
        ));
    }
    let item = header
        .dtype()
        .num_bytes()
        .ok_or_else(|| err("dtype is too large".into()))?;
    let declared = header.len().checked_mul(item as u64);
    match declared {
        Some(d) if d == data_len => {}
        Some(d) if d < data_len => {
            return Err(err(format!(
                "{} trailing bytes after the {d} bytes the header declares",
                data_len - d
            )));
        }
        _ => {
            return Err(err(format!(
                "truncated: shape {:?} of {item}-byte elements needs more than the {data_len} \
                 data bytes present",
                header.shape()
            )));
        }
    }
    Ok(Array {
        header,
        data: bytes,
        data_start,
    })
}

/// Guards `npyz`'s header interpretation: a deeply nested literal could exhaust the parser's
/// stack, and a shape whose product overflows would overflow its size arithmetic. Plain arrays
/// need one dict and one shape tuple, so little nesting is allowed; every dimension must be at
/// least one (a zero-length array holds no records) and the element count must not exceed the
/// data bytes (every supported element is at least one byte).
fn precheck_header_text(text: &[u8], data_len: u64) -> std::result::Result<(), String> {
    let nesting = text
        .iter()
        .filter(|&&b| matches!(b, b'(' | b'[' | b'{'))
        .count();
    if nesting > 4 {
        return Err(
            "the header describes a structured array, which is not supported; save a plain \
             numeric array"
                .into(),
        );
    }
    let text =
        std::str::from_utf8(text).map_err(|_| "the header is not valid UTF-8".to_string())?;
    let Some(at) = text.find("'shape'").or_else(|| text.find("\"shape\"")) else {
        return Err("the header has no 'shape' entry".into());
    };
    let rest = text.get(at + 7..).unwrap_or("").trim_start();
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
    let Some(rest) = rest.strip_prefix('(').or_else(|| rest.strip_prefix('[')) else {
        return Err("the header's shape is not a tuple".into());
    };
    let Some(end) = rest.find([')', ']']) else {
        return Err("the header's shape is not a tuple".into());
    };
    let mut product: u64 = 1;
    for dim in rest.get(..end).unwrap_or("").split(',') {
        let dim = dim.trim().trim_end_matches(['L', 'l']);
        if dim.is_empty() {
            continue;
        }
        let d: u64 = dim
            .parse()
            .map_err(|_| "the header's shape holds something other than sizes".to_string())?;
        if d == 0 {
            return Err("the array is empty: its shape has a zero-length dimension".into());
        }
        product = product
            .checked_mul(d)
            .filter(|&p| p <= data_len)
            .ok_or_else(|| {
                format!("truncated: the shape declares more elements than the {data_len} data bytes hold")
            })?;
    }
    Ok(())
}
