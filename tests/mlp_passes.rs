//! The fast MLP passes against their slow twin, finite differences and each other.

use eosbench::kernels::{kernel_path, KernelPath};
use eosbench::mlp::{reference, Curvature, Data, Net, NetConfig};
use eosbench::model::{init_params, Activation, Loss, MlpSpec};
use eosbench::par::with_threads;
use eosbench::Par;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

fn problem(n: usize, d: usize, c: usize, seed: u64) -> (Vec<f64>, Vec<u8>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let x = (0..n * d).map(|_| 1.5 * uniform(&mut rng)).collect();
    let y = (0..n).map(|_| (rng.next_u64() % c as u64) as u8).collect();
    (x, y)
}

fn random_vec(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..len).map(|_| uniform(&mut rng)).collect()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-300);
    num / den
}

/// [`rel_err`] of two f32 results, in f64.
fn rel_err_f32(a: &[f32], b: &[f32]) -> f64 {
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    rel_err(&to64(a), &to64(b))
}

/// Small config so that every code path (several row blocks, several physical batches, a
/// ragged last block) runs on tiny inputs.
fn tiny_cfg() -> NetConfig {
    NetConfig {
        row_block: 7,
        chunk_rows: 15,
        ..NetConfig::default()
    }
}

/// The activations with derivatives of every order (relu's kink upsets finite differences).
const SMOOTH: [Activation; 4] = [
    Activation::Tanh,
    Activation::Softplus,
    Activation::Gelu,
    Activation::Linear,
];

fn spec(act: Activation) -> MlpSpec {
    MlpSpec::new(5, &[6, 4], 3, act).unwrap()
}

/// PyTorch-default init of `s` (seed `seed`) scaled by 2: the parameters of the comparisons
/// with the slow twin.
fn doubled_init(s: &MlpSpec, seed: u64) -> Vec<f64> {
    init_params::<f64>(s, seed)
        .data
        .iter()
        .map(|v| 2.0 * v)
        .collect()
}

fn net(
    act: Activation,
    loss: Loss,
    n: usize,
    cfg: NetConfig,
) -> (Net<f64>, Vec<f64>, Vec<f64>, Vec<u8>) {
    let s = spec(act);
    let (x, y) = problem(n, 5, 3, 11);
    let p = doubled_init(&s, 3);
    let net = Net::new(&s, loss, Data::new(x.clone(), y.clone(), 5, 3), cfg);
    (net, p, x, y)
}

#[test]
fn loss_gradient_and_products_match_the_reference_twin() {
    for act in Activation::ALL {
        for loss in [Loss::Mse, Loss::Ce] {
            let (mut net, p, x, y) = net(act, loss, 40, tiny_cfg());
            let s = net.spec().clone();
            let mut g = vec![0.0; p.len()];
            let ev = net.gradient(&p, &mut g, Par::Seq);
            let (l_ref, acc_ref, g_ref) = reference::loss_grad(&s, loss, &x, &y, &p);
            assert!(
                (ev.loss - l_ref).abs() <= 1e-13 * l_ref.abs(),
                "{act} {loss}: loss {} vs {l_ref}",
                ev.loss
            );
            assert_eq!(ev.accuracy, acc_ref);
            assert!(
                rel_err(&g, &g_ref) < 1e-12,
                "{act} {loss}: grad err {}",
                rel_err(&g, &g_ref)
            );
            for curv in [Curvature::Hessian, Curvature::GaussNewton] {
                let v = random_vec(p.len(), 5);
                let mut hv = vec![0.0; p.len()];
                net.hvp(&v, &mut hv, 1, curv, Par::Seq);
                let hv_ref = reference::hvp(&s, loss, &x, &y, &p, &v, curv);
                let e = rel_err(&hv, &hv_ref);
                assert!(e < 1e-12, "{act} {loss} {curv:?}: hvp err {e}");
            }
        }
    }
}

