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
    fn the_rate_limiter_allows_a_burst_then_refuses() {
        let mut r = RateLimiter::new(3.0);
        assert!(r.try_take() && r.try_take() && r.try_take());
        assert!(!r.try_take());
    }
}
