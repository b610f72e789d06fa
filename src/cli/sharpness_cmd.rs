//! `eosbench sharpness`: the top-k eigenvalues of the Hessian (or Gauss–Newton matrix) of the
//! training loss at a checkpoint or a fresh initialization, by block Lanczos.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::args::{Dtype, LoadedNet, NetArgs};
use super::{key_values, CliError, Context, Output};
use crate::eig::{LanczosParams, Status, Which};
use crate::hvp::{sharpness_gradient, top_eigenpairs};
use crate::mlp::Curvature;
use crate::par::Par;
use crate::real::Real;

/// Which curvature matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CurvatureArg {
    /// The Hessian of the training loss.
    Hessian,
    /// The Gauss–Newton matrix JᵀH_out J.
    Ggn,
}

impl From<CurvatureArg> for Curvature {
    fn from(c: CurvatureArg) -> Curvature {
        match c {
            CurvatureArg::Hessian => Curvature::Hessian,
            CurvatureArg::Ggn => Curvature::GaussNewton,
        }
    }
}

/// Which end of the spectrum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WhichArg {
    /// Largest algebraic (the sharpness)
    Largest,
    /// Largest magnitude
    Magnitude,
    /// Smallest algebraic
    Smallest,
}

/// The solver options of `sharpness` and `train` (under their own help heading each).
#[derive(Args, Clone, Debug)]
pub struct SolverArgs {
    /// Number of eigenvalues
    #[arg(short = 'k', long, default_value_t = 1)]
    pub k: usize,

    /// Block size of block Lanczos (1 = plain Lanczos)
    #[arg(long, default_value_t = 1)]
    pub block: usize,

    /// Relative tolerance: the residual ‖Hy − θy‖ ≤ tol·|θ| (sharpness; train with --stop
    /// residual or --tracker lanczos), or the certified eigenvalue error bound ≤ tol·θ (train
    /// with --stop bound, the default)
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,

    /// Cap on Hessian-vector products per solve
    #[arg(long, default_value_t = 300)]
    pub max_products: usize,

    /// Cap on stored basis vectors (memory: 2 × this × p × 8 bytes); thick restart beyond it
    #[arg(long, default_value_t = 32)]
    pub max_basis: usize,

    /// Seed of the random start block
    #[arg(long, default_value_t = 0)]
    pub solver_seed: u64,

    /// Curvature matrix
    #[arg(long, value_enum, default_value_t = CurvatureArg::Hessian)]
    pub curvature: CurvatureArg,
}

impl SolverArgs {
    /// The Lanczos settings of these options (largest algebraic eigenvalues), on `par`.
    pub fn lanczos(&self, par: Par) -> LanczosParams {
        LanczosParams {
            k: self.k,
            block: self.block,
            tol: self.tol,
            max_products: self.max_products,
            max_basis: self.max_basis,
            seed: self.solver_seed,
            par,
            ..Default::default()
        }
    }
}

#[derive(Args, Clone, Debug)]
// The shared `--dtype`, with what it means here. `mut_args` edits it in place; `mut_arg` would
// move it, and its help heading, to the end of the help.
#[command(mut_args(|a| if a.get_id() == "dtype" {
    a.help("Precision of parameters, data and kernels (Lanczos runs in f64 either way)")
} else {
    a
}))]
pub struct SharpnessArgs {
    #[command(flatten)]
    pub net: NetArgs,

    #[command(flatten, next_help_heading = "Solver")]
    pub solver: SolverArgs,

    /// Which eigenvalues
    #[arg(long, value_enum, default_value_t = WhichArg::Largest, help_heading = "Solver")]
    pub which: WhichArg,

    /// Also the sharpness gradient ∇S = ∇³L[u, u] at the top eigenvector u (one exact
    /// third-order product) and the self-stabilization coefficients α = −⟨∇L, ∇S⟩ (progressive
    /// sharpening) and β = ‖∇S‖² (Damian et al. 2022)
    #[arg(long, help_heading = "Output")]
    pub stability: bool,

    /// Save the Ritz vectors as a safetensors file (tensor "vectors", k × p, f64; with
    /// --stability also "sharpness_gradient", p, f64)
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub save_vectors: Option<PathBuf>,
}

pub fn sharpness(args: &SharpnessArgs, ctx: &Context) -> Result<Output, CliError> {
    match args.net.dtype {
        Dtype::F32 => run::<f32>(args, ctx),
        Dtype::F64 => run::<f64>(args, ctx),
    }
}