#[test]
fn gradient_matches_central_differences() {
    for act in SMOOTH {
        for loss in [Loss::Mse, Loss::Ce] {
            let (mut net, p, _, _) = net(act, loss, 30, tiny_cfg());
            let mut g = vec![0.0; p.len()];
            net.gradient(&p, &mut g, Par::Seq);
            let u = random_vec(p.len(), 9);
            let h = 1e-5;
            let shifted =
                |t: f64| -> Vec<f64> { p.iter().zip(&u).map(|(a, b)| a + t * b).collect() };
            let lp = net.evaluate(&shifted(h), Par::Seq).loss;
            let lm = net.evaluate(&shifted(-h), Par::Seq).loss;
            let fd = (lp - lm) / (2.0 * h);
            let an: f64 = g.iter().zip(&u).map(|(a, b)| a * b).sum();
            assert!(
                (fd - an).abs() <= 1e-7 * an.abs().max(1e-3),
                "{act} {loss}: fd {fd} vs {an}"
            );
        }
    }
}

#[test]
fn hessian_product_matches_differences_of_gradients() {
    for act in [
        Activation::Tanh,
        Activation::Softplus,
        Activation::Gelu,
        Activation::Relu,
    ] {
        for loss in [Loss::Mse, Loss::Ce] {
            let (mut net, p, _, _) = net(act, loss, 30, tiny_cfg());
            let v = random_vec(p.len(), 21);
            let mut g = vec![0.0; p.len()];
            net.gradient(&p, &mut g, Par::Seq);
            let mut hv = vec![0.0; p.len()];
            net.hvp(&v, &mut hv, 1, Curvature::Hessian, Par::Seq);
            let h = 1e-5;
            let mut gp = vec![0.0; p.len()];
            let mut gm = vec![0.0; p.len()];
            let pp: Vec<f64> = p.iter().zip(&v).map(|(a, b)| a + h * b).collect();
            let pm: Vec<f64> = p.iter().zip(&v).map(|(a, b)| a - h * b).collect();
            net.gradient(&pp, &mut gp, Par::Seq);
            net.gradient(&pm, &mut gm, Par::Seq);
            let fd: Vec<f64> = gp
                .iter()
                .zip(&gm)
                .map(|(a, b)| (a - b) / (2.0 * h))
                .collect();
            let e = rel_err(&hv, &fd);
            assert!(e < 1e-6, "{act} {loss}: hvp vs fd {e}");
        }
    }
}

#[test]
fn products_are_symmetric_linear_and_blockwise_equal_to_columns() {
    let (mut net, p, _, _) = net(Activation::Tanh, Loss::Ce, 37, tiny_cfg());
    let mut g = vec![0.0; p.len()];
    net.gradient(&p, &mut g, Par::Seq);
    let np = p.len();
    let b = 4;
    let dirs: Vec<f64> = random_vec(b * np, 77);
    for curv in [Curvature::Hessian, Curvature::GaussNewton] {
        let mut block = vec![0.0; b * np];
        net.hvp(&dirs, &mut block, b, curv, Par::Seq);
        let mut cols = vec![0.0; b * np];
        for j in 0..b {
            net.hvp(
                &dirs[j * np..(j + 1) * np],
                &mut cols[j * np..(j + 1) * np],
                1,
                curv,
                Par::Seq,
            );
        }
        assert!(rel_err(&block, &cols) < 1e-13, "block vs columns {curv:?}");
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let (u, v) = (&dirs[..np], &dirs[np..2 * np]);
        let (hu, hv) = (&block[..np], &block[np..2 * np]);
        let (a, c) = (dot(u, hv), dot(hu, v));
        assert!(
            (a - c).abs() <= 1e-12 * a.abs().max(c.abs()),
            "symmetry {a} {c}"
        );
        // Linearity: H(2u − 3v) = 2Hu − 3Hv.
        let w: Vec<f64> = u.iter().zip(v).map(|(x, y)| 2.0 * x - 3.0 * y).collect();
        let mut hw = vec![0.0; np];
        net.hvp(&w, &mut hw, 1, curv, Par::Seq);
        let lin: Vec<f64> = hu.iter().zip(hv).map(|(x, y)| 2.0 * x - 3.0 * y).collect();
        assert!(rel_err(&hw, &lin) < 1e-12);
    }
}

