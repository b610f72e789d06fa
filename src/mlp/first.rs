//! The first layer's products, `X·Wᵀ` (forward), `X·Vᵀ` (R-forward) and `gᵀ·X` (sums over
//! examples): the largest of every pass at the Figure-1 shape (`d = 3072` inputs against
//! `h = 200` units).
//!
//! In f32 on AVX-512 CPUs they run on eosbench's own GEMM ([`kernels::sgemm`]) with `X` packed
//! once, by the first sum that needs it (an extra copy of `X`: 61 MB for cifar10-5k; a net that
//! only evaluates the loss never makes it), unless [`NetConfig::own_gemm`] is off; otherwise,
//! and always in f64, on faer.
//!
//! [`kernels::sgemm`]: crate::kernels::sgemm

use super::{rows_of, Data, NetConfig};
use crate::kernels::gemm::{gemm_par, gemm_rows, view, view_mut};
use crate::kernels::{self, KernelPath};
use crate::par::Par;
use crate::real::Real;
use faer::Accum;

/// Examples per task of the first layer's forward and R-forward products.
pub(super) const BAND: usize = 512;

/// Which GEMM runs the first layer, with its packed operands.
pub(super) enum FirstLayer {
    Faer,
    #[cfg(target_arch = "x86_64")]
    Own {
        /// `X` (`n × d`) packed as the right operand of the sums, once the first sum runs.
        x: Option<kernels::sgemm::PackedB>,
        /// `Wᵀ` or the stacked `Vᵀ` of the current call.
        w: kernels::sgemm::PackedB,
        /// Products at least this wide, over at most `max_rows` examples (a physical batch of
        /// the curvature products), run as Strassen's 7 half-size products
        /// ([`NetConfig::strassen_min_width`]). A gradient over more examples than a batch
        /// does not: its quadrant sums would be a second copy of them all.
        min_width: usize,
        max_rows: usize,
        /// The quadrant sums of `X` for each row range (physical batch) that has needed them.
        split: Vec<((usize, usize), kernels::strassen::SplitX)>,
        /// The Strassen operands packed from `Wᵀ` or the stacked `Vᵀ` of the current call.
        w_split: Vec<kernels::sgemm::PackedB>,
    },
}

/// The quadrant sums of the examples `r0 .. r0 + rows` of `x` (`d` columns), formed on first
/// use and kept.
#[cfg(target_arch = "x86_64")]
fn split_of<'a>(
    split: &'a mut Vec<((usize, usize), kernels::strassen::SplitX)>,
    par: Par,
    x: &[f32],
    (r0, rows): (usize, usize),
    d: usize,
) -> &'a kernels::strassen::SplitX {
    let at = match split.iter().position(|(range, _)| *range == (r0, rows)) {
        Some(at) => at,
        None => {
            let sx = kernels::strassen::SplitX::new(par, rows_of(x, r0, rows, d), rows, d);
            split.push(((r0, rows), sx));
            split.len() - 1
        }
    };
    &split[at].1
}

impl FirstLayer {
    pub(super) fn new<T: Real>(cfg: &NetConfig, path: KernelPath) -> Self {
        #[cfg(target_arch = "x86_64")]
        if cfg.own_gemm
            && path == KernelPath::Avx512
            && kernels::is_f32::<T>()
            && kernels::sgemm::available()
        {
            return FirstLayer::Own {
                x: None,
                w: Default::default(),
                min_width: cfg.strassen_min_width,
                max_rows: cfg.batch_rows(),
                split: Vec::new(),
                w_split: Vec::new(),
            };
        }
        let _ = (cfg, path);
        FirstLayer::Faer
    }

