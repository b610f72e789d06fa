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
//!
//! Kernels are sequential; callers parallelize over row blocks. Every output element is written
//! by exactly one call and sums run in a fixed order, so results are independent of the thread
//! count for a given path (DESIGN §5).

pub mod act;
pub mod elementwise;
pub mod gemm;
pub mod path;
pub mod special;

/// The splitmix64 step: a deterministic stream of well-mixed 64-bit values for kernel tests.
#[cfg(test)]
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut x = *state;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub use act::{act_f64, act_ref, gelu_f32, softplus_f32, tanh_act_f32, ActValues};
pub use elementwise::{add_bias, bias_act, bwd_act, col_sums, rbwd_act, rfwd_act};
pub use path::{kernel_path, try_kernel_path, KernelPath, KernelPathError, KERNEL_ENV};
pub use special::{erf, erfc, tanh_f32};
