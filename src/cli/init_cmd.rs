//! `eosbench init`: write the PyTorch-default initial parameters of a network to a safetensors
//! checkpoint (metadata: spec, seed), and print what was written.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use serde_json::json;

use super::args::{Dtype, SpecArgs};
use super::{key_values, CliError, Output};
use crate::model::{init_params, save_checkpoint, CheckpointMeta, MlpSpec};
use crate::real::Real;

#[derive(Args, Clone, Debug)]
#[command(group(ArgGroup::new("arch").args(["preset", "widths"]).required(true)))]
pub struct InitArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Seed of the PyTorch-default initialisation (U(-1/sqrt(fan_in), 1/sqrt(fan_in)))
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// Checkpoint file to write (safetensors; parent directories are created)
    #[arg(long, value_name = "FILE", help_heading = "Checkpoint")]
    pub out: PathBuf,

    /// Precision of the stored tensors
    #[arg(long, value_enum, default_value_t = Dtype::F32, help_heading = "Checkpoint")]
    pub dtype: Dtype,
}

pub fn init(args: &InitArgs) -> Result<Output, CliError> {
    // The `arch` group makes clap reject a call without --preset or --widths.
    let (spec, how) = args.spec.spec()?.ok_or(CliError::NoArchitecture)?;
    match args.dtype {
        Dtype::F32 => write::<f32>(&spec, args),
        Dtype::F64 => write::<f64>(&spec, args),
    }?;
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).ok();
    let p = spec.num_params();
    let text = key_values(&[
        ("wrote", args.out.display().to_string()),
        ("model", format!("{}, p = {p} ({how})", spec.describe())),
        ("dtype", args.dtype.to_string()),
        ("seed", args.seed.to_string()),
        (
            "bytes",
            bytes.map_or_else(|| "?".to_string(), |b| b.to_string()),
        ),
    ]);
    let json = json!({
        "path": args.out.display().to_string(),
        "spec": spec,
        "describe": spec.describe(),
        "source": how,
        "p": p,
        "dtype": args.dtype.name(),
        "seed": args.seed,
        "bytes": bytes,
    });
    Ok(Output::ok(text, json))
}

fn write<T: Real>(spec: &MlpSpec, args: &InitArgs) -> Result<(), CliError> {
    let params = init_params::<T>(spec, args.seed);
    let mut meta = CheckpointMeta::new(spec.clone());
    meta.seed = Some(args.seed);
    save_checkpoint(&args.out, &params, &meta)?;
    Ok(())
}
