//! Special functions the activations need: `erf`/`erfc` in f64 (std has none on stable), the
//! branch-free rational f32 `tanh` of the fast kernels, and branch-free f64 `exp`, `ln(1+u)`,
//! `erfcx`, `erfc` for the fast f32 softplus and GELU.
//!
//! **erf/erfc.** Chebyshev expansions (evaluated by Clenshaw's recurrence) of smooth functions on
//! a few intervals; the coefficients were computed at 40 significant digits and truncated below
//! 1e-19 (relative to function values of order 0.1–1):
//! - `|x| ≤ 1`: `erf(x) = x · g(x²)`, `g(t) = erf(√t)/√t` expanded in `u = 2t − 1`;
//! - `x > 1`: `erfc(x) = e^{−x²} · erfcx(x)` with the scaled function `erfcx(x) = e^{x²} erfc(x)`
//!   expanded on `[1,2]`, `[2,4]`, `[4,8]`, and on `[8, ∞)` as `erfcx(x) = k(64/x²)/x`;
//! - negative `x` by symmetry: `erf(−x) = −erf(x)`, `erfc(−x) = 2 − erfc(x)`.
//!
//! `e^{−x²}` uses the exact split `x² = hi + lo` (Dekker's product), so its relative error does
//! not grow like `x²·ε`. Result: relative error ≲ 1e-15 for `erf` on the real line and for
//! `erfc` down to its underflow at `x ≈ 27` (see the tests, which check against independent
//! series / continued fractions and 40-digit values).
//!
//! **tanh (f32).** `tanh(x) ≈ x·P(x²)/Q(x²)`, `P` of degree 6 and `Q` of degree 3 in `x²`, a
//! weighted least-squares/Lawson near-minimax fit on `[0, 9.25]` (fit error 8e-9). The input is
//! clamped to `±9.25` (where `tanh` rounds to ±1 in f32) and the output to `[−1, 1]`. The rational is
//! evaluated in f64 and rounded once to f32, so the maximum absolute error vs the exact `tanh` is
//! fit error + half an ulp ≈ 4e-8 over all f32 inputs; `±0 → ±0`, `±∞ → ±1`, NaN → NaN. No
//! branches, so it vectorizes; evaluated with FMA (`mul_add`), a single instruction in the AVX2 /
//! AVX-512 kernels.
//!
//! **Branch-free f64 building blocks** (`*_lanes`) of the fast f32 softplus and GELU
//! ([`softplus_f32`](super::act::softplus_f32), [`gelu_f32`](super::act::gelu_f32)). No branches
//! on data (only selects, which become blends), no library calls, `mul_add` for every Horner step,
//! so LLVM vectorizes them at full f64 width inside the SIMD kernels. Their coefficients are
//! printed by `scripts/special-coefficients.py` (mpmath, 40 digits).
//!
//! | function | method | relative error (tested) |
//! |---|---|---|
//! | [`exp_lanes`]`(x)` | Cody–Waite `x = k ln2 + r`, `\|r\| ≤ ln2/2`; `2eʳ` by its Taylor series to `r¹³`; times `2^{k−1}` built from the exponent bits | ≤ 2.3e-16 (1 ulp) vs std `exp` |
//! | [`ln1p_lanes`]`(u)`, `u ∈ [0, 1]` | `ln(1+u) = 2 atanh(y/2)`, `y = 2u/(2+u)`, or `ln 2 + 2 atanh(y/2)`, `y = 2(u−1)/(u+3)` for `u ≥ √2−1` (`\|y\| ≤ 0.344`); odd series to `y¹⁹` | ≤ 5e-16 (2 ulp) vs std `ln_1p` |
//! | [`erfcx_lanes`]`(t)`, `t ≥ 0` | `e^{t²} erfc(t) = g(w)/(t+K)`, `w = (t−K)/(t+K) = 1 − 2K/(t+K)`, `K = 3`: `g` a degree-21 polynomial (truncated Chebyshev series, 3e-18) in `w ∈ [−1, 1]`, so one division covers `[0, ∞]` | ≤ 1.5e-15 vs a continued fraction / asymptotic series |
//! | [`erfc_lanes`]`(x)` | `e^{−x²}·erfcx(\|x\|)` (`x²` split exactly by FMA), `2 − …` for `x < 0` | ≤ 2e-15 vs [`erfc`] (relative also where it is tiny) |
//!
//! Ranges: `exp_lanes` is `+∞` above 709.78 and flushes to `0` below −708 (where the result
//! would be below 3.3e-308, i.e. (nearly) subnormal; the kernels round to f32, where these are 0
//! anyway); `erfc_lanes` follows it to `0` above `x ≈ 26.6`; `±∞` give the limits and NaN
//! propagates everywhere.

