//! Where a model runs: `cpu`, `cuda` (the first GPU) or `cuda:N`.
//!
//! The default build is CPU-only and starts on any machine. A build with the `cuda` feature runs
//! models on NVIDIA GPUs through candle's CUDA backend; asking for a GPU that the build or the
//! machine does not have is a one-line error naming the device.

use crate::error::{ModelError, Result};
use candle_core::Device;

/// Whether this build has the CUDA backend.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// A device as the user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    /// The GPU of this ordinal.
    Cuda(usize),
}

impl DeviceSpec {
    /// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`, any case.
    pub fn parse(text: &str) -> Result<DeviceSpec> {
        let t = text.trim().to_ascii_lowercase();
        let bad = || {
            ModelError::Invalid(format!(
                "device '{}': give cpu, cuda or cuda:N (N the GPU's index, 0 for the first)",
                pretrace_core::shown(text, 40)
            ))
        };
        match t.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                let n = t
                    .strip_prefix("cuda:")
                    .ok_or_else(bad)?
                    .parse::<usize>()
                    .map_err(|_| bad())?;
                Ok(DeviceSpec::Cuda(n))
            }
        }
    }

    /// Opens the device: a build without CUDA, or a machine without a usable GPU of that index,
    /// is an error naming it.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) if !CUDA_BUILT => Err(ModelError::Device {
                device: format!("cuda:{n}"),
                why: "this pretrace was built without CUDA; build it with `cargo build --release --features cuda` (scripts/cuda-toolchain.sh sets that up) or run with --device cpu".into(),
            }),
            DeviceSpec::Cuda(n) => {
                let dev = Device::new_cuda(n).map_err(|e| ModelError::Device {
                    device: format!("cuda:{n}"),
                    why: format!(
                        "no usable NVIDIA GPU of that index ({}); check `nvidia-smi` and CUDA_VISIBLE_DEVICES, or run with --device cpu",
                        crate::error::one_line(&e)
                    ),
                })?;
                parity_settings();
                Ok(dev)
            }
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// `cpu` or `cuda:N`, for records.
pub fn name_of(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Matrix products in full precision on the GPU: f32 without TF32 (parity with transformers'
/// default `torch.backends.cuda.matmul.allow_tf32 = False`), and bf16/f16 products accumulated in
/// f32 without reduced-precision reductions.
fn parity_settings() {
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    candle_core::cuda::set_gemm_reduced_precision_bf16(false);
    candle_core::cuda::set_gemm_reduced_precision_f16(false);
}

/// Bytes free on `device` and its total, where the backend tells (CUDA); `None` on the CPU.
pub fn memory_info(device: &Device) -> Option<(u64, u64)> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        use candle_core::cuda_backend::cudarc::driver::result::mem_get_info;
        return d
            .cuda_stream()
            .context()
            .bind_to_thread()
            .ok()
            .and_then(|_| mem_get_info().ok())
            .map(|(free, total)| (free as u64, total as u64));
    }
    let _ = device;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_bad_ones_say_what_to_give() {
        assert_eq!(DeviceSpec::parse("cpu").unwrap(), DeviceSpec::Cpu);
        assert_eq!(DeviceSpec::parse("CUDA").unwrap(), DeviceSpec::Cuda(0));
        assert_eq!(DeviceSpec::parse("cuda:3").unwrap(), DeviceSpec::Cuda(3));
        assert_eq!(DeviceSpec::parse("cuda:3").unwrap().to_string(), "cuda:3");
        for bad in ["cuda:", "cuda:-1", "cuda:x", "tpu", "", "cuda0"] {
            let e = DeviceSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("give cpu, cuda or cuda:N"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_cpu_opens_and_a_gpu_is_refused_by_a_cpu_build() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        assert_eq!(name_of(&Device::Cpu), "cpu");
        if !CUDA_BUILT {
            let e = DeviceSpec::Cuda(1).open().unwrap_err().to_string();
            assert!(
                e.starts_with("cuda:1: ") && e.contains("built without CUDA"),
                "{e}"
            );
            assert!(!e.contains('\n'));
        }
    }
}
