//! `eosbench verify`: check the analytic derivatives of a network on a dataset against finite
//! differences and against each other, in f64, and check f32 against f64.
//!
//! For `K` seeded random unit directions `u_k` (Gaussian, normalised) at the parameters `θ`:
//!
//! * **Gradient.** `FD = (L(θ+hu) − L(θ−hu)) / 2h` against `⟨∇L(θ), u⟩`;
//!   error `|FD − ⟨∇L,u⟩| / |⟨∇L,u⟩|`. The difference of the losses is summed example by
//!   example from the network outputs at the two points, in a form without cancellation
//!   ([`loss_difference`]): subtracting the two losses would lose every digit below one ulp
//!   of `L`.
//! * **Hessian-vector product.** `FD = (∇L(θ+hu) − ∇L(θ−hu)) / 2h` against the
//!   R-operator product `Hu`; error `‖FD − Hu‖ / ‖Hu‖`.
//! * **Hessian symmetry** on every pair `i < j`:
//!   `|⟨u_i,Hu_j⟩ − ⟨Hu_i,u_j⟩| / max(|⟨u_i,Hu_j⟩|, |⟨Hu_i,u_j⟩|)`. The two sides come from
//!   different R-passes, so only rounding separates them.
//! * **Gauss–Newton**: the same symmetry of `G = JᵀH_out J`, and `⟨u,Gu⟩ ≥ 0` (reported as the
//!   negative part `max(0, −⟨u,Gu⟩) / ‖Gu‖`, which must stay below the symmetry tolerance).
//! * **Third-order product.** `FD = (H(θ+hu)u − H(θ−hu)u) / 2h` against the exact
//!   `∇³L(θ)[u, u]` (the gradient of `uᵀHu`); error `‖FD − ∇³L[u,u]‖ / ‖∇³L[u,u]‖`. The
//!   products at `θ ± hu` come from the gradients the HVP check computes anyway.
//! * **f32 vs f64**: the f32 network at `θ` rounded to f32 against the f64 network at `θ`:
//!   `‖∇L₃₂ − ∇L₆₄‖ / ‖∇L₆₄‖`, `max_k ‖(Hu_k)₃₂ − (Hu_k)₆₄‖ / ‖(Hu_k)₆₄‖` and the same for the
//!   third-order products.
//!
//! **Kinks.** A difference across a kink of ReLU measures a jump, not a derivative, and with a
//! million pre-activations (fc-relu on cifar10-5k) steps of `s = 1e-6` already cross some: the
//! error then stays at O(1) for every step of the grid. So for ReLU networks each direction
//! first gets the distance to the nearest kink along it, `min |z| / |dz/dε|` over every hidden
//! pre-activation of every example ([`Net::kink_margins`]; about `s = 1e-7 … 2e-6` there), and
//! only the steps of the grid below a quarter of it are taken; when none is, a quarter and a
//! sixteenth of it. On fc-relu the kinks lie at s ≈ 1e-7 … 2e-6 (cifar10-5k) and 5e-8 … 9e-8
//! (cifar10-50k); there the gradient check reaches 7e-10 and 2.4e-7 (a direction with a small
//! `⟨∇L,u⟩` meeting a step of s = 1e-8), the Hessian-vector product 4e-9 and 1.3e-7.
//!
//! **Step sizes.** A central difference has truncation error `O(h²)` (third derivatives) and
//! rounding error `O(ε/h)` (ε ≈ 1e-16 times the size of `L` or `∇L`), so the error as a function
//! of `h` is V-shaped with its minimum where the two balance. Where that minimum lies depends on
//! the scale of the parameters: along a unit direction `u`, a step `h` moves `θ` by a relative
//! amount `h/‖θ‖`, and the third-derivative scale is set by `‖θ‖`. So the steps are relative:
//! `h = s·max(‖θ‖, 1)` for each `s` in `--steps` (default 1e-3 … 1e-6), and for every
//! direction the smallest error over the steps is reported with its step. The default grid
//! brackets the minimum in f64: for fc-tanh at init on cifar10-5k (‖θ‖ ≈ 11.7) both errors fall
//! as s² from ≈ 1e-6 at s = 1e-3 to ≈ 1e-10 near s = 1e-5 and grow again at 1e-6 as rounding
//! takes over. Taking the minimum over a few steps measures the accuracy of the analytic
//! derivative (the best achievable agreement), not the finite-difference noise at an arbitrary
//! step; the errors at every step are in the JSON output.
//!
//! Cost: one f64 gradient, `2K` f64 products (Hessian and Gauss–Newton, one block each) and `K`
//! third-order products, `2·K·S` f64 loss evaluations and `2·K·S` f64 gradients and HVPs for
//! `S` steps per direction (for ReLU, those below the kink, and a forward with its derivative
//! along each direction to find it), plus one f32 gradient, `K` f32 products and `K` f32
//! third-order products.

