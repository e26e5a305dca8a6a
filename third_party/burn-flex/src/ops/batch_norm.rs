//! Batch normalisation of f32 tensors laid out `[batch, channels, ...]`: statistics, output and
//! gradients computed per channel straight from the contiguous planes (a Chiron patch of
//! burn-flex 0.22.1; see CHIRON.md). burn's defaults reduce per channel by swapping the batch
//! and channel axes into full copies: two in the forward pass, three in the backward pass.
//!
//! Deterministic whatever the thread count: each channel's sums run over the batch in order
//! (eight interleaved partial sums per plane, combined in a fixed order), and every output
//! element is written once.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Lanes of the per-plane sums (vectorisable, combined in a fixed order).
const LANES: usize = 8;

/// `Σ f(values[i])` in a fixed order: eight interleaved partial sums, then those in order (also
/// the convolution bias gradient's sum).
#[inline(always)]
pub(crate) fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|&v| f(v)).sum::<f32>()
}

/// `Σ f(a[i], b[i])` in the same fixed order as [`lane_sum`].
#[inline(always)]
fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += f(u, v);
        }
    }
    acc.iter().sum::<f32>() + ta.iter().zip(tb).map(|(&u, &v)| f(u, v)).sum::<f32>()
}

/// Whether the fast path applies: every tensor f32, `x` of rank ≥ 2.
pub(crate) fn applies(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32) && tensors[0].layout().shape().num_dims() >= 2
}

/// `[batch, channels, plane]` of `x`.
fn planes(x: &FlexTensor) -> [usize; 3] {
    let s = x.layout().shape();
    let plane = (2..s.num_dims()).map(|i| s[i]).product();
    [s[0], s[1], plane]
}

/// `f(c)` for every channel, in parallel when rayon is on.
fn per_channel(channels: usize, f: impl Fn(usize) -> f32 + Send + Sync) -> Vec<f32> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        (0..channels).map(f).collect()
    }
}

/// A new `[batch, channels, plane]` tensor whose every plane is filled by `f(channel, offset,
/// plane)` (`offset`: where that plane starts in any tensor of this shape), in parallel when
/// rayon is on.
fn map_planes(
    [batch, channels, plane]: [usize; 3],
    f: impl Fn(usize, usize, &mut [f32]) + Send + Sync,
) -> Vec<f32> {
    let mut out = vec![0f32; batch * channels * plane];
    let run = |i: usize, dst: &mut [f32]| f(i % channels, i * plane, dst);
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(plane.max(1))
            .enumerate()
            .for_each(|(i, dst)| run(i, dst));
    }
    #[cfg(not(feature = "rayon"))]
    for (i, dst) in out.chunks_mut(plane.max(1)).enumerate() {
        run(i, dst);
    }
    out
}

fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// `(x − mean) · γ / √(var + ε) + β` per channel, into a new tensor of `x`'s shape.
fn normalize(x: &[f32], dims: [usize; 3], gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], epsilon: f64) -> Vec<f32> {
    let scale: Vec<f32> = (0..dims[1])
        .map(|c| gamma[c] / (f64::from(var[c]) + epsilon).sqrt() as f32)
        .collect();
    map_planes(dims, |c, start, dst| {
        let src = &x[start..][..dst.len()];
        let (m, s, b) = (mean[c], scale[c], beta[c]);
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = (v - m) * s + b;
        }
    })
}

/// Inference: normalises `x` with the given statistics.
pub(crate) fn batch_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let x = x.to_contiguous();
    let [gamma, beta, mean, variance] = [gamma, beta, mean, variance].map(|t| t.to_contiguous());
    let dims = planes(&x);
    let out = normalize(
        x.storage(),
        dims,
        gamma.storage(),
        beta.storage(),
        mean.storage(),
        variance.storage(),
        epsilon,
    );
    tensor(out, x.layout().shape().clone())
}

/// Training: the batch's per-channel mean and biased variance (two passes: centred), and `x`
/// normalised with them. Returns `(output, mean, variance)`.
pub(crate) fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let [gamma, beta] = [gamma, beta].map(|t| t.to_contiguous());
    let dims @ [batch, channels, plane] = planes(&x);
    let data: &[f32] = x.storage();
    let count = (batch * plane).max(1) as f32;
    let channel_plane = |n: usize, c: usize| &data[(n * channels + c) * plane..][..plane];
    let mean = per_channel(channels, |c| {
        (0..batch).fold(0f32, |a, n| a + lane_sum(channel_plane(n, c), |v| v)) / count
    });
    let variance = per_channel(channels, |c| {
        let m = mean[c];
        (0..batch).fold(0f32, |a, n| {
            a + lane_sum(channel_plane(n, c), |v| (v - m) * (v - m))
        }) / count
    });
    let out = normalize(data, dims, gamma.storage(), beta.storage(), &mean, &variance, epsilon);
    let per_channel_shape = || Shape::from(vec![channels]);
    (
        tensor(out, x.layout().shape().clone()),
        tensor(mean, per_channel_shape()),
        tensor(variance, per_channel_shape()),
    )
}

/// Gradients of [`batch_norm_train`] given the output gradient `dy`, with `x̂ = (x − mean) ·
/// inv_std`: `dβ = Σ dy`, `dγ = Σ dy·x̂`, `dx = γ·inv_std·(dy − dβ/M − x̂·dγ/M)` (`M` values per
/// channel). Returns `(x_grad, gamma_grad, beta_grad)`.
pub(crate) fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    let [gamma, mean, variance] = [gamma, mean, variance].map(|t| t.to_contiguous());
    let dims @ [batch, channels, plane] = planes(&x);
    let (xs, gs): (&[f32], &[f32]) = (x.storage(), dy.storage());
    let (gamma, mean, variance): (&[f32], &[f32], &[f32]) =
        (gamma.storage(), mean.storage(), variance.storage());
    let count = (batch * plane).max(1) as f32;
    let inv_std: Vec<f32> = variance
        .iter()
        .map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32)
        .collect();
    let at = |n: usize, c: usize| {
        let start = (n * channels + c) * plane;
        start..start + plane
    };
    let beta_grad = per_channel(channels, |c| {
        (0..batch).fold(0f32, |a, n| a + lane_sum(&gs[at(n, c)], |v| v))
    });
    let gamma_grad = per_channel(channels, |c| {
        let (m, s) = (mean[c], inv_std[c]);
        (0..batch).fold(0f32, |a, n| {
            let r = at(n, c);
            a + lane_sum2(&gs[r.clone()], &xs[r], |g, v| g * (v - m) * s)
        })
    });
    let x_grad = map_planes(dims, |c, start, dst| {
        let (m, s) = (mean[c], inv_std[c]);
        let scale = gamma[c] * s;
        let (mean_dy, mean_dy_xhat) = (beta_grad[c] / count, gamma_grad[c] / count);
        let (src, g) = (&xs[start..][..dst.len()], &gs[start..][..dst.len()]);
        for ((d, &v), &dyv) in dst.iter_mut().zip(src).zip(g) {
            let xhat = (v - m) * s;
            *d = scale * (dyv - mean_dy - xhat * mean_dy_xhat);
        }
    });
    let per_channel_shape = || Shape::from(vec![channels]);
    (
        tensor(x_grad, x.layout().shape().clone()),
        tensor(gamma_grad, per_channel_shape()),
        tensor(beta_grad, per_channel_shape()),
    )
}
