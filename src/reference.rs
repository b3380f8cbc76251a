//! The CPU reference: plain loops with f64 accumulation, and the comparison
//! that decides whether a GPU result is trusted.
//!
//! The reference is pinned to onnxruntime by the golden tests in
//! `tests/golden.rs`; GPU kernels are pinned to the reference by the sweeps.

use crate::error::{Error, Result};
use crate::geometry::{
    self, Activation, Conv2dShape, ConvKind, Pool2dParams, Pool2dShape, PoolMode,
    UpsampleConv2dShape, UpsampleMode, UpsampleShape,
};

/// Output of the reference: exact-as-f64 values, and for each element the sum
/// of the magnitudes of the terms that formed it (`Σ|x·w| + |b|` for a
/// convolution; see [`upsample_conv`] for interpolated inputs), which bounds
/// the rounding error of any f32 evaluation order.
#[derive(Debug, Clone)]
pub struct RefOutput {
    /// Values after bias and activation, in f64.
    pub values: Vec<f64>,
    /// `Σ|x·w| + |b|` per element, before the activation.
    pub magnitude: Vec<f64>,
    /// Terms summed per element (at most), including the bias, plus the
    /// rounding steps any term meets before the sum (an interpolation's:
    /// [`BILINEAR_ROUNDINGS`]). [`compare`] allows `γ_{terms+1}·magnitude`.
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
    check_bias(shape, bias)?;
    let mut acc = vec![0f64; shape.output_len()];
    let mut mag = vec![0f64; shape.output_len()];
    match shape.kind {
        ConvKind::Forward => forward(shape, input, weight, &mut acc, &mut mag),
        ConvKind::Transposed => transposed(shape, input, weight, &mut acc, &mut mag),
    }
    finish(shape, &mut acc, &mut mag, bias, activation);
    Ok(RefOutput {
        values: acc,
        magnitude: mag,
        terms: shape.reduction_len() + 1,
    })
}

fn check_bias(shape: &Conv2dShape, bias: Option<&[f32]>) -> Result<()> {
    if let Some(b) = bias {
        if b.len() != shape.c_out as usize {
            return Err(Error::BiasLength {
                len: b.len(),
                c_out: shape.c_out as usize,
            });
        }
    }
    Ok(())
}

/// Adds the bias (to values and magnitudes) and applies the activation.
fn finish(
    shape: &Conv2dShape,
    acc: &mut [f64],
    mag: &mut [f64],
    bias: Option<&[f32]>,
    activation: Activation,
) {
    let plane = (shape.h_out * shape.w_out) as usize;
    for (i, (v, m)) in acc.iter_mut().zip(mag.iter_mut()).enumerate() {
        let co = (i / plane) % shape.c_out as usize;
        if let Some(b) = bias {
            *v += f64::from(b[co]);
            *m += f64::from(b[co]).abs();
        }
        *v = activation.apply(*v);
    }
}

/// Rounding steps the GPU's bilinear interpolation adds to each input term,
/// counted into [`RefOutput::terms`].
///
/// The shaders evaluate `v = (wy0·(wx0·a + wx1·b) + wy1·(wx0·c + wx1·d))`
/// with exact small-integer weights (`wy0 + wy1 = 2·scale_h`, `wx0 + wx1 =
/// 2·scale_w`), then scale by `fl(1 / (4·scale_h·scale_w))` once. Each input
/// value meets at most 2 roundings in the inner sum, 2 in the outer one and
/// 2 in the scaling (the reciprocal's own rounding and the product): 6.
/// Since every weight is non-negative, the error of the interpolated value is
/// at most `γ_6 · interp(|x|)`, where `interp(|x|)` interpolates the
/// magnitudes with the same weights. (`|interp(x)|` does not bound it: with
/// mixed signs it can be 0 while the rounding is not.) A convolution of
/// such values with `L` taps then has error at most
/// `γ_{L+1+6} · (Σ|w|·interp(|x|) + |b|)` (Higham's `γ_a + γ_b + γ_aγ_b ≤
/// γ_{a+b}`), which is what [`compare`] checks when `terms` is `L + 1 + 6`
/// and `magnitude` is `Σ|w|·interp(|x|) + |b|`.
pub const BILINEAR_ROUNDINGS: u64 = 6;

