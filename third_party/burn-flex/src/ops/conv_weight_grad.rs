//! 2-D convolution weight gradient as one matrix product per sample (a Chiron patch of
//! burn-flex 0.22.1; see CHIRON.md).
//!
//! burn's generic fallback computes the weight gradient as a convolution of the input by the
//! output gradient with batch and channel axes swapped: a very thin product, two strided
//! copies, and for a first layer parallel over only its 3 input channels. Here, per sample `b`
//! and group: `dW += G_b · colᵀ(x_b)`, with `G_b` the output gradient `[out, oh·ow]` (already
//! contiguous in NCHW) and `col(x_b)` the im2col matrix `[c·kh·kw, oh·ow]`.
//!
//! Deterministic whatever the thread count: samples are cut into fixed chunks, each chunk sums
//! its samples in order, and the chunks' sums are added in order.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};
use core::ops::Add;

use super::batch_norm::lane_sum;
use crate::{FlexTensor, Layout};

/// Samples per chunk of the reduction (fixed: the summation order must not depend on threads).
const SAMPLES_PER_CHUNK: usize = 4;

/// Geometry of one convolution.
pub(super) struct Geometry {
    pub(super) channels: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) out_channels: usize,
    pub(super) group_channels: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pub(super) groups: usize,
    pub(super) stride: [usize; 2],
    pub(super) padding: [usize; 2],
    pub(super) dilation: [usize; 2],
}

