//! `eosbench ops`: the single operations (loss, gradient, curvature product, one estimate, a
//! tracked step) timed on one network and data set, with the check values a peer implementation
//! must reproduce (`crate::sweep::ops`). `--json` writes the report `scripts/peers/` merges with
//! the PyTorch and JAX reports of the same schema.

use clap::Args;
use serde_json::json;

use super::args::{Dtype, LoadedNet, NetArgs};
use super::{CliError, Context, Output};
use crate::real::Real;
use crate::report::build_info;
use crate::sweep::ops::{measure_ops, OpsSettings};

#[derive(Args, Clone, Debug)]
pub struct OpsArgs {
    #[command(flatten)]
    pub net: NetArgs,

    /// Timed calls per operation (after one untimed call)
    #[arg(long, default_value_t = 10)]
    pub reps: usize,

    /// Step size of the tracked steps
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,

    /// Residual tolerance of `estimate` and the tracked steps
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,

    /// Residual tolerance of `estimate_reference` (the top two eigenvalues)
    #[arg(long, default_value_t = 1e-5)]
    pub tol_reference: f64,

    /// Only these operations (loss, gradient, hvp, estimate, estimate_reference, tracked_step,
    /// tracked_step_history) [default: all]
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub ops: Vec<String>,
}

pub fn ops(args: &OpsArgs, ctx: &Context) -> Result<Output, CliError> {
    match args.net.dtype {
        Dtype::F32 => run::<f32>(args, ctx),
        Dtype::F64 => run::<f64>(args, ctx),
    }
}

fn run<T: Real>(args: &OpsArgs, ctx: &Context) -> Result<Output, CliError> {
    if args.reps == 0 {
        return Err(CliError::Sweep(
            "--reps 0 times nothing: use --reps ≥ 1".into(),
        ));
    }
    let LoadedNet {
        params,
        source,
        ds,
        mut net,
        ..
    } = args.net.load::<T>(&ctx.data_dir)?;
    let settings = OpsSettings {
        reps: args.reps,
        lr: args.lr,
        tol: args.tol,
        tol_reference: args.tol_reference,
        only: args.ops.clone(),
    };
    let r = measure_ops(&mut net, &params.data, &settings, ctx.par).map_err(|e| {
        CliError::Sweep(format!("ops on {} ({source}): {e}", params.spec.describe()))
    })?;
    let build = build_info();
    let network = params.spec.describe();
    let mut text = format!(
        "{network} on {} (n = {}), {}, {} thread(s), {source}\n\
         check: loss {:.9} |grad| {:.9} <v,Hv> {:.6} sharpness {}\n\
         operation             median ms   p10 ms     p90 ms     first ms   products\n",
        ds.name,
        ds.n,
        args.net.dtype.name(),
        ctx.threads,
        r.check.loss,
        r.check.grad_norm,
        r.check.vhv,
        r.check.sharpness.map_or("–".into(), |x| format!("{x:.6}"))
    );
    for (name, o) in &r.ops {
        text.push_str(&format!(
            "{name:<21} {:<11.2} {:<10.2} {:<10.2} {:<10.2} {}\n",
            o.median_ms,
            o.p10_ms,
            o.p90_ms,
            o.first_call_ms,
            o.products.map_or("–".into(), |p| format!("{p}"))
        ));
    }
    let json = json!({
        "impl": "eosbench",
        "versions": {
            "eosbench": build.version, "git_revision": build.git_revision,
            "rustc": build.rustc_version,
        },
        "threads": ctx.threads,
        "dtype": args.net.dtype.name(),
        "network": network,
        "dataset": ds.name,
        "n": ds.n,
        "params": source.to_json(),
        "kernel_path": ctx.kernel_path,
        "first_layer_gemm": net.first_layer_gemm(),
        "notes": [
            "hvp: one product at the point of the last gradient (forward state cached, as in the solvers)",
            "estimate: cold Lanczos, largest algebraic, k = 1; estimate_reference: k = 2",
            "tracked_step_history: median step of a window tracked every step by the history tracker",
        ],
        "check": r.check,
        "ops": r.ops,
    });
    Ok(Output::ok(text, json))
}
