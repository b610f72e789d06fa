//! eosbench's own f32 GEMM on AVX-512: the first layer's products with `X` packed once, and the
//! later layers' per-block products.
//!
//! The first layer dominates every pass at the Figure-1 shape (`d = 3072` inputs against
//! `h = 200` units): the forward `X·Wᵀ`, the R-forward `X·Vᵀ` and the sums `gᵀ·X` over examples
//! are 83 % of a Hessian-vector product's FLOPs. All three read the same data matrix, so it is
//! packed once per data set into the panel layout the micro-kernel streams ([`PackedB`]); the
//! weights (or directions) are packed once per call. The later layers' small products, one
//! block of examples at a time ([`times_packed`]), use the same kernel with their weights and
//! directions packed once per point or product.
//!
//! - Micro-kernel: an `8 × 48` tile of `C` in 24 registers; per step of the inner dimension it
//!   loads 3 vectors of packed `B` and broadcasts 8 elements of `A` read in place (8 rows of `X`,
//!   or 8 consecutive columns of `g` in the sums), 24 FMAs.
//! - Blocking: `B`'s panels run in groups of at most 10 (480 columns) and the inner dimension
//!   in blocks of [`KC`]; within a block every 8-row panel of `A` (in L1) sweeps over the
//!   group's micro-panels of `B` (in L2), and prefetches its share of the next block, so the
//!   stream of `X` from memory overlaps the arithmetic. A column-major `A` with long columns
//!   (the sums of a block of directions) has each row panel copied to a contiguous buffer first.
//! - Summation order: each block of [`KC`] steps is summed from zero in registers and then added
//!   to the element of `C` (its old value, or the blocks before), block by block in order: a
//!   two-level sum whose rounding error grows like `KC + k/KC`, not `k`. The order does not
//!   depend on how `C` is cut into tiles, so results are bit-identical for every thread count
//!   (DESIGN §5).
//!
//! The safe entry points ([`pack_rows`], [`pack_transposed`], [`rows_times`],
//! [`transposed_times`], [`times_packed`]) check shapes, and panic on CPUs without AVX-512F
//! (ask [`available`]).

use crate::par::Par;
use std::arch::x86_64::*;

/// Rows of the micro-tile (broadcast elements of `A` per step).
pub const MR: usize = 8;
/// Columns of the micro-tile (three 16-lane vectors).
pub const NR: usize = 48;
/// Block of the inner dimension (part of the summation order).
pub const KC: usize = 256;
/// The largest block of the inner dimension any caller may ask for (see `sgemm_packed`).
pub(super) const KC_MAX: usize = 384;
/// Most panels of `B` swept by the row panels of `A` before moving on (a `KC × 480` block of
/// `B`, 480 KB, stays in L2); a product with more is cut into equal groups.
const GROUP: usize = 10;
/// Column strides of `A` (elements) from which its row panels are packed. A panel read in place
/// touches one line per step of the inner dimension, `KC` lines spread over `KC · stride · 4`
/// bytes: past 384 KB (96 pages, the first-level data TLB of these cores) every step of the
/// micro-kernel misses that TLB. Measured on the first-layer sum at h = 200, 1 thread (phases
/// example, three runs each way): a block of 4 directions (stride 800) took 26.0–26.2 ms per
/// direction packed and 26.3–27.1 in place; at stride 200 (one direction) packing gained
/// nothing.
const PACK_A_STRIDE: usize = 384;
// Packing moves one 256-bit vector per step: the micro-tile is 8 rows.
const _: () = assert!(MR == 8);

/// A read-only operand: element `(i, j)` at `ptr + i·rs + j·cs` (in elements).
#[derive(Clone, Copy, Debug)]
pub(super) struct Operand {
    pub(super) ptr: *const f32,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

/// An operand read as the sum (or difference, `neg`) of two: `first ± second`, element by
/// element, formed where the kernel copies it (packing `B`, or an 8-row panel of `A`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pair {
    pub(super) first: Operand,
    pub(super) second: Option<(Operand, bool)>,
}

impl From<Operand> for Pair {
    fn from(first: Operand) -> Self {
        Pair {
            first,
            second: None,
        }
    }
}

/// One destination of a product: `C` at `c` (row stride `ldc`, unit column stride). With
/// `add` the product is added to (`neg`: subtracted from) the old value, block of [`KC`] by
/// block; without, the first block overwrites it (with the negated sum when `neg`).
///
/// `after` (a second destination only, behind a first one without `add`): written once,
/// after the last block, from the first destination's final value (the whole product)
/// instead of block by block.
#[derive(Clone, Copy, Debug)]
pub(super) struct Out {
    pub(super) c: *mut f32,
    pub(super) ldc: usize,
    pub(super) add: bool,
    pub(super) neg: bool,
    pub(super) after: bool,
}

impl Out {
    /// `self` moved to element `(i, j)` of its `C`.
    ///
    /// # Safety
    /// The element lies inside the destination's allocation.
    pub(super) unsafe fn at(self, i: usize, j: usize) -> Out {
        Out {
            c: self.c.add(i * self.ldc + j),
            ..self
        }
    }
}

// SAFETY: an `Operand` only reads, and is built from a borrowed slice that outlives the call
// whose tasks share it.
unsafe impl Send for Operand {}
unsafe impl Sync for Operand {}