/// Fills `col` (`[group_channels·kh·kw, oh·ow]`) with the patches of `x` (one sample, CHW)
/// for input channels `c_start..c_start + group_channels`; zeros where a patch leaves the input.
pub(super) fn im2col_sample<T: Copy>(col: &mut [T], x: &[T], zero: T, c_start: usize, g: &Geometry) {
    let p = g.oh * g.ow;
    for c in 0..g.group_channels {
        let plane = &x[(c_start + c) * g.h * g.w..][..g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut col[((c * g.kh + i) * g.kw + j) * p..][..p];
                // Output columns whose input column is inside: ix = ox·s + j·d − p ∈ [0, w).
                let shift = (j * g.dilation[1]) as isize - g.padding[1] as isize;
                for oy in 0..g.oh {
                    let dst = &mut row[oy * g.ow..][..g.ow];
                    let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize - g.padding[0] as isize;
                    if iy < 0 || iy >= g.h as isize {
                        dst.fill(zero);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..][..g.w];
                    if g.stride[1] == 1 {
                        let lo = (-shift).clamp(0, g.ow as isize) as usize;
                        let hi = (g.w as isize - shift).clamp(lo as isize, g.ow as isize) as usize;
                        dst[..lo].fill(zero);
                        let s0 = (lo as isize + shift) as usize;
                        dst[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                        dst[hi..].fill(zero);
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let ix = (ox * g.stride[1]) as isize + shift;
                            *d = if ix >= 0 && (ix as usize) < g.w {
                                src[ix as usize]
                            } else {
                                zero
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Adds the weight gradient of samples `samples` to `acc` (`[out, group_channels·kh·kw]`).
#[allow(clippy::too_many_arguments)]
fn accumulate<T: Copy + Add<Output = T>>(
    acc: &mut [T],
    col: &mut [T],
    x: &[T],
    grad: &[T],
    samples: core::ops::Range<usize>,
    g: &Geometry,
    zero: T,
    gemm_fn: fn(&[T], &[T], usize, usize, usize) -> Vec<T>,
) {
    let p = g.oh * g.ow;
    let ck = g.group_channels * g.kh * g.kw;
    let og = g.out_channels / g.groups;
    for b in samples {
        let xb = &x[b * g.channels * g.h * g.w..][..g.channels * g.h * g.w];
        for grp in 0..g.groups {
            im2col_sample(col, xb, zero, grp * g.group_channels, g);
            let gb = &grad[(b * g.out_channels + grp * og) * p..][..og * p];
            // gemm_fn(a [m, k], b [n, k]) = a · bᵀ [m, n].
            let r = gemm_fn(gb, col, og, p, ck);
            for (d, v) in acc[grp * og * ck..][..og * ck].iter_mut().zip(r) {
                *d = *d + v;
            }
        }
    }
}

/// The weight gradient of `conv2d(x, weight)` given `output_grad`, for symmetric padding.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_weight_grad<T>(
    x: FlexTensor,
    weight_shape: &[usize],
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
    dtype: DType,
    zero: T,
    gemm_fn: fn(&[T], &[T], usize, usize, usize) -> Vec<T>,
) -> FlexTensor
where
    T: bytemuck::Pod + Copy + Add<Output = T> + burn_backend::Element + Send + Sync,
{
    let x = x.to_contiguous();
    let grad = output_grad.to_contiguous();
    let xs = x.layout().shape();
    let gs = grad.layout().shape();
    let geometry = Geometry {
        channels: xs[1],
        h: xs[2],
        w: xs[3],
        out_channels: weight_shape[0],
        group_channels: weight_shape[1],
        kh: weight_shape[2],
        kw: weight_shape[3],
        oh: gs[2],
        ow: gs[3],
        groups: options.groups,
        stride: options.stride,
        padding: options.padding_begin(),
        dilation: options.dilation,
    };
    let batch = xs[0];
    let g = &geometry;
    let ck = g.group_channels * g.kh * g.kw;
    let size = g.out_channels * ck;
    let x_data: &[T] = x.storage();
    let grad_data: &[T] = grad.storage();
    let chunk_sum = |chunk: usize| {
        let mut acc = vec![zero; size];
        let mut col = vec![zero; ck * g.oh * g.ow];
        let start = chunk * SAMPLES_PER_CHUNK;
        let end = (start + SAMPLES_PER_CHUNK).min(batch);
        accumulate(
            &mut acc,
            &mut col,
            x_data,
            grad_data,
            start..end,
            g,
            zero,
            gemm_fn,
        );
        acc
    };
    let chunks = batch.div_ceil(SAMPLES_PER_CHUNK);
    #[cfg(feature = "rayon")]
    let partial: Vec<Vec<T>> = {
        use rayon::prelude::*;
        (0..chunks).into_par_iter().map(chunk_sum).collect()
    };
    #[cfg(not(feature = "rayon"))]
    let partial: Vec<Vec<T>> = (0..chunks).map(chunk_sum).collect();
    let mut total = vec![zero; size];
    for part in partial {
        for (t, v) in total.iter_mut().zip(part) {
            *t = *t + v;
        }
    }
    FlexTensor::new(
        Bytes::from_elems(total),
        Layout::contiguous(Shape::from(weight_shape.to_vec())),
        dtype,
    )
}

/// The bias gradient of a 2-D convolution: the output gradient (`[batch, out, oh, ow]`, f32)
/// summed over batch and positions, read in place. burn's default swaps the batch and channel
/// axes into a full copy first. Each channel sums its planes in batch order, so the result does
/// not depend on the thread count.
pub(crate) fn conv2d_bias_grad_f32(bias_shape: Shape, output_grad: FlexTensor) -> FlexTensor {
    let grad = output_grad.to_contiguous();
    let gs = grad.layout().shape();
    let (batch, channels, plane) = (gs[0], gs[1], gs[2] * gs[3]);
    let data: &[f32] = grad.storage();
    let channel_sum = |k: usize| {
        (0..batch)
            .map(|b| lane_sum(&data[(b * channels + k) * plane..][..plane], |v| v))
            .fold(0f32, |a, v| a + v)
    };
    #[cfg(feature = "rayon")]
    let sums: Vec<f32> = {
        use rayon::prelude::*;
        (0..channels).into_par_iter().map(channel_sum).collect()
    };
    #[cfg(not(feature = "rayon"))]
    let sums: Vec<f32> = (0..channels).map(channel_sum).collect();
    FlexTensor::new(
        Bytes::from_elems(sums),
        Layout::contiguous(bias_shape),
        DType::F32,
    )
}
