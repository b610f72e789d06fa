//! The single operations a user times when choosing a tool — the loss, the gradient, one
//! curvature product, one sharpness estimate, a tracked step — measured on one network and data
//! set, with the values a peer implementation must reproduce before its times mean anything
//! (`eosbench ops`; `scripts/peers/` writes the same report for PyTorch and JAX).
//!
//! The operations, each timed `reps` times after one untimed call (its time kept apart as the
//! first call's):
//! - `loss`: the full-batch loss (forward pass only);
//! - `gradient`: loss and gradient (forward and backward);
//! - `hvp`: one Hessian-vector product along `v = g/‖g‖` at the point of the last gradient
//!   (the solvers' product: the forward state is cached, the product is R-forward and
//!   R-backward only);
//! - `estimate`: a cold Lanczos solve for the top eigenvalue (`k = 1`, residual `tol`);
//! - `estimate_reference`: the top two eigenvalues at `tol_reference`, as the reference code
//!   asks ARPACK for two;
//! - `tracked_step`: gradient, cold estimate and update, the step of a run tracked the reference
//!   way;
//! - `tracked_step_history`: the median step of a window of gradient descent tracked by the
//!   history tracker every step (what `train` does), from the same start.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::eig::{LanczosParams, SymOp, Which};
use crate::hvp::{top_eigenpairs, CurvatureOp};
use crate::mlp::{Curvature, Net};
use crate::par::Par;
use crate::real::Real;
use crate::train::{measure_window, Summary, TrackerChoice, TrainError, Window};

/// How the operations are measured.
#[derive(Clone, Debug)]
pub struct OpsSettings {
    /// Timed calls per operation.
    pub reps: usize,
    /// Step size of the tracked steps.
    pub lr: f64,
    /// Residual tolerance of `estimate` and `tracked_step`.
    pub tol: f64,
    /// Residual tolerance of `estimate_reference`.
    pub tol_reference: f64,
    /// The operations to time, by name (empty: all, [`OPS`]). The check values are computed
    /// in any case except the sharpness, which needs `estimate`.
    pub only: Vec<String>,
}

/// The operations, in the order they run.
pub const OPS: [&str; 7] = [
    "loss",
    "gradient",
    "hvp",
    "estimate",
    "estimate_reference",
    "tracked_step",
    "tracked_step_history",
];

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings {
            reps: 10,
            lr: 0.01,
            tol: 1e-3,
            tol_reference: 1e-5,
            only: Vec::new(),
        }
    }
}

/// One operation's times (ms) and, for the solves, its products and values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpTime {
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub reps: usize,
    pub first_call_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl OpTime {
    fn of(first_ms: f64, times_ms: &[f64]) -> OpTime {
        let s = Summary::of(times_ms).expect("at least one rep");
        OpTime {
            median_ms: s.median,
            p10_ms: s.p10,
            p90_ms: s.p90,
            reps: times_ms.len(),
            first_call_ms: first_ms,
            products: None,
            value: None,
        }
    }
}

/// The values every implementation must agree on: loss, gradient norm, `⟨v, Hv⟩` along
/// `v = g/‖g‖`, and the `estimate`'s top eigenvalue (when it ran).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub loss: f64,
    pub grad_norm: f64,
    pub vhv: f64,
    pub sharpness: Option<f64>,
}

/// The measured operations, by name, with the check values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ops {
    pub check: Check,
    pub ops: BTreeMap<String, OpTime>,
}

/// Times `f` once (first call) and then `reps` times; returns the first call's ms, every rep's
/// ms and the last call's result.
fn timed<R>(reps: usize, mut f: impl FnMut() -> R) -> (f64, Vec<f64>, R) {
    let t0 = Instant::now();
    let mut last = f();
    let first = t0.elapsed().as_secs_f64() * 1e3;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        last = f();
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    (first, times, last)
}

