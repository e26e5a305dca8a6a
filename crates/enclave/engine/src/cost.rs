//! Bounds on the work of one engine call and of one autodiff graph.
//!
//! A sandboxed trainer is stopped at its wall-clock budget by epoch interruption, which takes
//! effect only when the guest runs again: a single engine call runs to its end. Without a bound,
//! one call (a 16k³ matrix product, or `backward` over a graph of thousands of large ops) could
//! run for minutes past the budget — and a job's end time is part of what the runtime keeps
//! fixed. So every compute-heavy op is charged its floating-point operations before it runs:
//! one call may cost at most [`CostLimits::per_call`], and the ops of one graph (those since the
//! last `backward`, on tracked tensors) at most [`CostLimits::per_graph`], which bounds the
//! `backward` that walks them (about twice their cost). Exceeding either is `ResourceExhausted`
//! and leaves the engine as it was.
//!
//! With a deadline ([`Engine::with_deadline`](crate::Engine::with_deadline)) a call must also
//! fit the time left before it at [`SLOWEST_FLOPS_PER_SECOND`]: a call in flight at the
//! deadline could otherwise run up to `per_call` past it (≈ 1.5 s measured), and the time a
//! trainer's last call ends is visible (CPU, memory) after the job's fixed end.

use crate::api::{EngineError, Result};

/// Work limits of an engine, in floating-point operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostLimits {
    /// Most work of one call (≈ 1 s of matrix products on two cores at 2³⁸).
    pub per_call: u64,
    /// Most forward work recorded in one autodiff graph.
    pub per_graph: u64,
}

impl Default for CostLimits {
    /// 2³⁸ per call and 2⁴⁰ per graph: a ResNet-50 forward pass on 64 images of 224×224
    /// (≈ 0.5 × 10¹² operations) fits; seconds of work at most per call.
    fn default() -> Self {
        Self {
            per_call: 1 << 38,
            per_graph: 1 << 40,
        }
    }
}

/// The rate the deadline check assumes: 2³⁰ counted operations per second, below what the
/// slowest op measures on two loaded cores (elementwise ops over memory ≈ 2³¹ elements/s,
/// matrix products ≈ 2³⁴ FLOPs/s). A call admitted `t` before the deadline costs at most
/// `t × 2³⁰`, so it ends before the deadline unless the machine is slower than that.
pub const SLOWEST_FLOPS_PER_SECOND: u64 = 1 << 30;

/// The product of `factors` (operations of one call), saturating: an overflow is over any limit.
pub(crate) fn flops(factors: &[usize]) -> u64 {
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(f as u64))
        .unwrap_or(u64::MAX)
}

impl crate::engine::Engine {
    /// Charges a call of `cost` operations whose output is `tracked` (part of a graph):
    /// `ResourceExhausted` over either limit, before anything runs.
    pub(crate) fn charge(&mut self, cost: u64, tracked: bool) -> Result<()> {
        self.check_time_for(cost)?;
        if cost > self.cost_limits.per_call {
            return Err(EngineError::ResourceExhausted);
        }
        if tracked {
            let graph = self
                .graph_flops
                .checked_add(cost)
                .filter(|g| *g <= self.cost_limits.per_graph)
                .ok_or(EngineError::ResourceExhausted)?;
            self.graph_flops = graph;
        }
        Ok(())
    }

    /// `BudgetExhausted` once the engine's deadline has passed.
    pub(crate) fn check_deadline(&self) -> Result<()> {
        match self.deadline {
            Some(d) if std::time::Instant::now() >= d => Err(EngineError::BudgetExhausted),
            _ => Ok(()),
        }
    }

    /// [`Self::check_deadline`], and `ResourceExhausted` for a call of `cost` operations that
    /// would not end before the deadline at [`SLOWEST_FLOPS_PER_SECOND`].
    pub(crate) fn check_time_for(&self, cost: u64) -> Result<()> {
        self.check_deadline()?;
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(std::time::Instant::now());
            let affordable = left
                .as_nanos()
                .saturating_mul(u128::from(SLOWEST_FLOPS_PER_SECOND))
                / 1_000_000_000;
            if u128::from(cost) > affordable {
                return Err(EngineError::ResourceExhausted);
            }
        }
        Ok(())
    }

    /// Makes every compute-heavy call (the charged ones, `backward`, optimizer steps) fail with
    /// `BudgetExhausted` from `deadline` on. The runtime sets it to the end of a job's budget:
    /// the guest is interrupted there too, and a call is admitted only if it fits the time
    /// left at [`SLOWEST_FLOPS_PER_SECOND`] — so one in flight ends by the deadline on any
    /// machine at least that fast.
    pub fn with_deadline(mut self, deadline: std::time::Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Replaces the default [`CostLimits`].
    pub fn with_cost_limits(mut self, limits: CostLimits) -> Self {
        self.cost_limits = limits;
        self
    }
}
