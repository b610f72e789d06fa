//! A short gradient-descent run of the Figure-1 setup (fc-tanh, cifar10-5k, MSE, η = 2/200) on
//! the real data with the sharpness tracked: the loss falls at every step while `η·λ_max < 2`,
//! the tracked sharpness at step 0 is the one a separate cold solve finds, the history tracker
//! keeps the later estimates at about two products, every estimate is certified, and the bound
//! at step 20 holds against a tight solve. Needs the real data (fails in CI without it, skips elsewhere).

use eosbench::data::{real_data_for_tests, DatasetName};
use eosbench::eig::{LanczosParams, Status, TrackerParams};
use eosbench::hvp::top_eigenpairs;
use eosbench::mlp::{Curvature, Data, Net, NetConfig};
use eosbench::model::{init_params, Loss, Preset};
use eosbench::par::with_threads;
use eosbench::train::{gradient_descent, GdConfig, Recorder, StopReason, Tracking};

#[test]
fn fc_tanh_gradient_descent_with_tracking() {
    let Some(dir) = real_data_for_tests() else {
        return;
    };
    let ds: DatasetName = "cifar10-5k".parse().unwrap();
    let ds = ds.load(dir.as_path()).expect("cifar10-5k loads");
    let spec = Preset::FcTanh.spec();
    let lr = 2.0 / 200.0;
    with_threads(0, |par| {
        let p0 = init_params::<f32>(&spec, 0).data;
        let data = || Data::new(ds.x.clone(), ds.labels.clone(), 3072, 10);
        let mut net = Net::new(&spec, Loss::Mse, data(), NetConfig::default());
        let lanczos = LanczosParams {
            par,
            ..Default::default()
        };
        let tracking = Tracking {
            every: 1,
            curvature: Curvature::Hessian,
            tracker: TrackerParams::new(lanczos),
        };
        let gd = GdConfig {
            lr,
            max_steps: 20,
            acc_goal: Some(0.99),
            loss_goal: None,
        };
        let mut rec = Recorder::default();
        let out = gradient_descent(&mut net, p0.clone(), &gd, Some(&tracking), par, &mut rec)
            .expect("the run completes");
        assert_eq!(out.stop, StopReason::MaxSteps);
        let loss: Vec<f64> = rec.steps.iter().map(|r| r.loss).collect();
        println!("loss {:.6} → {:.6}", loss[0], loss[20]);
        for (t, w) in loss.windows(2).enumerate() {
            assert!(w[1] < w[0], "loss rose at step {}: {w:?}", t + 1);
        }
        assert!(rec.steps[20].accuracy > rec.steps[0].accuracy);

        let at: Vec<usize> = rec.eigs.iter().map(|e| e.step).collect();
        assert_eq!(at, (0..=20).collect::<Vec<_>>());
        for e in &rec.eigs {
            println!(
                "step {}: λ1 = {:.6} (bound {:?}), {} products",
                e.step, e.values[0], e.bounds[0], e.products
            );
            assert_eq!(e.status, Status::Converged);
            assert!(e.values[0] * lr < 2.0, "stable regime: η·λ1 < 2");
            // The top value is far from the rest here: every estimate is certified.
            assert!(e.bounds[0].is_some_and(|b| b <= 1e-3 * e.values[0]));
        }
        // While the sharpness moves slowly, the history costs about two products.
        let mut later: Vec<usize> = rec.eigs[1..].iter().map(|e| e.products).collect();
        later.sort_unstable();
        assert!(later[later.len() / 2] <= 2, "products {later:?}");

        // Step 20 against a tight cold solve at the same parameters: the certified bound holds
        // (up to the f32 operator's rounding).
        let p20 = {
            let mut p = p0.clone();
            let mut g = vec![0f32; p.len()];
            let mut twin = Net::new(&spec, Loss::Mse, data(), NetConfig::default());
            for _ in 0..20 {
                twin.gradient(&p, &mut g, par);
                p.iter_mut().zip(&g).for_each(|(p, g)| *p -= lr as f32 * g);
            }
            p
        };
        let mut at20 = Net::new(&spec, Loss::Mse, data(), NetConfig::default());
        let mut g = vec![0f32; p20.len()];
        at20.gradient(&p20, &mut g, par);
        let tight = LanczosParams {
            k: 2,
            tol: 1e-6,
            ..lanczos
        };
        let exact = top_eigenpairs(&mut at20, Curvature::Hessian, &tight, None).unwrap();
        let (e, l1) = (&rec.eigs[20], exact.result.values[0]);
        let err = l1 - e.values[0];
        println!(
            "step 20: tracked {} vs tight {l1}: error {err:e}, bound {:?}",
            e.values[0], e.bounds[0]
        );
        assert!(
            err <= e.bounds[0].unwrap() + 1e-6 * l1,
            "error {err:e} above the bound"
        );

        // Step 0 against a separate cold solve at the initialization.
        let mut fresh = Net::new(&spec, Loss::Mse, data(), NetConfig::default());
        let mut g = vec![0f32; p0.len()];
        fresh.gradient(&p0, &mut g, par);
        let cold = top_eigenpairs(&mut fresh, Curvature::Hessian, &lanczos, None).unwrap();
        // The history tracker's first estimate is a cold solve of two pairs (top and guard).
        let (a, b) = (rec.eigs[0].values[0], cold.result.values[0]);
        assert!((a - b).abs() <= 2e-3 * b, "tracked {a} vs cold {b}");
    });
}