/// `B` (`k × n`) packed for the micro-kernel: `NR`-column panels, each holding all `k` rows
/// contiguously, so element `(p, j)` is at `[(j / NR · k + p) · NR + j % NR]`; the columns past
/// `n` in the last panel are zero. Any run of rows of a panel is a ready micro-panel, so one
/// packing serves every blocking of the inner dimension (and every row range of it).
#[derive(Clone, Debug, Default)]
pub struct PackedB {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl PackedB {
    /// Rows (the inner dimension of the products it feeds).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of `NR`-column panels.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Packs `B` (`k × n`, element `(p, j)` at `b.ptr + p·b.rs + j·b.cs`), reusing the storage:
    /// pieces of [`PACK_ROWS`] rows of a panel, one task each on the pool of `par`.
    ///
    /// The storage is zeroed only when the shape changes (the pieces never write the padding
    /// past `n`), and a first or larger allocation comes zeroed from the allocator, so the
    /// pages are first touched by the parallel copy: packing the 614 MB of an n = 50 000 `X`
    /// does not start with a zero-fill on one thread.
    ///
    /// # Safety
    /// `b` is valid for its shape and strides.
    pub(super) unsafe fn pack(&mut self, par: Par, k: usize, n: usize, b: Pair) {
        let panels = n.div_ceil(NR);
        let len = panels * k * NR;
        if (self.k, self.n) != (k, n) {
            if self.data.capacity() >= len {
                self.data.clear();
                self.data.resize(len, 0.0);
            } else {
                self.data = vec![0.0; len];
            }
        }
        self.k = k;
        self.n = n;
        if k == 0 {
            return;
        }
        let pieces = self
            .data
            .chunks_mut(k * NR)
            .enumerate()
            .flat_map(|(jp, panel)| {
                let rows = panel.chunks_mut(PACK_ROWS * NR).enumerate();
                rows.map(move |(q, dst)| (jp, q * PACK_ROWS, dst))
            });
        // SAFETY (each piece): rows `p0 ..` of panel `jp` of `B` lie inside `b` (the caller's
        // promise), and `dst` is the piece's own part of the packing.
        par.each(pieces, |(jp, p0, dst)| unsafe {
            pack_piece(b, jp, p0, n, dst)
        });
    }
}

/// Rows of a panel packed per task (see [`PackedB::pack`]).
const PACK_ROWS: usize = 512;

/// Rows `p0 .. p0 + dst.len() / NR` of panel `jp` of `B` (`n` columns) into `dst`.
///
/// # Safety
/// Those rows of `b` (both operands) are valid for their strides.
unsafe fn pack_piece(b: Pair, jp: usize, p0: usize, n: usize, dst: &mut [f32]) {
    let cols = NR.min(n - jp * NR);
    let rows = dst.len() / NR;
    let (b1, second) = (b.first, b.second);
    // `B`'s element `(p, j)`, formed as the pair says.
    let (b2, sign) = match second {
        Some((b2, neg)) => (b2, if neg { -1.0f32 } else { 1.0 }),
        None => (b1, 0.0),
    };
    let pair = second.is_some();
    if b1.cs == 1 && b2.cs == 1 {
        for (p, row) in dst.chunks_exact_mut(NR).enumerate() {
            let src = std::slice::from_raw_parts(b1.ptr.add((p0 + p) * b1.rs + jp * NR), cols);
            if pair {
                let src2 = std::slice::from_raw_parts(b2.ptr.add((p0 + p) * b2.rs + jp * NR), cols);
                for ((d, &u), &v) in row[..cols].iter_mut().zip(src).zip(src2) {
                    *d = u + sign * v;
                }
            } else {
                row[..cols].copy_from_slice(src);
            }
        }
    } else {
        // Column by column in blocks of rows, so that reads run along `B`'s columns (rows of
        // the matrix it is the transpose of) and writes stay in a few lines.
        const PB: usize = 64;
        let mut q = 0;
        while q < rows {
            let pn = PB.min(rows - q);
            for jj in 0..cols {
                let j = jp * NR + jj;
                let src = b1.ptr.add(j * b1.cs + (p0 + q) * b1.rs);
                if pair {
                    let src2 = b2.ptr.add(j * b2.cs + (p0 + q) * b2.rs);
                    for p in 0..pn {
                        dst[(q + p) * NR + jj] = *src.add(p * b1.rs) + sign * *src2.add(p * b2.rs);
                    }
                } else {
                    for p in 0..pn {
                        dst[(q + p) * NR + jj] = *src.add(p * b1.rs);
                    }
                }
            }
            q += pn;
        }
    }
}

/// `C (=|+=|-=) A·B[k0 .. k0+kk, panels jp0 .. jp0+np]`, the inner dimension in blocks of
/// `kcb` (at most [`KC_MAX`]; [`KC`] but for Strassen's products), for each destination in `outs`
/// (one or two; each `m × cols`, its first column that of column `jp0·NR` of `B`); `A` is
/// `m × kk` with `a.rs == 1` or `a.cs == 1`. A second operand of `A` (`A = A₁ ± A₂`) needs
/// `a.rs == 1` and `m` a multiple of [`MR`]: it is summed into each 8-row panel's copy.
///
/// The panels run in groups of [`GROUP`], and for each group the inner dimension in blocks of
/// [`KC`]; for each block, every 8-row panel of `A` (in L1) sweeps over the group's micro-panels
/// of `B` (in L2).
///
/// # Safety
/// The CPU supports AVX-512F; `A` and `C` are valid for their shapes and strides; the ranges
/// lie inside `b`; `C` does not overlap `A`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn sgemm_packed(
    m: usize,
    a: Pair,
    b: &PackedB,
    (k0, kk): (usize, usize),
    (jp0, np): (usize, usize),
    kcb: usize,
    outs: &[Out],
) {
    let (a, a2) = (a.first, a.second);
    debug_assert!(a.rs == 1 || a.cs == 1);
    debug_assert!(a2.is_none() || (a.rs == 1 && a2.is_some_and(|(o, _)| o.rs == 1)));
    debug_assert!(a2.is_none() || m.is_multiple_of(MR));
    debug_assert!((1..=2).contains(&outs.len()));
    debug_assert!(!outs[0].after && outs.iter().all(|o| !o.after || !outs[0].add));
    debug_assert!((1..=KC_MAX).contains(&kcb));
    debug_assert!(k0 + kk <= b.k && jp0 + np <= b.panels());
    if m == 0 || np == 0 {
        return;
    }
    if kk == 0 {
        let cols = (b.n - jp0 * NR).min(np * NR);
        for o in outs.iter().filter(|o| !o.add) {
            for i in 0..m {
                std::ptr::write_bytes(o.c.add(i * o.ldc), 0, cols);
            }
        }
        return;
    }
    // Equal groups of at most GROUP panels, so that a block of `B` stays in L2.
    let group = np.div_ceil(np.div_ceil(GROUP));
    let mut g0 = 0;
    while g0 < np {
        let gn = group.min(np - g0);
        let mut p0 = 0;
        while p0 < kk {
            let kc = kcb.min(kk - p0);
            // The next block of `B`'s rows, fetched a share at a time by the row panels of
            // this one, so that the stream from memory overlaps the arithmetic.
            let kn = kcb.min(kk - p0 - kc);
            let lines = kn * NR / 16;
            let share = lines.div_ceil(m.div_ceil(MR));
            let last = p0 + kc == kk;
            let mut dst = [outs[0]; 2];
            let mut nd = 0;
            for o in outs.iter().filter(|o| last || !o.after) {
                dst[nd] = Out {
                    add: o.add || (p0 > 0 && !o.after),
                    ..*o
                };
                nd += 1;
            }
            let dst = &dst[..nd];
            // Column-major `A` with a long column (the sums of a block of directions) is
            // copied panel by panel into a contiguous buffer, which the group's micro-panels
            // then share (see PACK_A_STRIDE); so is a sum of two.
            let pack_a = a2.is_some() || (a.rs == 1 && a.cs >= PACK_A_STRIDE && gn > 1);
            let mut apack = [0f32; MR * KC_MAX];
            let mut i0 = 0;
            while i0 < m {
                let rows = MR.min(m - i0);
                let mut a = a;
                let mut ap = a.ptr.add(i0 * a.rs + p0 * a.cs);
                if pack_a && rows == MR {
                    if let Some((a2, neg)) = a2 {
                        let ap2 = a2.ptr.add(i0 + p0 * a2.cs);
                        for p in 0..kc {
                            let c1 = _mm256_loadu_ps(ap.add(p * a.cs));
                            let c2 = _mm256_loadu_ps(ap2.add(p * a2.cs));
                            let col = if neg {
                                _mm256_sub_ps(c1, c2)
                            } else {
                                _mm256_add_ps(c1, c2)
                            };
                            _mm256_storeu_ps(apack.as_mut_ptr().add(p * MR), col);
                        }
                    } else {
                        for p in 0..kc {
                            let col = _mm256_loadu_ps(ap.add(p * a.cs));
                            _mm256_storeu_ps(apack.as_mut_ptr().add(p * MR), col);
                        }
                    }
                    ap = apack.as_ptr();
                    a = Operand {
                        ptr: ap,
                        rs: 1,
                        cs: MR,
                    };
                }
                let ip = i0 / MR;
                for q in g0..g0 + gn {
                    let jp = jp0 + q;
                    let next = b.data.as_ptr().add((jp * b.k + k0 + p0 + kc) * NR);
                    for l in (ip * share)..((ip + 1) * share).min(lines) {
                        _mm_prefetch::<_MM_HINT_T0>(next.add(16 * l) as *const i8);
                    }
                    let cols = NR.min(b.n - jp * NR);
                    let bp = b.data.as_ptr().add((jp * b.k + k0 + p0) * NR);
                    let mut at = [dst[0]; 2];
                    for (t, o) in at.iter_mut().zip(dst) {
                        *t = o.at(i0, q * NR);
                    }
                    tile(kc, ap, a, rows, bp, &at[..dst.len()], cols);
                }
                i0 += MR;
            }
            p0 += kc;
        }
        g0 += gn;
    }
}

