//! One level of Strassen's algorithm over [`sgemm`]'s kernel, for the first layer's wide
//! products: `X·Vᵀ` and `gᵀ·X` for a block of directions (`b·h` columns), or a wide layer.
//!
//! With each operand cut into 2 × 2 quadrants, `C = A·B` takes the 7 half-size products of
//! listed in `PRODUCTS` instead of 8, trading an eighth of the multiply-adds for sums of quadrants.
//! Where those sums are formed decides whether the trade pays:
//! - the data matrix `X` is the same for every product of a run, so its sums are formed once
//!   ([`SplitX`]): row-major for `X·Vᵀ` (`X` on the left) and packed for `gᵀ·X` (`X` on the
//!   right);
//! - the other operand's sums are formed where the kernel copies it anyway: while packing `Vᵀ`
//!   ([`pack_right`]), or in the copy of each 8-row panel of `gᵀ`;
//! - each product writes its tiles straight into the one or two quadrants of `C` it belongs
//!   to (added or subtracted, block of [`KC`](super::sgemm::KC) by block), so there is no
//!   temporary and no combining pass.
//!
//! Measured on the first layer at cifar10-5k (n = 5000, d = 3072), 1 thread, the 7 products
//! alone against the one full product: 0.85 (`X·Vᵀ`) and 0.88 (`gᵀ·X`) of its time at 800
//! columns (a block of 4 at h = 200), 0.87 and 0.85 at 512, 0.91 and 0.91 at 400, 0.96 and
//! 1.01 at 200, where the halves' 100 columns end in a partial vector. Hence a minimum
//! width, chosen by the caller (`NetConfig::strassen_min_width`).
//!
//! Rounding: each product is summed like any [`sgemm`] product (in blocks of [`KC_SPLIT`]),
//! in an order fixed by the shape, so results are bit-identical at every thread count (DESIGN §5); they differ from
//! the 8-product result by rounding only, with the usual one-level bound (a few times the
//! classical one, relative to `‖A‖·‖B‖` rather than elementwise).
//!
//! [`sgemm`]: super::sgemm

use super::sgemm::{
    check_available, sgemm_packed, sum_tile_list, Operand, Out, PackedB, Pair, SyncPtr, MR, NR,
};
use crate::par::Par;

/// The block of the inner dimension of Strassen's products (the 8-product kernel's is
/// [`KC`](super::sgemm::KC), 256). Most of these products write two quadrants of `C`, after
/// every block; fewer, longer blocks measured faster (probe at n = 5000, d = 3072, 800
/// columns, 1 thread, two alternating runs each against the 8-product GEMM): `X·Vᵀ` 0.96
/// of its time at 384 against 0.98 at 256 and 0.97–0.98 at 512; `gᵀ·X` 0.94 against 0.95.
/// At 384 a block of the widest group of `B`'s panels (480 columns) takes 737 KB of L2.
pub const KC_SPLIT: usize = 384;
const _: () = assert!(KC_SPLIT <= super::sgemm::KC_MAX);

/// A quadrant: (row half, column half).
type Quad = (usize, usize);

/// One operand of a product: a quadrant, plus or minus (`true`) another.
type Term = (Quad, Option<(Quad, bool)>);

/// One of Strassen's products `M = (A terms)·(B terms)` and the quadrants of `C` it adds to
/// (subtracts from, `true`).
struct Product {
    a: Term,
    b: Term,
    outs: &'static [(Quad, bool)],
}

const Q11: Quad = (0, 0);
const Q12: Quad = (0, 1);
const Q21: Quad = (1, 0);
const Q22: Quad = (1, 1);

