//! `wasi:cli`: an empty environment, closed stdin, stdout and stderr into the console, no
//! terminal, and `exit` as a trap.

use wasmtime::component::Resource;

use super::io::{STDERR, STDIN, STDOUT};
use super::never_created;
use super::resources::{InputStream, OutputStream, TerminalInput, TerminalOutput};
use super::wasi::cli::{
    environment, exit, stderr, stdin, stdout, terminal_input, terminal_output, terminal_stderr,
    terminal_stdin, terminal_stdout,
};
use crate::failure::{FailureCode, HostFault};
use crate::host::HostState;

impl environment::Host for HostState {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(None)
    }
}

/// `exit` never returns to the guest: the call ends like any trap (whatever the status, so the
/// status cannot carry anything).
impl exit::Host for HostState {
    fn exit(&mut self, _status: Result<(), ()>) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(HostFault(FailureCode::Trap)).context("the trainer called exit"))
    }

    fn exit_with_code(&mut self, _status_code: u8) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(HostFault(FailureCode::Trap)).context("the trainer called exit"))
    }
}

impl stdin::Host for HostState {
    fn get_stdin(&mut self) -> wasmtime::Result<Resource<InputStream>> {
        Ok(Resource::new_own(STDIN))
    }
}

impl stdout::Host for HostState {
    fn get_stdout(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        Ok(Resource::new_own(STDOUT))
    }
}

impl stderr::Host for HostState {
    fn get_stderr(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        Ok(Resource::new_own(STDERR))
    }
}

impl terminal_input::Host for HostState {}

impl terminal_input::HostTerminalInput for HostState {
    fn drop(&mut self, _terminal: Resource<TerminalInput>) -> wasmtime::Result<()> {
        never_created("terminal")
    }
}

impl terminal_output::Host for HostState {}

impl terminal_output::HostTerminalOutput for HostState {
    fn drop(&mut self, _terminal: Resource<TerminalOutput>) -> wasmtime::Result<()> {
        never_created("terminal")
    }
}

impl terminal_stdin::Host for HostState {
    fn get_terminal_stdin(&mut self) -> wasmtime::Result<Option<Resource<TerminalInput>>> {
        Ok(None)
    }
}

impl terminal_stdout::Host for HostState {
    fn get_terminal_stdout(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        Ok(None)
    }
}

impl terminal_stderr::Host for HostState {
    fn get_terminal_stderr(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        Ok(None)
    }
}
