//! Gradient check of every differentiable operation against central finite differences.
//!
//! For an operation `f` with inputs `x₁..xₖ` (all parameters), the checked scalar is
//! `L = Σ f(x) ⊙ R` with `R` a fixed pseudo-random tensor, so every output element contributes
//! with a different weight. The analytic gradient (engine `backward`) is compared with
//! `(L(x + εeᵢ) − L(x − εeᵢ)) / 2ε` for every element of every input. f32 throughout, so the
//! step is ε = 1e-2 and the tolerance relative to the gradient's scale; inputs for ReLU and
//! pooling are kept away from kinks and ties.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chiron_engine::{Conv2dOptions, Engine, Pool2dOptions, Result, TensorId};
use common::{distinct, engine, numel, values};

type Op<'a> = dyn Fn(&mut Engine, &[TensorId]) -> Result<TensorId> + 'a;

struct Case<'a> {
    name: &'a str,
    inputs: Vec<(Vec<u32>, Vec<f32>)>,
    f: &'a Op<'a>,
}

/// `L` at `vals`, and the analytic gradients if asked.
fn eval(case: &Case, vals: &[Vec<f32>], grads: bool) -> (f64, Vec<Vec<f32>>) {
    let mut e = engine(1);
    let ids: Vec<TensorId> = case
        .inputs
        .iter()
        .zip(vals)
        .map(|((s, _), v)| e.parameter_from_data(s, v).unwrap())
        .collect();
    let y = (case.f)(&mut e, &ids).unwrap_or_else(|err| panic!("{}: {err:?}", case.name));
    let shape = e.shape(y).unwrap();
    let r = e
        .from_data(&shape, &values(numel(&shape), 99, -1.0, 1.0))
        .unwrap();
    let w = e.mul(y, r).unwrap();
    let l = e.sum(w, None, false).unwrap();
    let value = f64::from(e.item(l).unwrap());
    let mut out = Vec::new();
    if grads {
        e.backward(l).unwrap();
        for (id, (s, _)) in ids.iter().zip(&case.inputs) {
            out.push(
                e.gradient(*id)
                    .unwrap()
                    .unwrap_or_else(|| vec![0.0; numel(s)]),
            );
        }
    }
    (value, out)
}

fn check(case: Case) {
    let base: Vec<Vec<f32>> = case.inputs.iter().map(|(_, v)| v.clone()).collect();
    let (_, analytic) = eval(&case, &base, true);
    let eps = 1e-2f32;
    let scale = analytic
        .iter()
        .flatten()
        .fold(1.0f32, |m, g| m.max(g.abs()));
    let tol = 1.5e-2 * scale;
    assert!(
        analytic.iter().flatten().any(|g| g.abs() > 1e-3),
        "{}: all analytic gradients are zero",
        case.name
    );
    let mut compared = 0usize;
    for (k, input) in base.iter().enumerate() {
        for i in 0..input.len() {
            let mut plus = base.clone();
            plus[k][i] += eps;
            let mut minus = base.clone();
            minus[k][i] -= eps;
            let numeric = (eval(&case, &plus, false).0 - eval(&case, &minus, false).0)
                / (2.0 * f64::from(eps));
            let a = f64::from(analytic[k][i]);
            assert!(
                (a - numeric).abs() <= f64::from(tol),
                "{}: input {k} element {i}: analytic {a}, numeric {numeric} (tol {tol})",
                case.name
            );
            compared += 1;
        }
    }
    assert_eq!(compared, base.iter().map(Vec::len).sum::<usize>());
}

/// The harness itself catches a wrong gradient: `x ⊙ detach(x)` has derivative `2x`, but the
/// engine (correctly) reports `x` because the second factor is a constant.
#[test]
#[should_panic(expected = "analytic")]
fn harness_detects_a_wrong_gradient() {
    check(Case {
        name: "x * detach(x)",
        inputs: vec![rand_input(&[3], 1)],
        f: &|e, x| {
            let d = e.detach(x[0])?;
            e.mul(x[0], d)
        },
    });
}

