//! Block Lanczos against dense faer eigendecompositions: known spectra, random symmetric
//! matrices, multiple and clustered eigenvalues, indefinite spectra, exhaustion, budgets, warm
//! starts, restarts, determinism across thread counts, and input validation.

use eosbench::eig::{
    lanczos, DenseSymOp, DiagOp, EigError, EigResult, LanczosParams, Status, SymOp, Which,
};
use eosbench::par::with_threads;
use eosbench::Par;
use faer::{Mat, Side};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// `(M + Mᵀ)/2` with `M` uniform on `[−1, 1)`.
fn random_symmetric(n: usize, seed: u64) -> Mat<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let m = Mat::from_fn(n, n, |_, _| uniform(&mut rng));
    Mat::from_fn(n, n, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]))
}

/// `U diag(eigs) Uᵀ` with a random orthogonal `U`, symmetrized exactly.
fn with_spectrum(eigs: &[f64], seed: u64) -> Mat<f64> {
    let n = eigs.len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let g = Mat::from_fn(n, n, |_, _| uniform(&mut rng));
    let u = g.qr().compute_Q();
    let ud = Mat::from_fn(n, n, |i, j| u[(i, j)] * eigs[j]);
    let a = &ud * u.transpose();
    Mat::from_fn(n, n, |i, j| 0.5 * (a[(i, j)] + a[(j, i)]))
}

/// Dense reference eigenvalues, ascending.
fn dense_eigs(a: &Mat<f64>) -> Vec<f64> {
    a.self_adjoint_eigenvalues(Side::Lower)
        .expect("dense reference eigensolver")
}

/// The `k` reference values in the order `which` asks for.
fn wanted(eigs: &[f64], k: usize, which: Which) -> Vec<f64> {
    let mut v = eigs.to_vec();
    match which {
        Which::LargestAlgebraic => v.sort_by(|a, b| b.total_cmp(a)),
        Which::SmallestAlgebraic => v.sort_by(|a, b| a.total_cmp(b)),
        Which::LargestMagnitude => v.sort_by(|a, b| b.abs().total_cmp(&a.abs())),
    }
    v.truncate(k);
    v
}

fn params(k: usize, block: usize) -> LanczosParams {
    LanczosParams {
        k,
        block,
        tile_rows: 37,
        ..LanczosParams::default()
    }
}

/// Checks unit-norm, mutually orthogonal vectors and that the reported residuals are the true
/// `‖A y − θ y‖` (recomputed with a dense product). Returns the recomputed residuals.
fn check_pairs(op: &mut dyn SymOp, r: &EigResult) -> Vec<f64> {
    let n = op.dim();
    let k = r.values.len();
    assert_eq!(r.vectors.len(), n * k);
    assert!(
        r.values
            .iter()
            .chain(&r.vectors)
            .chain(&r.residuals)
            .all(|v| v.is_finite()),
        "NaN/inf in result"
    );
    for i in 0..k {
        for j in 0..k {
            let d: f64 = (0..n)
                .map(|t| r.vectors[i * n + t] * r.vectors[j * n + t])
                .sum();
            let target = if i == j { 1.0 } else { 0.0 };
            assert!(
                (d - target).abs() < 1e-10,
                "Ritz vectors not orthonormal: <y{i},y{j}> = {d}"
            );
        }
    }
    let mut ay = vec![0.0; n * k];
    op.apply(&r.vectors, &mut ay, k);
    let scale = r.values.iter().fold(1e-300f64, |a, v| a.max(v.abs()));
    (0..k)
        .map(|l| {
            let true_res: f64 = (0..n)
                .map(|t| (ay[l * n + t] - r.values[l] * r.vectors[l * n + t]).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                (true_res - r.residuals[l]).abs() <= 1e-11 * scale + 1e-6 * true_res,
                "reported residual {} vs true {}",
                r.residuals[l],
                true_res
            );
            true_res
        })
        .collect()
}

fn assert_values(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1e-300),
            "value {g} vs reference {w} (tol {tol})"
        );
    }
}

