//! Progress and metrics. Progress goes (coarsened) to the operator; metrics go to the owner only,
//! if its policy allows, under names from a fixed list so a name cannot carry data.

use crate::bindings::chiron::trainer::report as wr;

/// The fixed metric names.
pub use crate::bindings::chiron::trainer::report::MetricName as Metric;

/// Progress through the declared budget (`step` of `total`).
pub fn progress(step: u64, total: u64) {
    wr::progress(step, total)
}

/// A metric value at `step`, for the owner.
pub fn metric(name: Metric, step: u64, value: f32) {
    wr::metric(name, step, value)
}
