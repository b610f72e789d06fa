#!/usr/bin/env python3
"""Peer implementations of eosbench's workloads, written the way users write them today.

Three implementations of the same float32 problem (full-batch loss, gradient, Hessian-vector
product and a Lanczos sharpness estimate of a 3072-h-h-10 tanh MLP with the half squared error
to one-hot targets on a CIFAR-10 subset):

  torch-double-backward  the reference edge-of-stability code's way: double backward over
                         physical chunks of 1000 examples, SciPy `eigsh` on a LinearOperator
  torch-func             torch.func forward-over-reverse, jvp(grad(loss)), full batch
  jax                    jax.jvp(jax.grad(loss)), jitted, full batch

    peers.py --impl jax --threads 2 --params init.safetensors --data-dir DIR \
             --n 5000 --lr 0.01 --reps 10 --out jax.json
    peers.py --self-check

The output JSON has the schema of `eosbench ops --json`; `table.py` merges several of them.
The thread environment (OMP_NUM_THREADS, ...) is set before numpy, torch or jax is imported,
which is why every heavy import in this file happens inside a function.
"""

import argparse
import json
import os
import platform
import re
import sys
import time

IMPLS = ("torch-double-backward", "torch-func", "jax")
OPS = ("loss", "gradient", "hvp", "estimate", "estimate_reference", "tracked_step")
CLASSES = 10
IMAGE_BYTES = 3072
RECORD_BYTES = IMAGE_BYTES + 1
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
# Physical batch size of the reference code's loops (loss, gradient, HVP).
CHUNK = 1000
# eosbench's default sharpness solve: top-1 algebraic eigenvalue, tolerance 1e-3.
ESTIMATE_TOL = 1e-3


# --------------------------------------------------------------------------------------------
# Thread environment (must run before numpy / torch / jax are imported)
# --------------------------------------------------------------------------------------------

def configure_threads(impl, threads, blas_threads, notes):
    """Set the thread-count variables the native libraries read when they load."""
    n = str(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
    # NumPy/SciPy's OpenBLAS (ARPACK's vector work inside eigsh). Its idle threads spin for a
    # while after each call and can compete with the framework's own threads.
    os.environ["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    notes.append(f"OMP_NUM_THREADS=MKL_NUM_THREADS={threads}, "
                 f"OPENBLAS_NUM_THREADS={blas_threads} (NumPy/SciPy BLAS, used by eigsh)")
    if impl == "jax":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        # The flags users are told to set. In jax/jaxlib 0.10 neither caps the thread count:
        # the bare `intra_op_parallelism_threads=N` token is ignored (written with a leading
        # `--` it is a fatal "Unknown flag in XLA_FLAGS"), and the multi-threaded Eigen switch
        # only concerns Eigen kernels. XLA's CPU thread pool is sized from the CPU affinity
        # mask, so the affinity is what actually limits it.
        flags = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
        prior = os.environ.get("XLA_FLAGS", "").strip()
        os.environ["XLA_FLAGS"] = f"{prior} {flags}".strip()
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) > threads:
            keep = set(allowed[:threads])
            os.sched_setaffinity(0, keep)
            notes.append(
                f"jax: XLA_FLAGS='{os.environ['XLA_FLAGS']}' does not limit threads in jax 0.10 "
                f"(checked: the bare intra_op_parallelism_threads token is ignored, "
                f"--xla_cpu_multi_thread_eigen does not cap the pool); peers.py restricted "
                f"the CPU affinity to cores {sorted(keep)} before importing jax, which XLA's "
                f"thread pool follows")
        else:
            notes.append(
                f"jax: XLA_FLAGS='{os.environ['XLA_FLAGS']}' does not limit threads in jax 0.10 "
                f"(the bare intra_op_parallelism_threads token is ignored); the thread count "
                f"is limited by the CPU affinity, here {len(allowed)} core(s) {allowed}")
    else:
        notes.append(f"affinity: {len(os.sched_getaffinity(0))} core(s) "
                     f"{sorted(os.sched_getaffinity(0))}")


def cpu_vendor():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# --------------------------------------------------------------------------------------------
# safetensors (parsed by hand: 8-byte LE header length, JSON header, raw LE tensor data)
# --------------------------------------------------------------------------------------------

