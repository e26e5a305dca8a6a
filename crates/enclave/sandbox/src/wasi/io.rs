//! `wasi:io`: pollables that are always ready, stdin that is always closed, stdout and stderr
//! that go to the [`super::Console`].

use wasmtime::component::Resource;

use super::never_created;
use super::resources::{InputStream, IoError, OutputStream, Pollable};
use super::wasi::io::{error, poll, streams};
use crate::host::HostState;

use streams::StreamError;

/// Reps of the streams the shims hand out (see `cli.rs`).
pub(super) const STDIN: u32 = 0;
pub(super) const STDOUT: u32 = 1;
pub(super) const STDERR: u32 = 2;

/// Bytes an output stream says it accepts at once (any fixed value works: writes are dropped
/// or shown, never queued).
const WRITE_PERMIT: u64 = 64 << 10;

/// A new pollable; every pollable is ready.
pub(super) fn ready_pollable() -> Resource<Pollable> {
    Resource::new_own(0)
}

impl error::Host for HostState {}

impl error::HostError for HostState {
    fn to_debug_string(&mut self, _err: Resource<IoError>) -> wasmtime::Result<String> {
        never_created("I/O error")
    }

    fn drop(&mut self, _err: Resource<IoError>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl poll::Host for HostState {
    /// All of them: nothing is ever waited for.
    fn poll(&mut self, pollables: Vec<Resource<Pollable>>) -> wasmtime::Result<Vec<u32>> {
        // At most as many as the guest passed in, which the hostcall budget bounded.
        Ok((0..pollables.len())
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect())
    }
}

impl poll::HostPollable for HostState {
    fn ready(&mut self, _pollable: Resource<Pollable>) -> wasmtime::Result<bool> {
        Ok(true)
    }

    fn block(&mut self, _pollable: Resource<Pollable>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn drop(&mut self, _pollable: Resource<Pollable>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl streams::Host for HostState {}

/// Input streams: stdin is the only one, and it is closed.
impl streams::HostInputStream for HostState {
    fn read(
        &mut self,
        _stream: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        Ok(Err(StreamError::Closed))
    }

    fn blocking_read(
        &mut self,
        _stream: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        Ok(Err(StreamError::Closed))
    }

    fn skip(
        &mut self,
        _stream: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Err(StreamError::Closed))
    }

    fn blocking_skip(
        &mut self,
        _stream: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Err(StreamError::Closed))
    }

    fn subscribe(
        &mut self,
        _stream: Resource<InputStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        Ok(ready_pollable())
    }

    fn drop(&mut self, _stream: Resource<InputStream>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl HostState {
    /// One write to stdout or stderr (the only output streams that exist).
    fn console_write(&mut self, stream: &Resource<OutputStream>, bytes: &[u8]) {
        if matches!(stream.rep(), STDOUT | STDERR) {
            self.console.write(bytes);
        }
    }
}

/// Output streams: stdout and stderr, always writable, never failing.
impl streams::HostOutputStream for HostState {
    fn check_write(
        &mut self,
        _stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Ok(WRITE_PERMIT))
    }

    fn write(
        &mut self,
        stream: Resource<OutputStream>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.console_write(&stream, &contents);
        Ok(Ok(()))
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.console_write(&stream, &contents);
        Ok(Ok(()))
    }

    fn flush(
        &mut self,
        _stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        Ok(Ok(()))
    }

    fn blocking_flush(
        &mut self,
        _stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        Ok(Ok(()))
    }

    fn subscribe(
        &mut self,
        _stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        Ok(ready_pollable())
    }

    /// Zeroes are accepted and dropped: `len` is only a number, nothing is allocated for it.
    fn write_zeroes(
        &mut self,
        _stream: Resource<OutputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        Ok(Ok(()))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        _stream: Resource<OutputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        Ok(Ok(()))
    }

    /// The only input stream (stdin) is closed.
    fn splice(
        &mut self,
        _stream: Resource<OutputStream>,
        _src: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Err(StreamError::Closed))
    }

    fn blocking_splice(
        &mut self,
        _stream: Resource<OutputStream>,
        _src: Resource<InputStream>,
        _len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        Ok(Err(StreamError::Closed))
    }

    fn drop(&mut self, _stream: Resource<OutputStream>) -> wasmtime::Result<()> {
        Ok(())
    }
}
