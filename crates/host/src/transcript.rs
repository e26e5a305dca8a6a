//! The operator-visible transcript of a host: every line the host logs, every blob it stores or
//! serves (name and size), every status record and every host↔enclave message with its size.
//!
//! It is the record of what an untrusted operator learns by running the host. Entries carry a
//! timestamp apart from their text so two runs can be compared text for text.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// An append-only list of (milliseconds since the epoch, text).
pub struct Transcript {
    entries: Mutex<Vec<(u128, String)>>,
    echo: bool,
}

impl Transcript {
    /// An empty transcript; with `echo`, each entry is also printed on standard error.
    pub fn new(echo: bool) -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            echo,
        }
    }

    /// Appends a log line.
    pub fn log(&self, text: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if self.echo {
            eprintln!("[chiron-host] {text}");
        }
        if let Ok(mut e) = self.entries.lock() {
            e.push((now, text.to_string()));
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
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }
}
