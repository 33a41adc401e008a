//! The building blocks architectures assemble: linear maps, norms, rotary embeddings, attention and
//! MLPs. Hidden states inside a block are `[N, D]` with `N = B·T` rows.

use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Whether any of `ts` is recorded for backpropagation (a training forward). Under autograd the
/// fused f32 kernels (head split and rotation, attention core, SwiGLU, RMSNorm) run with their
/// hand-written backward passes; other dtypes and the rest take plain tensor operations, which
/// compute the same function.
pub fn tracked(ts: &[&Tensor]) -> bool {
    ts.iter().any(|t| t.track_op())
}

/// Whether the fused CPU kernels apply: an f32 tensor in host memory. On a GPU the same
/// functions run as candle's own CUDA operations (matrix products through cuBLAS, softmax,
/// RMSNorm and rotary kernels), with the same semantics.
pub fn host_f32(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && x.device().is_cpu()
}

/// `y = x Wᵀ + b` with `W: [out, in]`. The weight is kept transposed (`[in, out]`, contiguous):
/// the matrix kernel runs fastest with both operands row-major.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]`.
    wt: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// From a Hugging Face `nn.Linear` weight `w: [out, in]` and bias `[out]`.
    pub fn new(w: &Tensor, b: Option<Tensor>) -> Result<Linear> {
        Ok(Linear {
            wt: w.t()?.contiguous()?,
            b,
        })
    }
    /// From a weight already stored `[in, out]` (GPT-2's `Conv1D`).
    pub fn from_transposed(wt: Tensor, b: Option<Tensor>) -> Result<Linear> {
        Ok(Linear {
            wt: wt.contiguous()?,
            b,
        })
    }
    /// One linear map computing several side by side: outputs are concatenated in order.
    pub fn concat(parts: &[&Linear]) -> Result<Linear> {
        let wts: Vec<&Tensor> = parts.iter().map(|p| &p.wt).collect();
        let wt = Tensor::cat(&wts, 1)?;
        let b = if parts.iter().all(|p| p.b.is_none()) {
            None
        } else {
            let mut bs = Vec::with_capacity(parts.len());
            for p in parts {
                bs.push(match &p.b {
                    Some(b) => b.clone(),
                    None => Tensor::zeros(p.out_dim()?, p.wt.dtype(), p.wt.device())?,
                });
            }
            Some(Tensor::cat(&bs, 0)?)
        };
        Ok(Linear { wt, b })
    }
    /// `x: [N, in]` → `[N, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.contiguous()?.matmul(&self.wt)?;
        Ok(match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
    pub fn out_dim(&self) -> Result<usize> {
        Ok(self.wt.dim(1)?)
    }
}

/// A normalization over the last dimension.
#[derive(Debug, Clone)]
pub enum Norm {
    /// `x / sqrt(mean(x²) + eps) · w` (LLaMA, OLMo-2).
    Rms { w: Tensor, eps: f64 },
    /// `(x − mean) / sqrt(var + eps) · w + b`; OLMo-1 has neither weight nor bias (ones and zeros here).
    Layer { w: Tensor, b: Tensor, eps: f64 },
}

impl Norm {
    /// Layer norm without parameters (OLMo-1's `OlmoLayerNorm`).
    pub fn layer_no_params(d: usize, eps: f64, dtype: DType, device: &Device) -> Result<Norm> {
        Ok(Norm::Layer {
            w: Tensor::ones(d, dtype, device)?,
            b: Tensor::zeros(d, dtype, device)?,
            eps,
        })
    }
    /// `x: [.., D]` → same shape. Statistics are computed in f32 whatever the dtype (f64 for f64).
    /// Under autograd (see [`tracked`]) the same math runs as differentiable tensor operations.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        Ok(match self {
            Norm::Rms { w, eps } if tracked(&[&x, w]) && host_f32(&x) => {
                let d = x.dim(candle_core::D::Minus1)?;
                let rows = x.elem_count() / d.max(1);
                x.reshape((rows, d))?
                    .apply_op2(w, RmsNormGrad { eps: *eps as f32 })?
                    .reshape(x.shape())?
            }
            Norm::Rms { w, eps } if tracked(&[&x, w]) => {
                candle_nn::ops::rms_norm_slow(&x, w, *eps as f32)?
            }
            Norm::Rms { w, eps } => candle_nn::ops::rms_norm(&x, w, *eps as f32)?,
            Norm::Layer { w, b, eps } if tracked(&[&x, w, b]) => {
                candle_nn::ops::layer_norm_slow(&x, w, b, *eps as f32)?
            }
            Norm::Layer { w, b, eps } => candle_nn::ops::layer_norm(&x, w, b, *eps as f32)?,
        })
    }
}

/// RMSNorm of `[N, D]` rows with its backward (f32): `y = x · r · w`, `r = 1/√(mean(x²) + ε)`,
/// computed as candle's `rms_norm` computes it; `dx = r·(w⊙dy) − x·r³·mean(w⊙dy⊙x)`,
/// `dw = Σ_rows dy ⊙ x · r`.
struct RmsNormGrad {
    eps: f32,
}