def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    header_len = int.from_bytes(blob[:8], "little")
    if 8 + header_len > len(blob):
        raise ValueError(f"{path}: header length {header_len} runs past the end of the file")
    header = json.loads(blob[8:8 + header_len].decode("utf-8"))
    base = 8 + header_len
    metadata = header.pop("__metadata__", None) or {}
    kinds = {"F32": "<f4", "F64": "<f8"}
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in kinds:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}; need F32 or F64")
        dt = np.dtype(kinds[info["dtype"]])
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = 1
        for s in shape:
            count *= s
        if end - start != count * dt.itemsize or base + end > len(blob):
            raise ValueError(f"{path}: tensor {name} has inconsistent offsets")
        arr = np.frombuffer(blob, dtype=dt, count=count, offset=base + start).reshape(shape)
        tensors[name] = arr.astype(np.float32)  # F64 rounds to nearest; F32 is a copy
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """Minimal writer (F32 only), used by the self-check to round-trip the reader."""
    import numpy as np
    header = {}
    chunks = []
    offset = 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for c in chunks:
            f.write(c)


def layers_from_tensors(tensors):
    """[(W, b), ...] in module order (1, 3, 5, ...), W out x in; checks the chain of shapes."""
    found = {}
    for name in tensors:
        m = re.fullmatch(r"(\d+)\.(weight|bias)", name)
        if not m:
            raise ValueError(f"unexpected tensor '{name}' (want '<module>.weight/.bias')")
        found.setdefault(int(m.group(1)), {})[m.group(2)] = tensors[name]
    layers = []
    prev = None
    for idx in sorted(found):
        entry = found[idx]
        if set(entry) != {"weight", "bias"}:
            raise ValueError(f"module {idx} lacks its weight or bias")
        w, b = entry["weight"], entry["bias"]
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ValueError(f"module {idx}: weight {w.shape} and bias {b.shape} do not fit")
        if prev is not None and w.shape[1] != prev:
            raise ValueError(f"module {idx}: input {w.shape[1]} != previous output {prev}")
        prev = w.shape[0]
        layers.append((w, b))
    if not layers:
        raise ValueError("no layers in the checkpoint")
    return layers


def describe(layers, activation="tanh"):
    dims = [layers[0][0].shape[1]] + [w.shape[0] for w, _ in layers]
    return "-".join(str(d) for d in dims) + f" {activation}"


