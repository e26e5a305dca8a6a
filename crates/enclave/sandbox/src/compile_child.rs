//! Compiling a component in a child process of the same executable, so that the compiler's
//! memory never enters the process that trains and predicts.
//!
//! Why: Cranelift allocates and frees hundreds of megabytes compiling a large component (a
//! CPython trainer: 18 MB, ~11 s). The enclave runs with one malloc arena that is never trimmed
//! (`ENCLAVE_MALLOC_TUNABLES`, for a resident memory that does not follow the data), so an
//! in-process compile leaves the heap at its peak and fragmented for the life of the process:
//! measured on the Fashion-MNIST cnn, the engine's training steps after such a compile spent
//! five times as long in `malloc` (Rust and Python trainers alike). A child's memory goes with
//! it; the parent only deserializes the code.
//!
//! Protocol (one request per child): the parent runs `PROGRAM` [`CHILD_ARG`] and writes one
//! line of engine settings, then the component's bytes, to its stdin; the child answers with
//! wasmtime's serialized code on stdout and exit status 0, or the compiler's error text on
//! stderr and [`INVALID_COMPONENT`]. Any other ending is a failure of the child, not of the
//! component.
//!
//! Trust: the code the child returns is native code the parent will run. The parent must name
//! its own executable (`/proc/self/exe`, which names the running image even if the file on
//! disk is replaced): the child is then the same measured program inside the same TEE, and the
//! pipe between them does not leave it.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use crate::failure::LoadError;
use crate::sandbox::{SandboxLimits, wasmtime_config};

/// The argument that makes a Chiron executable serve one compile request ([`serve`]) instead
/// of doing its usual work.
pub const CHILD_ARG: &str = "--chiron-compile-trainer";

/// The path that names the running executable (Linux): what a parent should spawn, since it
/// names the image this process runs even if the file on disk has been replaced since.
pub const OWN_EXECUTABLE: &str = "/proc/self/exe";

/// The child's exit status when the component does not compile (its fault, not the child's).
pub const INVALID_COMPONENT: u8 = 3;

/// Bytes of the child's error text kept (the compiler's message about the operator's module).
const MAX_ERROR_TEXT: u64 = 16 << 10;

/// Version tag of the settings line: parent and child are one executable, but a stale binary
/// answering must be refused rather than misread.
const SETTINGS_TAG: &str = "chiron-compile-v1";

/// The settings that shape the compiled code (everything [`wasmtime_config`] reads), as the
/// one line the parent sends. wasmtime refuses code compiled under other settings when the
/// parent deserializes it, so a mismatch cannot go unnoticed.
fn settings_line(limits: &SandboxLimits) -> String {
    format!(
        "{SETTINGS_TAG} instances={} memory={} tables={} stack={} resident={} metered={} \
         module={}\n",
        limits.max_instances,
        limits.max_memory_bytes,
        limits.max_table_elements,
        limits.max_wasm_stack,
        u8::from(limits.resident_memory),
        u8::from(limits.metered()),
        limits.max_module_bytes,
    )
}

/// The limits a settings line describes (the others at their defaults: they do not reach the
/// compiler).
fn parse_settings(line: &str) -> Result<SandboxLimits, String> {
    let mut words = line.split_ascii_whitespace();
    if words.next() != Some(SETTINGS_TAG) {
        return Err("not a compile request of this version".into());
    }
    let mut limits = SandboxLimits::default();
    let mut seen: Vec<&str> = Vec::new();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("malformed setting {word:?}"))?;
        let number: u64 = value
            .parse()
            .map_err(|_| format!("setting {key} is not a number"))?;
        let size = || usize::try_from(number).map_err(|_| format!("setting {key} is too large"));
        match key {
            "instances" => {
                limits.max_instances =
                    u32::try_from(number).map_err(|_| "setting instances is too large")?
            }
            "memory" => limits.max_memory_bytes = size()?,
            "tables" => limits.max_table_elements = size()?,
            "stack" => limits.max_wasm_stack = size()?,
            "resident" => limits.resident_memory = number != 0,
            "metered" => limits.train_fuel = (number != 0).then_some(u64::MAX),
            "module" => limits.max_module_bytes = size()?,
            _ => return Err(format!("unknown setting {key}")),
        }
        if seen.contains(&key) {
            return Err(format!("setting {key} given twice"));
        }
        seen.push(key);
    }
    if seen.len() != 7 {
        return Err("incomplete settings".into());
    }
    Ok(limits)
}