impl candle_core::CustomOp2 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "rms-norm-grad"
    }
    fn cpu_fwd(
        &self,
        xs: &candle_core::CpuStorage,
        xl: &candle_core::Layout,
        ws: &candle_core::CpuStorage,
        wl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage::F32;
        use rayon::prelude::*;
        let (n, d) = xl.shape().dims2()?;
        let (x, w) = match (xs, xl.contiguous_offsets(), ws, wl.contiguous_offsets()) {
            (F32(x), Some((a, b)), F32(w), Some((c, e))) => (&x[a..b], &w[c..e]),
            _ => candle_core::bail!("rms-norm-grad: needs contiguous f32 input"),
        };
        let mut out = vec![0f32; n * d];
        out.par_chunks_mut(d.max(1))
            .zip(x.par_chunks(d.max(1)))
            .for_each(|(o, x)| {
                let sum2: f32 = x.iter().map(|v| v * v).sum();
                let m = (sum2 / d as f32 + self.eps).sqrt();
                for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
                    *o = x / m * w;
                }
            });
        Ok((F32(out), candle_core::Shape::from((n, d))))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        use rayon::prelude::*;
        let (n, d) = x.dims2()?;
        let xv: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let wv: Vec<f32> = w.to_vec1()?;
        let gv: Vec<f32> = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut dx = vec![0f32; n * d];
        let dw_rows: Vec<Vec<f32>> = dx
            .par_chunks_mut(d.max(1))
            .zip(xv.par_chunks(d.max(1)))
            .zip(gv.par_chunks(d.max(1)))
            .map(|((o, x), g)| {
                let sum2: f32 = x.iter().map(|v| v * v).sum();
                let r = 1.0 / (sum2 / d as f32 + self.eps).sqrt();
                let dot: f32 = x.iter().zip(g).zip(&wv).map(|((x, g), w)| x * g * w).sum();
                let c = r * r * r * dot / d as f32;
                for k in 0..d {
                    o[k] = r * wv[k] * g[k] - x[k] * c;
                }
                x.iter().zip(g).map(|(x, g)| g * x * r).collect()
            })
            .collect();
        let mut dw = vec![0f32; d];
        for row in &dw_rows {
            for (a, b) in dw.iter_mut().zip(row) {
                *a += b;
            }
        }
        Ok((
            Some(Tensor::from_vec(dx, (n, d), x.device())?),
            Some(Tensor::from_vec(dw, d, w.device())?),
        ))
    }
}

/// Activation functions, by their Hugging Face `hidden_act` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `silu` / `swish`.
    Silu,
    /// `gelu`: the exact erf form.
    GeluErf,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation.
    GeluTanh,
    Relu,
}

impl Act {
    /// Parses a `hidden_act` value; unknown names are an error listing the supported ones.
    pub fn parse(name: &str) -> std::result::Result<Act, String> {
        Ok(match name {
            "silu" | "swish" => Act::Silu,
            "gelu" => Act::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "relu" => Act::Relu,
            other => return Err(format!("activation '{other}' is not supported; supported: silu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu")),
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Act::Silu => x.silu()?,
            Act::GeluErf => x.gelu_erf()?,
            Act::GeluTanh => x.gelu()?,
            Act::Relu => x.relu()?,
        })
    }
}

/// The feed-forward sub-block.
#[derive(Debug, Clone)]
pub enum Mlp {
    /// `down(act(gate(x)) · up(x))` (LLaMA, OLMo); `gate_up` computes `[gate | up]` in one product.
    Gated {
        gate_up: Linear,
        down: Linear,
        act: Act,
    },
    /// `proj(act(fc(x)))` (GPT-NeoX, GPT-2).
    Plain { fc: Linear, proj: Linear, act: Act },
}

impl Mlp {
    /// A gated MLP from its three projections.
    pub fn gated(gate: Linear, up: Linear, down: Linear, act: Act) -> Result<Mlp> {
        Ok(Mlp::Gated {
            gate_up: Linear::concat(&[&gate, &up])?,
            down,
            act,
        })
    }
    /// `x: [N, D]` → `[N, D]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::Gated { gate_up, down, act } => {
                let gu = gate_up.forward(x)?;
                if *act == Act::Silu && host_f32(&gu) && gu.is_contiguous() {
                    let h = if gu.track_op() {
                        gu.apply_op1(SwiGlu)?
                    } else {
                        gu.apply_op1_no_bwd(&SwiGlu)?
                    };
                    return down.forward(&h);
                }
                let i = gu.dim(1)? / 2;
                let g = act.forward(&gu.narrow(1, 0, i)?)?;
                down.forward(&(g * gu.narrow(1, i, i)?)?)
            }
            Mlp::Plain { fc, proj, act } => proj.forward(&act.forward(&fc.forward(x)?)?),
        }
    }
}

