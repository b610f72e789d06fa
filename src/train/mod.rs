//! Full-batch gradient descent with sharpness tracking (DESIGN §1, "Training" and "Sharpness").
//!
//! At every step `t` (`t` updates done so far, `θ_0` the initialization):
//! 1. one gradient pass at `θ_t` gives the train loss, the accuracy and `∇L(θ_t)`, and caches the
//!    forward/backward state;
//! 2. when `t` is a multiple of [`Tracking::every`], the [`Tracker`] estimates the top
//!    eigenvalues of the Hessian (or Gauss–Newton matrix) at `θ_t` from that cached state and the
//!    previous estimates' Ritz vectors, with an error certificate;
//! 3. the observer receives the step's record (and the eigenvalues);
//! 4. the run stops when the train accuracy exceeds the goal (strictly), the loss falls below
//!    the loss goal, `t` reaches the step cap, or the run diverged: the loss, the gradient or a
//!    curvature product of the estimate is not finite (in f32 the products overflow a few
//!    steps before the loss does);
//! 5. otherwise `θ_{t+1} = θ_t − η ∇L(θ_t)`.
//!
//! This is the loop of the Edge-of-Stability reference code (evaluate, measure, test the goals,
//! then step), so step `t` here is step `t` there. Records leave through an [`Observer`], never by
//! printing; an observer error (a full disk) stops the run with that error, after everything
//! before it was delivered. The tracker's buffers are allocated once, at the first estimate.
//! The update and the gradient norm run on the pool, in chunks fixed by the parameter count.

use std::time::Instant;

mod measure;
pub use measure::{measure_window, Summary, TrackerChoice, Window, WindowStats};

use crate::eig::{ColdCheck, EigError, Status, Strategy, Tracker, TrackerParams};
use crate::hvp::track_in;
use crate::mlp::{Curvature, Net};
use crate::par::Par;
use crate::real::Real;

/// Gradient-descent settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GdConfig {
    /// Step size `η`.
    pub lr: f64,
    /// Step cap: the run evaluates `θ_0 … θ_max_steps` at most.
    pub max_steps: usize,
    /// Stop once the train accuracy is strictly above this (the Figure-1 runs: 0.99).
    pub acc_goal: Option<f64>,
    /// Stop once the train loss is strictly below this.
    pub loss_goal: Option<f64>,
}

/// Sharpness-tracking settings.
#[derive(Clone, Copy, Debug)]
pub struct Tracking {
    /// Estimate at steps `0, every, 2·every, …`; `0` never.
    pub every: usize,
    /// The operator: the Hessian (the sharpness) or the Gauss–Newton matrix.
    pub curvature: Curvature,
    /// The tracker: strategy, stop rule, solver settings (`k`, block, tolerance, caps, seed,
    /// threads), cold checks.
    pub tracker: TrackerParams,
}

/// One step's evaluation at `θ_t`, before its update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    pub step: usize,
    pub loss: f64,
    pub accuracy: f64,
    /// `‖∇L(θ_t)‖₂`.
    pub grad_norm: f64,
    /// Wall-clock seconds of the step: gradient pass, eigenvalue estimate (if any), update
    /// (not the observer's [`Observer::point`]).
    pub seconds: f64,
}

/// One eigenvalue estimate at `θ_t`.
#[derive(Clone, Debug, PartialEq)]
pub struct EigRecord {
    pub step: usize,
    /// The top `k` Ritz values, largest first.
    pub values: Vec<f64>,
    /// Their true residual norms `‖A y − θ y‖`.
    pub residuals: Vec<f64>,
    /// Certified bounds `0 ≤ λᵢ − θᵢ ≤ boundᵢ` given the gap estimate (`None`: not certified).
    pub bounds: Vec<Option<f64>>,
    /// The gap estimate `ρ ≥ λ_{k+1}` the bounds assume.
    pub rho: Option<f64>,
    /// The strategy that produced the estimate.
    pub strategy: Strategy,
    /// Certified from the history subspace alone (no residual expansion).
    pub history_only: bool,
    /// The cold check run at this step, if any.
    pub check: Option<ColdCheck>,
    pub status: Status,
    /// Operator column-products and block iterations of this estimate.
    pub products: usize,
    pub iterations: usize,
    /// Wall-clock seconds of the estimate (products and cold check included).
    pub seconds: f64,
    /// Seconds of those in curvature products.
    pub product_seconds: f64,
}

