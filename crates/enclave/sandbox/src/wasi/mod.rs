//! A virtual WASI 0.2 for trainer components: every interface present, no channel open.
//!
//! A CPython trainer (built with componentize-py) links against wasi-libc, so its component
//! imports the WASI 0.2 `wasi:cli/imports` world — files, clocks, random, sockets, stdio. None
//! of them may become a way for a trainer to reach the outside, to learn something the job did
//! not give it (the time, the host's entropy, its environment), or to leave a trace the host
//! can see. The shims here answer every call from the job's own state:
//!
//! | interface | answer | why it is safe |
//! |---|---|---|
//! | `cli/environment` | no variables, no arguments, no working directory | nothing of the host is read |
//! | `cli/stdin` | a stream that is always closed | no input exists |
//! | `cli/stdout`, `cli/stderr` | accepted and dropped; in the operator's test mode, passed to the host's stderr up to a byte cap | in the service nothing is kept, so output can reach no one |
//! | `cli/terminal-*` | no terminal | |
//! | `cli/exit` | ends the call as a trap | the same fixed failure code as any trap |
//! | `clocks/wall-clock`, `clocks/monotonic-clock` | one fixed instant, always; timers are ready at once | the trainer cannot time anything (its own work, the host's, the data's); sleeping costs nothing and waits for nothing |
//! | `random/*` | bytes from the job's seeded generator ([`chiron_engine::Engine::fill_system_random`]) | fixed by the job: they carry nothing in and mean nothing out |
//! | `filesystem/preopens` | no directories | with no descriptor to start from, no path can be opened |
//! | `filesystem/types` | no descriptor can exist; the one free function answers "no error code" | |
//! | `sockets/*` | creating a socket or resolving a name fails with `access-denied` | no socket can exist |
//! | `io/poll` | every pollable is ready | nothing ever blocks the host thread, so the epoch deadline always applies |
//!
//! Methods of resources the shims never create (descriptors, sockets, terminals, I/O errors)
//! cannot be reached — wasmtime checks every handle against the instance's table — and trap
//! if they were. Output handed to the host is bounded by the hostcall budget per call; random
//! bytes by [`MAX_RANDOM_BYTES`] per call.

mod cli;
mod clocks;
mod filesystem;
mod io;
mod random;
mod sockets;

use wasmtime::component::{HasSelf, Linker};

use crate::failure::{FailureCode, HostFault};
use crate::host::HostState;

/// Marker types of the WASI resources (the handles' reps are fixed small numbers: the shims
/// keep no per-handle state).
pub mod resources {
    /// `wasi:io/poll.pollable` (every one is ready).
    pub struct Pollable;
    /// `wasi:io/streams.input-stream` (stdin only).
    pub struct InputStream;
    /// `wasi:io/streams.output-stream` (stdout and stderr).
    pub struct OutputStream;
    /// `wasi:io/error.error` (never created).
    pub struct IoError;
    /// `wasi:cli/terminal-input.terminal-input` (never created).
    pub struct TerminalInput;
    /// `wasi:cli/terminal-output.terminal-output` (never created).
    pub struct TerminalOutput;
    /// `wasi:filesystem/types.descriptor` (never created).
    pub struct Descriptor;
    /// `wasi:filesystem/types.directory-entry-stream` (never created).
    pub struct DirectoryEntryStream;
    /// `wasi:sockets/network.network` (one, with which nothing can be done).
    pub struct Network;
    /// `wasi:sockets/tcp.tcp-socket` (never created).
    pub struct TcpSocket;
    /// `wasi:sockets/udp.udp-socket` (never created).
    pub struct UdpSocket;
    /// `wasi:sockets/udp.incoming-datagram-stream` (never created).
    pub struct IncomingDatagramStream;
    /// `wasi:sockets/udp.outgoing-datagram-stream` (never created).
    pub struct OutgoingDatagramStream;
    /// `wasi:sockets/ip-name-lookup.resolve-address-stream` (never created).
    pub struct ResolveAddressStream;
}

mod bindings {
    pub use super::resources::*;

