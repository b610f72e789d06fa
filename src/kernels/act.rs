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

use super::special::erfc;
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
            const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7; // 1/√(2π)
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
}