/// Receives the records of a run as they are produced.
pub trait Observer {
    /// Called once per step, after the step's eigenvalue estimate (if any) was delivered.
    fn step(&mut self, rec: &StepRecord) -> std::io::Result<()>;
    /// Called for each eigenvalue estimate.
    fn eigs(&mut self, rec: &EigRecord) -> std::io::Result<()>;
    /// Asked once per step, before the update: whether the run should stop here (a signal
    /// from the user, say). The step's records are delivered either way.
    fn interrupted(&self) -> bool {
        false
    }
    /// Whether [`Observer::point`] wants `θ_t` of this step (converting it costs a pass over
    /// the parameters, so only the steps asked for get one).
    fn wants_point(&self, _step: usize) -> bool {
        false
    }
    /// `θ_t` in f64, before the step's update, at the steps [`Observer::wants_point`] chose:
    /// for audits against an independent solve, or snapshots.
    fn point(&mut self, _step: usize, _params: &[f64]) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Train accuracy above [`GdConfig::acc_goal`].
    AccuracyGoal,
    /// Train loss below [`GdConfig::loss_goal`].
    LossGoal,
    /// [`GdConfig::max_steps`] reached.
    MaxSteps,
    /// The loss, the gradient or a curvature product is not finite: gradient descent diverged.
    Diverged,
    /// The observer asked to stop ([`Observer::interrupted`]).
    Interrupted,
}

impl StopReason {
    pub fn name(self) -> &'static str {
        match self {
            StopReason::AccuracyGoal => "accuracy-goal",
            StopReason::LossGoal => "loss-goal",
            StopReason::MaxSteps => "max-steps",
            StopReason::Diverged => "diverged",
            StopReason::Interrupted => "interrupted",
        }
    }
}

/// The end of a run.
#[derive(Clone, Debug)]
pub struct Outcome<T> {
    pub stop: StopReason,
    /// The record of the last evaluated step (the one that met the stop rule).
    pub last: StepRecord,
    /// `θ` at that step (no update applied after it).
    pub params: Vec<T>,
    /// Eigenvalue estimates made, and their products in total (cold checks included).
    pub estimates: usize,
    pub products: usize,
    /// The tracker's cold checks, and how many of them disagreed (found a missed eigenvalue).
    pub checks: usize,
    pub check_disagreements: usize,
}

/// Errors that end a run early. Records delivered before the error stay delivered.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid gradient-descent settings: {0}")]
    Config(String),
    #[error("eigenvalue estimate at step {step} failed: {source}")]
    Eig {
        step: usize,
        #[source]
        source: EigError,
    },
    #[error("writing the records of step {step} failed: {source}")]
    Observer {
        step: usize,
        #[source]
        source: std::io::Error,
    },
}