/// One micro-tile: dispatches on the number of vectors and on `A`'s layout.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    kc: usize,
    ap: *const f32,
    a: Operand,
    rows: usize,
    bp: *const f32,
    outs: &[Out],
    cols: usize,
) {
    // A partial row panel is copied, zero-padded, into a column-major `MR × kc` scratch.
    let mut pad;
    let (ap, acol, stride) = if rows < MR {
        pad = [0f32; MR * KC_MAX];
        for p in 0..kc {
            for r in 0..rows {
                pad[p * MR + r] = *ap.add(r * a.rs + p * a.cs);
            }
        }
        (pad.as_ptr(), true, MR)
    } else if a.rs == 1 {
        (ap, true, a.cs)
    } else {
        (ap, false, a.rs)
    };
    let t = Tile { rows, cols, outs };
    match (cols.div_ceil(16), acol) {
        (3, true) => micro::<3, true>(kc, ap, stride, bp, t),
        (3, false) => micro::<3, false>(kc, ap, stride, bp, t),
        (2, true) => micro::<2, true>(kc, ap, stride, bp, t),
        (2, false) => micro::<2, false>(kc, ap, stride, bp, t),
        (_, true) => micro::<1, true>(kc, ap, stride, bp, t),
        (_, false) => micro::<1, false>(kc, ap, stride, bp, t),
    }
}

