//! Fused elementwise passes of an MLP layer, each with a plain reference twin.
//!
//! Shapes (all row-major; `rows` = examples, `h` = layer width, `b` = number of directions):
//!
//! | pass | formula | buffers |
//! |---|---|---|
//! | [`bias_act`] | `x = z + 1 biasᵀ`; `z ← σ(x)`, `s1 = σ'(x)`, `s2 = σ''(x)` | `z, s1, s2`: rows×h; `bias`: h |
//! | [`add_bias`] | `z ← z + 1 biasᵀ` (the output layer) | `z`: rows×h; `bias`: h |
//! | [`bwd_act`] | `g = da ⊙ s1`, `e = da ⊙ s2` | all `len` |
//! | [`rfwd_act`] | `rz ← rz + 1 cᵀ` (per direction), `ra = s1 ⊙ rz` | `rz, ra`: rows×(b·h); `c`: b×h; `s1`: rows×h |
//! | [`rbwd_act`] | `rg = rda ⊙ s1 + e ⊙ rz` (Gauss–Newton: `e = None`, no second term) | `rda, rz, rg`: rows×(b·h); `s1, e`: rows×h |
//! | [`col_sums`] | `out[j] (+)= Σ_i m[i·ld + j]` | `m`: rows×cols with row stride `ld`; `out`: cols |
//!
//! In the `b`-direction buffers, direction `j` of row `r` occupies elements
//! `(r·b + j)·h .. (r·b + j + 1)·h`; `s1`/`e` rows and `c` rows are broadcast over directions/rows.
//!
//! **Caches.** Every activation fills the same two caches `s1 = σ'`, `s2 = σ''`, so the layer code
//! never branches on the activation; for tanh they are computed from the output `a` (`s1 = 1 − a²`,
//! `s2 = −2a·s1`), for relu/linear `s2 = 0`. One extra store stream per layer is cheap next to the
//! GEMMs, and a uniform cache keeps the HVP code activation-agnostic.
//!
//! **Paths.** Every function takes the [`KernelPath`] explicitly (normally
//! [`kernel_path()`](super::kernel_path)); `KernelPath::Reference` runs the slow twin. The fast
//! paths are the same safe Rust loops compiled inside `#[target_feature]` wrappers (AVX2+FMA,
//! AVX-512F), which LLVM vectorizes at full width. What each path computes:
//! - products and sums (`add_bias`, `bwd_act`, `rfwd_act`, `rbwd_act`, `col_sums`, and relu/linear
//!   in `bias_act`): the same operations in the same order on every path, so **bit-identical**;
//! - f32 tanh: the rational [`tanh_f32`](super::special::tanh_f32) (abs. error ≤ 4e-8) on the
//!   fast paths, f64 `tanh` rounded to f32 on the reference path;
//! - f32 softplus and gelu: [`softplus_f32`] / [`gelu_f32`] on the fast paths, the same formulas
//!   evaluated in f64 lanes with branch-free `exp`, `ln(1+u)`, `erfcx` (relative errors ≲ 2e-15)
//!   and rounded once to f32. `σ`, `σ'`, `σ''` are within 1 ulp (relative 1.2e-7; tested ≤ 4e-7,
//!   absolute ≤ 1e-37 below 1e-30) of the reference path's f64 formulas rounded to f32, and the
//!   same at `±∞`, `±0` and NaN (see [`act`](super::act));
//! - f64 tanh, softplus and gelu: the reference formulas on every path.
//!
//! Sums run in a fixed order (row order in `col_sums`), and every output element is written exactly
//! once by one call, so results do not depend on how the caller splits rows across threads.
//!
//! # Panics
//! Every function panics if a buffer length does not match the shape arguments, or if `path` is
//! not supported by this CPU (only reachable by constructing an unsupported [`KernelPath`] by hand).

// The reference twins are deliberately plain indexed loops that spell out the formulas.
#![allow(clippy::needless_range_loop)]

use super::act::{act_ref, ActValues};
// Used by the x86_64 wrappers only.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_imports))]
use super::act::{gelu_f32, softplus_f32, tanh_act_f32};
use super::path::KernelPath;
use super::{cast_f32, cast_f32_mut, is_f32};
use crate::model::Activation;
use crate::real::Real;

