//! The 1-D transforms' machinery: each variant writes its formulas once ([`Transform1d`]) for
//! a generic [`Lane`]; [`transform`] runs them over vectors of channels, eight at a time in
//! registers ([`Lanes`]) and the rest one by one. Coefficients are constants in the formulas
//! and fold into the arithmetic.

/// `N` disjoint `len`-long windows of `buf` starting at `offsets` (strictly increasing, each
/// at least `len` past the previous): the destinations of one 1-D transform.
#[inline(always)]
fn windows_mut<const N: usize>(
    buf: &mut [f32],
    offsets: [usize; N],
    len: usize,
) -> [&mut [f32]; N] {
    let mut out: [&mut [f32]; N] = core::array::from_fn(|_| Default::default());
    let mut rest = buf;
    let mut pos = 0;
    for (slot, &at) in out.iter_mut().zip(&offsets) {
        let (_, tail) = core::mem::take(&mut rest).split_at_mut(at - pos);
        let (window, tail) = tail.split_at_mut(len);
        *slot = window;
        rest = tail;
        pos = at + len;
    }
    out
}

/// Eight channels at once: arithmetic on `[f32; 8]` that the compiler turns into vector
/// instructions (one AVX register), with the operands held in registers across a whole 1-D
/// transform instead of going through memory term by term.
#[derive(Clone, Copy)]
pub(super) struct Lanes(pub(super) [f32; LANES]);

/// Channels per [`Lanes`].
pub(super) const LANES: usize = 8;

impl core::ops::Add for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn add(mut self, o: Lanes) -> Lanes {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
        self
    }
}

impl core::ops::Sub for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn sub(mut self, o: Lanes) -> Lanes {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a -= b;
        }
        self
    }
}

impl core::ops::Mul<f32> for Lanes {
    type Output = Lanes;
    #[inline(always)]
    fn mul(mut self, c: f32) -> Lanes {
        for a in self.0.iter_mut() {
            *a *= c;
        }
        self
    }
}

/// What a 1-D transform computes with: one channel (`f32`) or eight ([`Lanes`]).
pub(super) trait Lane:
    Copy + core::ops::Add<Output = Self> + core::ops::Sub<Output = Self> + core::ops::Mul<f32, Output = Self>
{
}

impl Lane for f32 {}
impl Lane for Lanes {}

/// A 1-D transform from `I` vectors to `O` vectors, written once for any [`Lane`].
pub(super) trait Transform1d<const I: usize, const O: usize> {
    /// The `O` outputs from the `I` inputs.
    fn apply<V: Lane>(x: [V; I]) -> [V; O];
}

/// Applies `T` channel by channel: `dst` windows at `offsets` (strictly increasing, at least
/// `len` apart) get the outputs for the `len`-long input vectors `src`. Eight channels go
/// through registers at a time, the rest one by one.
#[inline(always)]
pub(super) fn transform<T: Transform1d<I, O>, const I: usize, const O: usize>(
    dst: &mut [f32],
    offsets: [usize; O],
    src: [&[f32]; I],
    len: usize,
) {
    // Plain loops over fixed-size arrays throughout: `array::map` and `from_fn` are not
    // always inlined, and then every array goes through memory.
    let mut dst = windows_mut(dst, offsets, len);
    let mut src_cut: [&[f32]; I] = [&[]; I];
    for (cut, s) in src_cut.iter_mut().zip(src) {
        *cut = &s[..len];
    }
    let whole = len - len % LANES;
    let mut at = 0;
    while at < whole {
        let mut x = [Lanes([0.0; LANES]); I];
        for (x, s) in x.iter_mut().zip(&src_cut) {
            x.0.copy_from_slice(&s[at..at + LANES]);
        }
        for (d, y) in dst.iter_mut().zip(&T::apply(x)) {
            d[at..at + LANES].copy_from_slice(&y.0);
        }
        at += LANES;
    }
    while at < len {
        let mut x = [0.0f32; I];
        for (x, s) in x.iter_mut().zip(&src_cut) {
            *x = s[at];
        }
        for (d, &y) in dst.iter_mut().zip(&T::apply(x)) {
            d[at] = y;
        }
        at += 1;
    }
}
