use super::*;
use crate::eig::LanczosParams;
use crate::mlp::{Data, NetConfig};
use crate::model::{init_params, Activation, Loss, MlpSpec};
use crate::par::with_threads;

/// A 6-8-3 tanh net on 40 synthetic examples, MSE, small row blocks and batches so that every
/// path of the passes runs.
fn tanh_net<T: Real>() -> (Net<T>, Vec<T>) {
    let spec = MlpSpec::new(6, &[8], 3, Activation::Tanh).unwrap();
    let ds = crate::data::synthetic(40, 6, 3, 2);
    let data = Data::new(ds.features::<T>(), ds.labels.clone(), 6, 3);
    let cfg = NetConfig {
        row_block: 8,
        chunk_rows: 16,
        ..NetConfig::default()
    };
    let net = Net::new(&spec, Loss::Mse, data, cfg);
    (net, init_params::<T>(&spec, 3).data)
}

/// One affine layer (4 inputs, 2 outputs) on 25 synthetic examples, MSE: its Hessian is the
/// constant `I_2 ⊗ [X 1]ᵀ[X 1] / n`. Returns the net, its initialization and `λ_max` of that
/// Hessian from a dense eigendecomposition.
fn linear_model() -> (Net<f64>, Vec<f64>, f64) {
    let (n, d) = (25, 4);
    let spec = MlpSpec::new(d, &[], 2, Activation::Linear).unwrap();
    let ds = crate::data::synthetic(n, d, 2, 7);
    let x = ds.features::<f64>();
    let gram = faer::Mat::from_fn(d + 1, d + 1, |i, j| {
        let col = |r: usize, k: usize| if k == d { 1.0 } else { x[r * d + k] };
        (0..n).map(|r| col(r, i) * col(r, j)).sum::<f64>() / n as f64
    });
    let top = gram
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .unwrap()
        .into_iter()
        .fold(f64::MIN, f64::max);
    let data = Data::new(x, ds.labels.clone(), d, 2);
    let net = Net::new(&spec, Loss::Mse, data, NetConfig::default());
    (net, init_params::<f64>(&spec, 1).data, top)
}

/// Lanczos tracking (warm or cold starts) at a tight tolerance.
fn tracking(every: usize, warm_start: bool) -> Tracking {
    Tracking {
        every,
        curvature: Curvature::Hessian,
        tracker: TrackerParams {
            strategy: Strategy::Lanczos,
            warm_start,
            ..TrackerParams::new(LanczosParams {
                tol: 1e-10,
                ..LanczosParams::default()
            })
        },
    }
}

/// History tracking at a tight tolerance, with a cold check every `check_every` estimates.
fn history(every: usize, check_every: usize) -> Tracking {
    let mut tr = tracking(every, true);
    tr.tracker.strategy = Strategy::History;
    tr.tracker.check_every = check_every;
    tr
}

fn gd(lr: f64, max_steps: usize) -> GdConfig {
    GdConfig {
        lr,
        max_steps,
        acc_goal: None,
        loss_goal: None,
    }
}

#[test]
fn steps_are_plain_gradient_descent_and_stop_at_the_cap() {
    let (mut net, p0) = tanh_net::<f64>();
    let mut rec = Recorder::default();
    let out =
        gradient_descent(&mut net, p0.clone(), &gd(0.3, 3), None, Par::Seq, &mut rec).unwrap();
    assert_eq!(out.stop, StopReason::MaxSteps);
    let steps: Vec<usize> = rec.steps.iter().map(|r| r.step).collect();
    assert_eq!(steps, [0, 1, 2, 3]);
    assert!(rec.eigs.is_empty() && out.estimates == 0);
    // Replay θ_{t+1} = θ_t − η∇L(θ_t) on a second net; the last evaluated point gets no update.
    let (mut twin, _) = tanh_net::<f64>();
    let mut theta = p0;
    let mut g = vec![0.0; theta.len()];
    for r in &rec.steps {
        let ev = twin.gradient(&theta, &mut g, Par::Seq);
        assert_eq!(
            ev.loss.to_bits(),
            r.loss.to_bits(),
            "loss at step {}",
            r.step
        );
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert_eq!(
            norm.to_bits(),
            r.grad_norm.to_bits(),
            "‖∇L‖ at step {}",
            r.step
        );
        if r.step < 3 {
            theta.iter_mut().zip(&g).for_each(|(t, g)| *t -= 0.3 * g);
        }
    }
    assert_eq!(out.params, theta);
    assert_eq!(out.last, rec.steps[3]);
}

