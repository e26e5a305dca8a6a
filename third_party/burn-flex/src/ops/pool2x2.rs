//! 2×2, stride-2 max pooling (a Chiron patch of burn-flex 0.22.1; see CHIRON.md): the pooling
//! of nearly every CNN, without the generic kernel's per-element window arithmetic. Results,
//! indices and NaN handling are the generic kernel's: the window is scanned row by row, a
//! larger value or a NaN replaces the current maximum (so the last NaN wins).

use alloc::vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::ops::parallel::zeroed;
use crate::{FlexTensor, Layout};

/// Whether the fast path applies: kernel 2×2, stride 2, no padding or dilation, and (with
/// `ceil_mode`) even sizes, so every window is whole.
pub(crate) fn applies(
    x: &FlexTensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> bool {
    let s = x.layout().shape();
    s.num_dims() == 4
        && kernel == [2, 2]
        && stride == [2, 2]
        && padding == [0, 0]
        && dilation == [1, 1]
        && s[2] >= 2
        && s[3] >= 2
        && (!ceil_mode || (s[2] % 2 == 0 && s[3] % 2 == 0))
}

/// The maximum of one window and its index in the plane, scanning `(v, i)` pairs in order.
#[inline(always)]
fn window(cells: [(f32, i64); 4]) -> (f32, i64) {
    let mut best = cells[0];
    for &(v, i) in &cells[1..] {
        if v > best.0 || v.is_nan() {
            best = (v, i);
        }
    }
    best
}

/// An index type the pool writes directly: the dtype autodiff asked for, so no cast pass
/// follows (I64 as the generic kernel makes, or I32).
pub(crate) trait PlaneIndex: Copy + Default + Send + Sync + bytemuck::Pod + burn_std::Element {
    /// The tensor dtype of these indices.
    const DTYPE: DType;
    /// Offset `i` in a plane; callers keep planes within the type's range.
    fn from_offset(i: i64) -> Self;
    /// The offset back, if it is a valid one.
    fn offset(self) -> Option<usize>;
}

impl PlaneIndex for i64 {
    const DTYPE: DType = DType::I64;
    fn from_offset(i: i64) -> Self {
        i
    }
    fn offset(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
}

impl PlaneIndex for i32 {
    const DTYPE: DType = DType::I32;
    fn from_offset(i: i64) -> Self {
        // In range: `max_pool2x2_with_indices_f32` picks i32 only for planes below 2³¹.
        i as i32
    }
    fn offset(self) -> Option<usize> {
        usize::try_from(self).ok()
    }
}

/// Max-pools `x` (`[n, c, h, w]`, f32) over 2×2 windows, with the index of each maximum in
/// its `h·w` plane, as `indices_dtype` when that is I32 and the plane fits it, else I64.
pub(crate) fn max_pool2x2_with_indices_f32(x: FlexTensor, indices_dtype: DType) -> (FlexTensor, FlexTensor) {
    let s = x.layout().shape();
    if indices_dtype == DType::I32 && s[2].saturating_mul(s[3]) <= i32::MAX as usize {
        with_indices::<i32>(x)
    } else {
        with_indices::<i64>(x)
    }
}

/// The pool and its indices as `I`.
fn with_indices<I: PlaneIndex>(x: FlexTensor) -> (FlexTensor, FlexTensor) {
    let (out, idx, shape) = pool::<I>(x, true);
    (
        FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape.clone()), DType::F32),
        FlexTensor::new(Bytes::from_elems(idx), Layout::contiguous(shape), I::DTYPE),
    )
}

/// Max-pools `x` (`[n, c, h, w]`, f32) over 2×2 windows (inference: no indices).
pub(crate) fn max_pool2x2_f32(x: FlexTensor) -> FlexTensor {
    let (out, _, shape) = pool::<i64>(x, false);
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape), DType::F32)
}

