//! Layers and the [`Module`] trait, PyTorch style.
//!
//! Layers get their tensors from a [`Vars`] store, which either creates fresh parameters (in
//! `train`) or takes them from the saved model (in `predict`). The same model-building function
//! therefore serves both exports, and the names it gives (`"fc1"` → `fc1.weight`, `fc1.bias`)
//! are the names the model is saved and loaded under.

use std::collections::BTreeMap;

use crate::bindings::chiron::trainer::nn as wnn;
use crate::tensor::{Conv2dOptions, Pool2dOptions};
use crate::{Error, Result, Tensor};

/// Parameter initialisers (formulas in the WIT `init` enum).
pub use crate::bindings::chiron::trainer::nn::Init;

/// The longest tensor name the runtime accepts.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid saved-tensor name: 1–64 characters of `[a-z0-9_.]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// Where layers get their tensors: fresh from initialisers, or from the saved model.
pub struct Vars {
    /// `None`: create fresh parameters. `Some`: take them (by name) from the loaded model.
    loaded: Option<BTreeMap<String, Tensor>>,
}

impl Vars {
    /// A store that creates fresh, trainable parameters (use in `train`).
    pub fn fresh() -> Self {
        Self { loaded: None }
    }

    /// A store over the model saved by `train` (use in `predict`).
    pub fn load() -> Result<Self> {
        Ok(Self::from_tensors(crate::model::load()?))
    }

    /// A store over the given named tensors (as [`crate::model::load`] returns them).
    pub fn from_tensors(tensors: Vec<(String, Tensor)>) -> Self {
        Self {
            loaded: Some(tensors.into_iter().collect()),
        }
    }

    /// Whether tensors come from a saved model (prediction) rather than initialisers.
    pub fn is_loading(&self) -> bool {
        self.loaded.is_some()
    }

    /// The shape of the saved tensor `name` (load mode only): lets `predict` size a model from
    /// what `train` saved instead of repeating hyper-parameters.
    pub fn saved_shape(&self, name: &str) -> Option<Vec<u32>> {
        self.loaded.as_ref()?.get(name).map(|t| t.shape())
    }

    /// Takes the saved tensor `name` whatever its shape (load mode only), e.g. statistics the
    /// trainer saved beside its layers.
    pub fn take_saved(&mut self, name: &str) -> Option<Tensor> {
        self.loaded.as_mut()?.remove(name)
    }

    /// A trainable parameter named `name` (or the saved tensor of that name, whose shape must
    /// be `shape`).
    pub fn parameter(
        &mut self,
        name: &str,
        shape: &[u32],
        init: Init,
        fan_in: u32,
        fan_out: u32,
    ) -> Result<Tensor> {
        match self.take(name, shape)? {
            Some(t) => Ok(t),
            None => wnn::parameter(shape, init, fan_in, fan_out),
        }
    }

    /// A non-trainable state tensor named `name` filled with `value` (or the saved one).
    pub fn buffer(&mut self, name: &str, shape: &[u32], value: f32) -> Result<Tensor> {
        match self.take(name, shape)? {
            Some(t) => Ok(t),
            None => wnn::buffer(shape, value),
        }
    }

    /// In load mode, removes `name` from the saved tensors and checks its shape; a missing name
    /// or a different shape is an error (the model does not match what was saved).
    fn take(&mut self, name: &str, shape: &[u32]) -> Result<Option<Tensor>> {
        if !valid_name(name) {
            return Err(Error::InvalidArgument);
        }
        let Some(loaded) = self.loaded.as_mut() else {
            return Ok(None);
        };
        let t = loaded.remove(name).ok_or(Error::InvalidArgument)?;
        if t.shape() != shape {
            return Err(Error::InvalidShape);
        }
        Ok(Some(t))
    }
}

/// A layer or a network: a forward function over parameters.
pub trait Module {
    /// Applies the module to `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// The trainable parameters (what an optimizer updates).
    fn parameters(&self) -> Vec<&Tensor> {
        Vec::new()
    }
    /// Every tensor to save (parameters and buffers), by full name.
    fn named_tensors(&self) -> Vec<(&str, &Tensor)> {
        Vec::new()
    }
    /// Switches between training (batch statistics, dropout on) and evaluation behaviour.
    fn set_training(&mut self, _training: bool) {}
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn parameters(&self) -> Vec<&Tensor> {
        (**self).parameters()
    }
    fn named_tensors(&self) -> Vec<(&str, &Tensor)> {
        (**self).named_tensors()
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }
}

