//! 2-D convolution forward of f32 tensors as one matrix product per sample, written straight
//! into the NCHW output (a Chiron patch of burn-flex 0.22.1; see CHIRON.md): `out_b = W ·
//! col(x_b)`, `W` `[out, c·kh·kw]` as stored, `col(x_b)` `[c·kh·kw, oh·ow]`. The generic path
//! transposes the input to NHWC, builds tiles and scatters every result back.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use super::conv_weight_grad::{Geometry, im2col_sample};
use crate::{FlexTensor, Layout};

/// Whether the per-sample path applies: a 4-D f32 convolution with one group and a kernel
/// larger than 1×1 (1×1 kernels have their own path).
pub(crate) fn applies(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> bool {
    let w = weight.layout().shape();
    x.dtype() == DType::F32
        && x.layout().shape().num_dims() == 4
        && w.num_dims() == 4
        && options.groups == 1
        && w[2] * w[3] > 1
}

/// `out [m, n] = a [m, k] · b [k, n]`, all row-major.
fn matmul(out: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize, par: gemm::Parallelism) {
    matmul_strided(out, a, 1, k, b, m, k, n, par);
}

/// How one sample's product is split: over the pool when the batch is a single sample (then
/// there is nothing else to run in parallel: a one-image prediction would use one core),
/// otherwise not (the samples are the parallel unit). gemm splits the output, never the
/// inner sums, so the result does not depend on the thread count.
fn per_sample_parallelism(batch: usize) -> gemm::Parallelism {
    #[cfg(feature = "rayon")]
    if batch == 1 {
        return gemm::Parallelism::Rayon(rayon::current_num_threads());
    }
    let _ = batch;
    gemm::Parallelism::None
}

/// `out [m, n] = A · b [k, n]`, `A` `[m, k]` read at `a[i·a_rs + j·a_cs]` (so `a_cs = m,
/// a_rs = 1` reads a row-major `[k, m]` matrix transposed).
#[allow(clippy::too_many_arguments)]
fn matmul_strided(
    out: &mut [f32],
    a: &[f32],
    a_cs: usize,
    a_rs: usize,
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    par: gemm::Parallelism,
) {
    debug_assert!(out.len() == m * n && a.len() == m * k && b.len() == k * n);
    debug_assert!((m - 1) * a_rs + (k - 1) * a_cs < a.len());
    // SAFETY: the pointers come from slices of exactly m·n, m·k and k·n elements, and the
    // strides address only indices below those lengths (checked above in debug builds; at
    // every call site `a` is an `[m, k]` or `[k, m]` row-major matrix read with matching
    // strides), so gemm reads and writes only inside them; `out` does not alias `a` or `b`
    // (one mutable and two shared borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

/// The convolution of `x` by `weight` (+ `bias`), symmetric padding, one group.
pub(crate) fn conv2d_f32(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    let [kh, kw] = [ws[2], ws[3]];
    let pad = options.padding_begin();
    let out_size = |len: usize, k: usize, i: usize| {
        (len + 2 * pad[i] - options.dilation[i] * (k - 1) - 1) / options.stride[i] + 1
    };
    let g = Geometry {
        channels: xs[1],
        h: xs[2],
        w: xs[3],
        out_channels: ws[0],
        group_channels: ws[1],
        kh,
        kw,
        oh: out_size(xs[2], kh, 0),
        ow: out_size(xs[3], kw, 1),
        groups: 1,
        stride: options.stride,
        padding: pad,
        dilation: options.dilation,
    };
    let batch = xs[0];
    let p = g.oh * g.ow;
    let ck = g.channels * kh * kw;
    let x_data: &[f32] = x.storage();
    let w_data: &[f32] = weight.storage();
    let bias = bias.map(|b| b.to_contiguous());
    let b_data: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    let mut out = crate::ops::parallel::zeroed::<f32>(batch * g.out_channels * p);
    let sample = |b: usize, dst: &mut [f32], col: &mut Vec<f32>| {
        let xb = &x_data[b * g.channels * g.h * g.w..][..g.channels * g.h * g.w];
        im2col_sample(col, xb, 0.0, 0, &g);
        matmul(dst, w_data, col, g.out_channels, ck, p, per_sample_parallelism(batch));
        if let Some(bias) = b_data {
            for (row, &v) in dst.chunks_mut(p).zip(bias) {
                row.iter_mut().for_each(|o| *o += v);
            }
        }
    };
    let per = g.out_channels * p;
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(per).enumerate().for_each_init(
            || vec![0f32; ck * p],
            |col, (b, dst)| sample(b, dst, col),
        );
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut col = vec![0f32; ck * p];
        for (b, dst) in out.chunks_mut(per).enumerate() {
            sample(b, dst, &mut col);
        }
    }
    FlexTensor::new(
        Bytes::from_elems(out),
        Layout::contiguous(Shape::from(vec![batch, g.out_channels, g.oh, g.ow])),
        DType::F32,
    )
}

/// Adds `col` (`[c·kh·kw, oh·ow]`, the gradient of an im2col matrix) back into the sample
/// gradient `dx` (CHW): the transpose of `im2col_sample`.
fn col2im_sample(dx: &mut [f32], col: &[f32], g: &Geometry) {
    let p = g.oh * g.ow;
    for c in 0..g.channels {
        let plane = &mut dx[c * g.h * g.w..][..g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &col[((c * g.kh + i) * g.kw + j) * p..][..p];
                let shift = (j * g.dilation[1]) as isize - g.padding[1] as isize;
                for oy in 0..g.oh {
                    let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize - g.padding[0] as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * g.w..][..g.w];
                    let src = &row[oy * g.ow..][..g.ow];
                    for (ox, &v) in src.iter().enumerate() {
                        let ix = (ox * g.stride[1]) as isize + shift;
                        if ix >= 0 && (ix as usize) < g.w {
                            dst[ix as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

/// The input gradient of `conv2d(x, weight)` given `output_grad` (symmetric padding, one
/// group, f32): per sample, `col = Wᵀ · G_b`, added back into the input's shape.
pub(crate) fn conv2d_x_grad_f32(
    x_shape: &[usize],
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let grad = output_grad.to_contiguous();
    let ws = weight.layout().shape();
    let gs = grad.layout().shape();
    let g = Geometry {
        channels: x_shape[1],
        h: x_shape[2],
        w: x_shape[3],
        out_channels: ws[0],
        group_channels: ws[1],
        kh: ws[2],
        kw: ws[3],
        oh: gs[2],
        ow: gs[3],
        groups: 1,
        stride: options.stride,
        padding: options.padding_begin(),
        dilation: options.dilation,
    };
    let batch = x_shape[0];
    let p = g.oh * g.ow;
    let ck = g.channels * g.kh * g.kw;
    let w_data: &[f32] = weight.storage();
    let g_data: &[f32] = grad.storage();
    let per = g.channels * g.h * g.w;
    let mut dx = crate::ops::parallel::zeroed::<f32>(batch * per);
    let sample = |b: usize, dst: &mut [f32], col: &mut Vec<f32>| {
        let gb = &g_data[b * g.out_channels * p..][..g.out_channels * p];
        // Wᵀ [ck, out]: W is row-major [out, ck], read transposed.
        matmul_strided(col, w_data, ck, 1, gb, ck, g.out_channels, p, per_sample_parallelism(batch));
        col2im_sample(dst, col, &g);
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        dx.par_chunks_mut(per)
            .enumerate()
            .for_each_init(|| vec![0f32; ck * p], |col, (b, dst)| sample(b, dst, col));
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut col = vec![0f32; ck * p];
        for (b, dst) in dx.chunks_mut(per).enumerate() {
            sample(b, dst, &mut col);
        }
    }
    FlexTensor::new(
        Bytes::from_elems(dx),
        Layout::contiguous(Shape::from(x_shape.to_vec())),
        DType::F32,
    )
}