/// The valid part of a micro-tile and its destinations (each at the tile's first element).
#[derive(Clone, Copy)]
struct Tile<'a> {
    rows: usize,
    cols: usize,
    outs: &'a [Out],
}

/// `C[0..rows, 0..cols] (=|+=|-=) A_panel · B_panel` over `kc` steps, `NV` vectors wide, for
/// each destination. `A` element `(r, p)` is at `ap + p·stride + r` when `ACOL`, else at
/// `ap + r·stride + p`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn micro<const NV: usize, const ACOL: bool>(
    kc: usize,
    ap: *const f32,
    stride: usize,
    bp: *const f32,
    t: Tile<'_>,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut mask = [0u16; NV];
    for (v, m) in mask.iter_mut().enumerate() {
        let valid = t.cols.saturating_sub(16 * v).min(16);
        *m = ((1u32 << valid) - 1) as u16;
    }
    if ACOL {
        let mut a = ap;
        let mut b = bp;
        for _ in 0..kc {
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(b.add(16 * v));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let s = _mm512_set1_ps(*a.add(r));
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_fmadd_ps(s, bv[v], *x);
                }
            }
            a = a.add(stride);
            b = b.add(NR);
        }
    } else {
        let rp: [*const f32; MR] = std::array::from_fn(|r| ap.add(r * stride));
        let mut b = bp;
        for p in 0..kc {
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(b.add(16 * v));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let s = _mm512_set1_ps(*rp[r].add(p));
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm512_fmadd_ps(s, bv[v], *x);
                }
            }
            b = b.add(NR);
        }
    }
    for (r, row) in acc.iter().enumerate().take(t.rows) {
        for (v, &sum) in row.iter().enumerate() {
            // The value just stored to the previous destination (for an `after` one).
            let mut stored = sum;
            for o in t.outs {
                let x = if o.after { stored } else { sum };
                let c = o.c.add(r * o.ldc + 16 * v);
                let x = match (o.add, o.neg) {
                    (false, false) => x,
                    (false, true) => _mm512_sub_ps(_mm512_setzero_ps(), x),
                    (true, false) => _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], c), x),
                    (true, true) => _mm512_sub_ps(_mm512_maskz_loadu_ps(mask[v], c), x),
                };
                _mm512_mask_storeu_ps(c, mask[v], x);
                stored = x;
            }
        }
    }
}

/// Whether this CPU can run the kernels of this module (AVX-512F).
pub fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

pub(super) fn check_available() {
    assert!(
        available(),
        "kernels::sgemm needs AVX-512F, which this CPU lacks (check `available()` first)"
    );
}

/// Packs `B = X`, a row-major `k × n` matrix (`X`'s rows are the inner dimension of the
/// products it feeds: the examples of the first layer's sums `gᵀ·X`), on the pool of `par`.
pub fn pack_rows(par: Par, x: &[f32], k: usize, n: usize, out: &mut PackedB) {
    check_available();
    assert_eq!(
        x.len(),
        k * n,
        "pack_rows: x has {} elements, not {k} × {n}",
        x.len()
    );
    let b = Operand {
        ptr: x.as_ptr(),
        rs: n,
        cs: 1,
    };
    // SAFETY: `x` holds `k × n` elements at row stride `n`.
    unsafe { out.pack(par, k, n, b.into()) }
}

/// Packs `B = Wᵀ` for a row-major `W` of `m × d` (weights or stacked directions): `B` is
/// `d × m`, so [`rows_times`] computes `A·Wᵀ`. On the pool of `par`.
pub fn pack_transposed(par: Par, w: &[f32], m: usize, d: usize, out: &mut PackedB) {
    check_available();
    assert_eq!(
        w.len(),
        m * d,
        "pack_transposed: w has {} elements, not {m} × {d}",
        w.len()
    );
    let b = Operand {
        ptr: w.as_ptr(),
        rs: 1,
        cs: d,
    };
    // SAFETY: element `(p, j)` of `Wᵀ` is `w[j·d + p]`, inside `w` for `p < d`, `j < m`.
    unsafe { out.pack(par, d, m, b.into()) }
}

