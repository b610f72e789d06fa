//! Sharpness of fc-tanh at initialization on the real cifar10-5k: product budgets of the
//! solver (cold ≤ 12, warm ≤ 4 after one GD step), agreement of b = 1, b = 4 and a tight
//! f64 solve, and the sharpness gradient against central differences of the sharpness. Needs
//! the real data (fails in CI without it, skips elsewhere).

use eosbench::data::{real_data_for_tests, DatasetName};
use eosbench::eig::{LanczosParams, Status};
use eosbench::hvp::{sharpness_gradient, top_eigenpairs};
use eosbench::mlp::{Curvature, Data, Net, NetConfig};
use eosbench::model::{init_params, Loss, Preset};
use eosbench::par::with_threads;

#[test]
fn fc_tanh_sharpness_budgets_and_agreement() {
    let Some(dir) = real_data_for_tests() else {
        return;
    };
    let ds: DatasetName = "cifar10-5k".parse().unwrap();
    let ds = ds.load(dir.as_path()).expect("cifar10-5k loads");
    let spec = Preset::FcTanh.spec();
    with_threads(0, |par| {
        let p0 = init_params::<f32>(&spec, 0).data;
        let mut net = Net::new(
            &spec,
            Loss::Mse,
            Data::new(ds.x.clone(), ds.labels.clone(), 3072, 10),
            NetConfig::default(),
        );
        let mut g = vec![0f32; p0.len()];
        net.gradient(&p0, &mut g, par);
        let params = LanczosParams {
            par,
            ..Default::default()
        };
        let cold = top_eigenpairs(&mut net, Curvature::Hessian, &params, None).unwrap();
        let lam = cold.result.values[0];
        println!(
            "cold b=1: λ1 = {lam:.6}, products {}, {:.2} s",
            cold.result.products, cold.seconds
        );
        assert_eq!(cold.result.status, Status::Converged);
        assert!(
            cold.result.products <= 12,
            "cold products {}",
            cold.result.products
        );
        assert!(cold.result.residuals[0] <= 1e-3 * lam);

        let b4 = top_eigenpairs(
            &mut net,
            Curvature::Hessian,
            &LanczosParams { block: 4, ..params },
            None,
        )
        .unwrap();
        println!(
            "cold b=4: λ1 = {:.6}, products {}",
            b4.result.values[0], b4.result.products
        );
        assert!((b4.result.values[0] - lam).abs() <= 1e-3 * lam);

        // One GD step at η = 2/λ₁·0.5, then a warm start from the previous Ritz vector.
        let eta = (1.0 / lam) as f32;
        let p1: Vec<f32> = p0.iter().zip(&g).map(|(p, g)| p - eta * g).collect();
        net.gradient(&p1, &mut g, par);
        let warm = top_eigenpairs(
            &mut net,
            Curvature::Hessian,
            &params,
            Some(&cold.result.vectors),
        )
        .unwrap();
        println!(
            "warm b=1 after one step: λ1 = {:.6}, products {}",
            warm.result.values[0], warm.result.products
        );
        assert_eq!(warm.result.status, Status::Converged);
        assert!(
            warm.result.products <= 4,
            "warm products {}",
            warm.result.products
        );

        // Tight solve in f64 at θ0.
        let mut net64 = Net::new(
            &spec,
            Loss::Mse,
            Data::new(ds.features::<f64>(), ds.labels.clone(), 3072, 10),
            NetConfig::default(),
        );
        let p64: Vec<f64> = p0.iter().map(|&v| v as f64).collect();
        let mut g64 = vec![0f64; p64.len()];
        net64.gradient(&p64, &mut g64, par);
        let tight = top_eigenpairs(
            &mut net64,
            Curvature::Hessian,
            &LanczosParams {
                tol: 1e-8,
                ..params
            },
            Some(&cold.result.vectors),
        )
        .unwrap();
        println!(
            "tight f64: λ1 = {:.9}, products {}, residual {:.2e}",
            tight.result.values[0], tight.result.products, tight.result.residuals[0]
        );
        assert_eq!(tight.result.status, Status::Converged);
        assert!((tight.result.values[0] - lam).abs() <= 1e-3 * lam);

        // The sharpness gradient predicts the change of the sharpness along the gradient:
        // α = −⟨∇L, ∇S⟩ against (S(θ − η∇L) − S(θ + η∇L)) / 2η, whose error falls as η²
        // (measured: ratio 0.99886 at η = 3e-3, 0.99987 at η = 1e-3).
        let s0 = tight.result.values[0];
        // (`net64` still holds the state at θ0 that `tight` was computed at.)
        let grad_s = sharpness_gradient(&mut net64, &tight.result.vectors, par);
        let alpha = -g64.iter().zip(&grad_s).map(|(a, b)| a * b).sum::<f64>();
        let h = 1e-3;
        let mut at = |sign: f64| -> f64 {
            let q: Vec<f64> = p64
                .iter()
                .zip(&g64)
                .map(|(p, g)| p + sign * h * g)
                .collect();
            let mut gq = vec![0f64; q.len()];
            net64.gradient(&q, &mut gq, par);
            let params = LanczosParams {
                tol: 1e-8,
                ..params
            };
            let r = top_eigenpairs(
                &mut net64,
                Curvature::Hessian,
                &params,
                Some(&tight.result.vectors),
            );
            r.unwrap().result.values[0]
        };
        let fd = (at(-1.0) - at(1.0)) / (2.0 * h);
        println!("S = {s0:.9}, alpha = {alpha:.6}, central difference {fd:.6}");
        assert!(alpha.abs() > 1.0, "α = {alpha}: a degenerate check");
        assert!(
            (fd - alpha).abs() <= 1e-3 * alpha.abs(),
            "α {alpha} vs fd {fd}"
        );
    });
}
