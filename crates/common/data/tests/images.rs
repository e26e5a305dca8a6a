//! Image-folder importer: PNG, JPEG, BMP, WebP, ... folders written with the `image` crate,
//! imported back byte for byte in channels-first layout, and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use chiron_data::images::{self, ImageOptions};
use chiron_seal::Dtype;
use common::{assert_mentions, err_text, seal_and_compare};
use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

const W: u32 = 5;
const H: u32 = 4;

fn rgb(seed: u8) -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| {
        Rgb([
            seed.wrapping_add((x * 40) as u8),
            seed.wrapping_mul(3).wrapping_add((y * 50) as u8),
            ((x + y) as u8 * 20) ^ seed,
        ])
    })
}

fn gray(seed: u8) -> GrayImage {
    GrayImage::from_fn(W, H, |x, y| {
        Luma([seed.wrapping_add((x * 13 + y * 29) as u8)])
    })
}

/// `[H, W, 3]` interleaved pixels as `[3, H, W]` planes, computed independently of the importer.
fn planes(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    for c in 0..3 {
        for y in 0..img.height() {
            for x in 0..img.width() {
                out.push(img.get_pixel(x, y).0[c]);
            }
        }
    }
    out
}

fn mkdir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    path.to_path_buf()
}

fn opts(shape: Option<[u32; 3]>) -> ImageOptions {
    ImageOptions {
        shape,
        skip_unknown: false,
    }
}

#[test]
fn rgb_png_folder_round_trips_channels_first() {
    let root = tempfile::tempdir().unwrap();
    let cat = mkdir(&root.path().join("cat"));
    let dog = mkdir(&root.path().join("dog"));
    // Names out of order and mixed-case extensions: files are read sorted by name.
    rgb(2).save(dog.join("b.png")).unwrap();
    rgb(1).save(dog.join("a.PNG")).unwrap();
    rgb(9).save(cat.join("x.png")).unwrap();
    std::fs::write(dog.join(".hidden.png"), "not an image either").unwrap();
    std::fs::write(root.path().join("README.md"), "top-level files are ignored").unwrap();
    mkdir(&root.path().join(".cache"));

    let ds = images::import(&[root.path().to_path_buf()], &opts(None)).unwrap();
    assert_eq!(ds.dtype, Dtype::U8);
    assert_eq!(ds.shape, vec![3, H, W]);
    assert_eq!(ds.classes, 2);
    assert_eq!(ds.class_names, vec!["cat", "dog"]);
    assert_eq!(ds.splits.len(), 1);
    assert_eq!(ds.splits[0].name, "train");
    assert_eq!(ds.splits[0].labels, vec![0, 1, 1]);
    assert_eq!(
        ds.splits[0].features,
        [planes(&rgb(9)), planes(&rgb(1)), planes(&rgb(2))].concat()
    );
    seal_and_compare(&ds);
}

#[test]
fn greyscale_gives_one_channel_and_converts_on_request() {
    let root = tempfile::tempdir().unwrap();
    for (class, seed) in [("0", 10u8), ("1", 20)] {
        let dir = mkdir(&root.path().join(class));
        gray(seed).save(dir.join("img.png")).unwrap();
    }
    let roots = [root.path().to_path_buf()];
    let ds = images::import(&roots, &opts(None)).unwrap();
    assert_eq!(ds.shape, vec![1, H, W]);
    assert_eq!(
        ds.splits[0].features,
        [gray(10).into_raw(), gray(20).into_raw()].concat()
    );

    // Declared RGB: grey replicated into the three planes.
    let ds = images::import(&roots, &opts(Some([3, H, W]))).unwrap();
    let g = gray(10).into_raw();
    assert_eq!(ds.shape, vec![3, H, W]);
    assert_eq!(
        &ds.splits[0].features[..3 * g.len()],
        &[g.clone(), g.clone(), g].concat()[..]
    );
}

#[test]
fn colour_converts_to_luma_and_alpha_is_dropped() {
    let root = tempfile::tempdir().unwrap();
    let a = mkdir(&root.path().join("a"));
    let b = mkdir(&root.path().join("b"));
    let rgba = RgbaImage::from_fn(W, H, |x, y| Rgba([x as u8 * 50, y as u8 * 60, 7, 128]));
    rgba.save(a.join("alpha.png")).unwrap();
    rgb(3).save(b.join("c.png")).unwrap();
    let roots = [root.path().to_path_buf()];

    let ds = images::import(&roots, &opts(None)).unwrap();
    assert_eq!(ds.shape, vec![3, H, W]);
    let expected_rgb = image::DynamicImage::ImageRgba8(rgba.clone()).to_rgb8();
    assert_eq!(
        &ds.splits[0].features[..(3 * W * H) as usize],
        &planes(&expected_rgb)[..]
    );

    let ds = images::import(&roots, &opts(Some([1, H, W]))).unwrap();
    let luma = image::DynamicImage::ImageRgb8(rgb(3)).to_luma8().into_raw();
    assert_eq!(&ds.splits[0].features[(W * H) as usize..], &luma[..]);
}

