//! How predictions leave the enclave: the runtime, not the trainer, turns the trainer's scores
//! into what the owner's output policy allows, in a fixed-width encoding (so a reply's size
//! depends only on the number of inputs and the policy), and meters requests.

use std::time::Instant;

use chiron_proto::job::OutputPolicy;
use chiron_sandbox::TensorData;

/// A shaped answer: `per_input` little-endian u32 values per input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shaped {
    /// Values per input.
    pub per_input: u32,
    /// The values: labels, or probabilities × 10^digits rounded.
    pub outputs: Vec<u8>,
}

/// Values per input under `policy` for `classes` classes.
pub fn per_input(policy: OutputPolicy, classes: u32) -> u32 {
    match policy {
        OutputPolicy::Label => 1,
        OutputPolicy::TopK(k) => k.min(classes),
        OutputPolicy::Probabilities(_) => classes,
    }
}

/// Shapes `scores` (`[count, classes]`, the trainer's output) under `policy`; `None` if the
/// output is not a finite `[count, classes]` tensor.
pub fn shape_outputs(
    policy: OutputPolicy,
    scores: &TensorData,
    count: usize,
    classes: u32,
) -> Option<Shaped> {
    let c = classes as usize;
    if scores.shape != [count as u32, classes] || scores.values.len() != count * c || c == 0 {
        return None;
    }
    if scores.values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let per = per_input(policy, classes);
    let mut outputs = Vec::with_capacity(count * per as usize * 4);
    for row in scores.values.chunks_exact(c) {
        match policy {
            OutputPolicy::Label | OutputPolicy::TopK(_) => {
                let mut order: Vec<usize> = (0..c).collect();
                // Best first; ties go to the lower class index.
                order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                for &label in order.iter().take(per as usize) {
                    outputs.extend_from_slice(&(label as u32).to_le_bytes());
                }
            }
            OutputPolicy::Probabilities(digits) => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                let scale = 10f64.powi(digits as i32);
                for e in exps {
                    let fixed = ((e / sum) * scale).round() as u32;
                    outputs.extend_from_slice(&fixed.to_le_bytes());
                }
            }
        }
    }
    Some(Shaped {
        per_input: per,
        outputs,
    })
}

/// Queries a job's record reserves ahead of those counted. The record is written when the
/// reservation runs low, not per query (a 64 KiB sealed write per prediction cost ~45 ms at
/// p90); a crash forfeits at most this many of the budget, and never leaves a query uncounted.
pub const QUERY_BLOCK: u64 = 1024;

/// What a counted query needs written before it may be answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// Nothing: the stored reservation covers it.
    No,
    /// The stored reservation covers it but runs low: extend it, without waiting.
    Ahead,
    /// The stored reservation does not cover it: write, and answer only once written.
    Now,
}

/// A job's query count: exact in memory, persisted as a reservation ahead of it (the record's
/// `queries_used`). After a restart the count resumes from the stored reservation, so the
/// queries answered before a crash are always counted (a few unanswered ones may be too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryMeter {
    counted: u64,
    persisted: u64,
    /// A write ahead is in flight (no second one is started meanwhile).
    writing_ahead: bool,
}

impl QueryMeter {
    /// A meter resuming from a stored reservation.
    pub fn resumed(stored: u64) -> Self {
        Self {
            counted: stored,
            persisted: stored,
            writing_ahead: false,
        }
    }

    /// Queries counted so far.
    pub fn counted(&self) -> u64 {
        self.counted
    }

    /// Counts `count` queries against `budget`, moving `reservation` (the record's field, to be
    /// written) ahead when it runs low; `None`, counting nothing, if the budget cannot cover
    /// them. Which writes happen depends only on the counts and the budget.
    pub fn count(&mut self, count: u64, budget: u64, reservation: &mut u64) -> Option<Persist> {
        let counted = self.counted.checked_add(count).filter(|c| *c <= budget)?;
        self.counted = counted;
        if counted.saturating_add(QUERY_BLOCK / 2) > *reservation && *reservation < budget {
            *reservation = budget.min(counted.saturating_add(QUERY_BLOCK));
        }
        Some(if counted > self.persisted {
            Persist::Now
        } else if *reservation > self.persisted && !self.writing_ahead {
            self.writing_ahead = true;
            Persist::Ahead
        } else {
            Persist::No
        })
    }

    /// A record with reservation `stored` was written (or, with `None`, a write failed).
    pub fn written(&mut self, stored: Option<u64>) {
        if let Some(stored) = stored {
            self.persisted = self.persisted.max(stored);
        }
        self.writing_ahead = false;
    }
}

