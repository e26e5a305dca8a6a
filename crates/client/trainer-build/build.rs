//! Embeds the Python SDK (`crates/guest/python`: the `chiron` package and `chiron_entry.py`)
//! and the trainer world's WIT, so `chiron trainer build` can build a Python trainer anywhere:
//! it writes them to a temporary directory for componentize-py.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let sdk = manifest.join("../../guest/python");
    let wit = manifest.join("../../../wit/chiron-trainer.wit");
    println!("cargo:rerun-if-changed={}", sdk.display());
    println!("cargo:rerun-if-changed={}", wit.display());

    let mut files = vec![sdk.join("chiron_entry.py")];
    collect(&sdk.join("chiron"), &mut files);
    files.sort();

    let mut out =
        String::from("/// The Python SDK's files: path relative to the SDK root, contents.\n");
    out.push_str("pub(crate) const PYTHON_SDK: &[(&str, &str)] = &[\n");
    for file in &files {
        let relative = file.strip_prefix(&sdk).unwrap_or(file);
        let relative = relative.to_string_lossy().replace('\\', "/");
        let _ = writeln!(
            out,
            "    ({relative:?}, include_str!({:?})),",
            file.display().to_string()
        );
        println!("cargo:rerun-if-changed={}", file.display());
    }
    out.push_str("];\n");
    let _ = writeln!(
        out,
        "/// The `chiron:trainer` world.\npub(crate) const TRAINER_WIT: &str = include_str!({:?});",
        wit.display().to_string()
    );
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("python_sdk.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}

/// Every `.py` file under `dir` (recursively), skipping caches.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("the Python SDK is missing: {}", dir.display());
    };
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                collect(&path, files);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            files.push(path);
        }
    }
}
