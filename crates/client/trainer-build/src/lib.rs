//! Builds operator trainers into `chiron:trainer` components, on the operator's machine.
//!
//! A trainer is either
//! - a Rust crate (a `cdylib` using `chiron-sdk`) compiled for `wasm32-unknown-unknown`: the
//!   core module that rustc emits carries the world's type information in a custom section (put
//!   there by wit-bindgen), and [`componentize`] turns it into a component; or
//! - a Python directory with a `trainer.py` using the `chiron` SDK (`crates/guest/python`,
//!   embedded here), which componentize-py turns into a component holding CPython
//!   (see `python.rs`).
//!
//! A component is the only form the enclave's sandbox loads. [`build_trainer`] detects the kind
//! of a directory and builds it; it is what `chiron trainer build DIR` runs.
//!
//! Nothing here is trusted by the enclave: the sandbox re-checks every component it loads (it
//! may import only the `chiron:trainer` world and the sandbox's virtual WASI). This crate only
//! gives operators the right artefact and early, readable errors.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod python;

pub use python::{COMPONENTIZE_PY_ENV, COMPONENTIZE_PY_SERIES, PYTHON_ENTRY};

/// The Rust target trainers are built for (no WASI: a Rust trainer needs nothing of it).
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Why a trainer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The directory holds neither a `Cargo.toml` nor a `trainer.py`.
    #[error(
        "{0} holds no trainer: expected a Cargo.toml (a Rust trainer crate) or a trainer.py \
         (a Python trainer)"
    )]
    NoManifest(PathBuf),
    /// A manifest (`pyproject.toml`) does not parse.
    #[error("{0}: {1}")]
    Manifest(PathBuf, String),
    /// componentize-py is missing or of another release series.
    #[error("{0}")]
    PythonTool(String),
    /// componentize-py ran and failed (a Python error in the trainer, typically); `output` is
    /// the end of what it printed.
    #[error("componentize-py failed ({status}) building the Python trainer:\n{output}")]
    Python {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines it printed.
        output: String,
    },
    /// cargo could not be started.
    #[error("could not run cargo: {0}")]
    Spawn(#[source] std::io::Error),
    /// cargo ran and failed (its diagnostics went to stderr).
    #[error(
        "cargo build failed ({0}); is the {TARGET} target installed? (rustup target add {TARGET})"
    )]
    Cargo(std::process::ExitStatus),
    /// The build produced no `cdylib` `.wasm` for the crate in the directory.
    #[error(
        "the build produced no .wasm for the crate in {0}: is it a `cdylib` (`[lib] crate-type = [\"cdylib\"]`)?"
    )]
    NoArtifact(PathBuf),
    /// Reading the module or writing the component failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The core module could not be turned into a component.
    #[error(transparent)]
    Componentize(#[from] ComponentizeError),
}

impl BuildError {
    /// Whether the build tool itself is missing or of the wrong release (componentize-py not
    /// installed, cargo not found): the machine's setup, not the trainer's fault. Test suites
    /// use it to skip builds on a machine without the tool.
    pub fn is_missing_tool(&self) -> bool {
        matches!(self, BuildError::Spawn(_) | BuildError::PythonTool(_))
    }
}

/// A core module that cannot become a `chiron:trainer` component (typically: built without
/// `chiron-sdk`, so it lacks the world's type information, or with a WASI target).
#[derive(Debug, thiserror::Error)]
#[error("cannot make a component of this module: {0}")]
pub struct ComponentizeError(String);

/// Turns a core module built with wit-bindgen (the `component-type` custom section names its
/// world) into a validated component.
///
/// The output is byte-for-byte what `wasm-tools component new` 1.254.2 produces. Imports the
/// module does not use are dropped by the encoder, so the component imports only what the
/// trainer calls.
pub fn componentize(core_wasm: &[u8]) -> Result<Vec<u8>, ComponentizeError> {
    wit_component::ComponentEncoder::default()
        .module(core_wasm)
        .and_then(|encoder| encoder.validate(true).encode())
        // `{:#}` keeps the whole cause chain on one line: the encoder's messages are precise
        // (e.g. which import has no type information) and operators need all of it.
        .map_err(|e| ComponentizeError(format!("{e:#}")))
}

