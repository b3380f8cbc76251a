//! The CPU reference: plain loops with f64 accumulation, and the comparison
//! that decides whether a GPU result is trusted.
//!
//! The reference is pinned to onnxruntime by the golden tests in
//! `tests/golden.rs`; GPU kernels are pinned to the reference by the sweeps.

use crate::error::{Error, Result};
use crate::geometry::{Activation, Conv2dShape, ConvKind};

/// Output of the reference: exact-as-f64 values, and for each element the sum
/// of the magnitudes of the terms that formed it (`Σ|x·w| + |b|`), which
/// bounds the rounding error of any f32 evaluation order.
#[derive(Debug, Clone)]
pub struct RefOutput {
    /// Values after bias and activation, in f64.
    pub values: Vec<f64>,
    /// `Σ|x·w| + |b|` per element, before the activation.
    pub magnitude: Vec<f64>,
    /// Terms summed per element (at most), including the bias.
    pub terms: u64,
}

impl RefOutput {
    /// The values rounded to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        self.values.iter().map(|&v| v as f32).collect()
    }
}

fn check_len(what: &'static str, shape: &[usize], data: usize) -> Result<()> {
    let expected: usize = shape.iter().product();
    if data != expected {
        return Err(Error::DataLength {
            what,
            shape: shape.to_vec(),
            expected,
            actual: data,
        });
    }
    Ok(())
}

/// Runs a forward or transposed convolution (whichever `shape.kind` says)
/// on the CPU.
///
/// # Errors
/// [`Error::DataLength`] when a slice does not match the shape, and
/// [`Error::BiasLength`] for a bias of the wrong length.
pub fn conv(
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
) -> Result<RefOutput> {
    check_len("input", &shape.input_shape(), input.len())?;
    check_len("weight", &shape.weight_shape(), weight.len())?;
    if let Some(b) = bias {
        if b.len() != shape.c_out as usize {
            return Err(Error::BiasLength {
                len: b.len(),
                c_out: shape.c_out as usize,
            });
        }
    }
    let mut acc = vec![0f64; shape.output_len()];
    let mut mag = vec![0f64; shape.output_len()];
    match shape.kind {
        ConvKind::Forward => forward(shape, input, weight, &mut acc, &mut mag),
        ConvKind::Transposed => transposed(shape, input, weight, &mut acc, &mut mag),
    }
    let plane = (shape.h_out * shape.w_out) as usize;
    for (i, (v, m)) in acc.iter_mut().zip(mag.iter_mut()).enumerate() {
        let co = (i / plane) % shape.c_out as usize;
        if let Some(b) = bias {
            *v += f64::from(b[co]);
            *m += f64::from(b[co]).abs();
        }
        *v = activation.apply(*v);
    }
    Ok(RefOutput {
        values: acc,
        magnitude: mag,
        terms: shape.reduction_len() + 1,
    })
}

/// Forward convolution: every output gathers `c_in/G · k_h · k_w` taps.
fn forward(s: &Conv2dShape, input: &[f32], weight: &[f32], acc: &mut [f64], mag: &mut [f64]) {
    let (cpg_in, cpg_out) = (s.c_in_per_group() as usize, s.c_out_per_group() as usize);
    let (h_in, w_in) = (s.h_in as i64, s.w_in as i64);
    let (k_h, k_w) = (s.k_h as usize, s.k_w as usize);
    let mut o = 0;
    for n in 0..s.n as usize {
        for co in 0..s.c_out as usize {
            let g = co / cpg_out;
            for oh in 0..s.h_out as i64 {
                for ow in 0..s.w_out as i64 {
                    let (mut sum, mut m) = (0f64, 0f64);
                    for ci in 0..cpg_in {
                        let c = g * cpg_in + ci;
                        for kh in 0..k_h {
                            let ih = oh * i64::from(s.stride_h) - i64::from(s.padding.top)
                                + kh as i64 * i64::from(s.dil_h);
                            if ih < 0 || ih >= h_in {
                                continue;
                            }
                            for kw in 0..k_w {
                                let iw = ow * i64::from(s.stride_w) - i64::from(s.padding.left)
                                    + kw as i64 * i64::from(s.dil_w);
                                if iw < 0 || iw >= w_in {
                                    continue;
                                }
                                let x = input[((n * s.c_in as usize + c) * s.h_in as usize
                                    + ih as usize)
                                    * s.w_in as usize
                                    + iw as usize];
                                let w = weight[((co * cpg_in + ci) * k_h + kh) * k_w + kw];
                                let t = f64::from(x) * f64::from(w);
                                sum += t;
                                m += t.abs();
                            }
                        }
                    }
                    acc[o] = sum;
                    mag[o] = m;
                    o += 1;
                }
            }
        }
    }
}