/// `e^x` in f32 to within a few ulp, written branch-free so the compiler vectorizes loops over it
/// (the scalar libm call does not vectorize). Cody–Waite reduction `x = n·ln2 + r`, Cephes' degree-6
/// polynomial for `e^r`, and `2^n` put into the exponent bits. Inputs are clamped to the finite range.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a rounding instruction.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// Defines `$name`, which runs the `#[inline(always)]` kernel `$kernel` compiled for the widest
/// vector unit this CPU has (AVX-512, else AVX2+FMA, else the baseline), chosen at run time. The
/// arithmetic is the same in every version (Rust never fuses a multiply and an add on its own), so
/// results do not depend on the CPU.
macro_rules! simd_dispatch {
    ($name:ident, $kernel:ident, ($($a:ident: $t:ty),*)) => {
        fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn v4($($a: $t),*) {
                    $kernel($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($a: $t),*) {
                    $kernel($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { v4($($a),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { v3($($a),*) };
                }
            }
            $kernel($($a),*)
        }
    };
}

#[inline(always)]
fn swiglu_kernel(o: &mut [f32], g: &[f32], u: &[f32]) {
    for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
        *o = g / (1.0 + exp_f32(-g)) * u;
    }
}
simd_dispatch!(swiglu_row, swiglu_kernel, (o: &mut [f32], g: &[f32], u: &[f32]));

/// `silu(g) · u` over `[N, 2I]` rows laid out `[g | u]`, in one parallel pass (f32, contiguous):
/// `silu(g) = g / (1 + exp(−g))`, then the product, with a vectorizable [`exp_f32`].
struct SwiGlu;

impl candle_core::CustomOp1 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }
    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (n, two_i) = layout.shape().dims2()?;
        let i = two_i / 2;
        let src = match (storage, layout.contiguous_offsets()) {
            (candle_core::CpuStorage::F32(s), Some((a, b))) => &s[a..b],
            _ => candle_core::bail!("swiglu: needs contiguous f32 input"),
        };
        let mut out = vec![0f32; n * i];
        out.par_chunks_mut(i.max(1))
            .zip(src.par_chunks(two_i.max(1)))
            .for_each(|(o, row)| {
                let (g, u) = row.split_at(i);
                swiglu_row(o, g, u);
            });
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((n, i)),
        ))
    }

    /// `d/dg = dO · u · σ(g)(1 + g(1 − σ(g)))`, `d/du = dO · silu(g)`.
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        use rayon::prelude::*;
        let (n, two_i) = arg.dims2()?;
        let i = two_i / 2;
        let x: Vec<f32> = arg.flatten_all()?.to_vec1()?;
        let d: Vec<f32> = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; n * two_i];
        out.par_chunks_mut(two_i.max(1))
            .zip(x.par_chunks(two_i.max(1)))
            .zip(d.par_chunks(i.max(1)))
            .for_each(|((o, row), d)| {
                let (g, u) = row.split_at(i);
                let (og, ou) = o.split_at_mut(i);
                for k in 0..i {
                    let sig = 1.0 / (1.0 + exp_f32(-g[k]));
                    og[k] = d[k] * u[k] * sig * (1.0 + g[k] * (1.0 - sig));
                    ou[k] = d[k] * g[k] * sig;
                }
            });
        Ok(Some(Tensor::from_vec(out, (n, two_i), arg.device())?))
    }
}

/// `o = softmax(scale · x + m)`: the same sequence of operations as transformers' eager attention
/// (scale, add the mask, subtract the row maximum, exponentiate, divide by the sum).
#[inline(always)]
fn softmax_kernel(o: &mut [f32], x: &[f32], m: &[f32], scale: f32) {
    let mut max = f32::NEG_INFINITY;
    for ((o, &x), &m) in o.iter_mut().zip(x).zip(m) {
        *o = x * scale + m;
        max = max.max(*o);
    }
    let mut sum = 0f32;
    for o in o.iter_mut() {
        *o = exp_f32(*o - max);
        sum += *o;
    }
    for o in o.iter_mut() {
        *o /= sum;
    }
}

simd_dispatch!(masked_softmax_row, softmax_kernel, (o: &mut [f32], x: &[f32], m: &[f32], scale: f32));

/// Rotates one head's leading `2·half` dimensions: `o₁ = x₁·cos − x₂·sin`, `o₂ = x₁·sin + x₂·cos`.
#[inline(always)]
fn rope_kernel(o1: &mut [f32], o2: &mut [f32], x1: &[f32], x2: &[f32], cs: &[f32], sn: &[f32]) {
    for (((((o1, o2), &x1), &x2), &c), &s) in o1
        .iter_mut()
        .zip(o2.iter_mut())
        .zip(x1)
        .zip(x2)
        .zip(cs)
        .zip(sn)
    {
        *o1 = x1 * c - x2 * s;
        *o2 = x1 * s + x2 * c;
    }
}
simd_dispatch!(rope_row, rope_kernel, (o1: &mut [f32], o2: &mut [f32], x1: &[f32], x2: &[f32], cs: &[f32], sn: &[f32]));