#[test]
fn diagonal_known_spectrum() {
    // d = 1, …, 100 in a scrambled order: top four are 100, 99, 98, 97; bottom two 1, 2.
    let d: Vec<f64> = (0..100).map(|i| ((i * 37) % 100 + 1) as f64).collect();
    for (k, b) in [(1, 1), (4, 1), (4, 2), (4, 4)] {
        let mut op = DiagOp::new(d.clone()).unwrap();
        let p = LanczosParams {
            tol: 1e-8,
            max_basis: 60,
            max_products: 2000,
            ..params(k, b)
        };
        let r = lanczos(&mut op, &p, None).unwrap();
        assert_eq!(r.status, Status::Converged, "k={k} b={b}");
        assert_values(&r.values, &[100.0, 99.0, 98.0, 97.0][..k], 1e-10);
        let res = check_pairs(&mut op, &r);
        assert!(res.iter().zip(&r.values).all(|(e, v)| *e <= 1e-8 * v.abs()));
        eprintln!(
            "diag k={k} b={b}: products {} restarts {}",
            r.products, r.restarts
        );
    }
    let mut op = DiagOp::new(d).unwrap();
    let p = LanczosParams {
        which: Which::SmallestAlgebraic,
        tol: 1e-8,
        max_basis: 60,
        max_products: 2000,
        ..params(2, 1)
    };
    let r = lanczos(&mut op, &p, None).unwrap();
    assert_eq!(r.status, Status::Converged);
    assert_values(&r.values, &[1.0, 2.0], 1e-9);
}

#[test]
fn random_symmetric_against_dense() {
    for (n, seed) in [(10usize, 1u64), (100, 2), (300, 3)] {
        let a = random_symmetric(n, seed);
        let eigs = dense_eigs(&a);
        for k in [1usize, 4] {
            for b in [1usize, 2, 4] {
                let mut op = DenseSymOp::new(a.clone()).unwrap();
                let p = LanczosParams {
                    tol: 1e-8,
                    max_basis: 80,
                    max_products: 5000,
                    seed: 7,
                    ..params(k, b)
                };
                let r = lanczos(&mut op, &p, None).unwrap();
                assert!(
                    matches!(r.status, Status::Converged | Status::Breakdown),
                    "n={n} k={k} b={b}: {:?}",
                    r.status
                );
                // A residual ρ puts θ within ρ of an eigenvalue; these spectra have gaps ≫ ρ.
                assert_values(&r.values, &wanted(&eigs, k, Which::LargestAlgebraic), 1e-7);
                check_pairs(&mut op, &r);
                eprintln!(
                    "random n={n} k={k} b={b}: products {} iterations {} restarts {}",
                    r.products, r.iterations, r.restarts
                );
            }
        }
    }
}

#[test]
fn double_top_eigenvalue_found_twice_by_block() {
    let n = 120;
    let mut eigs: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
    eigs[n - 1] = 5.0;
    eigs[n - 2] = 5.0;
    eigs[n - 3] = 3.0;
    let a = with_spectrum(&eigs, 11);
    for b in [2usize, 3] {
        let mut op = DenseSymOp::new(a.clone()).unwrap();
        let p = LanczosParams {
            tol: 1e-8,
            max_products: 1000,
            ..params(2, b)
        };
        let r = lanczos(&mut op, &p, None).unwrap();
        assert_eq!(r.status, Status::Converged);
        assert_values(&r.values, &[5.0, 5.0], 1e-9);
        check_pairs(&mut op, &r);
        eprintln!("double top b={b}: products {}", r.products);
    }
}

#[test]
fn clustered_top_eigenvalue() {
    let n = 150;
    let mut eigs: Vec<f64> = (0..n).map(|i| 2.0 * i as f64 / n as f64).collect();
    eigs[n - 1] = 4.0;
    eigs[n - 2] = 4.0 - 1e-6;
    let a = with_spectrum(&eigs, 12);
    let reference = dense_eigs(&a);
    for b in [1usize, 2] {
        let mut op = DenseSymOp::new(a.clone()).unwrap();
        let p = LanczosParams {
            tol: 1e-3,
            ..params(1, b)
        };
        let r = lanczos(&mut op, &p, None).unwrap();
        assert_eq!(r.status, Status::Converged);
        assert_values(&r.values, &[reference[n - 1]], 1e-3);
        let res = check_pairs(&mut op, &r);
        assert!(res[0] <= 1e-3 * r.values[0]);
        eprintln!(
            "clustered b={b}: products {} value err {:.2e}",
            r.products,
            (r.values[0] - reference[n - 1]).abs()
        );
    }
}

