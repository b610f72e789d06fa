use super::{MlpSpec, Params};
use crate::real::Real;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// PyTorch-default initialization of `nn.Linear`: weight and bias entries `U(−k, k)` with
/// `k = 1/√fan_in`, drawn layer by layer (weight row-major, then bias) from one xoshiro256++
/// stream seeded with `seed`. Values are drawn in f64 (53 random bits) and then rounded to `T`,
/// so the f32 and f64 initializations are the same point up to rounding.
pub fn init_params<T: Real>(spec: &MlpSpec, seed: u64) -> Params<T> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut p = Params::<T>::zeros(spec);
    for slot in p.layout.layers.clone() {
        let k = 1.0 / (slot.cols as f64).sqrt();
        for i in slot.w_range().chain(slot.b_range()) {
            let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            p.data[i] = T::from_f64((2.0 * u - 1.0) * k);
        }
    }
    p
}