def flatten_layers(layers):
    import numpy as np
    return np.concatenate([a.reshape(-1) for wb in layers for a in wb]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# CIFAR-10 (eosbench's preprocessing, bit for bit)
# --------------------------------------------------------------------------------------------

def load_cifar10_train(data_dir, n):
    """First n training records in file order, standardized with the statistics of all 50 000.

    Same arithmetic as eosbench's `data::preprocess`: integer sums S1, S2 per feature (exact),
    mu = S1/(255 N), sigma = sqrt(N S2 - S1^2)/(255 N) (ddof 0), and each value computed in
    float64 as byte*(1/(255 sigma)) - mu/sigma, rounded once to float32. This is
    (byte/255 - mean)/std up to the last float64 rounding."""
    import numpy as np
    batches = []
    for name in TRAIN_FILES:
        path = os.path.join(data_dir, name)
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % RECORD_BYTES:
            raise ValueError(f"{path}: {raw.size} bytes is not a whole number of records")
        batches.append(raw.reshape(-1, RECORD_BYTES))
    total = sum(b.shape[0] for b in batches)
    if not 1 <= n <= total:
        raise ValueError(f"--n {n} is outside 1..{total}")
    s1 = np.zeros(IMAGE_BYTES, np.int64)
    s2 = np.zeros(IMAGE_BYTES, np.int64)
    for b in batches:
        for start in range(0, b.shape[0], 2000):
            px = b[start:start + 2000, 1:].astype(np.int64)
            s1 += px.sum(axis=0)
            s2 += (px * px).sum(axis=0)
    mean = s1.astype(np.float64) / (255.0 * total)
    num = total * s2 - s1 * s1  # exact in int64 for N = 50 000
    std = np.sqrt(num.astype(np.float64)) / (255.0 * total)
    std = np.where(std > 0, std, 1.0)
    scale = 1.0 / (255.0 * std)
    shift = -mean / std
    records = np.concatenate(batches, axis=0)[:n]
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= CLASSES:
        raise ValueError("label byte out of range 0..9")
    x = (records[:, 1:].astype(np.float64) * scale + shift).astype(np.float32)
    y = np.eye(CLASSES, dtype=np.float32)[labels]
    return np.ascontiguousarray(x), y


def dataset_name(n):
    return f"cifar10-{n // 1000}k" if n % 1000 == 0 else f"cifar10-{n}"


# --------------------------------------------------------------------------------------------
# Implementations. Each exposes, at its current parameters:
#   loss() -> float                      forward only
#   gradient() -> (float, np.float32[p]) loss and full-batch gradient
#   hvp(v: np.float32[p]) -> np[p]       the eigsh matvec (conversions included)
#   gd_step(lr)                          theta <- theta - lr * grad L(theta)
#   reset()                              back to the loaded parameters
# --------------------------------------------------------------------------------------------

class TorchDoubleBackward:
    """The reference code's way: everything over physical chunks of CHUNK examples, each chunk's
    loss scaled by 1/n so the chunks add up to the mean loss; HVP by double backward per chunk.
    The gradient is chunked too (autograd.grad per chunk, summed), as the reference does; the GD
    step is torch.optim.SGD after backward() on every chunk, as in the reference training loop."""

    name = "torch-double-backward"

    def __init__(self, layers, x, y, chunk=CHUNK):
        import torch
        self.torch = torch
        self.net = build_torch_module(layers)
        self.params = list(self.net.parameters())
        self.initial = [p.detach().clone() for p in self.params]
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y)
        self.n = x.shape[0]
        self.chunk = chunk
        self.opt = None

    def _chunks(self):
        for start in range(0, self.n, self.chunk):
            yield self.x[start:start + self.chunk], self.y[start:start + self.chunk]

    def _chunk_loss(self, xb, yb):
        # Half squared error summed over outputs and chunk examples, as a share of the mean.
        return 0.5 * (self.net(xb) - yb).pow(2).sum() / self.n

    def loss(self):
        total = 0.0
        with self.torch.no_grad():
            for xb, yb in self._chunks():
                total += self._chunk_loss(xb, yb).item()
        return total

    def gradient(self):
        torch = self.torch
        grad = None
        total = 0.0
        for xb, yb in self._chunks():
            part = self._chunk_loss(xb, yb)
            g = torch.nn.utils.parameters_to_vector(torch.autograd.grad(part, self.params))
            grad = g if grad is None else grad + g
            total += part.item()
        return total, grad.numpy()

    def _hvp_tensor(self, vec):
        torch = self.torch
        out = torch.zeros(vec.shape[0], dtype=torch.float32)
        for xb, yb in self._chunks():
            part = self._chunk_loss(xb, yb)
            grads = torch.autograd.grad(part, self.params, create_graph=True)
            dot = torch.nn.utils.parameters_to_vector(grads).mul(vec).sum()
            second = torch.autograd.grad(dot, self.params)
            out += torch.nn.utils.parameters_to_vector([s.contiguous() for s in second])
        return out

    def hvp(self, v):
        # Like the reference's matvec: copy into a float tensor, return a detached CPU tensor
        # that SciPy turns into an array.
        vec = self.torch.tensor(v, dtype=self.torch.float)
        return self._hvp_tensor(vec).detach().cpu().numpy()

    def gd_step(self, lr):
        if self.opt is None or self.opt.param_groups[0]["lr"] != lr:
            self.opt = self.torch.optim.SGD(self.params, lr=lr)
        self.opt.zero_grad()
        for xb, yb in self._chunks():
            self._chunk_loss(xb, yb).backward()
        self.opt.step()

    def reset(self):
        with self.torch.no_grad():
            for p, p0 in zip(self.params, self.initial):
                p.copy_(p0)
        self.opt = None


