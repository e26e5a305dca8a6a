//! `wasi:clocks`: one fixed instant. A trainer that reads a clock learns nothing about how long
//! anything took, and a timer it sets is due at once (so waiting never blocks the host thread).

use wasmtime::component::Resource;

use super::io::ready_pollable;
use super::resources::Pollable;
use super::wasi::clocks::{monotonic_clock, timezone, wall_clock};
use crate::host::HostState;

/// What the wall clock always says: 2024-01-01T00:00:00Z (a fixed, plausible date, so code
/// that formats it does not trip over the epoch).
pub const FIXED_WALL_CLOCK_SECONDS: u64 = 1_704_067_200;

/// What the monotonic clock always says, in nanoseconds.
pub const FIXED_MONOTONIC_NANOS: u64 = 0;

/// The resolution both clocks claim: one second (coarse, as befits a clock that never moves).
const RESOLUTION_NANOS: u64 = 1_000_000_000;

impl wall_clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        Ok(wall_clock::Datetime {
            seconds: FIXED_WALL_CLOCK_SECONDS,
            nanoseconds: 0,
        })
    }

    fn resolution(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        Ok(wall_clock::Datetime {
            seconds: RESOLUTION_NANOS / 1_000_000_000,
            nanoseconds: 0,
        })
    }
}

impl monotonic_clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(FIXED_MONOTONIC_NANOS)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(RESOLUTION_NANOS)
    }

    /// Due at once: the clock does not move, so no instant is ever waited for.
    fn subscribe_instant(&mut self, _when: u64) -> wasmtime::Result<Resource<Pollable>> {
        Ok(ready_pollable())
    }

    fn subscribe_duration(&mut self, _when: u64) -> wasmtime::Result<Resource<Pollable>> {
        Ok(ready_pollable())
    }
}

/// UTC everywhere (an unstable interface, not linked unless wasmtime's link options ask for it;
/// the trait must exist all the same).
impl timezone::Host for HostState {
    fn display(
        &mut self,
        _when: wall_clock::Datetime,
    ) -> wasmtime::Result<timezone::TimezoneDisplay> {
        Ok(timezone::TimezoneDisplay {
            utc_offset: 0,
            name: "UTC".to_owned(),
            in_daylight_saving_time: false,
        })
    }

    fn utc_offset(&mut self, _when: wall_clock::Datetime) -> wasmtime::Result<i32> {
        Ok(0)
    }
}
