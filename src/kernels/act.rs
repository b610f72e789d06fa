//! Scalar reference activations: `σ`, `σ'`, `σ''` for every [`Activation`], computed in f64.
//!
//! | activation | `σ(x)` | `σ'(x)` | `σ''(x)` |
//! |---|---|---|---|
//! | tanh | `tanh x` | `1 − a²` (as `(1−a)(1+a)`) | `−2a(1 − a²)` |
//! | relu | `x` if `x ≥ 0` else `0` | `1` if `x > 0` else `0` (so `σ'(0) = 0`) | `0` |
//! | softplus | `max(x,0) + ln(1 + e^{−|x|})` | `sig(x) = 1/(1+e^{−x})` | `sig(1−sig) = e^{−|x|}/(1+e^{−|x|})²` |
//! | gelu | `x Φ(x)` | `Φ(x) + x φ(x)` | `φ(x)(2 − x²)` |
//! | linear | `x` | `1` | `0` |
//!
//! `Φ(x) = ½ erfc(−x/√2)` and `φ(x) = e^{−x²/2}/√(2π)` (exact erf GELU, PyTorch's default).
//! Every formula is written so that no intermediate overflows or cancels: softplus and its
//! derivatives use `e^{−|x|}`, GELU uses `erfc` (accurate where `Φ` is tiny) and drops `x φ(x)`
//! where `φ` underflows, so `σ(±∞)`, `σ'(±∞)` and `σ''(±∞)` are the limits, never NaN.
//! NaN inputs give NaN `σ` (relu and linear included), so divergence stays visible.
//!
//! **Fast f32 twins.** [`softplus_f32`] and [`gelu_f32`] evaluate the same formulas in f64 with
//! the branch-free building blocks of [`special`](super::special) ([`exp_lanes`],
//! [`ln1p_lanes`], [`erfcx_lanes`]; relative errors ≲ 2e-15) and round each of `σ`, `σ'`, `σ''`
//! once to f32; they vectorize inside the SIMD kernels. Both they and [`act_ref`] round f64
//! values that agree to ≲ 1e-14 relatively, so the f32 results differ by at most 1 ulp (relative
//! ≤ 1.2e-7), subnormals included; only `σ'` of GELU within a few f32 steps of its zero
//! `x ≈ −0.7518` could differ more, where `Φ + xφ` cancels (in the reference alike). The tests
//! (every 1e-3 in `[−30, 30]`, every 211th f32 in `[−40, 40]`, special points) assert ≤ 1 ulp and
//! relative error ≤ 4e-7 (absolute ≤ 1e-37 below 1e-30); on those ~10 million points the two are
//! in fact bit-identical. The limits at `±∞`, `±0`, the NaN propagation and the dropped products
//! (`x φ` where `φ` underflows) are those of the reference.
//!
//! GELU: `x` comes from an f32, so `x²` is exact in f64 and one `e^{−x²/2}` serves both
//! `φ(x)` and `Φ(−|x|) = ½ e^{−x²/2} erfcx(|x|/√2)`; `Φ(x) = 1 − Φ(−x)` for `x ≥ 0`.

use super::special::{erfc, erfcx_lanes, exp_lanes, ln1p_lanes, tanh_f32};
use crate::model::Activation;
use crate::real::Real;

/// `σ(x)`, `σ'(x)`, `σ''(x)` at one point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActValues<T> {
    pub a: T,
    pub d1: T,
    pub d2: T,
}

/// The reference `σ`, `σ'`, `σ''` of `act` at `x`, in f64.
pub fn act_f64(act: Activation, x: f64) -> ActValues<f64> {
    match act {
        Activation::Tanh => {
            let a = x.tanh();
            let d1 = (1.0 - a) * (1.0 + a);
            ActValues {
                a,
                d1,
                d2: -2.0 * a * d1,
            }
        }
        Activation::Relu => ActValues {
            // `x < 0` is false for NaN, so NaN propagates; relu(−0) = −0.
            a: if x < 0.0 { 0.0 } else { x },
            d1: if x > 0.0 { 1.0 } else { 0.0 },
            d2: 0.0,
        },
        Activation::Softplus => {
            let en = (-x.abs()).exp(); // in (0, 1], no overflow
            let pos = if x > 0.0 { x } else { 0.0 };
            let sig = if x >= 0.0 {
                1.0 / (1.0 + en)
            } else {
                en / (1.0 + en)
            };
            ActValues {
                a: pos + en.ln_1p(),
                d1: sig,
                d2: en / ((1.0 + en) * (1.0 + en)),
            }
        }
        Activation::Gelu => {
            let cdf = 0.5 * erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
            let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
            // Where a factor underflowed to 0 its product with an infinite x is the limit 0.
            let a = if cdf == 0.0 { 0.0 } else { x * cdf };
            let (xpdf, d2) = if pdf == 0.0 {
                (0.0, 0.0)
            } else {
                (x * pdf, pdf * (2.0 - x * x))
            };
            ActValues {
                a,
                d1: cdf + xpdf,
                d2,
            }
        }
        Activation::Linear => ActValues {
            a: x,
            d1: 1.0,
            d2: 0.0,
        },
    }
}