/// The pooled values, the indices (empty unless `with_indices`) and the output shape.
fn pool<I: PlaneIndex>(x: FlexTensor, with_indices: bool) -> (vec::Vec<f32>, vec::Vec<I>, Shape) {
    let x = x.to_contiguous();
    let s = x.layout().shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let (oh, ow) = (h / 2, w / 2);
    let data: &[f32] = x.storage();
    let planes = n * c;
    let mut out = zeroed::<f32>(planes * oh * ow);
    let mut idx = if with_indices {
        zeroed::<I>(planes * oh * ow)
    } else {
        vec![]
    };
    let plane = |p: usize, o: &mut [f32], ix: &mut [I]| {
        let src = &data[p * h * w..][..h * w];
        for oy in 0..oh {
            let r0 = &src[2 * oy * w..][..2 * ow];
            let r1 = &src[(2 * oy + 1) * w..][..2 * ow];
            let out_row = &mut o[oy * ow..][..ow];
            let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2));
            if ix.is_empty() {
                for (dst, (a, b)) in out_row.iter_mut().zip(pairs) {
                    *dst = window([(a[0], 0), (a[1], 0), (b[0], 0), (b[1], 0)]).0;
                }
            } else {
                let base0 = (2 * oy * w) as i64;
                let base1 = base0 + w as i64;
                let idx_row = &mut ix[oy * ow..][..ow];
                for (ox, ((dst, di), (a, b))) in
                    out_row.iter_mut().zip(idx_row.iter_mut()).zip(pairs).enumerate()
                {
                    let x0 = 2 * ox as i64;
                    let (v, i) = window([
                        (a[0], base0 + x0),
                        (a[1], base0 + x0 + 1),
                        (b[0], base1 + x0),
                        (b[1], base1 + x0 + 1),
                    ]);
                    *dst = v;
                    *di = I::from_offset(i);
                }
            }
        }
    };
    let per = oh * ow;
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        if with_indices {
            out.par_chunks_mut(per)
                .zip(idx.par_chunks_mut(per))
                .enumerate()
                .for_each(|(p, (o, ix))| plane(p, o, ix));
        } else {
            out.par_chunks_mut(per)
                .enumerate()
                .for_each(|(p, o)| plane(p, o, &mut []));
        }
    }
    #[cfg(not(feature = "rayon"))]
    {
        if with_indices {
            for (p, (o, ix)) in out.chunks_mut(per).zip(idx.chunks_mut(per)).enumerate() {
                plane(p, o, ix);
            }
        } else {
            for (p, o) in out.chunks_mut(per).enumerate() {
                plane(p, o, &mut []);
            }
        }
    }
    (out, idx, Shape::from(vec![n, c, oh, ow]))
}

/// The input gradient of a 2×2, stride-2 max-pool of `x_shape` (`[n, c, h, w]`, f32; indices
/// I32 or I64, as the forward pass made them): each
/// output gradient goes to the cell its index names, every other cell is zero. The windows do
/// not overlap, so each cell receives at most one value, exactly as the generic kernel's sum.
pub(crate) fn max_pool2x2_backward_f32(
    x_shape: &Shape,
    output_grad: FlexTensor,
    indices: FlexTensor,
) -> FlexTensor {
    match indices.dtype() {
        DType::I32 => backward::<i32>(x_shape, output_grad, indices),
        _ => backward::<i64>(x_shape, output_grad, indices),
    }
}

/// [`max_pool2x2_backward_f32`] with indices of type `I`.
fn backward<I: PlaneIndex>(x_shape: &Shape, output_grad: FlexTensor, indices: FlexTensor) -> FlexTensor {
    let grad = output_grad.to_contiguous();
    let indices = indices.to_contiguous();
    let (h, w) = (x_shape[2], x_shape[3]);
    let g: &[f32] = grad.storage();
    let ix: &[I] = indices.storage();
    let per_out = grad.layout().shape()[2] * grad.layout().shape()[3];
    let mut dx = zeroed::<f32>(x_shape.num_elements());
    let plane = |p: usize, dst: &mut [f32]| {
        let g = &g[p * per_out..][..per_out];
        let ix = &ix[p * per_out..][..per_out];
        for (&v, &i) in g.iter().zip(ix) {
            // Indices come from the forward pass over the same plane; one outside it would
            // be a bug upstream, and is skipped rather than written out of bounds.
            if let Some(cell) = i.offset().and_then(|i| dst.get_mut(i)) {
                *cell = v;
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        dx.par_chunks_mut(h * w).enumerate().for_each(|(p, dst)| plane(p, dst));
    }
    #[cfg(not(feature = "rayon"))]
    for (p, dst) in dx.chunks_mut(h * w).enumerate() {
        plane(p, dst);
    }
    FlexTensor::new(Bytes::from_elems(dx), Layout::contiguous(x_shape.clone()), DType::F32)
}
