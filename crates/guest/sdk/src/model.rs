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
    wm::save(&owned(tensors))
}

/// In prediction: the saved tensors, by name (see [`crate::nn::Vars::load`]).
pub fn load() -> Result<Vec<(String, Tensor)>> {
    wm::load()
}

fn owned<'a>(tensors: &[(&str, &'a Tensor)]) -> Vec<(String, &'a Tensor)> {
    tensors
        .iter()
        .map(|(name, t)| ((*name).to_owned(), *t))
        .collect()
}

/// At the end of an epoch: offers the whole training state — `tensors` (every parameter and
/// buffer, by name) and `optimizer` — as a checkpoint after `epochs_done` epochs. The runtime
/// seals it so an interrupted job resumes here ([`resume`]); in the operator's test mode it is
/// checked and dropped.
pub fn checkpoint(
    epochs_done: u32,
    tensors: &[(&str, &Tensor)],
    optimizer: &crate::optim::Optimizer,
) -> Result<()> {
    wm::checkpoint(epochs_done, &owned(tensors), optimizer)
}

/// Before the first epoch, with the model and optimizer built as usual: restores the last
/// checkpoint if the job is resuming and returns the epochs already done (0 on a fresh job, when
/// nothing changes). Pass the same names, in the same order, as to [`checkpoint`].
pub fn resume(tensors: &[(&str, &Tensor)], optimizer: &crate::optim::Optimizer) -> Result<u32> {
    wm::resume(&owned(tensors), optimizer)
}
