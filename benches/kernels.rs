//! Throughput of the MLP passes at the Figure-1 shape (n = 5000, d = 3072, two hidden layers
//! of width h, 10 outputs, tanh, MSE), next to the plain GEMMs of the same shapes.
//!
//! `cargo bench --bench kernels` — h = 200 on all the cores; `EOSBENCH_BENCH_FULL=1 cargo bench
//! --bench kernels` — all widths (100, 200, 400, 800) × threads (1, 2);
//! `EOSBENCH_BENCH_WIDTHS=200 EOSBENCH_BENCH_THREADS=1,2 cargo bench --bench kernels` — a subset;
//! `cargo bench --bench kernels -- --profile-time 10` — flamegraphs under target/criterion.
//! On AVX-512 CPUs the passes run the first layer's products, and the later layers' products
//! per row block, on eosbench's own GEMM; the `-faer` entries (gradient, HVP b = 1 and 4) run
//! the same passes with all of them on faer, and `roof-own` is the gradient's GEMMs with the
//! first layer's two on the own GEMM (the whole-batch products of the later layers on faer).
//! `roof-hvp-b1` and `roof-hvp-b4` are the GEMMs of a Hessian-vector product for 1 and 4
//! directions alone, at the shapes the passes use (first layer on the own GEMM, as Strassen's 7
//! products from `NetConfig::strassen_min_width` columns, like the passes): the block ratio
//! the GEMMs themselves allow. FLOPs are counted as the 8-product GEMMs' everywhere, so a
//! product run as Strassen's shows the rate of the work it replaces.
//! Throughput is in FLOP/s of the GEMMs each pass performs (criterion's "elem/s"); the group
//! `kernels/peak` measures the f32 FMA peak of the machine (independent FMA chains, no memory
//! traffic) at the same thread counts, the ceiling every rate here is a fraction of.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eosbench::kernels::gemm::{view, view_mut};
use eosbench::mlp::{flops, Curvature, Net, NetConfig};
use eosbench::model::{init_params, Activation, Loss, MlpSpec};
use eosbench::Par;
use faer::Accum;

const N: usize = 5000;
const D: usize = 3072;