#[test]
fn indefinite_matrix_which_end() {
    let n = 100;
    let mut eigs: Vec<f64> = (0..n).map(|i| -1.0 + 2.0 * i as f64 / n as f64).collect();
    eigs[0] = -10.0;
    eigs[1] = -6.0;
    eigs[n - 1] = 3.0;
    eigs[n - 2] = 2.0;
    let a = with_spectrum(&eigs, 13);
    let reference = dense_eigs(&a);
    let run = |which: Which, k: usize| {
        let mut op = DenseSymOp::new(a.clone()).unwrap();
        let p = LanczosParams {
            which,
            tol: 1e-8,
            max_products: 1000,
            ..params(k, 1)
        };
        let r = lanczos(&mut op, &p, None).unwrap();
        assert_eq!(r.status, Status::Converged, "{which:?}");
        check_pairs(&mut op, &r);
        assert_values(&r.values, &wanted(&reference, k, which), 1e-9);
        r.values
    };
    let la = run(Which::LargestAlgebraic, 1);
    assert!(
        (la[0] - 3.0).abs() < 1e-9,
        "largest algebraic must be the positive one, got {}",
        la[0]
    );
    let lm = run(Which::LargestMagnitude, 1);
    assert!(
        (lm[0] + 10.0).abs() < 1e-9,
        "largest magnitude must be −10, got {}",
        lm[0]
    );
    let sa = run(Which::SmallestAlgebraic, 2);
    assert!((sa[0] + 10.0).abs() < 1e-9 && (sa[1] + 6.0).abs() < 1e-9);
    let lm3 = run(Which::LargestMagnitude, 3);
    assert_values(&lm3, &[-10.0, -6.0, 3.0], 1e-9);
}

#[test]
fn low_rank_breakdown_without_nan() {
    let n = 50;
    let mut eigs = vec![0.0; n];
    eigs[n - 1] = 3.0;
    eigs[n - 2] = 1.0;
    let a = with_spectrum(&eigs, 14);
    // Rank 2, k = 1: span(x, Ax, A²x) is invariant after three products.
    let mut op = DenseSymOp::new(a.clone()).unwrap();
    let r = lanczos(
        &mut op,
        &LanczosParams {
            tol: 1e-12,
            ..params(1, 1)
        },
        None,
    )
    .unwrap();
    assert_eq!(r.status, Status::Breakdown);
    assert_eq!(r.products, 3);
    assert_values(&r.values, &[3.0], 1e-12);
    check_pairs(&mut op, &r);

    // Rank 1, k = 3: the Krylov space has dimension 2 < k; the solver continues from random
    // vectors and reports the zero eigenvalues without NaN.
    let mut eigs1 = vec![0.0; 20];
    eigs1[19] = 2.0;
    let a1 = with_spectrum(&eigs1, 15);
    let mut op1 = DenseSymOp::new(a1).unwrap();
    let r1 = lanczos(&mut op1, &params(3, 1), None).unwrap();
    assert!(
        matches!(r1.status, Status::Breakdown | Status::Converged),
        "{:?}",
        r1.status
    );
    assert!((r1.values[0] - 2.0).abs() < 1e-12);
    assert!(
        r1.values[1].abs() < 1e-12 && r1.values[2].abs() < 1e-12,
        "{:?}",
        r1.values
    );
    check_pairs(&mut op1, &r1);

    // Start vector inside an invariant subspace (an eigenvector): exact pair of that subspace,
    // status Breakdown after one product.
    let d: Vec<f64> = (1..=10).map(|v| v as f64).collect();
    let mut start = vec![0.0; 10];
    start[0] = 1.0;
    let mut dop = DiagOp::new(d.clone()).unwrap();
    let r2 = lanczos(&mut dop, &params(1, 1), Some(&start)).unwrap();
    assert_eq!(r2.status, Status::Breakdown);
    assert_eq!(r2.products, 1);
    assert_eq!(r2.values, vec![1.0]);
    assert_eq!(r2.residuals, vec![0.0]);
    // With a block of 2 the random second column escapes the subspace and finds the top.
    let mut dop = DiagOp::new(d).unwrap();
    let r3 = lanczos(
        &mut dop,
        &LanczosParams {
            tol: 1e-10,
            ..params(1, 2)
        },
        Some(&start),
    )
    .unwrap();
    assert!(
        (r3.values[0] - 10.0).abs() < 1e-9,
        "{:?} {:?}",
        r3.values,
        r3.status
    );

    // The zero operator.
    let mut zop = DiagOp::new(vec![0.0; 8]).unwrap();
    let rz = lanczos(&mut zop, &params(2, 1), None).unwrap();
    assert_eq!(rz.values, vec![0.0, 0.0]);
    check_pairs(&mut zop, &rz);
}

