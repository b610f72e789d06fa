//! Checkpoints in the safetensors format, named and shaped like the PyTorch `state_dict` of
//!
//! ```text
//! nn.Sequential(nn.Flatten(), nn.Linear(d, h_1), act, nn.Linear(h_1, h_2), act, …, nn.Linear(h_{L−1}, out))
//! ```
//!
//! so `model.load_state_dict(safetensors.torch.load_file(path))` works directly. Module 0 is the
//! `Flatten` and the activations sit at even indices, so linear layer `l` (0-based) is module
//! `2l + 1` and its tensors are `{2l+1}.weight` with shape `[h_l, h_{l−1}]` (rows × cols,
//! row-major, exactly [`LayerSlot`](super::LayerSlot)'s storage) and `{2l+1}.bias` with shape
//! `[h_l]`. For fc-tanh:
//! `1.weight` [200, 3072], `1.bias` [200], `3.weight` [200, 200], `3.bias` [200],
//! `5.weight` [10, 200], `5.bias` [10].
//!
//! Dtype is `F32` for `Params<f32>` and `F64` for `Params<f64>`; data is little-endian, as the
//! format requires. Loading into the other precision casts each value: f32 → f64 is exact,
//! f64 → f32 rounds to nearest (IEEE), so only a same-precision round trip is bit-exact.
//!
//! The string→string `__metadata__` map holds `format = "eosbench"`, `format_version = "1"`,
//! `spec` (the [`MlpSpec`] as JSON — the source of truth on load), `dims` (`3072-200-200-10`),
//! `activation` (`tanh`), `torch_activation` (`Tanh`, the `nn` module to rebuild the model),
//! `dtype`, `seed` and `step` (when known), and each user entry of
//! [`CheckpointMeta::extra`] as `extra.<key>`.
//!
//! Writes are atomic ([`crate::report::atomic_write`]): a crash never leaves a torn checkpoint.

use super::{MlpSpec, Params};
use crate::real::Real;
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

/// Value of the `format` metadata key.
pub const CHECKPOINT_FORMAT: &str = "eosbench";
/// Value of the `format_version` metadata key.
pub const CHECKPOINT_FORMAT_VERSION: &str = "1";
const EXTRA_PREFIX: &str = "extra.";

/// What a checkpoint records besides the tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointMeta {
    pub spec: MlpSpec,
    /// Initialization seed, when the parameters came from [`init_params`](super::init_params).
    pub seed: Option<u64>,
    /// GD step at which the parameters were saved.
    pub step: Option<u64>,
    /// Free-form annotations (learning rate, loss, dataset, …).
    pub extra: BTreeMap<String, String>,
}