/// A row-major `rows × cols` matrix in a GEMM, used as it is or transposed.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> Operand<'a> {
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "operand shorter than {rows} × {cols}"
        );
        Operand {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose.
    fn t(self) -> Self {
        Operand {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Rows and columns of the operand as used.
    fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// Row and column strides of the operand as used.
    fn strides(&self) -> (isize, isize) {
        let ld = self.cols as isize;
        if self.transposed {
            (1, ld)
        } else {
            (ld, 1)
        }
    }

    /// The operand as used, as a faer view.
    fn faer(&self) -> faer::MatRef<'a, f32> {
        let m = view(self.data, self.rows, self.cols);
        if self.transposed {
            m.transpose()
        } else {
            m
        }
    }
}

/// The GEMMs of one gradient evaluation on full-size operands, layer by layer: each call
/// `gemm(l, a, b, c)` is to write `C = A · B` into the row-major `c` (`l`: 0-based layer). Per
/// layer (input `N × hi`,
/// weights `W` of `ho × hi`): `z = input · Wᵀ` (`N × ho`), `dW = zᵀ · input` (`ho × hi`) and,
/// for every layer but the first, `da = z · W` (`N × hi`).
fn gradient_gemms(
    spec: &MlpSpec,
    bufs: &mut RoofBufs,
    mut gemm: impl FnMut(usize, Operand<'_>, Operand<'_>, &mut [f32]),
) {
    let dims = spec.dims();
    for l in 0..dims.len() - 1 {
        let (hi, ho) = (dims[l], dims[l + 1]);
        let input = Operand::new(if l == 0 { &bufs.x } else { &bufs.act[l - 1] }, N, hi);
        let w = Operand::new(&bufs.w[l], ho, hi);
        gemm(l, input, w.t(), &mut bufs.z[l]);
        let z = Operand::new(&bufs.z[l], N, ho);
        gemm(l, z.t(), input, &mut bufs.dw[l]);
        if l > 0 {
            gemm(l, z, w, &mut bufs.da[l - 1]);
        }
    }
}

/// The GEMMs of one gradient evaluation through faer with its own parallelism
/// (`Par::rayon(t)`): the roof the fused passes are measured against.
fn roof_faer(spec: &MlpSpec, bufs: &mut RoofBufs, threads: usize) {
    let par = if threads > 1 {
        faer::Par::rayon(threads)
    } else {
        faer::Par::Seq
    };
    gradient_gemms(spec, bufs, |_, a, b, c| faer_gemm(par, a, b, c));
}

fn faer_gemm(par: faer::Par, a: Operand<'_>, b: Operand<'_>, c: &mut [f32]) {
    let (m, n) = (a.shape().0, b.shape().1);
    faer::linalg::matmul::matmul(
        view_mut(c, m, n),
        Accum::Replace,
        a.faer(),
        b.faer(),
        1.0,
        par,
    );
}

/// The operands the own GEMM keeps packed: `X` (packed beforehand) and the first layer's
/// `W_1ᵀ` or stacked `V_1ᵀ` (packed per call, as in the passes).
struct OwnPacked {
    x: eosbench::kernels::sgemm::PackedB,
    w: eosbench::kernels::sgemm::PackedB,
    /// The quadrant sums of `X` and the split operands of the current `W`, for the first
    /// layer's products from `min_width` columns.
    split: eosbench::kernels::strassen::SplitX,
    w_split: Vec<eosbench::kernels::sgemm::PackedB>,
    min_width: usize,
}

impl OwnPacked {
    /// `C = A·B` for the `gemm` argument of [`gradient_gemms`] and [`hvp_gemms`] as the passes
    /// run it by default on AVX-512 CPUs: the first layer's two products (`X·Wᵀ`, `gᵀ·X`) on
    /// the own GEMM, every other on faer with its own parallelism (`roof-own`, `roof-hvp-b*`).
    fn gemm(
        &mut self,
        threads: usize,
    ) -> impl FnMut(usize, Operand<'_>, Operand<'_>, &mut [f32]) + '_ {
        use eosbench::kernels::{sgemm, strassen};
        let (par, fpar) = if threads > 1 {
            (Par::Rayon, faer::Par::rayon(threads))
        } else {
            (Par::Seq, faer::Par::Seq)
        };
        let splits = |m: usize, min: usize| m >= min && strassen::applies(N, D, m);
        move |l, a, b, c| match (l, a.transposed) {
            (0, false) if splits(b.shape().1, self.min_width) => {
                strassen::pack_right(par, b.data, b.shape().1, D, &mut self.w_split);
                strassen::rows_times(par, &self.split, &self.w_split, c, 512);
            }
            (0, true) if splits(a.shape().0, self.min_width) => {
                strassen::transposed_times(par, a.data, a.shape().0, &self.split, c, false)
            }
            (0, false) => {
                sgemm::pack_transposed(par, b.data, b.shape().1, D, &mut self.w);
                sgemm::rows_times(par, a.data, N, &self.w, c, 512);
            }
            (0, true) => sgemm::transposed_times(par, a.data, N, a.shape().0, &self.x, 0, c, false),
            _ => faer_gemm(fpar, a, b, c),
        }
    }
}

/// Buffers of the GEMMs of one `b`-direction Hessian-vector product (see [`hvp_gemms`]).
struct HvpBufs {
    b: usize,
    /// Directions, stacked (`b·ho × hi`) per layer; the side-by-side `V` (`ho × b·hi`) of the
    /// R-backward is the same buffer read with that shape (values do not matter here).
    v: Vec<Vec<f32>>,
    /// `r_z`, `r_a`, `r_g` per layer, `N × b·ho`.
    rz: Vec<Vec<f32>>,
    ra: Vec<Vec<f32>>,
    rg: Vec<Vec<f32>>,
    /// `r_da` per layer below the top, `N × b·hi`.
    rda: Vec<Vec<f32>>,
    /// Results `b·ho × hi`, and the side-by-side ones `ho × b·hi`.
    hv: Vec<Vec<f32>>,
    hv_side: Vec<Vec<f32>>,
}

impl HvpBufs {
    fn new(spec: &MlpSpec, b: usize) -> Self {
        let dims = spec.dims();
        let layers = 0..dims.len() - 1;
        let tall = |l: usize, w: usize| vec![0.25f32 / (l + 1) as f32; N * b * w];
        let per = |f: &dyn Fn(usize) -> Vec<f32>| layers.clone().map(f).collect::<Vec<_>>();
        HvpBufs {
            b,
            v: per(&|l| vec![0.01; b * dims[l] * dims[l + 1]]),
            rz: per(&|l| tall(l, dims[l + 1])),
            // (The output layer's `r_a` and the first layer's `r_da` are never formed.)
            ra: per(&|l| {
                if l + 2 < dims.len() {
                    tall(l, dims[l + 1])
                } else {
                    Vec::new()
                }
            }),
            rg: per(&|l| tall(l, dims[l + 1])),
            rda: per(&|l| if l > 0 { tall(l, dims[l]) } else { Vec::new() }),
            hv: per(&|l| vec![0.0; b * dims[l] * dims[l + 1]]),
            hv_side: per(&|l| vec![0.0; b * dims[l] * dims[l + 1]]),
        }
    }
}

