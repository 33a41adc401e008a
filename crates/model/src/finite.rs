//! Finding NaN and infinite values, so that a number that overflowed is reported where it first
//! appeared instead of flowing into a result.

use crate::error::Result;
use candle_core::{DType, Storage, Tensor};

/// The flat index and value of the first non-finite element of `t`, if any. Reads f32 CPU tensors
/// in place; other dtypes and devices are widened to f32 first.
pub fn first_non_finite(t: &Tensor) -> Result<Option<(usize, f32)>> {
    if t.dtype() == DType::F32 && t.is_contiguous() {
        let (storage, layout) = t.storage_and_layout();
        if let Storage::Cpu(cpu) = &*storage {
            let all = cpu.as_slice::<f32>()?;
            let start = layout.start_offset();
            let data = &all[start..start + t.elem_count()];
            return Ok(scan(data));
        }
    }
    if !matches!(
        t.dtype(),
        DType::F32 | DType::F16 | DType::BF16 | DType::F64
    ) {
        return Ok(None);
    }
    if !t.device().is_cpu() {
        // On a GPU: one reduction there (finite unless an element is not), and a copy to the
        // host only to locate what is not finite.
        let quick = (t.to_dtype(DType::F32)? * 0.0)?
            .sum_all()?
            .to_scalar::<f32>()?;
        if quick.is_finite() {
            return Ok(None);
        }
    }
    let v: Vec<f32> = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    Ok(scan(&v))
}

/// A dtype's name in messages.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::F64 => "f64",
        _ => "another dtype",
    }
}

fn scan(data: &[f32]) -> Option<(usize, f32)> {
    // A sum is cheap and is non-finite whenever an element is (or when finite values overflow,
    // which the exact scan below then rules out).
    let quick: f32 = data.iter().map(|v| v * 0.0).sum();
    if quick.is_finite() {
        return None;
    }
    data.iter()
        .position(|v| !v.is_finite())
        .map(|i| (i, data[i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn finds_the_first_nan_or_inf() {
        let t = Tensor::new(&[1f32, 2.0, f32::INFINITY, f32::NAN], &Device::Cpu).unwrap();
        assert_eq!(first_non_finite(&t).unwrap().map(|x| x.0), Some(2));
        let t = Tensor::new(&[1f32, f32::MAX, f32::MAX], &Device::Cpu).unwrap();
        assert_eq!(first_non_finite(&t).unwrap(), None);
        let t = Tensor::new(&[[1f32, 2.0], [3.0, f32::NAN]], &Device::Cpu)
            .unwrap()
            .t()
            .unwrap();
        assert_eq!(first_non_finite(&t).unwrap().map(|x| x.0), Some(3));
        let t = t.to_dtype(DType::BF16).unwrap();
        assert_eq!(first_non_finite(&t).unwrap().map(|x| x.0), Some(3));
    }
}