/// Measures the operations (see the module docs) of `net` at `params`.
pub fn measure_ops<T: Real>(
    net: &mut Net<T>,
    params: &[T],
    s: &OpsSettings,
    par: Par,
) -> Result<Ops, TrainError> {
    if let Some(bad) = s.only.iter().find(|o| !OPS.contains(&o.as_str())) {
        return Err(TrainError::Config(format!(
            "'{bad}' is not an operation: use {}",
            OPS.join(", ")
        )));
    }
    let wanted = |name: &str| s.only.is_empty() || s.only.iter().any(|o| o == name);
    let reps = |name: &str| if wanted(name) { s.reps } else { 0 };
    let p = net.num_params();
    let mut ops = BTreeMap::new();

    let (first, t, ev) = timed(reps("loss"), || net.evaluate(params, par));
    if wanted("loss") {
        ops.insert("loss".into(), OpTime::of(first, &t));
    }
    let loss = ev.loss;

    let mut g = vec![T::ZERO; p];
    let (first, t, _) = timed(reps("gradient"), || net.gradient(params, &mut g, par));
    if wanted("gradient") {
        ops.insert("gradient".into(), OpTime::of(first, &t));
    }
    let grad_norm = g.iter().map(|x| x.to_f64().powi(2)).sum::<f64>().sqrt();

    // The solvers' product at the point of the last gradient (the one just timed).
    let v: Vec<f64> = g.iter().map(|x| x.to_f64() / grad_norm).collect();
    let mut hv = vec![0.0; p];
    let (first, t, _) = {
        let mut op = CurvatureOp::new(net, Curvature::Hessian, par);
        timed(reps("hvp"), || op.apply(&v, &mut hv, 1))
    };
    if wanted("hvp") {
        ops.insert("hvp".into(), OpTime::of(first, &t));
    }
    let vhv = v.iter().zip(&hv).map(|(a, b)| a * b).sum::<f64>();
    let mut sharpness = None;

    if wanted("estimate") {
        let (o, top) = timed_solve(net, params, 1, s.tol, s.reps, par)?;
        sharpness = Some(top[0]);
        ops.insert("estimate".into(), o);
    }
    if wanted("estimate_reference") {
        let (o, _) = timed_solve(net, params, 2, s.tol_reference, s.reps, par)?;
        ops.insert("estimate_reference".into(), o);
    }

    if wanted("tracked_step") {
        tracked_step(net, params, s, par, &mut ops)?;
    }
    if wanted("tracked_step_history") {
        history_step(net, params, s, par, &mut ops)?;
    }

    Ok(Ops {
        check: Check {
            loss,
            grad_norm,
            vhv,
            sharpness,
        },
        ops,
    })
}

/// A cold solve for the top `k` eigenvalues to residual `tol` at `params` (the gradient taken
/// first, untimed, caches the point), timed `reps` times: its time, products and values (one
/// number for `k = 1`, a list otherwise), and the values.
fn timed_solve<T: Real>(
    net: &mut Net<T>,
    params: &[T],
    k: usize,
    tol: f64,
    reps: usize,
    par: Par,
) -> Result<(OpTime, Vec<f64>), TrainError> {
    let mut g = vec![T::ZERO; net.num_params()];
    net.gradient(params, &mut g, par);
    let (first, t, est) = timed(reps, || {
        top_eigenpairs(net, Curvature::Hessian, &solve(k, tol, par), None)
    });
    let values = est.map_err(eig_err)?.result;
    let mut o = OpTime::of(first, &t);
    o.products = Some(values.products as f64);
    o.value = Some(if k == 1 {
        values.values[0].into()
    } else {
        values.values.clone().into()
    });
    Ok((o, values.values))
}

/// The solver settings of the estimates: `k` eigenvalues to residual `tol`.
fn solve(k: usize, tol: f64, par: Par) -> LanczosParams {
    LanczosParams {
        k,
        tol,
        which: Which::LargestAlgebraic,
        par,
        ..LanczosParams::default()
    }
}

/// `tracked_step`: gradient, cold estimate at that point, update; every rep from `params`.
fn tracked_step<T: Real>(
    net: &mut Net<T>,
    params: &[T],
    s: &OpsSettings,
    par: Par,
    ops: &mut BTreeMap<String, OpTime>,
) -> Result<(), TrainError> {
    let mut g = vec![T::ZERO; net.num_params()];
    let mut next = params.to_vec();
    let (first, t, products) = timed(s.reps, || {
        net.gradient(params, &mut g, par);
        let est = top_eigenpairs(net, Curvature::Hessian, &solve(1, s.tol, par), None);
        for ((n, &x), &d) in next.iter_mut().zip(params).zip(&g) {
            *n = x - T::from_f64(s.lr) * d;
        }
        est.map(|e| e.result.products)
    });
    let mut o = OpTime::of(first, &t);
    o.products = Some(products.map_err(eig_err)? as f64);
    ops.insert("tracked_step".into(), o);
    Ok(())
}

