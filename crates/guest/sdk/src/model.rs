//! Saving the trained model (sealed by the runtime) and loading it in prediction.

use crate::bindings::chiron::trainer::model as wm;
use crate::nn::Module;
use crate::{Result, Tensor};

/// Saves every named tensor of `module` (parameters and buffers) as the job's model.
///
/// Names must be 1–64 characters of `[a-z0-9_.]` and unique. Saving again replaces the model.
pub fn save(module: &dyn Module) -> Result<()> {
    save_named(&module.named_tensors())
}

/// Saves the given named tensors as the job's model.
pub fn save_named(tensors: &[(&str, &Tensor)]) -> Result<()> {
    let owned: Vec<(String, &Tensor)> = tensors
        .iter()
        .map(|(name, t)| ((*name).to_owned(), *t))
        .collect();
    wm::save(&owned)
}

/// In prediction: the saved tensors, by name (see [`crate::nn::Vars::load`]).
pub fn load() -> Result<Vec<(String, Tensor)>> {
    wm::load()
}