use std::time::Instant;

use clap::Args;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::{json, Value};

use super::args::{load_net, to_data, DataArgs, LoadedNet, ModelArgs};
use super::{progress, CliError, Context, Output};
use crate::mlp::{Curvature, Net, NetConfig};
use crate::model::Loss;

/// Parses a positive finite number (tolerances, steps).
fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' is not a positive number (e.g. 1e-6)")),
    }
}

#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub data: DataArgs,

    /// Number of random unit directions u (symmetry is checked on every pair; the f32
    /// products run as one block of K, which at fc-tanh's h = 200 and K = 4 takes the
    /// first layer's Strassen products)
    #[arg(long, value_name = "K", help_heading = "Checks", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(2..=64))]
    pub directions: u16,

    /// Seed of the random directions
    #[arg(long, value_name = "S", default_value_t = 1, help_heading = "Checks")]
    pub direction_seed: u64,

    /// Relative finite-difference steps s, comma-separated: h = s * max(|theta|, 1); the smallest
    /// error over the steps is reported
    #[arg(long, value_name = "S1,S2,...", help_heading = "Checks", value_delimiter = ',', num_args = 1,
          default_value = "1e-3,1e-4,1e-5,1e-6", value_parser = positive)]
    pub steps: Vec<f64>,

    /// Tolerance of the gradient vs finite differences (relative)
    #[arg(long, value_name = "TOL", help_heading = "Checks", default_value = "1e-6", value_parser = positive)]
    pub tol_grad: f64,

    /// Tolerance of the Hessian-vector product vs finite differences of gradients, and of the
    /// third-order product vs finite differences of HVPs (relative)
    #[arg(long, value_name = "TOL", help_heading = "Checks", default_value = "1e-4", value_parser = positive)]
    pub tol_hvp: f64,

    /// Tolerance of the Hessian and Gauss-Newton symmetry and of <u,Gu> >= 0 (relative, f64)
    #[arg(long, value_name = "TOL", help_heading = "Checks", default_value = "1e-8", value_parser = positive)]
    pub tol_sym: f64,

    /// Tolerance of f32 vs f64 agreement of the gradient and the HVP (relative)
    #[arg(long, value_name = "TOL", help_heading = "Checks", default_value = "1e-3", value_parser = positive)]
    pub tol_f32: f64,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `‖a − b‖ / ‖b‖`; 0 when both are zero, +∞ when only `b` is.
fn rel_dist(a: &[f64], b: &[f64]) -> f64 {
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    rel(d, norm(b))
}