#[test]
fn linear_model_hessian_is_the_analytic_one() {
    // One affine layer, MSE: L = (1/2n) Σ ‖W x + b − y‖², so H = I_c ⊗ [X 1]ᵀ[X 1] / n.
    let s = MlpSpec::new(4, &[], 2, Activation::Linear).unwrap();
    let (x, y) = problem(13, 4, 2, 5);
    let mut net = Net::new(&s, Loss::Mse, Data::new(x.clone(), y, 4, 2), tiny_cfg());
    let p = init_params::<f64>(&s, 1).data;
    let mut g = vec![0.0; p.len()];
    net.gradient(&p, &mut g, Par::Seq);
    let v = random_vec(p.len(), 3);
    let mut hv = vec![0.0; p.len()];
    net.hvp(&v, &mut hv, 1, Curvature::Hessian, Par::Seq);
    let lay = s.layout();
    let slot = lay.layers[0];
    let mut want = vec![0.0; p.len()];
    for i in 0..13 {
        let xi = &x[i * 4..(i + 1) * 4];
        for r in 0..2 {
            // (V_r · x_i + c_r) is the change of output r; its gradient w.r.t. (W_r, b_r) is (x_i, 1).
            let t: f64 = (0..4)
                .map(|k| v[slot.w_off + r * 4 + k] * xi[k])
                .sum::<f64>()
                + v[slot.b_off + r];
            for k in 0..4 {
                want[slot.w_off + r * 4 + k] += t * xi[k] / 13.0;
            }
            want[slot.b_off + r] += t / 13.0;
        }
    }
    assert!(rel_err(&hv, &want) < 1e-13);
}

#[test]
fn dense_hessian_of_a_tiny_net_is_symmetric_and_matches_the_reference() {
    let s = MlpSpec::new(3, &[4], 2, Activation::Tanh).unwrap();
    let (x, y) = problem(9, 3, 2, 8);
    let mut net = Net::new(
        &s,
        Loss::Mse,
        Data::new(x.clone(), y.clone(), 3, 2),
        tiny_cfg(),
    );
    let p = init_params::<f64>(&s, 2).data;
    let np = p.len();
    let mut g = vec![0.0; np];
    net.gradient(&p, &mut g, Par::Seq);
    let eye: Vec<f64> = (0..np * np)
        .map(|k| if k / np == k % np { 1.0 } else { 0.0 })
        .collect();
    let mut h = vec![0.0; np * np];
    net.hvp(&eye, &mut h, np, Curvature::Hessian, Par::Seq);
    for i in 0..np {
        for j in 0..np {
            assert!(
                (h[i * np + j] - h[j * np + i]).abs() < 1e-14,
                "H[{i},{j}] not symmetric"
            );
        }
        let col = reference::hvp(
            &s,
            Loss::Mse,
            &x,
            &y,
            &p,
            &eye[i * np..(i + 1) * np],
            eosbench::mlp::Curvature::Hessian,
        );
        assert!(rel_err(&h[i * np..(i + 1) * np], &col) < 1e-13);
    }
}

