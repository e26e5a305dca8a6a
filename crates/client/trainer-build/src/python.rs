//! Python trainers: a directory with a `trainer.py` (and usually a `pyproject.toml`) becomes a
//! `chiron:trainer` component through componentize-py.
//!
//! The component holds CPython, the standard-library modules the trainer imports, the `chiron`
//! SDK (embedded in this crate, written to a temporary directory for each build) and the
//! trainer's own modules, snapshotted after import. `chiron_entry.py` of the SDK is the app
//! module: it imports `trainer` and exports its `train` and `predict`.
//!
//! Builds are incremental: the output is reused while a digest of everything that went into
//! it (the trainer's files, the SDK, the WIT, the componentize-py version) is unchanged.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{BuildError, BuildOptions};

include!(concat!(env!("OUT_DIR"), "/python_sdk.rs"));

/// The componentize-py release series the SDK is written and tested against.
pub const COMPONENTIZE_PY_SERIES: &str = "0.25.";

/// Environment variable naming the componentize-py executable (`scripts/setup.sh` sets it);
/// without it, `componentize-py` is looked up on `PATH`.
pub const COMPONENTIZE_PY_ENV: &str = "CHIRON_COMPONENTIZE_PY";

/// The file that makes a directory a Python trainer.
pub const PYTHON_ENTRY: &str = "trainer.py";

/// Builds the Python trainer in `dir` into `dir/target/chiron/<name>.component.wasm` (`name`
/// from `pyproject.toml`'s `[project] name`, else the directory's name) and returns that path.
pub(crate) fn build(dir: &Path, options: &BuildOptions) -> Result<PathBuf, BuildError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    let dir = dir.canonicalize().map_err(io(dir))?;
    let name = project_name(&dir)?;
    let tool = componentize_py();
    let version = tool_version(&tool)?;

    let inputs = inputs_digest(&dir, &version)?;
    let out_dir = dir.join("target").join("chiron");
    let out = out_dir.join(format!("{name}.component.wasm"));
    let stamp = out_dir.join(format!("{name}.inputs"));
    if out.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == inputs) {
        return Ok(out);
    }

    std::fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
    // Inside the output directory, so the final rename stays on one filesystem.
    let work = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&out_dir)
        .map_err(io(&out_dir))?;
    let sdk = work.path().join("sdk");
    for (relative, contents) in PYTHON_SDK {
        let path = sdk.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, contents).map_err(io(&path))?;
    }
    let wit = work.path().join("wit");
    std::fs::create_dir_all(&wit).map_err(io(&wit))?;
    std::fs::write(wit.join("chiron-trainer.wit"), TRAINER_WIT).map_err(io(&wit))?;
    let built = work.path().join("component.wasm");

    let mut cmd = Command::new(&tool);
    cmd.current_dir(work.path())
        .arg("-d")
        .arg(&wit)
        .args(["-w", "trainer", "componentize", "-p"])
        .arg(&dir)
        .arg("-p")
        .arg(&sdk)
        .arg("chiron_entry")
        .arg("-o")
        .arg(&built)
        .stdin(Stdio::null());
    let output = if options.quiet {
        cmd.output()
    } else {
        // Its progress messages go to stderr: stdout is left for the path printed last.
        cmd.stdout(Stdio::from(std::io::stderr()))
            .stderr(Stdio::inherit())
            .status()
            .map(|status| std::process::Output {
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            })
    }
    .map_err(|e| BuildError::Spawn(with_hint(e, &tool)))?;
    if !output.status.success() {
        let mut text = output.stdout;
        text.extend_from_slice(&output.stderr);
        return Err(BuildError::Python {
            status: output.status,
            output: tail(&text, 40),
        });
    }
    std::fs::rename(&built, &out).map_err(io(&out))?;
    std::fs::write(&stamp, format!("{inputs}\n")).map_err(io(&stamp))?;
    Ok(out)
}

/// The component's name: `[project] name` of `pyproject.toml` when present, else the
/// directory's name; only `[A-Za-z0-9_-]` are kept (it becomes a file name).
fn project_name(dir: &Path) -> Result<String, BuildError> {
    let pyproject = dir.join("pyproject.toml");
    let declared = if pyproject.is_file() {
        let text = std::fs::read_to_string(&pyproject).map_err(|source| BuildError::Io {
            path: pyproject.clone(),
            source,
        })?;
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            BuildError::Manifest(pyproject.clone(), e.message().to_owned())
        })?;
        doc.get("project")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_owned)
    } else {
        None
    };
    let raw = declared.unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(if name.is_empty() {
        "trainer".to_owned()
    } else {
        name
    })
}

/// The componentize-py executable: [`COMPONENTIZE_PY_ENV`], else `componentize-py` on `PATH`.
fn componentize_py() -> PathBuf {
    std::env::var_os(COMPONENTIZE_PY_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("componentize-py"), PathBuf::from)
}

/// `componentize-py --version`, which must be of [`COMPONENTIZE_PY_SERIES`].
fn tool_version(tool: &Path) -> Result<String, BuildError> {
    let output = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BuildError::Spawn(with_hint(e, tool)))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let version = text.rsplit(' ').next().unwrap_or_default().to_owned();
    if !output.status.success() || !version.starts_with(COMPONENTIZE_PY_SERIES) {
        return Err(BuildError::PythonTool(format!(
            "{} reports version {text:?}; Python trainers need componentize-py \
             {COMPONENTIZE_PY_SERIES}x (pip install componentize-py==0.25.1)",
            tool.display()
        )));
    }
    Ok(version)
}

/// An I/O error of starting componentize-py, with what to do when it is not installed.
fn with_hint(e: std::io::Error, tool: &Path) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        std::io::Error::new(
            e.kind(),
            format!(
                "{} not found: Python trainers are built with componentize-py \
                 (pip install componentize-py==0.25.1, or set {COMPONENTIZE_PY_ENV}; \
                 scripts/setup.sh installs it)",
                tool.display()
            ),
        )
    } else {
        e
    }
}

/// SHA-256 (hex) over everything a build reads: the tool's version, the embedded SDK and WIT,
/// and every file under `dir` except build outputs and caches, by relative path.
fn inputs_digest(dir: &Path, version: &str) -> Result<String, BuildError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(bytes);
    };
    field(b"chiron python trainer build v1");
    field(version.as_bytes());
    field(TRAINER_WIT.as_bytes());
    for (relative, contents) in PYTHON_SDK {
        field(relative.as_bytes());
        field(contents.as_bytes());
    }
    let mut files = Vec::new();
    trainer_files(dir, dir, &mut files)?;
    files.sort();
    for (relative, path) in files {
        let bytes = std::fs::read(&path).map_err(|source| BuildError::Io { path, source })?;
        field(relative.as_bytes());
        field(&bytes);
    }
    Ok(chiron_codec::hex(ctx.finish().as_ref()))
}

/// Files of the trainer directory (relative path, full path), without `target/`, caches and
/// hidden entries.
fn trainer_files(
    root: &Path,
    dir: &Path,
    files: &mut Vec<(String, PathBuf)>,
) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| BuildError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "__pycache__" || (dir == root && name == "target") {
            continue;
        }
        if path.is_dir() {
            trainer_files(root, &path, files)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            files.push((relative, path));
        }
    }
    Ok(())
}

/// The last `lines` lines of a process's output, as text.
fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
