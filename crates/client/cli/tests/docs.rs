//! The documentation's references resolve: every relative Markdown link, and every repository
//! path written in backticks (`docs/service.md`, `crates/host/src/main.rs`), names a file or
//! folder that exists. Docs that point at missing files are how a newcomer gets lost.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

use std::path::{Path, PathBuf};

/// The repository root (this crate is `crates/client/cli`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Folders at the root that backticked paths may start with.
const TOP: [&str; 12] = [
    "bench",
    "crates",
    "data",
    "docs",
    "fuzz",
    "proto",
    "scripts",
    "third_party",
    "trainers",
    "wit",
    ".ci",
    ".config",
];

/// The Markdown files the project writes (not vendored code's or build output's).
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let skip = [
                "target",
                "third_party",
                "node_modules",
                ".git",
                ".venv",
                "out",
            ];
            if !skip.contains(&name.as_str()) {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// Targets of `[text](target)` links that point into the repository.
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or_default().trim();
        let external = target.contains("://") || target.starts_with("mailto:");
        if !target.is_empty() && !external && !target.contains(' ') {
            out.push(target.to_string());
        }
    }
    out
}

/// Repository paths in backticks: `docs/service.md`, `crates/enclave/runtime/src/predict.rs`
/// (a trailing `:LINE` or `/` allowed; patterns with `*`, `{` or `<` are not paths).
fn backticked_paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| {
            let path = span
                .split(':')
                .next()
                .unwrap_or_default()
                .trim_end_matches('/');
            let top = path.split('/').next().unwrap_or_default();
            let plain = path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
            (plain && path.contains('/') && TOP.contains(&top)).then(|| path.to_string())
        })
        .collect()
}

#[test]
fn every_link_and_path_in_the_docs_exists() {
    let root = root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "no Markdown found under {}",
        root.display()
    );
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let dir = file.parent().unwrap();
        for link in relative_links(&text) {
            if !dir.join(&link).exists() {
                missing.push(format!("{shown}: link ({link})"));
            }
        }
        for path in backticked_paths(&text) {
            // Paths are written from the repository root (or, in a crate's README, its own).
            if !root.join(&path).exists() && !dir.join(&path).exists() {
                missing.push(format!("{shown}: `{path}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documentation names files that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_checker_finds_links_and_paths() {
    let text = "see [format](docs/formats/x.md#nonce), [site](https://a.b/c), `docs/a.md:12`, \
                `crates/*/src`, `cargo test`, `scripts/test.sh`";
    assert_eq!(relative_links(text), ["docs/formats/x.md"]);
    assert_eq!(backticked_paths(text), ["docs/a.md", "scripts/test.sh"]);
}

/// The README's Python trainer is the one in `trainers/python/quickstart` (which the sandbox's
/// tests build and train), not a sketch that drifted from it.
#[test]
fn the_readme_python_trainer_is_the_quickstart_trainer() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let trainer =
        std::fs::read_to_string(root().join("trainers/python/quickstart/trainer.py")).unwrap();
    let start = readme
        .find("```python\n")
        .expect("the README shows a Python trainer")
        + "```python\n".len();
    let len = readme[start..].find("```").expect("the code block ends");
    assert_eq!(&readme[start..start + len], trainer);
}