/// Gradient, a 3-direction HVP block and a third-order product of a 37-33-17-10 net on 300
/// examples in physical batches of 100, in f32 (loss bits, gradient, products, first-layer
/// GEMM, third-order product), with the copies around a product in pieces of `copy_chunk`.
fn f32_passes(
    own_gemm: bool,
    threads: usize,
    copy_chunk: usize,
) -> (u64, Vec<f32>, Vec<f32>, &'static str, Vec<f32>) {
    let s = MlpSpec::new(37, &[33, 17], 10, Activation::Tanh).unwrap();
    let (x, y) = problem(300, 37, 10, 4);
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let p = init_params::<f32>(&s, 7).data;
    let cfg = NetConfig {
        row_block: 32,
        chunk_rows: 100,
        own_gemm,
        copy_chunk,
        ..NetConfig::default()
    };
    let dirs: Vec<f32> = random_vec(3 * p.len(), 1)
        .iter()
        .map(|&v| v as f32)
        .collect();
    with_threads(threads, |par| {
        let mut net = Net::new(&s, Loss::Mse, Data::new(xf, y, 37, 10), cfg);
        let mut g = vec![0f32; p.len()];
        let ev = net.gradient(&p, &mut g, par);
        let mut hv = vec![0f32; 3 * p.len()];
        net.hvp(&dirs, &mut hv, 3, Curvature::Hessian, par);
        let mut t = vec![0f32; p.len()];
        net.third_order(&dirs[..p.len()], &mut t, par);
        (ev.loss.to_bits(), g, hv, net.first_layer_gemm(), t)
    })
}

#[test]
fn results_are_bit_identical_across_thread_counts() {
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    // Both first-layer GEMMs (eosbench's own runs where the CPU has AVX-512); the copies
    // around a product whole, and in pieces of 40 elements (one or two rows of a weight
    // matrix).
    let whole = NetConfig::default().copy_chunk;
    for own_gemm in [true, false] {
        let base = f32_passes(own_gemm, 1, whole);
        for (t, copy_chunk) in [
            (2, whole),
            (3, whole),
            (8, whole),
            (1, 40),
            (2, 40),
            (8, 40),
        ] {
            let r = f32_passes(own_gemm, t, copy_chunk);
            let at =
                format!("at {t} threads, copies in pieces of {copy_chunk} (own_gemm {own_gemm})");
            assert_eq!(base.0, r.0, "loss differs {at}");
            assert!(same(&base.1, &r.1), "gradient differs {at}");
            assert!(same(&base.2, &r.2), "hvp differs {at}");
            assert!(same(&base.4, &r.4), "third-order product differs {at}");
        }
    }
}

/// Gradient, a 3-direction Hessian block, a Gauss–Newton product and a third-order product of
/// a 38-32-17-10 net on 300 examples in physical batches of 128 (even sizes, so the first
/// layer's products split), in f32, with the first layer's products from `min_width` columns
/// as Strassen's 7 (`usize::MAX`: never) or on faer.
fn split_passes(own_gemm: bool, min_width: usize, threads: usize) -> Vec<Vec<f32>> {
    let s = MlpSpec::new(38, &[32, 17], 10, Activation::Tanh).unwrap();
    let (x, y) = problem(300, 38, 10, 5);
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let p = init_params::<f32>(&s, 8).data;
    let cfg = NetConfig {
        row_block: 32,
        chunk_rows: 128,
        own_gemm,
        strassen_min_width: min_width,
        ..NetConfig::default()
    };
    let dirs: Vec<f32> = random_vec(3 * p.len(), 3)
        .iter()
        .map(|&v| v as f32)
        .collect();
    with_threads(threads, |par| {
        let mut net = Net::new(&s, Loss::Mse, Data::new(xf, y, 38, 10), cfg);
        let mut g = vec![0f32; p.len()];
        let ev = net.gradient(&p, &mut g, par);
        let mut hv = vec![0f32; 3 * p.len()];
        net.hvp(&dirs, &mut hv, 3, Curvature::Hessian, par);
        let mut gv = vec![0f32; p.len()];
        net.hvp(&dirs[..p.len()], &mut gv, 1, Curvature::GaussNewton, par);
        let mut t = vec![0f32; p.len()];
        net.third_order(&dirs[..p.len()], &mut t, par);
        vec![vec![ev.loss as f32], g, hv, gv, t]
    })
}