fn run<T: Real>(args: &SharpnessArgs, ctx: &Context) -> Result<Output, CliError> {
    let LoadedNet {
        params,
        source,
        ds,
        mut net,
        ..
    } = args.net.load::<T>(&ctx.data_dir)?;
    let spec = &params.spec;
    let t0 = Instant::now();
    let mut grad = vec![T::ZERO; spec.num_params()];
    let ev = net.gradient(&params.data, &mut grad, ctx.par);
    let grad_s = t0.elapsed().as_secs_f64();
    let lp = LanczosParams {
        which: match args.which {
            WhichArg::Largest => Which::LargestAlgebraic,
            WhichArg::Magnitude => Which::LargestMagnitude,
            WhichArg::Smallest => Which::SmallestAlgebraic,
        },
        ..args.solver.lanczos(ctx.par)
    };
    let curv = Curvature::from(args.solver.curvature);
    if args.stability && (curv != Curvature::Hessian || args.which != WhichArg::Largest) {
        return Err(CliError::StabilityNeedsTopHessian {
            asked: format!(
                "--curvature {} --which {}",
                args.solver
                    .curvature
                    .to_possible_value()
                    .expect("listed")
                    .get_name(),
                args.which.to_possible_value().expect("listed").get_name()
            ),
        });
    }
    let s = top_eigenpairs(&mut net, curv, &lp, None)?;
    let r = &s.result;
    let p = spec.num_params();
    // ∇S at the top Ritz vector, with α = −⟨∇L, ∇S⟩ and β = ‖∇S‖².
    let stability = args.stability.then(|| {
        let t = Instant::now();
        let gs = sharpness_gradient(&mut net, &r.vectors[..p], ctx.par);
        let seconds = t.elapsed().as_secs_f64();
        let alpha = -grad
            .iter()
            .zip(&gs)
            .map(|(g, s)| g.to_f64() * s)
            .sum::<f64>();
        let beta = gs.iter().map(|s| s * s).sum::<f64>();
        (gs, alpha, beta, seconds)
    });
    if let Some(path) = &args.save_vectors {
        let gs = stability.as_ref().map(|(gs, ..)| gs.as_slice());
        save_vectors(path, &r.vectors, r.values.len(), p, gs)?;
    }
    let status = match r.status {
        Status::Converged => r.status.name().to_string(),
        Status::MaxProducts => format!("{} (best estimate)", r.status.name()),
        Status::Breakdown => format!("{} (invariant subspace)", r.status.name()),
    };
    let mut text = key_values(&[
        ("dataset", format!("{} (n = {})", ds.name, ds.n)),
        ("model", format!("{}, p = {p} ({source})", spec.describe())),
        (
            "loss",
            format!(
                "{} = {:.9}, accuracy {:.4}",
                args.net.data.loss, ev.loss, ev.accuracy
            ),
        ),
        (
            "operator",
            format!(
                "{:?}, {} kernels, first-layer GEMM: {}",
                curv,
                args.net.dtype,
                net.first_layer_gemm()
            ),
        ),
        (
            "solver",
            format!(
                "block Lanczos b = {}, tol {:.0e}, {status}",
                args.solver.block, args.solver.tol
            ),
        ),
        (
            "products",
            format!(
                "{} ({} iterations, {} restarts)",
                r.products, r.iterations, r.restarts
            ),
        ),
        (
            "seconds",
            format!(
                "{:.3} solve ({:.3} in products, {:.1} ms/product), {grad_s:.3} gradient",
                s.seconds,
                s.product_seconds,
                1e3 * s.product_seconds / r.products.max(1) as f64
            ),
        ),
        ("threads", ctx.describe_threads()),
    ]);
    text.push_str("\n  i        lambda    residual   rel. residual\n");
    for (i, (v, res)) in r.values.iter().zip(&r.residuals).enumerate() {
        text.push_str(&format!(
            "{:>3}  {v:>12.6}  {res:>10.3e}  {:>14.3e}\n",
            i + 1,
            res / v.abs().max(f64::MIN_POSITIVE)
        ));
    }
    if let Some((_, alpha, beta, secs)) = &stability {
        text.push_str(&format!(
            "stability: |∇S| = {:.6e}, α = −<∇L,∇S> = {alpha:.6e}, β = |∇S|² = {beta:.6e} \
             (one third-order product, {secs:.3} s)\n",
            beta.sqrt()
        ));
    }
    if let Some(path) = &args.save_vectors {
        text.push_str(&format!("vectors: {}\n", path.display()));
    }
    let stability_json = stability.as_ref().map(|(_, alpha, beta, secs)| {
        json!({ "grad_s_norm": beta.sqrt(), "alpha": alpha, "beta": beta, "seconds": secs })
    });
    let json = json!({
        "dataset": ds.name, "n": ds.n, "spec": spec, "describe": spec.describe(), "p": p,
        "model": source.to_json(), "loss_fn": args.net.data.loss.name(), "loss": ev.loss,
        "accuracy": ev.accuracy, "dtype": args.net.dtype.name(),
        "curvature": format!("{curv:?}"), "k": args.solver.k, "block": args.solver.block, "tol": args.solver.tol,
        "values": r.values, "residuals": r.residuals, "status": r.status.name(),
        "products": r.products, "iterations": r.iterations, "restarts": r.restarts,
        "seconds": s.seconds, "product_seconds": s.product_seconds, "gradient_seconds": grad_s,
        "threads": ctx.threads, "kernel_path": ctx.kernel_path,
        "first_layer_gemm": net.first_layer_gemm(), "stability": stability_json,
    });
    Ok(Output::ok(text, json))
}

/// Writes the `k` Ritz vectors (`p × k` column-major = `k × p` row-major) as tensor `vectors`,
/// and the sharpness gradient (`p`) as tensor `sharpness_gradient` when given.
fn save_vectors(
    path: &std::path::Path,
    v: &[f64],
    k: usize,
    p: usize,
    grad_s: Option<&[f64]>,
) -> Result<(), CliError> {
    let err =
        |e: safetensors::SafeTensorError| CliError::Output(std::io::Error::other(e.to_string()));
    let le = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let (vb, gb) = (le(v), grad_s.map(le));
    let mut tensors = vec![(
        "vectors",
        safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![k, p], &vb)
            .map_err(err)?,
    )];
    if let Some(gb) = &gb {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![p], gb);
        tensors.push(("sharpness_gradient", view.map_err(err)?));
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "eosbench-ritz-vectors".to_string());
    let out = safetensors::serialize(tensors, Some(meta)).map_err(err)?;
    crate::report::atomic_write(path, &out).map_err(CliError::Output)
}