/// Up to two source taps `(index, weight)` of output coordinate `o` along
/// one axis, straight from PyTorch's definitions (weights sum to 1).
fn axis_taps(
    mode: UpsampleMode,
    o: usize,
    scale: u32,
    extent: usize,
) -> ([(usize, f64); 2], usize) {
    match mode {
        UpsampleMode::Nearest => ([(o / scale as usize, 1.0), (0, 0.0)], 1),
        UpsampleMode::Bilinear => {
            // area_pixel_compute_source_index(1/scale, o, align_corners=false).
            let src = ((o as f64 + 0.5) / f64::from(scale) - 0.5).max(0.0);
            let i0 = src.floor() as usize;
            let lambda = src - i0 as f64;
            let i1 = if i0 + 1 < extent { i0 + 1 } else { i0 };
            ([(i0, 1.0 - lambda), (i1, lambda)], 2)
        }
    }
}

/// Upsamples in f64: the values, and the same interpolation of `|x|`.
fn upsample_f64(shape: &UpsampleShape, input: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let [n, c, h_in, w_in] = shape.input_shape();
    let [_, _, h_out, w_out] = shape.output_shape();
    let mut values = Vec::with_capacity(shape.output_len());
    let mut magnitude = Vec::with_capacity(shape.output_len());
    for plane in 0..n * c {
        let x = &input[plane * h_in * w_in..(plane + 1) * h_in * w_in];
        for oh in 0..h_out {
            let (ty, ny) = axis_taps(shape.mode, oh, shape.scale_h, h_in);
            for ow in 0..w_out {
                let (tx, nx) = axis_taps(shape.mode, ow, shape.scale_w, w_in);
                let (mut v, mut m) = (0f64, 0f64);
                for &(iy, wy) in &ty[..ny] {
                    for &(ix, wx) in &tx[..nx] {
                        let xv = f64::from(x[iy * w_in + ix]);
                        v += wy * wx * xv;
                        m += wy * wx * xv.abs();
                    }
                }
                values.push(v);
                magnitude.push(m);
            }
        }
    }
    (values, magnitude)
}

/// Runs an upsampling op on the CPU (PyTorch `nn.Upsample` semantics; see
/// [`UpsampleMode`]). `magnitude` is the interpolation of `|x|` and `terms`
/// the GPU's rounding steps per input term ([`BILINEAR_ROUNDINGS`] for
/// bilinear; nearest copies exactly).
///
/// # Errors
/// [`Error::DataLength`] when `input` does not match the shape.
pub fn upsample(shape: &UpsampleShape, input: &[f32]) -> Result<RefOutput> {
    check_len("input", &shape.input_shape(), input.len())?;
    let (values, magnitude) = upsample_f64(shape, input);
    Ok(RefOutput {
        values,
        magnitude,
        terms: match shape.mode {
            UpsampleMode::Nearest => 1,
            UpsampleMode::Bilinear => BILINEAR_ROUNDINGS,
        },
    })
}

/// Runs a fused upsample + convolution on the CPU as its definition:
/// upsample in f64, then convolve the f64 image with f64 accumulation.
/// `magnitude` is `Σ|w|·interp(|x|) + |b|` and `terms` is
/// `c_in/G · k_h · k_w + 1`, plus [`BILINEAR_ROUNDINGS`] for bilinear (see
/// there for why this bounds the GPU's rounding).
///
/// # Errors
/// [`Error::DataLength`] when a slice does not match the shape, and
/// [`Error::BiasLength`] for a bias of the wrong length.
pub fn upsample_conv(
    shape: &UpsampleConv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
) -> Result<RefOutput> {
    let conv = &shape.conv;
    check_len("input", &shape.input_shape(), input.len())?;
    check_len("weight", &conv.weight_shape(), weight.len())?;
    check_bias(conv, bias)?;
    let (values, magnitude) = upsample_f64(&shape.upsample, input);
    let up = Upsampled {
        values: &values,
        magnitude: &magnitude,
    };
    let mut acc = vec![0f64; conv.output_len()];
    let mut mag = vec![0f64; conv.output_len()];
    forward(conv, &up, weight, &mut acc, &mut mag);
    finish(conv, &mut acc, &mut mag, bias, activation);
    let extra = match shape.upsample.mode {
        UpsampleMode::Nearest => 0,
        UpsampleMode::Bilinear => BILINEAR_ROUNDINGS,
    };
    Ok(RefOutput {
        values: acc,
        magnitude: mag,
        terms: conv.reduction_len() + 1 + extra,
    })
}

