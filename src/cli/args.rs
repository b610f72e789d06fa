//! Options shared by several subcommands and their resolution into a spec, parameters, data and
//! a [`Net`] on them.
//!
//! A network is one of: a preset (`--preset fc-tanh`), a custom MLP (`--widths 200,200
//! --activation tanh [--input-dim 3072 --classes 10]`), or a checkpoint (`--params FILE`, which
//! carries its own spec). Fresh networks are initialised with [`init_params`] from `--seed`.
//!
//! A dataset is a CIFAR-10 name ([`DatasetName`], read from the data directory) or
//! `synthetic-N`: N seeded Gaussian-mixture examples ([`crate::data::synthetic`]) shaped to the
//! network (d = its input dimension, classes = its outputs; 3072 and 10 for the presets), which
//! needs no files.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::CliError;
use crate::data::{synthetic, DataDir, Dataset, DatasetName};
use crate::mlp::{Data, Net, NetConfig};
use crate::model::{init_params, load_checkpoint, Activation, Loss, MlpSpec, Params, Preset};
use crate::real::Real;

/// Input dimension of custom nets when `--input-dim` is not given (CIFAR-10: 3 × 32 × 32).
pub const DEFAULT_INPUT_DIM: usize = 3072;
/// Outputs of custom nets when `--classes` is not given (CIFAR-10).
pub const DEFAULT_CLASSES: usize = 10;

/// Floating-point precision of parameters and kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dtype {
    // Single precision: the fast path.
    F32,
    // Double precision: the verification path.
    F64,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The architecture of a fresh network: a preset or a custom MLP.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Model")]
pub struct SpecArgs {
    /// Named architecture: fc-tanh or fc-relu (3072-200-200-10 with tanh / relu)
    #[arg(long, value_name = "NAME", conflicts_with = "widths")]
    pub preset: Option<Preset>,

    /// Hidden-layer widths of a custom MLP, comma-separated (e.g. 200,200)
    #[arg(long, value_name = "W1,W2,...", value_delimiter = ',', num_args = 1)]
    pub widths: Option<Vec<usize>>,

    /// Hidden activation of a custom MLP: tanh, relu, softplus, gelu or linear [default: tanh]
    #[arg(long, value_name = "ACT", requires = "widths")]
    pub activation: Option<Activation>,

    /// Input dimension of a custom MLP [default: 3072]
    #[arg(long, value_name = "D", requires = "widths")]
    pub input_dim: Option<usize>,

    /// Number of outputs (classes) of a custom MLP [default: 10]
    #[arg(long, value_name = "C", requires = "widths")]
    pub classes: Option<usize>,
}

impl SpecArgs {
    /// The spec these options describe; `None` when neither `--preset` nor `--widths` is given.
    pub fn spec(&self) -> Result<Option<(MlpSpec, String)>, CliError> {
        if let Some(p) = self.preset {
            return Ok(Some((p.spec(), format!("preset {}", p.name()))));
        }
        let Some(widths) = &self.widths else {
            return Ok(None);
        };
        let spec = MlpSpec::new(
            self.input_dim.unwrap_or(DEFAULT_INPUT_DIM),
            widths,
            self.classes.unwrap_or(DEFAULT_CLASSES),
            self.activation.unwrap_or(Activation::Tanh),
        )?;
        Ok(Some((spec, "custom".to_string())))
    }
}

/// A network for `loss`, `sharpness` and `verify`: fresh (spec + seed) or from a checkpoint.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Model")]
pub struct ModelArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Seed of the PyTorch-default initialisation of a fresh network
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// Load the parameters (and the architecture) from a safetensors checkpoint instead
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["preset", "widths", "activation", "input_dim", "classes", "seed"]
    )]
    pub params: Option<PathBuf>,
}

/// Where a model's parameters came from, for printing.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// `init_params(spec, seed)`; `how` is `preset fc-tanh` or `custom`.
    Init { how: String, seed: u64 },
    /// A checkpoint file and the seed/step recorded in it.
    Checkpoint {
        path: PathBuf,
        seed: Option<u64>,
        step: Option<u64>,
    },
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Init { how, seed } => write!(f, "{how}, init seed {seed}"),
            ModelSource::Checkpoint { path, seed, step } => {
                write!(f, "checkpoint {}", path.display())?;
                if let Some(s) = seed {
                    write!(f, ", init seed {s}")?;
                }
                if let Some(s) = step {
                    write!(f, ", step {s}")?;
                }
                Ok(())
            }
        }
    }
}

impl ModelSource {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ModelSource::Init { how, seed } => {
                serde_json::json!({ "kind": "init", "how": how, "seed": seed })
            }
            ModelSource::Checkpoint { path, seed, step } => serde_json::json!({
                "kind": "checkpoint",
                "path": path.display().to_string(),
                "seed": seed,
                "step": step,
            }),
        }
    }
}

impl ModelArgs {
    /// The network's parameters in precision `T` and where they came from: the checkpoint of
    /// `--params` (cast to `T` if stored in the other precision), else `init_params(spec, seed)`
    /// for the preset or custom spec, else for the `default` preset.
    pub fn load<T: Real>(&self, default: Preset) -> Result<(Params<T>, ModelSource), CliError> {
        if let Some(path) = &self.params {
            let (params, meta) = load_checkpoint::<T>(path)?;
            return Ok((
                params,
                ModelSource::Checkpoint {
                    path: path.clone(),
                    seed: meta.seed,
                    step: meta.step,
                },
            ));
        }
        let (spec, how) = self
            .spec
            .spec()?
            .unwrap_or_else(|| (default.spec(), format!("preset {}", default.name())));
        Ok((
            init_params::<T>(&spec, self.seed),
            ModelSource::Init {
                how,
                seed: self.seed,
            },
        ))
    }
}