/// `C = A · B` for row-major `A: [m, k]` (row stride `a_rs`) and `B` given by its row and column
/// strides, single-threaded (callers parallelize over independent products).
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    c: &mut [f32],
    a: &[f32],
    a_rs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    m: usize,
    n: usize,
    k: usize,
) {
    gemm_strided(c, a, a_rs, 1, b, b_rs, b_cs, m, n, k)
}

/// `C = A · B` with both operands given by their row and column strides (a transposed operand is
/// a swap of its strides), `C: [m, n]` row-major, single-threaded.
#[allow(clippy::too_many_arguments)]
fn gemm_strided(
    c: &mut [f32],
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(c.len() >= m * n);
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(k == 0 || n == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above keep every index the kernel touches inside the three slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The attention core for f32: for each (row, kv head), in parallel, `softmax(scale · q kᵀ + mask) v`
/// over the query heads sharing that kv head. `q: [B, KVH, R·T, Dh]`, `k, v: [B, KVH, S, Dh]`, the
/// mask `[B, T, S]` on the host; the output has q's shape. Small products parallelized per head
/// group run several times faster than one batched product parallelized inside each.
struct AttnCore {
    scale: f32,
    mask: Arc<Vec<f32>>,
    t: usize,
}

impl candle_core::CustomOp3 for AttnCore {
    fn name(&self) -> &'static str {
        "attention-core"
    }
    fn cpu_fwd(
        &self,
        qs: &candle_core::CpuStorage,
        ql: &candle_core::Layout,
        ks: &candle_core::CpuStorage,
        kl: &candle_core::Layout,
        vs: &candle_core::CpuStorage,
        vl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage::F32;
        use rayon::prelude::*;
        let (b, g, rt, dh) = ql.shape().dims4()?;
        let (_, _, s, _) = kl.shape().dims4()?;
        let t = self.t;
        if kl.shape() != vl.shape()
            || kl.shape().dims() != [b, g, s, dh]
            || rt % t != 0
            || self.mask.len() != b * t * s
        {
            candle_core::bail!(
                "attention-core: shapes q {:?} k {:?} v {:?} mask {} do not fit",
                ql.shape(),
                kl.shape(),
                vl.shape(),
                self.mask.len()
            );
        }
        let (q, k, v) = match (
            qs,
            ql.contiguous_offsets(),
            ks,
            kl.contiguous_offsets(),
            vs,
            vl.contiguous_offsets(),
        ) {
            (F32(q), Some((q0, q1)), F32(k), Some((k0, k1)), F32(v), Some((v0, v1))) => {
                (&q[q0..q1], &k[k0..k1], &v[v0..v1])
            }
            _ => candle_core::bail!("attention-core: needs contiguous f32 inputs"),
        };
        let mut out = vec![0f32; b * g * rt * dh];
        out.par_chunks_mut((rt * dh).max(1))
            .enumerate()
            .for_each(|(grp, o)| {
                let bi = grp / g;
                let qg = &q[grp * rt * dh..(grp + 1) * rt * dh];
                let kg = &k[grp * s * dh..(grp + 1) * s * dh];
                let vg = &v[grp * s * dh..(grp + 1) * s * dh];
                let mut scores = vec![0f32; rt * s];
                // scores = q · kᵀ: kᵀ[d, j] = k[j·Dh + d].
                gemm_f32(&mut scores, qg, dh, kg, 1, dh, rt, s, dh);
                let mut probs = vec![0f32; rt * s];
                for (r, (p, x)) in probs.chunks_mut(s).zip(scores.chunks(s)).enumerate() {
                    let ti = r % t;
                    masked_softmax_row(
                        p,
                        x,
                        &self.mask[(bi * t + ti) * s..(bi * t + ti + 1) * s],
                        self.scale,
                    );
                }
                gemm_f32(o, &probs, s, vg, dh, 1, rt, dh, s);
            });
        Ok((F32(out), ql.shape().clone()))
    }

    /// The gradient of `softmax(scale · q kᵀ + mask) v` per head group, recomputing the
    /// probabilities: `dV = Pᵀ dO`, `dS = P ⊙ (dO Vᵀ − rowsum(dO Vᵀ ⊙ P))`, `dQ = scale · dS K`,
    /// `dK = scale · dSᵀ Q`.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use rayon::prelude::*;
        let (b, g, rt, dh) = q.dims4()?;
        let s = k.dim(2)?;
        let t = self.t;
        let host = |x: &Tensor| -> candle_core::Result<Vec<f32>> {
            x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
        };
        let (qv, kv, vv, gv) = (host(q)?, host(k)?, host(v)?, host(grad)?);
        let mut dq = vec![0f32; b * g * rt * dh];
        let mut dk = vec![0f32; b * g * s * dh];
        let mut dv = vec![0f32; b * g * s * dh];
        let scale = self.scale;
        dq.par_chunks_mut((rt * dh).max(1))
            .zip(dk.par_chunks_mut((s * dh).max(1)))
            .zip(dv.par_chunks_mut((s * dh).max(1)))
            .enumerate()
            .for_each(|(grp, ((dq, dk), dv))| {
                let bi = grp / g;
                let qg = &qv[grp * rt * dh..(grp + 1) * rt * dh];
                let kg = &kv[grp * s * dh..(grp + 1) * s * dh];
                let vg = &vv[grp * s * dh..(grp + 1) * s * dh];
                let og = &gv[grp * rt * dh..(grp + 1) * rt * dh];
                let mut scores = vec![0f32; rt * s];
                gemm_f32(&mut scores, qg, dh, kg, 1, dh, rt, s, dh);
                let mut p = vec![0f32; rt * s];
                for (r, (pr, x)) in p.chunks_mut(s).zip(scores.chunks(s)).enumerate() {
                    let ti = r % t;
                    masked_softmax_row(
                        pr,
                        x,
                        &self.mask[(bi * t + ti) * s..(bi * t + ti + 1) * s],
                        scale,
                    );
                }
                // dV = Pᵀ dO.
                gemm_strided(dv, &p, 1, s, og, dh, 1, s, dh, rt);
                // dP = dO Vᵀ, then dS (scaled) in place.
                let mut ds = scores;
                gemm_f32(&mut ds, og, dh, vg, 1, dh, rt, s, dh);
                for (d, pr) in ds.chunks_mut(s).zip(p.chunks(s)) {
                    let dot: f32 = d.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (d, &pv) in d.iter_mut().zip(pr) {
                        *d = scale * pv * (*d - dot);
                    }
                }
                // dQ = dS K; dK = dSᵀ Q.
                gemm_f32(dq, &ds, s, kg, dh, 1, rt, dh, s);
                gemm_strided(dk, &ds, 1, s, qg, dh, 1, s, dh, rt);
            });
        let dev = q.device();
        let back = |x: Vec<f32>, like: &Tensor| -> candle_core::Result<Tensor> {
            Tensor::from_vec(x, like.shape(), dev)?.to_dtype(like.dtype())
        };
        Ok((Some(back(dq, q)?), Some(back(dk, k)?), Some(back(dv, v)?)))
    }
}