/// `num / den` with `0/0 = 0` (exact agreement of two zeros).
fn rel(num: f64, den: f64) -> f64 {
    if num == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// `|a − b| / max(|a|, |b|)`, 0 when both are zero.
fn sym_err(a: f64, b: f64) -> f64 {
    rel((a - b).abs(), a.abs().max(b.abs()))
}

/// `k` unit vectors of length `p`, back to back: standard normals (Box–Muller from one
/// xoshiro256++ stream seeded with `seed`, 53-bit uniforms), each normalised.
pub fn random_unit_directions(p: usize, k: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    let mut v: Vec<f64> = (0..p * k)
        .map(|_| {
            let u1 = 1.0 - uniform();
            let u2 = uniform();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    for u in v.chunks_exact_mut(p.max(1)) {
        let s = norm(u);
        if s > 0.0 {
            u.iter_mut().for_each(|x| *x /= s);
        }
    }
    v
}

/// The error of one finite-difference comparison at one step.
#[derive(Clone, Copy, Debug)]
struct StepErr {
    /// Relative step `s` (`h = s·max(‖θ‖,1)`).
    rel_step: f64,
    err: f64,
}

/// The step with the smallest error; a NaN error counts as +∞, so NaN is reported only when
/// every step gives NaN. `errs` is never empty (clap requires at least one step).
fn best(errs: &[StepErr]) -> StepErr {
    let key = |e: &StepErr| if e.err.is_nan() { f64::INFINITY } else { e.err };
    let mut b = errs[0];
    for e in &errs[1..] {
        if key(e) < key(&b) {
            b = *e;
        }
    }
    b
}

/// One row of the pass/fail table.
struct Check {
    name: &'static str,
    value: f64,
    tol: f64,
    detail: String,
}

impl Check {
    /// A NaN value fails.
    fn pass(&self) -> bool {
        self.value <= self.tol
    }
}

pub fn verify(args: &VerifyArgs, ctx: &Context) -> Result<Output, CliError> {
    let t_all = Instant::now();
    let k = args.directions as usize;
    let LoadedNet {
        params,
        source,
        ds,
        data_seconds: data_s,
        mut net,
    } = load_net::<f64>(&args.model, &args.data, &ctx.data_dir)?;
    let spec = params.spec;
    let p = spec.num_params();
    let theta = params.data;
    let loss = args.data.loss;
    let dirs = random_unit_directions(p, k, args.direction_seed);
    let theta_norm = norm(&theta);
    let scale = theta_norm.max(1.0);

    // Analytic quantities at θ: the gradient caches the state both products reuse. The bar's
    // units are about the cost of a gradient: 1 + 3k here, 1 per step of the loss differences,
    // 3 per step of the gradient and HVP differences, k for the f32 net.
    let k64 = k as u64;
    let bar_len = |pairs: u64| 1 + 3 * k64 + 4 * pairs + k64;
    let bar = progress::bar(bar_len(k64 * args.steps.len() as u64), "verify");
    bar.set_message("f64 gradient and products");
    let t = Instant::now();
    let mut grad = vec![0.0; p];
    let ev = net.gradient(&theta, &mut grad, ctx.par);
    let mut hu = vec![0.0; k * p];
    net.hvp(&dirs, &mut hu, k, Curvature::Hessian, ctx.par);
    let mut gu = vec![0.0; k * p];
    net.hvp(&dirs, &mut gu, k, Curvature::GaussNewton, ctx.par);
    let mut tu = vec![0.0; k * p];
    for (i, out) in tu.chunks_mut(p).enumerate() {
        net.third_order(&dirs[i * p..(i + 1) * p], out, ctx.par);
    }
    let analytic_s = t.elapsed().as_secs_f64();
    let grad_norm = norm(&grad);
    let u = |i: usize| &dirs[i * p..(i + 1) * p];
    let hu_k = |i: usize| &hu[i * p..(i + 1) * p];
    let gu_k = |i: usize| &gu[i * p..(i + 1) * p];
    let tu_k = |i: usize| &tu[i * p..(i + 1) * p];
    let gdot: Vec<f64> = (0..k).map(|i| dot(&grad, u(i))).collect();

    // ReLU: per direction, the distance to the nearest kink, and the steps that stay inside it.
    let margins = net.kink_margins(&theta, &dirs, k, ctx.par);
    let steps: Vec<Vec<f64>> = margins
        .iter()
        .map(|&m| kink_free_steps(&args.steps, m / scale))
        .collect();
    let evaluations: usize = steps.iter().map(|s| 2 * s.len()).sum();
    bar.set_length(bar_len(evaluations as u64 / 2));
    bar.inc(1 + 3 * k64);
    bar.set_message("FD of the loss");

    let shifted = |i: usize, h: f64| -> (Vec<f64>, Vec<f64>) {
        let plus = theta.iter().zip(u(i)).map(|(t, d)| t + h * d).collect();
        let minus = theta.iter().zip(u(i)).map(|(t, d)| t - h * d).collect();
        (plus, minus)
    };

    // Gradient vs central differences of the loss.
    let t = Instant::now();
    let mut grad_errs = vec![Vec::new(); k];
    for (i, errs) in grad_errs.iter_mut().enumerate() {
        for &s in &steps[i] {
            let h = s * scale;
            let (plus, minus) = shifted(i, h);
            net.evaluate(&plus, ctx.par);
            let zp = net.outputs().to_vec();
            net.evaluate(&minus, ctx.par);
            let dl = loss_difference(loss, &zp, net.outputs(), &ds.labels);
            let fd = dl / (2.0 * h);
            errs.push(StepErr {
                rel_step: s,
                err: rel((fd - gdot[i]).abs(), gdot[i].abs()),
            });
            bar.inc(1);
        }
    }
    let fd_loss_s = t.elapsed().as_secs_f64();
    bar.set_message("FD of gradients and HVPs");

    // Hessian-vector products vs central differences of gradients, and third-order products
    // vs central differences of Hessian-vector products (at the same shifted points).
    let t = Instant::now();
    let mut hvp_errs = vec![Vec::new(); k];
    let mut third_errs = vec![Vec::new(); k];
    let (mut gp, mut gm) = (vec![0.0; p], vec![0.0; p]);
    let (mut hp, mut hm) = (vec![0.0; p], vec![0.0; p]);
    let diff = |a: &[f64], b: &[f64], h: f64| -> Vec<f64> {
        a.iter().zip(b).map(|(a, b)| (a - b) / (2.0 * h)).collect()
    };
    for i in 0..k {
        for &s in &steps[i] {
            let h = s * scale;
            let (plus, minus) = shifted(i, h);
            net.gradient(&plus, &mut gp, ctx.par);
            net.hvp(u(i), &mut hp, 1, Curvature::Hessian, ctx.par);
            net.gradient(&minus, &mut gm, ctx.par);
            net.hvp(u(i), &mut hm, 1, Curvature::Hessian, ctx.par);
            hvp_errs[i].push(StepErr {
                rel_step: s,
                err: rel_dist(&diff(&gp, &gm, h), hu_k(i)),
            });
            third_errs[i].push(StepErr {
                rel_step: s,
                err: rel_dist(&diff(&hp, &hm, h), tu_k(i)),
            });
            bar.inc(3);
        }
    }
    let fd_grad_s = t.elapsed().as_secs_f64();
    drop(net);

    // Symmetry on all pairs, and ⟨u,Gu⟩ ≥ 0.
    let mut h_sym: f64 = 0.0;
    let mut g_sym: f64 = 0.0;
    for i in 0..k {
        for j in i + 1..k {
            h_sym = h_sym.max(sym_err(dot(u(i), hu_k(j)), dot(hu_k(i), u(j))));
            g_sym = g_sym.max(sym_err(dot(u(i), gu_k(j)), dot(gu_k(i), u(j))));
        }
    }
    let ugu: Vec<f64> = (0..k).map(|i| dot(u(i), gu_k(i))).collect();
    let gu_norm: Vec<f64> = (0..k).map(|i| norm(gu_k(i))).collect();
    let psd_neg = (0..k)
        .map(|i| rel((-ugu[i]).max(0.0), gu_norm[i]))
        .fold(0.0f64, f64::max);
    let hu_norm: Vec<f64> = (0..k).map(|i| norm(hu_k(i))).collect();

    // f32 network at θ rounded to f32, same data and directions.
    bar.set_message("f32 gradient and products");
    let t = Instant::now();
    let mut net32 = Net::new(&spec, loss, to_data::<f32>(&ds), NetConfig::default());
    let theta32: Vec<f32> = theta.iter().map(|&x| x as f32).collect();
    let dirs32: Vec<f32> = dirs.iter().map(|&x| x as f32).collect();
    let mut grad32 = vec![0.0f32; p];
    let ev32 = net32.gradient(&theta32, &mut grad32, ctx.par);
    let mut hu32 = vec![0.0f32; k * p];
    net32.hvp(&dirs32, &mut hu32, k, Curvature::Hessian, ctx.par);
    let mut tu32 = vec![0.0f32; k * p];
    for (i, out) in tu32.chunks_mut(p).enumerate() {
        net32.third_order(&dirs32[i * p..(i + 1) * p], out, ctx.par);
    }
    let gemm32 = net32.first_layer_gemm();
    let split32 = net32.first_layer_splits(k);
    drop(net32);
    let f32_s = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let grad32_err = rel_dist(&widen(&grad32), &grad);
    let hvp32_errs: Vec<f64> = (0..k)
        .map(|i| rel_dist(&widen(&hu32[i * p..(i + 1) * p]), hu_k(i)))
        .collect();
    let hvp32_err = hvp32_errs.iter().copied().fold(0.0f64, f64::max);
    let third32_err = (0..k)
        .map(|i| rel_dist(&widen(&tu32[i * p..(i + 1) * p]), tu_k(i)))
        .fold(0.0f64, nan_max);

    let grad_best: Vec<StepErr> = grad_errs.iter().map(|e| best(e)).collect();
    let hvp_best: Vec<StepErr> = hvp_errs.iter().map(|e| best(e)).collect();
    let third_best: Vec<StepErr> = third_errs.iter().map(|e| best(e)).collect();
    let worst = |b: &[StepErr]| b.iter().map(|e| e.err).fold(0.0f64, nan_max);
    let steps_of = |b: &[StepErr]| {
        b.iter()
            .map(|e| format!("{:.0e}", e.rel_step))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let checks = [
        Check {
            name: "gradient vs FD of loss",
            value: worst(&grad_best),
            tol: args.tol_grad,
            detail: format!("best h/max(|θ|,1) per direction: {}", steps_of(&grad_best)),
        },
        Check {
            name: "Hessian-vector product vs FD of gradient",
            value: worst(&hvp_best),
            tol: args.tol_hvp,
            detail: format!("best h/max(|θ|,1) per direction: {}", steps_of(&hvp_best)),
        },
        Check {
            name: "third-order product vs FD of HVPs",
            value: worst(&third_best),
            tol: args.tol_hvp,
            detail: format!("best h/max(|θ|,1) per direction: {}", steps_of(&third_best)),
        },
        Check {
            name: "Hessian symmetry",
            value: h_sym,
            tol: args.tol_sym,
            detail: format!("max over {} pairs", k * (k - 1) / 2),
        },
        Check {
            name: "Gauss-Newton symmetry",
            value: g_sym,
            tol: args.tol_sym,
            detail: format!("max over {} pairs", k * (k - 1) / 2),
        },
        Check {
            name: "Gauss-Newton <u,Gu> >= 0",
            value: psd_neg,
            tol: args.tol_sym,
            detail: format!(
                "min <u,Gu> = {:.3e}; value = max(0, -<u,Gu>)/|Gu|",
                ugu.iter().copied().fold(f64::INFINITY, f64::min)
            ),
        },
        Check {
            name: "f32 vs f64 gradient",
            value: grad32_err,
            tol: args.tol_f32,
            detail: format!("loss f32 {:.9e} vs f64 {:.9e}", ev32.loss, ev.loss),
        },
        Check {
            name: "f32 vs f64 Hessian-vector product",
            value: hvp32_err,
            tol: args.tol_f32,
            detail: format!(
                "max over {k} directions, one block; first layer as {}",
                if split32 {
                    "Strassen's 7 products"
                } else {
                    "8 products"
                }
            ),
        },
        Check {
            name: "f32 vs f64 third-order product",
            value: third32_err,
            tol: args.tol_f32,
            detail: format!("max over {k} directions"),
        },
    ];
    let total_s = t_all.elapsed().as_secs_f64();

    // Text report.
    let mut text = String::new();
    let push = |text: &mut String, line: String| {
        text.push_str(&line);
        text.push('\n');
    };
    push(
        &mut text,
        format!(
            "derivative check (f64): dataset {}, n = {}, loss {}",
            ds.name, ds.n, loss
        ),
    );
    push(
        &mut text,
        format!("model: {} ({source}), p = {p}", spec.describe()),
    );
    push(
        &mut text,
        format!(
            "L(θ) = {:.10e}, |θ| = {theta_norm:.6}, |∇L| = {grad_norm:.6e}, accuracy {:.4}",
            ev.loss, ev.accuracy
        ),
    );
    push(
        &mut text,
        format!(
            "{k} random unit directions (seed {}), relative steps s = {} (h = s·max(|θ|,1))",
            args.direction_seed,
            args.steps
                .iter()
                .map(|s| format!("{s:e}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if margins.iter().any(|m| m.is_finite()) {
        push(
            &mut text,
            format!(
                "ReLU kinks: the nearest along u_k at s = {}; only steps below a quarter of it \
                 are taken (a difference across a kink measures a jump, not a derivative)",
                margins
                    .iter()
                    .map(|m| format!("{:.2e}", m / scale))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    push(&mut text, String::new());
    push(
        &mut text,
        format!(
            "{:<4} {:>12} {:>11} {:>7}  {:>11} {:>11} {:>7}  {:>11} {:>11}",
            "dir", "<∇L,u>", "grad err", "s", "|Hu|", "HVP err", "s", "<u,Gu>", "f32 HVP"
        ),
    );
    for i in 0..k {
        push(
            &mut text,
            format!(
                "u{:<3} {:>12.4e} {:>11.2e} {:>7.0e}  {:>11.4e} {:>11.2e} {:>7.0e}  {:>11.4e} {:>11.2e}",
                i + 1,
                gdot[i],
                grad_best[i].err,
                grad_best[i].rel_step,
                hu_norm[i],
                hvp_best[i].err,
                hvp_best[i].rel_step,
                ugu[i],
                hvp32_errs[i]
            ),
        );
    }
    push(&mut text, String::new());
    push(
        &mut text,
        format!(
            "{:<42} {:>10} {:>9}  {:<6} detail",
            "check", "error", "tol", "result"
        ),
    );
    for c in &checks {
        push(
            &mut text,
            format!(
                "{:<42} {:>10.3e} {:>9.1e}  {:<6} {}",
                c.name,
                c.value,
                c.tol,
                if c.pass() { "pass" } else { "FAIL" },
                c.detail
            ),
        );
    }
    push(&mut text, String::new());
    push(
        &mut text,
        format!(
            "seconds: data {data_s:.2}, f64 gradient + {} products {analytic_s:.2}, \
             FD of loss {fd_loss_s:.2} ({} evaluations), FD of gradients and HVPs \
             {fd_grad_s:.2} ({} each), f32 {f32_s:.2}, total {total_s:.2}",
            3 * k,
            evaluations,
            evaluations
        ),
    );
    push(
        &mut text,
        format!(
            "threads: {}, f32 first-layer GEMM: {gemm32}",
            ctx.describe_threads()
        ),
    );

    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.pass())
        .map(|c| format!("{} {:.3e} > tol {:.1e}", c.name, c.value, c.tol))
        .collect();
    let all_pass = failed.is_empty();
    push(
        &mut text,
        if all_pass {
            format!("ALL {} CHECKS PASSED", checks.len())
        } else {
            format!("{} OF {} CHECKS FAILED", failed.len(), checks.len())
        },
    );

    let step_json = |errs: &[StepErr]| -> Value {
        errs.iter()
            .map(|e| json!({ "rel_step": e.rel_step, "h": e.rel_step * scale, "err": e.err }))
            .collect()
    };
    let directions: Vec<Value> = (0..k)
        .map(|i| {
            json!({
                "kink_margin_h": margins[i],
                "steps": steps[i],
                "grad_dot_u": gdot[i],
                "grad_fd": step_json(&grad_errs[i]),
                "grad_err": grad_best[i].err,
                "hu_norm": hu_norm[i],
                "hvp_fd": step_json(&hvp_errs[i]),
                "hvp_err": hvp_best[i].err,
                "third_fd": step_json(&third_errs[i]),
                "third_err": third_best[i].err,
                "u_gu": ugu[i],
                "gu_norm": gu_norm[i],
                "f32_hvp_err": hvp32_errs[i],
            })
        })
        .collect();
    let json = json!({
        "dataset": ds.name,
        "n": ds.n,
        "spec": spec,
        "describe": spec.describe(),
        "model": source.to_json(),
        "p": p,
        "loss_fn": loss.name(),
        "loss": ev.loss,
        "loss_f32": ev32.loss,
        "accuracy": ev.accuracy,
        "theta_norm": theta_norm,
        "grad_norm": grad_norm,
        "direction_seed": args.direction_seed,
        "steps": args.steps,
        "directions": directions,
        "checks": checks.iter().map(|c| json!({
            "name": c.name, "value": c.value, "tol": c.tol, "pass": c.pass(), "detail": c.detail,
        })).collect::<Vec<_>>(),
        "all_pass": all_pass,
        "seconds": {
            "data": data_s, "analytic": analytic_s, "fd_loss": fd_loss_s,
            "fd_gradient": fd_grad_s, "f32": f32_s, "total": total_s,
        },
        "threads": ctx.threads,
        "kernel_path": ctx.kernel_path,
        "f32_first_layer_gemm": gemm32,
        "f32_first_layer_strassen": split32,
    });
    Ok(Output {
        text,
        json,
        failure: (!all_pass).then_some(CliError::ChecksFailed { failed }),
    })
}

/// `L(θ+hu) − L(θ−hu)` from the network outputs at the two points (`plus`, `minus`, `n × c`),
/// example by example, in forms without cancellation: for MSE
/// `½ Σ_k (z⁺_k − z⁻_k)(z⁺_k + z⁻_k − 2[k = y])`, for cross-entropy
/// `log1p(Σ_k p⁻_k expm1(z⁺_k − z⁻_k)) − (z⁺_y − z⁻_y)` with `p⁻ = softmax(z⁻)`. Subtracting the
/// two losses instead loses every digit below one ulp of `L` (1e-16 for L ≈ 0.6): the whole
/// difference when a small step (ReLU) meets a small `⟨∇L,u⟩`.
fn loss_difference(loss: Loss, plus: &[f64], minus: &[f64], labels: &[u8]) -> f64 {
    let n = labels.len();
    let c = plus.len() / n.max(1);
    let mut sum = 0.0;
    for ((zp, zm), &y) in plus.chunks_exact(c).zip(minus.chunks_exact(c)).zip(labels) {
        let y = y as usize;
        sum += match loss {
            Loss::Mse => {
                let mut d = 0.0;
                for k in 0..c {
                    let target = if k == y { 1.0 } else { 0.0 };
                    d += (zp[k] - zm[k]) * (zp[k] + zm[k] - 2.0 * target);
                }
                0.5 * d
            }
            Loss::Ce => {
                let m = zm.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let (mut total, mut moved) = (0.0, 0.0);
                for k in 0..c {
                    let e = (zm[k] - m).exp();
                    total += e;
                    moved += e * (zp[k] - zm[k]).exp_m1();
                }
                (moved / total).ln_1p() - (zp[y] - zm[y])
            }
        };
    }
    sum / n as f64
}

/// The relative steps of `grid` below a quarter of `margin` (the distance to the nearest kink
/// in the same units, infinite for smooth activations); when none is, a quarter and a
/// sixteenth of it.
fn kink_free_steps(grid: &[f64], margin: f64) -> Vec<f64> {
    let limit = margin / 4.0;
    let kept: Vec<f64> = grid.iter().copied().filter(|&s| s < limit).collect();
    if kept.is_empty() {
        vec![limit, limit / 4.0]
    } else {
        kept
    }
}

/// `max` that propagates NaN (a NaN error must fail the check, not vanish).
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_are_unit_and_seeded() {
        let a = random_unit_directions(1000, 3, 7);
        let b = random_unit_directions(1000, 3, 7);
        let c = random_unit_directions(1000, 3, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for u in a.chunks_exact(1000) {
            assert!((norm(u) - 1.0).abs() < 1e-12);
        }
        // Independent Gaussian directions in 1000 dimensions are nearly orthogonal.
        assert!(dot(&a[..1000], &a[1000..2000]).abs() < 0.2);
    }

    #[test]
    fn relative_errors() {
        assert_eq!(sym_err(0.0, 0.0), 0.0);
        // 1 + 1e-9 is not representable; the relative error is 1e-9 to ~1e-7 relative accuracy.
        assert!((sym_err(1.0, 1.0 + 1e-9) / 1e-9 - 1.0).abs() < 1e-6);
        assert_eq!(sym_err(-2.0, 2.0), 2.0);
        assert_eq!(rel_dist(&[3.0, 4.0], &[0.0, 0.0]), f64::INFINITY);
        assert!((rel_dist(&[3.0, 4.0], &[3.0, 5.0]) - 1.0 / 34f64.sqrt()).abs() < 1e-15);
        assert!(nan_max(0.0, f64::NAN).is_nan());
        let errs = [
            StepErr {
                rel_step: 1e-3,
                err: f64::NAN,
            },
            StepErr {
                rel_step: 1e-4,
                err: 2e-9,
            },
            StepErr {
                rel_step: 1e-5,
                err: 5e-9,
            },
        ];
        assert_eq!(best(&errs).rel_step, 1e-4);
    }

    /// Per-example losses the textbook way.
    fn losses(loss: Loss, z: &[f64], labels: &[u8]) -> Vec<f64> {
        let c = z.len() / labels.len();
        z.chunks_exact(c)
            .zip(labels)
            .map(|(z, &y)| match loss {
                Loss::Mse => {
                    let t = |k: usize| if k == y as usize { 1.0 } else { 0.0 };
                    (0..c).map(|k| 0.5 * (z[k] - t(k)).powi(2)).sum()
                }
                Loss::Ce => z.iter().map(|v| v.exp()).sum::<f64>().ln() - z[y as usize],
            })
            .collect()
    }

    #[test]
    fn loss_difference_is_exact_in_form_and_keeps_tiny_differences() {
        let (n, c) = (50, 7);
        let labels: Vec<u8> = (0..n).map(|i| (i * 3 % c) as u8).collect();
        let zm: Vec<f64> = (0..n * c)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 25.0)
            .collect();
        let dir: Vec<f64> = (0..n * c)
            .map(|i| ((i * 53 % 97) as f64 - 48.0) / 48.0)
            .collect();
        for loss in [Loss::Mse, Loss::Ce] {
            // A large step: equal to the plain difference of the two losses.
            let zp: Vec<f64> = zm.iter().zip(&dir).map(|(z, d)| z + 0.1 * d).collect();
            let mean = |v: Vec<f64>| v.iter().sum::<f64>() / n as f64;
            let want = mean(losses(loss, &zp, &labels)) - mean(losses(loss, &zm, &labels));
            let got = loss_difference(loss, &zp, &zm, &labels);
            assert!(
                (got - want).abs() <= 1e-11 * want.abs(),
                "{loss:?}: {got} vs {want}"
            );
            // A step of 1e-12: the first-order term, to 1e-9 relative, where subtracting the
            // two losses keeps only about four digits.
            let eps = 1e-12;
            let zp: Vec<f64> = zm.iter().zip(&dir).map(|(z, d)| z + eps * d).collect();
            // (The step actually taken: z⁺ − z⁻ is exact, `eps · d` is not.)
            let taken: Vec<f64> = zp.iter().zip(&zm).map(|(p, m)| (p - m) / eps).collect();
            let slope: f64 = zm
                .chunks_exact(c)
                .zip(taken.chunks_exact(c))
                .zip(&labels)
                .map(|((z, d), &y)| {
                    let y = y as usize;
                    let grad = |k: usize| match loss {
                        Loss::Mse => z[k] - if k == y { 1.0 } else { 0.0 },
                        Loss::Ce => {
                            let s: f64 = z.iter().map(|v| v.exp()).sum();
                            z[k].exp() / s - if k == y { 1.0 } else { 0.0 }
                        }
                    };
                    (0..c).map(|k| grad(k) * d[k]).sum::<f64>()
                })
                .sum::<f64>()
                / n as f64;
            let got = loss_difference(loss, &zp, &zm, &labels) / eps;
            assert!(
                (got - slope).abs() <= 1e-9 * slope.abs(),
                "{loss:?}: {got} vs {slope}"
            );
            let naive = (mean(losses(loss, &zp, &labels)) - mean(losses(loss, &zm, &labels))) / eps;
            assert!(
                (naive - slope).abs() > 1e-6 * slope.abs(),
                "the naive difference is this good?"
            );
        }
    }

    #[test]
    fn steps_stay_below_a_quarter_of_the_kink_distance() {
        let grid = [1e-3, 1e-4, 1e-5, 1e-6];
        assert_eq!(kink_free_steps(&grid, f64::INFINITY), grid);
        assert_eq!(kink_free_steps(&grid, 1e-4), [1e-5, 1e-6]);
        assert_eq!(kink_free_steps(&grid, 4e-5), [1e-6]);
        assert_eq!(kink_free_steps(&grid, 4e-6), [1e-6, 2.5e-7]);
    }
}