const ERF_SMALL: [f64; 14] = [
    0.9754769393826541,
    -0.14226120510371365,
    0.010035582187599796,
    -0.0005768764699767485,
    2.741993125219606e-05,
    -1.1043175507344507e-06,
    3.8488755420345036e-08,
    -1.1808582533875466e-09,
    3.2334215826050907e-11,
    -7.991015947004549e-13,
    1.7990725113961456e-14,
    -3.718635487818693e-16,
    7.103599003714253e-18,
    -1.2612455119155226e-19,
];
const ERFCX_1_2: [f64; 18] = [
    0.331427281639452,
    -0.0850021377067432,
    0.009951127341466115,
    -0.0010810888102208325,
    0.0001102324363119495,
    -1.0636830518218601e-05,
    9.775012680479055e-07,
    -8.597922867888315e-08,
    7.2677084117248425e-09,
    -5.923543840592542e-10,
    4.6683928572294154e-11,
    -3.56612770156775e-12,
    2.6458779519104523e-13,
    -1.9101658673527567e-14,
    1.343976588479829e-15,
    -9.228790549094326e-17,
    6.19267308464391e-18,
    -4.0652224326488762e-19,
];
const ERFCX_2_4: [f64; 21] = [
    0.1874295690262241,
    -0.05794652883669097,
    0.008595247387396534,
    -0.0012284613640242594,
    0.00016974366686180488,
    -2.2738329337044562e-05,
    2.959844378804878e-06,
    -3.7513575581379714e-07,
    4.6372828761738244e-08,
    -5.599455392564088e-09,
    6.613160896679916e-10,
    -7.648271522199816e-11,
    8.670904325876594e-12,
    -9.645456274382108e-13,
    1.0536827959360625e-13,
    -1.1312630906760667e-14,
    1.1945180669174577e-15,
    -1.241310752580407e-16,
    1.270246323185436e-17,
    -1.280725873663855e-18,
    1.2729426443953689e-19,
];
const ERFCX_4_8: [f64; 23] = [
    0.09799557556862198,
    -0.03261716242283879,
    0.005354444513048941,
    -0.0008675085617618387,
    0.0001387834577332989,
    -2.1933248302183236e-05,
    3.425716824410705e-06,
    -5.289955530513349e-07,
    8.079076527537946e-08,
    -1.2207511691612988e-08,
    1.8255151508559988e-09,
    -2.7024969193563974e-10,
    3.961752303537055e-11,
    -5.752619043200236e-12,
    8.275752891382595e-13,
    -1.1798167744445412e-13,
    1.6671816868045593e-14,
    -2.335628745546585e-15,
    3.244620004495789e-16,
    -4.470390173206754e-17,
    6.10980111227626e-18,
    -8.284830681274416e-19,
    1.114773431757112e-19,
];
const ERFCX_TAIL: [f64; 11] = [
    0.5620232535497205,
    -0.002154013397999809,
    1.2201568452414311e-05,
    -1.1354857606087159e-07,
    1.4587616832425226e-09,
    -2.3767849239084634e-11,
    4.670311262349688e-13,
    -1.0705011205110417e-14,
    2.795366217426756e-16,
    -8.170182821623561e-18,
    2.636507310554001e-19,
];

/// Clenshaw evaluation of `Σ_k c_k T_k(u)`, `u ∈ [−1, 1]`.
#[inline]
fn chebyshev(c: &[f64], u: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c[1..].iter().rev() {
        let b0 = 2.0 * u * b1 - b2 + ck;
        b2 = b1;
        b1 = b0;
    }
    u * b1 - b2 + c[0]
}

/// `e^{−x²}` for `0 ≤ x < 28`, with the rounding error of `x²` compensated.
#[inline]
fn exp_neg_sq(x: f64) -> f64 {
    // Dekker: split x = xh + xl with xh holding the upper 26 bits, so xh·xh, xh·xl, xl·xl are exact.
    const SPLIT: f64 = 134_217_729.0; // 2^27 + 1
    let hi = x * x;
    let c = SPLIT * x;
    let xh = c - (c - x);
    let xl = x - xh;
    let lo = ((xh * xh - hi) + 2.0 * xh * xl) + xl * xl; // x² − hi, exactly
                                                         // e^{−hi−lo} = e^{−hi}·e^{−lo}, |lo| ≤ ulp(hi)/2 ≤ 1e-13 so e^{−lo} = 1 − lo to f64 precision.
    (-hi).exp() * (1.0 - lo)
}

