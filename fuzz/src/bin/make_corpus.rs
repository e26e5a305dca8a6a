//! Writes the seed corpora of the fuzz targets: small valid sealed datasets under the fuzzing key
//! for `container`, and their headers for `header`. Reproducible (fixed dataset ids).
//!
//! Usage: `cargo run --bin make_corpus [CORPUS_DIR]` (default `corpus`, relative to `fuzz/`).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use chiron_fuzz::seed_datasets;
use chiron_seal::SealedDataset;

fn main() -> ExitCode {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    match run(&root) {
        Ok(n) => {
            println!("wrote {n} seeds under {}", root.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make_corpus: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &std::path::Path) -> Result<usize, Box<dyn std::error::Error>> {
    let container = root.join("container");
    let header = root.join("header");
    std::fs::create_dir_all(&container)?;
    std::fs::create_dir_all(&header)?;
    let mut n = 0;
    for (name, bytes) in seed_datasets() {
        let (_, encoded_header) = SealedDataset::read_header(&bytes)?;
        std::fs::write(container.join(format!("seed-{name}.chd")), &bytes)?;
        std::fs::write(header.join(format!("seed-{name}.hdr")), &encoded_header)?;
        n += 2;
    }
    Ok(n)
}
