//! F(4×4, 3×3): 4×4 outputs from 6×6 inputs, 36 products per tile (4× fewer than direct),
//! with the interpolation points 0, ±1, ±2 (Lavin & Gray's matrices):
//!
//! `Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0],
//!        [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]]`,
//! `G = [[¼, 0, 0], [−⅙, −⅙, −⅙], [−⅙, ⅙, −⅙], [1/24, 1/12, ⅙], [1/24, −1/12, ⅙], [0, 0, 1]]`,
//! `Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]]`.
//!
//! The larger constants cost accuracy against F(2×2, 3×3): in an f32 simulation over 64 input
//! channels the largest error relative to the output's scale was 1.7e-5 (F(2×2): 6.8e-7;
//! direct summation: 2.4e-7), the usual price of this variant and well inside the tolerance of
//! chiron-engine's `tests/convolution.rs` against a direct f64 reference; Fashion-MNIST training
//! reached the same test accuracy. In exchange the products, the largest share of a
//! convolutional network's step, shrink by another 44 %.

use super::vector::{Lane, Transform1d, transform};
use super::{Planes, Tile, Variant};

/// The F(4×4, 3×3) algorithm.
pub(super) struct F4;

const SIXTH: f32 = 1.0 / 6.0;
const TWELFTH: f32 = 1.0 / 12.0;
const TWENTY_FOURTH: f32 = 1.0 / 24.0;

/// Element `i` of `G g`.
#[inline(always)]
fn kernel_1d(g: [f32; 3], i: usize) -> f32 {
    match i {
        0 => 0.25 * g[0],
        1 => -SIXTH * (g[0] + g[1] + g[2]),
        2 => -SIXTH * (g[0] - g[1] + g[2]),
        3 => TWENTY_FOURTH * g[0] + TWELFTH * g[1] + SIXTH * g[2],
        4 => TWENTY_FOURTH * g[0] - TWELFTH * g[1] + SIXTH * g[2],
        _ => g[2],
    }
}

/// `Gᵀ u` (the adjoint of `kernel_1d`).
#[inline(always)]
fn kernel_grad_1d(u: [f32; 6]) -> [f32; 3] {
    let (s12, d12) = (u[1] + u[2], u[2] - u[1]);
    let (s34, d34) = (u[3] + u[4], u[3] - u[4]);
    [
        0.25 * u[0] - SIXTH * s12 + TWENTY_FOURTH * s34,
        SIXTH * d12 + TWELFTH * d34,
        SIXTH * (s34 - s12) + u[5],
    ]
}

/// One axis of `Bᵀ d B`: the rows of `Bᵀ` applied to `d`, sharing the common terms.
struct InputAxis;

impl Transform1d<6, 6> for InputAxis {
    #[inline(always)]
    fn apply<V: Lane>(d: [V; 6]) -> [V; 6] {
        let a = d[4] - d[2] * 4.0;
        let b = d[3] - d[1] * 4.0;
        let c = d[4] - d[2];
        let e = (d[1] - d[3]) * 2.0;
        [
            d[0] * 4.0 - d[2] * 5.0 + d[4],
            a + b,
            a - b,
            c - e,
            c + e,
            d[1] * 4.0 - d[3] * 5.0 + d[5],
        ]
    }
}

/// One axis of `A dY Aᵀ`: the columns of `Aᵀ` applied to `y`.
struct OutputGradAxis;

impl Transform1d<4, 6> for OutputGradAxis {
    #[inline(always)]
    fn apply<V: Lane>(y: [V; 4]) -> [V; 6] {
        let p = y[0] + y[2];
        let q = y[1] + y[3];
        let p4 = y[0] + y[2] * 4.0;
        let q4 = y[1] * 2.0 + y[3] * 8.0;
        [y[0], p + q, p - q, p4 + q4, p4 - q4, y[3]]
    }
}

/// One axis of `Aᵀ M A`: the rows of `Aᵀ` applied to `m`.
struct OutputAxis;