class TorchFunc:
    """torch.func: functional_call on the module with a dict of parameters, grad_and_value for
    the gradient, jvp(grad(loss)) (forward-over-reverse) for the HVP, all full batch."""

    name = "torch-func"

    def __init__(self, layers, x, y):
        import torch
        import torch.func as tf
        self.torch = torch
        self.module = build_torch_module(layers)
        self.names = [k for k, _ in self.module.named_parameters()]
        self.shapes = [p.shape for _, p in self.module.named_parameters()]
        self.sizes = [p.numel() for _, p in self.module.named_parameters()]
        self.initial = {k: p.detach().clone() for k, p in self.module.named_parameters()}
        self.params = dict(self.initial)
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y)
        module = self.module

        def loss_fn(params, xb, yb):
            out = tf.functional_call(module, params, (xb,))
            return 0.5 * (out - yb).pow(2).sum() / xb.shape[0]

        grad_fn = tf.grad(loss_fn)
        self._loss_fn = loss_fn
        self._grad_and_value = tf.grad_and_value(loss_fn)

        def hvp_fn(params, tangent, xb, yb):
            return tf.jvp(lambda p: grad_fn(p, xb, yb), (params,), (tangent,))[1]

        self._hvp_fn = hvp_fn

    def _flat(self, tree):
        return self.torch.cat([tree[k].reshape(-1) for k in self.names])

    def _unflat(self, vec):
        return {k: t.view(s) for k, t, s in
                zip(self.names, self.torch.split(vec, self.sizes), self.shapes)}

    def loss(self):
        with self.torch.no_grad():
            return self._loss_fn(self.params, self.x, self.y).item()

    def gradient(self):
        grads, value = self._grad_and_value(self.params, self.x, self.y)
        return value.item(), self._flat(grads).numpy()

    def hvp(self, v):
        tangent = self._unflat(self.torch.from_numpy(v.astype("float32", copy=False)))
        return self._flat(self._hvp_fn(self.params, tangent, self.x, self.y)).numpy()

    def gd_step(self, lr):
        grads = self._grad_and_value(self.params, self.x, self.y)[0]
        self.params = {k: p - lr * grads[k] for k, p in self.params.items()}

    def reset(self):
        self.params = dict(self.initial)


class Jax:
    """JAX: parameters as a pytree [(W, b), ...]; jit(value_and_grad(loss)) for the gradient,
    jit of jvp(grad(loss)) for the HVP (flattened with ravel_pytree for eigsh), a jitted SGD
    step; data passed as arguments (not baked into the compiled program)."""

    name = "jax"

    def __init__(self, layers, x, y):
        import jax
        import jax.numpy as jnp
        from jax.flatten_util import ravel_pytree
        jax.config.update("jax_enable_x64", False)
        self.jax = jax
        self.initial = [(jnp.asarray(w), jnp.asarray(b)) for w, b in layers]
        self.params = self.initial
        self.x = jnp.asarray(x)
        self.y = jnp.asarray(y)
        _, unravel = ravel_pytree(self.initial)

        def forward(params, xb):
            h = xb
            for w, b in params[:-1]:
                h = jnp.tanh(h @ w.T + b)
            w, b = params[-1]
            return h @ w.T + b

        def loss(params, xb, yb):
            return 0.5 * jnp.sum((forward(params, xb) - yb) ** 2) / xb.shape[0]

        def hvp_flat(params, v, xb, yb):
            tangent = unravel(v)
            hv = jax.jvp(lambda p: jax.grad(loss)(p, xb, yb), (params,), (tangent,))[1]
            return ravel_pytree(hv)[0]

        def sgd(params, xb, yb, lr):
            g = jax.grad(loss)(params, xb, yb)
            return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g)

        self._loss = jax.jit(loss)
        self._value_and_grad = jax.jit(jax.value_and_grad(loss))
        self._hvp = jax.jit(hvp_flat)
        self._sgd = jax.jit(sgd)
        self._ravel = lambda tree: ravel_pytree(tree)[0]

    def loss(self):
        return float(self._loss(self.params, self.x, self.y).block_until_ready())

    def gradient(self):
        value, grads = self._value_and_grad(self.params, self.x, self.y)
        self.jax.block_until_ready(grads)
        import numpy as np
        return float(value), np.asarray(self._ravel(grads))

    def hvp(self, v):
        import numpy as np
        out = self._hvp(self.params, self.jax.numpy.asarray(v, dtype="float32"), self.x, self.y)
        return np.asarray(out.block_until_ready())

    def gd_step(self, lr):
        self.params = self._sgd(self.params, self.x, self.y, self.jax.numpy.float32(lr))
        self.jax.block_until_ready(self.params)

    def reset(self):
        self.params = self.initial


