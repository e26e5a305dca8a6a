//! Every convolution path of the engine against a direct reference computed in f64: the forward
//! output, the input gradient, the weight gradient and the bias gradient of
//! `L = Σ conv2d(x, w, b) ⊙ R`.
//!
//! The engine picks a kernel by shape (Winograd F(2×2, 3×3) for 3×3 stride-1 layers with at
//! least 8 channels each side, one matrix product per sample for other single-group layers,
//! burn's generic kernels otherwise), so the cases below are chosen to land on each, including
//! odd output sizes (partial Winograd tiles), every padding a 3×3 kernel allows, and batches
//! that span several work blocks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chiron_engine::Conv2dOptions;
use common::{engine, values};

struct Case {
    name: &'static str,
    /// `[batch, channels, h, w]`.
    x: [usize; 4],
    /// `[out, channels / groups, kh, kw]`.
    w: [usize; 4],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

struct Results {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
}

impl Case {
    fn out_size(&self) -> [usize; 2] {
        let o = |i: usize| {
            (self.x[i + 2] + 2 * self.padding[i] - self.dilation[i] * (self.w[i + 2] - 1) - 1)
                / self.stride[i]
                + 1
        };
        [o(0), o(1)]
    }

    fn y_len(&self) -> usize {
        let [oh, ow] = self.out_size();
        self.x[0] * self.w[0] * oh * ow
    }

    fn inputs(&self) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = values(self.x.iter().product(), 1, -1.0, 1.0);
        let w = values(self.w.iter().product(), 2, -0.5, 0.5);
        let b = values(self.w[0], 3, -1.0, 1.0);
        let r = values(self.y_len(), 4, -1.0, 1.0);
        (x, w, b, r)
    }

    /// The direct definition, in f64.
    fn reference(&self) -> Results {
        let (x, w, b, r) = self.inputs();
        let [n, c, h, wd] = self.x;
        let [k, cg, kh, kw] = self.w;
        let [oh, ow] = self.out_size();
        let kg = k / self.groups;
        let mut y = vec![0f64; self.y_len()];
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; w.len()];
        let mut db = vec![0f64; k];
        for bi in 0..n {
            for ko in 0..k {
                let grp = ko / kg;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let yi = ((bi * k + ko) * oh + oy) * ow + ox;
                        let mut acc = f64::from(b[ko]);
                        let rv = f64::from(r[yi]);
                        for ci in 0..cg {
                            let cin = grp * cg + ci;
                            for u in 0..kh {
                                for v in 0..kw {
                                    let iy = (oy * self.stride[0] + u * self.dilation[0]) as isize
                                        - self.padding[0] as isize;
                                    let ix = (ox * self.stride[1] + v * self.dilation[1]) as isize
                                        - self.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((bi * c + cin) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((ko * cg + ci) * kh + u) * kw + v;
                                    acc += f64::from(x[xi]) * f64::from(w[wi]);
                                    dx[xi] += rv * f64::from(w[wi]);
                                    dw[wi] += rv * f64::from(x[xi]);
                                }
                            }
                        }
                        y[yi] = acc;
                        db[ko] += rv;
                    }
                }
            }
        }
        Results { y, dx, dw, db }
    }

    fn engine(&self) -> Results {
        let (x, w, b, r) = self.inputs();
        let dims = |s: &[usize]| s.iter().map(|&d| d as u32).collect::<Vec<u32>>();
        let [oh, ow] = self.out_size();
        let mut e = engine(0);
        let xt = e.parameter_from_data(&dims(&self.x), &x).unwrap();
        let wt = e.parameter_from_data(&dims(&self.w), &w).unwrap();
        let bt = e.parameter_from_data(&[self.w[0] as u32], &b).unwrap();
        let y = e
            .conv2d(
                xt,
                wt,
                Some(bt),
                Conv2dOptions {
                    stride: self.stride.map(|v| v as u32),
                    padding: self.padding.map(|v| v as u32),
                    dilation: self.dilation.map(|v| v as u32),
                    groups: self.groups as u32,
                },
            )
            .unwrap();
        let rt = e
            .from_data(&dims(&[self.x[0], self.w[0], oh, ow]), &r)
            .unwrap();
        let weighted = e.mul(y, rt).unwrap();
        let l = e.sum(weighted, None, false).unwrap();
        let yv = e.to_vec(y).unwrap();
        e.backward(l).unwrap();
        let grad = |e: &chiron_engine::Engine, id| {
            e.gradient(id)
                .unwrap()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect()
        };
        Results {
            y: yv.into_iter().map(f64::from).collect(),
            dx: grad(&e, xt),
            dw: grad(&e, wt),
            db: grad(&e, bt),
        }
    }
}