/// `C = A·B` for a row-major `A` of `rows × b.k()` and `C` of `rows × b.n()`, in bands of at
/// most `band` rows, one task per band on the pool of `par`. Bands get thinner (down to 64 rows)
/// when the pool has more threads than bands: the result does not depend on them.
pub fn rows_times(par: Par, a: &[f32], rows: usize, b: &PackedB, c: &mut [f32], band: usize) {
    check_available();
    let (k, n) = (b.k, b.n);
    assert_eq!(a.len(), rows * k, "rows_times: a is not {rows} × {k}");
    assert_eq!(c.len(), rows * n, "rows_times: c is not {rows} × {n}");
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let band = band
        .min(rows.div_ceil(par.threads()).div_ceil(MR) * MR)
        .max(64.min(band))
        .max(1);
    if n == 0 {
        return;
    }
    // Each band is one sequential product on its own rows of `A` and `C`.
    let run = |(a, c): (&[f32], &mut [f32])| times_packed(a, c.len() / n, b, c, false);
    par.each(a.chunks(band * k).zip(c.chunks_mut(band * n)), run);
}

/// `C (=|+=) A·B` on the calling thread for a row-major `A` of `rows × b.k()` and `C` of
/// `rows × b.n()`: one band of [`rows_times`], or a hidden layer's product on one row block
/// with `B` (weights or directions) packed once for all blocks.
pub fn times_packed(a: &[f32], rows: usize, b: &PackedB, c: &mut [f32], add: bool) {
    check_available();
    let (k, n) = (b.k, b.n);
    assert_eq!(a.len(), rows * k, "times_packed: a is not {rows} × {k}");
    assert_eq!(c.len(), rows * n, "times_packed: c is not {rows} × {n}");
    if n == 0 {
        return;
    }
    if k == 0 {
        if !add {
            c.fill(0.0);
        }
        return;
    }
    let a = Operand {
        ptr: a.as_ptr(),
        rs: k,
        cs: 1,
    };
    // SAFETY: AVX-512F is present (checked above); `A` holds `rows × k` elements at row stride
    // `k`, `C` holds `rows × n` at row stride `n` (the micro-kernel masks past column `n`), and
    // `c` is exclusively ours.
    let out = Out {
        c: c.as_mut_ptr(),
        ldc: n,
        add,
        neg: false,
        after: false,
    };
    unsafe { sgemm_packed(rows, a.into(), b, (0, k), (0, b.panels()), KC, &[out]) }
}

/// Column tiles of [`transposed_times`], in panels. Every column tile reads all of `G` again
/// (16 MB for a 4-direction block at cifar10-5k), so tiles are as wide as a block of `B` that
/// fits L2 allows: 8 panels (384 columns, 384 KB). Measured on the first-layer sum at h = 200
/// (phases example, 1 thread): 4-panel tiles took 29.6 ms per direction at b = 4, 8-panel ones
/// 27.1–27.4; 10-panel ones slowed b = 1 from 29 to 33 ms.
const TILE_PANELS: usize = 8;

/// The tiles of [`transposed_times`] for a `C` of `m` rows and `panels` column panels on
/// `threads` threads: the rows per row tile (a multiple of `MR`) and the number of column
/// tiles, `⌈panels / TILE_PANELS⌉`, whose widths differ by at most one panel ([`col_tile`]).
///
/// Row tiles (of at least 16 rows) start as few as give every thread a tile. If a greedy
/// schedule of the tiles (largest first, onto the least-loaded thread) then leaves some thread
/// more than 5 % above an even share, up to twice as many are tried: the first within 5 % is
/// taken, else the one with the least span. Each row tile streams its columns of `B` (the data
/// matrix, in the first layer's sums) once more, hence the bound; the column tiles keep their
/// width, since narrower ones stream all of `G` more often and ran slower ([`TILE_PANELS`]).
///
/// Balancing matters where the column tiles do not divide among the threads. A later layer's
/// sums at h = 400 have 9 panels: as 8 + 1 panels in one row, `r_gᵀ·a` (400 × 5000 × 400) ran
/// 1.13× faster on 2 threads than on 1, and in 2 × 2 tiles of 4 and 5 panels 2.08× (probe,
/// medians of 9). An HVP at h = 400 on 2 threads took 80.0 ms per product against 85.8–87.0
/// (phases example, alternating builds). At h = 200 and in the first layer's sums (64 panels)
/// on 1, 2, 4, 8 and 16 threads the tiles are the same either way.
fn sum_tiles(m: usize, panels: usize, threads: usize) -> (usize, usize) {
    let row_panels = m.div_ceil(MR).max(1);
    let ct = panels.div_ceil(TILE_PANELS).max(1);
    if threads <= 1 {
        return (row_panels * MR, ct);
    }
    let max_rt = m.div_ceil(16).max(1);
    let rt0 = threads.div_ceil(ct).min(max_rt);
    let share = (row_panels * panels) as f64 / threads as f64;
    let mut best = (usize::MAX, row_panels);
    for rt in rt0..=(2 * rt0).min(max_rt) {
        let h = row_panels.div_ceil(rt);
        let span = greedy_span(row_panels, h, panels, ct, threads);
        if span < best.0 {
            best = (span, h);
        }
        if span as f64 <= 1.05 * share {
            break;
        }
    }
    (best.1 * MR, ct)
}