/// Rotary position embedding tables (Hugging Face's half-split `rotate_half` convention).
#[derive(Debug, Clone)]
pub struct Rope {
    /// `[rot_dim / 2]` inverse frequencies.
    inv_freq: Vec<f32>,
    /// Number of leading head dimensions rotated (`rotary_pct · head_dim` for GPT-NeoX).
    pub rot_dim: usize,
    /// Linear rope scaling: positions are divided by this factor.
    pub scale: f32,
}

impl Rope {
    /// `inv_freq[i] = 1 / theta^(2i / rot_dim)`, computed in f32 as transformers does.
    pub fn new(rot_dim: usize, theta: f64, scale: f64) -> Rope {
        let inv_freq = (0..rot_dim / 2)
            .map(|i| 1.0f32 / (theta as f32).powf((2 * i) as f32 / rot_dim as f32))
            .collect();
        Rope {
            inv_freq,
            rot_dim,
            scale: scale as f32,
        }
    }

    /// cos and sin tables `[B, T, rot_dim/2]` for integer positions `[B][T]`.
    pub fn tables_for(
        &self,
        positions: &[Vec<usize>],
        dtype: DType,
        device: &Device,
    ) -> Result<RopeTables> {
        let b = positions.len();
        let t = positions.first().map_or(0, |r| r.len());
        let h = self.inv_freq.len();
        let mut cos = Vec::with_capacity(b * t * h);
        let mut sin = Vec::with_capacity(b * t * h);
        for row in positions {
            for &p in row {
                let p = p as f32 / self.scale;
                for &f in &self.inv_freq {
                    let a = p * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let (cos, sin) = (Arc::new(cos), Arc::new(sin));
        Ok(RopeTables {
            cos: Tensor::from_slice(&cos, (b, t, h), device)?.to_dtype(dtype)?,
            sin: Tensor::from_slice(&sin, (b, t, h), device)?.to_dtype(dtype)?,
            cos_host: cos,
            sin_host: sin,
            rot_dim: self.rot_dim,
        })
    }
}

/// Rotary tables of one forward call.
pub struct RopeTables {
    /// `[B, T, rot_dim/2]`.
    pub cos: Tensor,
    pub sin: Tensor,
    /// The same tables on the host, for the fused f32 head split.
    pub cos_host: Arc<Vec<f32>>,
    pub sin_host: Arc<Vec<f32>>,
    pub rot_dim: usize,
}

impl RopeTables {
    /// Rotates the first `rot_dim` dimensions of `x: [B, H, T, Dh]`.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let dh = x.dim(3)?;
        if x.track_op() {
            // Differentiable: o₁ = x₁·cos − x₂·sin, o₂ = x₁·sin + x₂·cos over the halves.
            let half = self.rot_dim / 2;
            let (c, s) = (
                self.cos.to_dtype(x.dtype())?.unsqueeze(1)?,
                self.sin.to_dtype(x.dtype())?.unsqueeze(1)?,
            );
            let (x1, x2) = (x.narrow(3, 0, half)?, x.narrow(3, half, half)?);
            let o1 = (x1.broadcast_mul(&c)? - x2.broadcast_mul(&s)?)?;
            let o2 = (x1.broadcast_mul(&s)? + x2.broadcast_mul(&c)?)?;
            let mut parts = vec![o1, o2];
            if self.rot_dim < dh {
                parts.push(x.narrow(3, self.rot_dim, dh - self.rot_dim)?);
            }
            return Ok(Tensor::cat(&parts, 3)?);
        }
        if self.rot_dim == dh {
            return Ok(candle_nn::rotary_emb::rope(
                &x.contiguous()?,
                &self.cos,
                &self.sin,
            )?);
        }
        let rot = x.narrow(3, 0, self.rot_dim)?.contiguous()?;
        let pass = x.narrow(3, self.rot_dim, dh - self.rot_dim)?;
        let rot = candle_nn::rotary_emb::rope(&rot, &self.cos, &self.sin)?;
        Ok(Tensor::cat(&[&rot, &pass], 3)?)
    }
}

/// Columns `col0 .. col0 + heads·Dh` of the fused `[B·T, ·]` projection as `[B, heads, T, Dh]`,
/// with the first `rot_dim` dimensions of each head rotated (transformers' `rotate_half`
/// convention) when rotary tables are given: one pass instead of a slice, a transpose and a rotation.
struct SplitHeads {
    b: usize,
    t: usize,
    heads: usize,
    col0: usize,
    dh: usize,
    rope: Option<RopeHost>,
}

/// The host rotary tables a [`SplitHeads`] uses (shared, not copied).
#[derive(Clone)]
struct RopeHost {
    cos_host: Arc<Vec<f32>>,
    sin_host: Arc<Vec<f32>>,
    rot_dim: usize,
}

impl RopeHost {
    fn of(r: &RopeTables) -> RopeHost {
        RopeHost {
            cos_host: r.cos_host.clone(),
            sin_host: r.sin_host.clone(),
            rot_dim: r.rot_dim,
        }
    }
}

impl candle_core::CustomOp1 for SplitHeads {
    fn name(&self) -> &'static str {
        "split-heads"
    }
    fn cpu_fwd(
        &self,
        st: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (n, w) = l.shape().dims2()?;
        let (b, t, heads, dh, col0) = (self.b, self.t, self.heads, self.dh, self.col0);
        if n != b * t || col0 + heads * dh > w {
            candle_core::bail!("split-heads: [{n}, {w}] does not hold {heads} heads of {dh} at column {col0} for {b}×{t}");
        }
        let src = match (st, l.contiguous_offsets()) {
            (candle_core::CpuStorage::F32(s), Some((a, e))) => &s[a..e],
            _ => candle_core::bail!("split-heads: needs contiguous f32 input"),
        };
        let rot = self.rope.as_ref().map_or(0, |r| r.rot_dim);
        let half = rot / 2;
        if let Some(r) = &self.rope {
            if rot > dh || r.cos_host.len() != b * t * half {
                candle_core::bail!(
                    "split-heads: rotary tables do not fit {b}×{t} rows of head size {dh}"
                );
            }
        }
        let mut out = vec![0f32; b * heads * t * dh];
        out.par_chunks_mut((t * dh).max(1))
            .enumerate()
            .for_each(|(bh, o)| {
                let (bi, h) = (bh / heads, bh % heads);
                for ti in 0..t {
                    let x = &src[(bi * t + ti) * w + col0 + h * dh..][..dh];
                    let o = &mut o[ti * dh..(ti + 1) * dh];
                    match &self.rope {
                        Some(r) => {
                            let cs = &r.cos_host[(bi * t + ti) * half..][..half];
                            let sn = &r.sin_host[(bi * t + ti) * half..][..half];
                            let (o_rot, o_rest) = o.split_at_mut(rot);
                            let (o1, o2) = o_rot.split_at_mut(half);
                            let (x1, x2) = x[..rot].split_at(half);
                            rope_row(o1, o2, x1, x2, cs, sn);
                            o_rest.copy_from_slice(&x[rot..]);
                        }
                        None => o.copy_from_slice(x),
                    }
                }
            });
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((b, heads, t, dh)),
        ))
    }

    /// The transpose of the split and rotation: each head's gradient rotated back
    /// (`dx₁ = g₁·cos + g₂·sin`, `dx₂ = −g₁·sin + g₂·cos`) into its columns; zero elsewhere.
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        use rayon::prelude::*;
        let (n, w) = arg.dims2()?;
        let (b, t, heads, dh, col0) = (self.b, self.t, self.heads, self.dh, self.col0);
        let g: Vec<f32> = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        if g.len() != b * heads * t * dh || n != b * t {
            candle_core::bail!(
                "split-heads: gradient of {} values for {b}×{heads}×{t}×{dh}",
                g.len()
            );
        }
        let rot = self.rope.as_ref().map_or(0, |r| r.rot_dim);
        let half = rot / 2;
        let mut dx = vec![0f32; n * w];
        dx.par_chunks_mut(w.max(1))
            .enumerate()
            .for_each(|(row, d)| {
                let (bi, ti) = (row / t, row % t);
                for h in 0..heads {
                    let gh = &g[((bi * heads + h) * t + ti) * dh..][..dh];
                    let dst = &mut d[col0 + h * dh..col0 + (h + 1) * dh];
                    match &self.rope {
                        Some(r) => {
                            let cs = &r.cos_host[row * half..][..half];
                            let sn = &r.sin_host[row * half..][..half];
                            for k in 0..half {
                                let (g1, g2) = (gh[k], gh[k + half]);
                                dst[k] = g1 * cs[k] + g2 * sn[k];
                                dst[k + half] = -g1 * sn[k] + g2 * cs[k];
                            }
                            dst[rot..].copy_from_slice(&gh[rot..]);
                        }
                        None => dst.copy_from_slice(gh),
                    }
                }
            });
        Ok(Some(Tensor::from_vec(dx, (n, w), arg.device())?))
    }
}

