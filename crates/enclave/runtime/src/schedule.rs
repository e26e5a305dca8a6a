//! A job's clock: when anything about a training job becomes visible outside the enclave.
//!
//! The trainer sees the data, so nothing it chooses may decide what the host sees or when.
//! The runtime therefore owns the schedule: from the job policy alone it fixes
//!
//! - the **checkpoint grid**: at every `checkpoint_interval` of the wall budget that ends before
//!   the budget does, one sealed checkpoint of the policy's padded size is written to the slot
//!   named by the tick's own counter, holding whatever state the trainer last *offered* (or a
//!   dummy when it offered none), followed by one status report whose progress is the share of
//!   the budget elapsed;
//! - the **end**: the instant the wall budget is spent. The job's model (or a dummy of the same
//!   padded size) is written then and the status becomes final — not when the trainer returns,
//!   fails or is stopped.
//!
//! Times are measured on the monotonic clock ([`Instant`]); a resumed job's clock starts at the
//! budget its newest checkpoint had used.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chiron_proto::job::JobPolicy;
use zeroize::Zeroizing;

use crate::records::MetricRecord;

/// Time the runtime keeps between the trainer's own deadline and the job's end, to turn what
/// the trainer saved into bytes ready to seal. Never more than a quarter of the budget.
pub const FINISH_MARGIN: Duration = Duration::from_millis(200);

/// A job's schedule, from its policy and the budget already spent.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// When the budget's clock read `used`.
    started: Instant,
    /// Budget already spent when `started` was taken (at the newest checkpoint).
    used: Duration,
    interval: Duration,
    wall: Duration,
    ticks: u64,
    report_steps: u32,
}

impl Schedule {
    /// The schedule of a job under `policy` that has spent `used` of its budget, starting now.
    pub fn new(policy: &JobPolicy, used: Duration) -> Self {
        Self {
            started: Instant::now(),
            used: used.min(policy.wall()),
            interval: policy.checkpoint_interval,
            wall: policy.wall(),
            ticks: policy.checkpoint_ticks(),
            report_steps: policy.report_steps,
        }
    }

    /// The instant the budget's clock reads `at` (never before `started`).
    fn at(&self, at: Duration) -> Instant {
        self.started + at.saturating_sub(self.used)
    }

    /// Checkpoint ticks of the whole budget: `1..=ticks()`.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// The budget's clock at tick `tick`.
    pub fn tick_offset(&self, tick: u64) -> Duration {
        self.interval
            .saturating_mul(u32::try_from(tick).unwrap_or(u32::MAX))
            .min(self.wall)
    }

    /// When tick `tick` is due.
    pub fn tick_time(&self, tick: u64) -> Instant {
        self.at(self.tick_offset(tick))
    }

    /// When the budget ends.
    pub fn end(&self) -> Instant {
        self.at(self.wall)
    }

    /// Deadline of the trainer (guest and engine): the end less the finishing margin.
    pub fn trainer_deadline(&self) -> Instant {
        let margin = FINISH_MARGIN.min(self.wall / 4);
        self.end().checked_sub(margin).unwrap_or(self.started)
    }

    /// The public progress at tick `tick`: reporting steps of the budget elapsed, below the
    /// last one (which marks the end).
    pub fn coarse_step(&self, tick: u64) -> u32 {
        let wall = self.wall.as_millis().max(1);
        let k = self.tick_offset(tick).as_millis() * u128::from(self.report_steps) / wall;
        u32::try_from(k)
            .unwrap_or(u32::MAX)
            .min(self.report_steps.saturating_sub(1))
    }
}

/// Sleeps until `when` on the monotonic clock (at once if it has passed).
pub fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        std::thread::sleep(when - now);
    }
}

/// The state a trainer offered last: the runtime writes it at the next grid tick. Holds
/// plaintext training state: zeroized when replaced or dropped.
pub struct Offer {
    /// The checkpoint's bytes (unpadded).
    pub payload: Zeroizing<Vec<u8>>,
    /// The owner-visible metrics as of the offer.
    pub metrics: Vec<MetricRecord>,
}

/// Where a job's offers meet its grid: the trainer's side replaces, the clock's side reads.
#[derive(Default)]
pub struct Offers {
    latest: Mutex<Option<Offer>>,
}

impl Offers {
    /// Offers starting from `initial` (the checkpoint a resumed job restarts from).
    pub fn new(initial: Option<Offer>) -> Self {
        Self {
            latest: Mutex::new(initial),
        }
    }

    /// Replaces the latest offer.
    pub fn offer(&self, offer: Offer) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(offer);
        }
    }

    /// A copy of the latest offer, if any.
    pub fn latest(&self) -> Option<Offer> {
        self.latest.lock().ok().and_then(|l| {
            l.as_ref().map(|o| Offer {
                payload: o.payload.clone(),
                metrics: o.metrics.clone(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(extra: &str) -> JobPolicy {
        JobPolicy::parse(&format!(
            "epochs = 1\nbatch_size = 8\nseed = 1\nmax_steps = 10\nwall_seconds = 10\n{extra}\n\
             [predictions]\noutput = \"label\"\nquery_budget = 1\nrate_per_second = 1\n"
        ))
        .unwrap()
    }

    #[test]
    fn the_grid_comes_from_the_policy_alone() {
        let p = policy("checkpoint_interval_ms = 3000");
        let s = Schedule::new(&p, Duration::ZERO);
        assert_eq!(s.ticks(), 3);
        assert_eq!(s.tick_time(1) - s.started, Duration::from_secs(3));
        assert_eq!(s.end() - s.started, Duration::from_secs(10));
        assert_eq!(s.end() - s.trainer_deadline(), FINISH_MARGIN);
        assert_eq!(
            (1..=3).map(|k| s.coarse_step(k)).collect::<Vec<_>>(),
            [3, 6, 9]
        );
        // Resumed at tick 2: the clock continues from 6 s of budget.
        let r = Schedule::new(&p, Duration::from_secs(6));
        assert_eq!(r.tick_time(3) - r.started, Duration::from_secs(3));
        assert_eq!(r.end() - r.started, Duration::from_secs(4));
        assert_eq!(r.tick_time(2), r.started);
    }

    #[test]
    fn the_default_grid_has_one_tick_per_reporting_step() {
        let s = Schedule::new(&policy("report_steps = 5"), Duration::ZERO);
        assert_eq!(s.ticks(), 4);
        assert_eq!(
            (1..=4).map(|k| s.coarse_step(k)).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
    }

    #[test]
    fn offers_keep_only_the_latest() {
        let offers = Offers::new(None);
        assert!(offers.latest().is_none());
        for b in [1u8, 2] {
            offers.offer(Offer {
                payload: Zeroizing::new(vec![b; 3]),
                metrics: Vec::new(),
            });
        }
        assert_eq!(offers.latest().unwrap().payload.as_slice(), &[2, 2, 2]);
    }
}