/// Strassen's seven products, in the order they run:
/// `C11 = M1 + M4 − M5 + M7`, `C12 = M3 + M5`, `C21 = M2 + M4`, `C22 = M1 − M2 + M3 + M6`.
const PRODUCTS: [Product; 7] = [
    Product {
        a: (Q11, Some((Q22, false))),
        b: (Q11, Some((Q22, false))),
        outs: &[(Q11, false), (Q22, false)],
    },
    Product {
        a: (Q21, Some((Q22, false))),
        b: (Q11, None),
        outs: &[(Q21, false), (Q22, true)],
    },
    Product {
        a: (Q11, None),
        b: (Q12, Some((Q22, true))),
        outs: &[(Q12, false), (Q22, false)],
    },
    Product {
        a: (Q22, None),
        b: (Q21, Some((Q11, true))),
        outs: &[(Q11, false), (Q21, false)],
    },
    Product {
        a: (Q11, Some((Q12, false))),
        b: (Q22, None),
        outs: &[(Q11, true), (Q12, false)],
    },
    Product {
        a: (Q21, Some((Q11, true))),
        b: (Q11, Some((Q12, false))),
        outs: &[(Q22, false)],
    },
    Product {
        a: (Q12, Some((Q22, true))),
        b: (Q21, Some((Q22, false))),
        outs: &[(Q11, false)],
    },
];

/// `term`'s operand: its quadrant, plus or minus the other one, each as `operand` gives it.
fn pair(term: Term, operand: impl Fn(Quad) -> Operand) -> Pair {
    let (q1, second) = term;
    Pair {
        first: operand(q1),
        second: second.map(|(q2, neg)| (operand(q2), neg)),
    }
}

/// Whether a product with `rows` examples, `d` inputs and `width` output columns splits:
/// every dimension even, and the half width a whole number of 16-lane vectors (so that the
/// sums of `gᵀ`'s 8-row panels and the halves of `C` have no partial tiles).
pub fn applies(rows: usize, d: usize, width: usize) -> bool {
    rows >= 2
        && d >= 2
        && rows.is_multiple_of(2)
        && d.is_multiple_of(2)
        && width > 0
        && width.is_multiple_of(32)
}

/// The sums of a data matrix's quadrants for [`rows_times`] and [`transposed_times`]: 3.5
/// times the memory of `X` (215 MB for cifar10-5k), formed once per data set (and physical
/// batch).
#[derive(Debug)]
pub struct SplitX {
    rows: usize,
    d: usize,
    /// `X` on the left (`X·Vᵀ`): product `i`'s operand, row-major `rows/2 × d/2`.
    left: Vec<Vec<f32>>,
    /// `X` on the right (`gᵀ·X`): product `i`'s operand, packed (`rows/2 × d/2`).
    right: Vec<PackedB>,
}

impl SplitX {
    /// The quadrant sums of `x` (`rows × d`, row-major), on the pool of `par`.
    ///
    /// # Panics
    /// If the shape does not split ([`applies`] with any width) or `x` is not `rows × d`, or
    /// the CPU lacks AVX-512F.
    pub fn new(par: Par, x: &[f32], rows: usize, d: usize) -> Self {
        check_available();
        assert!(applies(rows, d, 32), "SplitX: {rows} × {d} does not split");
        assert_eq!(x.len(), rows * d, "SplitX: x is not {rows} × {d}");
        let (hm, hd) = (rows / 2, d / 2);
        let at = |q: Quad| q.0 * hm * d + q.1 * hd;
        let left = PRODUCTS
            .iter()
            .map(|p| {
                let mut out = vec![0f32; hm * hd];
                let (q1, second) = p.a;
                let rows_out = out.chunks_mut(hd).enumerate();
                par.each(rows_out, |(r, dst)| {
                    let s1 = &x[at(q1) + r * d..][..hd];
                    match second {
                        None => dst.copy_from_slice(s1),
                        Some((q2, neg)) => {
                            let s2 = &x[at(q2) + r * d..][..hd];
                            let sign = if neg { -1.0f32 } else { 1.0 };
                            for ((o, &u), &v) in dst.iter_mut().zip(s1).zip(s2) {
                                *o = u + sign * v;
                            }
                        }
                    }
                });
                out
            })
            .collect();
        let operand = |q: Quad| Operand {
            ptr: x[at(q)..].as_ptr(),
            rs: d,
            cs: 1,
        };
        let right = PRODUCTS
            .iter()
            .map(|p| {
                let mut packed = PackedB::default();
                // SAFETY: each quadrant operand reads rows `< hm` and columns `< hd` of its
                // quadrant, inside `x` (`rows × d`, row stride `d`).
                unsafe { packed.pack(par, hm, hd, pair(p.b, operand)) };
                packed
            })
            .collect();
        SplitX {
            rows,
            d,
            left,
            right,
        }
    }
}