/// Joins a layer name and a tensor name: `"fc1"` + `"weight"` → `"fc1.weight"`.
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `y = x · Wᵀ + b`, `W [out, in]` (Kaiming-uniform), `b [out]` (PyTorch's bias init).
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    weight_name: String,
    bias_name: String,
}

impl Linear {
    /// A linear layer with bias, its tensors named `name.weight` and `name.bias`.
    pub fn new(vs: &mut Vars, name: &str, inputs: u32, outputs: u32) -> Result<Self> {
        let mut l = Self::no_bias(vs, name, inputs, outputs)?;
        l.bias =
            Some(vs.parameter(&l.bias_name, &[outputs], Init::BiasUniform, inputs, outputs)?);
        Ok(l)
    }

    /// A linear layer without bias.
    pub fn no_bias(vs: &mut Vars, name: &str, inputs: u32, outputs: u32) -> Result<Self> {
        let weight_name = join(name, "weight");
        let weight = vs.parameter(
            &weight_name,
            &[outputs, inputs],
            Init::KaimingUniform,
            inputs,
            outputs,
        )?;
        Ok(Self {
            weight,
            bias: None,
            weight_name,
            bias_name: join(name, "bias"),
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.linear(&self.weight, self.bias.as_ref())
    }
    fn parameters(&self) -> Vec<&Tensor> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }
    fn named_tensors(&self) -> Vec<(&str, &Tensor)> {
        let mut v = vec![(self.weight_name.as_str(), &self.weight)];
        if let Some(b) = &self.bias {
            v.push((self.bias_name.as_str(), b));
        }
        v
    }
}

/// 2-D convolution, `W [out, in / groups, k, k]` (Kaiming-uniform), optional bias.
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    options: Conv2dOptions,
    weight_name: String,
    bias_name: String,
}

impl Conv2d {
    /// A `k`×`k` convolution from `inputs` to `outputs` channels with bias, its tensors named
    /// `name.weight` and `name.bias`.
    pub fn new(
        vs: &mut Vars,
        name: &str,
        inputs: u32,
        outputs: u32,
        k: u32,
        options: Conv2dOptions,
    ) -> Result<Self> {
        let mut c = Self::no_bias(vs, name, inputs, outputs, k, options)?;
        let (fan_in, fan_out) = conv_fans(inputs, outputs, k, options.groups)?;
        c.bias =
            Some(vs.parameter(&c.bias_name, &[outputs], Init::BiasUniform, fan_in, fan_out)?);
        Ok(c)
    }

    /// A convolution without bias (the usual choice before batch norm).
    pub fn no_bias(
        vs: &mut Vars,
        name: &str,
        inputs: u32,
        outputs: u32,
        k: u32,
        options: Conv2dOptions,
    ) -> Result<Self> {
        let (fan_in, fan_out) = conv_fans(inputs, outputs, k, options.groups)?;
        let weight_name = join(name, "weight");
        let weight = vs.parameter(
            &weight_name,
            &[outputs, inputs / options.groups, k, k],
            Init::KaimingUniform,
            fan_in,
            fan_out,
        )?;
        Ok(Self {
            weight,
            bias: None,
            options,
            weight_name,
            bias_name: join(name, "bias"),
        })
    }
}

/// Fan-in and fan-out of a convolution's weight, checking that `groups` divides both channel
/// counts and that nothing overflows.
fn conv_fans(inputs: u32, outputs: u32, k: u32, groups: u32) -> Result<(u32, u32)> {
    if groups == 0 || !inputs.is_multiple_of(groups) || !outputs.is_multiple_of(groups) {
        return Err(Error::InvalidArgument);
    }
    let kk = k.checked_mul(k).ok_or(Error::InvalidArgument)?;
    let fan_in = (inputs / groups)
        .checked_mul(kk)
        .ok_or(Error::InvalidArgument)?;
    let fan_out = (outputs / groups)
        .checked_mul(kk)
        .ok_or(Error::InvalidArgument)?;
    Ok((fan_in, fan_out))
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.conv2d(&self.weight, self.bias.as_ref(), self.options)
    }
    fn parameters(&self) -> Vec<&Tensor> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }
    fn named_tensors(&self) -> Vec<(&str, &Tensor)> {
        let mut v = vec![(self.weight_name.as_str(), &self.weight)];
        if let Some(b) = &self.bias {
            v.push((self.bias_name.as_str(), b));
        }
        v
    }
}