/// `1/√(2π)`.
pub(crate) const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The reference `σ'''` of `act` at `x`, in f64 (for third-order products): tanh `σ'(6σ² − 2)`,
/// softplus `σ''(1 − 2σ')`, GELU `xφ(x)(x² − 4)`, relu and linear `0`.
pub fn act_d3_f64(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Tanh => {
            let v = act_f64(act, x);
            v.d1 * (6.0 * v.a * v.a - 2.0)
        }
        Activation::Softplus => {
            let v = act_f64(act, x);
            v.d2 * (1.0 - 2.0 * v.d1)
        }
        Activation::Gelu => {
            let pdf = INV_SQRT_2PI * (-0.5 * x * x).exp();
            if pdf == 0.0 {
                0.0
            } else {
                x * pdf * (x * x - 4.0)
            }
        }
        Activation::Relu | Activation::Linear => 0.0,
    }
}

/// Fast f32 tanh `σ`, `σ'`, `σ''` from the rational [`tanh_f32`]: `σ' = (1−a)(1+a)` (relatively
/// accurate as `|a| → 1`, unlike `1 − a²`), `σ'' = −2aσ'`.
#[inline(always)]
pub fn tanh_act_f32(x: f32) -> ActValues<f32> {
    let a = tanh_f32(x);
    let d1 = (1.0 - a) * (1.0 + a);
    ActValues {
        a,
        d1,
        d2: -2.0 * a * d1,
    }
}

/// Fast f32 softplus `σ`, `σ'`, `σ''` (branch-free, see the module docs for the error bound).
#[inline(always)]
pub fn softplus_f32(x: f32) -> ActValues<f32> {
    let x = f64::from(x);
    let en = exp_lanes(-x.abs()); // in [0, 1]
    let pos = if x > 0.0 { x } else { 0.0 };
    let inv = 1.0 / (1.0 + en);
    let sig = if x >= 0.0 { inv } else { en * inv };
    ActValues {
        a: (pos + ln1p_lanes(en)) as f32,
        d1: sig as f32,
        d2: (en * inv * inv) as f32,
    }
}

/// Fast f32 exact-erf GELU `σ`, `σ'`, `σ''` (branch-free, see the module docs for the error
/// bound).
#[inline(always)]
pub fn gelu_f32(x: f32) -> ActValues<f32> {
    let x = f64::from(x);
    let xx = x * x; // exact: x has 24 significant bits
    let e = exp_lanes(-0.5 * xx);
    let pdf = INV_SQRT_2PI * e;
    // Φ(−|x|) = ½ erfc(|x|/√2) = ½ e^{−x²/2} erfcx(|x|/√2); erfcx(+∞) = 0, not NaN.
    let tail = 0.5 * e * erfcx_lanes(x.abs() * std::f64::consts::FRAC_1_SQRT_2);
    let cdf = if x < 0.0 { tail } else { 1.0 - tail };
    // As in `act_f64`: where a factor underflowed to 0 its product with an infinite x is 0.
    let a = if cdf == 0.0 { 0.0 } else { x * cdf };
    let xpdf = if pdf == 0.0 { 0.0 } else { x * pdf };
    let d2 = if pdf == 0.0 { 0.0 } else { pdf * (2.0 - xx) };
    ActValues {
        a: a as f32,
        d1: (cdf + xpdf) as f32,
        d2: d2 as f32,
    }
}