#[test]
fn product_budget_gives_best_estimate() {
    let a = random_symmetric(300, 21);
    let top = *dense_eigs(&a).last().unwrap();
    for (b, max_products) in [(1usize, 3usize), (2, 5), (4, 6)] {
        let mut op = DenseSymOp::new(a.clone()).unwrap();
        let p = LanczosParams {
            tol: 1e-12,
            max_products,
            ..params(1, b)
        };
        let r = lanczos(&mut op, &p, None).unwrap();
        assert_eq!(r.status, Status::MaxProducts);
        assert_eq!(
            r.products, max_products,
            "the last block is shrunk to fit the budget"
        );
        // Ritz values interlace: a best estimate is below λ_max but well above 0.
        assert!(
            r.values[0] <= top + 1e-12 && r.values[0] > 0.3 * top,
            "{} vs {top}",
            r.values[0]
        );
        let res = check_pairs(&mut op, &r);
        assert!(res[0] > 1e-12 * top);
    }
}

#[test]
fn warm_start_after_perturbation_needs_fewer_products() {
    let n = 300;
    let mut eigs: Vec<f64> = (0..n).map(|i| i as f64 / n as f64).collect();
    eigs[n - 1] = 1.6;
    eigs[n - 2] = 1.3;
    let a = with_spectrum(&eigs, 31);
    let e = random_symmetric(n, 32);
    let enorm = dense_eigs(&e).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let a2 = Mat::from_fn(n, n, |i, j| a[(i, j)] + 1e-3 * e[(i, j)] / enorm);
    let reference = dense_eigs(&a2);
    for (k, b) in [(1usize, 1usize), (2, 1), (2, 2)] {
        let p = LanczosParams {
            tol: 1e-3,
            ..params(k, b)
        };
        let first = lanczos(&mut DenseSymOp::new(a.clone()).unwrap(), &p, None).unwrap();
        let cold = lanczos(
            &mut DenseSymOp::new(a2.clone()).unwrap(),
            &LanczosParams { seed: 99, ..p },
            None,
        )
        .unwrap();
        let mut op2 = DenseSymOp::new(a2.clone()).unwrap();
        let warm = lanczos(&mut op2, &p, Some(&first.vectors)).unwrap();
        assert_eq!(warm.status, Status::Converged);
        assert_eq!(cold.status, Status::Converged);
        assert!(
            warm.products < cold.products,
            "k={k} b={b}: warm {} vs cold {}",
            warm.products,
            cold.products
        );
        assert_values(
            &warm.values,
            &wanted(&reference, k, Which::LargestAlgebraic),
            2e-3,
        );
        check_pairs(&mut op2, &warm);
        eprintln!(
            "warm k={k} b={b}: warm {} products, cold {}",
            warm.products, cold.products
        );
    }
}

#[test]
fn restarts_keep_memory_bounded_and_converge() {
    let a = random_symmetric(200, 41);
    let eigs = dense_eigs(&a);
    for (k, b, max_basis) in [(1usize, 1usize, 6usize), (3, 2, 9), (2, 4, 8)] {
        let mut op = DenseSymOp::new(a.clone()).unwrap();
        let p = LanczosParams {
            tol: 1e-8,
            max_basis,
            max_products: 20000,
            ..params(k, b)
        };
        let r = lanczos(&mut op, &p, None).unwrap();
        assert_eq!(
            r.status,
            Status::Converged,
            "k={k} b={b} max_basis={max_basis}"
        );
        assert!(r.restarts > 0);
        assert_values(&r.values, &wanted(&eigs, k, Which::LargestAlgebraic), 1e-7);
        check_pairs(&mut op, &r);
        eprintln!(
            "restart k={k} b={b} cap={max_basis}: products {} restarts {}",
            r.products, r.restarts
        );
    }
}

