//! The one vocabulary of job states that enclave, host and clients share: phases, failure codes
//! and metric names as types, so that no side compares free-form strings.
//!
//! Two views of a job's phase exist on purpose. The owner sees [`JobPhase`] (whether its job
//! succeeded, and why not). The operator and its host see only [`PublicPhase`]: a job that ended
//! is `finished`, whatever its outcome, because whether a trainer succeeded can depend on the
//! data it saw.

/// An enum of fixed names: `as_str` (the name on the wire), `parse` (its inverse), `ALL` and
/// `Display`, from one list of `Variant => "name"` pairs.
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses [`Self::as_str`] output.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// A job's phase as the enclave's sealed record holds it and as its owner sees it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum JobPhase {
        /// Submitted; waiting for the operator's share of the model key.
        Queued => "queued",
        /// Training (or waiting for the end of its declared budget).
        Training => "training",
        /// Ended with a sealed model that answers predictions.
        Ready => "ready",
        /// Ended without a model; [`FailureCode`] says why.
        Failed => "failed",
    }
}

impl JobPhase {
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

named! {
    /// A job's phase as the operator and the host see it: its outcome is not part of it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum PublicPhase {
        /// Submitted; waiting for the operator's share.
        Queued => "queued",
        /// Inside its declared budget.
        Training => "training",
        /// Its declared budget is over (it may or may not have a model: only the owner learns
        /// which).
        Finished => "finished",
    }
}

named! {
    /// Why a job ended without a model: the only failure information that leaves the enclave,
    /// and only to the owner.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum FailureCode {
        /// Anything the trainer did: a trap, a returned error, its budget, memory, no saved
        /// model, a non-finite metric, a checkpoint or model larger than the policy allows. One
        /// code for all of them: which one it was could depend on the data.
        TrainerFailed => "trainer-failed",
        /// The dataset blob is not at the host.
        DatasetMissing => "dataset-missing",
        /// The dataset did not open or authenticate with the job's data key.
        DatasetRejected => "dataset-rejected",
        /// A checkpoint did not open (tampered, rolled back or sealed elsewhere).
        CheckpointRejected => "checkpoint-rejected",
        /// The enclave could not reserve the policy's `memory_mib` when the job started (other
        /// jobs hold the rest of its memory, or the policy asks more than the enclave allows).
        /// Decided before the trainer runs, from the policies alone.
        ResourcesUnavailable => "resources-unavailable",
        /// The job finished, but its sealed model at the host is missing or does not open
        /// (the host lost or damaged it): there is nothing to predict with.
        ModelDamaged => "model-damaged",
        /// The runtime's own failure (host unreachable, ...).
        Internal => "internal",
    }
}

named! {
    /// Why a prediction request got no answer (`PredictReply.failure`; only the owner reads
    /// it). Every one of them is answered like an answer: at the request's fixed time, in a
    /// reply of the same size.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum PredictFailure {
        /// The trainer's `predict` failed, gave a malformed output or did not finish within
        /// the policy's latency. One code for all: which one it was could tell the owner about
        /// the operator's model.
        PredictionFailed => "prediction-failed",
        /// The inputs are not records of the dataset's schema (e.g. non-finite values).
        InvalidInput => "invalid-input",
        /// The job has no trained model (it has not finished, or it failed).
        NoModel => "no-model",
        /// The job's query budget does not cover the request.
        BudgetSpent => "budget-spent",
        /// The job's sealed model at the host is missing or does not open.
        ModelDamaged => "model-damaged",
    }
}

named! {
    /// The metrics a trainer may report and a policy may let the owner see (the `report`
    /// interface's fixed list).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum MetricName {
        /// Training loss.
        TrainLoss => "train-loss",
        /// Training accuracy.
        TrainAccuracy => "train-accuracy",
        /// Test loss.
        TestLoss => "test-loss",
        /// Test accuracy.
        TestAccuracy => "test-accuracy",
        /// Learning rate.
        LearningRate => "learning-rate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_outcomes_are_not_public() {
        for p in JobPhase::ALL {
            assert_eq!(JobPhase::parse(p.as_str()), Some(*p));
        }
        for p in PublicPhase::ALL {
            assert_eq!(PublicPhase::parse(p.as_str()), Some(*p));
        }
        for c in FailureCode::ALL {
            assert_eq!(FailureCode::parse(c.as_str()), Some(*c));
        }
        for m in MetricName::ALL {
            assert_eq!(MetricName::parse(m.as_str()), Some(*m));
        }
        assert_eq!(JobPhase::Ready.public(), JobPhase::Failed.public());
        assert_eq!(JobPhase::parse("finished"), None);
        assert_eq!(PublicPhase::parse("ready"), None);
    }

    #[test]
    fn the_serialised_names_are_the_wire_names() {
        for c in FailureCode::ALL {
            let json = serde_json::to_string(c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        for p in JobPhase::ALL {
            let json = serde_json::to_string(p).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
    }
}
