//! Forward values of operations against results computed by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use chiron_engine::{Conv2dOptions, Engine, Pool2dOptions, TensorId};
use common::engine;

fn close(got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
    }
}

fn grid(e: &mut Engine, shape: &[u32], start: f32) -> TensorId {
    let n: usize = shape.iter().map(|&d| d as usize).product();
    let v: Vec<f32> = (0..n).map(|i| start + i as f32).collect();
    e.from_data(shape, &v).unwrap()
}

const POOL2: Pool2dOptions = Pool2dOptions {
    kernel: [2, 2],
    stride: [2, 2],
    padding: [0, 0],
};
const POOL3P1: Pool2dOptions = Pool2dOptions {
    kernel: [3, 3],
    stride: [2, 2],
    padding: [1, 1],
};

#[test]
fn conv2d_tiny() {
    let mut e = engine(0);
    // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,0],[0,-1]], bias 0.5.
    let x = grid(&mut e, &[1, 1, 3, 3], 1.0);
    let w = e.from_data(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, -1.0]).unwrap();
    let b = e.from_data(&[1], &[0.5]).unwrap();
    let o = Conv2dOptions {
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
    };
    let y = e.conv2d(x, w, Some(b), o).unwrap();
    assert_eq!(e.shape(y).unwrap(), vec![1, 1, 2, 2]);
    close(&e.to_vec(y).unwrap(), &[-3.5; 4], 1e-6);
    // Padding 1, stride 2: windows at (-1,-1), (-1,1), (1,-1), (1,1).
    let y = e
        .conv2d(
            x,
            w,
            Some(b),
            Conv2dOptions {
                stride: [2, 2],
                padding: [1, 1],
                ..o
            },
        )
        .unwrap();
    close(&e.to_vec(y).unwrap(), &[-0.5, -2.5, -6.5, -3.5], 1e-6);
    // Groups: two channels (all 1, all 2), one 1x1 filter each (3 and 5).
    let x2 = e
        .from_data(&[1, 2, 2, 2], &[1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0])
        .unwrap();
    let w2 = e.from_data(&[2, 1, 1, 1], &[3.0, 5.0]).unwrap();
    let y = e
        .conv2d(x2, w2, None, Conv2dOptions { groups: 2, ..o })
        .unwrap();
    close(
        &e.to_vec(y).unwrap(),
        &[3.0, 3.0, 3.0, 3.0, 10.0, 10.0, 10.0, 10.0],
        1e-6,
    );
    // Dilation 2 on a 3x3 input with a 2x2 kernel reads the four corners.
    let y = e
        .conv2d(
            x,
            w,
            None,
            Conv2dOptions {
                dilation: [2, 2],
                ..o
            },
        )
        .unwrap();
    close(&e.to_vec(y).unwrap(), &[1.0 - 9.0], 1e-6);
}

#[test]
fn pooling() {
    let mut e = engine(0);
    let x = grid(&mut e, &[1, 1, 4, 4], 0.0);
    let y = e.max_pool2d(x, POOL2).unwrap();
    close(&e.to_vec(y).unwrap(), &[5.0, 7.0, 13.0, 15.0], 0.0);
    let y = e.max_pool2d(x, POOL3P1).unwrap();
    close(&e.to_vec(y).unwrap(), &[5.0, 7.0, 13.0, 15.0], 0.0);
    let y = e.avg_pool2d(x, POOL2).unwrap();
    close(&e.to_vec(y).unwrap(), &[2.5, 4.5, 10.5, 12.5], 1e-6);
    // Padded zeros count: the corner window holds 0, 1, 4, 5 and five zeros.
    let y = e.avg_pool2d(x, POOL3P1).unwrap();
    let v = e.to_vec(y).unwrap();
    assert!((v[0] - 10.0 / 9.0).abs() < 1e-6, "{v:?}");
    // Window (0, 2): rows -1..=1, cols 1..=3 → 1+2+3+5+6+7 = 24.
    assert!((v[1] - 24.0 / 9.0).abs() < 1e-6, "{v:?}");
    let y = e.adaptive_avg_pool2d(x, [1, 1]).unwrap();
    close(&e.to_vec(y).unwrap(), &[7.5], 1e-6);
    let y = e.adaptive_avg_pool2d(x, [2, 2]).unwrap();
    close(&e.to_vec(y).unwrap(), &[2.5, 4.5, 10.5, 12.5], 1e-6);
    // 4 → 3 windows (PyTorch): [0,2), [1,3), [2,4) on each axis.
    let y = e.adaptive_avg_pool2d(x, [3, 3]).unwrap();
    let v = e.to_vec(y).unwrap();
    close(&v[..3], &[2.5, 3.5, 4.5], 1e-6);
}