/// The first layer's products as Strassen's 7 (from 32 columns: a single direction's products
/// and the block's 96) agree with faer and with the 8-product own GEMM up to f32 rounding, run
/// where they should (the curvature products' bits differ from the 8-product ones; the
/// gradient's, over all 300 examples, more than a physical batch, do not), and give the same
/// bits at 1, 2, 3 and 8 threads.
#[test]
fn strassen_first_layer_agrees_and_is_bit_identical_across_threads() {
    if kernel_path() != KernelPath::Avx512 {
        eprintln!("skipped: the own GEMM needs the AVX-512 path");
        return;
    }
    let split = split_passes(true, 32, 1);
    let plain = split_passes(true, usize::MAX, 1);
    let faer = split_passes(false, 32, 1);
    let names = ["loss", "gradient", "hvp", "gauss-newton", "third order"];
    for (k, name) in names.iter().enumerate() {
        for (other, what) in [(&plain, "8 products"), (&faer, "faer")] {
            let e = rel_err_f32(&split[k], &other[k]);
            assert!(e < 1e-5, "{name}: relative difference {e:e} to {what}");
        }
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&split[2]) != bits(&plain[2]) && bits(&split[3]) != bits(&plain[3]),
        "the curvature products gave the 8-product bits: they did not split"
    );
    assert!(
        bits(&split[1]) == bits(&plain[1]),
        "the gradient over more examples than a physical batch split"
    );
    for t in [2, 3, 8] {
        let r = split_passes(true, 32, t);
        for (k, name) in names.iter().enumerate() {
            assert!(
                bits(&r[k]) == bits(&split[k]),
                "{name} differs at {t} threads"
            );
        }
    }
}

/// `first_layer_splits` says which curvature products split: from `strassen_min_width`
/// columns, with the own GEMM, where every physical batch has an even number of examples.
#[test]
fn first_layer_splits_names_the_split_products() {
    if kernel_path() != KernelPath::Avx512 {
        eprintln!("skipped: the own GEMM needs the AVX-512 path");
        return;
    }
    let s = MlpSpec::new(38, &[32, 17], 10, Activation::Tanh).unwrap();
    let net = |n: usize, chunk_rows: usize, own_gemm: bool| {
        let (x, y) = problem(n, 38, 10, 5);
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let cfg = NetConfig {
            row_block: 32,
            chunk_rows,
            own_gemm,
            strassen_min_width: 64,
            ..NetConfig::default()
        };
        Net::new(&s, Loss::Mse, Data::new(xf, y, 38, 10), cfg)
    };
    let even = net(300, 128, true);
    assert!(
        !even.first_layer_splits(1),
        "32 columns are under the minimum of 64"
    );
    assert!(even.first_layer_splits(2) && even.first_layer_splits(3));
    assert!(
        !net(300, 128, false).first_layer_splits(3),
        "faer never splits"
    );
    // Batches of 128, 128 and 45 examples: the last one does not split.
    assert!(!net(301, 128, true).first_layer_splits(3));
}

/// The 29-21-19-6 tanh net of the own-GEMM comparisons with faer, in f32, on 150 examples
/// (seed `seed`): `(spec, x, labels, parameters)`.
fn own_gemm_case(seed: u64) -> (MlpSpec, Vec<f32>, Vec<u8>, Vec<f32>) {
    let s = MlpSpec::new(29, &[21, 19], 6, Activation::Tanh).unwrap();
    let (x, y) = problem(150, 29, 6, seed);
    let xf = x.iter().map(|&v| v as f32).collect();
    let p = init_params::<f32>(&s, 5).data;
    (s, xf, y, p)
}

/// The config of those comparisons: row blocks of 16 and physical batches of 40, so a ragged
/// last block and batch.
fn own_gemm_cfg(own_gemm: bool) -> NetConfig {
    NetConfig {
        row_block: 16,
        chunk_rows: 40,
        own_gemm,
        ..NetConfig::default()
    }
}