impl Transform1d<6, 4> for OutputAxis {
    #[inline(always)]
    fn apply<V: Lane>(m: [V; 6]) -> [V; 4] {
        let s1 = m[1] + m[2];
        let s2 = m[1] - m[2];
        let s3 = m[3] + m[4];
        let s4 = m[3] - m[4];
        [m[0] + s1 + s3, s2 + s4 * 2.0, s1 + s3 * 4.0, s2 + s4 * 8.0 + m[5]]
    }
}

impl Variant for F4 {
    const M: usize = 4;
    const XI: usize = 36;
    const BLOCK_TILES: usize = 64;

    fn kernel_transform(g: &[f32; 9], out: &mut [f32]) {
        // Each row of `g` times `Gᵀ`, then each column of that times `G`.
        let rows: [[f32; 6]; 3] =
            core::array::from_fn(|r| core::array::from_fn(|j| kernel_1d([g[3 * r], g[3 * r + 1], g[3 * r + 2]], j)));
        for (xi, o) in out.iter_mut().enumerate().take(36) {
            let j = xi % 6;
            *o = kernel_1d([rows[0][j], rows[1][j], rows[2][j]], xi / 6);
        }
    }

    fn kernel_grad(du: impl Fn(usize) -> f32) -> [f32; 9] {
        let rows: [[f32; 3]; 6] = core::array::from_fn(|r| kernel_grad_1d(core::array::from_fn(|j| du(6 * r + j))));
        let mut g = [0.0; 9];
        for col in 0..3 {
            let c = kernel_grad_1d(core::array::from_fn(|r| rows[r][col]));
            for (row, val) in c.into_iter().enumerate() {
                g[row * 3 + col] = val;
            }
        }
        g
    }

    fn input_tile(d: Tile<'_>, v: &mut [f32], at: Planes, partial: &mut [f32]) {
        let ch = at.ch;
        // Down the columns first: partial[6i + c] = row i of Bᵀ d, column c.
        for c in 0..6 {
            let dst = core::array::from_fn(|i| (6 * i + c) * ch);
            transform::<InputAxis, 6, 6>(partial, dst, core::array::from_fn(|r| d.at(r, c)), ch);
        }
        let p = |i: usize| &partial[i * ch..][..ch];
        for i in 0..6 {
            let dst = core::array::from_fn(|j| at.offset(6 * i + j));
            transform::<InputAxis, 6, 6>(v, dst, core::array::from_fn(|j| p(6 * i + j)), ch);
        }
    }

    fn output_grad_tile(y: Tile<'_>, dm: &mut [f32], at: Planes, partial: &mut [f32]) {
        let ch = at.ch;
        // partial[6a + j]: row a of dY times Aᵀ, column j.
        for a in 0..4 {
            let dst = core::array::from_fn(|j| (6 * a + j) * ch);
            transform::<OutputGradAxis, 4, 6>(partial, dst, core::array::from_fn(|b| y.at(a, b)), ch);
        }
        let p = |i: usize| &partial[i * ch..][..ch];
        for j in 0..6 {
            let dst = core::array::from_fn(|i| at.offset(6 * i + j));
            transform::<OutputGradAxis, 4, 6>(dm, dst, core::array::from_fn(|a| p(6 * a + j)), ch);
        }
    }

    fn output_tile(m: &[f32], at: Planes, y: &mut [f32], partial: &mut [f32]) {
        let ch = at.ch;
        let mv = |xi: usize| &m[at.offset(xi)..][..ch];
        // partial[4i + b]: row i of M times A, column b.
        for i in 0..6 {
            let dst = core::array::from_fn(|b| (4 * i + b) * ch);
            transform::<OutputAxis, 6, 4>(partial, dst, core::array::from_fn(|j| mv(6 * i + j)), ch);
        }
        let row = |i: usize| &partial[i * ch..][..ch];
        for b in 0..4 {
            let dst = core::array::from_fn(|a| (4 * a + b) * ch);
            transform::<OutputAxis, 6, 4>(y, dst, core::array::from_fn(|i| row(4 * i + b)), ch);
        }
    }
}