/// Transposed convolution, written as the scatter that defines it (every
/// input pixel adds `x · w` to the outputs its kernel covers) so that it
/// shares no index math with the GPU's gather formulation.
fn transposed(s: &Conv2dShape, input: &[f32], weight: &[f32], acc: &mut [f64], mag: &mut [f64]) {
    let (cpg_in, cpg_out) = (s.c_in_per_group() as usize, s.c_out_per_group() as usize);
    let (h_out, w_out) = (s.h_out as i64, s.w_out as i64);
    let (k_h, k_w) = (s.k_h as usize, s.k_w as usize);
    for n in 0..s.n as usize {
        for ci in 0..s.c_in as usize {
            let g = ci / cpg_in;
            for ih in 0..s.h_in as i64 {
                for iw in 0..s.w_in as i64 {
                    let x = f64::from(
                        input[((n * s.c_in as usize + ci) * s.h_in as usize + ih as usize)
                            * s.w_in as usize
                            + iw as usize],
                    );
                    for kc in 0..cpg_out {
                        let co = g * cpg_out + kc;
                        for kh in 0..k_h {
                            let oh = ih * i64::from(s.stride_h) - i64::from(s.padding.top)
                                + kh as i64 * i64::from(s.dil_h);
                            if oh < 0 || oh >= h_out {
                                continue;
                            }
                            for kw in 0..k_w {
                                let ow = iw * i64::from(s.stride_w) - i64::from(s.padding.left)
                                    + kw as i64 * i64::from(s.dil_w);
                                if ow < 0 || ow >= w_out {
                                    continue;
                                }
                                let w =
                                    f64::from(weight[((ci * cpg_out + kc) * k_h + kh) * k_w + kw]);
                                let o = ((n * s.c_out as usize + co) * s.h_out as usize
                                    + oh as usize)
                                    * s.w_out as usize
                                    + ow as usize;
                                acc[o] += x * w;
                                mag[o] += (x * w).abs();
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Unit roundoff of f32 (round to nearest).
const U: f64 = 1.0 / (1u64 << 24) as f64;

/// `γ_n = n·u / (1 − n·u)`: the classical bound (Higham, *Accuracy and
/// Stability of Numerical Algorithms*, §3.1) on the relative error of a dot
/// product of length `n` evaluated in floating point in any order.
fn gamma(n: u64) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu).max(f64::MIN_POSITIVE)
}

/// How closely a result must match the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// `f32-accumulation`: the rounding-error bound of f32 arithmetic, per
    /// element, derived from the reduction length `L` (terms including bias)
    /// and the magnitude `M = Σ|x·w| + |b|` of the terms:
    ///
    /// `|gpu − ref| ≤ s·γ_{L+1}·M + a·u·|ref| + L·2⁻¹²⁶`
    ///
    /// `γ_{L+1}` bounds the products' and the sum's rounding in any summation
    /// order, with or without FMA; `s` is the activation's largest slope (an
    /// error in its input grows by at most that much); `a·u·|ref|` covers the
    /// activation's own evaluation: a few ulps for the piecewise-linear ones
    /// (`a = 4`) and WGSL's `exp` accuracy of `3 + 2|x|` ulps for SiLU
    /// (`a = 8 + 2M`, as `|x| ≤ M`); the last term allows every term to be a
    /// flushed subnormal. A wrong index or a missing tap produces an error of
    /// the order of `M` itself, many orders above this bound, so the bound
    /// catches every bug the tests look for while never failing a correct
    /// kernel.
    F32Accumulation,
    /// Fixed absolute and relative tolerance: pass when
    /// `|gpu − ref| ≤ abs + rel·|ref|`.
    Fixed {
        /// Absolute part.
        abs: f64,
        /// Relative part.
        rel: f64,
    },
}

impl Tolerance {
    /// Name of the preset, for reports.
    pub fn name(&self) -> String {
        match self {
            Tolerance::F32Accumulation => "f32-accumulation".into(),
            Tolerance::Fixed { abs, rel } => format!("fixed(abs={abs:e}, rel={rel:e})"),
        }
    }
}

/// The result of comparing a computed tensor with the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Largest `|actual − ref|`.
    pub max_abs: f64,
    /// Largest `|actual − ref| / max(|ref|, 1e-3·max|ref|)`: relative error,
    /// with near-zero references measured against the tensor's scale.
    pub max_rel: f64,
    /// Largest ratio of error to allowed error (pass iff ≤ 1).
    pub worst_ratio: f64,
    /// Flat index of the element with the worst ratio.
    pub worst_index: usize,
    /// Whether every element is within tolerance (NaN never is).
    pub passed: bool,
    /// Tolerance preset used.
    pub tolerance: String,
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: max abs err {:.3e}, max rel err {:.3e}, worst at {} ({:.3} of allowed) [{}]",
            if self.passed { "PASS" } else { "FAIL" },
            self.max_abs,
            self.max_rel,
            self.worst_index,
            self.worst_ratio,
            self.tolerance
        )
    }
}

/// Compares `actual` with the reference under a tolerance.
///
/// # Errors
/// [`Error::DataLength`] when the lengths differ.
pub fn compare(
    reference: &RefOutput,
    activation: Activation,
    actual: &[f32],
    tolerance: Tolerance,
) -> Result<Comparison> {
    if actual.len() != reference.values.len() {
        return Err(Error::DataLength {
            what: "result",
            shape: vec![reference.values.len()],
            expected: reference.values.len(),
            actual: actual.len(),
        });
    }
    let scale = reference.values.iter().fold(0f64, |m, v| m.max(v.abs()));
    let floor = (1e-3 * scale).max(f64::MIN_POSITIVE);
    let g = gamma(reference.terms + 1);
    let slope = activation.max_slope();
    let subnormal = reference.terms as f64 * f64::from(f32::MIN_POSITIVE);
    let (mut max_abs, mut max_rel, mut worst_ratio, mut worst_index) = (0f64, 0f64, 0f64, 0);
    let mut passed = true;
    for (i, (&a, (&r, &m))) in actual
        .iter()
        .zip(reference.values.iter().zip(reference.magnitude.iter()))
        .enumerate()
    {
        let err = (f64::from(a) - r).abs();
        let allowed = match tolerance {
            Tolerance::F32Accumulation => {
                let act_ulps = if activation == Activation::Silu {
                    8.0 + 2.0 * m
                } else {
                    4.0
                };
                slope * g * m + act_ulps * U * r.abs() + subnormal
            }
            Tolerance::Fixed { abs, rel } => abs + rel * r.abs(),
        };
        let ratio = if err == 0.0 {
            0.0
        } else if err.is_nan() {
            f64::INFINITY
        } else {
            err / allowed
        };
        // NaN compares false: a NaN anywhere fails, and is reported as worst.
        if err.is_nan() || err > allowed {
            passed = false;
        }
        if ratio > worst_ratio {
            worst_ratio = ratio;
            worst_index = i;
        }
        if err.is_nan() {
            max_abs = f64::NAN;
            max_rel = f64::NAN;
        } else if !max_abs.is_nan() {
            max_abs = max_abs.max(err);
            max_rel = max_rel.max(err / r.abs().max(floor));
        }
    }
    Ok(Comparison {
        max_abs,
        max_rel,
        worst_ratio,
        worst_index,
        passed,
        tolerance: tolerance.name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Conv2dParams, Padding};

    #[test]
    fn tiny_conv_by_hand() {
        // 1x1x3x3 input, 1x1x2x2 weight of ones, no padding: each output sums a 2x2 window.
        let s = Conv2dShape::conv2d(
            [1, 1, 3, 3],
            [1, 1, 2, 2],
            Some(1),
            &Conv2dParams::default(),
        )
        .unwrap();
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let r = conv(&s, &x, &[1.0; 4], Some(&[0.5]), Activation::None).unwrap();
        assert_eq!(r.to_f32(), vec![12.5, 16.5, 24.5, 28.5]);
    }

    #[test]
    fn transposed_by_hand() {
        // stride-2 transposed conv of [[1,2]] with a 1x1 weight of 3 spreads values out.
        let s = Conv2dShape::conv_transpose2d(
            [1, 1, 1, 2],
            [1, 1, 1, 1],
            None,
            &crate::geometry::ConvTranspose2dParams::default()
                .stride(2, 2)
                .output_padding(1, 1),
        )
        .unwrap();
        let r = conv(&s, &[1.0, 2.0], &[3.0], None, Activation::None).unwrap();
        assert_eq!(s.output_shape(), [1, 1, 2, 4]);
        assert_eq!(r.to_f32(), vec![3.0, 0.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn compare_catches_errors_and_nan() {
        let s = Conv2dShape::conv2d(
            [1, 2, 4, 4],
            [2, 2, 3, 3],
            None,
            &Conv2dParams::default().padding(Padding::uniform(1)),
        )
        .unwrap();
        let x: Vec<f32> = (0..32).map(|v| (v as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..36).map(|v| (v as f32 * 0.11).cos()).collect();
        let r = conv(&s, &x, &w, None, Activation::None).unwrap();
        let exact = r.to_f32();
        assert!(
            compare(&r, Activation::None, &exact, Tolerance::F32Accumulation)
                .unwrap()
                .passed
        );
        let mut off = exact.clone();
        off[5] += 1e-2;
        let c = compare(&r, Activation::None, &off, Tolerance::F32Accumulation).unwrap();
        assert!(!c.passed);
        assert_eq!(c.worst_index, 5);
        let mut nan = exact.clone();
        nan[3] = f32::NAN;
        let c = compare(&r, Activation::None, &nan, Tolerance::F32Accumulation).unwrap();
        assert!(!c.passed);
        assert_eq!(c.worst_index, 3);
        assert!(compare(
            &r,
            Activation::None,
            &exact[1..],
            Tolerance::F32Accumulation
        )
        .is_err());
    }
}