fn rand_input(shape: &[u32], seed: u64) -> (Vec<u32>, Vec<f32>) {
    (shape.to_vec(), values(numel(shape), seed, -1.0, 1.0))
}

fn positive_input(shape: &[u32], seed: u64) -> (Vec<u32>, Vec<f32>) {
    (shape.to_vec(), values(numel(shape), seed, 0.5, 2.0))
}

fn distinct_input(shape: &[u32], seed: u64) -> (Vec<u32>, Vec<f32>) {
    (shape.to_vec(), distinct(numel(shape), seed, 0.05))
}

#[test]
fn elementwise_with_broadcasting() {
    let pairs: [(&[u32], &[u32]); 4] = [
        (&[2, 3], &[2, 3]),
        (&[2, 3], &[3]),
        (&[2, 1, 3], &[4, 1]),
        (&[1, 3], &[2, 1]),
    ];
    for (sa, sb) in pairs {
        check(Case {
            name: "add",
            inputs: vec![rand_input(sa, 1), rand_input(sb, 2)],
            f: &|e, x| e.add(x[0], x[1]),
        });
        check(Case {
            name: "sub",
            inputs: vec![rand_input(sa, 3), rand_input(sb, 4)],
            f: &|e, x| e.sub(x[0], x[1]),
        });
        check(Case {
            name: "mul",
            inputs: vec![rand_input(sa, 5), rand_input(sb, 6)],
            f: &|e, x| e.mul(x[0], x[1]),
        });
        check(Case {
            name: "div",
            inputs: vec![rand_input(sa, 7), positive_input(sb, 8)],
            f: &|e, x| e.div(x[0], x[1]),
        });
    }
    check(Case {
        name: "affine",
        inputs: vec![rand_input(&[2, 3], 9)],
        f: &|e, x| e.affine(x[0], -1.5, 0.25),
    });
}

#[test]
fn matmul_and_linear() {
    check(Case {
        name: "matmul 2d",
        inputs: vec![rand_input(&[2, 3], 1), rand_input(&[3, 4], 2)],
        f: &|e, x| e.matmul(x[0], x[1]),
    });
    check(Case {
        name: "matmul batched broadcast",
        inputs: vec![rand_input(&[2, 2, 3], 3), rand_input(&[3, 2], 4)],
        f: &|e, x| e.matmul(x[0], x[1]),
    });
    check(Case {
        name: "linear",
        inputs: vec![
            rand_input(&[2, 3], 5),
            rand_input(&[4, 3], 6),
            rand_input(&[4], 7),
        ],
        f: &|e, x| e.linear(x[0], x[1], Some(x[2])),
    });
    check(Case {
        name: "linear rank 3 no bias",
        inputs: vec![rand_input(&[2, 2, 3], 8), rand_input(&[2, 3], 9)],
        f: &|e, x| e.linear(x[0], x[1], None),
    });
    check(Case {
        name: "linear rank 1",
        inputs: vec![
            rand_input(&[3], 10),
            rand_input(&[2, 3], 11),
            rand_input(&[2], 12),
        ],
        f: &|e, x| e.linear(x[0], x[1], Some(x[2])),
    });
}

#[test]
fn conv2d() {
    check(Case {
        name: "conv2d stride 2 pad 1 groups 2",
        inputs: vec![
            rand_input(&[2, 4, 5, 5], 1),
            rand_input(&[6, 2, 3, 3], 2),
            rand_input(&[6], 3),
        ],
        f: &|e, x| {
            e.conv2d(
                x[0],
                x[1],
                Some(x[2]),
                Conv2dOptions {
                    stride: [2, 2],
                    padding: [1, 1],
                    dilation: [1, 1],
                    groups: 2,
                },
            )
        },
    });
    check(Case {
        name: "conv2d dilation 2 no bias, rectangular",
        inputs: vec![rand_input(&[1, 2, 6, 5], 4), rand_input(&[3, 2, 2, 3], 5)],
        f: &|e, x| {
            e.conv2d(
                x[0],
                x[1],
                None,
                Conv2dOptions {
                    stride: [1, 2],
                    padding: [0, 1],
                    dilation: [2, 1],
                    groups: 1,
                },
            )
        },
    });
}