/// A tile of a sum's `C`: its first row, and its first column panel and number of panels.
pub(super) type SumTile = (usize, (usize, usize));

/// The tiles of a sum's `C` of `m` rows and `panels` column panels on `threads` threads
/// ([`sum_tiles`]): the rows per row tile, and the tiles.
pub(super) fn sum_tile_list(m: usize, panels: usize, threads: usize) -> (usize, Vec<SumTile>) {
    let (rt, ct) = sum_tiles(m, panels, threads);
    let tiles = (0..m)
        .step_by(rt)
        .flat_map(|i0| (0..ct).map(move |j| (i0, col_tile(j, panels, ct))))
        .collect();
    (rt, tiles)
}

/// Column tile `j` of `ct` over `panels` panels: its first panel and its number of panels.
fn col_tile(j: usize, panels: usize, ct: usize) -> (usize, usize) {
    let (first, end) = (j * panels / ct, (j + 1) * panels / ct);
    (first, end - first)
}

/// The most work (in `MR`-row panels × column panels) that a greedy schedule gives one of
/// `threads` threads: row tiles of `h` of the `row_panels` row panels by `ct` column tiles,
/// largest first, each onto the least-loaded thread.
fn greedy_span(row_panels: usize, h: usize, panels: usize, ct: usize, threads: usize) -> usize {
    let mut tiles: Vec<usize> = (0..row_panels)
        .step_by(h)
        .flat_map(|i| (0..ct).map(move |j| h.min(row_panels - i) * col_tile(j, panels, ct).1))
        .collect();
    tiles.sort_unstable_by(|a, b| b.cmp(a));
    let mut load = vec![0usize; threads];
    for t in tiles {
        *load.iter_mut().min().expect("threads > 0") += t;
    }
    load.into_iter().max().unwrap_or(0)
}

/// `C (=|+=) Gᵀ·B[k0 .. k0+rows]` for a row-major `G` of `rows × m` (rows = examples) and `C`
/// of `m × b.n()`: the first layer's sums over the examples `k0 .. k0+rows` of a packed `X`,
/// and the later layers' sums over examples of a packed cached `a` or `g`.
///
/// `C` is cut into column tiles of at most `TILE_PANELS` (8) panels and, where that alone does
/// not share the work evenly among the pool's threads, row tiles too (see `sum_tiles`). One task
/// per tile on the pool of `par`. The tiling may follow the thread count because the result
/// does not depend on it (see the module doc).
#[allow(clippy::too_many_arguments)]
pub fn transposed_times(
    par: Par,
    g: &[f32],
    rows: usize,
    m: usize,
    b: &PackedB,
    k0: usize,
    c: &mut [f32],
    add: bool,
) {
    check_available();
    let n = b.n;
    assert_eq!(g.len(), rows * m, "transposed_times: g is not {rows} × {m}");
    assert_eq!(c.len(), m * n, "transposed_times: c is not {m} × {n}");
    assert!(
        k0 + rows <= b.k,
        "transposed_times: rows {k0}..{} past {}",
        k0 + rows,
        b.k
    );
    if m == 0 || n == 0 {
        return;
    }
    let panels = b.panels();
    let (rt, tiles) = sum_tile_list(m, panels, par.threads());
    let cp = SyncPtr(c.as_mut_ptr());
    let run = |(i0, (jp, np)): (usize, (usize, usize))| {
        let a = Operand {
            ptr: g[i0..].as_ptr(),
            rs: 1,
            cs: m,
        };
        let cp = &cp;
        // SAFETY: AVX-512F is present (checked above). `A` element `(i, p)` is
        // `g[(p)·m + i0 + i]` for `i < rt.min(m − i0)`, `p < rows`: inside `g`. The tile
        // `(i0.., jp·NR..)` of `C` lies inside `c` (`m × n`, masked past column `n`), and the
        // tiles are disjoint, so each task writes its own elements only.
        unsafe {
            let out = Out {
                c: cp.0.add(i0 * n + jp * NR),
                ldc: n,
                add,
                neg: false,
                after: false,
            };
            sgemm_packed(
                rt.min(m - i0),
                a.into(),
                b,
                (k0, rows),
                (jp, np),
                KC,
                &[out],
            )
        }
    };
    par.for_each(tiles.len(), |t| run(tiles[t]));
}

