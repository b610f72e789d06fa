use crate::real::Real;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Hidden-layer nonlinearity. The output layer is always linear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    Relu,
    Softplus,
    /// The exact (erf) GELU, PyTorch's `nn.GELU()` default.
    Gelu,
    Linear,
}

impl Activation {
    pub const ALL: [Activation; 5] = [
        Activation::Tanh,
        Activation::Relu,
        Activation::Softplus,
        Activation::Gelu,
        Activation::Linear,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Softplus => "softplus",
            Activation::Gelu => "gelu",
            Activation::Linear => "linear",
        }
    }
    /// The PyTorch module name used in checkpoint metadata (`nn.Tanh`, …).
    pub fn torch_module(self) -> &'static str {
        match self {
            Activation::Tanh => "Tanh",
            Activation::Relu => "ReLU",
            Activation::Softplus => "Softplus",
            Activation::Gelu => "GELU",
            Activation::Linear => "Identity",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s.to_ascii_lowercase())
            .ok_or_else(|| SpecError::UnknownActivation(s.to_string()))
    }
}

/// Training loss, averaged over examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// `(1/n) Σ_i ½ ‖f(x_i) − e_{y_i}‖²` with one-hot targets (the Figure-1 loss).
    Mse,
    /// `(1/n) Σ_i −log softmax(f(x_i))_{y_i}`.
    Ce,
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::Ce => "ce",
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s.to_ascii_lowercase().as_str() {
            "mse" => Ok(Loss::Mse),
            "ce" | "cross-entropy" | "crossentropy" => Ok(Loss::Ce),
            _ => Err(SpecError::UnknownLoss(s.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("unknown activation '{0}' (expected one of: tanh, relu, softplus, gelu, linear)")]
    UnknownActivation(String),
    #[error("unknown loss '{0}' (expected mse or ce)")]
    UnknownLoss(String),
    #[error("unknown preset '{0}' (expected one of: fc-tanh, fc-relu)")]
    UnknownPreset(String),
    #[error("invalid layer widths: {0}")]
    BadWidths(String),
}

/// Shape of an MLP: input dimension, hidden widths, output dimension, activation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpSpec {
    pub input_dim: usize,
    pub hidden: Vec<usize>,
    pub output_dim: usize,
    pub activation: Activation,
}

/// Named architectures of the EoS papers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// 3072-200-200-10, tanh: the Figure-1 network.
    FcTanh,
    /// 3072-200-200-10, relu.
    FcRelu,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::FcTanh => "fc-tanh",
            Preset::FcRelu => "fc-relu",
        }
    }
    pub fn spec(self) -> MlpSpec {
        let act = match self {
            Preset::FcTanh => Activation::Tanh,
            Preset::FcRelu => Activation::Relu,
        };
        MlpSpec::new(3072, &[200, 200], 10, act).expect("preset widths are valid")
    }
}

impl FromStr for Preset {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "fc-tanh" => Ok(Preset::FcTanh),
            "fc-relu" => Ok(Preset::FcRelu),
            _ => Err(SpecError::UnknownPreset(s.to_string())),
        }
    }
}

impl MlpSpec {
    pub fn new(
        input_dim: usize,
        hidden: &[usize],
        output_dim: usize,
        activation: Activation,
    ) -> Result<Self, SpecError> {
        if input_dim == 0 || output_dim == 0 || hidden.contains(&0) {
            return Err(SpecError::BadWidths(format!(
                "every width must be positive, got {input_dim}-{}-{output_dim}",
                hidden
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            )));
        }
        Ok(MlpSpec {
            input_dim,
            hidden: hidden.to_vec(),
            output_dim,
            activation,
        })
    }

    /// `[d, h_1, …, h_{L−1}, out]`.
    pub fn dims(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.hidden.len() + 2);
        v.push(self.input_dim);
        v.extend_from_slice(&self.hidden);
        v.push(self.output_dim);
        v
    }

    /// Number of affine layers `L`.
    pub fn num_layers(&self) -> usize {
        self.hidden.len() + 1
    }

    pub fn layout(&self) -> Layout {
        Layout::new(&self.dims())
    }

    pub fn num_params(&self) -> usize {
        self.layout().len
    }

    /// `3072-200-200-10 tanh`.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.dims().iter().map(|d| d.to_string()).collect();
        format!("{} {}", dims.join("-"), self.activation)
    }
}

/// Where layer `l`'s weight (`rows × cols` = `h_l × h_{l−1}`, row-major) and bias live in the
/// flat parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSlot {
    pub w_off: usize,
    pub b_off: usize,
    /// Output width `h_l`.
    pub rows: usize,
    /// Input width `h_{l−1}`.
    pub cols: usize,
}

impl LayerSlot {
    pub fn w_len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn w_range(&self) -> std::ops::Range<usize> {
        self.w_off..self.w_off + self.w_len()
    }
    pub fn b_range(&self) -> std::ops::Range<usize> {
        self.b_off..self.b_off + self.rows
    }
}

/// Flat layout `[W_1, b_1, W_2, b_2, …]`, the order of PyTorch's `parameters()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub layers: Vec<LayerSlot>,
    pub len: usize,
}

impl Layout {
    pub fn new(dims: &[usize]) -> Layout {
        let mut layers = Vec::with_capacity(dims.len().saturating_sub(1));
        let mut off = 0;
        for w in dims.windows(2) {
            let (cols, rows) = (w[0], w[1]);
            let w_off = off;
            let b_off = w_off + rows * cols;
            off = b_off + rows;
            layers.push(LayerSlot {
                w_off,
                b_off,
                rows,
                cols,
            });
        }
        Layout { layers, len: off }
    }
}

/// Parameters of an MLP in one flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<T> {
    pub spec: MlpSpec,
    pub layout: Layout,
    pub data: Vec<T>,
}

impl<T: Real> Params<T> {
    pub fn zeros(spec: &MlpSpec) -> Self {
        let layout = spec.layout();
        let data = vec![T::ZERO; layout.len];
        Params {
            spec: spec.clone(),
            layout,
            data,
        }
    }

    pub fn from_vec(spec: &MlpSpec, data: Vec<T>) -> Self {
        let layout = spec.layout();
        assert_eq!(data.len(), layout.len, "parameter vector length");
        Params {
            spec: spec.clone(),
            layout,
            data,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn weight(&self, l: usize) -> &[T] {
        &self.data[self.layout.layers[l].w_range()]
    }

    pub fn bias(&self, l: usize) -> &[T] {
        &self.data[self.layout.layers[l].b_range()]
    }

    /// The same parameters in another precision.
    pub fn cast<U: Real>(&self) -> Params<U> {
        Params {
            spec: self.spec.clone(),
            layout: self.layout.clone(),
            data: self.data.iter().map(|&x| U::from_f64(x.to_f64())).collect(),
        }
    }
}
