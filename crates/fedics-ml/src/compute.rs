//! Where models compute: burn's pure-Rust `flex` CPU backend by default, burn's CUDA
//! backend with the `cuda` feature. Also the thread count used for CPU work.

use std::str::FromStr;

use burn::prelude::Device;

use crate::MlError;

/// A compute device, chosen by name (`cpu`, `cuda`, `cuda:1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for ComputeDevice {
    type Err = MlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(Self::Cuda(i)),
                _ => Err(MlError::Device(format!(
                    "unknown device `{s}`: expected `cpu`, `cuda` or `cuda:N`"
                ))),
            },
        }
    }
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl ComputeDevice {
    /// The burn device for inference (no autodiff).
    pub fn device(self) -> Result<Device, MlError> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "cuda")]
            Self::Cuda(i) => Ok(Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            Self::Cuda(_) => Err(MlError::Device(
                "this build has no CUDA backend; rebuild with `--features cuda`".into(),
            )),
        }
    }

    /// The burn device for training (with autodiff).
    pub fn train_device(self) -> Result<Device, MlError> {
        Ok(self.device()?.autodiff())
    }
}

/// Runs `f` with CPU work limited to `threads` threads (`None`: all cores). burn's CPU
/// backend parallelises with rayon, so this installs a dedicated rayon pool.
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    match threads {
        None => f(),
        Some(n) => match rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
        {
            Ok(pool) => pool.install(f),
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a thread pool; using the global one");
                f()
            }
        },
    }
}