/// How to run the build tools for [`build_trainer_with`].
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// `-j` for cargo; `None` leaves cargo's default (or `CARGO_BUILD_JOBS` from the
    /// environment, which the child inherits).
    pub jobs: Option<u32>,
    /// Quiet: the tools' output (cargo's diagnostics, componentize-py's messages) is collected
    /// and dropped on success (componentize-py's ends up in the error on failure); otherwise
    /// it goes to stderr as it comes.
    pub quiet: bool,
}

/// The kinds of trainer [`build_trainer`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainerKind {
    /// A Cargo project (`Cargo.toml`).
    Rust,
    /// A Python trainer (`trainer.py`, usually with a `pyproject.toml`).
    Python,
}

/// What kind of trainer `dir` holds: a `Cargo.toml` makes it Rust, else a [`PYTHON_ENTRY`]
/// makes it Python.
pub fn detect(dir: &Path) -> Result<TrainerKind, BuildError> {
    if dir.join("Cargo.toml").is_file() {
        Ok(TrainerKind::Rust)
    } else if dir.join(PYTHON_ENTRY).is_file() {
        Ok(TrainerKind::Python)
    } else {
        Err(BuildError::NoManifest(dir.to_path_buf()))
    }
}

/// Builds the trainer in `dir` and returns the component's path.
///
/// Rust: builds the crate (release, [`TARGET`]), componentises it and writes
/// `<crate>.component.wasm` beside the core module in cargo's target directory. Python: runs
/// componentize-py ([`COMPONENTIZE_PY_ENV`] or `PATH`) and writes
/// `dir/target/chiron/<name>.component.wasm`, reusing it while its inputs are unchanged.
pub fn build_trainer(dir: &Path) -> Result<PathBuf, BuildError> {
    build_trainer_with(dir, &BuildOptions::default())
}

/// [`build_trainer`] with explicit options.
pub fn build_trainer_with(dir: &Path, options: &BuildOptions) -> Result<PathBuf, BuildError> {
    match detect(dir)? {
        TrainerKind::Rust => build_rust(dir, options),
        TrainerKind::Python => python::build(dir, options),
    }
}

/// Builds a Rust trainer crate (see [`build_trainer`]).
fn build_rust(dir: &Path, options: &BuildOptions) -> Result<PathBuf, BuildError> {
    let manifest = dir.join("Cargo.toml");
    let manifest = manifest.canonicalize().map_err(|source| BuildError::Io {
        path: manifest.clone(),
        source,
    })?;
    // `CARGO` is set when we run under cargo (tests, `cargo run`): use the same toolchain.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args(["build", "--release", "--target", TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(if options.quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        });
    if let Some(j) = options.jobs {
        cmd.arg("-j").arg(j.to_string());
    }
    let mut child = cmd.spawn().map_err(BuildError::Spawn)?;
    let mut wasm = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(BuildError::Spawn)?;
            if let Some(path) = cdylib_wasm(&line, &manifest) {
                wasm = Some(path);
            } else if !options.quiet && !line.starts_with('{') {
                // Rendered diagnostics of `json-render-diagnostics` go to stderr; anything
                // else on stdout (build-script output) is passed along.
                println!("{line}");
            }
        }
    }
    let status = child.wait().map_err(BuildError::Spawn)?;
    if !status.success() {
        return Err(BuildError::Cargo(status));
    }
    let wasm = wasm.ok_or_else(|| BuildError::NoArtifact(dir.to_path_buf()))?;
    let core = std::fs::read(&wasm).map_err(|source| BuildError::Io {
        path: wasm.clone(),
        source,
    })?;
    let component = componentize(&core)?;
    let stem = wasm
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trainer".to_owned());
    let out = wasm.with_file_name(format!("{stem}.component.wasm"));
    std::fs::write(&out, component).map_err(|source| BuildError::Io {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

/// The `.wasm` of a `compiler-artifact` message for the `cdylib` of the package at `manifest`.
fn cdylib_wasm(line: &str, manifest: &Path) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let from = PathBuf::from(msg.get("manifest_path")?.as_str()?);
    if from.canonicalize().ok()? != manifest {
        return None;
    }
    let kinds = msg.get("target")?.get("kind")?.as_array()?;
    if !kinds.iter().any(|k| k.as_str() == Some("cdylib")) {
        return None;
    }
    msg.get("filenames")?
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}