/// Runs gradient descent from `params` on the net's data set (see the module docs).
pub fn gradient_descent<T: Real>(
    net: &mut Net<T>,
    mut params: Vec<T>,
    gd: &GdConfig,
    tracking: Option<&Tracking>,
    par: Par,
    obs: &mut dyn Observer,
) -> Result<Outcome<T>, TrainError> {
    if !(gd.lr.is_finite() && gd.lr > 0.0) {
        return Err(TrainError::Config(format!(
            "the step size must be positive and finite, not {}",
            gd.lr
        )));
    }
    if params.len() != net.num_params() {
        return Err(TrainError::Config(format!(
            "{} parameters given for a net of {}",
            params.len(),
            net.num_params()
        )));
    }
    let lr = T::from_f64(gd.lr);
    let mut grad = vec![T::ZERO; params.len()];
    let mut partial = vec![0.0; params.len().div_ceil(CHUNK)];
    let mut tracker = tracking
        .filter(|t| t.every > 0)
        .map(|t| Tracker::new(t.tracker))
        .transpose()
        .map_err(|source| TrainError::Eig { step: 0, source })?;
    let (mut estimates, mut products) = (0, 0);
    let mut step = 0;
    loop {
        let t0 = Instant::now();
        let ev = net.gradient(&params, &mut grad, par);
        let grad_norm = norm(&grad, &mut partial, par);
        let mut diverged = !(ev.loss.is_finite() && grad_norm.is_finite());
        let due = tracking.filter(|t| t.every > 0 && step % t.every == 0 && !diverged);
        if let (Some(tr), Some(tracker)) = (due, tracker.as_mut()) {
            match track_in(tracker, net, tr.curvature, tr.tracker.lanczos.par) {
                Ok(sh) => {
                    let est = sh.estimate;
                    let r = est.result;
                    let check_products = est.check.as_ref().map_or(0, |c| c.products);
                    estimates += 1;
                    products += r.products + check_products;
                    let rec = EigRecord {
                        step,
                        values: r.values,
                        residuals: r.residuals,
                        bounds: est.certificate.bounds,
                        rho: est.certificate.rho,
                        strategy: est.strategy,
                        history_only: est.history_only,
                        check: est.check,
                        status: r.status,
                        products: r.products,
                        iterations: r.iterations,
                        seconds: sh.seconds,
                        product_seconds: sh.product_seconds,
                    };
                    obs.eigs(&rec)
                        .map_err(|source| TrainError::Observer { step, source })?;
                }
                Err(EigError::NonFiniteProduct { .. }) => diverged = true,
                Err(source) => return Err(TrainError::Eig { step, source }),
            }
        }
        // The observer's own work on θ_t is not the step's: its time is left out.
        let mut outside = 0.0;
        if obs.wants_point(step) {
            let t = Instant::now();
            let theta: Vec<f64> = params.iter().map(|v| v.to_f64()).collect();
            obs.point(step, &theta)
                .map_err(|source| TrainError::Observer { step, source })?;
            outside = t.elapsed().as_secs_f64();
        }
        let stop = if diverged {
            Some(StopReason::Diverged)
        } else if gd.acc_goal.is_some_and(|g| ev.accuracy > g) {
            Some(StopReason::AccuracyGoal)
        } else if gd.loss_goal.is_some_and(|g| ev.loss < g) {
            Some(StopReason::LossGoal)
        } else if step >= gd.max_steps {
            Some(StopReason::MaxSteps)
        } else if obs.interrupted() {
            Some(StopReason::Interrupted)
        } else {
            None
        };
        if stop.is_none() {
            par.each(
                params.chunks_mut(CHUNK).zip(grad.chunks(CHUNK)),
                |(p, g)| {
                    p.iter_mut().zip(g).for_each(|(p, g)| *p -= lr * *g);
                },
            );
        }
        let rec = StepRecord {
            step,
            loss: ev.loss,
            accuracy: ev.accuracy,
            grad_norm,
            seconds: t0.elapsed().as_secs_f64() - outside,
        };
        obs.step(&rec)
            .map_err(|source| TrainError::Observer { step, source })?;
        if let Some(stop) = stop {
            let (checks, check_disagreements) = tracker.as_ref().map_or((0, 0), Tracker::checks);
            return Ok(Outcome {
                stop,
                last: rec,
                params,
                estimates,
                products,
                checks,
                check_disagreements,
            });
        }
        step += 1;
    }
}

/// Parameters per task of the update, and per partial sum of the gradient norm.
const CHUNK: usize = 1 << 14;

/// `‖g‖₂` in f64: squares summed in order within each [`CHUNK`] of `g` (one task each, into
/// `partial`), then the chunks' sums in order. The order depends only on `g.len()`, so the
/// norm is bit-identical at every thread count.
fn norm<T: Real>(g: &[T], partial: &mut [f64], par: Par) -> f64 {
    par.each(partial.iter_mut().zip(g.chunks(CHUNK)), |(s, c)| {
        *s = c
            .iter()
            .map(|v| {
                let v = v.to_f64();
                v * v
            })
            .sum();
    });
    partial.iter().sum::<f64>().sqrt()
}

/// An observer that keeps every record in memory (tests, small runs).
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    pub steps: Vec<StepRecord>,
    pub eigs: Vec<EigRecord>,
}

impl Observer for Recorder {
    fn step(&mut self, rec: &StepRecord) -> std::io::Result<()> {
        self.steps.push(*rec);
        Ok(())
    }
    fn eigs(&mut self, rec: &EigRecord) -> std::io::Result<()> {
        self.eigs.push(rec.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