def build_torch_module(layers, activation="tanh"):
    """nn.Sequential(Flatten, Linear, Tanh, Linear, Tanh, Linear), so the state_dict names are
    1.weight, 1.bias, 3.weight, ... exactly as in the eosbench checkpoint."""
    import torch
    from torch import nn
    mods = [nn.Flatten()]
    for i, (w, _) in enumerate(layers):
        mods.append(nn.Linear(w.shape[1], w.shape[0]))
        if i + 1 < len(layers):
            mods.append(nn.Tanh())
    net = nn.Sequential(*mods)
    state = {}
    for i, (w, b) in enumerate(layers):
        state[f"{2 * i + 1}.weight"] = torch.from_numpy(w.copy())
        state[f"{2 * i + 1}.bias"] = torch.from_numpy(b.copy())
    net.load_state_dict(state)
    return net.float()


def make_impl(name, layers, x, y, chunk=CHUNK):
    if name == "torch-double-backward":
        return TorchDoubleBackward(layers, x, y, chunk=chunk)
    if name == "torch-func":
        return TorchFunc(layers, x, y)
    if name == "jax":
        return Jax(layers, x, y)
    raise ValueError(f"unknown implementation {name}")


# --------------------------------------------------------------------------------------------
# Sharpness with SciPy eigsh
# --------------------------------------------------------------------------------------------

class Counter:
    def __init__(self, fn):
        self.fn = fn
        self.count = 0

    def __call__(self, v):
        self.count += 1
        return self.fn(v)


def float32_operator(matvec, p):
    """LinearOperator over float32 (ARPACK then runs in single precision, as in the reference).
    dtype is given explicitly; the reference leaves it out, which makes SciPy spend one extra
    product on a zero vector to infer it."""
    import numpy as np
    from scipy.sparse.linalg import LinearOperator
    return LinearOperator((p, p), matvec=matvec, dtype=np.float32)


def estimate(impl, p, v0):
    """eosbench's default solve: the largest algebraic eigenvalue, tol 1e-3, fixed start."""
    from scipy.sparse.linalg import eigsh
    mv = Counter(impl.hvp)
    vals = eigsh(float32_operator(mv, p), k=1, which="LA", tol=ESTIMATE_TOL, v0=v0,
                 return_eigenvectors=False)
    return float(vals[0]), mv.count


def estimate_reference(impl, p):
    """eigsh(op, 2) as the reference calls it: which='LM' (largest magnitude), tol=0 (machine
    precision), random start; eigenvalues reported descending, as the reference reverses them."""
    from scipy.sparse.linalg import eigsh
    mv = Counter(impl.hvp)
    vals, _ = eigsh(float32_operator(mv, p), 2)
    return [float(v) for v in sorted(vals, reverse=True)], mv.count


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------

def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def time_op(fn, reps, before=None):
    """One untimed warm-up call (its time is first_call_ms), then `reps` timed calls. `before`
    runs untimed ahead of every call (e.g. resetting the parameters). Returns
    (stats, first result, busy cores during the timed calls)."""
    import numpy as np
    if before:
        before()
    t0 = time.perf_counter()
    first = fn()
    first_ms = (time.perf_counter() - t0) * 1e3
    times = []
    wall = 0.0
    cpu = 0.0
    for _ in range(reps):
        if before:
            before()
        c0 = _cpu_seconds()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        cpu += _cpu_seconds() - c0
        wall += dt
        times.append(dt * 1e3)
    arr = np.asarray(times if times else [float("nan")])
    stats = {
        "median_ms": float(np.median(arr)),
        "p10_ms": float(np.percentile(arr, 10)),
        "p90_ms": float(np.percentile(arr, 90)),
        "reps": reps,
        "first_call_ms": first_ms,
    }
    return stats, first, (cpu / wall if wall > 0 else float("nan"))