/// Packs the right operands of [`rows_times`] for `C = X·Wᵀ` (`W`: `m × d`, row-major: weights
/// or stacked directions), the quadrant sums formed while packing, on the pool of `par`. `out`
/// is resized to the 7 products and its storage reused.
pub fn pack_right(par: Par, w: &[f32], m: usize, d: usize, out: &mut Vec<PackedB>) {
    check_available();
    assert!(
        d.is_multiple_of(2) && m.is_multiple_of(32),
        "pack_right: {m} × {d} does not split"
    );
    assert_eq!(w.len(), m * d, "pack_right: w is not {m} × {d}");
    let (hn, hd) = (m / 2, d / 2);
    // `B = Wᵀ`: element `(p, j)` is `w[j·d + p]`; quadrant `(r, c)` holds rows `r·hd ..` and
    // columns `c·hn ..` of `B`.
    let operand = |q: Quad| Operand {
        ptr: w[q.1 * hn * d + q.0 * hd..].as_ptr(),
        rs: 1,
        cs: d,
    };
    out.resize_with(PRODUCTS.len(), PackedB::default);
    for (p, packed) in PRODUCTS.iter().zip(out.iter_mut()) {
        // SAFETY: each quadrant operand reads `B` rows `< hd` and columns `< hn` of its
        // quadrant: `w[(c·hn + j)·d + r·hd + p]` with `j < hn`, `p < hd`, inside `w`.
        unsafe { packed.pack(par, hd, hn, pair(p.b, operand)) };
    }
}

/// The destinations of product `p` in a `C` at `c` (row stride `ldc`) cut into quadrants of
/// `qr × qc`, the first writer of each quadrant adding (or not) as `add` says. Where the
/// first destination starts from nothing, the second is written once, from its final value
/// (`Out::after`), rather than after every block of the inner dimension.
///
/// # Safety
/// `c` holds `2·qr` rows of `ldc ≥ 2·qc` elements.
unsafe fn outs(p: usize, c: *mut f32, ldc: usize, (qr, qc): (usize, usize), add: bool) -> [Out; 2] {
    let written = |q: Quad| {
        PRODUCTS[..p]
            .iter()
            .any(|e| e.outs.iter().any(|o| o.0 == q))
    };
    let first = PRODUCTS[p].outs[0];
    let mut out = [Out {
        c,
        ldc,
        add,
        neg: false,
        after: false,
    }; 2];
    for (k, (o, &(q, neg))) in out.iter_mut().zip(PRODUCTS[p].outs).enumerate() {
        *o = Out {
            c: c.add(q.0 * qr * ldc + q.1 * qc),
            ldc,
            add: add || written(q),
            neg,
            after: k == 1 && !first.1 && !(add || written(first.0)),
        };
    }
    out
}

