#!/usr/bin/env python3
"""Coefficients of the branch-free f64 building blocks in src/kernels/special.rs.

Prints Rust constant tables (highest degree first, for Horner) and checks the erfcx fit:

- EXP_Q:   2/n!, n = 13..0 — the Taylor series of 2·e^r (|r| ≤ ln2/2, truncation < 4e-18).
- LN2_LO:  ln 2 − LN_2 (the f64 ln 2), the low part of the Cody–Waite reduction.
- LN1P_S:  1/(4^k (2k+1)), k = 9..0 — the series 2·atanh(y/2) = y·Σ_k y^{2k}/(4^k (2k+1)),
           y = 2u/(2+u) (or 2(u−1)/(u+3) above √2−1), |y| ≤ 0.344, truncation < 3e-17.
- ERFCX_G: g(w) = (t+K)·erfcx(t), t = K(1+w)/(1−w), w ∈ [−1, 1), K = 3: the Chebyshev
           interpolant at 64 nodes (computed at 40 digits), truncated to 22 terms and converted to
           the monomial basis in w.

Needs mpmath (`pip install mpmath`). Run: python3 scripts/special-coefficients.py
"""

import random

import mpmath as mp

mp.mp.dps = 40

K = 3
ERFCX_TERMS = 22
CHEB_NODES = 64


def erfcx(t):
    return mp.exp(t * t) * mp.erfc(t)


def g(w):
    if w >= 1:
        return 1 / mp.sqrt(mp.pi)  # lim_{t→∞} (t+K)·erfcx(t)
    t = K * (1 + w) / (1 - w)
    return (t + K) * erfcx(t)


def chebyshev_coefficients(f, n):
    """c_k with f ≈ c_0/2 + Σ_{k≥1} c_k T_k, interpolating at the n Chebyshev points."""
    nodes = [mp.cos(mp.pi * (j + mp.mpf(1) / 2) / n) for j in range(n)]
    vals = [f(x) for x in nodes]
    return [
        2 * sum(vals[j] * mp.cos(mp.pi * k * (j + mp.mpf(1) / 2) / n) for j in range(n)) / n
        for k in range(n)
    ]


def chebyshev_to_monomial(c):
    c = list(c)
    c[0] = c[0] / 2
    t_prev, t_cur = [mp.mpf(1)], [mp.mpf(0), mp.mpf(1)]  # T_0, T_1
    mono = [mp.mpf(0)] * len(c)
    mono[0] += c[0]
    if len(c) > 1:
        mono[1] += c[1]
    for k in range(2, len(c)):
        t_next = [mp.mpf(0)] + [2 * v for v in t_cur]
        for i, v in enumerate(t_prev):
            t_next[i] -= v
        t_prev, t_cur = t_cur, t_next
        for i, v in enumerate(t_cur):
            mono[i] += c[k] * v
    return mono


def rust_table(name, values):
    body = "".join(f"    {float(v)!r},\n" for v in values)
    return f"const {name}: [f64; {len(values)}] = [\n{body}];"


def horner(coeffs_high_first, x):
    p = 0.0
    for a in coeffs_high_first:
        p = p * x + a
    return p


def main():
    exp_q = [2 / mp.factorial(n) for n in range(13, -1, -1)]
    ln2_lo = mp.log(2) - mp.mpf(float(mp.log(2)))
    ln1p_s = [1 / (mp.mpf(4) ** k * (2 * k + 1)) for k in range(9, -1, -1)]
    cheb = chebyshev_coefficients(g, CHEB_NODES)
    mono = chebyshev_to_monomial(cheb[:ERFCX_TERMS])
    erfcx_g = [float(v) for v in reversed(mono)]

    print(rust_table("EXP_Q", exp_q))
    print(f"const LN2_LO: f64 = {float(ln2_lo)!r};")
    print(rust_table("LN1P_S", ln1p_s))
    print(rust_table("ERFCX_G", erfcx_g))

    # The first dropped Chebyshev coefficient bounds the truncation error (relative: g ≥ 0.56).
    print(f"// first dropped Chebyshev coefficient: {float(abs(cheb[ERFCX_TERMS])):.2e}")
    # f64 evaluation exactly as in special.rs (but without FMA): relative error of erfcx.
    random.seed(1)
    ts = [i / 500 for i in range(0, 15000)] + [30 * 1.01**i for i in range(0, 3000, 3)]
    ts += [random.uniform(0, 8) for _ in range(2000)]
    worst, worst_t = 0.0, 0.0
    for t in ts:
        inv = 1.0 / (t + K)
        w = 1.0 - 2 * K * inv
        val = horner(erfcx_g, w) * inv
        exact = erfcx(mp.mpf(t))
        err = abs(float((val - exact) / exact))
        if err > worst:
            worst, worst_t = err, t
    print(f"// erfcx f64 evaluation: max relative error {worst:.2e} at t = {worst_t:g}")


if __name__ == "__main__":
    main()