/// `erfc(x)` for `x > 1` (also NaN → NaN, +∞ → 0).
#[inline]
fn erfc_gt1(x: f64) -> f64 {
    if x >= 28.0 {
        // erfc(27.3) is below the smallest subnormal.
        return 0.0;
    }
    let scaled = if x < 2.0 {
        chebyshev(&ERFCX_1_2, 2.0 * x - 3.0)
    } else if x < 4.0 {
        chebyshev(&ERFCX_2_4, x - 3.0)
    } else if x < 8.0 {
        chebyshev(&ERFCX_4_8, 0.5 * x - 3.0)
    } else {
        chebyshev(&ERFCX_TAIL, 128.0 / (x * x) - 1.0) / x
    };
    exp_neg_sq(x) * scaled
}

/// `erf(x)` for `|x| ≤ 1`.
#[inline]
fn erf_small(x: f64) -> f64 {
    x * chebyshev(&ERF_SMALL, 2.0 * x * x - 1.0)
}

/// The error function `erf(x) = (2/√π) ∫_0^x e^{−t²} dt`; relative error ≲ 1e-15.
pub fn erf(x: f64) -> f64 {
    let ax = x.abs();
    if ax <= 1.0 {
        erf_small(x)
    } else if ax > 1.0 {
        (1.0 - erfc_gt1(ax)).copysign(x)
    } else {
        x // NaN
    }
}

/// The complementary error function `erfc(x) = 1 − erf(x)`, accurate in relative terms also
/// where it is tiny (large positive `x`).
pub fn erfc(x: f64) -> f64 {
    if x > 1.0 {
        erfc_gt1(x)
    } else if x < -1.0 {
        2.0 - erfc_gt1(-x)
    } else if x.abs() <= 1.0 {
        1.0 - erf_small(x)
    } else {
        x // NaN
    }
}

/// `|x|` beyond which the f32 rational tanh returns ±1 (after the output clamp).
pub const TANH_F32_CLAMP: f32 = 9.25;
// Numerator P(t) and denominator Q(t) (Q(0) = 1) in t = x², highest degree first for Horner.
const TANH_P: [f64; 7] = [
    -7.664254684715669e-14,
    4.9457371930616534e-11,
    -1.951125017790428e-8,
    1.0972905833405271e-5,
    0.003086252706683382,
    0.13068033176828836,
    0.999999958804004,
];
const TANH_Q: [f64; 4] = [
    0.0002520589520964317,
    0.024424290578397134,
    0.46401349449733326,
    1.0,
];

/// `Σ c[i]·x^(n−1−i)` by Horner's rule with one `mul_add` per step (coefficients highest
/// degree first; `c` is non-empty).
#[inline(always)]
fn horner(c: &[f64], x: f64) -> f64 {
    c[1..].iter().fold(c[0], |acc, &ci| acc.mul_add(x, ci))
}

/// The branch-free rational `tanh` for f32 (see the module docs for its error bound).
///
/// The rational is evaluated in f64 lanes: in f32, the rounding errors of the two Horner chains
/// and the division add up to 2.8e-7 (5 ulp near ±1); in f64 only the final rounding to f32
/// remains. Uses `mul_add`: one instruction inside the FMA-enabled kernels, a (correctly rounded,
/// slower) library call elsewhere — the results are identical.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    // `clamp` keeps NaN, so NaN propagates through to the result.
    let x = f64::from(x.clamp(-TANH_F32_CLAMP, TANH_F32_CLAMP));
    let t = x * x;
    ((x * horner(&TANH_P, t) / horner(&TANH_Q, t)) as f32).clamp(-1.0, 1.0)
}

// ---------------------------------------------------------------------------------------------
// Branch-free f64 building blocks (see the module docs). Generated by
// scripts/special-coefficients.py; highest degree first, for Horner.
// ---------------------------------------------------------------------------------------------

