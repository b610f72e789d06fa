//! Kernels: everything `unsafe`, SIMD or CPU-specific in the crate lives here, each fast kernel
//! next to a plain reference twin that the tests compare it with.
//!
//! - [`path`]: the [`KernelPath`] (reference / AVX2 / AVX-512), detected once at run time,
//!   overridable with `EOSBENCH_KERNEL`, recorded in result files.
//! - [`special`]: `erf`/`erfc` (f64), the vectorizable rational f32 `tanh`, and branch-free f64
//!   `exp`, `ln(1+u)`, `erfcx`, `erfc` for SIMD lanes.
//! - [`act`]: scalar reference `σ`, `σ'`, `σ''` of every activation, and the fast (vectorizable)
//!   f32 softplus and GELU twins.
//! - [`elementwise`]: the fused per-layer passes (bias + activation + derivative caches, backward
//!   products, R-forward/R-backward products, column sums), dispatched on the path.
//! - [`gemm`]: faer GEMMs on row-major buffers, cut into tiles that depend on the shape only.
//! - [`sgemm`] (x86-64): eosbench's own f32 AVX-512 GEMM for the first layer's products, on a
//!   data matrix packed once, and for the later layers' per-block products; faster than faer
//!   on those shapes, same results at any tiling.
//! - [`strassen`] (x86-64): one level of Strassen's algorithm on top of [`sgemm`] for the
//!   first layer's wide products (a block of directions, wide nets): 7 half-size products
//!   instead of 8, with the data matrix's sums formed once.
//!
//! Elementwise kernels are sequential and callers parallelize over row blocks; the GEMM drivers
//! take the thread pool as an argument. Every output element is written by exactly one call and
//! sums run in a fixed order, so results are independent of the thread count for a given path
//! (DESIGN §5).

use crate::real::Real;
use std::any::TypeId;

pub mod act;
pub mod elementwise;
pub mod gemm;
pub mod path;
#[cfg(target_arch = "x86_64")]
pub mod sgemm;
pub mod special;
#[cfg(target_arch = "x86_64")]
pub mod strassen;

/// Whether `T` is `f32` (the type the fast kernels are written for).
pub(crate) fn is_f32<T: Real>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
}

/// `x` viewed as `&mut [f32]`; `T` must be `f32`.
pub(crate) fn cast_f32_mut<T: Real>(x: &mut [T]) -> &mut [f32] {
    assert!(is_f32::<T>(), "cast_f32_mut called with T = {}", T::NAME);
    // SAFETY: T and f32 are the same type (equal TypeId, asserted above), so the pointer, length,
    // alignment and exclusive borrow of `x` describe a valid `[f32]` for the same lifetime.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f32>(), x.len()) }
}

/// `x` viewed as `&[f32]`; `T` must be `f32`.
pub(crate) fn cast_f32<T: Real>(x: &[T]) -> &[f32] {
    assert!(is_f32::<T>(), "cast_f32 called with T = {}", T::NAME);
    // SAFETY: T and f32 are the same type (equal TypeId, asserted above); same pointer, length
    // and lifetime.
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len()) }
}

/// The splitmix64 step: a deterministic stream of well-mixed 64-bit values for kernel tests.
#[cfg(test)]
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut x = *state;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub use act::{act_d3_f64, act_f64, act_ref, gelu_f32, softplus_f32, tanh_act_f32, ActValues};
pub use elementwise::{add_bias, bias_act, bwd_act, col_sums, rbwd_act, rfwd_act};
pub use path::{kernel_path, try_kernel_path, KernelPath, KernelPathError, KERNEL_ENV};
pub use special::{erf, erfc, tanh_f32};

/// Operands and f64 references for the GEMM tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::splitmix64;

    /// `len` values in [−0.5, 0.5) from seed `seed`.
    pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| (splitmix64(&mut s) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect()
    }

    /// `Σ_p A(i, p)·B(p, j)` in f64 and `Σ_p |A(i, p)·B(p, j)|` (the error scale).
    pub(crate) fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: impl Fn(usize, usize) -> f32,
        b: impl Fn(usize, usize) -> f32,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut c = vec![0f64; m * n];
        let mut scale = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let t = a(i, p) as f64 * b(p, j) as f64;
                    c[i * n + j] += t;
                    scale[i * n + j] += t.abs();
                }
            }
        }
        (c, scale)
    }
}
