//! Replies of one size: a reply whose content depends on the data (a status with the owner's
//! metrics and outcome, a prediction that may have failed) is padded to a size fixed by things
//! the host may know, so the size of what it relays says nothing more.
//!
//! The size to pad to is that of the largest reply the policy allows, plus [`MIN_PADDING`]:
//! the largest reply is built field by field at its widest ([`status_reply_size`],
//! [`predict_reply_size`]) and every real reply is padded up to it with zeros in its
//! `padding` field (field 15, so one tag byte).

use prost::Message;

use crate::enclave::{JobStatus, JobStatusReply, Metric, PredictReply};
use crate::job::JobPolicy;
use crate::vocab::{FailureCode, JobPhase, MetricName, PredictFailure};

/// Padding every padded reply carries at least: enough that the padding field's length prefix
/// is two bytes for every reply of a policy (whose sizes differ by far less than 16 KiB), so
/// any shortfall from 131 bytes to 16 KiB can be made up exactly.
pub const MIN_PADDING: usize = 131;

/// Characters of a job id (hex) and of a trainer digest (hex SHA-256).
const JOB_ID_CHARS: usize = 32;
const DIGEST_CHARS: usize = 64;

/// Why a reply could not be padded.
#[derive(Debug, PartialEq, Eq)]
pub struct PaddingError;

impl std::fmt::Display for PaddingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reply larger than its padded size")
    }
}

impl std::error::Error for PaddingError {}

/// Sets `padding` to the zeros that make `message` exactly `target` bytes encoded (with its
/// `padding` empty before). Refused if it is already too large or no padding length fits.
fn pad<M: Message>(
    message: &mut M,
    padding: impl Fn(&mut M) -> &mut Vec<u8>,
    target: usize,
) -> Result<(), PaddingError> {
    padding(message).clear();
    let need = target
        .checked_sub(message.encoded_len())
        .ok_or(PaddingError)?;
    if need == 0 {
        return Ok(());
    }
    // One tag byte (field 15), the length's varint, the zeros.
    let len = (1..=5)
        .filter_map(|prefix| need.checked_sub(1 + prefix))
        .find(|n| *n > 0 && 1 + prost::encoding::encoded_len_varint(*n as u64) + n == need)
        .ok_or(PaddingError)?;
    *padding(message) = vec![0; len];
    debug_assert_eq!(message.encoded_len(), target);
    Ok(())
}

/// The size of every owner's status reply under `policy`.
pub fn status_reply_size(policy: &JobPolicy) -> usize {
    let longest = |names: &mut dyn Iterator<Item = &'static str>| {
        "x".repeat(names.map(str::len).max().unwrap_or(0))
    };
    let widest = JobStatusReply {
        status: Some(JobStatus {
            job_id: "0".repeat(JOB_ID_CHARS),
            phase: longest(&mut JobPhase::ALL.iter().map(|p| p.as_str())),
            coarse_step: u32::MAX,
            coarse_steps: u32::MAX,
            failure: longest(&mut FailureCode::ALL.iter().map(|f| f.as_str())),
            trainer_digest: "0".repeat(DIGEST_CHARS),
        }),
        metrics: policy
            .metrics
            .iter()
            .flat_map(|_| {
                (0..policy.metric_points).map(|_| Metric {
                    name: longest(&mut MetricName::ALL.iter().map(|m| m.as_str())),
                    step: u64::MAX,
                    value: 1.0,
                })
            })
            .collect(),
        padding: Vec::new(),
    };
    widest.encoded_len() + MIN_PADDING
}

/// Pads an owner's status reply to [`status_reply_size`].
pub fn pad_status_reply(
    reply: &mut JobStatusReply,
    policy: &JobPolicy,
) -> Result<(), PaddingError> {
    pad(reply, |r| &mut r.padding, status_reply_size(policy))
}

/// The size of every prediction reply of `count` inputs with `per_input` values each under
/// `policy` (its output kind).
pub fn predict_reply_size(policy: &JobPolicy, count: u32, per_input: u32) -> usize {
    let widest = PredictReply {
        kind: policy.output.kind().to_string(),
        per_input: u32::MAX,
        outputs: vec![0; count as usize * per_input as usize * 4],
        digits: u32::MAX,
        queries_left: u64::MAX,
        failure: "x".repeat(
            PredictFailure::ALL
                .iter()
                .map(|f| f.as_str().len())
                .max()
                .unwrap_or(0),
        ),
        padding: Vec::new(),
    };
    widest.encoded_len() + MIN_PADDING
}

