//! Tensors of dynamic rank over burn's statically ranked [`Tensor`].
//!
//! The guest names tensors of any rank from 1 to 5; burn's tensors carry their rank in the type.
//! [`Dyn`] is the enum over the five ranks and the macros below dispatch one generic expression
//! over every variant. Every helper here assumes its preconditions were validated by the caller
//! (shapes checked before burn sees them): the engine never hands burn a shape it would panic on.

use burn::tensor::{Device, Tensor, TensorData};

/// Highest rank the engine supports.
pub(crate) const MAX_RANK: usize = 5;

/// A float tensor of rank 1..=5.
#[derive(Clone, Debug)]
pub(crate) enum Dyn {
    R1(Tensor<1>),
    R2(Tensor<2>),
    R3(Tensor<3>),
    R4(Tensor<4>),
    R5(Tensor<5>),
}

/// Evaluates `$body` with `$t` bound to the inner tensor of whatever rank, returning its value.
macro_rules! dyn_apply {
    ($x:expr, $t:ident => $body:expr) => {
        match $x {
            $crate::dynt::Dyn::R1($t) => $body,
            $crate::dynt::Dyn::R2($t) => $body,
            $crate::dynt::Dyn::R3($t) => $body,
            $crate::dynt::Dyn::R4($t) => $body,
            $crate::dynt::Dyn::R5($t) => $body,
        }
    };
}

/// Maps the inner tensor with a rank-preserving `$body`.
macro_rules! dyn_map {
    ($x:expr, $t:ident => $body:expr) => {
        match $x {
            $crate::dynt::Dyn::R1($t) => $crate::dynt::Dyn::R1($body),
            $crate::dynt::Dyn::R2($t) => $crate::dynt::Dyn::R2($body),
            $crate::dynt::Dyn::R3($t) => $crate::dynt::Dyn::R3($body),
            $crate::dynt::Dyn::R4($t) => $crate::dynt::Dyn::R4($body),
            $crate::dynt::Dyn::R5($t) => $crate::dynt::Dyn::R5($body),
        }
    };
}

/// Applies a rank-preserving binary `$body` to two tensors of the same rank; `None` when the
/// ranks differ (callers bring them to one rank first).
macro_rules! dyn_zip {
    ($a:expr, $b:expr, $x:ident, $y:ident => $body:expr) => {
        match ($a, $b) {
            ($crate::dynt::Dyn::R1($x), $crate::dynt::Dyn::R1($y)) => {
                Some($crate::dynt::Dyn::R1($body))
            }
            ($crate::dynt::Dyn::R2($x), $crate::dynt::Dyn::R2($y)) => {
                Some($crate::dynt::Dyn::R2($body))
            }
            ($crate::dynt::Dyn::R3($x), $crate::dynt::Dyn::R3($y)) => {
                Some($crate::dynt::Dyn::R3($body))
            }
            ($crate::dynt::Dyn::R4($x), $crate::dynt::Dyn::R4($y)) => {
                Some($crate::dynt::Dyn::R4($body))
            }
            ($crate::dynt::Dyn::R5($x), $crate::dynt::Dyn::R5($y)) => {
                Some($crate::dynt::Dyn::R5($body))
            }
            _ => None,
        }
    };
}

pub(crate) use {dyn_apply, dyn_map, dyn_zip};

/// Conversion between a statically ranked tensor and [`Dyn`].
pub(crate) trait Ranked: Sized {
    /// The tensor if `d` has this rank.
    fn from_dyn(d: Dyn) -> Option<Self>;
    /// Wraps the tensor.
    fn into_dyn(self) -> Dyn;
}

macro_rules! ranked {
    ($($n:literal => $v:ident),*) => {$(
        impl Ranked for Tensor<$n> {
            fn from_dyn(d: Dyn) -> Option<Self> {
                match d {
                    Dyn::$v(t) => Some(t),
                    _ => None,
                }
            }
            fn into_dyn(self) -> Dyn {
                Dyn::$v(self)
            }
        }
    )*};
}
ranked!(1 => R1, 2 => R2, 3 => R3, 4 => R4, 5 => R5);

