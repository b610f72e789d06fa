//! eosbench: edge-of-stability training dynamics on CPUs — exact Hessian-vector products,
//! block Lanczos sharpness and full-batch gradient descent.
//!
//! Data flow: [`data`] → [`model`] parameters → [`train`] (gradient descent) → [`mlp`] passes
//! (over [`kernels`]) → [`hvp`] operators → [`eig`] solvers; records leave through [`report`].

pub mod cli;
pub mod data;
pub mod eig;
pub mod hvp;
pub mod kernels;
pub mod mlp;
pub mod model;
pub mod par;
pub mod real;
pub mod report;
pub mod sweep;
pub mod train;

pub use par::Par;
pub use real::Real;
