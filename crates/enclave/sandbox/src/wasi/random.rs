//! `wasi:random`: bytes from the job's seeded system-randomness stream. Both the "secure" and
//! the "insecure" interfaces draw from it: nothing inside the sandbox needs secrecy from the
//! trainer, and what the trainer draws is fixed by the job (see the module table in `mod.rs`).

use super::MAX_RANDOM_BYTES;
use super::wasi::random::{insecure, insecure_seed, random};
use crate::failure::{FailureCode, HostFault};
use crate::host::HostState;

impl HostState {
    /// `len` bytes of the job's system-randomness stream, or the call ends if `len` is over
    /// [`MAX_RANDOM_BYTES`] (a guest could otherwise ask the host to allocate any amount).
    fn system_random(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            return Err(wasmtime::Error::new(HostFault(FailureCode::HostcallBudget)));
        }
        // At most MAX_RANDOM_BYTES (1 MiB): fits any usize.
        let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
        self.engine.fill_system_random(&mut bytes);
        Ok(bytes)
    }

    fn system_random_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.engine.fill_system_random(&mut bytes);
        u64::from_le_bytes(bytes)
    }
}

impl random::Host for HostState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.system_random(len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.system_random_u64())
    }
}

impl insecure::Host for HostState {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.system_random(len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(self.system_random_u64())
    }
}

impl insecure_seed::Host for HostState {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        Ok((self.system_random_u64(), self.system_random_u64()))
    }
}
