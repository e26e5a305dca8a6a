//! The trainer's two exports, as a trait.

use crate::{Result, Tensor};

/// What a trainer implements; export it with [`crate::export_trainer!`].
///
/// Each export runs in its own fresh instance: nothing (statics included) survives from
/// `train` to `predict`, or from one prediction request to the next. What `predict` needs must
/// be saved with [`crate::model::save`] during `train`.
pub trait Trainer {
    /// Trains on the `train` split and saves the model.
    fn train(config: TrainConfig) -> Result<()>;
    /// Maps a batch of raw inputs `[n, ..shape]` (u8 data scaled to [0, 1], without
    /// normalisation or augmentation) to scores `[n, classes]`.
    fn predict(input: &Tensor) -> Result<Tensor>;
}

/// The job's declared training configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Epochs the job declared.
    pub epochs: u32,
    /// Batch size the job declared.
    pub batch_size: u32,
    /// Hyper-parameters from the operator's job description, by name.
    pub hyper: Vec<(String, f32)>,
}

impl TrainConfig {
    /// Converts the generated record (used by [`crate::export_trainer!`]).
    #[doc(hidden)]
    pub fn from_wit(c: crate::bindings::TrainConfig) -> Self {
        Self {
            epochs: c.epochs,
            batch_size: c.batch_size,
            hyper: c.hyper,
        }
    }

    /// The hyper-parameter `name`, or `default` when the job did not set it.
    pub fn hyper(&self, name: &str, default: f32) -> f32 {
        self.hyper
            .iter()
            .find(|(n, _)| n == name)
            .map_or(default, |(_, v)| *v)
    }
}