def run_benchmark(args):
    notes = []
    try:
        with open("/proc/loadavg") as f:
            notes.append("load average at start: " + " ".join(f.read().split()[:3]))
    except OSError:
        pass
    configure_threads(args.impl, args.threads, args.blas_threads or args.threads, notes)

    import numpy as np
    import scipy
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "scipy": scipy.__version__}
    if args.impl.startswith("torch"):
        import torch
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
        versions["torch"] = torch.__version__
        notes.append(f"torch: get_num_threads()={torch.get_num_threads()}, "
                     f"get_num_interop_threads()={torch.get_num_interop_threads()}")
        blas = "MKL" if torch.backends.mkl.is_available() else "non-MKL"
        if blas == "MKL" and cpu_vendor() == "AuthenticAMD":
            notes.append("torch: BLAS is Intel MKL on an AMD CPU (MKL may pick slower code "
                         "paths on non-Intel CPUs; this is what pip users get)")
    else:
        import jax
        import jaxlib
        versions["jax"] = jax.__version__
        versions["jaxlib"] = jaxlib.__version__
        notes.append(f"jax: devices {[str(d) for d in jax.devices()]}, "
                     f"jax_enable_x64={jax.config.jax_enable_x64}")

    tensors, meta = read_safetensors(args.params)
    activation = meta.get("activation", "tanh")
    if activation != "tanh":
        raise SystemExit(f"peers.py: only tanh networks are implemented, checkpoint says "
                         f"'{activation}'")
    layers = layers_from_tensors(tensors)
    if layers[0][0].shape[1] != IMAGE_BYTES or layers[-1][0].shape[0] != CLASSES:
        raise SystemExit(f"peers.py: network {describe(layers)} does not take CIFAR-10 "
                         f"({IMAGE_BYTES} inputs, {CLASSES} outputs)")
    t0 = time.perf_counter()
    x, y = load_cifar10_train(args.data_dir, args.n)
    notes.append(f"data: {dataset_name(args.n)} loaded and standardized in "
                 f"{time.perf_counter() - t0:.2f} s (not timed)")
    p = sum(w.size + b.size for w, b in layers)
    impl = make_impl(args.impl, layers, x, y)
    v0 = np.random.default_rng(0).standard_normal(p).astype(np.float32)
    ops = [o for o in OPS if o in args.ops]

    result = {
        "impl": args.impl, "versions": versions, "threads": args.threads, "dtype": "f32",
        "network": describe(layers, activation), "dataset": dataset_name(args.n), "n": args.n,
        "params": args.params, "notes": notes,
        "check": {"loss": None, "grad_norm": None, "vhv": None, "sharpness": None},
        "ops": {},
    }
    busy = {}

    # Check values (also the warm-up of loss / gradient / hvp when those are timed).
    loss_stats, loss_value, busy["loss"] = time_op(impl.loss, args.reps if "loss" in ops else 0)
    grad_stats, (_, g), busy["gradient"] = time_op(impl.gradient,
                                                   args.reps if "gradient" in ops else 0)
    g64 = g.astype(np.float64)
    gnorm = float(np.linalg.norm(g64))
    v = (g64 / gnorm).astype(np.float32)
    hvp_stats, hv, busy["hvp"] = time_op(lambda: impl.hvp(v), args.reps if "hvp" in ops else 0)
    result["check"].update(loss=float(loss_value), grad_norm=gnorm,
                           vhv=float(np.dot(v.astype(np.float64), hv.astype(np.float64))))
    for name, stats in (("loss", loss_stats), ("gradient", grad_stats), ("hvp", hvp_stats)):
        if name in ops:
            result["ops"][name] = stats

    if "estimate" in ops:
        stats, (value, products), busy["estimate"] = time_op(lambda: estimate(impl, p, v0),
                                                             args.reps)
        stats.update(products=products, value=value)
        result["ops"]["estimate"] = stats
        result["check"]["sharpness"] = value
    if "estimate_reference" in ops:
        stats, (values, products), busy["estimate_reference"] = time_op(
            lambda: estimate_reference(impl, p), args.reps)
        stats.update(products=products, value=values)
        result["ops"]["estimate_reference"] = stats
    if "tracked_step" in ops:
        def tracked():
            impl.gd_step(args.lr)
            return estimate(impl, p, v0)
        stats, (value, products), busy["tracked_step"] = time_op(tracked, args.reps,
                                                                 before=impl.reset)
        impl.reset()
        stats["products"] = products
        result["ops"]["tracked_step"] = stats
        notes.append(f"tracked_step: sharpness after one GD step (lr {args.lr}) = {value:.6g}")

    notes.append("cpu cores busy during the timed reps (process CPU time / wall time): "
                 + ", ".join(f"{k} {b:.2f}" for k, b in busy.items() if b == b))
    notes.append(f"p = {p}; hvp and the eigsh matvec include the numpy <-> framework "
                 f"conversions; the LinearOperator is float32 with dtype given explicitly "
                 f"(the reference omits it and pays one extra product for SciPy's dtype probe, "
                 f"not counted here)")
    if "estimate" in ops or "tracked_step" in ops:
        notes.append("estimate: eigsh(k=1, which='LA', tol=1e-3, v0=default_rng(0)."
                     "standard_normal(p) as float32); ARPACK's default ncv is 20")
    if "estimate_reference" in ops:
        notes.append("estimate_reference: eigsh(op, 2) as the reference calls it (which='LM', "
                     "tol=0, ARPACK's random start, so products may vary between runs)")
    if args.impl == "torch-double-backward":
        notes.append(f"torch-double-backward: loss, gradient and HVP over physical chunks of "
                     f"{CHUNK} examples; GD step = backward() per chunk + torch.optim.SGD")
    return result