/// What the forward convolution reads at a flat input index: the value, and
/// the magnitude that bounds the rounding error already in that value.
trait Taps {
    /// `(value, magnitude)` of input element `i`.
    fn at(&self, i: usize) -> (f64, f64);
}

/// A real f32 input: exact values, magnitude `|x|`.
impl Taps for [f32] {
    fn at(&self, i: usize) -> (f64, f64) {
        let x = f64::from(self[i]);
        (x, x.abs())
    }
}

/// An upsampled input computed in f64: `values[i]` and `magnitude[i]`.
struct Upsampled<'a> {
    values: &'a [f64],
    magnitude: &'a [f64],
}

impl Taps for Upsampled<'_> {
    fn at(&self, i: usize) -> (f64, f64) {
        (self.values[i], self.magnitude[i])
    }
}

/// Forward convolution: every output gathers `c_in/G · k_h · k_w` taps.
/// `mag` gets `Σ|w|·m` where `m` is each tap's magnitude (`|x|` for a real
/// input, so `Σ|x·w|`).
fn forward<T: Taps + ?Sized>(
    s: &Conv2dShape,
    input: &T,
    weight: &[f32],
    acc: &mut [f64],
    mag: &mut [f64],
) {
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
                                let (x, xm) = input.at(((n * s.c_in as usize + c)
                                    * s.h_in as usize
                                    + ih as usize)
                                    * s.w_in as usize
                                    + iw as usize);
                                let w =
                                    f64::from(weight[((co * cpg_in + ci) * k_h + kh) * k_w + kw]);
                                sum += x * w;
                                m += xm * w.abs();
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

/// Rounding steps an average adds on the GPU beyond its sum, counted into
/// [`RefOutput::terms`].
///
/// The shaders sum the `count` values of a window or plane (at most
/// `count − 1` roundings, in any order), then multiply by
/// `fl(1 / count)`, rounded once on the host: the reciprocal's rounding and
/// the product's are 2 more. Each term so meets at most `count + 1`
/// roundings, and the error of the average is at most
/// `γ_{count+1} · Σ|x| / count`: [`pool2d`] (average) and
/// [`global_avg_pool`] report `terms = count − 1 + 2` and `magnitude =
/// Σ|x| / count`, and [`compare`] allows `γ_{terms+1}·magnitude` (one
/// rounding to spare, as for a convolution).
pub const AVERAGE_ROUNDINGS: u64 = 2;

/// The element-wise sum `activation(a + b)` in f64. `magnitude` is
/// `|a| + |b|` and `terms` 2 (one rounding, the sum's, with a spare; the
/// activation's own error is [`compare`]'s business).
///
/// # Errors
/// [`Error::DataLength`] when the slices' lengths differ.
pub fn add(a: &[f32], b: &[f32], activation: Activation) -> Result<RefOutput> {
    check_len("b", &[a.len()], b.len())?;
    let values = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| activation.apply(f64::from(x) + f64::from(y)))
        .collect();
    let magnitude = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x).abs() + f64::from(y).abs())
        .collect();
    Ok(RefOutput {
        values,
        magnitude,
        terms: 2,
    })
}

