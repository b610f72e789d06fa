//! `eosbench loss`: full-batch loss and accuracy of a network on a dataset.

use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::args::{Dtype, LoadedNet, NetArgs};
use super::{key_values, CliError, Context, Output};
use crate::real::Real;

#[derive(Args, Clone, Debug)]
pub struct LossArgs {
    #[command(flatten)]
    pub net: NetArgs,
}

pub fn loss(args: &LossArgs, ctx: &Context) -> Result<Output, CliError> {
    match args.net.dtype {
        Dtype::F32 => run::<f32>(args, ctx),
        Dtype::F64 => run::<f64>(args, ctx),
    }
}

fn run<T: Real>(args: &LossArgs, ctx: &Context) -> Result<Output, CliError> {
    let LoadedNet {
        params,
        source,
        ds,
        data_seconds: load_s,
        mut net,
    } = args.net.load::<T>(&ctx.data_dir)?;
    let spec = &params.spec;
    let t_eval = Instant::now();
    let ev = net.evaluate(&params.data, ctx.par);
    let eval_s = t_eval.elapsed().as_secs_f64();
    let p = spec.num_params();
    let text = key_values(&[
        ("dataset", ds.name.clone()),
        ("n", ds.n.to_string()),
        ("model", format!("{}, p = {p} ({source})", spec.describe())),
        ("loss fn", args.net.data.loss.to_string()),
        (
            "dtype",
            format!(
                "{} (first-layer GEMM: {})",
                args.net.dtype,
                net.first_layer_gemm()
            ),
        ),
        ("loss", format!("{}", ev.loss)),
        ("accuracy", format!("{:.4}", ev.accuracy)),
        (
            "seconds",
            format!("{eval_s:.3} (evaluation), {load_s:.3} (data)"),
        ),
        ("threads", ctx.describe_threads()),
    ]);
    let json = json!({
        "dataset": ds.name,
        "n": ds.n,
        "d": ds.d,
        "classes": ds.classes,
        "spec": spec,
        "describe": spec.describe(),
        "model": source.to_json(),
        "p": p,
        "loss_fn": args.net.data.loss.name(),
        "dtype": args.net.dtype.name(),
        "loss": ev.loss,
        "accuracy": ev.accuracy,
        "seconds": eval_s,
        "data_seconds": load_s,
        "threads": ctx.threads,
        "kernel_path": ctx.kernel_path,
        "first_layer_gemm": net.first_layer_gemm(),
    });
    Ok(Output::ok(text, json))
}