/// A token bucket: `rate` requests per second sustained, bursts of up to one second's worth.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate: f64) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scores() -> TensorData {
        TensorData {
            shape: vec![2, 3],
            values: vec![0.1, 2.0, 1.0, 5.0, -1.0, 5.0],
        }
    }

    fn u32s(b: &[u8]) -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn labels_top_k_and_probabilities() {
        let l = shape_outputs(OutputPolicy::Label, &scores(), 2, 3).unwrap();
        assert_eq!(u32s(&l.outputs), vec![1, 0]);
        let k = shape_outputs(OutputPolicy::TopK(2), &scores(), 2, 3).unwrap();
        assert_eq!(u32s(&k.outputs), vec![1, 2, 0, 2]);
        let p = shape_outputs(OutputPolicy::Probabilities(3), &scores(), 2, 3).unwrap();
        let v = u32s(&p.outputs);
        assert_eq!(v.len(), 6);
        assert_eq!(v[3], v[5]);
        assert!((v[..3].iter().sum::<u32>() as i64 - 1000).abs() <= 2);
    }

    #[test]
    fn sizes_depend_only_on_count_and_policy() {
        let other = TensorData {
            shape: vec![2, 3],
            values: vec![9.0, -3.0, 0.0, 0.5, 0.25, 7.0],
        };
        for policy in [
            OutputPolicy::Label,
            OutputPolicy::TopK(2),
            OutputPolicy::Probabilities(2),
        ] {
            let a = shape_outputs(policy, &scores(), 2, 3).unwrap();
            let b = shape_outputs(policy, &other, 2, 3).unwrap();
            assert_eq!(a.outputs.len(), b.outputs.len());
        }
    }

    #[test]
    fn malformed_outputs_are_refused() {
        let mut s = scores();
        s.values[0] = f32::NAN;
        assert!(shape_outputs(OutputPolicy::Label, &s, 2, 3).is_none());
        assert!(shape_outputs(OutputPolicy::Label, &scores(), 3, 3).is_none());
        assert!(shape_outputs(OutputPolicy::Label, &scores(), 2, 4).is_none());
    }

    #[test]
    fn queries_are_persisted_a_block_ahead_and_never_undercounted() {
        let budget = 5_000;
        let mut reservation = 0;
        let mut meter = QueryMeter::resumed(reservation);
        // The first query finds nothing stored: it waits for the write of a whole block.
        assert_eq!(meter.count(1, budget, &mut reservation), Some(Persist::Now));
        assert_eq!(reservation, 1 + QUERY_BLOCK);
        meter.written(Some(reservation));
        let mut writes = 1;
        for _ in 1..3_000 {
            match meter.count(1, budget, &mut reservation).unwrap() {
                Persist::No => {}
                Persist::Ahead => {
                    writes += 1;
                    // While it is in flight, no second write ahead starts.
                    assert_eq!(meter.count(1, budget, &mut reservation), Some(Persist::No));
                    meter.written(Some(reservation));
                }
                // Only the very first query may wait for a write.
                Persist::Now => panic!("the reservation ran out"),
            }
            assert!(reservation >= meter.counted());
        }
        assert!(
            writes <= 3_000 / (QUERY_BLOCK as usize / 2) + 2,
            "{writes} writes"
        );
        // A crash: the count resumes from the stored reservation, at least what was counted.
        let resumed = QueryMeter::resumed(reservation);
        assert!(resumed.counted() >= meter.counted());
        assert!(resumed.counted() - meter.counted() <= QUERY_BLOCK);
    }

    #[test]
    fn the_budget_caps_counts_and_reservations() {
        let mut reservation = 0;
        let mut meter = QueryMeter::resumed(0);
        assert_eq!(meter.count(8, 10, &mut reservation), Some(Persist::Now));
        assert_eq!(reservation, 10);
        meter.written(Some(reservation));
        assert_eq!(meter.count(3, 10, &mut reservation), None);
        assert_eq!(meter.counted(), 8);
        assert_eq!(meter.count(2, 10, &mut reservation), Some(Persist::No));
        assert_eq!(meter.count(1, 10, &mut reservation), None);
    }

    #[test]
    fn the_rate_limiter_allows_a_burst_then_refuses() {
        let mut r = RateLimiter::new(3.0);
        assert!(r.try_take() && r.try_take() && r.try_take());
        assert!(!r.try_take());
    }
}
