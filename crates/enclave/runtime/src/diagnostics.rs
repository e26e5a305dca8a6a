//! The enclave's standard error, which the host reads: a closed set of fixed messages.
//!
//! Nothing a trainer or the data can influence may reach the host as text, so once the runtime
//! serves, it writes only the [`Event`]s below — no error's `Display`, no name, no number. Which
//! event happens, and when, depends on the host's own behaviour (a store that refuses a write,
//! a record it corrupted), on the schedule (the grid writes at fixed times), or on a party's
//! request, never on what a trainer did. Errors before the runtime serves (arguments, platform,
//! listeners) are the operator's configuration and are printed as they are by the binary.

/// A fixed diagnostic message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request failed on the runtime's own plumbing (the host's store or status API).
    InternalError,
    /// A checkpoint due on the grid could not be written (the host refused it).
    CheckpointNotWritten,
    /// A job's end (model and final status) could not be written; it resumes after a restart.
    JobNotFinished,
    /// A job record at the host did not open or parse, so it was left aside.
    RecordSkipped,
    /// A registered trainer's compiled code could not be stored (the host refused it); the
    /// trainer is compiled again when a restarted enclave needs it.
    CodeNotStored,
    /// The host's pipe on standard input closed: the host is gone, so the enclave exits.
    HostGone,
    /// The host refused this process's lease: another enclave process replaced it, so it exits.
    Replaced,
}

impl Event {
    /// The message's text.
    pub fn text(self) -> &'static str {
        match self {
            Event::InternalError => "internal error in a request (host store or status API)",
            Event::CheckpointNotWritten => "a scheduled checkpoint could not be written",
            Event::JobNotFinished => "a job's end could not be written; it resumes on restart",
            Event::RecordSkipped => "a job record at the host does not open; left aside",
            Event::CodeNotStored => {
                "a trainer's compiled code could not be stored; it is compiled again on restart"
            }
            Event::HostGone => "the host closed standard input; exiting",
            Event::Replaced => "the host runs another enclave process in this one's place; exiting",
        }
    }
}

/// Writes `event` to standard error. A failed write is ignored: once the host is gone its end
/// of the pipe is closed, and `eprintln!` would panic the reporting thread (the one that has
/// to end the process, for [`Event::HostGone`]).
pub fn report(event: Event) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "chiron-enclave: {}", event.text());
}