/// `--dataset`: a CIFAR-10 subset or a synthetic set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetChoice {
    Cifar(DatasetName),
    /// `synthetic-N`: N examples.
    Synthetic(usize),
}

impl FromStr for DatasetChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        if let Some(count) = lower.strip_prefix("synthetic-") {
            let (digits, mult) = match count.strip_suffix('k') {
                Some(d) => (d, 1000usize),
                None => (count, 1),
            };
            let n = digits
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_mul(mult))
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    format!(
                        "'{s}': the size of a synthetic set must be a positive count, e.g. \
                         synthetic-200 or synthetic-5k"
                    )
                })?;
            return Ok(DatasetChoice::Synthetic(n));
        }
        DatasetName::from_str(s)
            .map(DatasetChoice::Cifar)
            .map_err(|e| format!("{e}; or synthetic-<n> for seeded synthetic data"))
    }
}

impl fmt::Display for DatasetChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetChoice::Cifar(n) => write!(f, "{n}"),
            DatasetChoice::Synthetic(n) => write!(f, "synthetic-{n}"),
        }
    }
}

/// The data a network is evaluated on, and the loss.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Data")]
pub struct DataArgs {
    /// Dataset: a CIFAR-10 subset (cifar10-5k = first 5000 training images, cifar10-balanced-5k,
    /// cifar10-test, ...) or synthetic-N (N seeded synthetic examples shaped to the network;
    /// needs no files)
    #[arg(long, value_name = "NAME", default_value = "cifar10-5k")]
    pub dataset: DatasetChoice,

    /// Seed of synthetic-N data (ignored for CIFAR-10)
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub data_seed: u64,

    /// Loss: mse (half squared error to one-hot targets, the Figure-1 loss) or ce (cross-entropy)
    #[arg(long, value_name = "LOSS", default_value = "mse")]
    pub loss: Loss,
}

impl DataArgs {
    /// Load (or generate) the dataset for a network with `spec` and check their shapes agree.
    pub fn load(&self, dir: &DataDir, spec: &MlpSpec) -> Result<Dataset, CliError> {
        let ds = match self.dataset {
            DatasetChoice::Cifar(name) => name.load(dir)?,
            DatasetChoice::Synthetic(n) => {
                if spec.output_dim > 256 {
                    return Err(CliError::TooManySyntheticClasses {
                        spec: spec.describe(),
                        classes: spec.output_dim,
                    });
                }
                let mut ds = synthetic(n, spec.input_dim, spec.output_dim, self.data_seed);
                ds.name = format!("synthetic-{n} (seed {})", self.data_seed);
                ds
            }
        };
        check_shapes(&ds, spec)?;
        Ok(ds)
    }
}

/// The network must read `ds.d` features and produce `ds.classes` outputs.
pub fn check_shapes(ds: &Dataset, spec: &MlpSpec) -> Result<(), CliError> {
    if ds.d != spec.input_dim {
        return Err(CliError::InputDimMismatch {
            spec: spec.describe(),
            input_dim: spec.input_dim,
            dataset: ds.name.clone(),
            d: ds.d,
        });
    }
    if ds.classes != spec.output_dim {
        return Err(CliError::ClassesMismatch {
            spec: spec.describe(),
            output_dim: spec.output_dim,
            dataset: ds.name.clone(),
            classes: ds.classes,
        });
    }
    Ok(())
}

/// The dataset in the kernel precision `T` (f32 → f64 is exact).
pub fn to_data<T: Real>(ds: &Dataset) -> Data<T> {
    Data::new(ds.features::<T>(), ds.labels.clone(), ds.d, ds.classes)
}

/// The network, the data and the precision of `loss` and `sharpness`.
#[derive(Args, Clone, Debug)]
pub struct NetArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub data: DataArgs,

    /// Precision of parameters, data and kernels
    #[arg(long, value_enum, default_value_t = Dtype::F32, help_heading = "Precision")]
    pub dtype: Dtype,
}

impl NetArgs {
    /// [`load_net`] of these options in precision `T` (the caller dispatches on `dtype`).
    pub fn load<T: Real>(&self, dir: &DataDir) -> Result<LoadedNet<T>, CliError> {
        load_net(&self.model, &self.data, dir)
    }
}

/// A network ready to evaluate: its parameters and where they came from, the dataset, and the
/// [`Net`] of the parameters' spec and the chosen loss on that dataset.
pub struct LoadedNet<T> {
    pub params: Params<T>,
    pub source: ModelSource,
    pub ds: Dataset,
    /// Seconds spent reading (or generating) the dataset.
    pub data_seconds: f64,
    pub net: Net<T>,
}

/// Loads the parameters of `model` (the fc-tanh preset when no architecture is given), then the
/// dataset of `data` checked against their spec, and builds the network in precision `T` with
/// the default [`NetConfig`].
pub fn load_net<T: Real>(
    model: &ModelArgs,
    data: &DataArgs,
    dir: &DataDir,
) -> Result<LoadedNet<T>, CliError> {
    let (params, source) = model.load::<T>(Preset::FcTanh)?;
    let t = Instant::now();
    let ds = data.load(dir, &params.spec)?;
    let data_seconds = t.elapsed().as_secs_f64();
    let net = Net::new(
        &params.spec,
        data.loss,
        to_data::<T>(&ds),
        NetConfig::default(),
    );
    Ok(LoadedNet {
        params,
        source,
        ds,
        data_seconds,
        net,
    })
}
