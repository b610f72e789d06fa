//! The sharpness tracker on a real run, audited: full-batch GD on fc-tanh / cifar10-5k (MSE) in
//! f32 with the sharpness tracked at every step, and at every `audit_every`-th step an
//! independent, tight f64 solve at the same parameters (cold Lanczos, `k + 1` pairs, tol 1e-8)
//! against which the tracked values and their certified bounds are held.
//!
//! `cargo run --release --example tracker_audit -- START STEPS AUDIT_EVERY STRATEGY K [STOP]`
//! - `START`: `init` (PyTorch-default init, seed 0: the rising phase) or a checkpoint such as
//!   the `final.safetensors` of a `train` run at the edge of stability;
//! - `STRATEGY`: `history`, `lobpcg` or `lanczos` (warm); `STOP`: `bound` (default) or `residual`;
//! - `AUDIT_EVERY = 0`: no audit (timings only).
//!
//! Data from `EOSBENCH_DATA`, threads from `THREADS` (2). Prints one CSV row per step on stdout
//! (`step`, `lambda_1`, `residual_1`, `bound_1`, `rho`, `products`, `history_only`, `t_step_ms`, `t_eig_ms`, `t_products_ms`, `tight_lambda_1`,
//! `tight_lambda_next`, `rel_error`, `bound_over_error`), then a summary on stderr: the median
//! and p90 products, the median tracked/untracked step-time ratio (untracked = the step less
//! its estimate, measured in the same step), the largest relative error, how many audited
//! bounds fail even with a slack of 1e-6·λ for the f32 operator's rounding, and the smallest
//! ratio bound/error where the error is above 1e-5·λ (a valid bound has ratio ≥ 1).

use eosbench::data::{resolve_data_dir, DatasetName};
use eosbench::eig::{LanczosParams, StopRule, Strategy, TrackerParams, CHECK_SLACK};
use eosbench::hvp::top_eigenpairs;
use eosbench::mlp::{Curvature, Data, Net, NetConfig};
use eosbench::model::{init_params, load_checkpoint, Loss, Preset};
use eosbench::par::with_threads;
use eosbench::train::{gradient_descent, EigRecord, GdConfig, Observer, StepRecord, Tracking};

struct Audit {
    net64: Net<f64>,
    every: usize,
    k: usize,
    par: eosbench::Par,
    rows: Vec<Row>,
}

#[derive(Default, Clone)]
struct Row {
    step: usize,
    values: Vec<f64>,
    residual: f64,
    bounds: Vec<Option<f64>>,
    rho: Option<f64>,
    products: usize,
    history_only: bool,
    t_step: f64,
    t_eig: f64,
    t_products: f64,
    tight: Option<Vec<f64>>,
}

impl Observer for Audit {
    fn step(&mut self, r: &StepRecord) -> std::io::Result<()> {
        if let Some(row) = self.rows.last_mut().filter(|row| row.step == r.step) {
            row.t_step = r.seconds;
        }
        Ok(())
    }

    fn eigs(&mut self, r: &EigRecord) -> std::io::Result<()> {
        self.rows.push(Row {
            step: r.step,
            values: r.values.clone(),
            bounds: r.bounds.clone(),
            rho: r.rho,
            products: r.products,
            history_only: r.history_only,
            t_eig: r.seconds,
            t_products: r.product_seconds,
            residual: r.residuals[0],
            ..Row::default()
        });
        Ok(())
    }

    fn wants_point(&self, step: usize) -> bool {
        self.every > 0 && step.is_multiple_of(self.every)
    }