# --------------------------------------------------------------------------------------------
# Self-check: all implementations against each other and a float64 finite difference
# --------------------------------------------------------------------------------------------

def numpy_loss_grad64(layers, x, y):
    """Float64 loss and gradient by hand (independent of the frameworks)."""
    import numpy as np
    acts = [x]
    h = x
    for i, (w, b) in enumerate(layers):
        z = h @ w.T + b
        h = np.tanh(z) if i + 1 < len(layers) else z
        acts.append(h)
    n = x.shape[0]
    r = acts[-1] - y
    loss = 0.5 * np.sum(r * r) / n
    delta = r / n
    grads = []
    for i in range(len(layers) - 1, -1, -1):
        w, _ = layers[i]
        grads.append((delta.T @ acts[i], delta.sum(axis=0)))
        if i > 0:
            delta = (delta @ w) * (1.0 - acts[i] ** 2)
    grads.reverse()
    return loss, np.concatenate([a.reshape(-1) for gw in grads for a in gw])


def unflatten_like(flat, layers):
    out = []
    k = 0
    for w, b in layers:
        out.append((flat[k:k + w.size].reshape(w.shape), flat[k + w.size:k + w.size + b.size]))
        k += w.size + b.size
    return out


def rel(a, b):
    import numpy as np
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def self_check():
    import tempfile
    t_start = time.perf_counter()
    # One thread everywhere: the problem is tiny, and a correctness check should not depend on
    # (or suffer from) other load on the machine.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    import numpy as np
    import torch
    torch.set_num_threads(1)
    rng = np.random.default_rng(1234)
    n, dims = 64, [IMAGE_BYTES, 8, 8, CLASSES]
    layers = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        layers.append((rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
                       rng.uniform(-bound, bound, fan_out).astype(np.float32)))
    x = rng.standard_normal((n, IMAGE_BYTES)).astype(np.float32)
    y = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, n)]
    failures = []

    def check(label, err, limit):
        ok = err < limit
        print(f"  {'ok  ' if ok else 'FAIL'} {label}: {err:.2e} (limit {limit:.0e})")
        if not ok:
            failures.append(label)

    # safetensors round trip through the hand-written reader.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny.safetensors")
        named = {}
        for i, (w, b) in enumerate(layers):
            named[f"{2 * i + 1}.weight"], named[f"{2 * i + 1}.bias"] = w, b
        write_safetensors(path, named, {"activation": "tanh"})
        back, meta = read_safetensors(path)
        same = all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                   for a, b in zip(layers_from_tensors(back), layers))
        print(f"  {'ok  ' if same and meta.get('activation') == 'tanh' else 'FAIL'} "
              f"safetensors round trip")
        if not (same and meta.get("activation") == "tanh"):
            failures.append("safetensors")

    # Float64 truth.
    l64 = [(w.astype(np.float64), b.astype(np.float64)) for w, b in layers]
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    loss64, g64 = numpy_loss_grad64(l64, x64, y64)
    v = (g64 / np.linalg.norm(g64)).astype(np.float32)
    eps = 1e-4
    theta = flatten_layers(l64).astype(np.float64)
    vp = v.astype(np.float64)
    gp = numpy_loss_grad64(unflatten_like(theta + eps * vp, l64), x64, y64)[1]
    gm = numpy_loss_grad64(unflatten_like(theta - eps * vp, l64), x64, y64)[1]
    hv_fd = (gp - gm) / (2 * eps)
    p = theta.size
    v0 = np.random.default_rng(0).standard_normal(p).astype(np.float32)

    results = {}
    for name in IMPLS:
        chunk = 24 if name == "torch-double-backward" else CHUNK  # exercise 24+24+16 chunks
        impl = make_impl(name, layers, x, y, chunk=chunk)
        loss = impl.loss()
        gl, g = impl.gradient()
        hv = impl.hvp(v)
        lam, products = estimate(impl, p, v0)
        impl.gd_step(0.01)
        g_after = impl.gradient()[1]
        impl.reset()
        g_reset = impl.gradient()[1]
        results[name] = (loss, g, hv, lam)
        print(f"{name}: loss {loss:.7g}, |g| {np.linalg.norm(g):.6g}, "
              f"vHv {float(np.dot(v, hv)):.6g}, sharpness {lam:.6g} ({products} products)")
        check(f"{name} loss vs float64", abs(loss - loss64) / abs(loss64), 1e-3)
        check(f"{name} loss from gradient() vs loss()", abs(gl - loss) / abs(loss), 1e-5)
        check(f"{name} gradient vs float64", rel(g, g64), 1e-3)
        check(f"{name} HVP vs float64 finite difference", rel(hv, hv_fd), 1e-3)
        gd_expected = numpy_loss_grad64(
            unflatten_like(theta - 0.01 * g64, l64), x64, y64)[1]
        check(f"{name} gradient after a GD step vs float64", rel(g_after, gd_expected), 1e-3)
        check(f"{name} reset restores the parameters", rel(g_reset, g), 1e-6)

    base = results["torch-double-backward"]
    for name in IMPLS[1:]:
        other = results[name]
        check(f"{name} vs torch-double-backward: loss", abs(other[0] - base[0]) / abs(base[0]),
              1e-3)
        check(f"{name} vs torch-double-backward: gradient", rel(other[1], base[1]), 1e-3)
        check(f"{name} vs torch-double-backward: HVP", rel(other[2], base[2]), 1e-3)
        check(f"{name} vs torch-double-backward: sharpness",
              abs(other[3] - base[3]) / abs(base[3]), 1e-3)

    # Standardization on synthetic bytes: eosbench's formula equals (b/255 - mean)/std.
    bytes_ = rng.integers(0, 256, (50, IMAGE_BYTES)).astype(np.int64)
    s1, s2 = bytes_.sum(0), (bytes_ * bytes_).sum(0)
    m = s1 / (255.0 * 50)
    sd = np.sqrt((50 * s2 - s1 * s1).astype(np.float64)) / (255.0 * 50)
    fast = bytes_ * (1.0 / (255.0 * sd)) - m / sd
    ref = bytes_ / 255.0
    ref = (ref - ref.mean(0)) / ref.std(0)
    check("standardization formula vs (x - mean)/std", float(np.max(np.abs(fast - ref))), 1e-9)

    print(f"self-check {'FAILED: ' + ', '.join(failures) if failures else 'passed'} "
          f"in {time.perf_counter() - t_start:.1f} s")
    return 1 if failures else 0


