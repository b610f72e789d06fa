//! Which SIMD code path the elementwise kernels run: detected once per process, overridable.
//!
//! Detection order: `EOSBENCH_KERNEL` (`reference`, `avx2`, `avx512`) if set, else the widest path
//! the CPU supports (AVX-512F > AVX2+FMA > reference). The choice is cached in a [`OnceLock`], so
//! every result file of one process records the same path ([`KernelPath::name`]).
//!
//! Every kernel also takes the path as an explicit argument, so tests can run all
//! [`KernelPath::supported`] paths in one process without the environment variable. A kernel
//! given a path the CPU does not support panics instead of executing unsupported instructions.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The environment variable that forces a kernel path.
pub const KERNEL_ENV: &str = "EOSBENCH_KERNEL";

/// A code path of the elementwise kernels.
///
/// Results are bit-identical across thread counts for one path. `Avx2` and `Avx512` compute
/// identical per-element formulas (only the vector width differs), so they agree bitwise too;
/// `Reference` may differ from them in the last bits where a fast approximation is used
/// (f32 tanh, softplus, gelu).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Plain scalar code, transcendental functions evaluated in f64: the slow twin of every kernel.
    Reference,
    /// 256-bit vectors, AVX2 + FMA.
    Avx2,
    /// 512-bit vectors, AVX-512F (+ AVX2, FMA).
    Avx512,
}

/// Why the requested kernel path cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelPathError {
    #[error(
        "environment variable {KERNEL_ENV}={value:?} names no kernel path; \
         set it to one of `reference`, `avx2`, `avx512`, or unset it to detect the CPU"
    )]
    Unknown { value: String },
    #[error(
        "environment variable {KERNEL_ENV} asks for the `{}` kernel path but this CPU does not \
         support it (supported: {}); choose a supported path or unset {KERNEL_ENV}",
        path.name(),
        supported_names()
    )]
    Unsupported { path: KernelPath },
}

fn supported_names() -> String {
    KernelPath::supported()
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl KernelPath {
    /// All paths, narrowest first.
    pub const ALL: [KernelPath; 3] = [KernelPath::Reference, KernelPath::Avx2, KernelPath::Avx512];

    /// The name written into result files and accepted by `EOSBENCH_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Reference => "reference",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path (the reference path runs everywhere).
    pub fn is_supported(self) -> bool {
        match self {
            KernelPath::Reference => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => {
                KernelPath::Avx2.is_supported() && std::is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            KernelPath::Avx2 | KernelPath::Avx512 => false,
        }
    }

    /// The paths this CPU supports, narrowest first (always starts with `Reference`).
    pub fn supported() -> Vec<KernelPath> {
        Self::ALL.into_iter().filter(|p| p.is_supported()).collect()
    }

    /// The widest supported path.
    pub fn detect() -> KernelPath {
        Self::ALL
            .into_iter()
            .rev()
            .find(|p| p.is_supported())
            .unwrap_or(KernelPath::Reference)
    }

    /// The path an optional override value selects: `None` (unset) detects the CPU.
    pub fn from_override(value: Option<&str>) -> Result<KernelPath, KernelPathError> {
        match value {
            None => Ok(Self::detect()),
            Some(v) => {
                let path: KernelPath = v.parse()?;
                if path.is_supported() {
                    Ok(path)
                } else {
                    Err(KernelPathError::Unsupported { path })
                }
            }
        }
    }
}

impl fmt::Display for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KernelPath {
    type Err = KernelPathError;
    fn from_str(s: &str) -> Result<Self, KernelPathError> {
        let t = s.trim().to_ascii_lowercase();
        KernelPath::ALL
            .into_iter()
            .find(|p| p.name() == t)
            .ok_or_else(|| KernelPathError::Unknown {
                value: s.to_string(),
            })
    }
}

/// The process-wide kernel path: `EOSBENCH_KERNEL` if set (validated), else detected. Computed
/// once; later changes of the environment are not seen.
pub fn try_kernel_path() -> Result<KernelPath, KernelPathError> {
    static PATH: OnceLock<Result<KernelPath, KernelPathError>> = OnceLock::new();
    PATH.get_or_init(|| {
        let value = std::env::var(KERNEL_ENV).ok();
        KernelPath::from_override(value.as_deref())
    })
    .clone()
}

/// [`try_kernel_path`] for code that cannot report an error.
///
/// # Panics
/// If `EOSBENCH_KERNEL` is set to an unknown or unsupported path (the message says how to fix it).
pub fn kernel_path() -> KernelPath {
    match try_kernel_path() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in KernelPath::ALL {
            assert_eq!(p.name().parse::<KernelPath>(), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(" AVX2 ".parse::<KernelPath>(), Ok(KernelPath::Avx2));
    }

    #[test]
    fn override_values() {
        assert_eq!(KernelPath::from_override(None), Ok(KernelPath::detect()));
        assert_eq!(
            KernelPath::from_override(Some("reference")),
            Ok(KernelPath::Reference)
        );
        let err = KernelPath::from_override(Some("sse9")).unwrap_err();
        assert!(matches!(err, KernelPathError::Unknown { .. }));
        assert!(err.to_string().contains("EOSBENCH_KERNEL"));
        for p in KernelPath::ALL {
            let r = KernelPath::from_override(Some(p.name()));
            if p.is_supported() {
                assert_eq!(r, Ok(p));
            } else {
                assert_eq!(r, Err(KernelPathError::Unsupported { path: p }));
            }
        }
    }

    #[test]
    fn supported_is_consistent() {
        let s = KernelPath::supported();
        assert_eq!(s[0], KernelPath::Reference);
        assert_eq!(*s.last().unwrap(), KernelPath::detect());
        if KernelPath::Avx512.is_supported() {
            assert!(KernelPath::Avx2.is_supported());
        }
        // The cached process-wide path is one of them (tests do not set the variable, or set
        // it to a supported value).
        if let Ok(p) = try_kernel_path() {
            assert!(s.contains(&p));
        }
    }
}
