//! What tracking the sharpness costs, measured on a window of real gradient-descent steps: the
//! unit of the overhead harness (`eosbench sweep`).
//!
//! A window runs `warmup + steps` evaluations of [`gradient_descent`] with the chosen tracker
//! and keeps the last `steps`. Every step's record carries its own time and, where an estimate
//! was due, the estimate's time, so the untracked cost of each step is the step less its
//! estimate, measured in the same step: the overhead ratio `t_step / (t_step − t_eig)` is
//! interleaved by construction and stable on a shared machine.

use serde::{Deserialize, Serialize};

use super::{gradient_descent, GdConfig, Recorder, Tracking, TrainError};
use crate::eig::{LanczosParams, Strategy, TrackerParams};
use crate::mlp::{Curvature, Net};
use crate::par::Par;
use crate::real::Real;

/// The trackers a window can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrackerChoice {
    /// No estimates: the plain gradient-descent step.
    None,
    /// Lanczos from a random start at every estimate, residual rule (what the reference code
    /// does with ARPACK).
    Cold,
    /// Lanczos warm-started from the previous estimate, residual rule.
    Lanczos,
    /// The history tracker, bound rule (the default of `train`).
    History,
    /// LOBPCG from the history, bound rule.
    Lobpcg,
}

impl TrackerChoice {
    pub const ALL: [TrackerChoice; 5] = [
        TrackerChoice::None,
        TrackerChoice::Cold,
        TrackerChoice::Lanczos,
        TrackerChoice::History,
        TrackerChoice::Lobpcg,
    ];

    /// The name used on the command line and in result files.
    pub fn name(self) -> &'static str {
        match self {
            TrackerChoice::None => "none",
            TrackerChoice::Cold => "cold",
            TrackerChoice::Lanczos => "lanczos",
            TrackerChoice::History => "history",
            TrackerChoice::Lobpcg => "lobpcg",
        }
    }

    /// Parses a [`TrackerChoice::name`].
    pub fn parse(s: &str) -> Option<TrackerChoice> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The tracking of this choice every `every` steps with the solver settings `lanczos`
    /// (`None` for [`TrackerChoice::None`] or `every = 0`).
    pub fn tracking(self, every: usize, lanczos: LanczosParams) -> Option<Tracking> {
        let strategy = match self {
            TrackerChoice::None => return None,
            TrackerChoice::Cold | TrackerChoice::Lanczos => Strategy::Lanczos,
            TrackerChoice::History => Strategy::History,
            TrackerChoice::Lobpcg => Strategy::Lobpcg,
        };
        (every > 0).then(|| Tracking {
            every,
            curvature: Curvature::Hessian,
            tracker: TrackerParams {
                strategy,
                stop: match strategy {
                    Strategy::Lanczos => crate::eig::StopRule::Residual,
                    _ => crate::eig::StopRule::Bound,
                },
                warm_start: self != TrackerChoice::Cold,
                ..TrackerParams::new(lanczos)
            },
        })
    }
}

/// Median, spread and extremes of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// The summary of `v` (`None` when empty); quantiles by the nearest rank.
    pub fn of(v: &[f64]) -> Option<Summary> {
        if v.is_empty() {
            return None;
        }
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        Some(Summary {
            median: if s.len() % 2 == 1 {
                s[s.len() / 2]
            } else {
                0.5 * (s[s.len() / 2 - 1] + s[s.len() / 2])
            },
            p10: at(0.1),
            p90: at(0.9),
            min: s[0],
            max: s[s.len() - 1],
        })
    }
}

/// A window's settings.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Steps run and left out first (the tracker's history and the caches warm up).
    pub warmup: usize,
    /// Steps measured.
    pub steps: usize,
    pub lr: f64,
    pub tracker: TrackerChoice,
    pub eig_every: usize,
    /// `k`, tolerance and the other solver settings.
    pub lanczos: LanczosParams,
}

/// What a window measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub steps: usize,
    /// Whole steps (their estimates included), ms.
    pub step_ms: Summary,
    /// Steps less their estimates, ms.
    pub untracked_ms: Summary,
    /// Estimates in the window, their time (ms) and products.
    pub estimates: usize,
    pub eig_ms: Option<Summary>,
    pub products: Option<Summary>,
    /// Per estimate, its product time over its products: one curvature product, ms (absent in
    /// files written before it was recorded).
    #[serde(default)]
    pub product_ms: Option<Summary>,
    /// Per estimated step, `t_step / (t_step − t_eig)`.
    pub overhead: Option<Summary>,
    /// `Σ t_step / Σ (t_step − t_eig)` over the window: what tracking at this cadence costs.
    pub cost_ratio: f64,
    /// The last tracked top eigenvalue.
    pub last_sharpness: Option<f64>,
}

