//! Tensor operations (the WIT `tensor` interface): validation first, then burn.
//!
//! Each operation computes its output shape from the input shapes with checked arithmetic,
//! rejects anything burn would panic on, checks the budgets for the output, and only then
//! runs the math inside the engine's worker pool.

use burn::tensor::Tensor;
use burn::tensor::activation;
use burn::tensor::module;
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};

use crate::api::{Conv2dOptions, EngineError, Pool2dOptions, Result, TensorId};
use crate::cost::flops;
use crate::dynt::{Dyn, MAX_RANK, Ranked, dyn_apply, dyn_map, dyn_zip};
use crate::engine::{Engine, Role};

/// Elementwise binary operations.
#[derive(Clone, Copy, Debug)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

/// Unary activations.
#[derive(Clone, Copy, Debug)]
enum Unary {
    Relu,
    Gelu,
    Sigmoid,
    Tanh,
}

/// The numpy broadcast of two shapes (aligned at the right; each pair equal or one of them
/// 1), or `None`.
pub(crate) fn broadcast_dims(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0usize; r];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        *o = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Brings `a` and `b` to the broadcast shape `out` (lifting rank, then expanding axes of
/// size 1), so burn sees two tensors of one shape.
fn aligned(a: Dyn, b: Dyn, out: &[usize]) -> (Dyn, Dyn) {
    let r = out.len();
    (a.lift(r).expand(out), b.lift(r).expand(out))
}

/// Output extent of a sliding window: `(input + 2·pad − dil·(k − 1) − 1) / stride + 1`, or
/// `None` if the window does not fit or an argument is zero.
fn window_out(input: usize, k: u32, stride: u32, pad: u32, dil: u32) -> Option<usize> {
    if k == 0 || stride == 0 || dil == 0 {
        return None;
    }
    let span = u64::from(dil)
        .checked_mul(u64::from(k) - 1)?
        .checked_add(1)?;
    let padded = (input as u64).checked_add(2 * u64::from(pad))?;
    if padded < span {
        return None;
    }
    usize::try_from((padded - span) / u64::from(stride) + 1).ok()
}

fn axis(axis: u32, rank: usize) -> Result<usize> {
    let a = axis as usize;
    if a < rank {
        Ok(a)
    } else {
        Err(EngineError::InvalidArgument)
    }
}

fn r1(d: Dyn) -> Result<Tensor<1>> {
    Tensor::<1>::from_dyn(d).ok_or(EngineError::InvalidShape)
}

fn r2(d: Dyn) -> Result<Tensor<2>> {
    Tensor::<2>::from_dyn(d).ok_or(EngineError::InvalidShape)
}

fn r4(d: Dyn) -> Result<Tensor<4>> {
    Tensor::<4>::from_dyn(d).ok_or(EngineError::InvalidShape)
}

fn cat<const D: usize>(xs: Vec<Dyn>, axis: usize) -> Option<Dyn>
where
    Tensor<D>: Ranked,
{
    let v: Option<Vec<Tensor<D>>> = xs.into_iter().map(Tensor::<D>::from_dyn).collect();
    Some(Tensor::cat(v?, axis).into_dyn())
}

/// `dims` with axis `a` removed (a one-element shape `[1]` if nothing would remain).
fn without_axis(dims: &[usize], a: usize) -> Vec<usize> {
    let mut d: Vec<usize> = dims.to_vec();
    d.remove(a);
    if d.is_empty() {
        d.push(1);
    }
    d
}

#[allow(clippy::too_many_arguments)]
impl Engine {
    fn binary(&mut self, a: TensorId, b: TensorId, op: Binary) -> Result<TensorId> {
        let (x, y) = (self.value(a)?, self.value(b)?);
        let out = broadcast_dims(&x.dims(), &y.dims()).ok_or(EngineError::InvalidShape)?;
        self.reserve_dims(&out)?;
        self.pooled(|e| {
            let (x, y) = aligned(x, y, &out);
            let v = match op {
                Binary::Add => dyn_zip!(x, y, p, q => p.add(q)),
                Binary::Sub => dyn_zip!(x, y, p, q => p.sub(q)),
                Binary::Mul => dyn_zip!(x, y, p, q => p.mul(q)),
                Binary::Div => dyn_zip!(x, y, p, q => p.div(q)),
            }
            .ok_or(EngineError::InvalidShape)?;
            e.output(v, &[a, b])
        })
    }

    fn unary(&mut self, x: TensorId, op: Unary) -> Result<TensorId> {
        let v = self.value(x)?;
        self.reserve_dims(&v.dims())?;
        self.pooled(|e| {
            let v = match op {
                Unary::Relu => dyn_map!(v, t => activation::relu(t)),
                Unary::Gelu => dyn_map!(v, t => activation::gelu(t)),
                Unary::Sigmoid => dyn_map!(v, t => activation::sigmoid(t)),
                Unary::Tanh => dyn_map!(v, t => activation::tanh(t)),
            };
            e.output(v, &[x])
        })
    }

    /// `a + b`, elementwise with numpy broadcasting.
    pub fn add(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.binary(a, b, Binary::Add)
    }

    /// `a - b`, elementwise with numpy broadcasting.
    pub fn sub(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.binary(a, b, Binary::Sub)
    }

    /// `a * b`, elementwise with numpy broadcasting.
    pub fn mul(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.binary(a, b, Binary::Mul)
    }

    /// `a / b`, elementwise with numpy broadcasting (IEEE semantics for division by zero).
    pub fn div(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        self.binary(a, b, Binary::Div)
    }

    /// `a * scale + shift`.
    pub fn affine(&mut self, a: TensorId, scale: f32, shift: f32) -> Result<TensorId> {
        let v = self.value(a)?;
        self.reserve_dims(&v.dims())?;
        self.pooled(|e| {
            let v = dyn_map!(v, t => t.mul_scalar(scale).add_scalar(shift));
            e.output(v, &[a])
        })
    }

    /// Batched matrix product over the last two axes: `a [.., m, k] · b [.., k, n]`, both of
    /// rank ≥ 2, batch axes broadcast.
    pub fn matmul(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        let (x, y) = (self.value(a)?, self.value(b)?);
        let (da, db) = (x.dims(), y.dims());
        if da.len() < 2 || db.len() < 2 {
            return Err(EngineError::InvalidShape);
        }
        let (m, k1) = (da[da.len() - 2], da[da.len() - 1]);
        let (k2, n) = (db[db.len() - 2], db[db.len() - 1]);
        if k1 != k2 {
            return Err(EngineError::InvalidShape);
        }
        let batch = broadcast_dims(&da[..da.len() - 2], &db[..db.len() - 2])
            .ok_or(EngineError::InvalidShape)?;
        let mut out = batch.clone();
        out.extend([m, n]);
        self.reserve_dims(&out)?;
        let mut cost = batch.clone();
        cost.extend([2, m, n, k1]);
        self.charge(flops(&cost), x.is_tracked() || y.is_tracked())?;
        let mut full_a = batch.clone();
        full_a.extend([m, k1]);
        let mut full_b = batch;
        full_b.extend([k2, n]);
        self.pooled(|e| {
            let r = out.len();
            let x = x.lift(r).expand(&full_a);
            let y = y.lift(r).expand(&full_b);
            let v = dyn_zip!(x, y, p, q => p.matmul(q)).ok_or(EngineError::InvalidShape)?;
            e.output(v, &[a, b])
        })
    }

    /// `x [.., in] · weight [out, in]ᵀ + bias [out]`.
    pub fn linear(
        &mut self,
        x: TensorId,
        weight: TensorId,
        bias: Option<TensorId>,
    ) -> Result<TensorId> {
        let (xv, wv) = (self.value(x)?, self.value(weight)?);
        let bv = bias.map(|b| self.value(b)).transpose()?;
        let (dx, dw) = (xv.dims(), wv.dims());
        let [out_f, in_f] = dw[..] else {
            return Err(EngineError::InvalidShape);
        };
        if dx.last() != Some(&in_f) {
            return Err(EngineError::InvalidShape);
        }
        if let Some(b) = &bv
            && b.dims() != [out_f]
        {
            return Err(EngineError::InvalidShape);
        }
        let mut out = dx.clone();
        if let Some(last) = out.last_mut() {
            *last = out_f;
        }
        self.reserve_dims(&out)?;
        let rows = dx[..dx.len() - 1].iter().product::<usize>();
        let tracked =
            xv.is_tracked() || wv.is_tracked() || bv.as_ref().is_some_and(Dyn::is_tracked);
        self.charge(flops(&[2, rows, in_f, out_f]), tracked)?;
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        self.pooled(|e| {
            let w = r2(wv)?.transpose();
            let b = bv.map(r1).transpose()?;
            let v = dyn_map!(xv, t => module::linear(t, w, b));
            e.output(v, &inputs)
        })
    }

    /// 2-D convolution: `x [n, c, h, w]`, `weight [out, c / groups, kh, kw]`, `bias [out]`.
    /// Strides, dilations and groups ≥ 1; groups divide `c` and `out`; the dilated kernel must
    /// fit the padded input.
    pub fn conv2d(
        &mut self,
        x: TensorId,
        weight: TensorId,
        bias: Option<TensorId>,
        options: Conv2dOptions,
    ) -> Result<TensorId> {
        let (xv, wv) = (self.value(x)?, self.value(weight)?);
        let bv = bias.map(|b| self.value(b)).transpose()?;
        let [n, c, h, w] = xv.dims()[..] else {
            return Err(EngineError::InvalidShape);
        };
        let [o, cg, kh, kw] = wv.dims()[..] else {
            return Err(EngineError::InvalidShape);
        };
        let Conv2dOptions {
            stride,
            padding,
            dilation,
            groups,
        } = options;
        if stride.contains(&0) || dilation.contains(&0) || groups == 0 {
            return Err(EngineError::InvalidArgument);
        }
        let g = groups as usize;
        if !c.is_multiple_of(g) || !o.is_multiple_of(g) {
            return Err(EngineError::InvalidArgument);
        }
        if cg.checked_mul(g) != Some(c) {
            return Err(EngineError::InvalidShape);
        }
        if let Some(b) = &bv
            && b.dims() != [o]
        {
            return Err(EngineError::InvalidShape);
        }
        let kh32 = u32::try_from(kh).map_err(|_| EngineError::InvalidShape)?;
        let kw32 = u32::try_from(kw).map_err(|_| EngineError::InvalidShape)?;
        let oh = window_out(h, kh32, stride[0], padding[0], dilation[0])
            .ok_or(EngineError::InvalidShape)?;
        let ow = window_out(w, kw32, stride[1], padding[1], dilation[1])
            .ok_or(EngineError::InvalidShape)?;
        let out = [n, o, oh, ow];
        self.reserve_dims(&out)?;
        let tracked =
            xv.is_tracked() || wv.is_tracked() || bv.as_ref().is_some_and(Dyn::is_tracked);
        self.charge(flops(&[2, n, o, oh, ow, cg, kh, kw]), tracked)?;
        let mut inputs = vec![x, weight];
        inputs.extend(bias);
        self.pooled(|e| {
            let opts = ConvOptions::new(
                stride.map(|s| s as usize),
                padding.map(|p| p as usize),
                dilation.map(|d| d as usize),
                g,
            );
            let v = module::conv2d(r4(xv)?, r4(wv)?, bv.map(r1).transpose()?, opts);
            e.output(Dyn::R4(v), &inputs)
        })
    }

    /// Checks pooling options against `x [n, c, h, w]`; returns the output shape. Kernel and
    /// stride ≥ 1, padding ≤ kernel / 2 (as PyTorch) and ≤ the input size
    /// (`InvalidArgument`); the window must fit the padded input (`InvalidShape`).
    fn pool_shape(dims: &[usize], o: &Pool2dOptions) -> Result<[usize; 4]> {
        let [n, c, h, w] = dims[..] else {
            return Err(EngineError::InvalidShape);
        };
        if o.kernel.contains(&0) || o.stride.contains(&0) {
            return Err(EngineError::InvalidArgument);
        }
        if o.padding[0] > o.kernel[0] / 2 || o.padding[1] > o.kernel[1] / 2 {
            return Err(EngineError::InvalidArgument);
        }
        // Padding wider than the input only adds empty windows; refusing it also bounds the
        // kernel (≤ input + 2·padding ≤ 3·input), and with it the work per output.
        if o.padding[0] as usize > h || o.padding[1] as usize > w {
            return Err(EngineError::InvalidArgument);
        }
        let oh = window_out(h, o.kernel[0], o.stride[0], o.padding[0], 1)
            .ok_or(EngineError::InvalidShape)?;
        let ow = window_out(w, o.kernel[1], o.stride[1], o.padding[1], 1)
            .ok_or(EngineError::InvalidShape)?;
        Ok([n, c, oh, ow])
    }

    /// 2-D max pooling of `x [n, c, h, w]` (padding counts as −∞).
    pub fn max_pool2d(&mut self, x: TensorId, options: Pool2dOptions) -> Result<TensorId> {
        let xv = self.value(x)?;
        let out = Self::pool_shape(&xv.dims(), &options)?;
        self.reserve_dims(&out)?;
        let [kh, kw] = options.kernel.map(|k| k as usize);
        self.charge(
            flops(&[out[0], out[1], out[2], out[3], kh, kw]),
            xv.is_tracked(),
        )?;
        self.pooled(|e| {
            let opts = MaxPoolOptions::new(options.kernel.map(|k| k as usize))
                .with_stride(options.stride.map(|s| s as usize))
                .with_padding(options.padding.map(|p| p as usize));
            let v = module::max_pool2d(r4(xv)?, opts);
            e.output(Dyn::R4(v), &[x])
        })
    }

    /// 2-D average pooling of `x [n, c, h, w]`; padded zeros count in the average (PyTorch's
    /// default `count_include_pad`).
    pub fn avg_pool2d(&mut self, x: TensorId, options: Pool2dOptions) -> Result<TensorId> {
        let xv = self.value(x)?;
        let out = Self::pool_shape(&xv.dims(), &options)?;
        self.reserve_dims(&out)?;
        let [kh, kw] = options.kernel.map(|k| k as usize);
        self.charge(
            flops(&[out[0], out[1], out[2], out[3], kh, kw]),
            xv.is_tracked(),
        )?;
        self.pooled(|e| {
            let opts = AvgPoolOptions::new(options.kernel.map(|k| k as usize))
                .with_stride(options.stride.map(|s| s as usize))
                .with_padding(options.padding.map(|p| p as usize))
                .with_count_include_pad(true);
            let v = module::avg_pool2d(r4(xv)?, opts);
            e.output(Dyn::R4(v), &[x])
        })
    }

    /// Average pooling of `x [n, c, h, w]` to `[n, c, oh, ow]` (PyTorch's adaptive windows);
    /// `1 <= oh <= h` and `1 <= ow <= w`.
    pub fn adaptive_avg_pool2d(&mut self, x: TensorId, output: [u32; 2]) -> Result<TensorId> {
        let xv = self.value(x)?;
        let [n, c, h, w] = xv.dims()[..] else {
            return Err(EngineError::InvalidShape);
        };
        let (oh, ow) = (output[0] as usize, output[1] as usize);
        if oh == 0 || ow == 0 || oh > h || ow > w {
            return Err(EngineError::InvalidArgument);
        }
        let out = [n, c, oh, ow];
        self.reserve_dims(&out)?;
        self.pooled(|e| {
            let v = module::adaptive_avg_pool2d(r4(xv)?, [oh, ow]);
            e.output(Dyn::R4(v), &[x])
        })
    }

    /// Batch normalisation over axis 1 of `x [n, c, ..]` (rank 2 to 5) with `gamma`, `beta`,
    /// `running_mean` and `running_var` of shape `[c]`; the running statistics must be
    /// distinct buffers (`InvalidArgument`).
    ///
    /// Training: normalises with the batch mean and biased variance, and updates the buffers
    /// in place: `running = (1 − momentum)·running + momentum·batch`, with the unbiased
    /// variance (as PyTorch). Needs more than one value per channel (`InvalidShape`).
    /// Eval: normalises with the running statistics. `momentum` in `[0, 1]`, `eps` > 0.
    pub fn batch_norm(
        &mut self,
        x: TensorId,
        gamma: TensorId,
        beta: TensorId,
        running_mean: TensorId,
        running_var: TensorId,
        training: bool,
        momentum: f32,
        eps: f32,
    ) -> Result<TensorId> {
        let xv = self.value(x)?;
        let (gv, bv) = (self.value(gamma)?, self.value(beta)?);
        let (rm, rv) = (self.entry(running_mean)?, self.entry(running_var)?);
        // Training updates the running statistics in place, so they must be buffers; in eval
        // mode they are only read, and a prediction engine holds them as loaded values.
        let buffers = rm.role == Role::Buffer && rv.role == Role::Buffer;
        if (training && !buffers) || running_mean == running_var {
            return Err(EngineError::InvalidArgument);
        }
        let (rm, rv) = (rm.value.clone(), rv.value.clone());
        if !((0.0..=1.0).contains(&momentum) && eps > 0.0 && eps.is_finite()) {
            return Err(EngineError::InvalidArgument);
        }
        let dims = xv.dims();
        if dims.len() < 2 {
            return Err(EngineError::InvalidShape);
        }
        let c = dims[1];
        for t in [&gv, &bv, &rm, &rv] {
            if t.dims() != [c] {
                return Err(EngineError::InvalidShape);
            }
        }
        let per_channel = xv.numel() / c;
        if training && per_channel < 2 {
            return Err(EngineError::InvalidShape);
        }
        self.reserve_dims(&dims)?;
        let eps = f64::from(eps);
        self.pooled(|e| {
            let (g, b) = (r1(gv)?, r1(bv)?);
            let (rm, rv) = (r1(rm)?, r1(rv)?);
            if !training {
                let v = match xv {
                    Dyn::R1(_) => return Err(EngineError::InvalidShape),
                    Dyn::R2(t) => Dyn::R2(module::batch_norm(t, g, b, rm, rv, eps)),
                    Dyn::R3(t) => Dyn::R3(module::batch_norm(t, g, b, rm, rv, eps)),
                    Dyn::R4(t) => Dyn::R4(module::batch_norm(t, g, b, rm, rv, eps)),
                    Dyn::R5(t) => Dyn::R5(module::batch_norm(t, g, b, rm, rv, eps)),
                };
                return e.output(v, &[x, gamma, beta, running_mean, running_var]);
            }
            let (v, mean, var) = match xv {
                Dyn::R1(_) => return Err(EngineError::InvalidShape),
                Dyn::R2(t) => {
                    let o = module::batch_norm_train(t, g, b, eps);
                    (Dyn::R2(o.output), o.mean, o.variance)
                }
                Dyn::R3(t) => {
                    let o = module::batch_norm_train(t, g, b, eps);
                    (Dyn::R3(o.output), o.mean, o.variance)
                }
                Dyn::R4(t) => {
                    let o = module::batch_norm_train(t, g, b, eps);
                    (Dyn::R4(o.output), o.mean, o.variance)
                }
                Dyn::R5(t) => {
                    let o = module::batch_norm_train(t, g, b, eps);
                    (Dyn::R5(o.output), o.mean, o.variance)
                }
            };
            let m = f64::from(momentum);
            let unbias = per_channel as f64 / (per_channel as f64 - 1.0);
            let new_rm = rm
                .mul_scalar(1.0 - m)
                .add(mean.detach().mul_scalar(m))
                .detach();
            let new_rv = rv
                .mul_scalar(1.0 - m)
                .add(var.detach().mul_scalar(m * unbias))
                .detach();
            if let Some(entry) = e.tensors.get_mut(&running_mean.0) {
                entry.value = Dyn::R1(new_rm);
            }
            if let Some(entry) = e.tensors.get_mut(&running_var.0) {
                entry.value = Dyn::R1(new_rv);
            }
            e.output(v, &[x, gamma, beta])
        })
    }

    /// Inverted dropout: zeroes each element with probability `p` (drawn from the engine's
    /// generator) and scales the rest by `1 / (1 − p)`; a copy of `x` when `training` is false
    /// or `p` is 0. `p` in `[0, 1)`.
    pub fn dropout(&mut self, x: TensorId, p: f32, training: bool) -> Result<TensorId> {
        if !(0.0..1.0).contains(&p) {
            return Err(EngineError::InvalidArgument);
        }
        let xv = self.value(x)?;
        let dims = xv.dims();
        self.reserve_dims(&dims)?;
        if !training || p == 0.0 {
            if self.entry(x)?.role == Role::Parameter {
                // A fresh graph node, so the copy is never confused with the leaf itself.
                let v = dyn_map!(xv, t => t.mul_scalar(1.0));
                return self.pooled(|e| e.output(v, &[x]));
            }
            return self.output(xv, &[x]);
        }
        let scale = 1.0 / (1.0 - p);
        let n = xv.numel();
        let mask: Vec<f32> = (0..n)
            .map(|_| if self.rng.unit_f32() < p { 0.0 } else { scale })
            .collect();
        let device = self.device.clone();
        self.pooled(|e| {
            let m = Dyn::from_vec(mask, &dims, &device);
            let v = dyn_zip!(xv, m, a, b => a.mul(b)).ok_or(EngineError::InvalidShape)?;
            e.output(v, &[x])
        })
    }

    /// `max(x, 0)`.
    pub fn relu(&mut self, x: TensorId) -> Result<TensorId> {
        self.unary(x, Unary::Relu)
    }

    /// GELU, exact (`x · Φ(x)` with the error function).
    pub fn gelu(&mut self, x: TensorId) -> Result<TensorId> {
        self.unary(x, Unary::Gelu)
    }

    /// Logistic sigmoid.
    pub fn sigmoid(&mut self, x: TensorId) -> Result<TensorId> {
        self.unary(x, Unary::Sigmoid)
    }

    /// Hyperbolic tangent.
    pub fn tanh(&mut self, x: TensorId) -> Result<TensorId> {
        self.unary(x, Unary::Tanh)
    }

    /// Softmax along `axis` (`InvalidArgument` if `axis` ≥ rank).
    pub fn softmax(&mut self, x: TensorId, axis: u32) -> Result<TensorId> {
        let xv = self.value(x)?;
        let a = self::axis(axis, xv.rank())?;
        self.reserve_dims(&xv.dims())?;
        self.pooled(|e| {
            let v = dyn_map!(xv, t => activation::softmax(t, a));
            e.output(v, &[x])
        })
    }

    /// Log-softmax along `axis` (`InvalidArgument` if `axis` ≥ rank).
    pub fn log_softmax(&mut self, x: TensorId, axis: u32) -> Result<TensorId> {
        let xv = self.value(x)?;
        let a = self::axis(axis, xv.rank())?;
        self.reserve_dims(&xv.dims())?;
        self.pooled(|e| {
            let v = dyn_map!(xv, t => activation::log_softmax(t, a));
            e.output(v, &[x])
        })
    }

    /// Mean cross-entropy of `logits [n, classes]` against class indices `labels [n]`
    /// (integers stored as f32; `InvalidArgument` if one is not an integer in
    /// `0..classes`). Shape `[1]`.
    pub fn cross_entropy(&mut self, logits: TensorId, labels: TensorId) -> Result<TensorId> {
        let lv = self.value(logits)?;
        let yv = self.value(labels)?;
        let [n, k] = lv.dims()[..] else {
            return Err(EngineError::InvalidShape);
        };
        if yv.dims() != [n] {
            return Err(EngineError::InvalidShape);
        }
        let onehot_bytes = crate::engine::dims_bytes(&[n, k])?;
        // The one-hot matrix is a temporary; it must fit beside the live tensors too.
        self.reserve(1, onehot_bytes.saturating_add(4))?;
        let labels_v = yv.to_vec().ok_or(EngineError::InvalidArgument)?;
        let mut onehot = vec![0f32; n * k];
        for (row, &l) in labels_v.iter().enumerate() {
            if !(l >= 0.0 && l < k as f32 && l.fract() == 0.0) {
                return Err(EngineError::InvalidArgument);
            }
            onehot[row * k + l as usize] = 1.0;
        }
        let device = self.device.clone();
        self.pooled(|e| {
            let oh = r2(Dyn::from_vec(onehot, &[n, k], &device))?;
            let lp = activation::log_softmax(r2(lv)?, 1);
            let loss = lp.mul(oh).sum().mul_scalar(-1.0 / n as f64);
            e.output(Dyn::R1(loss), &[logits, labels])
        })
    }

    /// Mean squared error `mean((a − b)²)` over the broadcast shape. Shape `[1]`.
    pub fn mse(&mut self, a: TensorId, b: TensorId) -> Result<TensorId> {
        let (x, y) = (self.value(a)?, self.value(b)?);
        let out = broadcast_dims(&x.dims(), &y.dims()).ok_or(EngineError::InvalidShape)?;
        self.reserve(1, 4)?;
        self.pooled(|e| {
            let (x, y) = aligned(x, y, &out);
            let d = dyn_zip!(x, y, p, q => p.sub(q)).ok_or(EngineError::InvalidShape)?;
            let v = dyn_apply!(d, t => t.square().mean());
            e.output(Dyn::R1(v), &[a, b])
        })
    }

    /// A tensor with the same values in a new shape: rank 1..=5, entries ≥ 1 except at most
    /// one −1 (inferred); the element count must match (`InvalidShape`).
    pub fn reshape(&mut self, x: TensorId, shape: &[i32]) -> Result<TensorId> {
        let xv = self.value(x)?;
        let numel = xv.numel();
        if shape.is_empty() || shape.len() > MAX_RANK {
            return Err(EngineError::InvalidShape);
        }
        let mut infer = None;
        let mut known: usize = 1;
        for (i, &s) in shape.iter().enumerate() {
            match s {
                -1 if infer.is_none() => infer = Some(i),
                s if s >= 1 => {
                    known = known
                        .checked_mul(s as usize)
                        .ok_or(EngineError::InvalidShape)?;
                }
                _ => return Err(EngineError::InvalidShape),
            }
        }
        let mut dims: Vec<usize> = shape.iter().map(|&s| s.max(1) as usize).collect();
        if let Some(i) = infer {
            if known == 0 || !numel.is_multiple_of(known) {
                return Err(EngineError::InvalidShape);
            }
            dims[i] = numel / known;
        } else if known != numel {
            return Err(EngineError::InvalidShape);
        }
        self.reserve_dims(&dims)?;
        self.pooled(|e| {
            let v = xv.reshape(&dims);
            e.output(v, &[x])
        })
    }

    /// Collapses axes `start..` into one (`InvalidArgument` if `start` ≥ rank).
    pub fn flatten(&mut self, x: TensorId, start: u32) -> Result<TensorId> {
        let xv = self.value(x)?;
        let dims = xv.dims();
        let s = self::axis(start, dims.len())?;
        let mut new: Vec<usize> = dims[..s].to_vec();
        new.push(dims[s..].iter().product());
        self.reserve_dims(&new)?;
        self.pooled(|e| {
            let v = xv.reshape(&new);
            e.output(v, &[x])
        })
    }

    /// Swaps two axes (`InvalidArgument` if either is ≥ rank).
    pub fn transpose(&mut self, x: TensorId, axis0: u32, axis1: u32) -> Result<TensorId> {
        let xv = self.value(x)?;
        let r = xv.rank();
        let (a0, a1) = (self::axis(axis0, r)?, self::axis(axis1, r)?);
        self.reserve_dims(&xv.dims())?;
        self.pooled(|e| {
            let v = dyn_map!(xv, t => t.swap_dims(a0, a1));
            e.output(v, &[x])
        })
    }

    /// Concatenation along `axis` of at least one tensor, all of one rank and equal outside
    /// `axis` (`InvalidShape`); an empty list or `axis` ≥ rank is `InvalidArgument`.
    pub fn concat(&mut self, xs: &[TensorId], axis: u32) -> Result<TensorId> {
        let values: Vec<Dyn> = xs.iter().map(|&x| self.value(x)).collect::<Result<_>>()?;
        let Some(first) = values.first() else {
            return Err(EngineError::InvalidArgument);
        };
        let mut out = first.dims();
        let a = self::axis(axis, out.len())?;
        out[a] = 0;
        for v in &values {
            let d = v.dims();
            if d.len() != out.len() {
                return Err(EngineError::InvalidShape);
            }
            for (i, (&di, &oi)) in d.iter().zip(&out).enumerate() {
                if i != a && di != oi {
                    return Err(EngineError::InvalidShape);
                }
            }
            out[a] = out[a]
                .checked_add(d[a])
                .ok_or(EngineError::ResourceExhausted)?;
        }
        self.reserve_dims(&out)?;
        let rank = out.len();
        self.pooled(|e| {
            let v = match rank {
                1 => cat::<1>(values, a),
                2 => cat::<2>(values, a),
                3 => cat::<3>(values, a),
                4 => cat::<4>(values, a),
                _ => cat::<5>(values, a),
            }
            .ok_or(EngineError::InvalidShape)?;
            e.output(v, xs)
        })
    }

    fn reduce(
        &mut self,
        x: TensorId,
        axis: Option<u32>,
        keep: bool,
        mean: bool,
    ) -> Result<TensorId> {
        let xv = self.value(x)?;
        let dims = xv.dims();
        let (a, out) = match axis {
            None => (None, vec![1usize]),
            Some(ax) => {
                let a = self::axis(ax, dims.len())?;
                let mut kept = dims.clone();
                kept[a] = 1;
                let out = if keep { kept } else { without_axis(&dims, a) };
                (Some(a), out)
            }
        };
        self.reserve_dims(&out)?;
        self.pooled(|e| {
            let v = match (a, mean) {
                (None, true) => Dyn::R1(dyn_apply!(xv, t => t.mean())),
                (None, false) => Dyn::R1(dyn_apply!(xv, t => t.sum())),
                (Some(a), true) => dyn_map!(xv, t => t.mean_dim(a)).reshape(&out),
                (Some(a), false) => dyn_map!(xv, t => t.sum_dim(a)).reshape(&out),
            };
            e.output(v, &[x])
        })
    }

    /// Mean over `axis` (kept as size 1 when `keep`), or over everything (shape `[1]`) when
    /// `axis` is `None`. Removing the only axis of a rank-1 tensor gives shape `[1]`.
    pub fn mean(&mut self, x: TensorId, axis: Option<u32>, keep: bool) -> Result<TensorId> {
        self.reduce(x, axis, keep, true)
    }

    /// Sum over `axis` (kept as size 1 when `keep`), or over everything (shape `[1]`) when
    /// `axis` is `None`.
    pub fn sum(&mut self, x: TensorId, axis: Option<u32>, keep: bool) -> Result<TensorId> {
        self.reduce(x, axis, keep, false)
    }

    /// Indices (as f32) of the maxima along `axis`, which is removed from the shape (a
    /// rank-1 input gives `[1]`). Not differentiable.
    pub fn argmax(&mut self, x: TensorId, axis: u32) -> Result<TensorId> {
        let xv = self.value(x)?;
        let dims = xv.dims();
        let a = self::axis(axis, dims.len())?;
        let out = without_axis(&dims, a);
        self.reserve_dims(&out)?;
        self.pooled(|e| {
            let v = dyn_map!(xv, t => t.detach().argmax(a).float().detach()).reshape(&out);
            e.output(v, &[])
        })
    }

    /// A copy that does not track gradients: nothing computed from it alone is recorded.
    pub fn detach(&mut self, x: TensorId) -> Result<TensorId> {
        let xv = self.value(x)?;
        self.reserve_dims(&xv.dims())?;
        self.pooled(|e| {
            // burn's `detach` keeps a trainable leaf trainable (a new leaf that requires grad),
            // so every operation on a detached parameter would still be recorded.
            let v = dyn_map!(xv, t => t.detach().set_require_grad(false));
            e.output(v, &[])
        })
    }

    /// Per-channel `(x − mean[c]) / std[c]` over axis 1 of `x [n, c, ..]`; `mean` and `std`
    /// have `c` finite entries, every `std` > 0 (`InvalidArgument`).
    pub fn normalize_channels(
        &mut self,
        x: TensorId,
        mean: &[f32],
        std: &[f32],
    ) -> Result<TensorId> {
        let xv = self.value(x)?;
        let dims = xv.dims();
        if dims.len() < 2 {
            return Err(EngineError::InvalidShape);
        }
        let c = dims[1];
        if mean.len() != c || std.len() != c {
            return Err(EngineError::InvalidArgument);
        }
        if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(EngineError::InvalidArgument);
        }
        self.reserve_dims(&dims)?;
        let mut cdims = vec![1usize; dims.len()];
        cdims[1] = c;
        let device = self.device.clone();
        let m = mean.to_vec();
        let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
        self.pooled(|e| {
            let m = Dyn::from_vec(m, &cdims, &device).expand(&dims);
            let inv = Dyn::from_vec(inv, &cdims, &device).expand(&dims);
            let centred = dyn_zip!(xv, m, a, b => a.sub(b)).ok_or(EngineError::InvalidShape)?;
            let v = dyn_zip!(centred, inv, a, b => a.mul(b)).ok_or(EngineError::InvalidShape)?;
            e.output(v, &[x])
        })
    }
}
