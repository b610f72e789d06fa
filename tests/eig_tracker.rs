//! The sharpness tracker on slowly varying dense symmetric matrices: Lehmann / Kato–Temple
//! bounds against exact eigenvalues, two top eigenvalues that cross, an operator that flips
//! `±E` every step (the edge of stability in miniature), and an eigenvalue that rises from deep
//! in the spectrum, missed by the history and caught by the cold check.

use eosbench::eig::{
    certify, lehmann_bounds, DenseSymOp, EigError, Estimate, LanczosParams, StopRule, Strategy,
    SymOp, Tracker, TrackerParams,
};
use faer::{Mat, Side};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// A random orthogonal `n × n` matrix.
fn orthogonal(n: usize, seed: u64) -> Mat<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    Mat::from_fn(n, n, |_, _| uniform(&mut rng))
        .qr()
        .compute_Q()
}

/// `U diag(d) Uᵀ + extra`, symmetrized exactly.
fn assemble(u: &Mat<f64>, d: &[f64], extra: Option<&Mat<f64>>) -> Mat<f64> {
    let n = d.len();
    let ud = Mat::from_fn(n, n, |i, j| u[(i, j)] * d[j]);
    let mut a = &ud * u.transpose();
    if let Some(e) = extra {
        a += e;
    }
    Mat::from_fn(n, n, |i, j| 0.5 * (a[(i, j)] + a[(j, i)]))
}

/// A random symmetric matrix of spectral norm 1.
fn unit_symmetric(n: usize, seed: u64) -> Mat<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let m = Mat::from_fn(n, n, |_, _| uniform(&mut rng));
    let s = Mat::from_fn(n, n, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let norm = eigs_desc(&s).iter().fold(0.0f64, |a, v| a.max(v.abs()));
    Mat::from_fn(n, n, |i, j| s[(i, j)] / norm)
}

/// Exact eigenvalues, largest first.
fn eigs_desc(a: &Mat<f64>) -> Vec<f64> {
    let mut v = a.self_adjoint_eigenvalues(Side::Lower).unwrap();
    v.reverse();
    v
}

fn tracker_params(k: usize, tol: f64) -> TrackerParams {
    TrackerParams {
        check_every: 0,
        ..TrackerParams::new(LanczosParams {
            k,
            tol,
            tile_rows: 17,
            ..LanczosParams::default()
        })
    }
}

/// Checks one estimate against the exact spectrum `exact` (largest first): the Ritz values are
/// lower bounds, a reported bound is one, and an estimate without a bound met the residual rule.
/// Returns the largest relative error of the tracked values.
fn check_estimate(est: &Estimate, exact: &[f64], tol: f64, step: usize) -> f64 {
    let r = &est.result;
    let mut worst = 0.0f64;
    for (i, &theta) in r.values.iter().enumerate() {
        let err = exact[i] - theta;
        let scale = exact[0].abs();
        assert!(
            err >= -1e-11 * scale,
            "step {step}: θ{i} = {theta} above λ = {}",
            exact[i]
        );
        match est.certificate.bounds[i] {
            Some(b) => assert!(
                err <= b + 1e-11 * scale,
                "step {step}: error {err:e} of λ{} above its bound {b:e}",
                i + 1
            ),
            None => assert!(
                r.residuals[i] <= tol * theta.abs() * (1.0 + 1e-9),
                "step {step}: no bound and residual {:e} above the rule",
                r.residuals[i]
            ),
        }
        worst = worst.max(err.abs() / scale);
    }
    worst
}