/// Per-call inputs shared by every attention layer.
pub struct AttnCtx {
    pub b: usize,
    pub t: usize,
    /// Rotary tables, if the model is rotary.
    pub rope: Option<RopeTables>,
    /// `[B, 1, T, S]` additive f32 mask (0 or a large negative number), `S` = past + T.
    pub mask: Tensor,
    /// The same mask on the host, `[B, T, S]`, for the fused f32 attention core.
    pub mask_host: Arc<Vec<f32>>,
}

/// Keys and values of one layer kept across generation steps: `[B, KVH, S, Dh]`.
pub type KvEntry = Option<(Tensor, Tensor)>;

/// Multi-head attention with grouped-query heads, optional rotary, QK-norm and q/k/v clipping.
#[derive(Debug, Clone)]
pub struct Attention {
    /// `[q | k | v]` projections in one product.
    pub qkv: Linear,
    pub o: Linear,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// OLMo-2: RMSNorm over the whole q and k projections, before splitting into heads.
    pub qk_norm: Option<(Norm, Norm)>,
    /// OLMo-1 `clip_qkv`: q, k, v clamped to `[-c, c]` after projection.
    pub clip_qkv: Option<f64>,
    /// Multiplies `q·k`.
    pub scale: f64,
}

impl Attention {
    /// Plain scaled dot-product attention over fused `[q | k | v]` and output projections.
    pub fn new(
        qkv: Linear,
        o: Linear,
        n_heads: usize,
        n_kv_heads: usize,
        head_dim: usize,
    ) -> Attention {
        Attention {
            qkv,
            o,
            n_heads,
            n_kv_heads,
            head_dim,
            qk_norm: None,
            clip_qkv: None,
            scale: 1.0 / (head_dim as f64).sqrt(),
        }
    }