# --------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--self-check", action="store_true",
                    help="check all implementations on a tiny synthetic problem and exit")
    ap.add_argument("--impl", choices=IMPLS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--params", help="eosbench safetensors checkpoint")
    ap.add_argument("--data-dir", default=os.environ.get("EOSBENCH_DATA"),
                    help="CIFAR-10 binary directory [default: $EOSBENCH_DATA]")
    ap.add_argument("--n", type=int, default=5000,
                    help="first n training records in file order [default: 5000]")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OPENBLAS_NUM_THREADS for NumPy/SciPy (eigsh) [default: --threads]")
    ap.add_argument("--lr", type=float, default=0.01, help="GD step size of tracked_step")
    ap.add_argument("--reps", type=int, default=10, help="timed repetitions per workload")
    ap.add_argument("--ops", default=",".join(OPS),
                    help=f"comma-separated subset of workloads [default: {','.join(OPS)}]")
    ap.add_argument("--out", help="JSON output file [default: stdout]")
    args = ap.parse_args(argv)

    if args.self_check:
        return self_check()
    missing = [f for f in ("impl", "params", "data_dir") if getattr(args, f) is None]
    if missing:
        ap.error("needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if args.threads < 1 or args.reps < 1:
        ap.error("--threads and --reps must be at least 1")
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    unknown = [o for o in args.ops if o not in OPS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {list(OPS)}")

    result = run_benchmark(args)
    text = json.dumps(result, indent=2)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