fn median(mut v: Vec<usize>) -> usize {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Rayleigh–Ritz by hand on `span(Y)` of a dense `a`: values largest first and residual norms.
fn rayleigh_ritz(a: &Mat<f64>, y: &Mat<f64>) -> (Vec<f64>, Vec<f64>) {
    let q = y.qr().compute_thin_Q();
    let t = q.transpose() * a * &q;
    let t = Mat::from_fn(t.nrows(), t.ncols(), |i, j| 0.5 * (t[(i, j)] + t[(j, i)]));
    let evd = t.self_adjoint_eigen(Side::Lower).unwrap();
    let m = t.nrows();
    let (mut vals, mut res) = (Vec::new(), Vec::new());
    for l in (0..m).rev() {
        let theta = evd.S()[l];
        let s = Mat::from_fn(m, 1, |i, _| evd.U()[(i, l)]);
        let z = &q * &s;
        let r = a * &z - &z * Mat::from_fn(1, 1, |_, _| theta);
        vals.push(theta);
        res.push(r.norm_l2());
    }
    (vals, res)
}

#[test]
fn lehmann_bounds_hold_and_reduce_to_kato_temple() {
    let n = 50;
    let d: Vec<f64> = (0..n).map(|i| 10.0 - 0.15 * i as f64).collect();
    let u = orthogonal(n, 1);
    let a = assemble(&u, &d, None);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    for (k, noise) in [(1, 0.05), (1, 0.3), (2, 0.02), (3, 0.1), (3, 0.4)] {
        // A subspace near the top k eigenvectors.
        let y = Mat::from_fn(n, k, |i, j| u[(i, j)] + noise * uniform(&mut rng));
        let (theta, res) = rayleigh_ritz(&a, &y);
        let bounds = lehmann_bounds(&theta, &res, d[k]);
        for i in 0..k {
            let err = d[i] - theta[i];
            assert!(err >= -1e-12);
            match bounds[i] {
                Some(b) => assert!(
                    err <= b * (1.0 + 1e-9),
                    "k={k} noise={noise} λ{i}: {err} > {b}"
                ),
                None => assert!(
                    theta.iter().any(|&t| t <= d[k]),
                    "k={k}: a bound is missing"
                ),
            }
        }
        if k == 1 && theta[0] > d[1] {
            let kt = res[0] * res[0] / (theta[0] - d[1]);
            assert!((bounds[0].unwrap() - kt).abs() <= 1e-14 * kt.max(1e-300));
        }
        if noise <= 0.05 {
            assert!(bounds.iter().all(Option::is_some), "k={k} noise={noise}");
        }
    }
    // No separation: no bound; a guard gives ρ = θ_{k+1} + ‖r_{k+1}‖.
    assert_eq!(lehmann_bounds(&[2.0], &[0.1], 2.5), vec![None]);
    let c = certify(&[3.0, 2.0], &[0.1, 0.2], 1);
    assert_eq!(c.rho, Some(2.2));
    assert!((c.bounds[0].unwrap() - 0.01 / 0.8).abs() < 1e-15);
    assert_eq!(certify(&[3.0], &[0.1], 1).bounds, vec![None]);
}

#[test]
fn the_tracker_follows_two_crossing_top_eigenvalues_with_valid_bounds() {
    let n = 60;
    let u = orthogonal(n, 3);
    let wobble = unit_symmetric(n, 4);
    let tol = 1e-6;
    let mut tracker = Tracker::new(tracker_params(1, tol)).unwrap();
    let mut products = Vec::new();
    let mut history_only = 0;
    for t in 0..41 {
        let mut d: Vec<f64> = (0..n).map(|i| 8.0 - 0.1 * i as f64).collect();
        d[0] = 10.0 + 0.05 * t as f64;
        d[1] = 11.0 - 0.05 * t as f64;
        let extra = Mat::from_fn(n, n, |i, j| 0.02 * (t as f64 / 5.0).sin() * wobble[(i, j)]);
        let a = assemble(&u, &d, Some(&extra));
        let exact = eigs_desc(&a);
        let est = tracker.estimate(&mut DenseSymOp::new(a).unwrap()).unwrap();
        let err = check_estimate(&est, &exact, tol, t);
        assert!(err <= 2e-6, "step {t}: relative error {err:e}");
        if t > 0 {
            products.push(est.result.products);
            history_only += est.history_only as usize;
        }
    }
    let med = median(products.clone());
    assert!(med <= 3, "median products {med}: {products:?}");
    assert!(
        history_only > 0,
        "the history alone never sufficed: {products:?}"
    );
}

/// The edge of stability in miniature: `A_t = A₀ + (−1)ᵗ ε E`, with a close second eigenvalue.
#[test]
fn a_flipping_operator_is_tracked_for_few_products_with_valid_bounds() {
    let n = 80;
    let u = orthogonal(n, 5);
    let mut d: Vec<f64> = (0..n).map(|i| 6.0 - 0.05 * i as f64).collect();
    d[0] = 10.0;
    d[1] = 9.7;
    d[2] = 9.2;
    let e = unit_symmetric(n, 6);
    let a_t = |t: usize| {
        let s = if t.is_multiple_of(2) { 0.2 } else { -0.2 };
        assemble(&u, &d, Some(&Mat::from_fn(n, n, |i, j| s * e[(i, j)])))
    };
    let tol = 1e-4;
    let run = |strategy: Strategy, stop: StopRule| {
        let mut tracker = Tracker::new(TrackerParams {
            strategy,
            stop,
            ..tracker_params(1, tol)
        })
        .unwrap();
        let mut products = Vec::new();
        for t in 0..30 {
            let a = a_t(t);
            let exact = eigs_desc(&a);
            let est = tracker.estimate(&mut DenseSymOp::new(a).unwrap()).unwrap();
            if stop == StopRule::Bound {
                let err = check_estimate(&est, &exact, tol, t);
                assert!(err <= tol, "step {t}: relative error {err:e}");
            }
            if t > 2 {
                products.push(est.result.products);
            }
        }
        median(products)
    };
    let history = run(Strategy::History, StopRule::Bound);
    let warm = run(Strategy::Lanczos, StopRule::Residual);
    let history_residual = run(Strategy::History, StopRule::Residual);
    let lobpcg = run(Strategy::Lobpcg, StopRule::Bound);
    eprintln!("flip: median products history {history}, LOBPCG {lobpcg}, warm Lanczos {warm}, history with the residual rule {history_residual}");
    assert!(
        lobpcg < warm,
        "LOBPCG {lobpcg} vs warm Lanczos {warm} products"
    );
    assert!(
        history < warm,
        "history {history} vs warm Lanczos {warm} products"
    );
    assert!(
        history <= history_residual,
        "{history} vs {history_residual}"
    );
    assert!(history <= 5, "history: median {history} products");
}

/// An eigenvalue whose eigenvector the history never saw rises above the top: the certificate
/// (which assumes no missed eigenvalue) is wrong until the cold check catches it.
#[test]
fn the_cold_check_catches_an_eigenvalue_rising_from_deep_in_the_spectrum() {
    let n = 60;
    let u = orthogonal(n, 7);
    let tol = 1e-8;
    let mut tracker = Tracker::new(TrackerParams {
        check_every: 4,
        ..tracker_params(1, tol)
    })
    .unwrap();
    let mut checks = Vec::new();
    for t in 0..20 {
        let mut d: Vec<f64> = (0..n).map(|i| 7.0 - 0.1 * i as f64).collect();
        d[0] = 10.0;
        d[1] = 9.0;
        d[40] = 5.0 + 0.5 * t as f64; // above 10 from step 11
        let a = assemble(&u, &d, None);
        let exact = eigs_desc(&a);
        let est = tracker.estimate(&mut DenseSymOp::new(a).unwrap()).unwrap();
        if let Some(c) = &est.check {
            checks.push((t, c.agrees));
        }
        let missed = t == 11;
        if missed {
            assert!(
                (est.result.values[0] - 10.0).abs() < 1e-6,
                "step 11 should still report the old top, got {}",
                est.result.values[0]
            );
            assert!(exact[0] > est.result.values[0] + 0.4);
        } else {
            let err = check_estimate(&est, &exact, tol, t);
            assert!(err <= 1e-7, "step {t}: relative error {err:e}");
        }
    }
    assert_eq!(
        checks,
        [(4, true), (8, true), (12, false), (16, true)],
        "the check at step 12 must catch the crossing at step 11"
    );
    assert_eq!(tracker.checks(), (4, 1));
}

#[test]
fn k_two_and_four_clusters_are_tracked() {
    let n = 70;
    let u = orthogonal(n, 8);
    let e = unit_symmetric(n, 9);
    for (k, strategy) in [
        (2usize, Strategy::History),
        (4, Strategy::History),
        (2, Strategy::Lobpcg),
    ] {
        let tol = 1e-4;
        let mut tracker = Tracker::new(TrackerParams {
            strategy,
            ..tracker_params(k, tol)
        })
        .unwrap();
        let mut products = Vec::new();
        for t in 0..16usize {
            let mut d: Vec<f64> = (0..n).map(|i| 6.0 - 0.05 * i as f64).collect();
            d[..5].copy_from_slice(&[10.0, 9.9, 9.8, 9.7, 8.0]);
            let s = if t.is_multiple_of(2) { 0.1 } else { -0.1 };
            let a = assemble(&u, &d, Some(&Mat::from_fn(n, n, |i, j| s * e[(i, j)])));
            let exact = eigs_desc(&a);
            let est = tracker.estimate(&mut DenseSymOp::new(a).unwrap()).unwrap();
            assert_eq!(est.result.values.len(), k);
            let err = check_estimate(&est, &exact, tol, t);
            assert!(err <= tol, "k={k} step {t}: relative error {err:e}");
            if t > 2 {
                products.push(est.result.products);
            }
        }
        let med = median(products.clone());
        eprintln!("k={k} {}: products {products:?}", strategy.name());
        assert!(med <= 4 * k, "k={k}: median {med} products: {products:?}");
    }
}

#[test]
fn tracker_settings_are_validated() {
    let base = tracker_params(1, 1e-3);
    let bad = [
        TrackerParams { guard: 0, ..base },
        TrackerParams {
            warm_start: false,
            ..base
        },
        TrackerParams {
            check_tol: 0.0,
            ..base
        },
        TrackerParams {
            lanczos: LanczosParams {
                max_basis: 2,
                ..base.lanczos
            },
            ..base
        },
    ];
    for p in bad {
        assert!(Tracker::new(p).is_err(), "{p:?}");
    }
    // The Lanczos baseline takes cold starts and no guard.
    let lanczos = TrackerParams {
        strategy: Strategy::Lanczos,
        warm_start: false,
        guard: 0,
        ..base
    };
    assert!(Tracker::new(lanczos).is_ok());
    // A tracker asked for more pairs than the operator has.
    let mut t = Tracker::new(tracker_params(3, 1e-3)).unwrap();
    let mut op = DenseSymOp::new(Mat::<f64>::identity(3, 3)).unwrap();
    assert_eq!(op.dim(), 3);
    assert!(matches!(
        t.estimate(&mut op),
        Err(EigError::InvalidK { k: 4, n: 3 })
    ));
}
