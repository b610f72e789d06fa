//! `eosbench loss`: full-batch loss and accuracy of a network on a dataset.

use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::args::{to_data, DataArgs, Dtype, ModelArgs};
use super::{key_values, CliError, Context, Output};
use crate::mlp::{Net, NetConfig};
use crate::model::Preset;
use crate::real::Real;

#[derive(Args, Clone, Debug)]
pub struct LossArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub data: DataArgs,

    /// Precision of parameters, data and kernels
    #[arg(long, value_enum, default_value_t = Dtype::F32, help_heading = "Precision")]
    pub dtype: Dtype,
}

pub fn loss(args: &LossArgs, ctx: &Context) -> Result<Output, CliError> {
    match args.dtype {
        Dtype::F32 => run::<f32>(args, ctx),
        Dtype::F64 => run::<f64>(args, ctx),
    }
}

fn run<T: Real>(args: &LossArgs, ctx: &Context) -> Result<Output, CliError> {
    let (params, source) = args.model.load::<T>(Preset::FcTanh)?;
    let spec = params.spec.clone();
    let t_load = Instant::now();
    let ds = args.data.load(&ctx.data_dir, &spec)?;
    let load_s = t_load.elapsed().as_secs_f64();
    let mut net = Net::new(
        &spec,
        args.data.loss,
        to_data::<T>(&ds),
        NetConfig::default(),
    );
    let t_eval = Instant::now();
    let ev = net.evaluate(&params.data, ctx.par);
    let eval_s = t_eval.elapsed().as_secs_f64();
    let p = spec.num_params();
    let text = key_values(&[
        ("dataset", ds.name.clone()),
        ("n", ds.n.to_string()),
        ("model", format!("{}, p = {p} ({source})", spec.describe())),
        ("loss fn", args.data.loss.to_string()),
        ("dtype", args.dtype.to_string()),
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
        "loss_fn": args.data.loss.name(),
        "dtype": args.dtype.name(),
        "loss": ev.loss,
        "accuracy": ev.accuracy,
        "seconds": eval_s,
        "data_seconds": load_s,
        "threads": ctx.threads,
        "kernel_path": ctx.kernel_path,
    });
    Ok(Output::ok(text, json))
}
