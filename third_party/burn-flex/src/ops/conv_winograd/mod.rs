//! 3×3 stride-1 convolutions of f32 tensors by Winograd's minimal filtering F(m×m, 3×3): the
//! forward pass, the input gradient and the weight gradient (a Chiron patch of burn-flex 0.22.1;
//! see CHIRON.md).
//!
//! Each m×m block of outputs comes from an (m+2)×(m+2) block of input `d` as
//! `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`: (m+2)² multiplications per input channel instead of 9m².
//! Summed over input channels the element-wise products become (m+2)² matrix products,
//! `M_ξ = U_ξ · V_ξ` (`U_ξ` `[out, in]` from the weights, `V_ξ` `[in, tiles]` from the input),
//! so the products that dominate a convolutional network's step shrink 2.25× with F(2×2, 3×3)
//! ([`f2`]) and 4× with F(4×4, 3×3) ([`f4`]) (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016). The shape picks the variant ([`Choice`]): F(4×4)
//! unless most of its tiles would fall past the image's edge. Work goes in blocks of whole
//! images small enough that a block's transformed input and products stay in cache.
//!
//! The gradients come from the same identity, exactly: the input gradient is the forward
//! transform applied to the output gradient with the kernel flipped and its channel axes swapped;
//! the weight gradient is `Gᵀ [Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B)] G`. Results differ from a direct
//! convolution by rounding alone.
//!
//! Deterministic whatever the thread count: the variant and the blocks are fixed by the shapes,
//! every output element is written by one block, and the weight gradient's per-block sums are
//! added in block order.
//!
//! The transforms and the product are kept out of line (`inline(never)`): a profile then shows
//! each one's share, which is how the layout here was chosen, at no measurable cost.

mod f2;
mod f4;
mod vector;

use vector::LANES;

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::ops::parallel::zeroed;
use crate::{FlexTensor, Layout};

/// Below this many channels on either side the products are too thin to pay for the
/// transforms; such layers (typically the first, on RGB input) keep the im2col path.
const MIN_CHANNELS: usize = 8;

/// Whether the Winograd path applies: 4-D f32, a batch of at least two, one group, 3×3 kernel,
/// stride and dilation 1, symmetric padding of at most 2 (so the input gradient is itself such a
/// convolution), at least `MIN_CHANNELS` channels in and out, and a non-empty output.
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
    // A single sample is one block, run on one core; im2col splits its product instead.
    options.groups == 1
        && xs[0] >= 2
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

/// One algorithm F(m×m, 3×3): tiles of `M × M` outputs computed from `(M + 2)²` inputs.
trait Variant {
    /// Outputs per tile side (m).
    const M: usize;
    /// Transformed elements per tile (`(M + 2)²`): one matrix product each.
    const XI: usize;
    /// Tiles per block at least (whole images are added until a block has this many): enough
    /// columns for efficient products, few enough that a block's data stays in a core's L2.
    const BLOCK_TILES: usize;
    /// `G g Gᵀ` (row-major, `XI` values, into `out`) of a row-major 3×3 kernel `g`.
    fn kernel_transform(g: &[f32; 9], out: &mut [f32]);
    /// `Gᵀ dU G`, row-major 3×3, from the transformed kernel gradient `dU` (`du(ξ)`).
    fn kernel_grad(du: impl Fn(usize) -> f32) -> [f32; 9];
    /// Writes `Bᵀ d B` of the input tile `d` into `v` (element ξ at `at.offset(ξ)`); `partial`
    /// holds at least `XI` vectors.
    fn input_tile(d: Tile<'_>, v: &mut [f32], at: Planes, partial: &mut [f32]);
    /// Writes `A dY Aᵀ` of the output-gradient tile `y` into `dm` (element ξ at
    /// `at.offset(ξ)`); `partial` holds at least `XI` vectors.
    fn output_grad_tile(y: Tile<'_>, dm: &mut [f32], at: Planes, partial: &mut [f32]);
    /// Writes `Aᵀ M A` of one tile of `m` (element ξ at `at.offset(ξ)`) into `y`, output
    /// `(a, b)` of the tile at vector `a·M + b`; `partial` holds at least `XI` vectors.
    fn output_tile(m: &[f32], at: Planes, y: &mut [f32], partial: &mut [f32]);
}

/// One tile of a channels-last staged image: the vector of channels at tile row `r`, column `c`.
#[derive(Clone, Copy)]
struct Tile<'a> {
    data: &'a [f32],
    /// Offset of the tile's top-left vector.
    base: usize,
    /// Floats per staged row.
    row_len: usize,
    ch: usize,
}

impl<'a> Tile<'a> {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> &'a [f32] {
        &self.data[self.base + r * self.row_len + c * self.ch..][..self.ch]
    }
}