    /// `x: [N, D]` → the attention output `[N, D]` (after the output projection).
    pub fn forward(
        &self,
        x: &Tensor,
        ctx: &AttnCtx,
        cache: &mut Option<&mut KvEntry>,
    ) -> Result<Tensor> {
        let (b, t) = (ctx.b, ctx.t);
        let qkv = self.qkv.forward(x)?;
        let (qd, kvd) = (
            self.n_heads * self.head_dim,
            self.n_kv_heads * self.head_dim,
        );
        let qkv = match self.clip_qkv {
            Some(c) => qkv.clamp(-c, c)?,
            None => qkv,
        };
        let (q, mut k, mut v) = if host_f32(&qkv) && self.qk_norm.is_none() {
            // One pass per tensor from the fused projection to `[B, heads, T, Dh]`, rotated.
            let split = |col0: usize, heads: usize, rotate: bool| -> Result<Tensor> {
                let op = SplitHeads {
                    b,
                    t,
                    heads,
                    col0,
                    dh: self.head_dim,
                    rope: if rotate {
                        ctx.rope.as_ref().map(RopeHost::of)
                    } else {
                        None
                    },
                };
                // Under autograd the same kernel runs with its backward.
                Ok(if qkv.track_op() {
                    qkv.apply_op1(op)?
                } else {
                    qkv.apply_op1_no_bwd(&op)?
                })
            };
            (
                split(0, self.n_heads, true)?,
                split(qd, self.n_kv_heads, true)?,
                split(qd + kvd, self.n_kv_heads, false)?,
            )
        } else {
            self.split_heads_generic(&qkv, ctx)?
        };
        if let Some(entry) = cache.as_deref_mut() {
            if let Some((pk, pv)) = entry.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *entry = Some((k.clone(), v.clone()));
        }
        // Grouped-query attention without copying keys and values: query head h uses kv head
        // h / rep (transformers' repeat_kv), so the rep query heads of one kv head are stacked
        // along the sequence axis and share one product with that kv head.
        let rep = self.n_heads / self.n_kv_heads;
        let (kvh, s) = (self.n_kv_heads, k.dim(2)?);
        let q = q.contiguous()?.reshape((b, kvh, rep * t, self.head_dim))?;
        let (k, v) = (k.contiguous()?, v.contiguous()?);
        let out = if host_f32(&q) {
            let core = AttnCore {
                scale: self.scale as f32,
                mask: ctx.mask_host.clone(),
                t,
            };
            if tracked(&[&q, &k, &v]) {
                // Under autograd: the same kernel, with its backward.
                q.apply_op3(&k, &v, core)?
            } else {
                q.apply_op3_no_bwd(&k, &v, &core)?
            }
        } else {
            // Scores and softmax in f32 (f64 for an f64 model).
            let sdt = if q.dtype() == DType::F64 {
                DType::F64
            } else {
                DType::F32
            };
            let scores = (q.matmul(&k.t()?)? * self.scale)?
                .to_dtype(sdt)?
                .reshape((b, kvh, rep, t, s))?
                .broadcast_add(&ctx.mask.to_dtype(sdt)?.unsqueeze(1)?)?;
            let probs = if scores.track_op() {
                candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?
            } else {
                candle_nn::ops::softmax_last_dim(&scores)?
            };
            let probs = probs.to_dtype(v.dtype())?;
            probs.reshape((b, kvh, rep * t, s))?.matmul(&v)?
        };
        let out = out.reshape((b, self.n_heads, t, self.head_dim))?;
        let out = out
            .transpose(1, 2)?
            .reshape((b * t, self.n_heads * self.head_dim))?;
        self.o.forward(&out)
    }