/// Pads a prediction reply of `count` inputs to [`predict_reply_size`].
pub fn pad_predict_reply(
    reply: &mut PredictReply,
    policy: &JobPolicy,
    count: u32,
) -> Result<(), PaddingError> {
    let target = predict_reply_size(policy, count, reply.per_input);
    pad(reply, |r| &mut r.padding, target)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(extra: &str) -> JobPolicy {
        JobPolicy::parse(&format!(
            "epochs = 1\nbatch_size = 8\nseed = 1\nmax_steps = 10\nwall_seconds = 5\n{extra}\n\
             [predictions]\noutput = \"label\"\nquery_budget = 100\nrate_per_second = 5\n"
        ))
        .unwrap()
    }

    #[test]
    fn every_shortfall_from_min_padding_up_is_made_up_exactly() {
        let mut m = PredictReply::default();
        // Up to where the length prefix would need a third byte (a policy's replies differ by
        // far less).
        for need in MIN_PADDING..=16_386 {
            pad(&mut m, |r| &mut r.padding, need).unwrap();
            assert_eq!(m.encoded_len(), need, "{need}");
        }
        assert_eq!(pad(&mut m, |r| &mut r.padding, 0), Ok(()));
        assert!(m.padding.is_empty());
        // A shortfall of one or two bytes cannot be padded: hence MIN_PADDING.
        for need in [1, 2] {
            assert_eq!(pad(&mut m, |r| &mut r.padding, need), Err(PaddingError));
        }
    }

    #[test]
    fn status_replies_have_one_size_whatever_phase_failure_and_points() {
        let p = policy("metrics = [\"train-loss\", \"test-accuracy\"]\nmetric_points = 4");
        let size = status_reply_size(&p);
        let status = |phase: JobPhase, failure: Option<FailureCode>, step: u32| JobStatus {
            job_id: "ab".repeat(16),
            phase: phase.as_str().into(),
            coarse_step: step,
            coarse_steps: 10,
            failure: failure.map_or("", |f| f.as_str()).into(),
            trainer_digest: "cd".repeat(32),
        };
        let mut sizes = std::collections::BTreeSet::new();
        for (phase, failure) in [
            (JobPhase::Queued, None),
            (JobPhase::Ready, None),
            (JobPhase::Failed, Some(FailureCode::TrainerFailed)),
            (JobPhase::Failed, Some(FailureCode::ResourcesUnavailable)),
        ] {
            for points in 0..=8 {
                for step in [0, 3, 10] {
                    let mut reply = JobStatusReply {
                        status: Some(status(phase, failure, step)),
                        metrics: (0..points)
                            .map(|i| Metric {
                                name: MetricName::ALL[i % 2 * 3].as_str().into(),
                                step: i as u64,
                                value: if i == 0 { 0.0 } else { 0.25 },
                            })
                            .collect(),
                        padding: Vec::new(),
                    };
                    pad_status_reply(&mut reply, &p).unwrap();
                    sizes.insert(reply.encode_to_vec().len());
                }
            }
        }
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [size]);
        // More metrics or points: a larger size.
        assert!(
            status_reply_size(&policy("metrics = [\"train-loss\"]\nmetric_points = 5")) > size / 2
        );
        assert!(
            status_reply_size(&policy(
                "metrics = [\"train-loss\", \"test-accuracy\"]\nmetric_points = 5"
            )) > size
        );
    }

    #[test]
    fn prediction_replies_have_one_size_per_count_answer_or_not() {
        let p = policy("");
        for count in [1u32, 7, 64] {
            let answer = PredictReply {
                kind: "label".into(),
                per_input: 1,
                outputs: vec![7; count as usize * 4],
                digits: 0,
                queries_left: 93,
                failure: String::new(),
                padding: Vec::new(),
            };
            let mut sizes = std::collections::BTreeSet::new();
            let failures = PredictFailure::ALL.iter().map(|f| f.as_str().to_string());
            for failure in failures.chain([String::new()]) {
                for left in [0, 1, 1 << 40] {
                    let mut r = PredictReply {
                        failure: failure.clone(),
                        queries_left: left,
                        outputs: vec![0; count as usize * 4],
                        ..answer.clone()
                    };
                    pad_predict_reply(&mut r, &p, count).unwrap();
                    sizes.insert(r.encode_to_vec().len());
                }
            }
            let mut a = answer.clone();
            pad_predict_reply(&mut a, &p, count).unwrap();
            sizes.insert(a.encode_to_vec().len());
            assert_eq!(sizes.len(), 1, "{count}: {sizes:?}");
            assert_eq!(sizes.first(), Some(&predict_reply_size(&p, count, 1)));
        }
    }

    #[test]
    fn a_reply_larger_than_its_size_is_refused() {
        let p = policy("");
        let mut r = PredictReply {
            outputs: vec![0; 4 * 100],
            per_input: 1,
            ..Default::default()
        };
        // A hundred values where the size was made for one input (and the minimum padding).
        assert_eq!(pad_predict_reply(&mut r, &p, 1), Err(PaddingError));
    }
}