/// The GEMMs of one Hessian-vector product for `b` directions on full-size operands, the
/// shapes the passes use (DESIGN §2), layer by layer: R-forward `r_z = r_a_prev·Wᵀ` (`N·b` rows)
/// and `a_prev·Vᵀ` (`b·ho` columns; `X·V_1ᵀ` alone for the first layer), R-backward (every layer
/// but the first) `r_da = r_g·W` and `g·V_side`, and the sums `r_gᵀ·a_prev` and (every layer but
/// the first) `gᵀ·r_a_prev`. FLOPs: `b · flops::hvp`.
fn hvp_gemms(
    spec: &MlpSpec,
    roof: &RoofBufs,
    hb: &mut HvpBufs,
    mut gemm: impl FnMut(usize, Operand<'_>, Operand<'_>, &mut [f32]),
) {
    let dims = spec.dims();
    let b = hb.b;
    for l in 0..dims.len() - 1 {
        let (hi, ho) = (dims[l], dims[l + 1]);
        let input = Operand::new(if l == 0 { &roof.x } else { &roof.act[l - 1] }, N, hi);
        let w = Operand::new(&roof.w[l], ho, hi);
        let v = Operand::new(&hb.v[l], b * ho, hi);
        if l > 0 {
            let ra = Operand::new(&hb.ra[l - 1], N * b, hi);
            gemm(l, ra, w.t(), &mut hb.rz[l]);
        }
        gemm(l, input, v.t(), &mut hb.rz[l]);
        let rg = Operand::new(&hb.rg[l], N, b * ho);
        gemm(l, rg.t(), input, &mut hb.hv[l]);
        if l > 0 {
            let g = Operand::new(&roof.z[l], N, ho);
            let rgs = Operand::new(&hb.rg[l], N * b, ho);
            gemm(l, rgs, w, &mut hb.rda[l]);
            gemm(l, g, Operand::new(&hb.v[l], ho, b * hi), &mut hb.rda[l]);
            let ra = Operand::new(&hb.ra[l - 1], N, b * hi);
            gemm(l, g.t(), ra, &mut hb.hv_side[l]);
        }
    }
}

/// The same GEMMs through matrixmultiply (no thread pool of its own: rows of the output are
/// split across the rayon pool for t > 1).
fn roof_mm(spec: &MlpSpec, bufs: &mut RoofBufs, threads: usize) {
    gradient_gemms(spec, bufs, |_, a, b, c| mm(threads, a, b, c));
}