// ---------------------------------------------------------------------------------------------
// Fast bodies: safe, branch-free loops, inlined into the `#[target_feature]` wrappers below.
// ---------------------------------------------------------------------------------------------

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn add_bias_body<T: Real>(h: usize, z: &mut [T], bias: &[T]) {
    for zr in z.chunks_exact_mut(h) {
        for (x, &bk) in zr.iter_mut().zip(bias) {
            *x += bk;
        }
    }
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn bias_linear_body<T: Real>(h: usize, z: &mut [T], bias: &[T], s1: &mut [T], s2: &mut [T]) {
    add_bias_body(h, z, bias);
    s1.fill(T::ONE);
    s2.fill(T::ZERO);
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn bias_relu_body<T: Real>(h: usize, z: &mut [T], bias: &[T], s1: &mut [T], s2: &mut [T]) {
    let rows = z.chunks_exact_mut(h).zip(s1.chunks_exact_mut(h));
    for (zr, s1r) in rows {
        for ((x, d1), &bk) in zr.iter_mut().zip(s1r.iter_mut()).zip(bias) {
            let v = *x + bk;
            // Same expressions as the reference (`act_f64`): NaN propagates, σ'(0) = 0.
            *x = if v < T::ZERO { T::ZERO } else { v };
            *d1 = if v > T::ZERO { T::ONE } else { T::ZERO };
        }
    }
    s2.fill(T::ZERO);
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn bias_act_f32_body(
    h: usize,
    z: &mut [f32],
    bias: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
    f: impl Fn(f32) -> ActValues<f32>,
) {
    let rows = z
        .chunks_exact_mut(h)
        .zip(s1.chunks_exact_mut(h))
        .zip(s2.chunks_exact_mut(h));
    for ((zr, s1r), s2r) in rows {
        let it = zr.iter_mut().zip(s1r.iter_mut()).zip(s2r.iter_mut());
        for (((x, d1), d2), &bk) in it.zip(bias) {
            let v = f(*x + bk);
            *x = v.a;
            *d1 = v.d1;
            *d2 = v.d2;
        }
    }
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn bwd_body<T: Real>(da: &[T], s1: &[T], s2: &[T], g: &mut [T], e: &mut [T]) {
    let it = g.iter_mut().zip(e.iter_mut()).zip(da).zip(s1).zip(s2);
    for ((((gi, ei), &d), &d1), &d2) in it {
        *gi = d * d1;
        *ei = d * d2;
    }
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn rfwd_body<T: Real>(b: usize, h: usize, rz: &mut [T], c: &[T], s1: &[T], ra: &mut [T]) {
    let rows = rz
        .chunks_exact_mut(b * h)
        .zip(ra.chunks_exact_mut(b * h))
        .zip(s1.chunks_exact(h));
    for ((rzr, rar), s1r) in rows {
        let dirs = rzr
            .chunks_exact_mut(h)
            .zip(rar.chunks_exact_mut(h))
            .zip(c.chunks_exact(h));
        for ((rzd, rad), cd) in dirs {
            for (((x, y), &cc), &d1) in rzd.iter_mut().zip(rad.iter_mut()).zip(cd).zip(s1r) {
                let v = *x + cc;
                *x = v;
                *y = d1 * v;
            }
        }
    }
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn rbwd_full_body<T: Real>(
    b: usize,
    h: usize,
    rda: &[T],
    s1: &[T],
    e: &[T],
    rz: &[T],
    rg: &mut [T],
) {
    let rows = rg
        .chunks_exact_mut(b * h)
        .zip(rda.chunks_exact(b * h))
        .zip(rz.chunks_exact(b * h))
        .zip(s1.chunks_exact(h).zip(e.chunks_exact(h)));
    for (((rgr, rdar), rzr), (s1r, er)) in rows {
        let dirs = rgr
            .chunks_exact_mut(h)
            .zip(rdar.chunks_exact(h))
            .zip(rzr.chunks_exact(h));
        for ((rgd, rdad), rzd) in dirs {
            let it = rgd.iter_mut().zip(rdad).zip(rzd).zip(s1r).zip(er);
            for ((((y, &r), &x), &d1), &ee) in it {
                *y = r * d1 + ee * x;
            }
        }
    }
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn rbwd_gn_body<T: Real>(b: usize, h: usize, rda: &[T], s1: &[T], rg: &mut [T]) {
    let rows = rg
        .chunks_exact_mut(b * h)
        .zip(rda.chunks_exact(b * h))
        .zip(s1.chunks_exact(h));
    for ((rgr, rdar), s1r) in rows {
        for (rgd, rdad) in rgr.chunks_exact_mut(h).zip(rdar.chunks_exact(h)) {
            for ((y, &r), &d1) in rgd.iter_mut().zip(rdad).zip(s1r) {
                *y = r * d1;
            }
        }
    }
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn col_sums_body<T: Real>(rows: usize, cols: usize, m: &[T], ld: usize, out: &mut [T]) {
    // Row-outer order: each out[j] receives m[0][j], m[1][j], … in order (same as the reference),
    // while the inner loop runs along contiguous memory and vectorizes over j.
    for i in 0..rows {
        let row = &m[i * ld..i * ld + cols];
        for (o, &x) in out.iter_mut().zip(row) {
            *o += x;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `#[target_feature]` wrappers: one copy of every body per instruction set.
// ---------------------------------------------------------------------------------------------

/// Declares, inside the current module, one wrapper per fast body compiled with `$feat`.
///
/// The wrappers are `unsafe fn` only because of `#[target_feature]`: calling one is sound exactly
/// when the CPU supports `$feat`; the bodies themselves are safe code.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_wrappers {
    ($feat:literal) => {
        use super::*;

        simd_wrappers!(@each $feat;
            add_bias<T: Real>(h: usize, z: &mut [T], bias: &[T]) = add_bias_body;
            bias_linear<T: Real>(h: usize, z: &mut [T], bias: &[T], s1: &mut [T], s2: &mut [T])
                = bias_linear_body;
            bias_relu<T: Real>(h: usize, z: &mut [T], bias: &[T], s1: &mut [T], s2: &mut [T])
                = bias_relu_body;
            bias_f32<>(h: usize, z: &mut [f32], bias: &[f32], s1: &mut [f32], s2: &mut [f32],
                f: impl Fn(f32) -> ActValues<f32>) = bias_act_f32_body;
            bwd<T: Real>(da: &[T], s1: &[T], s2: &[T], g: &mut [T], e: &mut [T]) = bwd_body;
            rfwd<T: Real>(b: usize, h: usize, rz: &mut [T], c: &[T], s1: &[T], ra: &mut [T])
                = rfwd_body;
            rbwd_full<T: Real>(b: usize, h: usize, rda: &[T], s1: &[T], e: &[T], rz: &[T],
                rg: &mut [T]) = rbwd_full_body;
            rbwd_gn<T: Real>(b: usize, h: usize, rda: &[T], s1: &[T], rg: &mut [T]) = rbwd_gn_body;
            col_sums<T: Real>(rows: usize, cols: usize, m: &[T], ld: usize, out: &mut [T])
                = col_sums_body;
        );
    };
    // One `unsafe fn $name(args) { $body(args) }` per entry, compiled with `$feat`.
    (@each $feat:literal;
        $($name:ident<$($g:ident: $bound:path)?>($($arg:ident: $ty:ty),* $(,)?) = $body:ident;)*
    ) => {
        $(
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<$($g: $bound)?>($($arg: $ty),*) {
                $body($($arg),*)
            }
        )*
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    simd_wrappers!("avx2,fma");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    simd_wrappers!("avx512f,avx2,fma");
}

/// Runs wrapper `$f` of the fast module that `$path` names, or `$reference` on the reference path.
/// `$path` must have passed [`check_path`].
macro_rules! dispatch {
    ($path:expr, $f:ident($($arg:expr),* $(,)?), reference: $reference:expr) => {
        match $path {
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => {
                // SAFETY: `check_path` verified at run time that this CPU supports AVX2 and FMA.
                unsafe { avx2::$f($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => {
                // SAFETY: `check_path` verified at run time that this CPU supports AVX-512F, AVX2, FMA.
                unsafe { avx512::$f($($arg),*) }
            }
            // On other targets `check_path` admits only `Reference`.
            _ => $reference,
        }
    };
}

fn check_path(path: KernelPath) {
    assert!(
        path.is_supported(),
        "kernel path `{}` is not supported by this CPU (supported: {:?}); \
         obtain paths from kernel_path() or KernelPath::supported()",
        path.name(),
        KernelPath::supported()
    );
}

#[track_caller]
fn check_len(what: &str, got: usize, want: usize) {
    assert!(
        got == want,
        "elementwise kernel: `{what}` has {got} elements, the shape needs {want}"
    );
}

/// The buffers of [`bias_act`] viewed as f32; `T` must be `f32`.
type F32Views<'a> = (&'a mut [f32], &'a [f32], &'a mut [f32], &'a mut [f32]);
fn bias_act_f32_views<'a, T: Real>(
    z: &'a mut [T],
    bias: &'a [T],
    s1: &'a mut [T],
    s2: &'a mut [T],
) -> F32Views<'a> {
    (
        cast_f32_mut(z),
        cast_f32(bias),
        cast_f32_mut(s1),
        cast_f32_mut(s2),
    )
}

// ---------------------------------------------------------------------------------------------
// Public passes.
// ---------------------------------------------------------------------------------------------

/// Forward activation: `x = z + bias` (broadcast over rows), then `z ← σ(x)`, `s1 = σ'(x)`,
/// `s2 = σ''(x)`. `z`, `s1`, `s2`: rows×h; `bias`: h.
#[allow(clippy::too_many_arguments)]
pub fn bias_act<T: Real>(
    path: KernelPath,
    act: Activation,
    rows: usize,
    h: usize,
    z: &mut [T],
    bias: &[T],
    s1: &mut [T],
    s2: &mut [T],
) {
    check_path(path);
    check_len("z", z.len(), rows * h);
    check_len("bias", bias.len(), h);
    check_len("s1", s1.len(), rows * h);
    check_len("s2", s2.len(), rows * h);
    if rows * h == 0 {
        return;
    }
    let reference = |z: &mut [T], s1: &mut [T], s2: &mut [T]| {
        for r in 0..rows {
            for k in 0..h {
                let i = r * h + k;
                let v = act_ref(act, z[i] + bias[k]);
                z[i] = v.a;
                s1[i] = v.d1;
                s2[i] = v.d2;
            }
        }
    };
    // f32 tanh, softplus and gelu have fast twins; f64 runs the reference formulas everywhere.
    let fast_f32 = path != KernelPath::Reference && is_f32::<T>();
    macro_rules! fast_f32_act {
        ($act:expr) => {{
            let (z, bias, s1, s2) = bias_act_f32_views(z, bias, s1, s2);
            dispatch!(
                path,
                bias_f32(h, z, bias, s1, s2, $act),
                reference: unreachable!("the match guard excludes the reference path")
            )
        }};
    }
    match act {
        Activation::Linear => dispatch!(
            path,
            bias_linear(h, z, bias, s1, s2),
            reference: reference(z, s1, s2)
        ),
        Activation::Relu => dispatch!(
            path,
            bias_relu(h, z, bias, s1, s2),
            reference: reference(z, s1, s2)
        ),
        Activation::Tanh if fast_f32 => fast_f32_act!(tanh_act_f32),
        Activation::Softplus if fast_f32 => fast_f32_act!(softplus_f32),
        Activation::Gelu if fast_f32 => fast_f32_act!(gelu_f32),
        Activation::Tanh | Activation::Softplus | Activation::Gelu => reference(z, s1, s2),
    }
}

/// `z ← z + bias` broadcast over rows (the output layer has no activation). `z`: rows×h; `bias`: h.
pub fn add_bias<T: Real>(path: KernelPath, rows: usize, h: usize, z: &mut [T], bias: &[T]) {
    check_path(path);
    check_len("z", z.len(), rows * h);
    check_len("bias", bias.len(), h);
    if rows * h == 0 {
        return;
    }
    dispatch!(path, add_bias(h, z, bias), reference: {
        for r in 0..rows {
            for k in 0..h {
                z[r * h + k] += bias[k];
            }
        }
    })
}

/// Backward through the activation: `g = da ⊙ s1` and the HVP cache `e = da ⊙ s2`.
/// All five buffers have the same length (rows×h).
pub fn bwd_act<T: Real>(path: KernelPath, da: &[T], s1: &[T], s2: &[T], g: &mut [T], e: &mut [T]) {
    check_path(path);
    let n = da.len();
    check_len("s1", s1.len(), n);
    check_len("s2", s2.len(), n);
    check_len("g", g.len(), n);
    check_len("e", e.len(), n);
    dispatch!(path, bwd(da, s1, s2, g, e), reference: {
        for i in 0..n {
            g[i] = da[i] * s1[i];
            e[i] = da[i] * s2[i];
        }
    })
}

/// R-forward through bias and activation for `b` directions: `rz ← rz + c_j` (direction `j`'s bias
/// direction, broadcast over rows), then `ra = s1 ⊙ rz` (`s1` broadcast over directions).
/// `rz`, `ra`: rows×(b·h); `c`: b×h; `s1`: rows×h.
#[allow(clippy::too_many_arguments)]
pub fn rfwd_act<T: Real>(
    path: KernelPath,
    rows: usize,
    b: usize,
    h: usize,
    rz: &mut [T],
    c: &[T],
    s1: &[T],
    ra: &mut [T],
) {
    check_path(path);
    check_len("rz", rz.len(), rows * b * h);
    check_len("c", c.len(), b * h);
    check_len("s1", s1.len(), rows * h);
    check_len("ra", ra.len(), rows * b * h);
    if rows * b * h == 0 {
        return;
    }
    dispatch!(path, rfwd(b, h, rz, c, s1, ra), reference: {
        for r in 0..rows {
            for j in 0..b {
                for k in 0..h {
                    let i = (r * b + j) * h + k;
                    let v = rz[i] + c[j * h + k];
                    rz[i] = v;
                    ra[i] = s1[r * h + k] * v;
                }
            }
        }
    })
}

/// R-backward through the activation for `b` directions:
/// `rg = rda ⊙ s1 + e ⊙ rz` (`s1`, `e` broadcast over directions); with `e = None` the
/// Gauss–Newton variant `rg = rda ⊙ s1`.
/// `rda`, `rz`, `rg`: rows×(b·h); `s1`, `e`: rows×h. `rz` is unused (may be empty) when `e` is `None`.
#[allow(clippy::too_many_arguments)]
pub fn rbwd_act<T: Real>(
    path: KernelPath,
    rows: usize,
    b: usize,
    h: usize,
    rda: &[T],
    s1: &[T],
    e: Option<&[T]>,
    rz: &[T],
    rg: &mut [T],
) {
    check_path(path);
    check_len("rda", rda.len(), rows * b * h);
    check_len("s1", s1.len(), rows * h);
    check_len("rg", rg.len(), rows * b * h);
    if let Some(e) = e {
        check_len("e", e.len(), rows * h);
        check_len("rz", rz.len(), rows * b * h);
    }
    if rows * b * h == 0 {
        return;
    }
    match e {
        Some(e) => dispatch!(path, rbwd_full(b, h, rda, s1, e, rz, rg), reference: {
            for r in 0..rows {
                for j in 0..b {
                    for k in 0..h {
                        let i = (r * b + j) * h + k;
                        rg[i] = rda[i] * s1[r * h + k] + e[r * h + k] * rz[i];
                    }
                }
            }
        }),
        None => dispatch!(path, rbwd_gn(b, h, rda, s1, rg), reference: {
            for r in 0..rows {
                for j in 0..b {
                    for k in 0..h {
                        let i = (r * b + j) * h + k;
                        rg[i] = rda[i] * s1[r * h + k];
                    }
                }
            }
        }),
    }
}

/// Column sums `out[j] = Σ_i m[i·ld + j]` (`accumulate = true`: `out[j] += …`), added in row order
/// so the result is deterministic. `m` holds `rows` rows of `cols` values with row stride
/// `ld ≥ cols` (the last row may end at `cols`); `out`: cols.
pub fn col_sums<T: Real>(
    path: KernelPath,
    rows: usize,
    cols: usize,
    m: &[T],
    ld: usize,
    out: &mut [T],
    accumulate: bool,
) {
    check_path(path);
    assert!(ld >= cols, "col_sums: row stride ld = {ld} < cols = {cols}");
    let need = if rows == 0 { 0 } else { (rows - 1) * ld + cols };
    assert!(
        m.len() >= need,
        "col_sums: `m` has {} elements, {rows} rows of stride {ld} need {need}",
        m.len()
    );
    check_len("out", out.len(), cols);
    if !accumulate {
        out.fill(T::ZERO);
    }
    if rows * cols == 0 {
        return;
    }
    dispatch!(path, col_sums(rows, cols, m, ld, out), reference: {
        for (j, o) in out.iter_mut().enumerate() {
            let mut s = *o;
            for i in 0..rows {
                s += m[i * ld + j];
            }
            *o = s;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−4, 4) with about 1 in 16 exactly zero (hits relu's kink).
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> f64 {
            let x = crate::kernels::splitmix64(&mut self.0);
            if x.is_multiple_of(16) {
                0.0
            } else {
                (x >> 11) as f64 / (1u64 << 53) as f64 * 8.0 - 4.0
            }
        }
        fn vec<T: Real>(&mut self, n: usize) -> Vec<T> {
            (0..n).map(|_| T::from_f64(self.next())).collect()
        }
    }

    fn nan<T: Real>(n: usize) -> Vec<T> {
        vec![T::from_f64(f64::NAN); n]
    }

    const DIMS: [usize; 5] = [0, 1, 7, 17, 33];

    /// (rows, h) pairs: every combination of `DIMS`, plus long rows and many rows.
    fn shapes() -> Vec<(usize, usize)> {
        let mut s: Vec<_> = DIMS
            .iter()
            .flat_map(|&r| DIMS.iter().map(move |&h| (r, h)))
            .collect();
        s.extend([(1003, 7), (1003, 33), (3, 1003), (1, 1003)]);
        s
    }

    /// Allowed difference `|got − want| ≤ max(abs, rel·|want|)`; both 0: bitwise equal.
    #[derive(Clone, Copy, Debug)]
    struct Tol {
        abs: f64,
        rel: f64,
    }

    const EXACT: Tol = Tol { abs: 0.0, rel: 0.0 };

    /// `got` was NaN-poisoned before the kernel ran: every element must be written (finite here,
    /// inputs are finite) and within `tol` of `want`.
    fn assert_close<T: Real>(what: &str, got: &[T], want: &[T], tol: Tol) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let (g, w) = (g.to_f64(), w.to_f64());
            assert!(
                g.is_finite() && w.is_finite(),
                "{what}[{i}] not written: {g} / {w}"
            );
            if tol.abs == 0.0 && tol.rel == 0.0 {
                assert_eq!(g.to_bits(), w.to_bits(), "{what}[{i}]: {g} vs {w}");
            } else {
                assert!(
                    (g - w).abs() <= tol.abs.max(tol.rel * w.abs()),
                    "{what}[{i}]: {g} vs {w} ({tol:?})"
                );
            }
        }
    }

    /// Tolerances for (a, s1, s2) of `bias_act` against the reference path: exact except where
    /// the fast path uses an f32 approximation:
    /// - rational tanh: |δa| ≤ 4e-8 + 3e-8 rounding of the reference, propagated through
    ///   s1 = (1−a)(1+a) and s2 = −2a·s1;
    /// - softplus, gelu: f64 formulas with relative error ≲ 1e-14 rounded to f32, so within 1 ulp
    ///   of the reference: relative 4e-7 (a few ulps), absolute 1e-37 for the tiniest values.
    fn bias_act_tol<T: Real>(act: Activation, path: KernelPath) -> [Tol; 3] {
        if !is_f32::<T>() || path == KernelPath::Reference {
            return [EXACT; 3];
        }
        let abs = |abs| Tol { abs, rel: 0.0 };
        let near = Tol {
            abs: 1e-37,
            rel: 4e-7,
        };
        match act {
            Activation::Tanh => [abs(1e-7), abs(2.5e-7), abs(5e-7)],
            Activation::Softplus | Activation::Gelu => [near; 3],
            Activation::Relu | Activation::Linear => [EXACT; 3],
        }
    }

    fn bias_act_case<T: Real>() {
        let mut gen = Gen(1);
        for path in KernelPath::supported() {
            for act in Activation::ALL {
                // Inputs in [−4, 4), and in [−32, 32) for the tails of the activations.
                for ((rows, h), scale) in shapes().into_iter().zip([1.0, 8.0].into_iter().cycle()) {
                    let z0: Vec<T> = gen
                        .vec::<T>(rows * h)
                        .into_iter()
                        .map(|v| v * T::from_f64(scale))
                        .collect();
                    let bias: Vec<T> = gen.vec(h);
                    let run = |p: KernelPath| {
                        let (mut z, mut s1, mut s2) = (z0.clone(), nan(rows * h), nan(rows * h));
                        bias_act(p, act, rows, h, &mut z, &bias, &mut s1, &mut s2);
                        (z, s1, s2)
                    };
                    let want = run(KernelPath::Reference);
                    let got = run(path);
                    let tol = bias_act_tol::<T>(act, path);
                    let what = format!("bias_act {} {act} {path} {rows}x{h}", T::NAME);
                    assert_close(&format!("{what} a"), &got.0, &want.0, tol[0]);
                    assert_close(&format!("{what} s1"), &got.1, &want.1, tol[1]);
                    assert_close(&format!("{what} s2"), &got.2, &want.2, tol[2]);
                    // The reference agrees with the scalar definition element by element.
                    for i in 0..rows * h {
                        let v = act_ref(act, z0[i] + bias[i % h]);
                        assert_eq!(want.0[i].to_f64().to_bits(), v.a.to_f64().to_bits());
                    }
                }
            }
        }
    }

    #[test]
    fn bias_act_fast_matches_reference_f32() {
        bias_act_case::<f32>();
    }

    #[test]
    fn bias_act_fast_matches_reference_f64() {
        bias_act_case::<f64>();
    }

    #[test]
    fn fast_paths_agree_bitwise() {
        // AVX2 and AVX-512 evaluate identical per-element formulas.
        let fast: Vec<_> = KernelPath::supported()
            .into_iter()
            .filter(|&p| p != KernelPath::Reference)
            .collect();
        let (rows, h) = (37, 203);
        let mut gen = Gen(7);
        let z0: Vec<f32> = gen.vec(rows * h);
        let bias: Vec<f32> = gen.vec(h);
        for act in Activation::ALL {
            let outs: Vec<_> = fast
                .iter()
                .map(|&p| {
                    let (mut z, mut s1, mut s2) = (z0.clone(), nan(rows * h), nan(rows * h));
                    bias_act(p, act, rows, h, &mut z, &bias, &mut s1, &mut s2);
                    (z, s1, s2)
                })
                .collect();
            for o in &outs[1..] {
                assert_close(&format!("{act} a"), &o.0, &outs[0].0, EXACT);
                assert_close(&format!("{act} s1"), &o.1, &outs[0].1, EXACT);
                assert_close(&format!("{act} s2"), &o.2, &outs[0].2, EXACT);
            }
        }
    }

    #[test]
    fn tanh_kernel_special_inputs() {
        let z0 = [
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            0.0,
            -0.0,
            1e-30,
            50.0,
            -50.0,
        ];
        let n = z0.len();
        for path in KernelPath::supported() {
            let (mut z, mut s1, mut s2) = (z0.to_vec(), nan::<f32>(n), nan::<f32>(n));
            // A bias of −0 keeps the sign of a zero input (−0 + −0 = −0).
            bias_act(
                path,
                Activation::Tanh,
                1,
                n,
                &mut z,
                &[-0.0; 8],
                &mut s1,
                &mut s2,
            );
            assert_eq!(&z[..2], &[1.0, -1.0], "{path}");
            assert!(z[2].is_nan(), "{path}: tanh(NaN)");
            assert_eq!(z[3].to_bits(), 0.0f32.to_bits(), "{path}");
            assert_eq!(z[4].to_bits(), (-0.0f32).to_bits(), "{path}");
            assert!((z[5] / 1e-30 - 1.0).abs() < 2e-7, "{path}: tiny");
            assert_eq!(&z[6..], &[1.0, -1.0], "{path}");
            assert_eq!((s1[0], s2[0], s1[3], s2[3]), (0.0, 0.0, 1.0, 0.0), "{path}");
        }
    }

    #[test]
    fn softplus_gelu_kernels_match_scalar_twins() {
        // A ramp over [−40, 40.08) and 13 special inputs, in rows of an awkward width (13).
        let mut z0: Vec<f32> = (0..8008).map(|i| (i as f64 * 0.01 - 40.0) as f32).collect();
        z0.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            0.0,
            -0.0,
            1e-45,
            -1e-45,
            1e-30,
            -1e-30,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
        ]);
        let (rows, h) = (z0.len() / 13, 13);
        // A bias of −0 keeps every input as it is (x + −0 = x, also for x = −0).
        let bias = vec![-0.0f32; h];
        for path in KernelPath::supported() {
            for (act, twin) in [
                (
                    Activation::Softplus,
                    softplus_f32 as fn(f32) -> ActValues<f32>,
                ),
                (Activation::Gelu, gelu_f32),
            ] {
                let (mut z, mut s1, mut s2) = (z0.clone(), nan(z0.len()), nan(z0.len()));
                bias_act(path, act, rows, h, &mut z, &bias, &mut s1, &mut s2);
                for (i, &x) in z0.iter().enumerate() {
                    let got = [z[i], s1[i], s2[i]];
                    let reference = act_ref(act, x);
                    let want = if path == KernelPath::Reference {
                        reference
                    } else {
                        twin(x)
                    };
                    let want = [want.a, want.d1, want.d2];
                    let refv = [reference.a, reference.d1, reference.d2];
                    for k in 0..3 {
                        let what = format!("{act} {path} x = {x}: value {k}");
                        // NaN exactly where the reference has NaN (only for a NaN input).
                        assert_eq!(got[k].is_nan(), refv[k].is_nan(), "{what}: {got:?}");
                        assert_eq!(got[k].is_nan(), x.is_nan(), "{what}: {got:?}");
                        if !x.is_nan() {
                            // The kernel computes exactly the scalar twin, vectorized.
                            assert_eq!(got[k].to_bits(), want[k].to_bits(), "{what}");
                        }
                    }
                    // Limits and signed zeros are those of the reference.
                    if x.is_infinite() || x == 0.0 || x.abs() >= 1e30 {
                        let bits = |v: [f32; 3]| v.map(f32::to_bits);
                        assert_eq!(bits(got), bits(refv), "{act} {path} x = {x}");
                    }
                }
            }
        }
    }

    fn add_bias_case<T: Real>() {
        let mut gen = Gen(2);
        for path in KernelPath::supported() {
            for (rows, h) in shapes() {
                let z0: Vec<T> = gen.vec(rows * h);
                let bias: Vec<T> = gen.vec(h);
                let mut got = z0.clone();
                add_bias(path, rows, h, &mut got, &bias);
                let want: Vec<T> = (0..rows * h).map(|i| z0[i] + bias[i % h]).collect();
                assert_close(&format!("add_bias {path} {rows}x{h}"), &got, &want, EXACT);
            }
        }
    }

    #[test]
    fn add_bias_matches_reference() {
        add_bias_case::<f32>();
        add_bias_case::<f64>();
    }

    fn bwd_case<T: Real>() {
        let mut gen = Gen(3);
        for path in KernelPath::supported() {
            for (rows, h) in shapes() {
                let n = rows * h;
                let (da, s1, s2) = (gen.vec::<T>(n), gen.vec::<T>(n), gen.vec::<T>(n));
                let run = |p| {
                    let (mut g, mut e) = (nan::<T>(n), nan::<T>(n));
                    bwd_act(p, &da, &s1, &s2, &mut g, &mut e);
                    (g, e)
                };
                let (want, got) = (run(KernelPath::Reference), run(path));
                let what = format!("bwd_act {} {path} {rows}x{h}", T::NAME);
                assert_close(&format!("{what} g"), &got.0, &want.0, EXACT);
                assert_close(&format!("{what} e"), &got.1, &want.1, EXACT);
                for i in 0..n {
                    assert_eq!(want.0[i], da[i] * s1[i]);
                    assert_eq!(want.1[i], da[i] * s2[i]);
                }
            }
        }
    }

    #[test]
    fn bwd_act_matches_reference() {
        bwd_case::<f32>();
        bwd_case::<f64>();
    }

    fn rpass_case<T: Real>() {
        let mut gen = Gen(4);
        for path in KernelPath::supported() {
            for (rows, h) in shapes() {
                for b in [0, 1, 2, 7] {
                    let n = rows * b * h;
                    let rz0: Vec<T> = gen.vec(n);
                    let c: Vec<T> = gen.vec(b * h);
                    let (s1, e): (Vec<T>, Vec<T>) = (gen.vec(rows * h), gen.vec(rows * h));
                    let rda: Vec<T> = gen.vec(n);
                    let what = format!("{} {path} rows {rows} b {b} h {h}", T::NAME);

                    let rfwd = |p| {
                        let (mut rz, mut ra) = (rz0.clone(), nan::<T>(n));
                        rfwd_act(p, rows, b, h, &mut rz, &c, &s1, &mut ra);
                        (rz, ra)
                    };
                    let (want, got) = (rfwd(KernelPath::Reference), rfwd(path));
                    assert_close(&format!("rfwd rz {what}"), &got.0, &want.0, EXACT);
                    assert_close(&format!("rfwd ra {what}"), &got.1, &want.1, EXACT);
                    // Layout: direction j of row r at (r·b + j)·h.
                    for r in 0..rows {
                        for j in 0..b {
                            for k in 0..h {
                                let i = (r * b + j) * h + k;
                                let v = rz0[i] + c[j * h + k];
                                assert_eq!(want.0[i], v);
                                assert_eq!(want.1[i], s1[r * h + k] * v);
                            }
                        }
                    }

                    let rz = &want.0;
                    let rbwd = |p, e: Option<&[T]>, rz: &[T]| {
                        let mut rg = nan::<T>(n);
                        rbwd_act(p, rows, b, h, &rda, &s1, e, rz, &mut rg);
                        rg
                    };
                    let want_full = rbwd(KernelPath::Reference, Some(&e), rz);
                    let got_full = rbwd(path, Some(&e), rz);
                    assert_close(&format!("rbwd {what}"), &got_full, &want_full, EXACT);
                    let want_gn = rbwd(KernelPath::Reference, None, &[]);
                    let got_gn = rbwd(path, None, &[]);
                    assert_close(&format!("rbwd gn {what}"), &got_gn, &want_gn, EXACT);
                    for r in 0..rows {
                        for j in 0..b {
                            for k in 0..h {
                                let i = (r * b + j) * h + k;
                                let gn = rda[i] * s1[r * h + k];
                                assert_eq!(want_gn[i], gn);
                                assert_eq!(want_full[i], gn + e[r * h + k] * rz[i]);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn r_passes_match_reference() {
        rpass_case::<f32>();
        rpass_case::<f64>();
    }

    fn col_sums_case<T: Real>() {
        let mut gen = Gen(5);
        for path in KernelPath::supported() {
            for (rows, cols) in shapes() {
                let ld = cols + 3;
                // Padding columns are NaN: reading them would poison the sums.
                let mut m: Vec<T> = nan(rows * ld);
                for i in 0..rows {
                    for j in 0..cols {
                        m[i * ld + j] = T::from_f64(gen.next());
                    }
                }
                let naive = |init: &[T]| -> Vec<T> {
                    (0..cols)
                        .map(|j| {
                            let mut s = init[j];
                            for i in 0..rows {
                                s += m[i * ld + j];
                            }
                            s
                        })
                        .collect()
                };
                let what = format!("col_sums {} {path} {rows}x{cols}", T::NAME);
                let mut out = nan::<T>(cols);
                col_sums(path, rows, cols, &m, ld, &mut out, false);
                assert_close(&what, &out, &naive(&vec![T::ZERO; cols]), EXACT);

                let init: Vec<T> = gen.vec(cols);
                let mut acc = init.clone();
                col_sums(path, rows, cols, &m, ld, &mut acc, true);
                assert_close(&format!("{what} accumulate"), &acc, &naive(&init), EXACT);

                // The last row may end at `cols` (no trailing padding).
                if rows > 0 {
                    let short = &m[..(rows - 1) * ld + cols];
                    let mut out2 = nan::<T>(cols);
                    col_sums(path, rows, cols, short, ld, &mut out2, false);
                    assert_close(&format!("{what} short"), &out2, &out, EXACT);
                }
            }
        }
    }

    #[test]
    fn col_sums_matches_naive() {
        col_sums_case::<f32>();
        col_sums_case::<f64>();
    }

    #[test]
    #[should_panic(expected = "`bias` has 3 elements")]
    fn length_mismatch_is_reported() {
        let (mut z, mut s1, mut s2) = (vec![0.0f32; 8], vec![0.0f32; 8], vec![0.0f32; 8]);
        bias_act(
            KernelPath::Reference,
            Activation::Tanh,
            2,
            4,
            &mut z,
            &[0.0; 3],
            &mut s1,
            &mut s2,
        );
    }
}