/// `C = X·Wᵀ` for the data of `sx` and `W` packed by [`pack_right`] (`m × d`); `C` is
/// `rows × m`. Each product in bands of at most `band` rows, one task each on the pool of
/// `par`, like [`sgemm::rows_times`](super::sgemm::rows_times).
pub fn rows_times(par: Par, sx: &SplitX, w: &[PackedB], c: &mut [f32], band: usize) {
    check_available();
    assert_eq!(w.len(), PRODUCTS.len(), "rows_times: W is not packed");
    let (hm, hd, hn) = (sx.rows / 2, sx.d / 2, w[0].n());
    let m = 2 * hn;
    assert!(
        w.iter().all(|p| p.k() == hd && p.n() == hn),
        "rows_times: W packed for another shape"
    );
    assert_eq!(
        c.len(),
        sx.rows * m,
        "rows_times: c is not {} × {m}",
        sx.rows
    );
    // Whole rounds of bands on the pool: 5 bands of 512 rows on 2 threads would leave one
    // thread idle for a fifth of the product.
    let threads = par.threads();
    let bands = threads * hm.div_ceil(threads * band.max(MR));
    let band = hm.div_ceil(bands).div_ceil(MR) * MR;
    let cp = SyncPtr(c.as_mut_ptr());
    for (i, (left, right)) in sx.left.iter().zip(w).enumerate() {
        let cp = &cp;
        par.for_each(hm.div_ceil(band), |t| {
            let r0 = t * band;
            let rows = band.min(hm - r0);
            let a = Operand {
                ptr: left[r0 * hd..].as_ptr(),
                rs: hd,
                cs: 1,
            };
            // SAFETY: AVX-512F is present (checked above). `A` is rows `r0 .. r0 + rows` of
            // the product's `hm × hd` operand; the destinations are rows `r0 ..` of two
            // quadrants of `C` (`2·hm × 2·hn`, checked above), disjoint from other bands'.
            unsafe {
                let mut outs = outs(i, cp.0, m, (hm, hn), false);
                for o in &mut outs {
                    *o = o.at(r0, 0);
                }
                let outs = &outs[..PRODUCTS[i].outs.len()];
                let panels = (0, right.panels());
                sgemm_packed(rows, a.into(), right, (0, hd), panels, KC_SPLIT, outs);
            }
        });
    }
}