#[test]
fn the_accuracy_goal_is_strict_and_ends_the_run_where_it_is_first_met() {
    let (mut net, p0) = tanh_net::<f64>();
    let mut free = Recorder::default();
    gradient_descent(
        &mut net,
        p0.clone(),
        &gd(0.5, 400),
        None,
        Par::Seq,
        &mut free,
    )
    .unwrap();
    let best = free.steps.iter().map(|r| r.accuracy).fold(0.0, f64::max);
    let first = free.steps.iter().map(|r| r.accuracy).fold(1.0, f64::min);
    assert!(best > first, "the test run must learn something");
    // A goal equal to a reached accuracy is not met (strict); one just below it is.
    for (goal, met) in [(best, false), (best - 1e-9, true)] {
        let cfg = GdConfig {
            acc_goal: Some(goal),
            ..gd(0.5, 400)
        };
        let (mut net, _) = tanh_net::<f64>();
        let mut rec = Recorder::default();
        let out = gradient_descent(&mut net, p0.clone(), &cfg, None, Par::Seq, &mut rec).unwrap();
        if met {
            assert_eq!(out.stop, StopReason::AccuracyGoal);
            let at = free.steps.iter().position(|r| r.accuracy > goal).unwrap();
            assert_eq!(out.last.step, at);
            let key = |r: &StepRecord| (r.step, r.loss.to_bits(), r.accuracy.to_bits());
            let got: Vec<_> = rec.steps.iter().map(key).collect();
            let want: Vec<_> = free.steps[..=at].iter().map(key).collect();
            assert_eq!(got, want);
        } else {
            assert_eq!(out.stop, StopReason::MaxSteps);
        }
    }
}

#[test]
fn the_loss_goal_stops_the_run() {
    let (mut net, p0) = tanh_net::<f64>();
    let mut rec = Recorder::default();
    let first = net.evaluate(&p0, Par::Seq).loss;
    let cfg = GdConfig {
        loss_goal: Some(0.9 * first),
        ..gd(0.5, 1000)
    };
    let out = gradient_descent(&mut net, p0, &cfg, None, Par::Seq, &mut rec).unwrap();
    assert_eq!(out.stop, StopReason::LossGoal);
    assert!(out.last.loss < 0.9 * first);
    assert!(rec.steps[..rec.steps.len() - 1]
        .iter()
        .all(|r| r.loss >= 0.9 * first));
}

#[test]
fn a_linear_model_is_tracked_at_its_constant_sharpness_with_warm_starts_saving_products() {
    let (mut net, p0, top) = linear_model();
    let mut rec = Recorder::default();
    let tr = tracking(2, true);
    let out = gradient_descent(
        &mut net,
        p0.clone(),
        &gd(0.2, 6),
        Some(&tr),
        Par::Seq,
        &mut rec,
    )
    .unwrap();
    let at: Vec<usize> = rec.eigs.iter().map(|e| e.step).collect();
    assert_eq!(at, [0, 2, 4, 6]);
    assert_eq!(out.estimates, 4);
    assert_eq!(
        out.products,
        rec.eigs.iter().map(|e| e.products).sum::<usize>()
    );
    for e in &rec.eigs {
        // The 10 × 10 Hessian has 5 distinct eigenvalues: a Krylov space may close early.
        assert!(
            matches!(e.status, Status::Converged | Status::Breakdown),
            "{:?}",
            e.status
        );
        assert!(e.residuals[0] < 1e-8 * top, "residual {}", e.residuals[0]);
        assert!(
            (e.values[0] - top).abs() < 1e-9 * top,
            "{} vs {top}",
            e.values[0]
        );
    }
    // The Hessian does not change: a warm start is already the top eigenvector.
    let cold = {
        let (mut net, ..) = linear_model();
        let mut rec = Recorder::default();
        let tr = tracking(2, false);
        gradient_descent(&mut net, p0, &gd(0.2, 6), Some(&tr), Par::Seq, &mut rec).unwrap();
        rec.eigs
    };
    for (w, c) in rec.eigs[1..].iter().zip(&cold[1..]) {
        assert!(
            w.products < c.products,
            "warm {} vs cold {}",
            w.products,
            c.products
        );
    }
}

