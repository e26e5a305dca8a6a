//! The operator-visible transcript of a host: every line the host logs, every blob it stores or
//! serves (name and size), every status record and every host↔enclave message with its size.
//!
//! It is the record of what an untrusted operator learns by running the host. Entries carry a
//! timestamp apart from their text so two runs can be compared text for text.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Entries a transcript keeps unless configured otherwise (about 30 MB of typical lines).
pub const DEFAULT_ENTRIES: usize = 100_000;

/// The latest entries, as (milliseconds since the epoch, text): a ring, so a host that runs
/// for months holds a bounded amount of it.
pub struct Transcript {
    entries: Mutex<VecDeque<(u128, String)>>,
    capacity: usize,
    echo: bool,
}

impl Transcript {
    /// An empty transcript keeping [`DEFAULT_ENTRIES`]; with `echo`, each entry is also
    /// logged through `tracing` (an `info` event of target `chiron_host`).
    pub fn new(echo: bool) -> Self {
        Self::with_capacity(echo, DEFAULT_ENTRIES)
    }

    /// An empty transcript that keeps the latest `capacity` entries (at least one).
    pub fn with_capacity(echo: bool, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            echo,
        }
    }

    /// Appends a log line.
    pub fn log(&self, text: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if self.echo {
            // The host's log: `tracing`, so operators filter and format it their way
            // (chiron-host installs a subscriber on standard error; RUST_LOG selects). A
            // process that installed none (a test, `chiron cluster up --verbose`) still sees
            // the line.
            if tracing::dispatcher::has_been_set() {
                tracing::info!(target: "chiron_host", "{text}");
            } else {
                eprintln!("[chiron-host] {text}");
            }
        }
        if let Ok(mut e) = self.entries.lock() {
            if e.len() == self.capacity {
                e.pop_front();
            }
            e.push_back((now, text.to_string()));
        }
    }

    /// The entries' texts, in order (timestamps dropped).
    pub fn texts(&self) -> Vec<String> {
        self.entries
            .lock()
            .map(|e| e.iter().map(|(_, t)| t.clone()).collect())
            .unwrap_or_default()
    }

    /// The entries with their timestamps.
    pub fn entries(&self) -> Vec<(u128, String)> {
        self.entries
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_entries_are_kept() {
        let t = Transcript::with_capacity(false, 3);
        for i in 0..5 {
            t.log(&format!("line {i}"));
        }
        assert_eq!(t.texts(), vec!["line 2", "line 3", "line 4"]);
        assert_eq!(t.entries().len(), 3);
    }
}