/// `C (=|+=) gᵀ·X` for a row-major `g` of `rows × m` (rows = the examples of `sx`) and `C` of
/// `m × d`, in the tiles of [`sgemm::transposed_times`](super::sgemm::transposed_times), one
/// task each on the pool of `par`.
pub fn transposed_times(par: Par, g: &[f32], m: usize, sx: &SplitX, c: &mut [f32], add: bool) {
    check_available();
    let (rows, d) = (sx.rows, sx.d);
    assert!(
        applies(rows, d, m),
        "transposed_times: width {m} does not split"
    );
    assert_eq!(g.len(), rows * m, "transposed_times: g is not {rows} × {m}");
    assert_eq!(c.len(), m * d, "transposed_times: c is not {m} × {d}");
    let (hm, hd, hn) = (rows / 2, d / 2, m / 2);
    // `A = gᵀ`: element `(i, p)` is `g[p·m + i]`; quadrant `(r, c)` holds rows `r·hn ..` and
    // columns `c·hm ..` of `A`.
    let operand = |q: Quad, i0: usize| Operand {
        ptr: g[q.1 * hm * m + q.0 * hn + i0..].as_ptr(),
        rs: 1,
        cs: m,
    };
    let (rt, tiles) = sum_tile_list(hn, sx.right[0].panels(), par.threads());
    let cp = SyncPtr(c.as_mut_ptr());
    for (i, (p, right)) in PRODUCTS.iter().zip(&sx.right).enumerate() {
        let cp = &cp;
        par.for_each(tiles.len(), |t| {
            let (i0, (jp, np)) = tiles[t];
            let a = pair(p.a, |q| operand(q, i0));
            // SAFETY: AVX-512F is present (checked above). `A`'s rows `i0 .. i0 + rt` (at
            // most `hn`, a multiple of 8 since `m % 32 == 0`) and columns `< hm` lie inside
            // `g`; the tile `(i0.., jp·NR..)` of two quadrants of `C` (`m × d`, checked) is
            // this task's alone.
            unsafe {
                let mut outs = outs(i, cp.0, d, (hn, hd), add);
                for o in &mut outs {
                    *o = o.at(i0, jp * NR);
                }
                let outs = &outs[..p.outs.len()];
                sgemm_packed(rt.min(hn - i0), a, right, (0, hm), (jp, np), KC_SPLIT, outs);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::sgemm::available;
    use crate::kernels::testing::{reference, values};
    use crate::par::with_threads;

    /// Within the one-level bound: each of the (at most four) products in a quadrant of `C`
    /// sums `k/2` terms of operands at most twice as large, in blocks of `KC_SPLIT`, plus the
    /// additions into `C` (entries of `A` and `B` lie in [−0.5, 0.5]). A product left out,
    /// or added with the wrong sign, is off by about the size of `C` itself (≈ 0.1·√k).
    fn assert_close(got: &[f32], want: &[f64], k: usize, what: &str) {
        assert_eq!(got.len(), want.len());
        let hk = k / 2;
        let terms = hk.min(KC_SPLIT) + hk.div_ceil(KC_SPLIT) + 4;
        let tol = 4.0 * terms as f64 * f32::EPSILON as f64 / 2.0 * hk as f64;
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= tol,
                "{what}: element {i}: {g} vs {w}"
            );
        }
    }

    /// Shapes that split, around the micro-tile (8 × 48), `KC_SPLIT` (a half of 770 is 385) and
    /// the packed panels of `gᵀ` (a half width of 400 ≥ 384 columns).
    const SHAPES: [(usize, usize, usize); 5] = [
        (2, 2, 32),
        (18, 98, 64),
        (34, 770, 96),
        (66, 40, 160),
        (402, 300, 800),
    ];

    #[test]
    fn products_match_the_f64_reference_and_accumulate() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        for &(rows, d, m) in &SHAPES {
            assert!(applies(rows, d, m));
            let x = values(rows * d, 1);
            let w = values(m * d, 2);
            let g = values(rows * m, 3);
            let sx = SplitX::new(Par::Seq, &x, rows, d);
            let mut packs = Vec::new();
            pack_right(Par::Seq, &w, m, d, &mut packs);
            let mut c = vec![f32::NAN; rows * m];
            rows_times(Par::Seq, &sx, &packs, &mut c, 16);
            let (want, _) = reference(rows, m, d, |i, p| x[i * d + p], |p, j| w[j * d + p]);
            assert_close(&c, &want, d, &format!("X·Wᵀ {rows}×{d}, width {m}"));

            let mut s = vec![f32::NAN; m * d];
            transposed_times(Par::Seq, &g, m, &sx, &mut s, false);
            let (want, _) = reference(m, d, rows, |i, p| g[p * m + i], |p, j| x[p * d + j]);
            assert_close(&s, &want, rows, &format!("gᵀ·X {rows}×{d}, width {m}"));
            transposed_times(Par::Seq, &g, m, &sx, &mut s, true);
            let twice: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
            assert_close(&s, &twice, 2 * rows, &format!("gᵀ·X twice, width {m}"));
        }
    }

    #[test]
    fn results_are_bitwise_independent_of_bands_and_threads() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        let (rows, d, m) = (402, 300, 800);
        let x = values(rows * d, 4);
        let w = values(m * d, 5);
        let g = values(rows * m, 6);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let run = |threads: usize, band: usize| {
            with_threads(threads, |par| {
                let sx = SplitX::new(par, &x, rows, d);
                let mut packs = Vec::new();
                pack_right(par, &w, m, d, &mut packs);
                let mut c = vec![f32::NAN; rows * m];
                rows_times(par, &sx, &packs, &mut c, band);
                let mut s = vec![f32::NAN; m * d];
                transposed_times(par, &g, m, &sx, &mut s, false);
                (bits(&c), bits(&s))
            })
        };
        let first = run(1, 512);
        for (threads, band) in [(1, 8), (2, 64), (3, 24), (8, 512)] {
            let (c, s) = run(threads, band);
            assert!(
                c == first.0,
                "X·Wᵀ differs at {threads} threads, band {band}"
            );
            assert!(s == first.1, "gᵀ·X differs at {threads} threads");
        }
    }

    #[test]
    fn only_even_shapes_with_whole_half_vectors_split() {
        assert!(applies(5000, 3072, 800));
        assert!(!applies(5001, 3072, 800));
        assert!(!applies(5000, 3071, 800));
        assert!(!applies(5000, 3072, 200));
        assert!(!applies(5000, 3072, 0));
        assert!(!applies(0, 3072, 800));
    }
}