#[test]
fn divergence_stops_the_run_and_is_recorded() {
    // Above 2/λ_max the linear model's error grows by |1 − ηλ_max| per step until it overflows.
    let (mut net, p0, top) = linear_model();
    let mut rec = Recorder::default();
    let tr = tracking(1, true);
    let out = gradient_descent(
        &mut net,
        p0,
        &gd(60.0 / top, 100_000),
        Some(&tr),
        Par::Seq,
        &mut rec,
    )
    .unwrap();
    assert_eq!(out.stop, StopReason::Diverged);
    assert!(!out.last.loss.is_finite());
    assert!(rec.steps[..rec.steps.len() - 1]
        .iter()
        .all(|r| r.loss.is_finite()));
    // No estimate at the diverged point; one at every step before it.
    assert_eq!(rec.eigs.len(), rec.steps.len() - 1);
    assert!(
        out.last.step < 1000,
        "diverged only at step {}",
        out.last.step
    );
}

#[test]
fn a_diverging_f32_run_with_tracking_stops_as_diverged() {
    // A 5-8-3 tanh net on 30 examples at η = 500: in f32 its gradient and curvature products
    // overflow while the loss (summed in f64) is still finite.
    let spec = MlpSpec::new(5, &[8], 3, Activation::Tanh).unwrap();
    let ds = crate::data::synthetic(30, 5, 3, 0);
    let data = Data::new(ds.features::<f32>(), ds.labels.clone(), 5, 3);
    let mut net = Net::new(&spec, Loss::Mse, data, NetConfig::default());
    let p0 = init_params::<f32>(&spec, 0).data;
    let mut rec = Recorder::default();
    let tr = tracking(1, true);
    let out = gradient_descent(
        &mut net,
        p0,
        &gd(500.0, 10_000),
        Some(&tr),
        Par::Seq,
        &mut rec,
    )
    .expect("divergence is a result, not an error");
    assert_eq!(out.stop, StopReason::Diverged);
    let last = rec.steps.last().unwrap();
    assert!(
        last.loss.is_finite(),
        "the loss alone would not stop this run: {last:?}"
    );
    assert_eq!(rec.eigs.len(), rec.steps.len() - 1);
}