#[test]
fn pooling() {
    check(Case {
        name: "max_pool2d 2x2",
        inputs: vec![distinct_input(&[2, 2, 4, 4], 1)],
        f: &|e, x| {
            e.max_pool2d(
                x[0],
                Pool2dOptions {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                },
            )
        },
    });
    check(Case {
        name: "max_pool2d 3x3 stride 2 pad 1",
        inputs: vec![distinct_input(&[1, 2, 5, 5], 2)],
        f: &|e, x| {
            e.max_pool2d(
                x[0],
                Pool2dOptions {
                    kernel: [3, 3],
                    stride: [2, 2],
                    padding: [1, 1],
                },
            )
        },
    });
    check(Case {
        name: "avg_pool2d 3x3 stride 2 pad 1",
        inputs: vec![rand_input(&[1, 2, 5, 5], 3)],
        f: &|e, x| {
            e.avg_pool2d(
                x[0],
                Pool2dOptions {
                    kernel: [3, 3],
                    stride: [2, 2],
                    padding: [1, 1],
                },
            )
        },
    });
    check(Case {
        name: "adaptive_avg_pool2d",
        inputs: vec![rand_input(&[2, 2, 5, 5], 4)],
        f: &|e, x| e.adaptive_avg_pool2d(x[0], [2, 3]),
    });
}

#[test]
fn batch_norm_train() {
    for shape in [&[4u32, 3, 2, 2][..], &[5, 3]] {
        check(Case {
            name: "batch_norm train",
            inputs: vec![
                rand_input(shape, 1),
                positive_input(&[3], 2),
                rand_input(&[3], 3),
            ],
            f: &|e, x| {
                let rm = e.buffer(&[3], 0.0)?;
                let rv = e.buffer(&[3], 1.0)?;
                e.batch_norm(x[0], x[1], x[2], rm, rv, true, 0.1, 1e-5)
            },
        });
    }
    check(Case {
        name: "batch_norm eval",
        inputs: vec![
            rand_input(&[4, 3, 2, 2], 4),
            positive_input(&[3], 5),
            rand_input(&[3], 6),
        ],
        f: &|e, x| {
            let rm = e.buffer(&[3], 0.2)?;
            let rv = e.buffer(&[3], 1.5)?;
            e.batch_norm(x[0], x[1], x[2], rm, rv, false, 0.1, 1e-5)
        },
    });
}

#[test]
fn activations() {
    check(Case {
        name: "relu",
        inputs: vec![distinct_input(&[3, 4], 1)],
        f: &|e, x| e.relu(x[0]),
    });
    check(Case {
        name: "gelu",
        inputs: vec![rand_input(&[3, 4], 2)],
        f: &|e, x| e.gelu(x[0]),
    });
    check(Case {
        name: "sigmoid",
        inputs: vec![rand_input(&[3, 4], 3)],
        f: &|e, x| e.sigmoid(x[0]),
    });
    check(Case {
        name: "tanh",
        inputs: vec![rand_input(&[3, 4], 4)],
        f: &|e, x| e.tanh(x[0]),
    });
    for axis in [0, 1] {
        check(Case {
            name: "softmax",
            inputs: vec![rand_input(&[3, 4], 5)],
            f: &|e, x| e.softmax(x[0], axis),
        });
        check(Case {
            name: "log_softmax",
            inputs: vec![rand_input(&[3, 4], 6)],
            f: &|e, x| e.log_softmax(x[0], axis),
        });
    }
}

#[test]
fn losses() {
    check(Case {
        name: "cross_entropy",
        inputs: vec![rand_input(&[4, 5], 1)],
        f: &|e, x| {
            let labels = e.from_data(&[4], &[0.0, 4.0, 2.0, 2.0])?;
            e.cross_entropy(x[0], labels)
        },
    });
    check(Case {
        name: "mse",
        inputs: vec![rand_input(&[3, 4], 2), rand_input(&[3, 4], 3)],
        f: &|e, x| e.mse(x[0], x[1]),
    });
    check(Case {
        name: "mse broadcast",
        inputs: vec![rand_input(&[3, 4], 4), rand_input(&[4], 5)],
        f: &|e, x| e.mse(x[0], x[1]),
    });
}