#[test]
fn own_gemm_gauss_newton_agrees_with_faer() {
    // The Gauss-Newton product skips the side-by-side directions; run it after a Hessian block
    // of another size so that stale packed directions would show.
    let (s, xf, y, p) = own_gemm_case(8);
    let dirs: Vec<f32> = random_vec(3 * p.len(), 2)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let run = |own_gemm: bool| {
        let data = Data::new(xf.clone(), y.clone(), 29, 6);
        let mut net = Net::new(&s, Loss::Ce, data, own_gemm_cfg(own_gemm));
        let mut g = vec![0f32; p.len()];
        net.gradient(&p, &mut g, Par::Seq);
        let mut hv = vec![0f32; 3 * p.len()];
        net.hvp(&dirs, &mut hv, 3, Curvature::Hessian, Par::Seq);
        let mut gv = vec![0f32; 2 * p.len()];
        net.hvp(
            &dirs[p.len()..],
            &mut gv,
            2,
            Curvature::GaussNewton,
            Par::Seq,
        );
        (net.first_layer_gemm(), gv)
    };
    let (own, faer) = (run(true), run(false));
    assert_eq!(faer.0, "faer");
    let e = rel_err_f32(&own.1, &faer.1);
    assert!(
        e < 1e-5,
        "Gauss-Newton: relative difference {e:e} ({} vs faer)",
        own.0
    );
}

/// The own GEMM's sums read the cached state packed once per gradient: after a gradient at a
/// second point (and an evaluation at a third, which the products must not see, and a
/// third-order product, which packs its own directions), a block of Hessian products agrees
/// with faer's on a net that only saw the second point.
#[test]
fn own_gemm_products_follow_the_cached_state() {
    let (s, xf, y, p) = own_gemm_case(9);
    let shift = |seed: u64| -> Vec<f32> {
        let u = random_vec(p.len(), seed);
        p.iter().zip(&u).map(|(a, b)| a + 0.3 * *b as f32).collect()
    };
    let (p2, p3) = (shift(6), shift(7));
    let dirs: Vec<f32> = random_vec(3 * p.len(), 4)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let data = || Data::new(xf.clone(), y.clone(), 29, 6);
    let mut g = vec![0f32; p.len()];
    let mut own = Net::new(&s, Loss::Mse, data(), own_gemm_cfg(true));
    let mut hv = vec![0f32; 3 * p.len()];
    own.gradient(&p, &mut g, Par::Seq);
    own.hvp(&dirs, &mut hv, 3, Curvature::Hessian, Par::Seq);
    own.evaluate(&p3, Par::Seq);
    own.gradient(&p2, &mut g, Par::Seq);
    // Gauss–Newton and third-order products pack the cached inputs only; the Hessian block
    // then has to pack the output gradients of this point itself.
    let mut gn = vec![0f32; 3 * p.len()];
    own.hvp(&dirs, &mut gn, 3, Curvature::GaussNewton, Par::Seq);
    let mut t = vec![0f32; p.len()];
    own.third_order(&dirs[p.len()..2 * p.len()], &mut t, Par::Seq);
    own.hvp(&dirs, &mut hv, 3, Curvature::Hessian, Par::Seq);
    let mut faer = Net::new(&s, Loss::Mse, data(), own_gemm_cfg(false));
    let mut want = vec![0f32; 3 * p.len()];
    faer.gradient(&p2, &mut g, Par::Seq);
    faer.hvp(&dirs, &mut want, 3, Curvature::Hessian, Par::Seq);
    let e = rel_err_f32(&hv, &want);
    assert!(
        e < 1e-5,
        "Hessian block after a new gradient: relative difference {e:e} ({} vs faer)",
        own.first_layer_gemm()
    );
}

/// The own first-layer GEMM and faer compute the same passes up to f32 rounding (three
/// physical batches exercise the row offsets into the packed data).
#[test]
fn own_first_layer_gemm_agrees_with_faer() {
    let own = f32_passes(true, 2, NetConfig::default().copy_chunk);
    let faer = f32_passes(false, 2, NetConfig::default().copy_chunk);
    assert_eq!(faer.3, "faer");
    if kernel_path() == KernelPath::Avx512 {
        assert_eq!(own.3, "own", "the own GEMM must run on the AVX-512 path");
    }
    let loss = |bits: u64| f64::from_bits(bits);
    assert!((loss(own.0) - loss(faer.0)).abs() <= 1e-6 * loss(faer.0));
    let eg = rel_err_f32(&own.1, &faer.1);
    let eh = rel_err_f32(&own.2, &faer.2);
    eprintln!("own vs faer: gradient {eg:.1e}, hvp {eh:.1e}");
    assert!(eg < 1e-5, "gradient: relative difference {eg:e}");
    assert!(eh < 1e-5, "hvp: relative difference {eh:e}");
    let et = rel_err_f32(&own.4, &faer.4);
    assert!(et < 1e-5, "third order: relative difference {et:e}");
}