#[test]
fn losses_and_activations() {
    let mut e = engine(0);
    let ln3 = 3f32.ln();
    let logits = e.from_data(&[2, 2], &[0.0, 0.0, ln3, 0.0]).unwrap();
    let labels = e.from_data(&[2], &[0.0, 1.0]).unwrap();
    let ce = e.cross_entropy(logits, labels).unwrap();
    assert_eq!(e.shape(ce).unwrap(), vec![1]);
    // (ln 2 + ln 4) / 2.
    assert!((e.item(ce).unwrap() - 1.5 * 2f32.ln()).abs() < 1e-6);

    let x = e.from_data(&[3], &[1.0, 2.0, 3.0]).unwrap();
    let s = e.softmax(x, 0).unwrap();
    let z: f32 = [1f32, 2.0, 3.0].iter().map(|v| v.exp()).sum();
    close(
        &e.to_vec(s).unwrap(),
        &[1f32.exp() / z, 2f32.exp() / z, 3f32.exp() / z],
        1e-6,
    );
    let ls = e.log_softmax(x, 0).unwrap();
    close(
        &e.to_vec(ls).unwrap(),
        &[1.0 - z.ln(), 2.0 - z.ln(), 3.0 - z.ln()],
        1e-5,
    );

    let a = e.from_data(&[2], &[1.0, 2.0]).unwrap();
    let b = e.from_data(&[2], &[0.0, 4.0]).unwrap();
    let m = e.mse(a, b).unwrap();
    assert!((e.item(m).unwrap() - 2.5).abs() < 1e-6);

    let v = e.from_data(&[4], &[-1.0, 0.0, 1.0, 2.0]).unwrap();
    let r = e.relu(v).unwrap();
    close(&e.to_vec(r).unwrap(), &[0.0, 0.0, 1.0, 2.0], 0.0);
    let g = e.gelu(v).unwrap();
    close(
        &e.to_vec(g).unwrap(),
        &[-0.158_655_26, 0.0, 0.841_344_7, 1.954_499_7],
        1e-5,
    );
    let sg = e.sigmoid(v).unwrap();
    close(
        &e.to_vec(sg).unwrap(),
        &[0.268_941_43, 0.5, 0.731_058_6, 0.880_797_1],
        1e-6,
    );
    let th = e.tanh(v).unwrap();
    close(
        &e.to_vec(th).unwrap(),
        &[-0.761_594_2, 0.0, 0.761_594_2, 0.964_027_6],
        1e-6,
    );
}