impl CheckpointMeta {
    pub fn new(spec: MlpSpec) -> Self {
        CheckpointMeta {
            spec,
            seed: None,
            step: None,
            extra: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint '{path}' does not exist (check the path, or save one first)")]
    NotFound { path: PathBuf },
    #[error("I/O error on checkpoint '{path}': {source} (check the path and its permissions)")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("'{path}' is not a valid safetensors file ({source}); it is truncated, corrupt or another format — re-save it")]
    NotSafetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },
    #[error("checkpoint '{path}' has no tensor '{tensor}' (it was saved for a different network, or is not an eosbench/PyTorch MLP checkpoint)")]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("checkpoint '{path}' has an unexpected tensor '{tensor}' for spec {spec} (the file and its 'spec' metadata disagree — re-save it)")]
    UnexpectedTensor {
        path: PathBuf,
        tensor: String,
        spec: String,
    },
    #[error("tensor '{tensor}' in checkpoint '{path}' has shape {found:?}, expected {expected:?} for spec {spec}")]
    WrongShape {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
        spec: String,
    },
    #[error("tensor '{tensor}' in checkpoint '{path}' has dtype {dtype}; only F32 and F64 are supported (convert it with `tensor.float()` or `.double()` in PyTorch)")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("checkpoint '{path}' has no 'spec' in its __metadata__ (it was not written by eosbench; add metadata[\"spec\"] = '{{\"input_dim\":…,\"hidden\":[…],\"output_dim\":…,\"activation\":\"tanh\"}}')")]
    MissingSpec { path: PathBuf },
    #[error("checkpoint '{path}' has an invalid metadata entry '{key}': {reason}")]
    BadMetadata {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("cannot encode checkpoint '{path}': {reason}")]
    Encode { path: PathBuf, reason: String },
}

/// PyTorch `state_dict` names of linear layer `l`: (`{2l+1}.weight`, `{2l+1}.bias`).
pub fn tensor_names(layer: usize) -> (String, String) {
    let m = 2 * layer + 1;
    (format!("{m}.weight"), format!("{m}.bias"))
}

/// An owned tensor handed to the safetensors serializer.
struct OwnedTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &OwnedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Little-endian bytes of `xs` in `T`'s own precision (F32 for f32; F64 otherwise — every
/// [`Real`] converts to f64 exactly).
fn encode<T: Real>(xs: &[T]) -> (Dtype, Vec<u8>) {
    if T::NAME == "f32" {
        // x is an f32, so the round trip through f64 is exact.
        let bytes = xs
            .iter()
            .flat_map(|x| (x.to_f64() as f32).to_le_bytes())
            .collect();
        (Dtype::F32, bytes)
    } else {
        let bytes = xs.iter().flat_map(|x| x.to_f64().to_le_bytes()).collect();
        (Dtype::F64, bytes)
    }
}

/// Builds the `__metadata__` map.
fn metadata_map<T: Real>(meta: &CheckpointMeta) -> Result<HashMap<String, String>, String> {
    let spec = &meta.spec;
    let mut m = HashMap::new();
    m.insert("format".into(), CHECKPOINT_FORMAT.into());
    m.insert("format_version".into(), CHECKPOINT_FORMAT_VERSION.into());
    m.insert(
        "spec".into(),
        serde_json::to_string(spec).map_err(|e| e.to_string())?,
    );
    let dims: Vec<String> = spec.dims().iter().map(|d| d.to_string()).collect();
    m.insert("dims".into(), dims.join("-"));
    m.insert("activation".into(), spec.activation.name().into());
    m.insert(
        "torch_activation".into(),
        spec.activation.torch_module().into(),
    );
    m.insert(
        "dtype".into(),
        if T::NAME == "f32" { "F32" } else { "F64" }.into(),
    );
    if let Some(s) = meta.seed {
        m.insert("seed".into(), s.to_string());
    }
    if let Some(s) = meta.step {
        m.insert("step".into(), s.to_string());
    }
    for (k, v) in &meta.extra {
        m.insert(format!("{EXTRA_PREFIX}{k}"), v.clone());
    }
    Ok(m)
}

/// Saves `params` with `meta` to `path` (conventionally `*.safetensors`), atomically; parent
/// directories are created. The tensors are shaped for `meta.spec`, which must describe
/// `params` (an `Encode` error otherwise).
pub fn save_checkpoint<T: Real>(
    path: &Path,
    params: &Params<T>,
    meta: &CheckpointMeta,
) -> Result<(), CheckpointError> {
    let encode_err = |reason: String| CheckpointError::Encode {
        path: path.to_path_buf(),
        reason,
    };
    if meta.spec != params.spec {
        return Err(encode_err(format!(
            "metadata spec {} differs from the parameters' spec {}",
            meta.spec.describe(),
            params.spec.describe()
        )));
    }
    let layout = meta.spec.layout();
    if params.data.len() != layout.len {
        return Err(encode_err(format!(
            "parameter buffer has {} values, spec {} needs {}",
            params.data.len(),
            meta.spec.describe(),
            layout.len
        )));
    }
    let mut tensors = Vec::with_capacity(2 * layout.layers.len());
    for (l, slot) in layout.layers.iter().enumerate() {
        let (wn, bn) = tensor_names(l);
        let (dtype, bytes) = encode(&params.data[slot.w_range()]);
        tensors.push((
            wn,
            OwnedTensor {
                dtype,
                shape: vec![slot.rows, slot.cols],
                bytes,
            },
        ));
        let (dtype, bytes) = encode(&params.data[slot.b_range()]);
        tensors.push((
            bn,
            OwnedTensor {
                dtype,
                shape: vec![slot.rows],
                bytes,
            },
        ));
    }
    let md = metadata_map::<T>(meta).map_err(encode_err)?;
    let bytes = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(md))
        .map_err(|e| encode_err(e.to_string()))?;
    crate::report::atomic_write(path, &bytes).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Decodes little-endian `N`-byte values into `out`, casting each through f64 to `T` (see the
/// module docs for the precision rules).
fn decode_into<T: Real, const N: usize>(bytes: &[u8], out: &mut [T], to_f64: fn([u8; N]) -> f64) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(N)) {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        *o = T::from_f64(to_f64(a));
    }
}

