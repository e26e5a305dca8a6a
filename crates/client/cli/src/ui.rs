//! Terminal progress display. Bars go to stderr and hide themselves when stderr is not a
//! terminal, so piped and `--json` output stays clean.

use indicatif::{ProgressBar, ProgressStyle};

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
