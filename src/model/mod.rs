//! The model: MLP specification, flat parameter layout, activations, losses and initialization.
//!
//! `f(x) = W_L σ(… σ(W_1 x + b_1) …) + b_L`, bias in every layer, `W_l` is `h_l × h_{l−1}`
//! (PyTorch convention), stored row-major in one flat buffer (see [`Layout`]).

mod checkpoint;
mod init;
mod spec;

pub use checkpoint::{
    load_checkpoint, save_checkpoint, tensor_names, CheckpointError, CheckpointMeta,
    CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION,
};
pub use init::init_params;
pub use spec::{Activation, LayerSlot, Layout, Loss, MlpSpec, Params, Preset, SpecError};