/// Batch normalisation over the channels of `[n, c, h, w]` (also works on `[n, c]`).
///
/// Trainable `weight` (γ, ones) and `bias` (β, zeros); buffers `running_mean` (zeros) and
/// `running_var` (ones), updated in training mode with `momentum`.
pub struct BatchNorm2d {
    gamma: Tensor,
    beta: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    names: [String; 4],
    /// Weight of the current batch in the running statistics (PyTorch's 0.1 by default).
    pub momentum: f32,
    /// Added to the variance before the square root.
    pub eps: f32,
    training: bool,
}

impl BatchNorm2d {
    /// Batch norm over `channels`; starts in training mode unless `vs` loads a saved model.
    pub fn new(vs: &mut Vars, name: &str, channels: u32) -> Result<Self> {
        let names = [
            join(name, "weight"),
            join(name, "bias"),
            join(name, "running_mean"),
            join(name, "running_var"),
        ];
        let training = !vs.is_loading();
        Ok(Self {
            gamma: vs.parameter(&names[0], &[channels], Init::Ones, channels, channels)?,
            beta: vs.parameter(&names[1], &[channels], Init::Zeros, channels, channels)?,
            running_mean: vs.buffer(&names[2], &[channels], 0.0)?,
            running_var: vs.buffer(&names[3], &[channels], 1.0)?,
            names,
            momentum: 0.1,
            eps: 1e-5,
            training,
        })
    }
}

impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::bindings::chiron::trainer::tensor::batch_norm(
            x,
            &self.gamma,
            &self.beta,
            &self.running_mean,
            &self.running_var,
            self.training,
            self.momentum,
            self.eps,
        )
    }
    fn parameters(&self) -> Vec<&Tensor> {
        vec![&self.gamma, &self.beta]
    }
    fn named_tensors(&self) -> Vec<(&str, &Tensor)> {
        let [g, b, m, v] = &self.names;
        vec![
            (g.as_str(), &self.gamma),
            (b.as_str(), &self.beta),
            (m.as_str(), &self.running_mean),
            (v.as_str(), &self.running_var),
        ]
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// `max(x, 0)`.
pub struct ReLU;
impl Module for ReLU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.relu()
    }
}

/// GELU.
pub struct Gelu;
impl Module for Gelu {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.gelu()
    }
}

/// Hyperbolic tangent.
pub struct Tanh;
impl Module for Tanh {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.tanh()
    }
}

/// Logistic sigmoid.
pub struct Sigmoid;
impl Module for Sigmoid {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.sigmoid()
    }
}

/// Collapses axes `start..` into one (`Flatten(1)`: `[n, c, h, w]` → `[n, c·h·w]`).
pub struct Flatten(pub u32);
impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.flatten(self.0)
    }
}

/// Max pooling.
pub struct MaxPool2d(pub Pool2dOptions);
impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool2d(self.0)
    }
}

/// Average pooling.
pub struct AvgPool2d(pub Pool2dOptions);
impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(self.0)
    }
}

/// Average pooling to a fixed spatial size (`AdaptiveAvgPool2d((1, 1))` = global average).
pub struct AdaptiveAvgPool2d(pub (u32, u32));
impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.adaptive_avg_pool2d(self.0)
    }
}

/// Inverted dropout with probability `p` (host RNG); identity in evaluation mode.
pub struct Dropout {
    p: f32,
    training: bool,
}
impl Dropout {
    /// Dropout with probability `p`, starting in training mode.
    pub fn new(p: f32) -> Self {
        Self { p, training: true }
    }
}
impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.dropout(self.p, self.training)
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Modules applied in order.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty sequence (the identity).
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a module (builder style).
    #[allow(clippy::should_implement_trait)]
    pub fn add<M: Module + 'static>(mut self, m: M) -> Self {
        self.layers.push(Box::new(m));
        self
    }
    /// Appends a module.
    pub fn push<M: Module + 'static>(&mut self, m: M) {
        self.layers.push(Box::new(m));
    }
    /// Number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }
    /// Whether there are no modules.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut layers = self.layers.iter();
        let Some(first) = layers.next() else {
            return x.detach();
        };
        let mut y = first.forward(x)?;
        for layer in layers {
            // Each intermediate handle is dropped (freed host-side) as soon as the next exists.
            y = layer.forward(&y)?;
        }
        Ok(y)
    }
    fn parameters(&self) -> Vec<&Tensor> {
        self.layers.iter().flat_map(|l| l.parameters()).collect()
    }
    fn named_tensors(&self) -> Vec<(&str, &Tensor)> {
        self.layers.iter().flat_map(|l| l.named_tensors()).collect()
    }
    fn set_training(&mut self, training: bool) {
        for l in &mut self.layers {
            l.set_training(training);
        }
    }
}