    /// Called after the step's estimate was delivered: the tight solve goes into its row.
    fn point(&mut self, step: usize, params: &[f64]) -> std::io::Result<()> {
        let mut g = vec![0.0; params.len()];
        self.net64.gradient(params, &mut g, self.par);
        let lp = LanczosParams {
            k: self.k + 1,
            tol: 1e-8,
            max_products: 1000,
            max_basis: 48,
            seed: 12345,
            par: self.par,
            ..LanczosParams::default()
        };
        let s = top_eigenpairs(&mut self.net64, Curvature::Hessian, &lp, None)
            .map_err(std::io::Error::other)?;
        if let Some(row) = self.rows.last_mut().filter(|row| row.step == step) {
            row.tight = Some(s.result.values);
        }
        Ok(())
    }
}

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = "START STEPS AUDIT_EVERY STRATEGY K [STOP]";
    let arg = |i: usize| a.get(i).unwrap_or_else(|| panic!("usage: {usage}"));
    let steps: usize = arg(1).parse().expect("STEPS");
    let every: usize = arg(2).parse().expect("AUDIT_EVERY");
    let strategy = match arg(3).as_str() {
        "history" => Strategy::History,
        "lanczos" => Strategy::Lanczos,
        "lobpcg" => Strategy::Lobpcg,
        s => panic!("strategy {s}: history, lobpcg or lanczos"),
    };
    let k: usize = arg(4).parse().expect("K");
    let stop = match a.get(5).map(String::as_str) {
        None | Some("bound") => StopRule::Bound,
        Some("residual") => StopRule::Residual,
        Some(s) => panic!("stop {s}: bound or residual"),
    };
    let threads: usize = std::env::var("THREADS").map_or(2, |t| t.parse().expect("THREADS"));
    let ds = DatasetName::FIGURE1
        .load(resolve_data_dir(None))
        .expect("CIFAR-10 (set EOSBENCH_DATA)");
    let spec = Preset::FcTanh.spec();
    let p0: Vec<f32> = match arg(0).as_str() {
        "init" => init_params::<f32>(&spec, 0).data,
        path => {
            load_checkpoint::<f32>(path.as_ref())
                .expect("checkpoint")
                .0
                .data
        }
    };
    let data = |_: ()| Data::new(ds.features::<f32>(), ds.labels.clone(), ds.d, ds.classes);
    with_threads(threads, |par| {
        let mut net = Net::new(&spec, Loss::Mse, data(()), NetConfig::default());
        let net64 = Net::new(
            &spec,
            Loss::Mse,
            Data::new(ds.features::<f64>(), ds.labels.clone(), ds.d, ds.classes),
            NetConfig::default(),
        );
        let tracking = Tracking {
            every: 1,
            curvature: Curvature::Hessian,
            tracker: TrackerParams {
                strategy,
                stop,
                ..TrackerParams::new(LanczosParams {
                    k,
                    par,
                    ..LanczosParams::default()
                })
            },
        };
        let gd = GdConfig {
            lr: 0.01,
            max_steps: steps,
            acc_goal: None,
            loss_goal: None,
        };
        let mut audit = Audit {
            net64,
            every,
            k,
            par,
            rows: Vec::new(),
        };
        gradient_descent(&mut net, p0, &gd, Some(&tracking), par, &mut audit).expect("run");
        println!("step,lambda_1,residual_1,bound_1,rho,products,history_only,t_step_ms,t_eig_ms,t_products_ms,tight_lambda_1,tight_lambda_next,rel_error,bound_over_error");
        let (mut errs, mut ratios, mut ratio_t, mut products) = (vec![], vec![], vec![], vec![]);
        let (mut bounded, mut violations) = (0, 0);
        for r in &audit.rows {
            let (tl, tn) = r
                .tight
                .as_ref()
                .map_or((None, None), |t| (Some(t[0]), t.get(k).copied()));
            let err = tl.map(|t| (t - r.values[0]) / t);
            // Bound/error where the error is above the f32 operator's own rounding (the tracked
            // solve sees the f32 Hessian, the tight one the f64 Hessian); a bound that fails
            // even with that slack is counted as a violation.
            let slack = |t: f64| CHECK_SLACK * t.abs();
            let ratio = match (tl, r.bounds[0]) {
                (Some(t), Some(b)) if (t - r.values[0]).abs() > 10.0 * slack(t) => {
                    Some(b / (t - r.values[0]).abs())
                }
                _ => None,
            };
            if let (Some(t), Some(b)) = (tl, r.bounds[0]) {
                bounded += 1;
                violations += usize::from(t - r.values[0] > b + slack(t));
            }
            let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.9e}"));
            println!(
                "{},{:.9},{:.3e},{},{},{},{},{:.3},{:.3},{:.3},{},{},{},{}",
                r.step,
                r.values[0],
                r.residual,
                o(r.bounds[0]),
                o(r.rho),
                r.products,
                r.history_only,
                r.t_step * 1e3,
                r.t_eig * 1e3,
                r.t_products * 1e3,
                o(tl),
                o(tn),
                o(err),
                o(ratio)
            );
            // The first estimate is a cold solve either way: left out of the summary.
            if r.step > 0 {
                products.push(r.products as f64);
                ratio_t.push(r.t_step / (r.t_step - r.t_eig));
            }
            errs.extend(err.map(f64::abs));
            ratios.extend(ratio);
        }
        let max = |v: &[f64]| v.iter().cloned().fold(f64::NAN, f64::max);
        let min = |v: &[f64]| v.iter().cloned().fold(f64::NAN, f64::min);
        eprintln!(
            "strategy {} stop {} k {k}: products median {} p90 {}; tracked/untracked step median {:.2}; \
             audited {} steps: max |error| {:.2e}; {bounded} with a bound, {violations} above bound + 1e-6·λ; \
             min bound/error {:.2} over the {} with error > 1e-5·λ",
            strategy.name(), stop.name(),
            percentile(&products, 0.5), percentile(&products, 0.9),
            percentile(&ratio_t, 0.5), errs.len(), max(&errs), min(&ratios), ratios.len()
        );
    });
}
