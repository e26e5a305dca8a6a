//! The one vocabulary of job states that enclave, host and clients share: phases, failure codes
//! and metric names as types, so that no side compares free-form strings.
//!
//! Two views of a job's phase exist on purpose. The owner sees [`JobPhase`] (whether its job
//! succeeded, and why not). The operator and its host see only [`PublicPhase`]: a job that ended
//! is `finished`, whatever its outcome, because whether a trainer succeeded can depend on the
//! data it saw.

use std::fmt;

/// A job's phase as the enclave's sealed record holds it and as its owner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobPhase {
    /// Submitted; waiting for the operator's share of the model key.
    Queued,
    /// Training (or waiting for the end of its declared budget).
    Training,
    /// Ended with a sealed model that answers predictions.
    Ready,
    /// Ended without a model; [`FailureCode`] says why.
    Failed,
}

impl JobPhase {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Queued => "queued",
            JobPhase::Training => "training",
            JobPhase::Ready => "ready",
            JobPhase::Failed => "failed",
        }
    }

    /// Parses [`JobPhase::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Training, Self::Ready, Self::Failed]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// What the operator and the host may see of this phase.
    pub fn public(self) -> PublicPhase {
        match self {
            JobPhase::Queued => PublicPhase::Queued,
            JobPhase::Training => PublicPhase::Training,
            JobPhase::Ready | JobPhase::Failed => PublicPhase::Finished,
        }
    }

    /// Whether the job has ended (it changes no more).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobPhase::Ready | JobPhase::Failed)
    }
}

impl fmt::Display for JobPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's phase as the operator and the host see it: its outcome is not part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PublicPhase {
    /// Submitted; waiting for the operator's share.
    Queued,
    /// Inside its declared budget.
    Training,
    /// Its declared budget is over (it may or may not have a model: only the owner learns which).
    Finished,
}

impl PublicPhase {
    /// Every public phase, in order.
    pub const ALL: [PublicPhase; 3] = [
        PublicPhase::Queued,
        PublicPhase::Training,
        PublicPhase::Finished,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PublicPhase::Queued => "queued",
            PublicPhase::Training => "training",
            PublicPhase::Finished => "finished",
        }
    }

    /// Parses [`PublicPhase::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for PublicPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job ended without a model: the only failure information that leaves the enclave, and
/// only to the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCode {
    /// Anything the trainer did: a trap, a returned error, its budget, memory, no saved model,
    /// a non-finite metric, a checkpoint or model larger than the policy allows. One code for
    /// all of them: which one it was could depend on the data.
    TrainerFailed,
    /// The dataset blob is not at the host.
    DatasetMissing,
    /// The dataset did not open or authenticate with the job's data key.
    DatasetRejected,
    /// A checkpoint did not open (tampered, rolled back or sealed elsewhere).
    CheckpointRejected,
    /// The runtime's own failure (host unreachable, ...).
    Internal,
}

impl FailureCode {
    /// Every code.
    pub const ALL: [FailureCode; 5] = [
        FailureCode::TrainerFailed,
        FailureCode::DatasetMissing,
        FailureCode::DatasetRejected,
        FailureCode::CheckpointRejected,
        FailureCode::Internal,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::TrainerFailed => "trainer-failed",
            FailureCode::DatasetMissing => "dataset-missing",
            FailureCode::DatasetRejected => "dataset-rejected",
            FailureCode::CheckpointRejected => "checkpoint-rejected",
            FailureCode::Internal => "internal",
        }
    }

    /// Parses [`FailureCode::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The metrics a trainer may report and a policy may let the owner see (the `report`
/// interface's fixed list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricName {
    /// Training loss.
    TrainLoss,
    /// Training accuracy.
    TrainAccuracy,
    /// Test loss.
    TestLoss,
    /// Test accuracy.
    TestAccuracy,
    /// Learning rate.
    LearningRate,
}

impl MetricName {
    /// Every metric.
    pub const ALL: [MetricName; 5] = [
        MetricName::TrainLoss,
        MetricName::TrainAccuracy,
        MetricName::TestLoss,
        MetricName::TestAccuracy,
        MetricName::LearningRate,
    ];

    /// The name on the wire and in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::TrainLoss => "train-loss",
            MetricName::TrainAccuracy => "train-accuracy",
            MetricName::TestLoss => "test-loss",
            MetricName::TestAccuracy => "test-accuracy",
            MetricName::LearningRate => "learning-rate",
        }
    }

    /// Parses [`MetricName::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_outcomes_are_not_public() {
        for p in [
            JobPhase::Queued,
            JobPhase::Training,
            JobPhase::Ready,
            JobPhase::Failed,
        ] {
            assert_eq!(JobPhase::parse(p.as_str()), Some(p));
        }
        for p in PublicPhase::ALL {
            assert_eq!(PublicPhase::parse(p.as_str()), Some(p));
        }
        for c in FailureCode::ALL {
            assert_eq!(FailureCode::parse(c.as_str()), Some(c));
        }
        for m in MetricName::ALL {
            assert_eq!(MetricName::parse(m.as_str()), Some(m));
        }
        assert_eq!(JobPhase::Ready.public(), JobPhase::Failed.public());
        assert_eq!(JobPhase::parse("finished"), None);
        assert_eq!(PublicPhase::parse("ready"), None);
    }
}