    /// q, k, v as `[B, heads, T, Dh]`, rotated, through tensor operations (QK-norm, bf16).
    fn split_heads_generic(&self, qkv: &Tensor, ctx: &AttnCtx) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t) = (ctx.b, ctx.t);
        let (qd, kvd) = (
            self.n_heads * self.head_dim,
            self.n_kv_heads * self.head_dim,
        );
        let mut q = qkv.narrow(1, 0, qd)?;
        let mut k = qkv.narrow(1, qd, kvd)?;
        let v = qkv.narrow(1, qd + kvd, kvd)?;
        if let Some((qn, kn)) = &self.qk_norm {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let heads = |x: Tensor, h: usize| -> Result<Tensor> {
            let x = x.contiguous()?;
            if t == 1 {
                // One position per row (a decode step): no transpose needed, and none wanted, since
                // a transposed view with a unit dimension passes as contiguous with odd strides.
                return Ok(x.reshape((b, h, 1, self.head_dim))?);
            }
            Ok(x.reshape((b, t, h, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let mut q = heads(q, self.n_heads)?;
        let mut k = heads(k, self.n_kv_heads)?;
        let v = heads(v, self.n_kv_heads)?;
        if let Some(rope) = &ctx.rope {
            q = rope.apply(&q)?;
            k = rope.apply(&k)?;
        }
        Ok((q, k, v))
    }
}

/// How a block adds its sub-blocks to the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// `x + attn(x)`, then `+ mlp(·)` of the result (LLaMA, OLMo, GPT-2, NeoX without parallel).
    Sequential,
    /// `x + attn(x) + mlp(x)` (GPT-NeoX `use_parallel_residual`).
    Parallel,
}

/// One transformer block. Architectures choose which norms exist and where.
#[derive(Debug, Clone)]
pub struct Block {
    /// Before attention (LLaMA `input_layernorm`, NeoX/GPT-2 `ln_1`).
    pub pre_attn: Option<Norm>,
    pub attn: Attention,
    /// After attention, before the residual add (OLMo-2 `post_attention_layernorm`).
    pub post_attn: Option<Norm>,
    /// Before the MLP (LLaMA `post_attention_layernorm`, NeoX/GPT-2 `ln_2`).
    pub pre_mlp: Option<Norm>,
    pub mlp: Mlp,
    /// After the MLP, before the residual add (OLMo-2 `post_feedforward_layernorm`).
    pub post_mlp: Option<Norm>,
    pub residual: Residual,
}

fn opt_norm(n: &Option<Norm>, x: &Tensor) -> Result<Tensor> {
    match n {
        Some(n) => n.forward(x),
        None => Ok(x.clone()),
    }
}

impl Block {
    /// What attention writes into the residual stream. `x: [N, D]`.
    pub fn attn_out(
        &self,
        x: &Tensor,
        ctx: &AttnCtx,
        cache: &mut Option<&mut KvEntry>,
    ) -> Result<Tensor> {
        let h = opt_norm(&self.pre_attn, x)?;
        let a = self.attn.forward(&h, ctx, cache)?;
        opt_norm(&self.post_attn, &a)
    }
    /// What the MLP writes into the residual stream. `x: [N, D]`.
    pub fn mlp_out(&self, x: &Tensor) -> Result<Tensor> {
        let h = opt_norm(&self.pre_mlp, x)?;
        let m = self.mlp.forward(&h)?;
        opt_norm(&self.post_mlp, &m)
    }
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn exp_f32_is_within_a_few_ulp_of_libm() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max((ours - want).abs() / want);
            x += 0.000_73;
        }
        assert!(worst < 4e-7, "worst relative error {worst:.3e}");
        assert!(exp_f32(-200.0) < 1e-37 && exp_f32(200.0).is_finite());
    }
}