/// `C`'s base pointer shared by tasks that write disjoint tiles.
pub(super) struct SyncPtr(pub(super) *mut f32);
// SAFETY: only used by products whose tasks write disjoint tiles of `C`.
unsafe impl Sync for SyncPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{reference, values};
    use crate::par::with_threads;

    /// The two-level f32 sum of `k` products (blocks of `KC` summed, then added in order) is
    /// within `(min(k, KC) + ⌈k/KC⌉ + 1)·u` (u = 2⁻²⁴) of the sum of their magnitudes; a lost or
    /// doubled term is off by about `1/k` of it.
    fn assert_close(got: &[f32], want: &[f64], scale: &[f64], k: usize, what: &str) {
        assert_eq!(got.len(), want.len());
        let terms = k.min(KC) + k.div_ceil(KC) + 1;
        for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
            let tol = terms as f64 * f32::EPSILON as f64 / 2.0 * s;
            assert!(
                (g as f64 - w).abs() <= tol,
                "{what}: element {i}: {g} vs {w} (scale {s})"
            );
        }
    }

    /// Awkward sizes around the micro-tile (8 × 48), the vector width (16), `KC` (256), the
    /// panel groups (at most 10 panels: 500 columns make 11, in groups of 6 and 5), the
    /// 8-panel tiles of the sums and the packing of long columns of `A` (403 rows).
    const SIZES: [(usize, usize, usize); 11] = [
        (1, 1, 1),
        (7, 15, 3),
        (8, 48, 256),
        (9, 49, 257),
        (17, 97, 100),
        (23, 31, 513),
        (16, 200, 64),
        (40, 17, 300),
        (403, 100, 300),
        (3, 144, 0),
        (12, 500, 260),
    ];

    #[test]
    fn rows_times_matches_f64_reference_on_awkward_sizes() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        for &(m, n, k) in &SIZES {
            let a = values(m * k, 1);
            let w = values(n * k, 2);
            let mut pb = PackedB::default();
            pack_transposed(Par::Seq, &w, n, k, &mut pb);
            let mut c = vec![f32::NAN; m * n];
            rows_times(Par::Seq, &a, m, &pb, &mut c, 5);
            let (want, scale) = reference(m, n, k, |i, p| a[i * k + p], |p, j| w[j * k + p]);
            assert_close(&c, &want, &scale, k, &format!("A·Wᵀ {m}×{n}×{k}"));
        }
    }

    #[test]
    fn transposed_times_matches_f64_reference_and_accumulates() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        for &(m, n, k) in &SIZES {
            // X has k0 + k rows; the sum runs over rows k0 .. k0 + k.
            let k0 = 3;
            let x = values((k0 + k + 2) * n, 3);
            let g = values(k * m, 4);
            let mut px = PackedB::default();
            pack_rows(Par::Seq, &x, k0 + k + 2, n, &mut px);
            let mut c = vec![f32::NAN; m * n];
            transposed_times(Par::Seq, &g, k, m, &px, k0, &mut c, false);
            let (want, scale) = reference(m, n, k, |i, p| g[p * m + i], |p, j| x[(k0 + p) * n + j]);
            assert_close(&c, &want, &scale, k, &format!("gᵀ·X {m}×{n}×{k}"));
            // Accumulating the same sum again doubles it.
            transposed_times(Par::Seq, &g, k, m, &px, k0, &mut c, true);
            let twice: Vec<f64> = want.iter().map(|w| 2.0 * w).collect();
            let scale2: Vec<f64> = scale.iter().map(|s| 2.0 * s).collect();
            assert_close(
                &c,
                &twice,
                &scale2,
                2 * k,
                &format!("gᵀ·X twice {m}×{n}×{k}"),
            );
        }
    }

    /// Whether `a` and `b` hold the same f32 values bit for bit.
    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn times_packed_matches_f64_reference_and_accumulates() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        // Inner dimensions below, at and above one block of KC; widths with partial panels.
        for (rows, k, n) in [
            (1, 1, 1),
            (13, 200, 200),
            (37, 256, 49),
            (9, 300, 800),
            (8, 5, 17),
        ] {
            let a = values(rows * k, 3);
            let w = values(n * k, 4);
            let mut pb = PackedB::default();
            pack_transposed(Par::Seq, &w, n, k, &mut pb);
            let (want, scale) = reference(rows, n, k, |i, p| a[i * k + p], |p, j| w[j * k + p]);
            let mut c = vec![f32::NAN; rows * n];
            times_packed(&a, rows, &pb, &mut c, false);
            assert_close(&c, &want, &scale, k, "times_packed");
            let twice: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
            let scale2: Vec<f64> = scale.iter().map(|v| 2.0 * v).collect();
            times_packed(&a, rows, &pb, &mut c, true);
            assert_close(&c, &twice, &scale2, k, "times_packed (add)");
        }
    }

    /// The summation order does not depend on the tiling: bands of any height, either layout of
    /// `A` and any thread count give the same bits.
    #[test]
    fn results_are_bitwise_independent_of_bands_and_threads() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        // `n ≥ PACK_A_STRIDE`: the sums read `gᵀ` through packed panels.
        let (m, n, k) = (203, 400, 700);
        let a = values(m * k, 5);
        let w = values(n * k, 6);
        let mut pb = PackedB::default();
        pack_transposed(Par::Seq, &w, n, k, &mut pb);
        let mut first = vec![0f32; m * n];
        rows_times(Par::Seq, &a, m, &pb, &mut first, m);
        let mut px = PackedB::default();
        pack_rows(Par::Seq, &a, m, k, &mut px);
        let g = values(m * n, 7);
        let mut sum_first = vec![0f32; n * k];
        transposed_times(Par::Seq, &g, m, n, &px, 0, &mut sum_first, false);
        // The same sum with `gᵀ` materialized row-major (A read along its rows).
        let gt: Vec<f32> = (0..n * m).map(|t| g[(t % m) * n + t / m]).collect();
        let mut by_rows = vec![f32::NAN; n * k];
        rows_times(Par::Seq, &gt, n, &px, &mut by_rows, 7);
        assert!(
            same_bits(&by_rows, &sum_first),
            "gᵀ read by columns and by rows differ"
        );
        for threads in [1, 2, 3, 8] {
            // Packing in pieces of PACK_ROWS rows (k = 700: two per panel) on the pool.
            let (mut pt, mut pr) = (PackedB::default(), PackedB::default());
            with_threads(threads, |par| {
                pack_transposed(par, &w, n, k, &mut pt);
                pack_rows(par, &a, m, k, &mut pr);
            });
            assert!(
                (pt.k, pt.n, pr.k, pr.n) == (pb.k, pb.n, px.k, px.n)
                    && same_bits(&pt.data, &pb.data)
                    && same_bits(&pr.data, &px.data),
                "packing differs at {threads} threads"
            );
            for band in [1, 8, 13, 64] {
                let mut c = vec![f32::NAN; m * n];
                with_threads(threads, |par| rows_times(par, &a, m, &pb, &mut c, band));
                assert!(
                    same_bits(&c, &first),
                    "rows_times differs at {threads} threads, band {band}"
                );
            }
            let mut s = vec![f32::NAN; n * k];
            with_threads(threads, |par| {
                transposed_times(par, &g, m, n, &px, 0, &mut s, false)
            });
            assert!(
                same_bits(&s, &sum_first),
                "transposed_times differs at {threads} threads"
            );
        }
    }

    /// The tiles of the sums: column tiles of at most `TILE_PANELS` panels, as few as that
    /// allows, with widths within one panel of each other; row tiles of at least 16 rows, at
    /// most twice as many as give every thread a tile (each rereads its columns of `B`); one
    /// row tile on one thread; and on 2 threads, where there are at least 64 rows, no thread
    /// more than 5 % above an even share on a greedy schedule (largest tile first, onto the
    /// least-loaded thread). Fixed 8-panel column tiles in one row give one of 2 threads 1.78
    /// times its share of 400 rows by 9 panels.
    #[test]
    fn sum_tiles_cover_c_and_share_the_work() {
        for m in [1usize, 8, 10, 40, 200, 203, 400, 800, 1600, 3200] {
            for panels in [1usize, 2, 5, 9, 15, 17, 64, 67] {
                let ct = panels.div_ceil(TILE_PANELS);
                let widths: Vec<usize> = (0..ct).map(|j| col_tile(j, panels, ct).1).collect();
                let (lo, hi) = (widths.iter().min().unwrap(), widths.iter().max().unwrap());
                assert!(
                    hi - lo <= 1 && *hi <= TILE_PANELS,
                    "{panels} panels: {widths:?}"
                );
                let mut next = 0;
                for j in 0..ct {
                    let (first, np) = col_tile(j, panels, ct);
                    assert_eq!(first, next, "{panels} panels: tile {j} does not follow on");
                    next = first + np;
                }
                assert_eq!(next, panels);
                assert_eq!(sum_tiles(m, panels, 1), (m.div_ceil(MR) * MR, ct));
                for threads in [2, 3, 4, 8, 16] {
                    let (rows, c) = sum_tiles(m, panels, threads);
                    assert_eq!(c, ct);
                    assert!(rows % MR == 0 && rows >= 16.min(m.div_ceil(MR) * MR));
                    let rt = m.div_ceil(rows);
                    let needed = threads.div_ceil(ct).min(m.div_ceil(16));
                    assert!(
                        rt <= 2 * needed.max(1),
                        "m {m} panels {panels} t{threads}: {rt}"
                    );
                    let mut tiles: Vec<usize> = (0..m)
                        .step_by(rows)
                        .flat_map(|i0| {
                            let r = rows.min(m - i0);
                            widths.iter().map(move |w| r * w)
                        })
                        .collect();
                    tiles.sort_unstable_by(|a, b| b.cmp(a));
                    let mut load = vec![0usize; threads];
                    for t in tiles {
                        *load.iter_mut().min().unwrap() += t;
                    }
                    let share = (m * panels) as f64 / threads as f64;
                    let most = *load.iter().max().unwrap() as f64;
                    if threads == 2 && m >= 64 {
                        assert!(
                            most <= 1.05 * share,
                            "m {m} panels {panels}: {most} against a share of {share}"
                        );
                    }
                }
            }
        }
    }

    /// A `PackedB` packed again holds exactly what a fresh one would, padding included: after a
    /// shape with as many elements but other panels (stale values would sit where the new
    /// shape pads), after a smaller and a larger shape, and for the same shape with new values.
    #[test]
    fn repacking_matches_a_fresh_packing() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        let fresh = |x: &[f32], k: usize, n: usize| {
            let mut p = PackedB::default();
            pack_rows(Par::Seq, x, k, n, &mut p);
            p
        };
        // 10 × 96 (two full panels) and 20 × 40 (one panel, 8 padding columns): 960 each.
        let shapes = [(10, 96), (20, 40), (3, 5), (50, 100), (50, 100)];
        let mut p = PackedB::default();
        for (t, &(k, n)) in shapes.iter().enumerate() {
            let x = values(k * n, 20 + t as u64);
            pack_rows(Par::Seq, &x, k, n, &mut p);
            let f = fresh(&x, k, n);
            assert!(
                (p.k, p.n) == (f.k, f.n) && same_bits(&p.data, &f.data),
                "repacking {k} × {n} (step {t}) differs from a fresh packing"
            );
        }
    }
}