#[test]
fn jpeg_folder_matches_the_decoded_pixels() {
    let root = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for (class, seed) in [("ant", 5u8), ("bee", 77)] {
        let dir = mkdir(&root.path().join(class));
        for (i, ext) in ["jpg", "JPEG"].iter().enumerate() {
            let path = dir.join(format!("{i}.{ext}"));
            rgb(seed.wrapping_add(i as u8))
                .save_with_format(&path, image::ImageFormat::Jpeg)
                .unwrap();
            expected.extend(planes(&image::open(&path).unwrap().to_rgb8()));
        }
    }
    let ds = images::import(&[root.path().to_path_buf()], &opts(None)).unwrap();
    assert_eq!(ds.shape, vec![3, H, W]);
    assert_eq!(ds.splits[0].labels, vec![0, 0, 1, 1]);
    assert_eq!(ds.splits[0].features, expected);
    seal_and_compare(&ds);
}

#[test]
fn train_and_test_sub_folders_become_splits() {
    let root = tempfile::tempdir().unwrap();
    for (split, seed) in [("train", 1u8), ("test", 100)] {
        for class in ["no", "yes"] {
            let dir = mkdir(&root.path().join(split).join(class));
            rgb(seed).save(dir.join("1.png")).unwrap();
        }
    }
    let ds = images::import(&[root.path().to_path_buf()], &opts(None)).unwrap();
    assert_eq!(ds.splits.len(), 2);
    assert_eq!(ds.splits[0].name, "train");
    assert_eq!(
        ds.splits[0].features,
        [planes(&rgb(1)), planes(&rgb(1))].concat()
    );
    assert_eq!(ds.splits[1].name, "test");
    assert_eq!(
        ds.splits[1].features,
        [planes(&rgb(100)), planes(&rgb(100))].concat()
    );
    assert_eq!(ds.splits[1].labels, vec![0, 1]);
    seal_and_compare(&ds);

    // A class only in train: refused.
    let extra = mkdir(&root.path().join("train").join("maybe"));
    rgb(0).save(extra.join("1.png")).unwrap();
    let e = err_text(images::import(&[root.path().to_path_buf()], &opts(None)));
    assert_mentions(&e, &["test", "class folders differ", "train"]);
}

#[test]
fn several_roots_are_named_splits() {
    let base = tempfile::tempdir().unwrap();
    for (split, seed) in [("fit", 4u8), ("holdout", 8)] {
        for class in ["a", "b"] {
            let dir = mkdir(&base.path().join(split).join(class));
            gray(seed).save(dir.join("1.png")).unwrap();
        }
    }
    let roots = [base.path().join("fit"), base.path().join("holdout")];
    let ds = images::import(&roots, &opts(None)).unwrap();
    let names: Vec<&str> = ds.splits.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["fit", "holdout"]);
}

#[test]
fn wrong_size_image_names_file_and_sizes() {
    let root = tempfile::tempdir().unwrap();
    let a = mkdir(&root.path().join("a"));
    let b = mkdir(&root.path().join("b"));
    rgb(1).save(a.join("1.png")).unwrap();
    RgbImage::new(7, 6).save(b.join("odd.png")).unwrap();
    let e = err_text(images::import(&[root.path().to_path_buf()], &opts(None)));
    assert_mentions(&e, &["odd.png", "7x6", "5x4"]);

    let e = err_text(images::import(
        &[root.path().to_path_buf()],
        &opts(Some([3, 6, 7])),
    ));
    assert_mentions(&e, &["1.png", "5x4", "7x6"]);
}

#[test]
fn corrupt_image_names_the_file() {
    let root = tempfile::tempdir().unwrap();
    let a = mkdir(&root.path().join("a"));
    let b = mkdir(&root.path().join("b"));
    rgb(1).save(a.join("1.png")).unwrap();
    let mut png = Vec::new();
    rgb(2)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png.truncate(png.len() / 2);
    std::fs::write(b.join("broken.png"), &png).unwrap();
    let e = err_text(images::import(&[root.path().to_path_buf()], &opts(None)));
    assert_mentions(&e, &["broken.png", "cannot decode"]);

    std::fs::write(b.join("broken.png"), b"definitely not an image").unwrap();
    let e = err_text(images::import(&[root.path().to_path_buf()], &opts(None)));
    assert_mentions(&e, &["broken.png", "cannot decode"]);
}