/// Where one tile's transformed elements go in `[ξ][n][ch]` planes.
#[derive(Clone, Copy)]
struct Planes {
    /// Tiles in the block.
    n: usize,
    tile: usize,
    ch: usize,
}

impl Planes {
    #[inline(always)]
    fn offset(&self, xi: usize) -> usize {
        (xi * self.n + self.tile) * self.ch
    }
}

/// Which variant a convolution uses, fixed by its output size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    F2,
    F4,
}

impl Choice {
    /// F(4×4) unless its products (36 per tile, edge tiles counted whole) would not be clearly
    /// fewer than F(2×2)'s (16 per tile): tiny images keep F(2×2).
    fn for_output(oh: usize, ow: usize) -> Choice {
        let f2 = oh.div_ceil(2) * ow.div_ceil(2) * 16;
        let f4 = oh.div_ceil(4) * ow.div_ceil(4) * 36;
        if 5 * f4 < 4 * f2 { Choice::F4 } else { Choice::F2 }
    }
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
    /// Tile rows and columns per image (each tile: m×m outputs).
    th: usize,
    tw: usize,
    /// Tiles per block at least.
    block_tiles: usize,
}

impl Tiling {
    fn new<W: Variant>(input: [usize; 4], out_channels: usize, pad: [usize; 2]) -> Self {
        let [batch, channels, h, w] = input;
        let (oh, ow) = output_size(input, pad);
        Self {
            batch,
            channels,
            h,
            w,
            out_channels,
            pad,
            oh,
            ow,
            th: oh.div_ceil(W::M),
            tw: ow.div_ceil(W::M),
            block_tiles: W::BLOCK_TILES,
        }
    }

    fn tiles_per_image(&self) -> usize {
        self.th * self.tw
    }

    /// Whole images per block (fixed by the shape alone, never by the thread count): enough
    /// for `block_tiles`, but at most half the batch, so that a small batch still makes two
    /// blocks for two workers.
    fn images_per_block(&self) -> usize {
        self.block_tiles.div_ceil(self.tiles_per_image()).clamp(1, self.batch.div_ceil(2).max(1))
    }
}

/// Output height and width of a 3×3 stride-1 convolution of `input` padded by `pad`.
fn output_size(input: [usize; 4], pad: [usize; 2]) -> (usize, usize) {
    (input[2] + 2 * pad[0] - 2, input[3] + 2 * pad[1] - 2)
}