#[test]
fn bitwise_identical_across_thread_counts() {
    let a = random_symmetric(300, 51);
    let run = |par: Par| {
        let mut op = DenseSymOp::new(a.clone()).unwrap();
        let p = LanczosParams {
            par,
            tol: 1e-9,
            max_basis: 12,
            max_products: 3000,
            tile_rows: 23,
            ..params(3, 2)
        };
        lanczos(&mut op, &p, None).unwrap()
    };
    let base = run(Par::Seq);
    assert!(
        base.restarts > 0,
        "the determinism check should cover restarts"
    );
    for threads in [1usize, 2, 3, 8] {
        let r = with_threads(threads, run);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&r.values), bits(&base.values), "{threads} threads");
        assert_eq!(bits(&r.vectors), bits(&base.vectors), "{threads} threads");
        assert_eq!(
            bits(&r.residuals),
            bits(&base.residuals),
            "{threads} threads"
        );
        assert_eq!(
            (r.products, r.iterations, r.restarts),
            (base.products, base.iterations, base.restarts)
        );
    }
}

#[test]
fn tight_tolerance_reachable() {
    let a = random_symmetric(100, 61);
    let mut op = DenseSymOp::new(a.clone()).unwrap();
    let r = lanczos(
        &mut op,
        &LanczosParams {
            tol: 1e-8,
            max_products: 2000,
            ..params(2, 1)
        },
        None,
    )
    .unwrap();
    assert_eq!(r.status, Status::Converged);
    let res = check_pairs(&mut op, &r);
    for (e, v) in res.iter().zip(&r.values) {
        assert!(*e <= 1e-8 * v.abs(), "residual {e} for θ = {v}");
    }
    assert_values(
        &r.values,
        &wanted(&dense_eigs(&a), 2, Which::LargestAlgebraic),
        1e-8,
    );
}

#[test]
fn well_separated_top_needs_few_products() {
    // λ1/λ2 = 1.5 above a dense bulk in [0, 1].
    let n = 2000;
    let mut d: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64 / n as f64).collect();
    d[0] = 1.5;
    d[1] = 1.0;
    let mut op = DiagOp::new(d).unwrap();
    let r = lanczos(&mut op, &LanczosParams::default(), None).unwrap();
    assert_eq!(r.status, Status::Converged);
    assert!(r.products <= 12, "cold products {}", r.products);
    assert!((r.values[0] - 1.5).abs() < 1.5e-3);
    check_pairs(&mut op, &r);
    eprintln!(
        "well separated cold: {} products, value {}",
        r.products, r.values[0]
    );
    // Warm start from the answer after a tiny change of the operator.
    let mut d2 = op.diagonal().to_vec();
    d2[0] = 1.5 * (1.0 + 1e-4);
    let mut op2 = DiagOp::new(d2).unwrap();
    let w = lanczos(&mut op2, &LanczosParams::default(), Some(&r.vectors)).unwrap();
    assert_eq!(w.status, Status::Converged);
    assert!(w.products <= 3, "warm products {}", w.products);
    eprintln!("well separated warm: {} products", w.products);
}

struct NanOp;
impl SymOp for NanOp {
    fn dim(&self) -> usize {
        5
    }
    fn apply(&mut self, _x: &[f64], y: &mut [f64], _b: usize) {
        y.fill(f64::NAN);
    }
}