/// Max or average pooling of `input` (shape `shape`). Max is exact:
/// `magnitude = |value|`, `terms = 0` (a max never rounds; [`compare`] then
/// allows a few ulps, and the tests demand bit equality). Average:
/// `Σ window / (k_h·k_w)` with `magnitude = Σ|window| / (k_h·k_w)` and
/// `terms = k_h·k_w + 1` (see [`AVERAGE_ROUNDINGS`]).
///
/// # Errors
/// As [`Pool2dShape::new`], and [`Error::DataLength`] when `input` does not
/// match `shape`.
pub fn pool2d(params: &Pool2dParams, input: &[f32], shape: [usize; 4]) -> Result<RefOutput> {
    let s = Pool2dShape::new(shape, params)?;
    check_len("input", &shape, input.len())?;
    let [h_in, w_in] = [s.h_in, s.w_in].map(|v| v as usize);
    let [h_out, w_out] = [s.h_out, s.w_out].map(|v| v as usize);
    let [k_h, k_w, s_h, s_w] = [s.k_h, s.k_w, s.stride_h, s.stride_w].map(|v| v as usize);
    let count = f64::from(s.window_len());
    let mut values = Vec::with_capacity(s.output_len());
    let mut magnitude = Vec::with_capacity(s.output_len());
    for plane in input.chunks_exact(h_in * w_in) {
        for oh in 0..h_out {
            for ow in 0..w_out {
                let window = (0..k_h).flat_map(|kh| {
                    let row = (oh * s_h + kh) * w_in + ow * s_w;
                    plane[row..row + k_w].iter().map(|&x| f64::from(x))
                });
                match s.mode {
                    PoolMode::Max => {
                        let m = window.fold(f64::NEG_INFINITY, f64::max);
                        values.push(m);
                        magnitude.push(m.abs());
                    }
                    PoolMode::Avg => {
                        let (sum, abs) = window.fold((0.0, 0.0), |(s, a), x| (s + x, a + x.abs()));
                        values.push(sum / count);
                        magnitude.push(abs / count);
                    }
                }
            }
        }
    }
    Ok(RefOutput {
        values,
        magnitude,
        terms: match s.mode {
            PoolMode::Max => 0,
            PoolMode::Avg => u64::from(s.window_len()) - 1 + AVERAGE_ROUNDINGS,
        },
    })
}

/// Global average pooling, `[n, c, h, w] -> [n, c, 1, 1]`: the mean of each
/// plane, with `magnitude = Σ|plane| / (h·w)` and `terms = h·w + 1` (see
/// [`AVERAGE_ROUNDINGS`]).
///
/// # Errors
/// As [`geometry::global_pool_shape`], and [`Error::DataLength`] when
/// `input` does not match `shape`.
pub fn global_avg_pool(input: &[f32], shape: [usize; 4]) -> Result<RefOutput> {
    geometry::global_pool_shape(shape)?;
    check_len("input", &shape, input.len())?;
    let plane_len = shape[2] * shape[3];
    let count = plane_len as f64;
    let (values, magnitude) = input
        .chunks_exact(plane_len)
        .map(|plane| {
            let (sum, abs) = plane.iter().fold((0.0, 0.0), |(s, a), &x| {
                (s + f64::from(x), a + f64::from(x).abs())
            });
            (sum / count, abs / count)
        })
        .unzip();
    Ok(RefOutput {
        values,
        magnitude,
        terms: plane_len as u64 - 1 + AVERAGE_ROUNDINGS,
    })
}