#[test]
fn f32_agrees_with_f64() {
    // f32 tanh, softplus and gelu use their fast approximations on the SIMD kernel paths.
    for act in Activation::ALL {
        f32_agrees_with_f64_for(act);
    }
}

fn f32_agrees_with_f64_for(act: Activation) {
    let s = MlpSpec::new(20, &[16, 16], 10, act).unwrap();
    let (x, y) = problem(200, 20, 10, 6);
    let p64 = init_params::<f64>(&s, 9);
    let p32 = p64.cast::<f32>();
    let cfg = NetConfig::default();
    let mut n64 = Net::new(&s, Loss::Mse, Data::new(x.clone(), y.clone(), 20, 10), cfg);
    let mut n32 = Net::new(
        &s,
        Loss::Mse,
        Data::new(x.iter().map(|&v| v as f32).collect(), y, 20, 10),
        cfg,
    );
    let mut g64 = vec![0.0; p64.len()];
    let mut g32 = vec![0f32; p64.len()];
    let e64 = n64.gradient(&p64.data, &mut g64, Par::Seq);
    let e32 = n32.gradient(&p32.data, &mut g32, Par::Seq);
    assert!(
        (e64.loss - e32.loss).abs() < 1e-5 * e64.loss,
        "{act}: loss {} vs {}",
        e32.loss,
        e64.loss
    );
    let g32d: Vec<f64> = g32.iter().map(|&v| v as f64).collect();
    assert!(
        rel_err(&g32d, &g64) < 1e-4,
        "{act}: gradient {}",
        rel_err(&g32d, &g64)
    );
    let v = random_vec(p64.len(), 2);
    let mut h64 = vec![0.0; p64.len()];
    let mut h32 = vec![0f32; p64.len()];
    n64.hvp(&v, &mut h64, 1, Curvature::Hessian, Par::Seq);
    let vf: Vec<f32> = v.iter().map(|&a| a as f32).collect();
    n32.hvp(&vf, &mut h32, 1, Curvature::Hessian, Par::Seq);
    let h32d: Vec<f64> = h32.iter().map(|&v| v as f64).collect();
    assert!(
        rel_err(&h32d, &h64) < 1e-4,
        "{act}: hvp {}",
        rel_err(&h32d, &h64)
    );
    let mut t64 = vec![0.0; p64.len()];
    let mut t32 = vec![0f32; p64.len()];
    n64.third_order(&v, &mut t64, Par::Seq);
    n32.third_order(&vf, &mut t32, Par::Seq);
    let t32d: Vec<f64> = t32.iter().map(|&v| v as f64).collect();
    let et = rel_err(&t32d, &t64);
    assert!(et < 1e-4, "{act}: third-order product {et}");
}