#[test]
fn an_observer_error_ends_the_run_after_the_records_before_it() {
    struct FailAt(usize, Vec<usize>);
    impl Observer for FailAt {
        fn step(&mut self, rec: &StepRecord) -> std::io::Result<()> {
            if rec.step == self.0 {
                return Err(std::io::Error::other("disk full"));
            }
            self.1.push(rec.step);
            Ok(())
        }
        fn eigs(&mut self, _: &EigRecord) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (mut net, p0) = tanh_net::<f64>();
    let mut obs = FailAt(3, vec![]);
    let err = gradient_descent(&mut net, p0, &gd(0.1, 10), None, Par::Seq, &mut obs).unwrap_err();
    assert!(matches!(err, TrainError::Observer { step: 3, .. }), "{err}");
    assert_eq!(obs.1, [0, 1, 2]);
}

#[test]
fn an_interrupt_stops_the_run_at_that_step_without_an_update() {
    struct StopAfter(usize, Recorder);
    impl Observer for StopAfter {
        fn step(&mut self, rec: &StepRecord) -> std::io::Result<()> {
            self.1.step(rec)
        }
        fn eigs(&mut self, rec: &EigRecord) -> std::io::Result<()> {
            self.1.eigs(rec)
        }
        fn interrupted(&self) -> bool {
            self.1.steps.len() >= self.0
        }
    }
    let (mut net, p0) = tanh_net::<f64>();
    let mut obs = StopAfter(3, Recorder::default());
    let cfg = gd(0.1, 10);
    let out = gradient_descent(&mut net, p0.clone(), &cfg, None, Par::Seq, &mut obs).unwrap();
    assert_eq!(out.stop, StopReason::Interrupted);
    let steps: Vec<usize> = obs.1.steps.iter().map(|r| r.step).collect();
    assert_eq!(steps, [0, 1, 2, 3]);
    // The parameters are those of the last record: the same as a run capped at step 3.
    let (mut twin, _) = tanh_net::<f64>();
    let mut rec = Recorder::default();
    let capped = gradient_descent(&mut twin, p0, &gd(0.1, 3), None, Par::Seq, &mut rec).unwrap();
    assert_eq!(out.params, capped.params);
    assert_eq!(out.last, obs.1.steps[3]);
}

#[test]
fn invalid_settings_are_errors() {
    let (mut net, p0) = tanh_net::<f64>();
    for lr in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let r = gradient_descent(
            &mut net,
            p0.clone(),
            &gd(lr, 1),
            None,
            Par::Seq,
            &mut Recorder::default(),
        );
        assert!(matches!(r, Err(TrainError::Config(_))), "lr {lr}");
    }
    let r = gradient_descent(
        &mut net,
        p0[1..].to_vec(),
        &gd(0.1, 1),
        None,
        Par::Seq,
        &mut Recorder::default(),
    );
    assert!(matches!(r, Err(TrainError::Config(_))));
}

#[test]
fn runs_are_bit_identical_across_thread_counts() {
    for strategy in [Strategy::Lanczos, Strategy::History, Strategy::Lobpcg] {
        runs_are_bit_identical_with(strategy);
    }
}

fn runs_are_bit_identical_with(strategy: Strategy) {
    let run = |threads: usize| {
        with_threads(threads, |par| {
            let (mut net, p0) = tanh_net::<f32>();
            let mut tr = if strategy == Strategy::Lanczos {
                tracking(2, true)
            } else {
                history(1, 3)
            };
            tr.tracker.strategy = strategy;
            tr.tracker.lanczos.par = par;
            tr.tracker.lanczos.tol = 1e-4;
            let mut rec = Recorder::default();
            let out =
                gradient_descent(&mut net, p0, &gd(0.4, 6), Some(&tr), par, &mut rec).unwrap();
            let steps: Vec<(u64, u64)> = rec
                .steps
                .iter()
                .map(|r| (r.loss.to_bits(), r.grad_norm.to_bits()))
                .collect();
            let eigs: Vec<(Vec<u64>, usize)> = rec
                .eigs
                .iter()
                .map(|e| (e.values.iter().map(|v| v.to_bits()).collect(), e.products))
                .collect();
            let params: Vec<u32> = out.params.iter().map(|v| v.to_bits()).collect();
            (steps, eigs, params)
        })
    };
    let base = run(1);
    assert_eq!(
        base.1.len(),
        if strategy == Strategy::Lanczos { 4 } else { 7 }
    );
    for t in [2, 3] {
        assert_eq!(run(t), base, "{t} threads");
    }
}

#[test]
fn the_gradient_norm_is_bit_identical_across_thread_counts() {
    // Several chunks and a ragged last one.
    let g: Vec<f32> = (0..5 * CHUNK + 123)
        .map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 1e-3)
        .collect();
    let mut partial = vec![0.0; g.len().div_ceil(CHUNK)];
    let base = norm(&g, &mut partial, Par::Seq);
    let plain = g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    // Another summation order of 82 043 squares: rounding differences far below 10⁻¹².
    assert!((base - plain).abs() <= 1e-12 * plain, "{base} vs {plain}");
    for t in [2, 3, 8] {
        let n = with_threads(t, |par| norm(&g, &mut partial, par));
        assert_eq!(n.to_bits(), base.to_bits(), "{t} threads");
    }
}