/// `got` equals `want` up to f32 rounding of sums of `terms` products: the tolerance scales with
/// the largest reference magnitude.
fn assert_close(case: &str, what: &str, got: &[f64], want: &[f64], terms: usize) {
    assert_eq!(got.len(), want.len(), "{case}: {what} length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let tol = 4e-7 * (terms as f64).sqrt().max(1.0) * scale * 8.0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{case}: {what}[{i}] = {g}, reference {w} (tolerance {tol:e})"
        );
    }
}

fn check(case: Case) {
    let want = case.reference();
    let got = case.engine();
    let [oh, ow] = case.out_size();
    let per_output = case.w[1] * case.w[2] * case.w[3];
    assert_close(case.name, "output", &got.y, &want.y, per_output);
    assert_close(
        case.name,
        "input gradient",
        &got.dx,
        &want.dx,
        case.w[0] * case.w[2] * case.w[3],
    );
    assert_close(
        case.name,
        "weight gradient",
        &got.dw,
        &want.dw,
        case.x[0] * oh * ow,
    );
    assert_close(
        case.name,
        "bias gradient",
        &got.db,
        &want.db,
        case.x[0] * oh * ow,
    );
}

fn three_by_three(name: &'static str, x: [usize; 4], out: usize, padding: usize) -> Case {
    Case {
        name,
        x,
        w: [out, x[1], 3, 3],
        stride: [1, 1],
        padding: [padding, padding],
        dilation: [1, 1],
        groups: 1,
    }
}

#[test]
fn winograd_layers_match_the_direct_definition() {
    for padding in 0..=2 {
        check(three_by_three(
            "3x3 pad p, odd sizes",
            [3, 8, 7, 6],
            9,
            padding,
        ));
    }
    // 16×16 outputs: 64 tiles per image, two images per block, the last block partial.
    check(three_by_three("3x3 two blocks", [3, 16, 16, 16], 8, 1));
    // 2×2 images: one tile each, many images per block, several blocks (F(2×2, 3×3): the
    // larger tiles would mostly fall past the edge; every other case here takes F(4×4, 3×3)).
    check(three_by_three("3x3 tiny images", [70, 8, 2, 2], 12, 1));
    // Two output rows: F(2×2, 3×3) with several tiles per row and an odd last column.
    check(three_by_three("3x3 two rows", [4, 9, 2, 13], 10, 1));
    // Rectangular, wider than tall, more outputs than inputs.
    check(three_by_three("3x3 rectangular", [2, 10, 3, 9], 24, 1));
}

#[test]
fn other_single_group_layers_match_the_direct_definition() {
    // First layer on RGB input: too few channels for Winograd.
    check(three_by_three("3x3 rgb", [2, 3, 9, 9], 8, 1));
    // A single image (a one-image prediction): im2col with its product split over the pool.
    check(three_by_three("3x3 one image", [1, 16, 9, 7], 12, 1));
    check(Case {
        name: "5x5 stride 2",
        x: [2, 8, 11, 10],
        w: [8, 8, 5, 5],
        stride: [2, 2],
        padding: [2, 1],
        dilation: [1, 1],
        groups: 1,
    });
    check(Case {
        name: "3x3 dilation 2",
        x: [2, 8, 9, 9],
        w: [8, 8, 3, 3],
        stride: [1, 1],
        padding: [2, 2],
        dilation: [2, 2],
        groups: 1,
    });
}

#[test]
fn grouped_layers_match_the_direct_definition() {
    check(Case {
        name: "3x3 two groups",
        x: [2, 16, 6, 6],
        w: [16, 8, 3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 2,
    });
}
