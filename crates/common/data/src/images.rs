//! Folders of images (PNG, JPEG, BMP, GIF, WebP, TIFF, ... : every format the `image` crate is
//! built to decode here), one sub-folder per class (the layout of torchvision's `ImageFolder`
//! and Keras' `image_dataset_from_directory`).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use chiron_seal::Dtype;
use image::{DynamicImage, ImageFormat, ImageReader};

use crate::{Dataset, Error, Result, SplitData};

/// How an image folder is imported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Record shape `[C, H, W]` with `C` 1 (greyscale) or 3 (RGB); when absent, the first image
    /// decides (`C` 1 if it is greyscale, 3 otherwise; its size gives `H` and `W`).
    pub shape: Option<[u32; 3]>,
    /// Skip (and count) anything in a class folder that is not an image file of a readable
    /// format, instead of refusing it. Off by default: a file silently left out is a record
    /// silently missing from the dataset.
    pub skip_unknown: bool,
}

/// Lower-case file extensions of the image formats this build decodes (`png`, `jpg`, ...).
pub fn readable_extensions() -> Vec<&'static str> {
    ImageFormat::all()
        .filter(ImageFormat::reading_enabled)
        .flat_map(|f| f.extensions_str().iter().copied())
        .collect()
}

/// Whether `name` ends in the extension of an image format this build decodes (any case).
fn is_image_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(ImageFormat::from_extension)
        .is_some_and(|f| f.reading_enabled())
}

/// Imports image folders; [`import_counting`] without the count of skipped entries.
pub fn import(paths: &[PathBuf], opts: &ImageOptions) -> Result<Dataset> {
    Ok(import_counting(paths, opts)?.0)
}

/// Imports image folders, returning the dataset and how many class-folder entries
/// [`ImageOptions::skip_unknown`] skipped.
///
/// Each path is a root folder holding one sub-folder per class; class names are the sub-folder
/// names sorted byte-wise and a class id is the index in that order. Inside a class folder,
/// image files (an extension of [`readable_extensions`], any letter case) are read in sorted
/// order and dot-files are ignored; any other entry (another file, a nested folder) is an error
/// naming it, or with `skip_unknown` is skipped and counted. Files directly in a root are not in
/// any class and are ignored. A single root whose only sub-folders are `train` and
/// `test`, each holding class folders, gives splits `train` and `test`; any other single root
/// gives split `train`. With several roots, each root is one split named after its folder
/// (lower-cased; it must be a valid, distinct split name). All splits must have the same classes.
///
/// Guarantees: dtype `u8`, shape `[C, H, W]`, pixels stored channels-first (all of channel 0,
/// then channel 1, ...); every image has exactly `H × W` pixels (images are never resized) and
/// is converted to `C` channels (luma for 1, RGB for 3; alpha dropped). A file that cannot be
/// decoded, an image of another size or an empty class folder is an error naming the file or
/// folder.
pub fn import_counting(paths: &[PathBuf], opts: &ImageOptions) -> Result<(Dataset, usize)> {
    if let Some([c, h, w]) = opts.shape
        && (!(c == 1 || c == 3) || h == 0 || w == 0)
    {
        return Err(Error::Invalid(format!(
            "image shape [{c}, {h}, {w}] is not [C, H, W] with C 1 or 3 and H, W at least 1"
        )));
    }
    let layout = plan(paths)?;
    let Some(first) = layout.first() else {
        return Err(Error::Invalid("no image folder given".into()));
    };
    let class_names: Vec<String> = first.classes.iter().map(|(n, _)| n.clone()).collect();
    for split in &layout {
        let names: Vec<&String> = split.classes.iter().map(|(n, _)| n).collect();
        if names != class_names.iter().collect::<Vec<_>>() {
            return Err(Error::format(
                &split.root,
                format!(
                    "its class folders differ from those of {}: every split needs the same classes",
                    first.root.display()
                ),
            ));
        }
    }
    if class_names.len() < 2 {
        return Err(Error::format(
            &first.root,
            format!(
                "holds {} class folder(s); a dataset needs at least two",
                class_names.len()
            ),
        ));
    }
    let classes = u32::try_from(class_names.len())
        .map_err(|_| Error::format(&first.root, "holds too many class folders"))?;

    let mut shape = opts.shape;
    let mut skipped = 0usize;
    let mut splits = Vec::with_capacity(layout.len());
    for split in layout {
        let mut data = SplitData {
            name: split.name,
            features: Vec::new(),
            labels: Vec::new(),
        };
        for ((_, folder), label) in split.classes.iter().zip(0u32..) {
            let files = image_files(folder, opts.skip_unknown, &mut skipped)?;
            if files.is_empty() {
                return Err(Error::format(
                    folder,
                    format!(
                        "class folder holds no image (file names ending .{})",
                        readable_extensions().join(", .")
                    ),
                ));
            }
            for file in files {
                let pixels = load(&file, &mut shape)?;
                data.features.extend_from_slice(&pixels);
                data.labels.push(label);
            }
        }
        splits.push(data);
    }
    let Some(shape) = shape else {
        return Err(Error::Invalid("no image found".into()));
    };
    let dataset = Dataset {
        dtype: Dtype::U8,
        shape: shape.to_vec(),
        classes,
        class_names,
        splits,
    };
    Ok((dataset, skipped))
}