/// Row-split matrixmultiply sgemm: `C (m × n, row-major) = A (m × k) · B (k × n)`.
fn mm(t: usize, a: Operand<'_>, b: Operand<'_>, c: &mut [f32]) {
    use rayon::prelude::*;
    let ((m, k), n) = (a.shape(), b.shape().1);
    let ((rsa, csa), (rsb, csb)) = (a.strides(), b.strides());
    let (a, b) = (a.data, b.data);
    let rows = m.div_ceil(t.max(1));
    c[..m * n]
        .par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(i, cc)| {
            let r0 = i * rows;
            let mr = cc.len() / n;
            // SAFETY: the operands hold at least rows × cols elements (checked in Operand::new), so
            // the pointers address in-bounds row ranges of a, b and cc with these strides.
            unsafe {
                matrixmultiply::sgemm(
                    mr,
                    k,
                    n,
                    1.0,
                    a.as_ptr().offset(r0 as isize * rsa),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    0.0,
                    cc.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        });
}

struct RoofBufs {
    x: Vec<f32>,
    w: Vec<Vec<f32>>,
    z: Vec<Vec<f32>>,
    act: Vec<Vec<f32>>,
    dw: Vec<Vec<f32>>,
    /// `da_{l}` (input gradient of layer `l + 1`), `N × h_{l+1}`.
    da: Vec<Vec<f32>>,
}

impl RoofBufs {
    fn new(spec: &MlpSpec, x: Vec<f32>) -> Self {
        let dims = spec.dims();
        let layers = 0..dims.len() - 1;
        RoofBufs {
            x,
            w: layers
                .clone()
                .map(|l| vec![0.01; dims[l] * dims[l + 1]])
                .collect(),
            z: layers.clone().map(|l| vec![0.0; N * dims[l + 1]]).collect(),
            act: layers.clone().map(|l| vec![0.5; N * dims[l + 1]]).collect(),
            dw: layers
                .clone()
                .map(|l| vec![0.0; dims[l] * dims[l + 1]])
                .collect(),
            da: layers.map(|l| vec![0.0; N * dims[l + 1]]).collect(),
        }
    }
}

fn bench_kernels(c: &mut Criterion) {
    let data = common::synthetic_data(N);
    for h in common::widths(&[200], &[100, 200, 400, 800]) {
        let spec = MlpSpec::new(D, &[h, h], 10, Activation::Tanh).unwrap();
        let p = init_params::<f32>(&spec, 0).data;
        let mut net = Net::new(&spec, Loss::Mse, data.clone(), NetConfig::default());
        // The same passes with the first layer on faer, side by side with the default.
        let faer_cfg = NetConfig {
            own_gemm: false,
            ..NetConfig::default()
        };
        let own = net.first_layer_gemm() == "own";
        let mut net_faer = own.then(|| Net::new(&spec, Loss::Mse, data.clone(), faer_cfg));
        let mut roof = RoofBufs::new(&spec, data.x.clone());
        let mut packed = own.then(|| {
            let mut x = eosbench::kernels::sgemm::PackedB::default();
            eosbench::kernels::sgemm::pack_rows(Par::Seq, &data.x, N, D, &mut x);
            OwnPacked {
                x,
                w: Default::default(),
                split: eosbench::kernels::strassen::SplitX::new(Par::Seq, &data.x, N, D),
                w_split: Vec::new(),
                min_width: NetConfig::default().strassen_min_width,
            }
        });
        // The HVP's GEMMs alone at b = 1 and 4: the roof of the block ratio.
        let mut hvp_bufs: Vec<HvpBufs> = if own {
            [1, 4].iter().map(|&b| HvpBufs::new(&spec, b)).collect()
        } else {
            Vec::new()
        };
        let mut grad = vec![0f32; p.len()];
        let mut g = c.benchmark_group(format!("kernels/h{h}"));
        g.sampling_mode(common::flat());
        for &t in &common::thread_counts() {
            let pool = common::pool(t);
            let par = Par::from_threads(t);
            pool.install(|| net.gradient(&p, &mut grad, par));
            if let Some(nf) = net_faer.as_mut() {
                pool.install(|| nf.gradient(&p, &mut grad, par));
            }
            g.throughput(Throughput::Elements(flops::forward(&spec, N) as u64));
            g.bench_function(BenchmarkId::new("loss", format!("t{t}")), |bch| {
                bch.iter(|| pool.install(|| net.evaluate(&p, par)))
            });
            g.throughput(Throughput::Elements(flops::gradient(&spec, N) as u64));
            g.bench_function(BenchmarkId::new("gradient", format!("t{t}")), |bch| {
                bch.iter(|| pool.install(|| net.gradient(&p, &mut grad, par)))
            });
            if let Some(nf) = net_faer.as_mut() {
                g.bench_function(BenchmarkId::new("gradient-faer", format!("t{t}")), |bch| {
                    bch.iter(|| pool.install(|| nf.gradient(&p, &mut grad, par)))
                });
            }
            g.bench_function(BenchmarkId::new("roof-faer", format!("t{t}")), |bch| {
                bch.iter(|| pool.install(|| roof_faer(&spec, &mut roof, t)))
            });
            if let Some(packed) = packed.as_mut() {
                g.bench_function(BenchmarkId::new("roof-own", format!("t{t}")), |bch| {
                    bch.iter(|| pool.install(|| gradient_gemms(&spec, &mut roof, packed.gemm(t))))
                });
            }
            g.bench_function(BenchmarkId::new("roof-mm", format!("t{t}")), |bch| {
                bch.iter(|| pool.install(|| roof_mm(&spec, &mut roof, t)))
            });
            if let Some(packed) = packed.as_mut() {
                for hb in hvp_bufs.iter_mut() {
                    let b = hb.b;
                    g.throughput(Throughput::Elements(
                        (b as f64 * flops::hvp(&spec, N)) as u64,
                    ));
                    g.bench_function(
                        BenchmarkId::new(format!("roof-hvp-b{b}"), format!("t{t}")),
                        |bch| {
                            bch.iter(|| {
                                pool.install(|| hvp_gemms(&spec, &roof, hb, packed.gemm(t)))
                            })
                        },
                    );
                }
            }
            for b in [1usize, 2, 4, 8] {
                let dirs: Vec<f32> = (0..b * p.len())
                    .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
                    .collect();
                let mut out = vec![0f32; b * p.len()];
                g.throughput(Throughput::Elements(
                    (b as f64 * flops::hvp(&spec, N)) as u64,
                ));
                g.bench_function(
                    BenchmarkId::new(format!("hvp-b{b}"), format!("t{t}")),
                    |bch| {
                        bch.iter(|| {
                            pool.install(|| net.hvp(&dirs, &mut out, b, Curvature::Hessian, par))
                        })
                    },
                );
                if let Some(nf) = net_faer.as_mut().filter(|_| b == 1 || b == 4) {
                    g.bench_function(
                        BenchmarkId::new(format!("hvp-b{b}-faer"), format!("t{t}")),
                        |bch| {
                            bch.iter(|| {
                                pool.install(|| nf.hvp(&dirs, &mut out, b, Curvature::Hessian, par))
                            })
                        },
                    );
                }
                if b == 1 {
                    g.throughput(Throughput::Elements(flops::ggn(&spec, N) as u64));
                    g.bench_function(BenchmarkId::new("ggn-b1", format!("t{t}")), |bch| {
                        bch.iter(|| {
                            pool.install(|| {
                                net.hvp(&dirs, &mut out, 1, Curvature::GaussNewton, par)
                            })
                        })
                    });
                    g.throughput(Throughput::Elements(flops::third_order(&spec, N) as u64));
                    g.bench_function(BenchmarkId::new("third-order", format!("t{t}")), |bch| {
                        bch.iter(|| pool.install(|| net.third_order(&dirs, &mut out, par)))
                    });
                }
            }
        }
        g.finish();
    }
}

/// Independent FMA chains: enough to cover the FMA latency (4 cycles) on two pipes, few enough
/// to stay in registers.
const CHAINS: usize = 16;

/// `iters` rounds of `CHAINS` f32 FMAs on the widest vectors this CPU has; returns a value that
/// depends on every chain, so nothing is optimized away. FLOPs: `2 · iters · CHAINS · lanes`.
fn fma_chains(iters: usize) -> (f32, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(iters: usize) -> f32 {
            let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
            let mut acc = [_mm512_set1_ps(1.0); CHAINS];
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = _mm512_fmadd_ps(*x, a, b);
                }
            }
            acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(iters: usize) -> f32 {
            let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
            let mut acc = [_mm256_set1_ps(1.0); CHAINS];
            for _ in 0..iters {
                for x in acc.iter_mut() {
                    *x = _mm256_fmadd_ps(*x, a, b);
                }
            }
            let mut lanes = [0f32; 8];
            let mut s = 0.0;
            for x in acc {
                _mm256_storeu_ps(lanes.as_mut_ptr(), x);
                s += lanes.iter().sum::<f32>();
            }
            s
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected at run time.
            return (unsafe { avx512(iters) }, 16);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were detected at run time.
            return (unsafe { avx2(iters) }, 8);
        }
    }
    let mut acc = [1f32; CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = x.mul_add(0.999_999, 1e-7);
        }
    }
    (acc.iter().sum(), 1)
}

/// The machine's f32 FMA peak at each thread count (every thread runs the same chains).
fn bench_peak(c: &mut Criterion) {
    use rayon::prelude::*;
    const ITERS: usize = 1 << 20;
    let lanes = fma_chains(1).1;
    let mut g = c.benchmark_group("kernels/peak");
    g.sampling_mode(common::flat());
    for &t in &common::thread_counts() {
        let pool = common::pool(t);
        g.throughput(Throughput::Elements(
            (2 * ITERS * CHAINS * lanes * t) as u64,
        ));
        g.bench_function(BenchmarkId::new("fma", format!("t{t}")), |bch| {
            bch.iter(|| {
                pool.install(|| {
                    (0..t)
                        .into_par_iter()
                        .map(|_| fma_chains(std::hint::black_box(ITERS)).0)
                        .sum::<f32>()
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_peak, bench_kernels
}
criterion_main!(benches);
