//! Operator test mode only: where a training run's time went, split at each crossing of the
//! sandbox boundary ([`crate::SandboxLimits::time_guest`]).
//!
//! A trainer's language shows in the time its own code runs between engine calls; the engine
//! calls themselves are the same whichever language made them. Splitting the wall time of a
//! run into guest and host time lets `chiron trainer test` and `bench/python.sh` say what a
//! Python trainer costs over a Rust one without depending on how busy the machine was (the
//! guest's share is small, so drift moves it little). The enclave never sets the flag: no
//! hook is installed there, and no clock is read on its behalf.

use std::time::{Duration, Instant};

use wasmtime::CallHook;

/// Where a run's time went (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimeSplit {
    /// Time inside the guest's own code (including allocator calls the host makes into it).
    pub guest: Duration,
    /// Time inside host calls (the engine's work, copying in and out, the virtual WASI).
    pub host: Duration,
    /// Guest → host calls made.
    pub host_calls: u64,
    /// Wall time between consecutive `report.progress` calls, in call order: one entry per
    /// step for trainers that report after every step, as the example trainers do.
    pub progress_intervals: Vec<Duration>,
}

/// The running split of one store, advanced by wasmtime's call hook.
#[derive(Debug, Default)]
pub(crate) struct GuestClock {
    /// The last crossing (`None` before the first).
    last: Option<Instant>,
    /// The last `report.progress` call.
    last_progress: Option<Instant>,
    split: TimeSplit,
}

impl GuestClock {
    /// Charges the time since the last crossing to the side that `hook` leaves.
    pub fn cross(&mut self, hook: CallHook) {
        let now = Instant::now();
        if let Some(last) = self.last.replace(now) {
            let spent = now.saturating_duration_since(last);
            match hook {
                // Leaving the guest (for a host call, or back to the caller).
                CallHook::CallingHost | CallHook::ReturningFromWasm => self.split.guest += spent,
                // Leaving the host (back from a host call, or the host calls into the guest:
                // the first entry, or an allocator call while lowering a result).
                CallHook::ReturningFromHost | CallHook::CallingWasm => self.split.host += spent,
            }
        }
        if matches!(hook, CallHook::CallingHost) {
            self.split.host_calls += 1;
        }
    }

    /// Records a `report.progress` call.
    pub fn progress(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last_progress.replace(now) {
            self.split
                .progress_intervals
                .push(now.saturating_duration_since(last));
        }
    }

    /// The split so far.
    pub fn finish(self) -> TimeSplit {
        self.split
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_charged_to_the_side_each_crossing_leaves() {
        let mut clock = GuestClock::default();
        clock.cross(CallHook::CallingWasm); // the first crossing only starts the clock
        std::thread::sleep(Duration::from_millis(20));
        clock.cross(CallHook::CallingHost);
        std::thread::sleep(Duration::from_millis(200));
        clock.cross(CallHook::ReturningFromHost);
        clock.cross(CallHook::ReturningFromWasm);
        let split = clock.finish();
        assert_eq!(split.host_calls, 1);
        assert!(split.guest >= Duration::from_millis(20), "{split:?}");
        assert!(split.host >= Duration::from_millis(200), "{split:?}");
        // The host's sleep is not charged to the guest (sleeps overshoot, not by 180 ms).
        assert!(split.guest < Duration::from_millis(200), "{split:?}");
    }

    #[test]
    fn progress_intervals_start_at_the_second_report() {
        let mut clock = GuestClock::default();
        clock.progress();
        assert!(clock.split.progress_intervals.is_empty());
        std::thread::sleep(Duration::from_millis(5));
        clock.progress();
        clock.progress();
        let intervals = clock.finish().progress_intervals;
        assert_eq!(intervals.len(), 2);
        assert!(intervals[0] >= Duration::from_millis(5));
    }
}