/// [`act_f64`] for any [`Real`]: the input is widened to f64 and the results rounded back.
#[inline]
pub fn act_ref<T: Real>(act: Activation, x: T) -> ActValues<T> {
    let v = act_f64(act, x.to_f64());
    ActValues {
        a: T::from_f64(v.a),
        d1: T::from_f64(v.d1),
        d2: T::from_f64(v.d2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<f64> {
        // Many points in [-8, 8], none within 1e-3 of relu's kink at 0.
        (0..=640)
            .map(|i| -8.0 + i as f64 * 0.025 + 0.0037)
            .filter(|x: &f64| x.abs() > 1e-3)
            .collect()
    }

    #[test]
    fn derivatives_match_central_differences() {
        let h = 1e-5;
        for act in Activation::ALL {
            for x in points() {
                let v = act_f64(act, x);
                let (p, m) = (act_f64(act, x + h), act_f64(act, x - h));
                let fd1 = (p.a - m.a) / (2.0 * h);
                let fd2 = (p.d1 - m.d1) / (2.0 * h);
                // Central-difference error ~ h²|σ'''|/6 + ε|σ|/h ≈ 1e-10 here.
                assert!(
                    (fd1 - v.d1).abs() < 1e-8,
                    "{act} σ'({x}): {} vs fd {fd1}",
                    v.d1
                );
                assert!(
                    (fd2 - v.d2).abs() < 1e-8,
                    "{act} σ''({x}): {} vs fd {fd2}",
                    v.d2
                );
                let fd3 = (p.d2 - m.d2) / (2.0 * h);
                let d3 = act_d3_f64(act, x);
                assert!((fd3 - d3).abs() < 1e-8, "{act} σ'''({x}): {d3} vs fd {fd3}");
            }
        }
    }

    #[test]
    fn known_values() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 * (1.0 + b.abs());
        // gelu(1) = Φ(1) = 0.8413447460685429…
        assert!(close(
            act_f64(Activation::Gelu, 1.0).a,
            0.841_344_746_068_542_9
        ));
        assert!(close(act_f64(Activation::Gelu, 0.0).d1, 0.5));
        assert!(close(
            act_f64(Activation::Softplus, 0.0).a,
            std::f64::consts::LN_2
        ));
        assert!(close(act_f64(Activation::Softplus, 0.0).d2, 0.25));
        assert_eq!(act_f64(Activation::Softplus, 800.0).a, 800.0);
        assert!(act_f64(Activation::Softplus, -800.0).a >= 0.0);
        assert_eq!(act_f64(Activation::Relu, 0.0).d1, 0.0);
        assert_eq!(act_f64(Activation::Relu, -2.0).a, 0.0);
        assert_eq!(act_f64(Activation::Linear, -2.5).a, -2.5);
    }

    #[test]
    fn infinities_give_limits_and_nan_propagates() {
        for act in Activation::ALL {
            for x in [f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e300] {
                let v = act_f64(act, x);
                assert!(
                    !v.a.is_nan() && !v.d1.is_nan() && !v.d2.is_nan(),
                    "{act} at {x}"
                );
            }
            assert!(act_f64(act, f64::NAN).a.is_nan(), "{act} NaN");
        }
        let g = act_f64(Activation::Gelu, f64::NEG_INFINITY);
        assert_eq!((g.a, g.d1, g.d2), (0.0, 0.0, 0.0));
        let s = act_f64(Activation::Softplus, f64::INFINITY);
        assert_eq!((s.d1, s.d2), (1.0, 0.0));
    }

    #[test]
    fn generic_matches_f64() {
        for act in Activation::ALL {
            for x in points() {
                let v32 = act_ref::<f32>(act, x as f32);
                let v64 = act_f64(act, x as f32 as f64);
                assert_eq!(v32.a, v64.a as f32);
                assert_eq!(v32.d1, v64.d1 as f32);
            }
        }
    }

    /// f32 values `got` of the fast twin against `act_f64` rounded to f32 (`want`).
    #[derive(Default, Debug)]
    struct F32Errors {
        /// Largest relative error where `|want| ≥ 1e-30`.
        rel: f64,
        /// Largest absolute error where `|want| < 1e-30`.
        abs_tiny: f64,
        /// Largest distance in f32 steps (ulps), over all values.
        ulps: u32,
    }

    /// Position of `x` on the line of f32 values (`±0` → 0).
    fn f32_rank(x: f32) -> i64 {
        let b = i64::from(x.to_bits() & 0x7fff_ffff);
        if x.is_sign_negative() {
            -b
        } else {
            b
        }
    }

    impl F32Errors {
        fn check(&mut self, what: &str, x: f32, got: f32, want: f32) {
            if want.is_nan() || got.is_nan() {
                assert!(
                    want.is_nan() && got.is_nan(),
                    "{what}({x}): {got} vs {want}"
                );
                return;
            }
            if want.is_infinite() || got.is_infinite() {
                assert_eq!(got, want, "{what}({x})");
                return;
            }
            let (g, w) = (f64::from(got), f64::from(want));
            let err = (g - w).abs();
            if w.abs() >= 1e-30 {
                let rel = err / w.abs();
                assert!(
                    rel <= 4e-7,
                    "{what}({x}): {got} vs {want}, relative error {rel:e}"
                );
                self.rel = self.rel.max(rel);
            } else {
                assert!(err <= 1e-37, "{what}({x}): {got} vs {want}, error {err:e}");
                self.abs_tiny = self.abs_tiny.max(err);
            }
            self.ulps = self
                .ulps
                .max((f32_rank(got) - f32_rank(want)).unsigned_abs() as u32);
        }
    }

    fn fast_f32(act: Activation) -> fn(f32) -> ActValues<f32> {
        match act {
            Activation::Softplus => softplus_f32,
            Activation::Gelu => gelu_f32,
            _ => unreachable!("no fast f32 twin for {act}"),
        }
    }

    /// Checks σ, σ', σ'' of the fast twin at `x` against the reference rounded to f32.
    fn check_fast(act: Activation, x: f32, errs: &mut [F32Errors; 3]) {
        let got = fast_f32(act)(x);
        let want = act_ref::<f32>(act, x);
        errs[0].check(&format!("{act} σ"), x, got.a, want.a);
        errs[1].check(&format!("{act} σ'"), x, got.d1, want.d1);
        errs[2].check(&format!("{act} σ''"), x, got.d2, want.d2);
    }

    const FAST_F32: [Activation; 2] = [Activation::Softplus, Activation::Gelu];

    #[test]
    fn fast_f32_matches_reference_dense() {
        for act in FAST_F32 {
            let mut errs: [F32Errors; 3] = Default::default();
            // Every 1e-3 in [−30, 30].
            for i in -30_000..=30_000 {
                check_fast(act, (i as f64 * 1e-3) as f32, &mut errs);
            }
            // Every 211th f32 in [0, 40] (about 5 million values), both signs.
            let end = 40.0f32.to_bits();
            let mut bits = 0u32;
            while bits <= end {
                let x = f32::from_bits(bits);
                check_fast(act, x, &mut errs);
                check_fast(act, -x, &mut errs);
                bits += 211;
            }
            // The reference rounded to f32 and the fast twin are at most 1 f32 step apart.
            for (e, what) in errs.iter().zip(["σ", "σ'", "σ''"]) {
                assert!(e.ulps <= 1, "{act} {what}: {e:?}");
            }
        }
    }

    #[test]
    fn fast_f32_special_points() {
        for act in FAST_F32 {
            let mut errs: [F32Errors; 3] = Default::default();
            for x in [
                0.0f32,
                1e-45,
                1e-40,
                1e-30,
                1e-10,
                1e-3,
                1.0,
                std::f32::consts::SQRT_2,
                -0.751_791_5, // gelu σ' ≈ 0
                13.0,
                14.0,
                37.0,
                38.0,
                103.0,
                104.0,
                710.0,
                1e30,
                f32::MAX,
                f32::INFINITY,
                f32::NAN,
            ] {
                check_fast(act, x, &mut errs);
                check_fast(act, -x, &mut errs);
            }
            // Limits and signed zeros exactly as the reference.
            for x in [0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30] {
                let (g, w) = (fast_f32(act)(x), act_ref::<f32>(act, x));
                let bits = |v: ActValues<f32>| (v.a.to_bits(), v.d1.to_bits(), v.d2.to_bits());
                assert_eq!(bits(g), bits(w), "{act}({x}): {g:?} vs {w:?}");
            }
            let n = fast_f32(act)(f32::NAN);
            assert!(n.a.is_nan() && n.d1.is_nan() && n.d2.is_nan(), "{act}(NaN)");
        }
    }
}