/// `2/n!` for `n = 13..0`: the Taylor series of `2eʳ` (truncation error < 4e-18 for
/// `|r| ≤ ln2/2`). The factor 2 lets the scale be `2^{k−1}`, a normal number up to `k = 1024`.
const EXP_Q: [f64; 14] = [
    3.2118087673643227e-10,
    4.17535139757362e-09,
    5.010421677088344e-08,
    5.511463844797178e-07,
    5.5114638447971785e-06,
    4.96031746031746e-05,
    0.0003968253968253968,
    0.002777777777777778,
    0.016666666666666666,
    0.08333333333333333,
    0.3333333333333333,
    1.0,
    2.0,
    2.0,
];
/// `ln 2 − LN_2`: the low part of ln 2 for the Cody–Waite reduction.
const LN2_LO: f64 = 2.3190468138462996e-17;
/// `1.5·2⁵²`: adding it rounds a number of magnitude < 2⁵¹ to an integer, which then sits in
/// the low mantissa bits.
const ROUND_SHIFT: f64 = 6_755_399_441_055_744.0;
/// Below this `exp_lanes` returns 0 (the result would be < 3.3e-308).
const EXP_FLUSH: f64 = -708.0;
/// Arguments are clamped to `[EXP_FLUSH, EXP_OVER]`: `k ≤ 1024` keeps `2^{k−1}` normal, and
/// `e^{710}` already overflows to `+∞`.
const EXP_OVER: f64 = 710.0;

/// Branch-free `eˣ` for SIMD lanes: relative error ≤ 1 ulp; `+∞` above 709.78, `0` below −708
/// (flush instead of subnormals), `e^{−∞} = 0`, `e^{+∞} = +∞`, NaN → NaN.
#[inline(always)]
pub fn exp_lanes(x: f64) -> f64 {
    // `clamp` keeps NaN.
    let xc = x.clamp(EXP_FLUSH, EXP_OVER);
    // k = round(x/ln2) (ties to even), as a float and in the low mantissa bits of `t`.
    let t = xc.mul_add(std::f64::consts::LOG2_E, ROUND_SHIFT);
    let kf = t - ROUND_SHIFT;
    // r = x − k ln2: the first FMA is exact (Cody–Waite), the second adds ln2's low part.
    let r = (-kf).mul_add(std::f64::consts::LN_2, xc);
    let r = (-kf).mul_add(LN2_LO, r);
    let q = horner(&EXP_Q, r);
    // 2^{k−1}: k − 1 ∈ [−1022, 1023], so the biased exponent k + 1022 is in [1, 2046].
    let k = t.to_bits().wrapping_sub(ROUND_SHIFT.to_bits());
    let scale = f64::from_bits(k.wrapping_add(1022) << 52);
    let y = q * scale;
    if x < EXP_FLUSH {
        0.0
    } else {
        y
    }
}

/// `1/(4^k (2k+1))` for `k = 9..0`: `2 atanh(y/2) = y Σ_k y^{2k}/(4^k (2k+1))` (truncation
/// < 3e-17 for `|y| ≤ 0.344`).
const LN1P_S: [f64; 10] = [
    2.0077354029605262e-07,
    8.975758272058823e-07,
    4.069010416666667e-06,
    1.8780048076923078e-05,
    8.87784090909091e-05,
    0.00043402777777777775,
    0.002232142857142857,
    0.0125,
    0.08333333333333333,
    1.0,
];

/// Branch-free `ln(1 + u)` for `u ∈ [0, 1]` (SIMD lanes): relative error ≤ 2 ulp, also for tiny
/// and subnormal `u`; NaN → NaN. Outside `[0, 1]` the series converges slowly: not for use there.
#[inline(always)]
pub fn ln1p_lanes(u: f64) -> f64 {
    // ln(1+u) = 2 atanh(s) with s = u/(2+u); above √2−1, ln(1+u) = ln2 + ln((1+u)/2) with
    // s = (u−1)/(u+3). Either way |s| ≤ 0.172. y = 2s keeps tiny u exact (2u/2 = u).
    let low = u < std::f64::consts::SQRT_2 - 1.0;
    let num = if low { u + u } else { 2.0 * (u - 1.0) };
    let den = if low { 2.0 + u } else { u + 3.0 };
    let off = if low { 0.0 } else { std::f64::consts::LN_2 };
    let y = num / den;
    let yy = y * y;
    y.mul_add(horner(&LN1P_S, yy), off)
}

/// `K` of the erfcx map `w = (t−K)/(t+K)`.
const ERFCX_K: f64 = 3.0;
/// `g(w) = (t+K)·erfcx(t)` for `t = K(1+w)/(1−w)`, `w ∈ [−1, 1]`: monomial form of its
/// Chebyshev series (40-digit interpolation at 64 points) truncated to 22 terms; the first dropped
/// coefficient is 3.3e-18, and `g ∈ [1/√π, 3]`.
const ERFCX_G: [f64; 22] = [
    -4.0301290737265825e-09,
    -3.529913503448883e-09,
    3.9523308981847586e-08,
    4.986707272786026e-08,
    -2.1723944408311606e-07,
    -4.1156335216014677e-07,
    9.839516452310493e-07,
    2.7676472847012437e-06,
    -4.7403568108185474e-06,
    -1.747151783308634e-05,
    3.039473602547077e-05,
    0.00010756175221393728,
    -0.00027677699993368523,
    -0.000548309738742103,
    0.00303406187394487,
    -0.0012124166223302848,
    -0.02682723461387531,
    0.11952776128703103,
    -0.3104672619009746,
    0.5902283571041071,
    -0.883394453169879,
    1.0740069070883398,
];