/// The slow twin's `∇³L[u, u]` is the derivative of the Hessian-vector product `H(θ)u` along
/// `u` (central differences of the twin's HVPs), for every smooth activation and both losses.
/// Also a third-order check of the HVP twin itself.
#[test]
fn reference_third_order_matches_differences_of_hessian_products() {
    for act in SMOOTH {
        for loss in [Loss::Mse, Loss::Ce] {
            let s = spec(act);
            let (x, y) = problem(23, 5, 3, 12);
            let p = doubled_init(&s, 4);
            let u = random_vec(p.len(), 31);
            let t = reference::third_order(&s, loss, &x, &y, &p, &u);
            let h = 1e-4;
            let at = |sgn: f64| -> Vec<f64> {
                let q: Vec<f64> = p.iter().zip(&u).map(|(a, b)| a + sgn * h * b).collect();
                reference::hvp(&s, loss, &x, &y, &q, &u, Curvature::Hessian)
            };
            let (hp, hm) = (at(1.0), at(-1.0));
            let fd: Vec<f64> = hp
                .iter()
                .zip(&hm)
                .map(|(a, b)| (a - b) / (2.0 * h))
                .collect();
            let e = rel_err(&t, &fd);
            assert!(e < 1e-6, "{act} {loss}: third order vs fd {e}");
            // Not trivially small: the product carries the net's curvature.
            assert!(
                t.iter().map(|v| v * v).sum::<f64>().sqrt() > 1e-3,
                "{act} {loss}"
            );
        }
    }
}

/// A gradient at `p`, then the third-order product along a random `u` (seed `seed`) and the
/// slow twin's: `(u, fast, twin)`. `t` starts as NaN, so a product that skips an element shows.
fn third_and_twin(
    net: &mut Net<f64>,
    (x, y): (&[f64], &[u8]),
    p: &[f64],
    seed: u64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut g = vec![0.0; p.len()];
    net.gradient(p, &mut g, Par::Seq);
    let u = random_vec(p.len(), seed);
    let mut t = vec![f64::NAN; p.len()];
    net.third_order(&u, &mut t, Par::Seq);
    let t_ref = reference::third_order(net.spec(), net.loss_kind(), x, y, p, &u);
    (u, t, t_ref)
}

/// The fast third-order product equals the slow twin's for every activation and both losses,
/// over several row blocks and physical batches (a ragged last one), and overwrites `out`.
#[test]
fn third_order_matches_the_reference_twin() {
    for act in Activation::ALL {
        for loss in [Loss::Mse, Loss::Ce] {
            let (mut net, p, x, y) = net(act, loss, 40, tiny_cfg());
            let (u, t, t_ref) = third_and_twin(&mut net, (&x, &y), &p, 17);
            let e = rel_err(&t, &t_ref);
            assert!(e < 1e-12, "{act} {loss}: third-order err {e}");
            // Quadratic in u: T[2u, 2u] = 4 T[u, u].
            let u2: Vec<f64> = u.iter().map(|v| 2.0 * v).collect();
            let mut t2 = vec![0.0; p.len()];
            net.third_order(&u2, &mut t2, Par::Seq);
            let t4: Vec<f64> = t.iter().map(|v| 4.0 * v).collect();
            assert!(rel_err(&t2, &t4) < 1e-13, "{act} {loss}: not quadratic");
        }
    }
}

/// Depths other than two hidden layers: none (an affine model under cross-entropy, whose
/// third derivative comes from the loss alone) and three of unequal widths (GELU's cached `z`
/// and `da` per layer).
#[test]
fn third_order_matches_the_reference_twin_at_other_depths() {
    for (hidden, loss, act) in [
        (&[][..], Loss::Ce, Activation::Tanh),
        (&[6, 4, 5][..], Loss::Mse, Activation::Tanh),
        (&[6, 4, 5][..], Loss::Ce, Activation::Tanh),
        (&[6, 4, 5][..], Loss::Mse, Activation::Gelu),
    ] {
        let s = MlpSpec::new(5, hidden, 3, act).unwrap();
        let (x, y) = problem(33, 5, 3, 13);
        let p = doubled_init(&s, 6);
        let mut net = Net::new(&s, loss, Data::new(x.clone(), y.clone(), 5, 3), tiny_cfg());
        let (_, t, t_ref) = third_and_twin(&mut net, (&x, &y), &p, 19);
        assert!(
            t_ref.iter().any(|v| v.abs() > 1e-6),
            "{hidden:?} {loss} {act}"
        );
        let e = rel_err(&t, &t_ref);
        assert!(e < 1e-12, "{hidden:?} {loss} {act}: third-order err {e}");
    }
}