/// Compiles `bytes` in a child process running `program` (see the module documentation) and
/// returns wasmtime's serialized code, to be loaded with the parent's own settings; `None`
/// when no child could be started (a platform without `/proc/self/exe` or process creation:
/// the caller compiles in its own process, as it would without a compile child).
///
/// [`LoadError::Invalid`] with the compiler's message when the component does not compile;
/// [`LoadError::Internal`] when the child started but did not answer with code.
pub(crate) fn compile(
    program: &Path,
    limits: &SandboxLimits,
    bytes: &[u8],
) -> Result<Option<Vec<u8>>, LoadError> {
    let internal = |what: &str| LoadError::Internal(format!("compiler process: {what}"));
    let Ok(mut child) = Command::new(program)
        .arg(CHILD_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .spawn()
    else {
        return Ok(None);
    };
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(internal("its pipes were not set up"));
    };
    // Request and replies move at once: the child may answer (e.g. refuse the settings) before
    // reading all of a large component. Scoped threads borrow the component rather than copy it.
    let settings = settings_line(limits);
    let (read, code, status, written, text) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            stdin
                .write_all(settings.as_bytes())
                .and_then(|()| stdin.write_all(bytes))
                .is_ok()
        });
        let errors = scope.spawn(move || {
            let mut stderr = stderr;
            let mut text = Vec::new();
            let _ = (&mut stderr).take(MAX_ERROR_TEXT).read_to_end(&mut text);
            // Drained to the end, so a longer message cannot block the child.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&text).into_owned()
        });
        let mut code = Vec::new();
        let read = stdout.read_to_end(&mut code);
        let status = child.wait();
        let written = writer.join().unwrap_or(false);
        let text = errors.join().unwrap_or_default();
        (read, code, status, written, text)
    });
    let status = status.map_err(|e| internal(&format!("lost: {e}")))?;
    match status.code() {
        Some(0) if read.is_ok() && written && !code.is_empty() => Ok(Some(code)),
        Some(c) if c == i32::from(INVALID_COMPONENT) => Err(LoadError::Invalid(text)),
        _ => Err(internal(&format!("ended with {status}: {}", text.trim()))),
    }
}

/// Whether this process was started as a compile child: its only argument is [`CHILD_ARG`].
pub fn requested() -> bool {
    let mut argv = std::env::args_os().skip(1);
    matches!((argv.next(), argv.next()), (Some(arg), None) if arg == CHILD_ARG)
}

/// The child's side: reads one request from stdin, compiles it, writes the code to stdout.
/// Call it first thing in `main` when [`requested`].
pub fn serve() -> ExitCode {
    match serve_request() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Component(text)) => {
            eprintln!("{text}");
            ExitCode::from(INVALID_COMPONENT)
        }
        Err(Failure::Child(text)) => {
            eprintln!("{text}");
            ExitCode::FAILURE
        }
    }
}

/// Why a request got no code.
enum Failure {
    /// The component does not compile.
    Component(String),
    /// The request or the child itself failed.
    Child(String),
}

fn serve_request() -> Result<(), Failure> {
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    // The settings line is short; a request without one within 1 KiB is not one.
    let mut byte = [0u8; 1];
    while line.len() < 1024 {
        match input.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => return Err(Failure::Child("no settings line".into())),
        }
    }
    let line = String::from_utf8(line).map_err(|_| Failure::Child("settings not text".into()))?;
    let limits = parse_settings(&line).map_err(Failure::Child)?;
    let mut bytes = Vec::new();
    let cap = limits.max_module_bytes as u64 + 1;
    input
        .take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Child(format!("reading the component: {e}")))?;
    if bytes.len() > limits.max_module_bytes {
        return Err(Failure::Component(format!(
            "the module is over the limit of {} bytes",
            limits.max_module_bytes
        )));
    }
    let engine = wasmtime::Engine::new(&wasmtime_config(&limits))
        .map_err(|e| Failure::Child(format!("{e:#}")))?;
    let code = engine
        .precompile_component(&bytes)
        .map_err(|e| Failure::Component(format!("{e:#}")))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&code)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Child(format!("writing the code: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_their_line() {
        let limits = SandboxLimits {
            max_instances: 3,
            max_memory_bytes: 64 << 20,
            max_table_elements: 777,
            max_wasm_stack: 1 << 20,
            resident_memory: true,
            predict_fuel: Some(5),
            max_module_bytes: 1234,
            ..SandboxLimits::default()
        };
        let line = settings_line(&limits);
        let back = parse_settings(line.trim_end()).expect("parses");
        assert_eq!(settings_line(&back), line);
    }

    #[test]
    fn malformed_settings_are_refused() {
        let good = settings_line(&SandboxLimits::default());
        for bad in [
            "",
            "chiron-compile-v0 instances=1",
            &good.replace("memory=", "memory=x"),
            &good.replace("stack=", "stacks="),
            &good.replace(" module=", " junk=1 module="),
            &good.replace("stack=", "memory="),
            SETTINGS_TAG,
        ] {
            assert!(parse_settings(bad.trim_end()).is_err(), "{bad:?} accepted");
        }
    }
}
