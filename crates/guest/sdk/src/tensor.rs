//! Methods on [`Tensor`] handles: each is one call into the host engine.
//!
//! The generated type already has `from_data`, `full`, `shape`, `item` and `to_list`; the
//! operations of the `tensor` interface are free functions in the bindings, given here as
//! methods so model code reads like PyTorch (`x.matmul(&w)?.relu()?`).

use crate::bindings::chiron::trainer::{nn as wnn, tensor as wt};
use crate::{Result, Tensor};

/// Options of [`Tensor::conv2d`] (stride, padding, dilation, groups).
pub use crate::bindings::chiron::trainer::tensor::Conv2dOptions;
/// Options of [`Tensor::max_pool2d`] and [`Tensor::avg_pool2d`].
pub use crate::bindings::chiron::trainer::tensor::Pool2dOptions;

impl Conv2dOptions {
    /// Stride 1, no padding, no dilation, one group.
    pub const fn new() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
    /// The same stride on both axes.
    pub const fn stride(mut self, s: u32) -> Self {
        self.stride = (s, s);
        self
    }
    /// The same zero padding on both axes.
    pub const fn padding(mut self, p: u32) -> Self {
        self.padding = (p, p);
        self
    }
    /// The same dilation on both axes.
    pub const fn dilation(mut self, d: u32) -> Self {
        self.dilation = (d, d);
        self
    }
    /// Grouped convolution.
    pub const fn groups(mut self, g: u32) -> Self {
        self.groups = g;
        self
    }
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl Pool2dOptions {
    /// A square window of `k`, stride `k` (non-overlapping), no padding: PyTorch's default.
    pub const fn new(k: u32) -> Self {
        Self {
            kernel: (k, k),
            stride: (k, k),
            padding: (0, 0),
        }
    }
    /// The same stride on both axes.
    pub const fn stride(mut self, s: u32) -> Self {
        self.stride = (s, s);
        self
    }
    /// The same zero padding on both axes.
    pub const fn padding(mut self, p: u32) -> Self {
        self.padding = (p, p);
        self
    }
}

/// Concatenates tensors along `axis`.
pub fn concat(xs: &[&Tensor], axis: u32) -> Result<Tensor> {
    wt::concat(xs, axis)
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[u32]) -> Result<Tensor> {
        Tensor::full(shape, 0.0)
    }
    /// A tensor of ones.
    pub fn ones(shape: &[u32]) -> Result<Tensor> {
        Tensor::full(shape, 1.0)
    }
    /// A one-element tensor of shape `[1]`.
    pub fn scalar(value: f32) -> Result<Tensor> {
        Tensor::full(&[1], value)
    }
    /// All values, row-major (alias of `to_list`).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.to_list()
    }
    /// Number of elements (product of the shape).
    pub fn numel(&self) -> u64 {
        self.shape().iter().map(|&d| u64::from(d)).product()
    }

    /// `self + other`, broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        wt::add(self, other)
    }
    /// `self - other`, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        wt::sub(self, other)
    }
    /// `self * other` elementwise, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        wt::mul(self, other)
    }
    /// `self / other` elementwise, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        wt::div(self, other)
    }
    /// `self * scale + shift`.
    pub fn affine(&self, scale: f32, shift: f32) -> Result<Tensor> {
        wt::affine(self, scale, shift)
    }
    /// `self * s`.
    pub fn scale(&self, s: f32) -> Result<Tensor> {
        wt::affine(self, s, 0.0)
    }
    /// `self + s`.
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        wt::affine(self, 1.0, s)
    }
    /// `-self`.
    pub fn neg(&self) -> Result<Tensor> {
        wt::affine(self, -1.0, 0.0)
    }

    /// Batched matrix product over the last two axes.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        wt::matmul(self, other)
    }
    /// `self [.., in] · weight [out, in]ᵀ + bias [out]`.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        wt::linear(self, weight, bias)
    }
    /// 2-D convolution of `self [n, c, h, w]` with `weight [out, c / groups, kh, kw]`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        options: Conv2dOptions,
    ) -> Result<Tensor> {
        wt::conv2d(self, weight, bias, options)
    }
    /// Max pooling over `[n, c, h, w]`.
    pub fn max_pool2d(&self, options: Pool2dOptions) -> Result<Tensor> {
        wt::max_pool2d(self, options)
    }
    /// Average pooling over `[n, c, h, w]`.
    pub fn avg_pool2d(&self, options: Pool2dOptions) -> Result<Tensor> {
        wt::avg_pool2d(self, options)
    }
    /// Average pooling to a fixed spatial size `(oh, ow)`.
    pub fn adaptive_avg_pool2d(&self, output: (u32, u32)) -> Result<Tensor> {
        wt::adaptive_avg_pool2d(self, output)
    }
    /// Inverted dropout with probability `p` (host RNG); identity when `training` is false.
    pub fn dropout(&self, p: f32, training: bool) -> Result<Tensor> {
        wt::dropout(self, p, training)
    }

    /// `max(self, 0)`.
    pub fn relu(&self) -> Result<Tensor> {
        wt::relu(self)
    }
    /// GELU.
    pub fn gelu(&self) -> Result<Tensor> {
        wt::gelu(self)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Tensor> {
        wt::sigmoid(self)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Tensor> {
        wt::tanh(self)
    }
    /// Softmax along `axis`.
    pub fn softmax(&self, axis: u32) -> Result<Tensor> {
        wt::softmax(self, axis)
    }
    /// Log-softmax along `axis`.
    pub fn log_softmax(&self, axis: u32) -> Result<Tensor> {
        wt::log_softmax(self, axis)
    }

    /// Mean cross-entropy of logits `self [n, classes]` against class indices `labels [n]`.
    pub fn cross_entropy(&self, labels: &Tensor) -> Result<Tensor> {
        wt::cross_entropy(self, labels)
    }
    /// Mean squared error against `target`.
    pub fn mse(&self, target: &Tensor) -> Result<Tensor> {
        wt::mse(self, target)
    }

    /// A view with another shape; one entry may be `-1` (inferred).
    pub fn reshape(&self, shape: &[i32]) -> Result<Tensor> {
        wt::reshape(self, shape)
    }
    /// Collapses axes `start..` into one (`flatten(1)` turns `[n, c, h, w]` into `[n, c·h·w]`).
    pub fn flatten(&self, start: u32) -> Result<Tensor> {
        wt::flatten(self, start)
    }
    /// Swaps two axes.
    pub fn transpose(&self, axis0: u32, axis1: u32) -> Result<Tensor> {
        wt::transpose(self, axis0, axis1)
    }

    /// Mean of all elements (a one-element tensor).
    pub fn mean_all(&self) -> Result<Tensor> {
        wt::mean(self, None, false)
    }
    /// Mean over `axis`, keeping it as size 1 when `keep`.
    pub fn mean(&self, axis: u32, keep: bool) -> Result<Tensor> {
        wt::mean(self, Some(axis), keep)
    }
    /// Sum of all elements (a one-element tensor).
    pub fn sum_all(&self) -> Result<Tensor> {
        wt::sum(self, None, false)
    }
    /// Sum over `axis`, keeping it as size 1 when `keep`.
    pub fn sum(&self, axis: u32, keep: bool) -> Result<Tensor> {
        wt::sum(self, Some(axis), keep)
    }
    /// Indices of the maxima along `axis`, as f32.
    pub fn argmax(&self, axis: u32) -> Result<Tensor> {
        wt::argmax(self, axis)
    }
    /// A copy that does not track gradients.
    pub fn detach(&self) -> Result<Tensor> {
        wt::detach(self)
    }
    /// Per-channel `(x - mean[c]) / std[c]` over axis 1 of `[n, c, ..]`.
    pub fn normalize_channels(&self, mean: &[f32], std: &[f32]) -> Result<Tensor> {
        wt::normalize_channels(self, mean, std)
    }

    /// Computes the gradients of this scalar loss for every parameter it depends on.
    pub fn backward(&self) -> Result<()> {
        wnn::backward(self)
    }

    /// Number of entries of `self` (class scores `[n, classes]`) whose argmax equals `labels [n]`.
    ///
    /// Computed host-side except for the final comparison of `n` indices.
    pub fn correct(&self, labels: &Tensor) -> Result<u64> {
        let predicted = self.argmax(1)?.to_list()?;
        let labels = labels.to_list()?;
        Ok(predicted
            .iter()
            .zip(labels.iter())
            .filter(|(p, l)| p == l)
            .count() as u64)
    }
}