/// One split: its name, root folder, and its class folders sorted by name.
struct SplitPlan {
    name: String,
    root: PathBuf,
    classes: Vec<(String, PathBuf)>,
}

fn plan(paths: &[PathBuf]) -> Result<Vec<SplitPlan>> {
    match paths {
        [] => Err(Error::Invalid("no image folder given".into())),
        [root] => {
            let subs = sub_folders(root)?;
            let names: Vec<&str> = subs.iter().map(|(n, _)| n.as_str()).collect();
            if names == ["test", "train"] {
                let mut nested = Vec::with_capacity(2);
                for (name, dir) in &subs {
                    nested.push((name.clone(), dir.clone(), sub_folders(dir)?));
                }
                if nested.iter().all(|(_, _, classes)| !classes.is_empty()) {
                    // Stored train first: the order every consumer expects.
                    nested.reverse();
                    return Ok(nested
                        .into_iter()
                        .map(|(name, root, classes)| SplitPlan {
                            name,
                            root,
                            classes,
                        })
                        .collect());
                }
            }
            Ok(vec![SplitPlan {
                name: "train".into(),
                root: root.clone(),
                classes: subs,
            }])
        }
        _ => {
            let mut out: Vec<SplitPlan> = Vec::with_capacity(paths.len());
            for root in paths {
                let name = crate::csv::split_name_from_file(root, &[])?;
                if let Some(other) = out.iter().find(|s| s.name == name) {
                    return Err(Error::Invalid(format!(
                        "{} and {} would both become split {name:?}; every folder must name a \
                         different split",
                        other.root.display(),
                        root.display()
                    )));
                }
                out.push(SplitPlan {
                    name,
                    root: root.clone(),
                    classes: sub_folders(root)?,
                });
            }
            Ok(out)
        }
    }
}

/// Entries of `dir` sorted by name, dot-files left out, names required to be UTF-8.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let Some(name) = name.to_str() else {
            return Err(Error::format(&path, "file name is not valid UTF-8"));
        };
        out.push((name.to_string(), path));
    }
    out.sort();
    Ok(out)
}

fn sub_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    if !dir.is_dir() {
        return Err(Error::format(dir, "is not a folder"));
    }
    Ok(entries(dir)?
        .into_iter()
        .filter(|(_, p)| p.is_dir())
        .collect())
}

/// The image files of class folder `dir`, sorted; anything else is refused, or counted in
/// `skipped` when `skip_unknown`.
fn image_files(dir: &Path, skip_unknown: bool, skipped: &mut usize) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (name, path) in entries(dir)? {
        if is_image_name(&name) && path.is_file() {
            out.push(path);
        } else if skip_unknown {
            *skipped += 1;
        } else if path.is_dir() {
            return Err(Error::format(
                &path,
                "is a folder inside a class folder, which should hold only images (pass \
                 --skip-unknown to skip anything that is not an image)",
            ));
        } else {
            return Err(Error::format(
                &path,
                format!(
                    "is not an image file of a readable format (file names ending .{}); remove \
                     it or pass --skip-unknown to skip such files",
                    readable_extensions().join(", .")
                ),
            ));
        }
    }
    Ok(out)
}

/// Decodes one image into channels-first bytes of `shape`, fixing `shape` from this image when
/// it is still open. The size is read from the header before decoding, so an image of the wrong
/// size is refused without decoding it.
pub fn load(path: &Path, shape: &mut Option<[u32; 3]>) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>> {
        let mut r = ImageReader::new(Cursor::new(bytes.as_slice()))
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))?;
        // The content decides; the extension is only a fallback for unrecognised content.
        if r.format().is_none()
            && let Some(f) = path.extension().and_then(ImageFormat::from_extension)
        {
            r.set_format(f);
        }
        Ok(r)
    };
    let undecodable =
        |e: image::ImageError| Error::format(path, format!("cannot decode the image: {e}"));
    let (w, h) = reader()?.into_dimensions().map_err(undecodable)?;
    if let Some([_, h0, w0]) = *shape
        && (h, w) != (h0, w0)
    {
        return Err(Error::format(
            path,
            format!("image is {w}x{h} (width x height) but the dataset's images are {w0}x{h0}"),
        ));
    }
    let image = reader()?.decode().map_err(undecodable)?;
    if (image.width(), image.height()) != (w, h) {
        return Err(Error::format(path, "image size changed while decoding"));
    }
    let channels = match *shape {
        Some([c, _, _]) => c,
        None => {
            let c = if image.color().has_color() { 3 } else { 1 };
            *shape = Some([c, h, w]);
            c
        }
    };
    Ok(channels_first(&image, channels))
}

/// Pixels in `[C, H, W]` order: the decoder yields interleaved `[H, W, C]`.
fn channels_first(image: &DynamicImage, channels: u32) -> Vec<u8> {
    if channels == 1 {
        return image.to_luma8().into_raw();
    }
    let rgb = image.to_rgb8().into_raw();
    let plane = rgb.len() / 3;
    let mut out = vec![0u8; rgb.len()];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            if let Some(slot) = out.get_mut(c * plane + i) {
                *slot = v;
            }
        }
    }
    out
}