/// Concatenation along channels of `(data, shape)` inputs: exact (a copy),
/// `magnitude = |value|`, `terms = 0`.
///
/// # Errors
/// As [`geometry::concat_shape`], and [`Error::DataLength`] when a slice
/// does not match its shape.
pub fn concat(inputs: &[(&[f32], [usize; 4])]) -> Result<RefOutput> {
    let shapes: Vec<[usize; 4]> = inputs.iter().map(|&(_, s)| s).collect();
    let out = geometry::concat_shape(&shapes)?;
    for &(data, shape) in inputs {
        check_len("input", &shape, data.len())?;
    }
    let plane = out[2] * out[3];
    let mut values = Vec::with_capacity(out.iter().product());
    for image in 0..out[0] {
        for &(data, [_, c, _, _]) in inputs {
            let block = c * plane;
            values.extend(
                data[image * block..(image + 1) * block]
                    .iter()
                    .map(|&x| f64::from(x)),
            );
        }
    }
    let magnitude = values.iter().map(|v: &f64| v.abs()).collect();
    Ok(RefOutput {
        values,
        magnitude,
        terms: 0,
    })
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
    /// kernel. For an upsampled input, `M` and `L` are the reference's
    /// `magnitude` and `terms`, which account for the interpolation (see
    /// [`BILINEAR_ROUNDINGS`]).
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
    use crate::geometry::{Conv2dParams, Padding, UpsampleParams};

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

    fn up(input: [usize; 4], params: UpsampleParams) -> UpsampleShape {
        UpsampleShape::new(input, &params).unwrap()
    }

    #[test]
    fn nearest_repeats_each_pixel() {
        let s = up([1, 1, 2, 2], UpsampleParams::nearest(2, 3));
        let r = upsample(&s, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        #[rustfmt::skip]
        let want = vec![
            1.0, 1.0, 1.0, 2.0, 2.0, 2.0,
            1.0, 1.0, 1.0, 2.0, 2.0, 2.0,
            3.0, 3.0, 3.0, 4.0, 4.0, 4.0,
            3.0, 3.0, 3.0, 4.0, 4.0, 4.0,
        ];
        assert_eq!(r.to_f32(), want);
        assert_eq!(r.terms, 1);
    }

    #[test]
    fn bilinear_2x2_by_hand() {
        // PyTorch: F.interpolate(tensor([[[[1., 2.], [3., 4.]]]]), scale_factor=2,
        // mode='bilinear', align_corners=False). Per axis src = max((o + 0.5)/2 − 0.5, 0):
        //   o = 0: −0.25 → 0, so x0;       o = 1: 0.25, so 0.75·x0 + 0.25·x1;
        //   o = 2: 0.75, 0.25·x0 + 0.75·x1; o = 3: 1.25, i0 = 1 and i1 clamps to 1, so x1.
        // Row [1, 2] → [1, 1.25, 1.75, 2], row [3, 4] → [3, 3.25, 3.75, 4]; the rows mix alike:
        // 0.75·r0 + 0.25·r1 = r0 + 0.5 and 0.25·r0 + 0.75·r1 = r0 + 1.5.
        let s = up([1, 1, 2, 2], UpsampleParams::bilinear(2, 2));
        let r = upsample(&s, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        #[rustfmt::skip]
        let want = vec![
            1.0, 1.25, 1.75, 2.0,
            1.5, 1.75, 2.25, 2.5,
            2.5, 2.75, 3.25, 3.5,
            3.0, 3.25, 3.75, 4.0,
        ];
        assert_eq!(r.to_f32(), want);
        assert_eq!(r.terms, BILINEAR_ROUNDINGS);
    }

    #[test]
    fn bilinear_scale_3_clamps_at_both_edges() {
        // [0, 3] widened 3×: src = max((o + 0.5)/3 − 0.5, 0) = 0, 0, 1/3, 2/3, 1, 4/3 for
        // o = 0..5 (the first clamped from −1/3, the last with i1 clamped to the edge):
        // 0, 0, 1, 2, 3, 3.
        let s = up([1, 1, 1, 2], UpsampleParams::bilinear(1, 3));
        let r = upsample(&s, &[0.0, 3.0]).unwrap();
        let got = r.to_f32();
        let want = [0.0, 0.0, 1.0, 2.0, 3.0, 3.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn bilinear_magnitude_interpolates_absolute_values() {
        // [1, −1] widened 2×: values 1, 0.5, −0.5, −1; the interpolated |x| is 1 everywhere,
        // which is what bounds the rounding (|value| would claim 0.5 in the middle).
        let s = up([1, 1, 1, 2], UpsampleParams::bilinear(1, 2));
        let r = upsample(&s, &[1.0, -1.0]).unwrap();
        assert_eq!(r.to_f32(), vec![1.0, 0.5, -0.5, -1.0]);
        assert_eq!(r.magnitude, vec![1.0; 4]);
    }

    #[test]
    fn upsample_conv_by_hand() {
        // The 4×4 bilinear image of bilinear_2x2_by_hand, then a 2×2 conv of ones plus 0.5:
        // each output is its 2×2 window's sum + 0.5.
        let params = crate::geometry::UpsampleConv2dParams {
            upsample: UpsampleParams::bilinear(2, 2),
            conv: Conv2dParams::default(),
        };
        let s = UpsampleConv2dShape::new([1, 1, 2, 2], [1, 1, 2, 2], Some(1), &params).unwrap();
        let r = upsample_conv(
            &s,
            &[1.0, 2.0, 3.0, 4.0],
            &[1.0; 4],
            Some(&[0.5]),
            Activation::None,
        )
        .unwrap();
        assert_eq!(s.output_shape(), [1, 1, 3, 3]);
        assert_eq!(
            r.to_f32(),
            vec![6.0, 7.5, 9.0, 9.0, 10.5, 12.0, 12.0, 13.5, 15.0]
        );
        // 4 taps + bias + the interpolation's roundings.
        assert_eq!(r.terms, 4 + 1 + BILINEAR_ROUNDINGS);
        // All inputs positive: the magnitude is the value.
        assert_eq!(r.magnitude, r.values);
        // Nearest: the plain convolution of the repeated image.
        let params = crate::geometry::UpsampleConv2dParams {
            upsample: UpsampleParams::nearest(2, 2),
            ..params
        };
        let s = UpsampleConv2dShape::new([1, 1, 2, 2], [1, 1, 2, 2], None, &params).unwrap();
        let r =
            upsample_conv(&s, &[1.0, 2.0, 3.0, 4.0], &[1.0; 4], None, Activation::None).unwrap();
        assert_eq!(
            r.to_f32(),
            vec![4.0, 6.0, 8.0, 8.0, 10.0, 12.0, 12.0, 14.0, 16.0]
        );
        assert_eq!(r.terms, 5);
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

    #[test]
    fn weightless_references_by_hand() {
        let r = add(&[1.0, -3.0], &[2.0, 1.0], Activation::Relu).unwrap();
        assert_eq!(r.values, vec![3.0, 0.0]);
        assert_eq!(r.magnitude, vec![3.0, 4.0]);
        assert!(matches!(
            add(&[1.0], &[1.0, 2.0], Activation::None),
            Err(Error::DataLength { .. })
        ));
        // 1×1×2×4, 2×2 windows, stride 2.
        let x = [1.0, 5.0, -2.0, 0.0, 3.0, -4.0, 7.0, 1.0];
        let m = pool2d(&Pool2dParams::max2x2(), &x, [1, 1, 2, 4]).unwrap();
        assert_eq!((m.values.clone(), m.terms), (vec![5.0, 7.0], 0));
        let a = pool2d(&Pool2dParams::avg2x2(), &x, [1, 1, 2, 4]).unwrap();
        assert_eq!(a.values, vec![1.25, 1.5]);
        assert_eq!(a.magnitude, vec![3.25, 2.5]);
        assert_eq!(a.terms, 4 + 1);
        let g = global_avg_pool(&x, [1, 2, 2, 2]).unwrap();
        assert_eq!(g.values, vec![1.0, 1.75]);
        assert_eq!(g.terms, 5);
        let c = concat(&[(&x[..4], [1, 1, 2, 2]), (&x[4..], [1, 1, 2, 2])]).unwrap();
        assert_eq!(c.to_f32(), x.to_vec());
        // Two images: each image's blocks are interleaved.
        let c = concat(&[(&[1.0, 2.0], [2, 1, 1, 1]), (&[3.0, 4.0], [2, 1, 1, 1])]).unwrap();
        assert_eq!(c.to_f32(), vec![1.0, 3.0, 2.0, 4.0]);
    }
}
