//! 3×3 stride-1 convolutions of f32 tensors by Winograd's minimal filtering F(2×2, 3×3): the
//! forward pass, the input gradient and the weight gradient (a Chiron patch of burn-flex 0.22.1;
//! see CHIRON.md).
//!
//! Each 2×2 block of outputs comes from a 4×4 block of input `d` as
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`: 16 multiplications per input channel instead of 36.
//! Summed over input channels the 16 element-wise products become 16 matrix products,
//! `M_ξ = U_ξ · V_ξ` (`U_ξ` `[out, in]` from the weights, `V_ξ` `[in, tiles]` from the input),
//! so the products that dominate a convolutional network's step shrink 2.25× (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016). Work goes in blocks of whole
//! images small enough that a block's transformed input and products stay in cache.
//!
//! The gradients come from the same identity, exactly: the input gradient is the forward
//! transform applied to the output gradient with the kernel flipped and its channel axes swapped;
//! the weight gradient is `Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G`. The transforms multiply by
//! 0, ±1 and ±½ only, so results differ from a direct convolution by rounding alone.
//!
//! Deterministic whatever the thread count: blocks are fixed by the shapes, every output element
//! is written by one block, and the weight gradient's per-block sums are added in block order.
//!
//! The transforms and the product are kept out of line (`inline(never)`): a profile then shows
//! each one's share, which is how the layout here was chosen, at no measurable cost.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::ops::parallel::zeroed;
use crate::{FlexTensor, Layout};

/// Elements of a transformed 4×4 tile: one matrix product each.
const XI: usize = 16;
/// Tiles per block at least (whole images are added until a block has this many): enough
/// columns for an efficient product, few enough that a block's data stays in a core's L2.
const BLOCK_TILES: usize = 128;
/// Below this many channels on either side the products are too thin to pay for the
/// transforms; such layers (typically the first, on RGB input) keep the im2col path.
const MIN_CHANNELS: usize = 8;

/// Whether the Winograd path applies: 4-D f32, one group, 3×3 kernel, stride and dilation 1,
/// symmetric padding of at most 2 (so the input gradient is itself such a convolution), at least
/// `MIN_CHANNELS` channels in and out, and a non-empty output.
pub(crate) fn applies(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> bool {
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return false;
    }
    if xs.num_dims() != 4 || ws.num_dims() != 4 {
        return false;
    }
    let pad = options.padding_begin();
    options.groups == 1
        && ws[2] == 3
        && ws[3] == 3
        && ws[1] == xs[1]
        && options.stride == [1, 1]
        && options.dilation == [1, 1]
        && !options.is_asymmetric()
        && pad.iter().all(|&p| p <= 2)
        && xs[1] >= MIN_CHANNELS
        && ws[0] >= MIN_CHANNELS
        && xs[2] + 2 * pad[0] >= 3
        && xs[3] + 2 * pad[1] >= 3
}

/// Shape of one convolution as the tiles see it.
#[derive(Clone, Copy)]
struct Tiling {
    batch: usize,
    /// Input channels.
    channels: usize,
    h: usize,
    w: usize,
    /// Output channels.
    out_channels: usize,
    pad: [usize; 2],
    oh: usize,
    ow: usize,
    /// Tile rows and columns per image (each tile: 2×2 outputs).
    th: usize,
    tw: usize,
}

impl Tiling {
    fn new(input: [usize; 4], out_channels: usize, pad: [usize; 2]) -> Self {
        let [batch, channels, h, w] = input;
        let oh = h + 2 * pad[0] - 2;
        let ow = w + 2 * pad[1] - 2;
        Self {
            batch,
            channels,
            h,
            w,
            out_channels,
            pad,
            oh,
            ow,
            th: oh.div_ceil(2),
            tw: ow.div_ceil(2),
        }
    }

    fn tiles_per_image(&self) -> usize {
        self.th * self.tw
    }

    /// Whole images per block (fixed by the shape alone, never by the thread count).
    fn images_per_block(&self) -> usize {
        BLOCK_TILES.div_ceil(self.tiles_per_image()).clamp(1, self.batch.max(1))
    }
}

/// Element `i` of `[g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2]`: one axis of `G g Gᵀ`.
#[inline(always)]
fn kernel_1d(g: [f32; 3], i: usize) -> f32 {
    match i {
        0 => g[0],
        1 => 0.5 * (g[0] + g[1] + g[2]),
        2 => 0.5 * (g[0] - g[1] + g[2]),
        _ => g[2],
    }
}

/// `[u0 + (u1 + u2)/2, (u1 − u2)/2, (u1 + u2)/2 + u3]`: one axis of `Gᵀ U G` (the adjoint of
/// `kernel_1d`).
#[inline(always)]
fn kernel_grad_1d(u: [f32; 4]) -> [f32; 3] {
    [
        u[0] + 0.5 * (u[1] + u[2]),
        0.5 * (u[1] - u[2]),
        0.5 * (u[1] + u[2]) + u[3],
    ]
}

/// Element `xi` (row-major in the 4×4 result) of `G g Gᵀ` for a row-major 3×3 kernel `g`:
/// each row of `g` transformed at column `xi mod 4`, then that column at row `xi / 4`.
#[inline(always)]
fn kernel_transform_at(g: &[f32; 9], xi: usize) -> f32 {
    let col = |r: usize| kernel_1d([g[3 * r], g[3 * r + 1], g[3 * r + 2]], xi % 4);
    kernel_1d([col(0), col(1), col(2)], xi / 4)
}

/// `U` `[16][rows][cols]` for the product `M_ξ = U_ξ · V_ξ`. `flip` builds the input-gradient
/// kernel: rows are the weight's input channels, columns its output channels, the kernel turned
/// 180°. One task per `ξ` writes its plane in order (the weights it reads stay in cache), so
/// the transform runs on every worker with contiguous writes.
fn transform_weights(w: &[f32], out_channels: usize, in_channels: usize, flip: bool) -> Vec<f32> {
    let (rows, cols) = if flip {
        (in_channels, out_channels)
    } else {
        (out_channels, in_channels)
    };
    let mut u = vec![0f32; XI * rows * cols];
    let plane = |xi: usize, dst: &mut [f32]| {
        for (r, dst_row) in dst.chunks_exact_mut(cols).enumerate() {
            for (col, d) in dst_row.iter_mut().enumerate() {
                let (k, c) = if flip { (col, r) } else { (r, col) };
                let src = &w[(k * in_channels + c) * 9..][..9];
                let g: [f32; 9] = core::array::from_fn(|i| if flip { src[8 - i] } else { src[i] });
                *d = kernel_transform_at(&g, xi);
            }
        }
    };
    if rows * cols == 0 {
        return u;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        u.par_chunks_mut(rows * cols).enumerate().for_each(|(xi, dst)| plane(xi, dst));
    }
    #[cfg(not(feature = "rayon"))]
    for (xi, dst) in u.chunks_mut(rows * cols).enumerate() {
        plane(xi, dst);
    }
    u
}

/// Reusable per-thread buffers of the transforms.
#[derive(Default)]
struct TransformScratch {
    /// One image (or output gradient) channels-last with a zero border: `[rows][cols][ch]`.
    staged: Vec<f32>,
    /// Partial transforms of one tile: 16 vectors of channels.
    partial: Vec<f32>,
}

/// `dst = a − b`, element-wise.
#[inline(always)]
fn sub(dst: &mut [f32], a: &[f32], b: &[f32]) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = x - y;
    }
}

/// `dst = a + b`, element-wise.
#[inline(always)]
fn add(dst: &mut [f32], a: &[f32], b: &[f32]) {
    for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
        *d = x + y;
    }
}

/// `dst = a + b + c`, element-wise.
#[inline(always)]
fn add3(dst: &mut [f32], a: &[f32], b: &[f32], c: &[f32]) {
    for (((d, &x), &y), &z) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = x + y + z;
    }
}

/// `dst = a − b − c`, element-wise.
#[inline(always)]
fn sub2(dst: &mut [f32], a: &[f32], b: &[f32], c: &[f32]) {
    for (((d, &x), &y), &z) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = x - y - z;
    }
}

/// `dst = −a`, element-wise.
#[inline(always)]
fn neg(dst: &mut [f32], a: &[f32]) {
    for (d, &x) in dst.iter_mut().zip(a) {
        *d = -x;
    }
}

/// Copies `planes` (`[ch][h][w]`) channels-last into `staged` (`[rows][cols][ch]`) at row and
/// column offset `at`; everything else zero. The transforms then work on vectors of channels:
/// contiguous, as long as the layer is wide, and the same for every tile.
fn stage(staged: &mut Vec<f32>, planes: &[f32], ch: usize, hw: [usize; 2], dims: [usize; 2], at: [usize; 2]) {
    let [h, w] = hw;
    let [rows, cols] = dims;
    // Only the border is zeroed: the interior is overwritten below (the buffer is reused for
    // every image, and a full clear was a measurable share of the step).
    staged.resize(rows * cols * ch, 0.0);
    for (r, row) in staged.chunks_exact_mut(cols * ch).enumerate() {
        if r < at[0] || r >= at[0] + h {
            row.fill(0.0);
        } else {
            row[..at[1] * ch].fill(0.0);
            row[(at[1] + w) * ch..].fill(0.0);
        }
    }
    for (c, plane) in planes.chunks_exact(h * w).enumerate() {
        for (y, row) in plane.chunks_exact(w).enumerate() {
            let dst = &mut staged[((y + at[0]) * cols + at[1]) * ch + c..];
            for (x, &val) in row.iter().enumerate() {
                dst[x * ch] = val;
            }
        }
    }
}

/// Fills `v` (`[16][n][channels]`, `n` = tiles of the block) with `Bᵀ d B` of every 4×4 input
/// tile `d` of `images` (`[images, channels, h, w]`), zeros outside the input. One axis of
/// `Bᵀ d B` is `[d0 − d2, d1 + d2, d2 − d1, d1 − d3]`.
#[inline(never)]
fn input_transform(v: &mut [f32], images: &[f32], t: &Tiling, n: usize, s: &mut TransformScratch) {
    let ch = t.channels;
    let (rows, cols) = (2 * t.th + 2, 2 * t.tw + 2);
    s.partial.resize(XI * ch, 0.0);
    let per_image = ch * t.h * t.w;
    for (img, planes) in images.chunks_exact(per_image).enumerate() {
        stage(&mut s.staged, planes, ch, [t.h, t.w], [rows, cols], t.pad);
        for ty in 0..t.th {
            for tx in 0..t.tw {
                let tile = img * t.tiles_per_image() + ty * t.tw + tx;
                let d = |r: usize, c: usize| &s.staged[((2 * ty + r) * cols + 2 * tx + c) * ch..][..ch];
                // Down the columns first: partial[4i + c] = row i of Bᵀ d, column c.
                for c in 0..4 {
                    let p = &mut s.partial;
                    sub(&mut p[c * ch..][..ch], d(0, c), d(2, c));
                    add(&mut p[(4 + c) * ch..][..ch], d(1, c), d(2, c));
                    sub(&mut p[(8 + c) * ch..][..ch], d(2, c), d(1, c));
                    sub(&mut p[(12 + c) * ch..][..ch], d(1, c), d(3, c));
                }
                let p = |xi: usize| &s.partial[xi * ch..][..ch];
                for i in 0..4 {
                    let row = 4 * i;
                    sub(&mut v[(row * n + tile) * ch..][..ch], p(row), p(row + 2));
                    add(&mut v[((row + 1) * n + tile) * ch..][..ch], p(row + 1), p(row + 2));
                    sub(&mut v[((row + 2) * n + tile) * ch..][..ch], p(row + 2), p(row + 1));
                    sub(&mut v[((row + 3) * n + tile) * ch..][..ch], p(row + 1), p(row + 3));
                }
            }
        }
    }
}

/// Fills `dm` (`[16][n][out_channels]`) with `A dY Aᵀ` of every 2×2 output-gradient tile of
/// `grads` (`[images, out_channels, oh, ow]`); positions past an odd edge count as zero. One
/// axis of `A dY Aᵀ` is `[y0, y0 + y1, y0 − y1, −y1]` (the adjoint of the output transform).
#[inline(never)]
fn output_grad_transform(dm: &mut [f32], grads: &[f32], t: &Tiling, n: usize, s: &mut TransformScratch) {
    let ch = t.out_channels;
    let (rows, cols) = (2 * t.th, 2 * t.tw);
    s.partial.resize(8 * ch, 0.0);
    let per_image = ch * t.oh * t.ow;
    for (img, planes) in grads.chunks_exact(per_image).enumerate() {
        stage(&mut s.staged, planes, ch, [t.oh, t.ow], [rows, cols], [0, 0]);
        for ty in 0..t.th {
            for tx in 0..t.tw {
                let tile = img * t.tiles_per_image() + ty * t.tw + tx;
                let y = |r: usize, c: usize| &s.staged[((2 * ty + r) * cols + 2 * tx + c) * ch..][..ch];
                // partial[4r + j]: row r of dY times Aᵀ, column j.
                for r in 0..2 {
                    let p = &mut s.partial;
                    p[4 * r * ch..][..ch].copy_from_slice(y(r, 0));
                    add(&mut p[(4 * r + 1) * ch..][..ch], y(r, 0), y(r, 1));
                    sub(&mut p[(4 * r + 2) * ch..][..ch], y(r, 0), y(r, 1));
                    neg(&mut p[(4 * r + 3) * ch..][..ch], y(r, 1));
                }
                let p = |i: usize| &s.partial[i * ch..][..ch];
                for j in 0..4 {
                    let (top, bottom) = (p(j), p(4 + j));
                    dm[(j * n + tile) * ch..][..ch].copy_from_slice(top);
                    add(&mut dm[((4 + j) * n + tile) * ch..][..ch], top, bottom);
                    sub(&mut dm[((8 + j) * n + tile) * ch..][..ch], top, bottom);
                    neg(&mut dm[((12 + j) * n + tile) * ch..][..ch], bottom);
                }
            }
        }
    }
}

/// Writes `Aᵀ M A` (+ bias) of every tile of the block (`m`: `[16][n][out_channels]`) into `out`
/// (`[images, out_channels, oh, ow]`), dropping positions past an odd edge. One axis of
/// `Aᵀ M A` is `[m0 + m1 + m2, m1 − m2 − m3]`.
#[inline(never)]
fn output_transform(out: &mut [f32], m: &[f32], bias: Option<&[f32]>, t: &Tiling, n: usize, s: &mut TransformScratch) {
    let ch = t.out_channels;
    s.partial.resize(12 * ch, 0.0);
    let plane = t.oh * t.ow;
    for (img, dst) in out.chunks_exact_mut(ch * plane).enumerate() {
        for ty in 0..t.th {
            for tx in 0..t.tw {
                let tile = img * t.tiles_per_image() + ty * t.tw + tx;
                let mv = |xi: usize| &m[(xi * n + tile) * ch..][..ch];
                // partial[2i + c]: row i of M times A, column c.
                let (rows, y) = s.partial.split_at_mut(8 * ch);
                for i in 0..4 {
                    let r = 4 * i;
                    add3(&mut rows[2 * i * ch..][..ch], mv(r), mv(r + 1), mv(r + 2));
                    sub2(&mut rows[(2 * i + 1) * ch..][..ch], mv(r + 1), mv(r + 2), mv(r + 3));
                }
                let row = |i: usize| &rows[i * ch..][..ch];
                for c in 0..2 {
                    add3(&mut y[c * ch..][..ch], row(c), row(2 + c), row(4 + c));
                    sub2(&mut y[(2 + c) * ch..][..ch], row(2 + c), row(4 + c), row(6 + c));
                }
                for a in 0..2 {
                    let oy = 2 * ty + a;
                    for c in 0..2 {
                        let ox = 2 * tx + c;
                        if oy >= t.oh || ox >= t.ow {
                            continue;
                        }
                        let vals = &y[(2 * a + c) * ch..][..ch];
                        let at = oy * t.ow + ox;
                        match bias {
                            Some(b) => {
                                for (k, (&val, &bk)) in vals.iter().zip(b).enumerate() {
                                    dst[k * plane + at] = val + bk;
                                }
                            }
                            None => {
                                for (k, &val) in vals.iter().enumerate() {
                                    dst[k * plane + at] = val;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A matrix operand: `data[i·row_stride + j·col_stride]` is element `(i, j)`.
struct Operand<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

/// The destination of a product: `data[i·row_stride + j·col_stride]` is element `(i, j)`.
struct Destination<'a> {
    data: &'a mut [f32],
    row_stride: usize,
    col_stride: usize,
}

/// `dst [m, n] = lhs [m, k] · rhs [k, n]`, single-threaded (the blocks are the parallel unit).
#[inline(never)]
fn matmul(dst: Destination, lhs: Operand, rhs: Operand, m: usize, k: usize, n: usize) {
    let last = |rs: usize, cs: usize, rows: usize, cols: usize| (rows - 1) * rs + (cols - 1) * cs;
    if m == 0 || n == 0 {
        return;
    }
    assert!(k > 0 && last(dst.row_stride, dst.col_stride, m, n) < dst.data.len());
    assert!(last(lhs.row_stride, lhs.col_stride, m, k) < lhs.data.len());
    assert!(last(rhs.row_stride, rhs.col_stride, k, n) < rhs.data.len());
    // SAFETY: the asserts above bound every element gemm touches: the largest index written
    // in `dst` and read from each operand is below its slice's length. `dst` is a unique
    // borrow, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.col_stride as isize,
            dst.row_stride as isize,
            false,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The block of images `block` covers: `images_per_block` images from `block · images_per_block`.
fn block_images(t: &Tiling, block: usize) -> core::ops::Range<usize> {
    let per = t.images_per_block();
    let start = block * per;
    start..(start + per).min(t.batch)
}

/// Runs `f(block, scratch)` for every block, in parallel when rayon is on; `scratch` is
/// per-thread and reused across blocks.
fn for_each_block<S: Send, R: Send>(
    blocks: usize,
    scratch: impl Fn() -> S + Send + Sync,
    f: impl Fn(usize, &mut S) -> R + Send + Sync,
) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..blocks)
            .into_par_iter()
            .map_init(scratch, |s, b| f(b, s))
            .collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut s = scratch();
        (0..blocks).map(|b| f(b, &mut s)).collect()
    }
}

/// Per-thread buffers of the forward transform.
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    transform: TransformScratch,
}

/// `out [batch, out_channels, oh, ow]` = the 3×3 correlation of `x` with transformed kernels `u`
/// (`[16][out_channels][channels]`) + `bias`.
fn correlate(x: &[f32], t: &Tiling, u: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let per_image_out = t.out_channels * t.oh * t.ow;
    let per_image_in = t.channels * t.h * t.w;
    // Every element is overwritten by one block's output transform; the zero fill only makes
    // the buffer safe to hand out, and runs on all workers.
    let mut out = zeroed::<f32>(t.batch * per_image_out);
    let per = t.images_per_block();
    let max_n = per * t.tiles_per_image();
    let (c, k) = (t.channels, t.out_channels);
    let run = |block: usize, out_block: &mut [f32], s: &mut Scratch| {
        let images = block_images(t, block);
        let n = images.len() * t.tiles_per_image();
        let v = &mut s.v[..XI * n * c];
        let input = &x[images.start * per_image_in..images.end * per_image_in];
        input_transform(v, input, t, n, &mut s.transform);
        let m = &mut s.m[..XI * n * k];
        for (xi, (m_xi, v_xi)) in m.chunks_exact_mut(n * k).zip(v.chunks_exact(n * c)).enumerate() {
            // M_ξ [k, n] = U_ξ [k, c] · V_ξ [c, n]; V_ξ and M_ξ are stored tile-major.
            matmul(
                Destination { data: m_xi, row_stride: 1, col_stride: k },
                Operand { data: &u[xi * k * c..][..k * c], row_stride: c, col_stride: 1 },
                Operand { data: v_xi, row_stride: 1, col_stride: c },
                k,
                c,
                n,
            );
        }
        output_transform(out_block, m, bias, t, n, &mut s.transform);
    };
    let scratch = || Scratch {
        v: vec![0f32; XI * c * max_n],
        m: vec![0f32; XI * k * max_n],
        transform: TransformScratch::default(),
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(per * per_image_out)
            .enumerate()
            .for_each_init(scratch, |s, (b, dst)| run(b, dst, s));
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut s = scratch();
        for (b, dst) in out.chunks_mut(per * per_image_out).enumerate() {
            run(b, dst, &mut s);
        }
    }
    out
}

/// The convolution of `x` by `weight` (+ `bias`); [`applies`] must hold.
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
    let t = Tiling::new([xs[0], xs[1], xs[2], xs[3]], ws[0], options.padding_begin());
    let u = transform_weights(weight.storage(), ws[0], ws[1], false);
    let bias = bias.map(|b| b.to_contiguous());
    let out = correlate(x.storage(), &t, &u, bias.as_ref().map(|b| b.storage()));
    FlexTensor::new(
        Bytes::from_elems(out),
        Layout::contiguous(Shape::from(vec![t.batch, t.out_channels, t.oh, t.ow])),
        DType::F32,
    )
}

/// The input gradient of `conv2d(x, weight)` given `output_grad`; [`applies`] must hold for the
/// forward convolution. It is the correlation of the output gradient with the kernel turned
/// 180° and its channel axes swapped, padded by `2 − p`.
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
    let pad = options.padding_begin().map(|p| 2 - p);
    let t = Tiling::new([gs[0], gs[1], gs[2], gs[3]], ws[1], pad);
    debug_assert!(t.oh == x_shape[2] && t.ow == x_shape[3]);
    let u = transform_weights(weight.storage(), ws[0], ws[1], true);
    let dx = correlate(grad.storage(), &t, &u, None);
    FlexTensor::new(
        Bytes::from_elems(dx),
        Layout::contiguous(Shape::from(x_shape.to_vec())),
        DType::F32,
    )
}

/// Per-thread buffers of the weight gradient.
struct GradScratch {
    v: Vec<f32>,
    dm: Vec<f32>,
    transform: TransformScratch,
}

/// The weight gradient of `conv2d(x, weight)` given `output_grad`; [`applies`] must hold.
pub(crate) fn conv2d_weight_grad_f32(
    x: FlexTensor,
    weight_shape: &[usize],
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let grad = output_grad.to_contiguous();
    let xs = x.layout().shape();
    let (k, c) = (weight_shape[0], weight_shape[1]);
    let t = Tiling::new([xs[0], xs[1], xs[2], xs[3]], k, options.padding_begin());
    let x_data: &[f32] = x.storage();
    let g_data: &[f32] = grad.storage();
    let per = t.images_per_block();
    let blocks = t.batch.div_ceil(per);
    let max_n = per * t.tiles_per_image();
    let per_image_in = c * t.h * t.w;
    let per_image_out = k * t.oh * t.ow;
    // One `[16][k][c]` partial sum per block, added in block order below.
    let partials = for_each_block(
        blocks,
        || GradScratch {
            v: vec![0f32; XI * c * max_n],
            dm: vec![0f32; XI * k * max_n],
            transform: TransformScratch::default(),
        },
        |block, s| {
            let images = block_images(&t, block);
            let n = images.len() * t.tiles_per_image();
            let v = &mut s.v[..XI * n * c];
            let input = &x_data[images.start * per_image_in..images.end * per_image_in];
            input_transform(v, input, &t, n, &mut s.transform);
            let dm = &mut s.dm[..XI * n * k];
            let grads = &g_data[images.start * per_image_out..images.end * per_image_out];
            output_grad_transform(dm, grads, &t, n, &mut s.transform);
            let mut du = vec![0f32; XI * k * c];
            for (xi, du_xi) in du.chunks_exact_mut(k * c).enumerate() {
                // dU_ξ [k, c] = dM_ξ [k, n] · V_ξᵀ [n, c]; dM_ξ and V_ξ are stored tile-major.
                matmul(
                    Destination { data: du_xi, row_stride: c, col_stride: 1 },
                    Operand { data: &dm[xi * n * k..][..n * k], row_stride: 1, col_stride: k },
                    Operand { data: &v[xi * n * c..][..n * c], row_stride: c, col_stride: 1 },
                    k,
                    n,
                    c,
                );
            }
            du
        },
    );
    let du = sum_in_order(&partials, XI * k * c);
    // dW = Gᵀ dU G per (out, in) pair.
    let mut dw = vec![0f32; k * c * 9];
    let output_channel = |kk: usize, dst: &mut [f32]| {
        for (cc, dst) in dst.chunks_exact_mut(9).enumerate() {
            let at = |xi: usize| du[(xi * k + kk) * c + cc];
            let rows: [[f32; 3]; 4] = core::array::from_fn(|r| {
                kernel_grad_1d([at(4 * r), at(4 * r + 1), at(4 * r + 2), at(4 * r + 3)])
            });
            for col in 0..3 {
                let g = kernel_grad_1d([rows[0][col], rows[1][col], rows[2][col], rows[3][col]]);
                for (row, val) in g.into_iter().enumerate() {
                    dst[row * 3 + col] = val;
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        dw.par_chunks_mut(c * 9).enumerate().for_each(|(kk, dst)| output_channel(kk, dst));
    }
    #[cfg(not(feature = "rayon"))]
    for (kk, dst) in dw.chunks_mut(c * 9).enumerate() {
        output_channel(kk, dst);
    }
    FlexTensor::new(
        Bytes::from_elems(dw),
        Layout::contiguous(Shape::from(weight_shape.to_vec())),
        DType::F32,
    )
}

/// The element-wise sum of `parts` (each `len` long), added in the order of `parts` for every
/// element whatever the thread count; ranges of elements go to different workers.
fn sum_in_order(parts: &[Vec<f32>], len: usize) -> Vec<f32> {
    let mut sum = vec![0f32; len];
    let add_range = |start: usize, dst: &mut [f32]| {
        for part in parts {
            for (d, &p) in dst.iter_mut().zip(&part[start..]) {
                *d += p;
            }
        }
    };
    const RANGE: usize = 4096;
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        sum.par_chunks_mut(RANGE).enumerate().for_each(|(i, dst)| add_range(i * RANGE, dst));
    }
    #[cfg(not(feature = "rayon"))]
    for (i, dst) in sum.chunks_mut(RANGE).enumerate() {
        add_range(i * RANGE, dst);
    }
    sum
}