#[test]
fn invalid_inputs_are_typed_errors() {
    let mut op = DiagOp::new(vec![1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let p = LanczosParams::default();
    assert_eq!(
        lanczos(&mut op, &LanczosParams { k: 0, ..p }, None).unwrap_err(),
        EigError::InvalidK { k: 0, n: 5 }
    );
    assert_eq!(
        lanczos(&mut op, &LanczosParams { k: 6, ..p }, None).unwrap_err(),
        EigError::InvalidK { k: 6, n: 5 }
    );
    assert_eq!(
        lanczos(&mut op, &LanczosParams { block: 0, ..p }, None).unwrap_err(),
        EigError::InvalidBlock
    );
    assert!(matches!(
        lanczos(&mut op, &LanczosParams { tol: f64::NAN, ..p }, None),
        Err(EigError::InvalidTolerance { .. })
    ));
    assert!(matches!(
        lanczos(
            &mut op,
            &LanczosParams {
                k: 3,
                max_products: 2,
                ..p
            },
            None
        ),
        Err(EigError::TooFewProducts { .. })
    ));
    assert_eq!(
        lanczos(&mut op, &p, Some(&[1.0; 7])).unwrap_err(),
        EigError::BadStartShape { len: 7, n: 5 }
    );
    assert_eq!(
        lanczos(&mut op, &p, Some(&[1.0, f64::INFINITY, 0.0, 0.0, 0.0])).unwrap_err(),
        EigError::NonFiniteStart { index: 1 }
    );
    let mut big = DiagOp::new(vec![1.0; 100]).unwrap();
    assert_eq!(
        lanczos(
            &mut big,
            &LanczosParams {
                k: 4,
                block: 4,
                max_basis: 7,
                ..p
            },
            None
        )
        .unwrap_err(),
        EigError::BasisTooSmall {
            max_basis: 7,
            needed: 8
        }
    );
    assert_eq!(
        lanczos(&mut NanOp, &p, None).unwrap_err(),
        EigError::NonFiniteProduct { products: 1 }
    );
    assert!(matches!(
        DiagOp::new(vec![f64::NAN]),
        Err(EigError::NonFiniteMatrix { .. })
    ));
    assert!(matches!(
        DenseSymOp::new(Mat::zeros(2, 3)),
        Err(EigError::NotSquare { .. })
    ));
    assert!(matches!(
        DenseSymOp::new(Mat::from_fn(2, 2, |i, j| (i + 2 * j) as f64)),
        Err(EigError::NotSymmetric { .. })
    ));
    // A zero start column falls back to random vectors.
    let r = lanczos(&mut op, &LanczosParams { tol: 1e-10, ..p }, Some(&[0.0; 5])).unwrap();
    assert!((r.values[0] - 5.0).abs() < 1e-9);
}

/// `S + δ·N` with `N` antisymmetric: a slightly non-symmetric operator, like one built from f32
/// kernels. The free residual estimate assumes symmetry; the exact check must catch the gap.
struct NearlySymmetric {
    a: Mat<f64>,
}

impl SymOp for NearlySymmetric {
    fn dim(&self) -> usize {
        self.a.nrows()
    }
    fn apply(&mut self, x: &[f64], y: &mut [f64], b: usize) {
        let n = self.a.nrows();
        let xr = faer::MatRef::from_column_major_slice(&x[..n * b], n, b);
        let yr = faer::MatMut::from_column_major_slice_mut(&mut y[..n * b], n, b);
        faer::linalg::matmul::matmul(
            yr,
            faer::Accum::Replace,
            self.a.as_ref(),
            xr,
            1.0,
            faer::Par::Seq,
        );
    }
}

#[test]
fn converged_status_is_backed_by_true_residuals() {
    let n = 120;
    let s = random_symmetric(n, 71);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(72);
    let g = Mat::from_fn(n, n, |_, _| uniform(&mut rng));
    // (asymmetry, tolerance, reachable): the residual floor is about δ·‖N‖.
    for (delta, tol, reachable) in [(1e-9, 1e-6, true), (1e-6, 1e-9, false)] {
        let a = Mat::from_fn(n, n, |i, j| s[(i, j)] + delta * (g[(i, j)] - g[(j, i)]));
        let mut op = NearlySymmetric { a };
        let p = LanczosParams {
            tol,
            max_products: 400,
            ..params(1, 1)
        };
        let r = lanczos(&mut op, &p, None).unwrap();
        let res = check_pairs(&mut op, &r);
        assert_eq!(
            r.status == Status::Converged,
            reachable,
            "δ = {delta}, tol = {tol}: {:?}",
            r.status
        );
        if r.status == Status::Converged {
            assert!(
                res[0] <= tol * r.values[0].abs(),
                "δ = {delta}: converged with residual {}",
                res[0]
            );
        }
        eprintln!(
            "δ = {delta}: {:?} after {} products, residual {:.2e}",
            r.status, r.products, res[0]
        );
    }
}
