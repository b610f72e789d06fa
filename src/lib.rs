//! eosbench: edge-of-stability training dynamics on CPUs — exact Hessian-vector products,
//! block Lanczos sharpness and full-batch gradient descent.
//!
//! Data flow: [`data`] → [`model`] parameters → [`mlp`] passes (over [`kernels`]) →
//! [`hvp`] operators → [`eig`] solvers.

pub mod eig;
pub mod model;
pub mod par;
pub mod real;

pub use par::Par;
pub use real::Real;