    wasmtime::component::bindgen!({
        path: "wit",
        world: "chiron:virtual-wasi/imports",
        imports: { default: trappable },
        with: {
            "wasi:io/poll.pollable": Pollable,
            "wasi:io/streams.input-stream": InputStream,
            "wasi:io/streams.output-stream": OutputStream,
            "wasi:io/error.error": IoError,
            "wasi:cli/terminal-input.terminal-input": TerminalInput,
            "wasi:cli/terminal-output.terminal-output": TerminalOutput,
            "wasi:filesystem/types.descriptor": Descriptor,
            "wasi:filesystem/types.directory-entry-stream": DirectoryEntryStream,
            "wasi:sockets/network.network": Network,
            "wasi:sockets/tcp.tcp-socket": TcpSocket,
            "wasi:sockets/udp.udp-socket": UdpSocket,
            "wasi:sockets/udp.incoming-datagram-stream": IncomingDatagramStream,
            "wasi:sockets/udp.outgoing-datagram-stream": OutgoingDatagramStream,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": ResolveAddressStream,
        },
    });
}

pub(crate) use bindings::wasi;

/// Largest `get-random-bytes` (and insecure variant) answered; a larger request traps with
/// [`FailureCode::HostcallBudget`]. CPython asks for a few dozen bytes at a time.
pub const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// The WASI packages a component may import, at any 0.2.x version: the linker provides
/// 0.2.12 and matches older 0.2 imports to it by semver.
const WASI_INTERFACES: [&str; 27] = [
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/ip-name-lookup",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// Whether `name` (an import's full name, e.g. `wasi:io/streams@0.2.0`) is one of the virtual
/// WASI's interfaces at a 0.2 version. The name check only gives a clear message; the linker's
/// type check at `instantiate_pre` is what holds.
pub(crate) fn is_virtual_wasi(name: &str) -> bool {
    let Some((interface, version)) = name.split_once('@') else {
        return false;
    };
    let Some(patch) = version.strip_prefix("0.2.") else {
        return false;
    };
    !patch.is_empty()
        && patch.bytes().all(|b| b.is_ascii_digit())
        && WASI_INTERFACES.contains(&interface)
}

/// Adds every virtual WASI interface to `linker` (the stable ones: unstable features such as
/// `wasi:clocks/timezone` stay off).
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let options = bindings::LinkOptions::default();
    bindings::Imports::add_to_linker::<HostState, HasSelf<HostState>>(linker, &options, |s| s)
}

/// The guest's console (stdout and stderr): dropped, or in test mode passed to the host's
/// stderr until `left` bytes have gone.
#[derive(Debug)]
pub(crate) struct Console {
    /// Bytes that may still be shown; 0 drops everything.
    left: usize,
    /// Whether the cut-off notice was written.
    cut: bool,
}

impl Console {
    /// A console that shows at most `limit` bytes (0: none, silently).
    pub fn new(limit: usize) -> Self {
        Self {
            left: limit,
            // Nothing to show: drop everything without even a notice.
            cut: limit == 0,
        }
    }

    /// Handles one write of the guest.
    fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        if self.cut || bytes.is_empty() {
            return;
        }
        let shown = bytes.len().min(self.left);
        let mut stderr = std::io::stderr().lock();
        // The operator's own terminal: a failed write there is not the guest's concern.
        let _ = stderr.write_all(&bytes[..shown]);
        self.left -= shown;
        if shown < bytes.len() {
            self.cut = true;
            let _ = writeln!(
                stderr,
                "\n[chiron: the trainer's console output is cut here (limit reached)]"
            );
        }
    }
}

/// Ends the guest's call for a resource the shims never hand out.
fn never_created<T>(what: &str) -> wasmtime::Result<T> {
    Err(wasmtime::Error::new(HostFault(FailureCode::Trap))
        .context(format!("no {what} exists in the sandbox")))
}

#[cfg(test)]
mod tests {
    use super::is_virtual_wasi;

    #[test]
    fn only_the_virtual_interfaces_at_a_0_2_version_pass_the_name_check() {
        for ok in [
            "wasi:io/streams@0.2.0",
            "wasi:cli/environment@0.2.9",
            "wasi:sockets/tcp@0.2.12",
        ] {
            assert!(is_virtual_wasi(ok), "{ok}");
        }
        for refused in [
            "wasi:io/streams",
            "wasi:io/streams@0.3.0",
            "wasi:io/streams@0.2.",
            "wasi:io/streams@0.2.1-rc",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:clocks/timezone@0.2.12",
            "chiron:trainer/tensor@0.1.0",
        ] {
            assert!(!is_virtual_wasi(refused), "{refused}");
        }
    }
}