#[test]
fn linear_matmul_and_shapes() {
    let mut e = engine(0);
    let x = e.from_data(&[1, 2], &[1.0, 2.0]).unwrap();
    let w = e
        .from_data(&[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
        .unwrap();
    let b = e.from_data(&[3], &[0.0, 0.0, 1.0]).unwrap();
    let y = e.linear(x, w, Some(b)).unwrap();
    assert_eq!(e.shape(y).unwrap(), vec![1, 3]);
    close(&e.to_vec(y).unwrap(), &[1.0, 2.0, 4.0], 1e-6);

    // [2, 1, 2] · [2, 1] broadcasts the batch: rows [1,2] and [3,4] times [1, 1]ᵀ.
    let a = e.from_data(&[2, 1, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let c = e.from_data(&[2, 1], &[1.0, 1.0]).unwrap();
    let y = e.matmul(a, c).unwrap();
    assert_eq!(e.shape(y).unwrap(), vec![2, 1, 1]);
    close(&e.to_vec(y).unwrap(), &[3.0, 7.0], 1e-6);

    let g = grid(&mut e, &[2, 3], 0.0);
    let t = e.transpose(g, 0, 1).unwrap();
    assert_eq!(e.shape(t).unwrap(), vec![3, 2]);
    close(&e.to_vec(t).unwrap(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0], 0.0);
    // Shape operations on a transposed (strided) tensor see the transposed order.
    let tr = e.reshape(t, &[-1]).unwrap();
    close(&e.to_vec(tr).unwrap(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0], 0.0);
    let tf = e.flatten(t, 0).unwrap();
    close(&e.to_vec(tf).unwrap(), &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0], 0.0);
    let tc = e.concat(&[t, t], 1).unwrap();
    close(
        &e.to_vec(tc).unwrap(),
        &[0.0, 3.0, 0.0, 3.0, 1.0, 4.0, 1.0, 4.0, 2.0, 5.0, 2.0, 5.0],
        0.0,
    );
    let r = e.reshape(g, &[-1]).unwrap();
    assert_eq!(e.shape(r).unwrap(), vec![6]);
    let f = e.flatten(g, 0).unwrap();
    assert_eq!(e.shape(f).unwrap(), vec![6]);
    let cat = e.concat(&[g, g], 0).unwrap();
    assert_eq!(e.shape(cat).unwrap(), vec![4, 3]);
    let s = e.sum(g, Some(1), false).unwrap();
    close(&e.to_vec(s).unwrap(), &[3.0, 12.0], 0.0);
    let s = e.sum(g, Some(0), true).unwrap();
    assert_eq!(e.shape(s).unwrap(), vec![1, 3]);
    close(&e.to_vec(s).unwrap(), &[3.0, 5.0, 7.0], 0.0);
    let m = e.mean(g, None, false).unwrap();
    assert_eq!(e.shape(m).unwrap(), vec![1]);
    assert_eq!(e.item(m).unwrap(), 2.5);
    let one = e.from_data(&[3], &[1.0, 5.0, 2.0]).unwrap();
    let m = e.mean(one, Some(0), false).unwrap();
    assert_eq!(e.shape(m).unwrap(), vec![1]);
    let am = e.argmax(one, 0).unwrap();
    assert_eq!(e.to_vec(am).unwrap(), vec![1.0]);
    let am = e.argmax(g, 1).unwrap();
    assert_eq!(e.shape(am).unwrap(), vec![2]);
    assert_eq!(e.to_vec(am).unwrap(), vec![2.0, 2.0]);
    let aff = e.affine(one, 2.0, -1.0).unwrap();
    close(&e.to_vec(aff).unwrap(), &[1.0, 9.0, 3.0], 0.0);
    let n = e
        .normalize_channels(g, &[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0])
        .unwrap();
    close(
        &e.to_vec(n).unwrap(),
        &[-1.0, -0.5, -0.25, 2.0, 1.0, 0.5],
        1e-6,
    );
}

#[test]
fn batch_norm_running_statistics() {
    let mut e = engine(0);
    let x = e.from_data(&[2, 1], &[1.0, 3.0]).unwrap();
    let g = e.parameter_from_data(&[1], &[1.0]).unwrap();
    let b = e.parameter_from_data(&[1], &[0.0]).unwrap();
    let rm = e.buffer(&[1], 0.0).unwrap();
    let rv = e.buffer(&[1], 1.0).unwrap();
    let y = e.batch_norm(x, g, b, rm, rv, true, 0.1, 1e-5).unwrap();
    let s = (1.0f32 + 1e-5).sqrt();
    close(&e.to_vec(y).unwrap(), &[-1.0 / s, 1.0 / s], 1e-6);
    // Running mean 0.9·0 + 0.1·2; running var 0.9·1 + 0.1·2 (unbiased variance of {1, 3}).
    close(&e.to_vec(rm).unwrap(), &[0.2], 1e-6);
    close(&e.to_vec(rv).unwrap(), &[1.1], 1e-6);
    // Eval uses the running statistics.
    let y = e.batch_norm(x, g, b, rm, rv, false, 0.1, 1e-5).unwrap();
    let s = (1.1f32 + 1e-5).sqrt();
    close(
        &e.to_vec(y).unwrap(),
        &[(1.0 - 0.2) / s, (3.0 - 0.2) / s],
        1e-5,
    );
}

#[test]
fn dropout_masks() {
    let mut e = engine(5);
    let x = e.full(&[100, 100], 1.0).unwrap();
    let y = e.dropout(x, 0.25, true).unwrap();
    let v = e.to_vec(y).unwrap();
    let zeros = v.iter().filter(|&&a| a == 0.0).count();
    assert!((2200..2800).contains(&zeros), "{zeros}");
    assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.75).abs() < 1e-6));
    let y = e.dropout(x, 0.25, false).unwrap();
    assert!(e.to_vec(y).unwrap().iter().all(|&a| a == 1.0));
}