#[test]
fn shape_ops() {
    check(Case {
        name: "reshape",
        inputs: vec![rand_input(&[2, 3, 2], 1)],
        f: &|e, x| {
            let r = e.reshape(x[0], &[3, -1])?;
            // Make the output depend on position, not only on the multiset of values.
            let w = e.from_data(&[3, 4], &values(12, 7, 0.5, 1.5))?;
            e.mul(r, w)
        },
    });
    check(Case {
        name: "flatten",
        inputs: vec![rand_input(&[2, 3, 2], 2)],
        f: &|e, x| e.flatten(x[0], 1),
    });
    check(Case {
        name: "transpose then matmul",
        inputs: vec![rand_input(&[2, 3, 4], 3), rand_input(&[3, 2], 4)],
        f: &|e, x| {
            let t = e.transpose(x[0], 1, 2)?;
            e.matmul(t, x[1])
        },
    });
    check(Case {
        name: "concat",
        inputs: vec![
            rand_input(&[2, 3], 5),
            rand_input(&[2, 2], 6),
            rand_input(&[2, 1], 7),
        ],
        f: &|e, x| e.concat(&[x[0], x[1], x[2]], 1),
    });
    check(Case {
        name: "concat axis 0",
        inputs: vec![rand_input(&[1, 3], 8), rand_input(&[2, 3], 9)],
        f: &|e, x| e.concat(&[x[0], x[1]], 0),
    });
}

#[test]
fn reductions_and_normalize() {
    for (axis, keep) in [
        (None, false),
        (Some(0), false),
        (Some(1), true),
        (Some(2), false),
    ] {
        check(Case {
            name: "mean",
            inputs: vec![rand_input(&[2, 3, 4], 1)],
            f: &|e, x| e.mean(x[0], axis, keep),
        });
        check(Case {
            name: "sum",
            inputs: vec![rand_input(&[2, 3, 4], 2)],
            f: &|e, x| e.sum(x[0], axis, keep),
        });
    }
    check(Case {
        name: "normalize_channels",
        inputs: vec![rand_input(&[2, 3, 2, 2], 3)],
        f: &|e, x| e.normalize_channels(x[0], &[0.1, -0.2, 0.3], &[0.5, 2.0, 1.5]),
    });
    check(Case {
        name: "dropout eval is identity",
        inputs: vec![rand_input(&[2, 3], 4)],
        f: &|e, x| e.dropout(x[0], 0.5, false),
    });
}

#[test]
fn composite_cnn_block() {
    // conv → batch norm → relu → max pool → flatten → linear → cross-entropy, end to end.
    check(Case {
        name: "cnn block",
        inputs: vec![
            rand_input(&[2, 1, 4, 4], 1),
            rand_input(&[2, 1, 3, 3], 2),
            positive_input(&[2], 3),
            rand_input(&[2], 4),
            rand_input(&[3, 8], 5),
        ],
        f: &|e, x| {
            let c = e.conv2d(
                x[0],
                x[1],
                None,
                Conv2dOptions {
                    stride: [1, 1],
                    padding: [1, 1],
                    dilation: [1, 1],
                    groups: 1,
                },
            )?;
            let rm = e.buffer(&[2], 0.0)?;
            let rv = e.buffer(&[2], 1.0)?;
            let b = e.batch_norm(c, x[2], x[3], rm, rv, true, 0.1, 1e-5)?;
            let r = e.gelu(b)?;
            let p = e.avg_pool2d(
                r,
                Pool2dOptions {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                },
            )?;
            let f = e.flatten(p, 1)?;
            let logits = e.linear(f, x[4], None)?;
            let labels = e.from_data(&[2], &[2.0, 0.0])?;
            e.cross_entropy(logits, labels)
        },
    });
}
