//! Phase timings of the gradient and of HVP blocks at the Figure-1 shape (synthetic data):
//! `cargo run --release --example phases -- [threads] [width] [input_dim] [row_block] [gemm] [pairs]
//! [strassen_min_width]`,
//! `gemm` = `own` (default) or `faer` for the first layer's products. With `pairs` > 0 it then
//! times that many interleaved pairs of a single product and a block of 4 (the order alternates
//! from pair to pair) and prints the median per-pair ratio of the block's time per direction to
//! the single's: the two sides see the same load on a shared machine.
use eosbench::mlp::{Curvature, Data, Net, NetConfig};
use eosbench::model::{init_params, Activation, Loss, MlpSpec};
use eosbench::par::with_threads;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .take(4)
        .map(|a| a.parse().expect("number"))
        .collect();
    let threads = args.first().copied().unwrap_or(1);
    let h = args.get(1).copied().unwrap_or(200);
    let d = args.get(2).copied().unwrap_or(3072);
    let rb = args
        .get(3)
        .copied()
        .unwrap_or(NetConfig::default().row_block);
    let pairs: usize = std::env::args()
        .nth(6)
        .map_or(0, |a| a.parse().expect("pairs: a number"));
    let min_width: usize = std::env::args()
        .nth(7)
        .map_or(NetConfig::default().strassen_min_width, |a| {
            a.parse().expect("strassen_min_width: a number")
        });
    let own_gemm = match std::env::args().nth(5).as_deref() {
        None | Some("own") => true,
        Some("faer") => false,
        Some(other) => panic!("gemm must be `own` or `faer`, not {other:?}"),
    };
    let ds = eosbench::data::synthetic(5000, d, 10, 0);
    let spec = MlpSpec::new(d, &[h, h], 10, Activation::Tanh).unwrap();
    let p = init_params::<f32>(&spec, 0).data;
    with_threads(threads, |par| {
        let mut net = Net::new(
            &spec,
            Loss::Mse,
            Data::new(ds.x.clone(), ds.labels.clone(), d, 10),
            NetConfig {
                row_block: rb,
                own_gemm,
                strassen_min_width: min_width,
                ..NetConfig::default()
            },
        );
        println!("first-layer GEMM: {}", net.first_layer_gemm());
        let mut g = vec![0f32; p.len()];
        net.gradient(&p, &mut g, par);
        let reps = 5;
        let before = net.phase_times();
        let t0 = Instant::now();
        for _ in 0..reps {
            net.gradient(&p, &mut g, par);
        }
        let dt = t0.elapsed().as_secs_f64() / reps as f64;
        let a = net.phase_times();
        println!(
            "gradient {:.1} ms: local {:.1} reduce {:.1}",
            dt * 1e3,
            (a.local - before.local) * 1e3 / reps as f64,
            (a.grad_reduce - before.grad_reduce) * 1e3 / reps as f64
        );
        for b in [1usize, 2, 4, 8] {
            let dirs: Vec<f32> = (0..b * p.len())
                .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
                .collect();
            let mut out = vec![0f32; b * p.len()];
            net.hvp(&dirs, &mut out, b, Curvature::Hessian, par);
            let before = net.phase_times();
            let t0 = Instant::now();
            for _ in 0..reps {
                net.hvp(&dirs, &mut out, b, Curvature::Hessian, par);
            }
            let dt = t0.elapsed().as_secs_f64() / reps as f64;
            let a = net.phase_times();
            let r = reps as f64 * b as f64;
            let ms = |now: f64, then: f64| (now - then) * 1e3 / r;
            println!(
                "hvp b={b}: {:.1} ms/dir: rlocal {:.1} (layer 1 {:.1}) reduce {:.1} (layer 1 {:.1}) copy {:.1}",
                dt * 1e3 / b as f64,
                ms(a.rlocal, before.rlocal),
                ms(a.rlocal_first, before.rlocal_first),
                ms(a.hvp_reduce, before.hvp_reduce),
                ms(a.hvp_reduce_first, before.hvp_reduce_first),
                ms(a.hvp_copy, before.hvp_copy)
            );
        }
        if pairs > 0 {
            let b = 4;
            let dirs: Vec<f32> = (0..b * p.len())
                .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
                .collect();
            let mut out = vec![0f32; b * p.len()];
            let mut time = |b: usize| {
                let t0 = Instant::now();
                net.hvp(
                    &dirs[..b * p.len()],
                    &mut out[..b * p.len()],
                    b,
                    Curvature::Hessian,
                    par,
                );
                t0.elapsed().as_secs_f64() * 1e3 / b as f64
            };
            let (mut one, mut four, mut ratio) = (vec![], vec![], vec![]);
            for i in 0..pairs {
                let (t1, t4) = if i % 2 == 0 {
                    let t1 = time(1);
                    (t1, time(4))
                } else {
                    let t4 = time(4);
                    (time(1), t4)
                };
                one.push(t1);
                four.push(t4);
                ratio.push(t4 / t1);
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (m1, m4, mr) = (median(&mut one), median(&mut four), median(&mut ratio));
            println!(
                "interleaved, {pairs} pairs: b=1 {m1:.1} ms, b=4 {m4:.1} ms/dir; per-pair ratio median {mr:.3} (quartiles {:.3}–{:.3})",
                ratio[pairs / 4],
                ratio[(3 * pairs) / 4]
            );
        }
    });
}
