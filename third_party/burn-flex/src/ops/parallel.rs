//! Element-wise helpers that split large buffers over the rayon pool (a Chiron patch of
//! burn-flex 0.22.1; see CHIRON.md).
//!
//! A training step allocates and fills many activation-sized buffers. Done on the calling
//! thread, each zero-fill, ReLU or copy leaves the other workers idle: on two cores these
//! serial stretches were a fifth of a CNN step. Every helper here gives the same result as
//! the plain loop (each element is computed independently), only split into chunks.

use alloc::vec::Vec;

/// Below this many elements the split costs more than it saves.
pub(crate) const PARALLEL_MIN: usize = 1 << 15;

/// Elements per task: large enough to amortise the task, small enough to balance.
#[cfg(feature = "rayon")]
const CHUNK: usize = 1 << 14;

/// `n` copies of `T::default()` (zero for the numeric types), written by all workers.
pub(crate) fn zeroed<T: Copy + Default + Send + Sync>(n: usize) -> Vec<T> {
    #[cfg(feature = "rayon")]
    if n >= PARALLEL_MIN {
        use rayon::prelude::*;
        let mut v = Vec::with_capacity(n);
        // An indexed iterator: rayon writes straight into the spare capacity.
        v.par_extend(rayon::iter::repeat_n(T::default(), n));
        return v;
    }
    alloc::vec![T::default(); n]
}

/// `f` applied to every element of `src`, in order.
pub(crate) fn map(src: &[f32], f: impl Fn(f32) -> f32 + Send + Sync) -> Vec<f32> {
    #[cfg(feature = "rayon")]
    if src.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        let mut out = Vec::with_capacity(src.len());
        src.par_iter()
            .with_min_len(CHUNK)
            .map(|&x| f(x))
            .collect_into_vec(&mut out);
        return out;
    }
    src.iter().map(|&x| f(x)).collect()
}

/// `f` applied in place to every element of `dst`.
pub(crate) fn map_in_place(dst: &mut [f32], f: impl Fn(f32) -> f32 + Send + Sync) {
    #[cfg(feature = "rayon")]
    if dst.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK)
            .for_each(|c| c.iter_mut().for_each(|x| *x = f(*x)));
        return;
    }
    dst.iter_mut().for_each(|x| *x = f(*x));
}

/// `dst[i] = f(a[i], dst[i])` for every `i`; `a` and `dst` have one length.
pub(crate) fn zip_in_place(dst: &mut [f32], a: &[f32], f: impl Fn(f32, f32) -> f32 + Send + Sync) {
    debug_assert_eq!(dst.len(), a.len());
    #[cfg(feature = "rayon")]
    if dst.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .for_each(|(d, a)| d.iter_mut().zip(a).for_each(|(d, &a)| *d = f(a, *d)));
        return;
    }
    dst.iter_mut().zip(a).for_each(|(d, &a)| *d = f(a, *d));
}

/// `f(a[i], b[i])` for every `i`; `a` and `b` have one length.
pub(crate) fn zip(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Send + Sync) -> Vec<f32> {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(feature = "rayon")]
    if a.len() >= PARALLEL_MIN {
        use rayon::prelude::*;
        let mut out = Vec::with_capacity(a.len());
        a.par_iter()
            .zip(b.par_iter())
            .with_min_len(CHUNK)
            .map(|(&a, &b)| f(a, b))
            .collect_into_vec(&mut out);
        return out;
    }
    a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()
}