    /// The name recorded with timings: `"own"` or `"faer"`.
    pub(super) fn name(&self) -> &'static str {
        match self {
            FirstLayer::Faer => "faer",
            #[cfg(target_arch = "x86_64")]
            FirstLayer::Own { .. } => "own",
        }
    }

    /// Whether a product over `rows` examples with `m` output columns runs as Strassen's.
    pub(super) fn splits(&self, rows: usize, d: usize, m: usize) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            FirstLayer::Own {
                min_width,
                max_rows,
                ..
            } => m >= *min_width && rows <= *max_rows && kernels::strassen::applies(rows, d, m),
            _ => {
                let _ = (rows, d, m);
                false
            }
        }
    }

    /// `C = X_rows·Wᵀ` for the examples `r0 .. r0 + rows` of the data and `W` of `m × d`; `C`
    /// is `rows × m`. Bands of [`BAND`] rows, one task each.
    ///
    /// `same_w`: `w` is the operand of the previous call, unchanged (a later physical batch of
    /// the same product), so the own GEMM reuses its packing of `Wᵀ` instead of packing it
    /// again. That packing (`b·h × d`: 9.8 MB for a block of 4 at h = 200) would otherwise be
    /// repeated for every batch.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn times_wt<T: Real>(
        &mut self,
        par: Par,
        data: &Data<T>,
        (r0, rows): (usize, usize),
        (w, same_w): (&[T], bool),
        m: usize,
        c: &mut [T],
    ) {
        let d = data.d;
        let x = rows_of(&data.x, r0, rows, d);
        #[cfg(target_arch = "x86_64")]
        let split = self.splits(rows, d, m);
        match self {
            FirstLayer::Faer => gemm_rows(
                par,
                view_mut(c, rows, m),
                Accum::Replace,
                view(x, rows, d),
                view(w, m, d).transpose(),
                BAND,
            ),
            #[cfg(target_arch = "x86_64")]
            FirstLayer::Own {
                split: sums,
                w_split,
                ..
            } if split => {
                let sx = split_of(sums, par, kernels::cast_f32(&data.x), (r0, rows), d);
                let wf = kernels::cast_f32(w);
                if !same_w {
                    kernels::strassen::pack_right(par, wf, m, d, w_split);
                }
                let c = kernels::cast_f32_mut(c);
                kernels::strassen::rows_times(par, sx, w_split, c, BAND);
            }
            #[cfg(target_arch = "x86_64")]
            FirstLayer::Own { w: packed, .. } => {
                if same_w {
                    debug_assert!(packed.k() == d && packed.n() == m, "same_w: not packed");
                } else {
                    kernels::sgemm::pack_transposed(par, kernels::cast_f32(w), m, d, packed);
                }
                let (x, c) = (kernels::cast_f32(x), kernels::cast_f32_mut(c));
                kernels::sgemm::rows_times(par, x, rows, packed, c, BAND);
            }
        }
    }

    /// `C (=|+=) gᵀ·X_rows`: the sum over the examples `r0 .. r0 + rows` of the data of `g`
    /// (`rows × m`); `C` is `m × d`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sum<T: Real>(
        &mut self,
        par: Par,
        g: &[T],
        m: usize,
        data: &Data<T>,
        (r0, rows): (usize, usize),
        c: &mut [T],
        accum: Accum,
    ) {
        let d = data.d;
        #[cfg(target_arch = "x86_64")]
        let split = self.splits(rows, d, m);
        match self {
            FirstLayer::Faer => {
                gemm_par(
                    par,
                    view_mut(c, m, d),
                    accum,
                    view(g, rows, m).transpose(),
                    view(rows_of(&data.x, r0, rows, d), rows, d),
                );
            }
            #[cfg(target_arch = "x86_64")]
            FirstLayer::Own { split: sums, .. } if split => {
                let sx = split_of(sums, par, kernels::cast_f32(&data.x), (r0, rows), d);
                let (g, c) = (kernels::cast_f32(g), kernels::cast_f32_mut(c));
                kernels::strassen::transposed_times(par, g, m, sx, c, accum == Accum::Add);
            }
            #[cfg(target_arch = "x86_64")]
            FirstLayer::Own { x: packed, .. } => {
                let packed = packed.get_or_insert_with(|| {
                    let mut x = kernels::sgemm::PackedB::default();
                    kernels::sgemm::pack_rows(par, kernels::cast_f32(&data.x), data.n, d, &mut x);
                    x
                });
                let (g, c) = (kernels::cast_f32(g), kernels::cast_f32_mut(c));
                let add = accum == Accum::Add;
                kernels::sgemm::transposed_times(par, g, rows, m, packed, r0, c, add);
            }
        }
    }
}