#[test]
fn empty_class_folder_and_bad_layouts_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let a = mkdir(&root.path().join("a"));
    let empty = mkdir(&root.path().join("empty"));
    std::fs::write(empty.join("readme.txt"), "no images here").unwrap();
    rgb(1).save(a.join("1.png")).unwrap();
    let e = err_text(images::import(&[root.path().to_path_buf()], &opts(None)));
    assert_mentions(&e, &["readme.txt", "--skip-unknown"]);
    let skip = ImageOptions {
        skip_unknown: true,
        ..opts(None)
    };
    let e = err_text(images::import(&[root.path().to_path_buf()], &skip));
    assert_mentions(&e, &["empty", "holds no image", ".png", ".bmp"]);

    std::fs::remove_dir_all(&empty).unwrap();
    let e = err_text(images::import(&[root.path().to_path_buf()], &opts(None)));
    assert_mentions(&e, &["1 class folder", "at least two"]);

    let e = err_text(images::import(
        &[root.path().to_path_buf()],
        &opts(Some([2, H, W])),
    ));
    assert_mentions(&e, &["C 1 or 3"]);
}

/// Every format the importer's `image` build reads, one class each; written by the same crate.
#[test]
fn bmp_gif_webp_tiff_and_friends_are_decoded() {
    let root = tempfile::tempdir().unwrap();
    let formats = [
        ("bmp", image::ImageFormat::Bmp),
        ("gif", image::ImageFormat::Gif),
        ("ppm", image::ImageFormat::Pnm),
        ("qoi", image::ImageFormat::Qoi),
        ("tga", image::ImageFormat::Tga),
        ("tiff", image::ImageFormat::Tiff),
        ("webp", image::ImageFormat::WebP),
    ];
    let mut expected = Vec::new();
    for (i, (ext, format)) in formats.iter().enumerate() {
        let dir = mkdir(&root.path().join(format!("class-{i}-{ext}")));
        let path = dir.join(format!("img.{}", ext.to_uppercase()));
        // Lossless formats, except GIF's palette: compare with what the crate decodes.
        rgb(i as u8 * 30).save_with_format(&path, *format).unwrap();
        expected.extend(planes(&image::open(&path).unwrap().to_rgb8()));
        assert!(images::readable_extensions().contains(ext), "{ext}");
    }
    let ds = images::import(&[root.path().to_path_buf()], &opts(Some([3, H, W]))).unwrap();
    assert_eq!(ds.classes, formats.len() as u32);
    assert_eq!(
        ds.splits[0].labels,
        (0..formats.len() as u32).collect::<Vec<_>>()
    );
    assert_eq!(ds.splits[0].features, expected);
    // BMP, QOI, TGA, TIFF, PPM and lossless WebP keep the exact pixels.
    assert_eq!(&expected[..planes(&rgb(0)).len()], &planes(&rgb(0))[..]);
}

#[test]
fn unknown_files_are_refused_by_name_or_skipped_and_counted() {
    let root = tempfile::tempdir().unwrap();
    let cat = mkdir(&root.path().join("cat"));
    let dog = mkdir(&root.path().join("dog"));
    rgb(1).save(cat.join("1.png")).unwrap();
    rgb(2).save(dog.join("2.png")).unwrap();
    std::fs::write(dog.join("notes.txt"), "not an image").unwrap();
    let e = err_text(images::import(&[root.path().to_path_buf()], &opts(None)));
    assert_mentions(&e, &["notes.txt", "not an image file", "--skip-unknown"]);

    // A nested folder is refused too: its images would otherwise be silently missing.
    std::fs::remove_file(dog.join("notes.txt")).unwrap();
    mkdir(&dog.join("more"));
    let e = err_text(images::import(&[root.path().to_path_buf()], &opts(None)));
    assert_mentions(&e, &["more", "is a folder", "--skip-unknown"]);

    std::fs::write(dog.join("notes.txt"), "not an image").unwrap();
    std::fs::write(cat.join("Thumbs.db"), "not an image").unwrap();
    let skip = ImageOptions {
        skip_unknown: true,
        ..opts(None)
    };
    let (ds, skipped) = images::import_counting(&[root.path().to_path_buf()], &skip).unwrap();
    assert_eq!(skipped, 3, "notes.txt, Thumbs.db and the folder more");
    assert_eq!(ds.splits[0].labels, vec![0, 1]);
    assert_eq!(
        ds.splits[0].features,
        [planes(&rgb(1)), planes(&rgb(2))].concat()
    );
    // Without skipping nothing is counted.
    std::fs::remove_file(dog.join("notes.txt")).unwrap();
    std::fs::remove_file(cat.join("Thumbs.db")).unwrap();
    std::fs::remove_dir(dog.join("more")).unwrap();
    let (_, skipped) = images::import_counting(&[root.path().to_path_buf()], &opts(None)).unwrap();
    assert_eq!(skipped, 0);
}