/// Branch-free scaled complementary error function `erfcx(t) = e^{t²} erfc(t)` for `t ≥ 0`
/// (SIMD lanes), relative error ≤ 1.5e-15; `erfcx(+∞) = 0`, NaN → NaN. Negative `t`: not
/// defined.
#[inline(always)]
pub fn erfcx_lanes(t: f64) -> f64 {
    let inv = 1.0 / (t + ERFCX_K);
    // w = (t−K)/(t+K) without a second division; t = +∞ gives w = 1, not NaN.
    let w = (-2.0 * ERFCX_K).mul_add(inv, 1.0);
    horner(&ERFCX_G, w) * inv
}

/// Branch-free `erfc(x)` for all `x` (SIMD lanes), relative error ≤ 2e-15 also where it is tiny;
/// 0 above `x ≈ 26.6` (see [`exp_lanes`]), `erfc(−∞) = 2`, NaN → NaN.
#[inline(always)]
pub fn erfc_lanes(x: f64) -> f64 {
    // Beyond 27, e^{−x²} is flushed to 0 anyway; the clamp keeps x² + its error term finite.
    let a = x.abs().clamp(0.0, 27.0);
    // x² = hi + lo exactly (FMA), e^{−x²} = e^{−hi}(1 − lo) to f64 precision (|lo| ≤ 4e-14).
    let hi = a * a;
    let lo = a.mul_add(a, -hi);
    let e = exp_lanes(-hi);
    let e = e.mul_add(-lo, e);
    let c = e * erfcx_lanes(x.abs());
    if x < 0.0 {
        2.0 - c
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_OVER_SQRT_PI: f64 = std::f64::consts::FRAC_2_SQRT_PI;

    /// erf by its Maclaurin series, valid (cancellation below 1e-15) for |x| ≤ 1.5.
    fn erf_taylor(x: f64) -> f64 {
        // Σ (−1)^n x^{2n+1} / (n! (2n+1))
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-18 * sum.abs() {
                break;
            }
        }
        TWO_OVER_SQRT_PI * sum
    }

    /// erfc for x > 0 by the even contraction of Laplace's continued fraction
    /// `erfc(x) = (2x e^{−x²}/√π) / (2x²+1 − 1·2/(2x²+5 − 3·4/(2x²+9 − …)))`, evaluated backwards
    /// from `depth` levels.
    fn erfc_cf(x: f64, depth: usize) -> f64 {
        // e^{-x²} without the x² rounding issue: for the test points x is a short binary number.
        erfcx_cf(x, depth) * (-x * x).exp()
    }

    /// The scaled `erfcx(x) = e^{x²} erfc(x)` by the same continued fraction (x > 0).
    fn erfcx_cf(x: f64, depth: usize) -> f64 {
        let y = 2.0 * x * x;
        let mut tail = 0.0;
        for k in (1..=depth).rev() {
            let num = ((2 * k - 1) * (2 * k)) as f64;
            tail = num / (y + (4 * k + 1) as f64 - tail);
        }
        2.0 * x / (y + 1.0 - tail) / std::f64::consts::PI.sqrt()
    }

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs()
        }
    }

    #[test]
    fn erf_matches_40_digit_values() {
        // (x, erf(x), erfc(x)) from a 40-digit evaluation, rounded to f64.
        let table: [(f64, f64, f64); 23] = [
            (1e-300, 1.1283791670955126e-300, 1.0),
            (1e-8, 1.1283791670955126e-08, 0.9999999887162083),
            (0.1, 0.1124629160182849, 0.8875370839817152),
            (0.5, 0.5204998778130465, 0.4795001221869535),
            (0.9, 0.7969082124228322, 0.20309178757716786),
            (1.0, 0.8427007929497149, 0.15729920705028513),
            (1.5, 0.9661051464753108, 0.033894853524689274),
            (2.0, 0.9953222650189527, 0.004677734981047266),
            (3.0, 0.9999779095030014, 2.209049699858544e-05),
            (3.7, 0.9999998328489421, 1.671510579091462e-07),
            (4.0, 0.9999999845827421, 1.541725790028002e-08),
            (5.0, 0.9999999999984626, 1.537459794428035e-12),
            (6.0, 1.0, 2.1519736712498913e-17),
            (7.5, 1.0, 2.776649386030569e-26),
            (8.0, 1.0, 1.1224297172982926e-29),
            (10.0, 1.0, 2.088487583762545e-45),
            (15.0, 1.0, 7.212994172451207e-100),
            (20.0, 1.0, 5.395865611607901e-176),
            (26.0, 1.0, 5.663192408856143e-296),
            (-0.5, -0.5204998778130465, 1.5204998778130465),
            (-1.5, -0.9661051464753108, 1.9661051464753108),
            (-3.0, -0.9999779095030014, 1.9999779095030015),
            (-6.0, -1.0, 2.0),
        ];
        for (x, e, ec) in table {
            assert!(rel(erf(x), e) < 5e-16, "erf({x}) = {} vs {e}", erf(x));
            assert!(rel(erfc(x), ec) < 2e-15, "erfc({x}) = {} vs {ec}", erfc(x));
        }
    }

    #[test]
    fn erf_matches_series_and_continued_fraction() {
        let mut worst_erf: f64 = 0.0;
        let mut worst_erfc: f64 = 0.0;
        // Dense grid in steps of 1/512 (exact binary fractions) over [-6, 27].
        for i in -3072..=13824 {
            let x = i as f64 / 512.0;
            let reference_erf = if x.abs() <= 1.5 {
                erf_taylor(x)
            } else {
                (1.0 - erfc_cf(x.abs(), 4000)).copysign(x)
            };
            if x.abs() <= 6.0 {
                worst_erf = worst_erf.max(rel(erf(x), reference_erf));
            }
            if x >= 0.75 {
                let cf = erfc_cf(x, 4000);
                // The reference itself must have converged.
                assert!(
                    rel(erfc_cf(x, 2000), cf) < 1e-15,
                    "continued fraction at {x}"
                );
                worst_erfc = worst_erfc.max(rel(erfc(x), cf));
            } else if x.abs() <= 1.5 {
                worst_erfc = worst_erfc.max(rel(erfc(x), 1.0 - reference_erf));
            }
        }
        assert!(worst_erf < 1e-15, "erf max relative error {worst_erf:e}");
        assert!(worst_erfc < 1e-14, "erfc max relative error {worst_erfc:e}");
    }

    #[test]
    fn erf_derivative_by_finite_differences() {
        // erf'(x) = 2/√π e^{−x²}; a central difference with step 1e-5 is accurate to ~1e-10.
        let h = 1e-5;
        for i in -400..=400 {
            let x = i as f64 / 80.0 + 0.0031;
            let fd = (erf(x + h) - erf(x - h)) / (2.0 * h);
            let exact = TWO_OVER_SQRT_PI * (-x * x).exp();
            assert!((fd - exact).abs() < 2e-10, "erf'({x}): {fd} vs {exact}");
            let fdc = (erfc(x + h) - erfc(x - h)) / (2.0 * h);
            assert!((fdc + exact).abs() < 2e-10 * (1.0 + exact), "erfc'({x})");
        }
    }

    #[test]
    fn erf_is_continuous_across_interval_boundaries() {
        // Across each switch point the change must match the slope: erfc' = −(2/√π) e^{−x²}.
        for b in [1.0f64, 2.0, 4.0, 8.0, -1.0] {
            let d = b.abs() * 4.0 * f64::EPSILON;
            let slope = -TWO_OVER_SQRT_PI * (-b * b).exp();
            let jump = erfc(b + d) - erfc(b - d) - 2.0 * d * slope;
            assert!(jump.abs() < 2e-15 * erfc(b), "erfc jump {jump:e} at {b}");
            let jump = erf(b + d) - erf(b - d) + 2.0 * d * slope;
            assert!(jump.abs() < 2e-15, "erf jump {jump:e} at {b}");
        }
    }

    #[test]
    fn erf_special_values() {
        assert_eq!(erf(0.0), 0.0);
        assert!(erf(-0.0).is_sign_negative());
        assert_eq!(erf(f64::INFINITY), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
        assert_eq!(erfc(f64::INFINITY), 0.0);
        assert_eq!(erfc(f64::NEG_INFINITY), 2.0);
        assert_eq!(erfc(30.0), 0.0);
        assert!(erf(f64::NAN).is_nan());
        assert!(erfc(f64::NAN).is_nan());
        for i in 0..1000 {
            let x = -30.0 + i as f64 * 0.06;
            assert!((erf(x) + erfc(x) - 1.0).abs() < 4e-16, "erf + erfc at {x}");
        }
    }

    #[test]
    fn tanh_f32_accuracy_dense() {
        let mut worst: f64 = 0.0;
        let mut worst_x = 0.0f32;
        let mut check = |x: f32| {
            let y = tanh_f32(x);
            let err = (y as f64 - (x as f64).tanh()).abs();
            if err > worst {
                worst = err;
                worst_x = x;
            }
            assert!(
                (-1.0..=1.0).contains(&y),
                "tanh_f32({x}) = {y} out of range"
            );
        };
        // Every 97th f32 in [0, 10] (about 11 million points), both signs.
        let end = 10.0f32.to_bits();
        let mut bits = 0u32;
        while bits <= end {
            let x = f32::from_bits(bits);
            check(x);
            check(-x);
            bits += 97;
        }
        for x in [
            1e-45f32,
            1e-38,
            1e-20,
            1e-7,
            8.9,
            9.0,
            9.25,
            9.3,
            20.0,
            1e10,
            f32::MAX,
        ] {
            check(x);
            check(-x);
        }
        assert!(worst < 6e-8, "max abs error {worst:e} at {worst_x}");
    }

    #[test]
    fn tanh_f32_special_values() {
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(1e30), 1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        // Tiny inputs keep their relative accuracy (odd approximation, P(0) ≈ 1).
        for x in [1e-40f32, 1e-30, 1e-10, 1e-5] {
            assert!(
                ((tanh_f32(x) / x) as f64 - 1.0).abs() < 2e-7,
                "tanh_f32({x})"
            );
        }
        // Odd symmetry is exact.
        for i in 0..1000 {
            let x = i as f32 * 0.0123;
            assert_eq!(tanh_f32(-x), -tanh_f32(x));
        }
    }

    /// Deterministic uniform numbers in [0, 1) (splitmix64).
    struct Uniform(u64);
    impl Uniform {
        fn next(&mut self) -> f64 {
            let x = crate::kernels::splitmix64(&mut self.0);
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Tracks the largest relative error of `got` against `want`, with its argument.
    #[derive(Default)]
    struct Worst {
        err: f64,
        at: f64,
    }
    impl Worst {
        fn check(&mut self, x: f64, got: f64, want: f64) {
            let e = rel(got, want);
            // A NaN error is recorded too (and fails the caller's bound).
            if e > self.err || e.is_nan() {
                self.err = e;
                self.at = x;
            }
        }
    }

    #[test]
    fn exp_lanes_matches_std() {
        let mut worst = Worst::default();
        let mut u = Uniform(11);
        // Dense over the whole normal range, random points, and small arguments.
        for i in 0..=2_000_000 {
            let x = -708.0 + i as f64 * (709.78 + 708.0) / 2e6;
            worst.check(x, exp_lanes(x), x.exp());
        }
        for _ in 0..1_000_000 {
            let x = -708.0 + u.next() * (709.78 + 708.0);
            worst.check(x, exp_lanes(x), x.exp());
            let x = (u.next() - 0.5) * 2.0;
            worst.check(x, exp_lanes(x), x.exp());
        }
        for x in [
            0.0,
            -0.0,
            1e-300,
            -1e-300,
            1e-17,
            0.5 * std::f64::consts::LN_2,
            1.0,
            -1.0,
        ] {
            worst.check(x, exp_lanes(x), x.exp());
        }
        // Near overflow and near the flush point.
        for x in [709.78, 709.782712893384, -707.999, -708.0] {
            worst.check(x, exp_lanes(x), x.exp());
        }
        assert!(
            worst.err <= 2.3e-16,
            "exp_lanes max relative error {:e} at {}",
            worst.err,
            worst.at
        );
    }

    #[test]
    fn exp_lanes_special_values() {
        assert_eq!(exp_lanes(0.0), 1.0);
        assert_eq!(exp_lanes(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp_lanes(709.8), f64::INFINITY);
        assert_eq!(exp_lanes(1e300), f64::INFINITY);
        assert!(exp_lanes(709.78).is_finite());
        assert_eq!(exp_lanes(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_lanes(-1e300), 0.0);
        assert_eq!(exp_lanes(-708.0001), 0.0);
        assert!(exp_lanes(-708.0) >= f64::MIN_POSITIVE);
        assert!(exp_lanes(f64::NAN).is_nan());
    }

    #[test]
    fn ln1p_lanes_matches_std() {
        let mut worst = Worst::default();
        let mut u = Uniform(12);
        // Every 2^-21 in [0, 1], random points, tiny and subnormal arguments, the switch point.
        for i in 0..=(1 << 21) {
            let x = i as f64 / (1 << 21) as f64;
            worst.check(x, ln1p_lanes(x), x.ln_1p());
        }
        for _ in 0..1_000_000 {
            let x = u.next();
            worst.check(x, ln1p_lanes(x), x.ln_1p());
            let x = (-700.0 * u.next()).exp();
            worst.check(x, ln1p_lanes(x), x.ln_1p());
        }
        let s = std::f64::consts::SQRT_2 - 1.0;
        for x in [
            5e-324,
            1e-310,
            f64::MIN_POSITIVE,
            1e-300,
            1e-20,
            1e-8,
            s,
            f64::from_bits(s.to_bits() - 1),
            f64::from_bits(s.to_bits() + 1),
            1.0,
        ] {
            worst.check(x, ln1p_lanes(x), x.ln_1p());
        }
        assert!(
            worst.err <= 5e-16,
            "ln1p_lanes max relative error {:e} at {}",
            worst.err,
            worst.at
        );
        assert_eq!(ln1p_lanes(0.0).to_bits(), 0.0f64.to_bits());
        assert!(ln1p_lanes(f64::NAN).is_nan());
    }

    #[test]
    fn erfcx_lanes_matches_independent_references() {
        let mut worst = Worst::default();
        // [0, 0.75]: e^{t²}·erfc(t) (the factor e^{t²} ≤ 1.8 adds < 2 ulp).
        for i in 0..=3000 {
            let t = i as f64 / 4000.0;
            worst.check(t, erfcx_lanes(t), (t * t).exp() * erfc(t));
        }
        // [0.75, 100]: the continued fraction, converged (checked in the erfc tests).
        for i in 0..=99_250 {
            let t = 0.75 + i as f64 / 1000.0;
            worst.check(t, erfcx_lanes(t), erfcx_cf(t, 4000));
        }
        // Large t: the asymptotic series 1/(t√π)·(1 − 1/(2t²) + 3/(4t⁴) − 15/(8t⁶)), error
        // < 105/(16 t⁸) < 1e-18 for t ≥ 200.
        let inv_sqrt_pi = 0.5 * std::f64::consts::FRAC_2_SQRT_PI;
        for i in 0..=2000 {
            let t = 200.0 * 1.2f64.powi(i);
            if !t.is_finite() {
                break;
            }
            let v = 1.0 / (t * t);
            let series = inv_sqrt_pi / t * (1.0 - v * (0.5 - v * (0.75 - v * 1.875)));
            worst.check(t, erfcx_lanes(t), series);
        }
        assert!(
            worst.err <= 1.5e-15,
            "erfcx_lanes max relative error {:e} at {}",
            worst.err,
            worst.at
        );
        assert_eq!(erfcx_lanes(0.0), 1.0);
        assert_eq!(erfcx_lanes(f64::INFINITY), 0.0);
        assert!(erfcx_lanes(f64::NAN).is_nan());
    }

    #[test]
    fn erfc_lanes_matches_erfc() {
        let mut worst = Worst::default();
        let mut u = Uniform(13);
        // Dense over [−7, 26.5] (erfc(26.5) ≈ 1e-307), and random points.
        for i in 0..=3_350_000 {
            let x = -7.0 + i as f64 * 1e-5;
            worst.check(x, erfc_lanes(x), erfc(x));
        }
        for _ in 0..1_000_000 {
            let x = -7.0 + u.next() * 33.5;
            worst.check(x, erfc_lanes(x), erfc(x));
        }
        for x in [0.0, 1e-300, -1e-300, 1e-10, 26.5, -26.5, 1e3, -1e3] {
            worst.check(x, erfc_lanes(x), erfc(x));
        }
        // `erfc` itself is within 1e-15 of the 40-digit values (see above).
        assert!(
            worst.err <= 2e-15,
            "erfc_lanes max relative error {:e} at {}",
            worst.err,
            worst.at
        );
        assert_eq!(erfc_lanes(f64::INFINITY), 0.0);
        assert_eq!(erfc_lanes(f64::NEG_INFINITY), 2.0);
        assert_eq!(erfc_lanes(27.0), 0.0);
        assert!(erfc_lanes(f64::NAN).is_nan());
        // Tail of the 40-digit table above.
        for (x, want) in [
            (8.0, 1.1224297172982926e-29),
            (10.0, 2.088487583762545e-45),
            (15.0, 7.212994172451207e-100),
            (20.0, 5.395865611607901e-176),
            (26.0, 5.663192408856143e-296),
        ] {
            assert!(rel(erfc_lanes(x), want) < 2e-15, "erfc_lanes({x})");
        }
    }
}
