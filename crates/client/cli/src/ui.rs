//! Terminal output. Progress bars go to stderr and hide themselves when stderr is not a
//! terminal, so piped and `--json` output stays clean. The command's own output goes to stdout
//! through [`outln!`], never `println!`: see [`write_out`] for why.
//!
//! Policy for a closed stdout (`chiron dataset inspect x.chd | head -1`, `... | true`): the
//! process exits at once with status 0 and prints nothing. The reader has gone, so nobody is
//! left to read any further output or a complaint about it; status 0 is what `head` and `true`
//! users expect in a pipeline (the same choice as ripgrep and fd). Rust ignores SIGPIPE, so
//! without this every write after the reader closes fails with `BrokenPipe`, and `println!`
//! turns that into a panic (exit 101 and a panic message); resetting SIGPIPE would need `unsafe`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use indicatif::{ProgressBar, ProgressStyle};

/// `println!` for the command's output: writes one line to stdout, and ends the process quietly
/// (status 0) if the reader of stdout has gone. See the module comment for the policy.
macro_rules! outln {
    () => {
        $crate::ui::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::ui::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Writes `args` to stdout. A closed stdout (`BrokenPipe`) ends the process with status 0 and no
/// message; any other write error ends it with status 1 and a message on stderr. Either way the
/// command cannot usefully continue: its output is its result.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        stdout_failed(&e);
    }
}

/// Ends the process after a failed write to stdout (see [`write_out`]).
fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("chiron: cannot write to standard output: {e}");
    std::process::exit(1)
}

/// A bar counting `total` units of `unit` (e.g. "records", "chunks").
pub fn bar(total: u64, message: &'static str, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    let template =
        format!("{{msg:>10}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(message);
    pb
}

/// A spinner for work of unknown length.
pub fn spinner(message: &'static str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(message);
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// Partial output files to delete if the process is interrupted (see [`remove_on_signal`]).
static PARTIAL_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers `path` as a partial output for as long as the returned guard lives: if SIGINT or
/// SIGTERM arrives meanwhile and [`remove_partial_files_on_signal`] is watching, the file is
/// deleted before the process exits. Without a watcher this costs nothing and changes nothing.
pub fn remove_on_signal(path: &Path) -> PartialFile {
    PARTIAL_FILES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(path.to_path_buf());
    PartialFile(path.to_path_buf())
}

/// Keeps a path registered with [`remove_on_signal`]; unregisters it when dropped (the file was
/// completed and renamed, or deleted by its owner).
pub struct PartialFile(PathBuf);

impl Drop for PartialFile {
    fn drop(&mut self) {
        let mut files = PARTIAL_FILES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = files.iter().position(|p| *p == self.0) {
            files.swap_remove(i);
        }
    }
}

/// Watches for SIGINT (Ctrl-C) and SIGTERM for the rest of the process: on either, deletes every
/// file registered with [`remove_on_signal`] and exits with 130 (SIGINT) or 143 (SIGTERM), the
/// statuses a shell reports for a process those signals killed.
///
/// For commands with no other use for these signals (`dataset seal`): once a handler is
/// installed the signals no longer kill the process by themselves, so a command that handles
/// them itself (`cluster up`) must not call this. The handlers are installed before this returns,
/// so a signal arriving later is never missed.
pub fn remove_partial_files_on_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut interrupt, mut terminate) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    std::thread::Builder::new()
        .name("signal-watch".into())
        .spawn(move || {
            let status = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => 130,
                    _ = terminate.recv() => 143,
                }
            });
            let files = PARTIAL_FILES.lock().unwrap_or_else(PoisonError::into_inner);
            for path in files.iter() {
                // Best effort: the file may be gone already (renamed into place a moment ago).
                let _ = std::fs::remove_file(path);
            }
            // The lock stays held: no new partial file can be registered before the exit.
            eprintln!("chiron: interrupted; partial output removed");
            std::process::exit(status);
        })?;
    Ok(())
}