/// `U` `[XI][rows][cols]` for the product `M_ξ = U_ξ · V_ξ`. `flip` builds the input-gradient
/// kernel: rows are the weight's input channels, columns its output channels, the kernel turned
/// 180°. Each kernel is transformed once into `[rows·cols][XI]` (rows split over the workers),
/// then one task per `ξ` gathers its plane, writing in order.
fn transform_weights<W: Variant>(w: &[f32], out_channels: usize, in_channels: usize, flip: bool) -> Vec<f32> {
    let (rows, cols) = if flip {
        (in_channels, out_channels)
    } else {
        (out_channels, in_channels)
    };
    let pairs = rows * cols;
    let mut u = zeroed::<f32>(W::XI * pairs);
    if pairs == 0 {
        return u;
    }
    let mut by_kernel = zeroed::<f32>(pairs * W::XI);
    let transform_row = |r: usize, dst: &mut [f32]| {
        for (col, d) in dst.chunks_exact_mut(W::XI).enumerate() {
            let (k, c) = if flip { (col, r) } else { (r, col) };
            let src = &w[(k * in_channels + c) * 9..][..9];
            let g: [f32; 9] = core::array::from_fn(|i| if flip { src[8 - i] } else { src[i] });
            W::kernel_transform(&g, d);
        }
    };
    let gather = |xi: usize, dst: &mut [f32], by_kernel: &[f32]| {
        for (d, kernel) in dst.iter_mut().zip(by_kernel.chunks_exact(W::XI)) {
            *d = kernel[xi];
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        by_kernel
            .par_chunks_mut(cols * W::XI)
            .enumerate()
            .for_each(|(r, dst)| transform_row(r, dst));
        u.par_chunks_mut(pairs).enumerate().for_each(|(xi, dst)| gather(xi, dst, &by_kernel));
    }
    #[cfg(not(feature = "rayon"))]
    {
        for (r, dst) in by_kernel.chunks_mut(cols * W::XI).enumerate() {
            transform_row(r, dst);
        }
        for (xi, dst) in u.chunks_mut(pairs).enumerate() {
            gather(xi, dst, &by_kernel);
        }
    }
    u
}

/// Reusable per-thread buffers of the transforms.
#[derive(Default)]
struct TransformScratch {
    /// One image (or output gradient) channels-last with a zero border: `[rows][cols][ch]`.
    staged: Vec<f32>,
    /// Partial transforms of one tile: `XI` vectors of channels.
    partial: Vec<f32>,
    /// One tile's outputs: `M²` vectors of channels.
    y: Vec<f32>,
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
    // Eight channels at a time: eight sequential reads, one 32-byte write per position (one
    // channel at a time wrote single floats `ch` apart, a cache line each).
    let grouped = ch - ch % LANES;
    for (g, group) in planes[..grouped * h * w].chunks_exact(LANES * h * w).enumerate() {
        let mut rows: [&[f32]; LANES] = [&[]; LANES];
        for y in 0..h {
            for (row, plane) in rows.iter_mut().zip(group.chunks_exact(h * w)) {
                *row = &plane[y * w..][..w];
            }
            let dst_row = &mut staged[((y + at[0]) * cols + at[1]) * ch..][..w * ch];
            for (x, dst) in dst_row.chunks_exact_mut(ch).enumerate() {
                for (d, row) in dst[g * LANES..][..LANES].iter_mut().zip(&rows) {
                    *d = row[x];
                }
            }
        }
    }
    for (c, plane) in planes.chunks_exact(h * w).enumerate().skip(grouped) {
        for (y, row) in plane.chunks_exact(w).enumerate() {
            let dst = &mut staged[((y + at[0]) * cols + at[1]) * ch + c..];
            for (x, &val) in row.iter().enumerate() {
                dst[x * ch] = val;
            }
        }
    }
}

/// Fills `v` (`[XI][n][channels]`, `n` = tiles of the block) with `Bᵀ d B` of every input
/// tile `d` of `images` (`[images, channels, h, w]`), zeros outside the input.
#[inline(never)]
fn input_transform<W: Variant>(v: &mut [f32], images: &[f32], t: &Tiling, n: usize, s: &mut TransformScratch) {
    let ch = t.channels;
    let (rows, cols) = (W::M * t.th + 2, W::M * t.tw + 2);
    s.partial.resize(W::XI * ch, 0.0);
    let per_image = ch * t.h * t.w;
    for (img, planes) in images.chunks_exact(per_image).enumerate() {
        stage(&mut s.staged, planes, ch, [t.h, t.w], [rows, cols], t.pad);
        for ty in 0..t.th {
            for tx in 0..t.tw {
                let tile = img * t.tiles_per_image() + ty * t.tw + tx;
                let d = Tile {
                    data: &s.staged,
                    base: (W::M * ty * cols + W::M * tx) * ch,
                    row_len: cols * ch,
                    ch,
                };
                W::input_tile(d, v, Planes { n, tile, ch }, &mut s.partial);
            }
        }
    }
}

/// Fills `dm` (`[XI][n][out_channels]`) with `A dY Aᵀ` of every output-gradient tile of
/// `grads` (`[images, out_channels, oh, ow]`); positions past the edge count as zero.
#[inline(never)]
fn output_grad_transform<W: Variant>(dm: &mut [f32], grads: &[f32], t: &Tiling, n: usize, s: &mut TransformScratch) {
    let ch = t.out_channels;
    let (rows, cols) = (W::M * t.th, W::M * t.tw);
    s.partial.resize(W::XI * ch, 0.0);
    let per_image = ch * t.oh * t.ow;
    for (img, planes) in grads.chunks_exact(per_image).enumerate() {
        stage(&mut s.staged, planes, ch, [t.oh, t.ow], [rows, cols], [0, 0]);
        for ty in 0..t.th {
            for tx in 0..t.tw {
                let tile = img * t.tiles_per_image() + ty * t.tw + tx;
                let y = Tile {
                    data: &s.staged,
                    base: (W::M * ty * cols + W::M * tx) * ch,
                    row_len: cols * ch,
                    ch,
                };
                W::output_grad_tile(y, dm, Planes { n, tile, ch }, &mut s.partial);
            }
        }
    }
}

/// Writes `Aᵀ M A` (+ bias) of every tile of the block (`m`: `[XI][n][out_channels]`) into `out`
/// (`[images, out_channels, oh, ow]`), dropping positions past the edge.
#[inline(never)]
fn output_transform<W: Variant>(out: &mut [f32], m: &[f32], bias: Option<&[f32]>, t: &Tiling, n: usize, s: &mut TransformScratch) {
    let ch = t.out_channels;
    s.partial.resize(W::XI * ch, 0.0);
    s.y.resize(W::M * W::M * ch, 0.0);
    let plane = t.oh * t.ow;
    for (img, dst) in out.chunks_exact_mut(ch * plane).enumerate() {
        for ty in 0..t.th {
            for tx in 0..t.tw {
                let tile = img * t.tiles_per_image() + ty * t.tw + tx;
                W::output_tile(m, Planes { n, tile, ch }, &mut s.y, &mut s.partial);
                // Per channel, each tile row is a run of up to M neighbouring outputs.
                let (ox, row_len) = (W::M * tx, W::M.min(t.ow - W::M * tx));
                for a in 0..W::M.min(t.oh - W::M * ty) {
                    let row_start = (W::M * ty + a) * t.ow + ox;
                    let y_row = &s.y[a * W::M * ch..][..W::M * ch];
                    for (k, dst_plane) in dst.chunks_exact_mut(plane).enumerate() {
                        let b_k = bias.map_or(0.0, |b| b[k]);
                        let run = &mut dst_plane[row_start..][..row_len];
                        for (b, o) in run.iter_mut().enumerate() {
                            *o = y_row[b * ch + k] + b_k;
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

/// `out [batch, out_channels, oh, ow]` = the 3×3 correlation of `x` (`input`, padded by
/// `pad`) with `weight` (`[out, in, 3, 3]`; `flip`: read as the input-gradient kernel, see
/// [`transform_weights`]) + `bias`, by the variant the output size picks.
fn correlate(x: &[f32], input: [usize; 4], pad: [usize; 2], weight: &[f32], w_shape: [usize; 2], flip: bool, bias: Option<&[f32]>) -> (Vec<f32>, Tiling) {
    let (oh, ow) = output_size(input, pad);
    let [wk, wc] = w_shape;
    let out_channels = if flip { wc } else { wk };
    match Choice::for_output(oh, ow) {
        Choice::F2 => {
            let t = Tiling::new::<f2::F2>(input, out_channels, pad);
            let u = transform_weights::<f2::F2>(weight, wk, wc, flip);
            (correlate_with::<f2::F2>(x, &t, &u, bias), t)
        }
        Choice::F4 => {
            let t = Tiling::new::<f4::F4>(input, out_channels, pad);
            let u = transform_weights::<f4::F4>(weight, wk, wc, flip);
            (correlate_with::<f4::F4>(x, &t, &u, bias), t)
        }
    }
}

/// [`correlate`] with variant `W` and transformed kernels `u` (`[XI][out_channels][channels]`).
fn correlate_with<W: Variant>(x: &[f32], t: &Tiling, u: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
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
        let v = &mut s.v[..W::XI * n * c];
        let input = &x[images.start * per_image_in..images.end * per_image_in];
        input_transform::<W>(v, input, t, n, &mut s.transform);
        let m = &mut s.m[..W::XI * n * k];
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
        output_transform::<W>(out_block, m, bias, t, n, &mut s.transform);
    };
    let scratch = || Scratch {
        v: vec![0f32; W::XI * c * max_n],
        m: vec![0f32; W::XI * k * max_n],
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
    let input = [xs[0], xs[1], xs[2], xs[3]];
    let bias = bias.map(|b| b.to_contiguous());
    let (out, t) = correlate(
        x.storage(),
        input,
        options.padding_begin(),
        weight.storage(),
        [ws[0], ws[1]],
        false,
        bias.as_ref().map(|b| b.storage()),
    );
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
    let (dx, t) = correlate(grad.storage(), [gs[0], gs[1], gs[2], gs[3]], pad, weight.storage(), [ws[0], ws[1]], true, None);
    debug_assert!(t.oh == x_shape[2] && t.ow == x_shape[3]);
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
    let input = [xs[0], xs[1], xs[2], xs[3]];
    let pad = options.padding_begin();
    let (oh, ow) = output_size(input, pad);
    let dw = match Choice::for_output(oh, ow) {
        Choice::F2 => weight_grad_with::<f2::F2>(x.storage(), input, pad, weight_shape, grad.storage()),
        Choice::F4 => weight_grad_with::<f4::F4>(x.storage(), input, pad, weight_shape, grad.storage()),
    };
    FlexTensor::new(
        Bytes::from_elems(dw),
        Layout::contiguous(Shape::from(weight_shape.to_vec())),
        DType::F32,
    )
}

/// The weight gradient (`[out, in, 3, 3]`, row-major) with variant `W`.
fn weight_grad_with<W: Variant>(x_data: &[f32], input: [usize; 4], pad: [usize; 2], weight_shape: &[usize], g_data: &[f32]) -> Vec<f32> {
    let (k, c) = (weight_shape[0], weight_shape[1]);
    let t = Tiling::new::<W>(input, k, pad);
    let per = t.images_per_block();
    let blocks = t.batch.div_ceil(per);
    let max_n = per * t.tiles_per_image();
    let per_image_in = c * t.h * t.w;
    let per_image_out = k * t.oh * t.ow;
    // One `[XI][k][c]` partial sum per block, added in block order below.
    let partials = for_each_block(
        blocks,
        || GradScratch {
            v: vec![0f32; W::XI * c * max_n],
            dm: vec![0f32; W::XI * k * max_n],
            transform: TransformScratch::default(),
        },
        |block, s| {
            let images = block_images(&t, block);
            let n = images.len() * t.tiles_per_image();
            let v = &mut s.v[..W::XI * n * c];
            let input = &x_data[images.start * per_image_in..images.end * per_image_in];
            input_transform::<W>(v, input, &t, n, &mut s.transform);
            let dm = &mut s.dm[..W::XI * n * k];
            let grads = &g_data[images.start * per_image_out..images.end * per_image_out];
            output_grad_transform::<W>(dm, grads, &t, n, &mut s.transform);
            let mut du = vec![0f32; W::XI * k * c];
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
    let du = sum_in_order(&partials, W::XI * k * c);
    // dW = Gᵀ dU G per (out, in) pair.
    let mut dw = vec![0f32; k * c * 9];
    let output_channel = |kk: usize, dst: &mut [f32]| {
        for (cc, dst) in dst.chunks_exact_mut(9).enumerate() {
            dst.copy_from_slice(&W::kernel_grad(|xi| du[(xi * k + kk) * c + cc]));
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
    dw
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