/// The first `N` entries of `dims` as an array (missing entries are 1; callers pass exactly `N`).
fn arr<const N: usize>(dims: &[usize]) -> [usize; N] {
    let mut out = [1usize; N];
    for (o, &d) in out.iter_mut().zip(dims) {
        *o = d;
    }
    out
}

impl Dyn {
    /// Creates a tensor from row-major values. Preconditions: `1 <= dims.len() <= 5` and
    /// `data.len()` equals the product of `dims` (both validated by the caller).
    pub(crate) fn from_vec(data: Vec<f32>, dims: &[usize], device: &Device) -> Dyn {
        let td = TensorData::new(data, dims.to_vec());
        match dims.len() {
            1 => Dyn::R1(Tensor::from_data(td, device)),
            2 => Dyn::R2(Tensor::from_data(td, device)),
            3 => Dyn::R3(Tensor::from_data(td, device)),
            4 => Dyn::R4(Tensor::from_data(td, device)),
            _ => Dyn::R5(Tensor::from_data(td, device)),
        }
    }

    /// Rank.
    pub(crate) fn rank(&self) -> usize {
        match self {
            Dyn::R1(_) => 1,
            Dyn::R2(_) => 2,
            Dyn::R3(_) => 3,
            Dyn::R4(_) => 4,
            Dyn::R5(_) => 5,
        }
    }

    /// Shape.
    pub(crate) fn dims(&self) -> Vec<usize> {
        dyn_apply!(self, t => t.dims().to_vec())
    }

    /// Whether the tensor takes part in a recorded autodiff graph.
    pub(crate) fn is_tracked(&self) -> bool {
        dyn_apply!(self, t => t.is_tracked())
    }

    /// Row-major values. `None` only if the backend cannot read the tensor back.
    pub(crate) fn to_vec(&self) -> Option<Vec<f32>> {
        dyn_apply!(self.clone(), t => t.without_autodiff().try_into_vec_as::<f32>().ok())
    }

    /// Row-major values, consuming the tensor: no copy when it is the only holder of its
    /// buffer (a parameter's value or gradient at an optimizer step). `None` only if the
    /// backend cannot read the tensor back, which the CPU backend always can for the f32
    /// tensors the engine makes.
    pub(crate) fn into_vec(self) -> Option<Vec<f32>> {
        dyn_apply!(self, t => t.without_autodiff().try_into_vec_as::<f32>().ok())
    }

    /// Reshapes to `dims` (any rank 1..=5). Precondition: same element count.
    pub(crate) fn reshape(self, dims: &[usize]) -> Dyn {
        if self.dims() == dims {
            return self;
        }
        match dims.len() {
            1 => Dyn::R1(dyn_apply!(self, t => t.reshape(arr::<1>(dims)))),
            2 => Dyn::R2(dyn_apply!(self, t => t.reshape(arr::<2>(dims)))),
            3 => Dyn::R3(dyn_apply!(self, t => t.reshape(arr::<3>(dims)))),
            4 => Dyn::R4(dyn_apply!(self, t => t.reshape(arr::<4>(dims)))),
            _ => Dyn::R5(dyn_apply!(self, t => t.reshape(arr::<5>(dims)))),
        }
    }

    /// Prepends axes of size 1 up to `rank` (numpy broadcasting alignment). Precondition:
    /// `self.rank() <= rank <= 5`.
    pub(crate) fn lift(self, rank: usize) -> Dyn {
        let dims = self.dims();
        if dims.len() >= rank {
            return self;
        }
        let mut new = vec![1usize; rank - dims.len()];
        new.extend_from_slice(&dims);
        self.reshape(&new)
    }

    /// Broadcasts to exactly `dims` (same rank; every axis equal or 1 in `self`).
    pub(crate) fn expand(self, dims: &[usize]) -> Dyn {
        if self.dims() == dims {
            return self;
        }
        dyn_map!(self, t => expand_to(t, dims))
    }

    /// Number of elements.
    pub(crate) fn numel(&self) -> usize {
        self.dims().iter().product()
    }
}

/// Broadcasts `t` to `dims` (same rank).
fn expand_to<const D: usize>(t: Tensor<D>, dims: &[usize]) -> Tensor<D> {
    t.expand(arr::<D>(dims))
}