/// `tracked_step_history`: the history tracker every step, on a window from `params`; its
/// first three steps (a cold solve, then the history filling up) play the first call.
fn history_step<T: Real>(
    net: &mut Net<T>,
    params: &[T],
    s: &OpsSettings,
    par: Par,
    ops: &mut BTreeMap<String, OpTime>,
) -> Result<(), TrainError> {
    let warmup = 3;
    let w = Window {
        warmup,
        steps: s.reps.max(1),
        lr: s.lr,
        tracker: TrackerChoice::History,
        eig_every: 1,
        lanczos: solve(1, s.tol, par),
    };
    let t0 = Instant::now();
    let stats = measure_window(net, params.to_vec(), &w, par)?;
    let total_ms = t0.elapsed().as_secs_f64() * 1e3;
    let kept_ms = stats.step_ms.median * stats.steps as f64;
    ops.insert(
        "tracked_step_history".into(),
        OpTime {
            median_ms: stats.step_ms.median,
            p10_ms: stats.step_ms.p10,
            p90_ms: stats.step_ms.p90,
            reps: stats.steps,
            first_call_ms: ((total_ms - kept_ms) / warmup as f64).max(0.0),
            products: stats.products.map(|p| p.median),
            value: stats.last_sharpness.map(Into::into),
        },
    );
    Ok(())
}

fn eig_err(e: crate::eig::EigError) -> TrainError {
    TrainError::Config(format!("sharpness: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::{reference, Data, NetConfig};
    use crate::model::{init_params, Activation, Loss, MlpSpec};

    /// The check values are the network's own (loss, ‖g‖ and ⟨v, Hv⟩ against the float64
    /// reference implementation), every operation is timed, and the solves agree on λ₁.
    #[test]
    fn the_operations_report_the_values_a_peer_must_match() {
        let spec = MlpSpec::new(7, &[6, 5], 3, Activation::Tanh).unwrap();
        let ds = crate::data::synthetic(40, 7, 3, 4);
        let params = init_params::<f64>(&spec, 2).data;
        let data = Data::new(ds.features::<f64>(), ds.labels.clone(), 7, 3);
        let mut net = Net::new(&spec, Loss::Mse, data, NetConfig::default());
        let s = OpsSettings {
            reps: 3,
            lr: 0.1,
            tol: 1e-8,
            tol_reference: 1e-8,
            only: Vec::new(),
        };
        let r = measure_ops(&mut net, &params, &s, Par::Seq).unwrap();
        let names = [
            "estimate",
            "estimate_reference",
            "gradient",
            "hvp",
            "loss",
            "tracked_step",
            "tracked_step_history",
        ];
        assert_eq!(r.ops.keys().collect::<Vec<_>>(), names);
        assert!(r.ops.values().all(|o| o.reps >= 3 && o.median_ms >= 0.0));

        let x = ds.features::<f64>();
        let (loss, _, g) = reference::loss_grad(&spec, Loss::Mse, &x, &ds.labels, &params);
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let v: Vec<f64> = g.iter().map(|x| x / norm).collect();
        let hv = reference::hvp(
            &spec,
            Loss::Mse,
            &x,
            &ds.labels,
            &params,
            &v,
            Curvature::Hessian,
        );
        let vhv: f64 = v.iter().zip(&hv).map(|(a, b)| a * b).sum();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-10 * b.abs().max(1.0);
        assert!(close(r.check.loss, loss), "{} {loss}", r.check.loss);
        assert!(close(r.check.grad_norm, norm));
        assert!(close(r.check.vhv, vhv), "{} {vhv}", r.check.vhv);
        // λ₁ bounds every Rayleigh quotient; the two solves agree on it.
        let top = r.check.sharpness.unwrap();
        assert!(top >= vhv - 1e-10);
        let top2 = r.ops["estimate_reference"].value.as_ref().unwrap();
        assert!(close(top2[0].as_f64().unwrap(), top));
        assert!(top2[1].as_f64().unwrap() <= top);
        assert!(r.ops["tracked_step"].products.unwrap() >= 1.0);

        // A subset: only those are timed; the checks but the sharpness stay.
        let only = OpsSettings {
            only: vec!["gradient".into(), "hvp".into()],
            ..s.clone()
        };
        let r2 = measure_ops(&mut net, &params, &only, Par::Seq).unwrap();
        assert_eq!(r2.ops.keys().collect::<Vec<_>>(), ["gradient", "hvp"]);
        assert_eq!((r2.check.vhv, r2.check.sharpness), (r.check.vhv, None));
        let bad = OpsSettings {
            only: vec!["hessian".into()],
            ..s
        };
        let e = measure_ops(&mut net, &params, &bad, Par::Seq).unwrap_err();
        assert!(e.to_string().contains("hessian") && e.to_string().contains("tracked_step"));
    }
}