/// Loads a checkpoint written by [`save_checkpoint`] (or by PyTorch, given an eosbench `spec`
/// in its metadata) into `Params<T>`, casting from the stored precision when it differs.
///
/// Every tensor the spec needs must be present with the right shape and dtype F32/F64, and no
/// other tensors may be present.
pub fn load_checkpoint<T: Real>(
    path: &Path,
) -> Result<(Params<T>, CheckpointMeta), CheckpointError> {
    let p = || path.to_path_buf();
    let buf = std::fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            CheckpointError::NotFound { path: p() }
        } else {
            CheckpointError::Io { path: p(), source }
        }
    })?;
    let not_st = |source| CheckpointError::NotSafetensors { path: p(), source };
    let (_, header) = SafeTensors::read_metadata(&buf).map_err(not_st)?;
    let st = SafeTensors::deserialize(&buf).map_err(not_st)?;
    let empty = HashMap::new();
    let md = header.metadata().as_ref().unwrap_or(&empty);

    let bad = |key: &str, reason: String| CheckpointError::BadMetadata {
        path: p(),
        key: key.to_string(),
        reason,
    };
    let spec_json = md
        .get("spec")
        .ok_or_else(|| CheckpointError::MissingSpec { path: p() })?;
    let spec: MlpSpec = serde_json::from_str(spec_json)
        .map_err(|e| bad("spec", format!("not an MlpSpec JSON object: {e}")))?;
    let spec = MlpSpec::new(
        spec.input_dim,
        &spec.hidden,
        spec.output_dim,
        spec.activation,
    )
    .map_err(|e| bad("spec", e.to_string()))?;
    let parse_u64 = |key: &str| -> Result<Option<u64>, CheckpointError> {
        md.get(key)
            .map(|s| {
                s.parse::<u64>()
                    .map_err(|e| bad(key, format!("'{s}' is not an unsigned integer: {e}")))
            })
            .transpose()
    };
    let seed = parse_u64("seed")?;
    let step = parse_u64("step")?;
    let extra: BTreeMap<String, String> = md
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(EXTRA_PREFIX)?.to_string(), v.clone())))
        .collect();

    let mut params = Params::<T>::zeros(&spec);
    let mut expected = std::collections::HashSet::new();
    for (l, slot) in params.layout.layers.clone().iter().enumerate() {
        let (wn, bn) = tensor_names(l);
        for (name, shape, range) in [
            (wn, vec![slot.rows, slot.cols], slot.w_range()),
            (bn, vec![slot.rows], slot.b_range()),
        ] {
            let view = st
                .tensor(&name)
                .map_err(|_| CheckpointError::MissingTensor {
                    path: p(),
                    tensor: name.clone(),
                })?;
            if view.shape() != shape.as_slice() {
                return Err(CheckpointError::WrongShape {
                    path: p(),
                    tensor: name,
                    expected: shape,
                    found: view.shape().to_vec(),
                    spec: spec.describe(),
                });
            }
            // The shape matches and safetensors validated offsets against shape × dtype size,
            // so the byte count is exactly range.len() elements.
            let out = &mut params.data[range];
            match view.dtype() {
                Dtype::F32 => {
                    decode_into::<T, 4>(view.data(), out, |b| f64::from(f32::from_le_bytes(b)))
                }
                Dtype::F64 => decode_into::<T, 8>(view.data(), out, f64::from_le_bytes),
                other => {
                    return Err(CheckpointError::UnsupportedDtype {
                        path: p(),
                        tensor: name,
                        dtype: format!("{other:?}"),
                    })
                }
            }
            expected.insert(name);
        }
    }
    let mut names = st.names();
    names.sort_unstable();
    if let Some(extra_tensor) = names.into_iter().find(|n| !expected.contains(*n)) {
        return Err(CheckpointError::UnexpectedTensor {
            path: p(),
            tensor: extra_tensor.to_string(),
            spec: spec.describe(),
        });
    }
    Ok((
        params,
        CheckpointMeta {
            spec,
            seed,
            step,
            extra,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{init_params, Activation, Preset};
    use crate::report::test_util::TempDir;

    fn small_spec() -> MlpSpec {
        MlpSpec::new(5, &[4, 3], 2, Activation::Relu).unwrap()
    }

    fn meta_for(spec: &MlpSpec) -> CheckpointMeta {
        let mut m = CheckpointMeta::new(spec.clone());
        m.seed = Some(u64::MAX - 7);
        m.step = Some(1234);
        m.extra.insert("lr".into(), "0.02".into());
        m.extra
            .insert("data set".into(), "cifar10-5k, \"first\" 5000".into());
        m
    }

    fn bits<T: Real>(xs: &[T]) -> Vec<u64> {
        xs.iter().map(|x| x.to_f64().to_bits()).collect()
    }

    /// (name, dtype, shape, little-endian bytes)
    type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

    /// Writes a safetensors file directly (bypassing `save_checkpoint`) for the error cases.
    fn write_raw(
        path: &Path,
        tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>,
        md: Option<HashMap<String, String>>,
    ) {
        let owned: Vec<(String, OwnedTensor)> = tensors
            .into_iter()
            .map(|(n, dtype, shape, bytes)| {
                (
                    n.to_string(),
                    OwnedTensor {
                        dtype,
                        shape,
                        bytes,
                    },
                )
            })
            .collect();
        let bytes = safetensors::serialize(owned.iter().map(|(n, t)| (n.as_str(), t)), md).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The raw tensors and metadata of a valid small f64 checkpoint, to be edited by tests.
    fn valid_parts(spec: &MlpSpec) -> (Vec<RawTensor>, HashMap<String, String>) {
        let p = init_params::<f64>(spec, 3);
        let mut t = Vec::new();
        for (l, s) in p.layout.layers.iter().enumerate() {
            let (wn, bn) = tensor_names(l);
            t.push((wn, Dtype::F64, vec![s.rows, s.cols], encode(p.weight(l)).1));
            t.push((bn, Dtype::F64, vec![s.rows], encode(p.bias(l)).1));
        }
        (
            t,
            metadata_map::<f64>(&CheckpointMeta::new(spec.clone())).unwrap(),
        )
    }

    fn write_parts(path: &Path, t: &[RawTensor], md: Option<HashMap<String, String>>) {
        write_raw(
            path,
            t.iter()
                .map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone()))
                .collect(),
            md,
        );
    }

    #[test]
    fn roundtrip_bit_exact_f32_and_f64() {
        let dir = TempDir::new("ckpt-rt");
        let fc = Preset::FcTanh.spec();
        for spec in [
            fc.clone(),
            small_spec(),
            MlpSpec::new(3, &[], 4, Activation::Linear).unwrap(),
        ] {
            let meta = meta_for(&spec);

            let mut p32 = init_params::<f32>(&spec, 11);
            // Awkward values must survive too.
            p32.data[0] = -0.0;
            p32.data[1] = f32::from_bits(1); // smallest subnormal
            p32.data[2] = f32::INFINITY;
            let path = dir
                .path()
                .join(format!("{}-f32.safetensors", spec.dims().len()));
            save_checkpoint(&path, &p32, &meta).unwrap();
            let (back, m) = load_checkpoint::<f32>(&path).unwrap();
            assert_eq!(back.spec, spec);
            assert_eq!(back.layout, spec.layout());
            let a: Vec<u32> = p32.data.iter().map(|x| x.to_bits()).collect();
            let b: Vec<u32> = back.data.iter().map(|x| x.to_bits()).collect();
            assert_eq!(a, b);
            assert_eq!(m, meta);

            let mut p64 = init_params::<f64>(&spec, 12);
            p64.data[0] = -0.0;
            p64.data[1] = f64::from_bits(1);
            p64.data[2] = f64::NEG_INFINITY;
            let path = dir
                .path()
                .join(format!("{}-f64.safetensors", spec.dims().len()));
            save_checkpoint(&path, &p64, &meta).unwrap();
            let (back, m) = load_checkpoint::<f64>(&path).unwrap();
            assert_eq!(bits(&back.data), bits(&p64.data));
            assert_eq!(m, meta);
        }
    }

    #[test]
    fn fc_tanh_names_shapes_dtype_and_metadata_as_pytorch() {
        let dir = TempDir::new("ckpt-names");
        let spec = Preset::FcTanh.spec();
        let p = init_params::<f32>(&spec, 0);
        let path = dir.path().join("fc.safetensors");
        let mut meta = CheckpointMeta::new(spec.clone());
        meta.seed = Some(0);
        save_checkpoint(&path, &p, &meta).unwrap();

        let buf = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&buf).unwrap();
        let mut names = st.names();
        names.sort_unstable();
        assert_eq!(
            names,
            ["1.bias", "1.weight", "3.bias", "3.weight", "5.bias", "5.weight"]
        );
        let want: [(&str, &[usize]); 6] = [
            ("1.weight", &[200, 3072]),
            ("1.bias", &[200]),
            ("3.weight", &[200, 200]),
            ("3.bias", &[200]),
            ("5.weight", &[10, 200]),
            ("5.bias", &[10]),
        ];
        for (name, shape) in want {
            let v = st.tensor(name).unwrap();
            assert_eq!(v.shape(), shape, "{name}");
            assert_eq!(v.dtype(), Dtype::F32, "{name}");
        }
        // Row-major, little-endian: element (i, j) of 3.weight is W_2[i*200 + j].
        let w = st.tensor("3.weight").unwrap();
        let (i, j) = (17, 123);
        let k = (i * 200 + j) * 4;
        let d = w.data();
        let x = f32::from_le_bytes([d[k], d[k + 1], d[k + 2], d[k + 3]]);
        assert_eq!(x.to_bits(), p.weight(1)[i * 200 + j].to_bits());
        let b = st.tensor("5.bias").unwrap().data();
        assert_eq!(
            f32::from_le_bytes([b[36], b[37], b[38], b[39]]).to_bits(),
            p.bias(2)[9].to_bits()
        );

        let (_, header) = SafeTensors::read_metadata(&buf).unwrap();
        let md = header.metadata().as_ref().unwrap();
        assert_eq!(md["format"], "eosbench");
        assert_eq!(md["dims"], "3072-200-200-10");
        assert_eq!(md["activation"], "tanh");
        assert_eq!(md["torch_activation"], "Tanh");
        assert_eq!(md["dtype"], "F32");
        assert_eq!(md["seed"], "0");
        assert!(!md.contains_key("step"));
        let s: MlpSpec = serde_json::from_str(&md["spec"]).unwrap();
        assert_eq!(s, spec);

        let p64 = p.cast::<f64>();
        save_checkpoint(&path, &p64, &meta).unwrap();
        let buf = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&buf).unwrap();
        assert!(st.iter().all(|(_, v)| v.dtype() == Dtype::F64));
    }

    #[test]
    fn metadata_roundtrip_with_and_without_options() {
        let dir = TempDir::new("ckpt-meta");
        let spec = small_spec();
        let p = init_params::<f64>(&spec, 5);
        let path = dir.path().join("m.safetensors");
        let bare = CheckpointMeta::new(spec.clone());
        save_checkpoint(&path, &p, &bare).unwrap();
        assert_eq!(load_checkpoint::<f64>(&path).unwrap().1, bare);
        let full = meta_for(&spec);
        save_checkpoint(&path, &p, &full).unwrap();
        let (_, m) = load_checkpoint::<f64>(&path).unwrap();
        assert_eq!(m.seed, Some(u64::MAX - 7));
        assert_eq!(m.step, Some(1234));
        assert_eq!(m.extra["data set"], "cifar10-5k, \"first\" 5000");
        assert_eq!(m, full);
        // Only the checkpoint itself is in the directory: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn cross_precision_load_casts() {
        let dir = TempDir::new("ckpt-cast");
        let spec = small_spec();
        let p64 = init_params::<f64>(&spec, 21);
        let path = dir.path().join("x.safetensors");
        save_checkpoint(&path, &p64, &CheckpointMeta::new(spec.clone())).unwrap();
        let (p32, _) = load_checkpoint::<f32>(&path).unwrap();
        for (a, b) in p32.data.iter().zip(&p64.data) {
            assert_eq!(a.to_bits(), (*b as f32).to_bits());
        }
        // f64 → f32 really rounds: at least one value changed.
        assert!(p32
            .data
            .iter()
            .zip(&p64.data)
            .any(|(a, b)| f64::from(*a) != *b));

        save_checkpoint(&path, &p32, &CheckpointMeta::new(spec.clone())).unwrap();
        let (w, _) = load_checkpoint::<f64>(&path).unwrap();
        for (a, b) in w.data.iter().zip(&p32.data) {
            assert_eq!(a.to_bits(), f64::from(*b).to_bits());
        }
    }

    #[test]
    fn missing_file_and_io_errors() {
        let dir = TempDir::new("ckpt-io");
        let path = dir.path().join("nope.safetensors");
        let e = load_checkpoint::<f32>(&path).unwrap_err();
        assert!(matches!(e, CheckpointError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("nope.safetensors"), "{e}");
        // A directory is not readable as a file.
        let e = load_checkpoint::<f32>(dir.path()).unwrap_err();
        assert!(matches!(e, CheckpointError::Io { .. }), "{e}");
        // Saving below a regular file fails with an I/O error naming the target.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let spec = small_spec();
        let p = init_params::<f32>(&spec, 1);
        let target = blocker.join("c.safetensors");
        let e = save_checkpoint(&target, &p, &CheckpointMeta::new(spec)).unwrap_err();
        assert!(matches!(e, CheckpointError::Io { .. }), "{e}");
        assert!(e.to_string().contains("c.safetensors"), "{e}");
    }

    #[test]
    fn not_safetensors_and_truncated() {
        let dir = TempDir::new("ckpt-corrupt");
        let path = dir.path().join("c.safetensors");
        for junk in [
            &b""[..],
            b"abc",
            b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!",
            b"PK\x03\x04 zip file here",
        ] {
            std::fs::write(&path, junk).unwrap();
            let e = load_checkpoint::<f32>(&path).unwrap_err();
            assert!(
                matches!(e, CheckpointError::NotSafetensors { .. }),
                "{junk:?}: {e}"
            );
            assert!(e.to_string().contains("c.safetensors"), "{e}");
        }
        let spec = small_spec();
        save_checkpoint(
            &path,
            &init_params::<f32>(&spec, 1),
            &CheckpointMeta::new(spec),
        )
        .unwrap();
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let e = load_checkpoint::<f32>(&path).unwrap_err();
        assert!(matches!(e, CheckpointError::NotSafetensors { .. }), "{e}");
    }

    #[test]
    fn missing_and_unexpected_tensors() {
        let dir = TempDir::new("ckpt-tensors");
        let path = dir.path().join("t.safetensors");
        let spec = small_spec();
        let (mut t, md) = valid_parts(&spec);
        let removed = t.remove(5); // 5.bias
        assert_eq!(removed.0, "5.bias");
        write_parts(&path, &t, Some(md.clone()));
        match load_checkpoint::<f64>(&path).unwrap_err() {
            CheckpointError::MissingTensor { tensor, path: p } => {
                assert_eq!(tensor, "5.bias");
                assert_eq!(p, path);
            }
            e => panic!("wrong error {e}"),
        }
        t.push(removed);
        t.push(("7.weight".into(), Dtype::F64, vec![1, 2], vec![0u8; 16]));
        write_parts(&path, &t, Some(md));
        match load_checkpoint::<f64>(&path).unwrap_err() {
            CheckpointError::UnexpectedTensor { tensor, .. } => assert_eq!(tensor, "7.weight"),
            e => panic!("wrong error {e}"),
        }
    }

    #[test]
    fn wrong_shape_names_tensor_expected_and_found() {
        let dir = TempDir::new("ckpt-shape");
        let path = dir.path().join("s.safetensors");
        let spec = small_spec(); // 5-4-3-2
        let (mut t, md) = valid_parts(&spec);
        // Transposed 3.weight: same byte count, wrong shape.
        assert_eq!(t[2].0, "3.weight");
        t[2].2 = vec![4, 3];
        write_parts(&path, &t, Some(md));
        let e = load_checkpoint::<f32>(&path).unwrap_err();
        match &e {
            CheckpointError::WrongShape {
                tensor,
                expected,
                found,
                ..
            } => {
                assert_eq!(tensor, "3.weight");
                assert_eq!(expected, &vec![3, 4]);
                assert_eq!(found, &vec![4, 3]);
            }
            e => panic!("wrong error {e}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("[3, 4]") && msg.contains("[4, 3]") && msg.contains("3.weight"),
            "{msg}"
        );
    }

    #[test]
    fn unsupported_dtype() {
        let dir = TempDir::new("ckpt-dtype");
        let path = dir.path().join("d.safetensors");
        let spec = small_spec();
        let (mut t, md) = valid_parts(&spec);
        // 1.bias (4 values) as F16.
        assert_eq!(t[1].0, "1.bias");
        t[1].1 = Dtype::F16;
        t[1].3 = vec![0u8; 8];
        write_parts(&path, &t, Some(md));
        match load_checkpoint::<f64>(&path).unwrap_err() {
            CheckpointError::UnsupportedDtype { tensor, dtype, .. } => {
                assert_eq!(tensor, "1.bias");
                assert_eq!(dtype, "F16");
            }
            e => panic!("wrong error {e}"),
        }
    }

    #[test]
    fn metadata_errors() {
        let dir = TempDir::new("ckpt-md");
        let path = dir.path().join("md.safetensors");
        let spec = small_spec();
        let (t, md) = valid_parts(&spec);

        write_parts(&path, &t, None);
        let e = load_checkpoint::<f64>(&path).unwrap_err();
        assert!(matches!(e, CheckpointError::MissingSpec { .. }), "{e}");

        let mut no_spec = md.clone();
        no_spec.remove("spec");
        write_parts(&path, &t, Some(no_spec));
        let e = load_checkpoint::<f64>(&path).unwrap_err();
        assert!(matches!(e, CheckpointError::MissingSpec { .. }), "{e}");
        assert!(e.to_string().contains("md.safetensors"), "{e}");

        let cases: [(&str, &str); 4] = [
            ("spec", "{not json"),
            (
                "spec",
                r#"{"input_dim":5,"hidden":[0],"output_dim":2,"activation":"relu"}"#,
            ),
            ("seed", "-3"),
            ("step", "twelve"),
        ];
        for (key, value) in cases {
            let mut m = md.clone();
            m.insert(key.into(), value.into());
            write_parts(&path, &t, Some(m));
            match load_checkpoint::<f64>(&path).unwrap_err() {
                CheckpointError::BadMetadata { key: k, .. } => assert_eq!(k, key),
                e => panic!("{key}={value}: wrong error {e}"),
            }
        }
    }

    #[test]
    fn save_rejects_mismatched_spec() {
        let dir = TempDir::new("ckpt-enc");
        let path = dir.path().join("e.safetensors");
        let p = init_params::<f32>(&small_spec(), 1);
        let other = MlpSpec::new(5, &[4, 3], 2, Activation::Tanh).unwrap();
        let e = save_checkpoint(&path, &p, &CheckpointMeta::new(other)).unwrap_err();
        assert!(matches!(e, CheckpointError::Encode { .. }), "{e}");
        let mut short = p.clone();
        short.data.pop();
        let e = save_checkpoint(&path, &short, &CheckpointMeta::new(small_spec())).unwrap_err();
        assert!(matches!(e, CheckpointError::Encode { .. }), "{e}");
        assert!(!path.exists());
    }
}