/// Runs the window from `params` (see the module docs).
pub fn measure_window<T: Real>(
    net: &mut Net<T>,
    params: Vec<T>,
    w: &Window,
    par: Par,
) -> Result<WindowStats, TrainError> {
    if w.steps == 0 {
        return Err(TrainError::Config(
            "a window measures at least one step".into(),
        ));
    }
    let gd = GdConfig {
        lr: w.lr,
        max_steps: w.warmup + w.steps - 1,
        acc_goal: None,
        loss_goal: None,
    };
    let tracking = w.tracker.tracking(w.eig_every, w.lanczos);
    let mut rec = Recorder::default();
    gradient_descent(net, params, &gd, tracking.as_ref(), par, &mut rec)?;
    let eig_of = |step: usize| rec.eigs.iter().find(|e| e.step == step);
    let kept = &rec.steps[w.warmup.min(rec.steps.len())..];
    let (mut step_ms, mut untracked, mut eig_ms, mut products, mut overhead) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut product_ms = vec![];
    for s in kept {
        let t = s.seconds * 1e3;
        step_ms.push(t);
        match eig_of(s.step) {
            Some(e) => {
                let te = e.seconds * 1e3;
                untracked.push(t - te);
                eig_ms.push(te);
                products.push(e.products as f64);
                if e.products > 0 {
                    product_ms.push(e.product_seconds * 1e3 / e.products as f64);
                }
                overhead.push(t / (t - te));
            }
            None => untracked.push(t),
        }
    }
    let none = || TrainError::Config("the window ended before its first measured step".into());
    Ok(WindowStats {
        steps: kept.len(),
        step_ms: Summary::of(&step_ms).ok_or_else(none)?,
        untracked_ms: Summary::of(&untracked).ok_or_else(none)?,
        estimates: eig_ms.len(),
        eig_ms: Summary::of(&eig_ms),
        products: Summary::of(&products),
        product_ms: Summary::of(&product_ms),
        overhead: Summary::of(&overhead),
        cost_ratio: step_ms.iter().sum::<f64>() / untracked.iter().sum::<f64>(),
        last_sharpness: rec.eigs.last().map(|e| e.values[0]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::{Data, NetConfig};
    use crate::model::{init_params, Activation, Loss, MlpSpec};

    #[test]
    fn summaries_use_the_nearest_rank() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            (s.median, s.min, s.max, s.p10, s.p90),
            (3.0, 1.0, 5.0, 1.0, 5.0)
        );
        assert_eq!(Summary::of(&[1.0, 2.0]).unwrap().median, 1.5);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn tracker_names_round_trip() {
        for t in TrackerChoice::ALL {
            assert_eq!(TrackerChoice::parse(t.name()), Some(t));
        }
        assert_eq!(TrackerChoice::parse("arpack"), None);
    }

    /// Every measured step is counted once, estimates only where due, and the untracked time
    /// of a tracked step is the step less its estimate.
    #[test]
    fn a_window_keeps_its_measured_steps_and_their_estimates() {
        let spec = MlpSpec::new(6, &[8], 3, Activation::Tanh).unwrap();
        let ds = crate::data::synthetic(40, 6, 3, 2);
        let p0 = init_params::<f64>(&spec, 3).data;
        for (tracker, every, estimates) in [
            (TrackerChoice::None, 1, 0),
            (TrackerChoice::History, 1, 5),
            (TrackerChoice::Cold, 2, 3),
            (TrackerChoice::Lobpcg, 3, 2),
        ] {
            let data = Data::new(ds.features::<f64>(), ds.labels.clone(), 6, 3);
            let mut net = Net::new(&spec, Loss::Mse, data, NetConfig::default());
            let w = Window {
                warmup: 2,
                steps: 5,
                lr: 0.2,
                tracker,
                eig_every: every,
                lanczos: LanczosParams::default(),
            };
            let s = measure_window(&mut net, p0.clone(), &w, Par::Seq).unwrap();
            assert_eq!(s.steps, 5, "{tracker:?}");
            assert_eq!(s.estimates, estimates, "{tracker:?}");
            assert_eq!(s.products.is_some(), estimates > 0);
            // A product costs some time, never more than its estimate.
            assert_eq!(s.product_ms.is_some(), estimates > 0);
            if let (Some(pm), Some(em), Some(pr)) = (s.product_ms, s.eig_ms, s.products) {
                assert!(pm.min > 0.0 && pm.median * pr.min <= em.max + 1e-9);
            }
            assert!(s.untracked_ms.median <= s.step_ms.median + 1e-12);
            assert!(s.cost_ratio >= 1.0);
            if let Some(o) = s.overhead {
                assert!(o.min >= 1.0);
            }
            assert_eq!(s.last_sharpness.is_some(), tracker != TrackerChoice::None);
        }
    }
}
