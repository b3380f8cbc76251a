//! Fused upsample + convolution (resize-convolution): any [`Conv2dParams`](crate::Conv2dParams)
//! convolution of the nearest- or bilinear-upsampled input, where the kernel
//! reads the input through the upsampling index math and the upsampled image
//! never exists in memory: `shaders/conv2d_upsampled.wgsl`. Reference:
//! [`crate::reference::upsample_conv`] (upsample, then convolve, in f64).
//!
//! Nearest upsampling followed by a stride-1 convolution is exactly a
//! transposed convolution of the real input (the sub-pixel identity,
//! [`crate::geometry::SubPixelAxis`]); such a layer derives that transposed
//! weight once and runs [`ConvTranspose2d`] instead of the fused kernel.

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{Activation, SubPixel, UpsampleConv2dParams, UpsampleConv2dShape};
use crate::ops::conv_transpose2d::ConvTranspose2d;
use crate::ops::upsample::inv_area;
use crate::ops::{ConvUniforms, LayerCore, LayerOptions, OpParams};
use crate::plan::{self, AdapterProfile, Goal, Plan, WeightLayout};
use crate::reference::{self, Comparison, Tolerance};
use crate::tensor::{checked_len, GpuTensor};

/// Mirrors `struct Params` in `shaders/conv2d_upsampled.wgsl`: the
/// convolution's fields (with the upsampled extents as its input size), then
/// the real input's size and the upsampling.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UpsampleConvUniforms {
    /// The whole `ConvUniforms` (all 40 fields), as the shader's `Params` begins.
    conv: ConvUniforms,
    src_h: u32,
    src_w: u32,
    scale_h: u32,
    scale_w: u32,
    inv_area: f32,
    upad1: u32,
    upad2: u32,
    upad3: u32,
}

impl UpsampleConvUniforms {
    fn new(s: &UpsampleConv2dShape, activation: Activation, plan: &Plan) -> Self {
        let u = &s.upsample;
        Self {
            conv: ConvUniforms::new(&s.conv, activation, plan),
            src_h: u.h_in,
            src_w: u.w_in,
            scale_h: u.scale_h,
            scale_w: u.scale_w,
            inv_area: inv_area(u.mode, u.scale_h, u.scale_w),
            upad1: 0,
            upad2: 0,
            upad3: 0,
        }
    }
}

/// A convolution of the upsampled input, fused: weight `[c_out,
/// c_in/groups, k_h, k_w]` as for [`crate::Conv2d`], every
/// [`Conv2dParams`](crate::Conv2dParams) value (stride, asymmetric padding,
/// dilation, groups, bias, fused activation) applied to the image upsampled
/// by [`UpsampleParams`](crate::geometry::UpsampleParams). The output size
/// is the convolution's output size for the upsampled input size. Owns its
/// weights on the GPU, repacked once for the kernel.
///
/// Nearest upsampling with a stride-1 convolution runs as a transposed
/// convolution with a derived weight (see the module docs) when that is
/// expressible and not much more work per output; everything else runs the
/// fused `conv2d_upsampled` kernel.
#[derive(Debug)]
pub struct UpsampleConv2d {
    weight_shape: [usize; 4],
    params: UpsampleConv2dParams,
    activation: Activation,
    host_weight: Arc<[f32]>,
    host_bias: Option<Arc<[f32]>>,
    path: Path,
}

/// How the layer runs.
#[derive(Debug)]
enum Path {
    /// `conv2d_upsampled`, reading the input through the upsampling.
    Fused {
        profile: Box<AdapterProfile>,
        layout: WeightLayout,
        core: Box<LayerCore>,
    },
    /// The equal transposed convolution of the real input.
    SubPixel(Box<ConvTranspose2d>),
}

/// Which path [`UpsampleConv2d::build`] takes.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// The sub-pixel path where the layer has one worth running (its
    /// transposed convolution planned for the goal), else the fused kernel.
    Planned(Goal),
    /// The fused kernel, always.
    Fused,
}

/// The sub-pixel path is used only when its kernel loops over at most this
/// many times the forward kernel's taps per output (a large dilation or
/// padding relative to the scale makes most derived taps always zero).
const SUB_PIXEL_MAX_TAP_RATIO: u64 = 4;

/// The sub-pixel form of `params`, if the layer should run it.
fn sub_pixel_for(params: &UpsampleConv2dParams, weight_shape: [usize; 4]) -> Option<SubPixel> {
    let sp = params.sub_pixel(weight_shape)?;
    let derived = u64::from(sp.h.taps_per_phase()) * u64::from(sp.w.taps_per_phase());
    let forward = (weight_shape[2] as u64).saturating_mul(weight_shape[3] as u64);
    (derived <= SUB_PIXEL_MAX_TAP_RATIO.saturating_mul(forward)).then_some(sp)
}

/// The transposed weight `[c_in, c_out/groups, K'_h, K'_w]` of the
/// sub-pixel form `sp` of a forward weight `[c_out, c_in/groups, k_h, k_w]`:
/// per group, the channel axes swap and each derived tap is the sum of the
/// forward taps that map to it (for every output phase, see
/// [`SubPixelAxis::tap`](crate::geometry::SubPixelAxis::tap)), summed in
/// f64 and rounded once.
///
/// Why the f32-accumulation bound of the fused op still holds: nearest
/// upsampling makes every forward tap `t` that maps to derived tap `k'`
/// read the same input `x`, so the exact output is
/// `Σ_k' (Σ_{t→k'} w_t)·x_k' + b`. The derived weight is
/// `W̃ = (Σ w_t)(1 + ε)`, `|ε| ≤ u`, and `|Σ w_t| ≤ Σ|w_t|`, so with
/// `M = Σ_t |w_t|·|x_t| + |b|` (the reference's magnitude) the weight
/// rounding adds at most `u·M` and the kernel's sum of at most `L` nonzero
/// products (each phase sums at most `k` nonzero taps per axis, so no more
/// than the forward's `L`; an always-zero tap adds exactly 0) at most
/// `γ_L·(1 + u)·M`: together `≤ γ_{L+1}·M`, within the tolerance's
/// `γ_{terms+1}·M`. A derived weight that rounds into the subnormal range
/// (or is flushed) errs by at most `2⁻¹²⁶·|x|`, the case the tolerance's
/// subnormal allowance covers for a forward weight too.
pub fn sub_pixel_weight(sp: &SubPixel, weight: &[f32], weight_shape: [usize; 4]) -> Vec<f32> {
    let [c_out, cpg_in, k_h, k_w] = weight_shape;
    let groups = sp.params.groups as usize;
    let cpg_out = c_out / groups;
    let [_, _, kt_h, kt_w] = sp.weight_shape;
    let mut acc = vec![0f64; sp.weight_shape.iter().product()];
    // Per axis, the (forward tap, derived tap) pairs over every phase.
    let pairs = |ax: &crate::geometry::SubPixelAxis, k: usize| -> Vec<(usize, usize)> {
        (0..ax.scale)
            .flat_map(|r| (0..k as u32).map(move |t| (t as usize, ax.tap(r, t))))
            .collect()
    };
    let (ph, pw) = (pairs(&sp.h, k_h), pairs(&sp.w, k_w));
    for o in 0..c_out {
        let (g, oo) = (o / cpg_out, o % cpg_out);
        for ci in 0..cpg_in {
            let c = g * cpg_in + ci;
            let src = &weight[(o * cpg_in + ci) * k_h * k_w..][..k_h * k_w];
            let dst = &mut acc[(c * cpg_out + oo) * kt_h * kt_w..][..kt_h * kt_w];
            for &(th, kh) in &ph {
                for &(tw, kw) in &pw {
                    dst[kh * kt_w + kw] += f64::from(src[th * k_w + tw]);
                }
            }
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

impl UpsampleConv2d {
    /// Builds the layer from a PyTorch-layout conv weight `[c_out,
    /// c_in/groups, k_h, k_w]` and an optional bias `[c_out]`.
    ///
    /// # Errors
    /// Every parameter error that does not depend on the input (including
    /// [`Error::ZeroScale`]), [`Error::DataLength`] for slices that do not
    /// match their shapes, and device errors.
    pub fn new(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: UpsampleConv2dParams,
        activation: Activation,
    ) -> Result<Self> {
        Self::with_goal(
            engine,
            weight,
            weight_shape,
            bias,
            params,
            activation,
            Goal::Throughput,
        )
    }

    /// [`UpsampleConv2d::new`] planned for `goal` ([`LayerOptions::goal`]).
    /// The sub-pixel path's transposed convolution is planned for it; the
    /// fused kernel has one plan for both goals.
    ///
    /// # Errors
    /// As [`UpsampleConv2d::new`].
    pub fn with_goal(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: UpsampleConv2dParams,
        activation: Activation,
        goal: Goal,
    ) -> Result<Self> {
        Self::build(
            engine,
            weight,
            weight_shape,
            bias,
            params,
            activation,
            Route::Planned(goal),
        )
    }

    /// [`UpsampleConv2d::new`] that always runs the fused kernel (tests
    /// compare it with the sub-pixel path).
    ///
    /// # Errors
    /// As [`UpsampleConv2d::new`].
    #[doc(hidden)]
    pub fn new_fused(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: UpsampleConv2dParams,
        activation: Activation,
    ) -> Result<Self> {
        Self::build(
            engine,
            weight,
            weight_shape,
            bias,
            params,
            activation,
            Route::Fused,
        )
    }

    /// The layer, on the path `route` asks for.
    fn build(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: UpsampleConv2dParams,
        activation: Activation,
        route: Route,
    ) -> Result<Self> {
        let conv = params.conv;
        let (s_h, s_w) = params.upsample.scale;
        // The smallest real input whose upsampled size holds the dilated kernel.
        let nominal = conv.nominal_input(weight_shape);
        let nominal = [
            1,
            nominal[1],
            nominal[2].div_ceil(s_h.max(1) as usize),
            nominal[3].div_ceil(s_w.max(1) as usize),
        ];
        UpsampleConv2dShape::new(nominal, weight_shape, bias.map(<[f32]>::len), &params)?;
        let len = checked_len("weight", weight_shape)?;
        if weight.len() != len {
            return Err(Error::DataLength {
                what: "weight",
                shape: weight_shape.to_vec(),
                expected: len,
                actual: weight.len(),
            });
        }
        let planned = match route {
            Route::Planned(goal) => sub_pixel_for(&params, weight_shape).map(|sp| (sp, goal)),
            Route::Fused => None,
        };
        let path = match planned {
            Some((sp, goal)) => Path::SubPixel(Box::new(ConvTranspose2d::with_options(
                engine,
                &sub_pixel_weight(&sp, weight, weight_shape),
                sp.weight_shape,
                bias,
                sp.params,
                activation,
                LayerOptions {
                    goal,
                    ..LayerOptions::default()
                },
            )?)),
            None => {
                let sig = conv.sig(weight_shape);
                let layout = plan::upsample_conv2d_layout(&sig);
                let packed = plan::repack_weight(weight, &sig, layout);
                Path::Fused {
                    profile: Box::new(engine.profile()),
                    layout,
                    core: Box::new(LayerCore::upload(
                        engine,
                        activation,
                        &packed,
                        bias,
                        weight_shape[0],
                        0,
                    )?),
                }
            }
        };
        Ok(Self {
            weight_shape,
            params,
            activation,
            host_weight: weight.into(),
            host_bias: bias.map(Into::into),
            path,
        })
    }

    /// Whether the layer runs as a transposed convolution (the sub-pixel
    /// identity) rather than the fused kernel.
    pub fn is_sub_pixel(&self) -> bool {
        matches!(self.path, Path::SubPixel(_))
    }

    /// Bytes of GPU memory the layer's packed weight and bias hold.
    pub fn gpu_bytes(&self) -> u64 {
        match &self.path {
            Path::Fused { core, .. } => core.gpu_bytes(),
            Path::SubPixel(t) => t.gpu_bytes(),
        }
    }

    /// The weight shape `[c_out, c_in/groups, k_h, k_w]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        self.weight_shape
    }
    /// The parameters.
    pub fn params(&self) -> &UpsampleConv2dParams {
        &self.params
    }
    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }
    /// The host copy of the weight (PyTorch layout).
    pub fn host_weight(&self) -> &[f32] {
        &self.host_weight
    }
    /// The host copy of the bias, if any.
    pub fn host_bias(&self) -> Option<&[f32]> {
        self.host_bias.as_deref()
    }

    /// Resolves this layer against a (real, not upsampled) input shape.
    ///
    /// # Errors
    /// Any geometry error, and [`Error::InputChannels`] when the input's
    /// channels do not match the weight.
    pub fn shape_for(&self, input: [usize; 4]) -> Result<UpsampleConv2dShape> {
        let expected = self.params.conv.input_channels(self.weight_shape);
        if input[1] != expected {
            return Err(Error::InputChannels {
                expected,
                actual: input[1],
            });
        }
        UpsampleConv2dShape::new(
            input,
            self.weight_shape,
            self.host_bias.as_ref().map(|b| b.len()),
            &self.params,
        )
    }

    /// The plan (kernel, specialisation, dispatch) for an input shape.
    ///
    /// # Errors
    /// As [`UpsampleConv2d::shape_for`].
    pub fn plan_for(&self, input: [usize; 4]) -> Result<Plan> {
        let shape = self.shape_for(input)?;
        match &self.path {
            Path::Fused { profile, .. } => Ok(plan::plan_upsample_conv2d(&shape, profile)),
            Path::SubPixel(t) => t.plan_for(input),
        }
    }

    /// Records this layer applied to `input` into `encoder` and returns the
    /// output tensor (valid once the encoder's commands run). Nothing is
    /// read back.
    ///
    /// # Errors
    /// Geometry errors, device limits, and captured device errors.
    pub fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
    ) -> Result<GpuTensor> {
        let shape = self.shape_for(input.shape())?;
        let output = GpuTensor::empty(engine, shape.output_shape())?;
        self.record_shape(engine, encoder, &shape, input, &output)?;
        Ok(output)
    }

    /// Records this layer applied to `input` into an existing `output`
    /// tensor (so repeated calls allocate nothing).
    ///
    /// # Errors
    /// [`Error::BadShape`] when `output` does not have the output shape, and
    /// everything [`UpsampleConv2d::record`] reports.
    pub fn record_into(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        let shape = self.shape_for(input.shape())?;
        if output.shape() != shape.output_shape() {
            return Err(Error::BadShape {
                what: "output",
                expected: "the layer's output shape for this input",
                actual: output.shape().to_vec(),
            });
        }
        self.record_shape(engine, encoder, &shape, input, output)
    }

    fn record_shape(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        shape: &UpsampleConv2dShape,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        match &self.path {
            Path::Fused {
                profile,
                layout,
                core,
            } => {
                let plan = plan::plan_upsample_conv2d(shape, profile);
                debug_assert_eq!(plan.layout, *layout);
                let activation = self.activation;
                core.record_with(
                    engine,
                    encoder,
                    shape.input_shape(),
                    || UpsampleConvUniforms::new(shape, activation, &plan),
                    &plan,
                    input,
                    output,
                )
            }
            // The transposed layer resolves the same input to the same
            // output shape (SubPixelAxis), and its `record_into` checks it.
            Path::SubPixel(t) => t.record_into(engine, encoder, input, output),
        }
    }

    /// Runs the layer on `input` and submits it; the result stays on the GPU.
    ///
    /// # Errors
    /// As [`UpsampleConv2d::record`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        crate::ops::submit_recorded(engine, "wgconv upsample conv", |enc| {
            self.record(engine, enc, input)
        })
    }

    /// Runs the layer on the GPU and on the CPU reference and compares them.
    ///
    /// # Errors
    /// Geometry, device and readback errors (a mismatch is a [`Comparison`]
    /// with `passed == false`).
    pub fn verify(
        &self,
        engine: &Engine,
        input: &[f32],
        input_shape: [usize; 4],
        tolerance: Tolerance,
    ) -> Result<Comparison> {
        let shape = self.shape_for(input_shape)?;
        let x = GpuTensor::upload(engine, input, input_shape)?;
        let gpu = self.forward(engine, &x)?.read(engine)?;
        let cpu = reference::upsample_conv(
            &shape,
            input,
            &self.host_weight,
            self.host_bias.as_deref(),
            self.activation,
        )?;
        reference::compare(&cpu, self.activation, &gpu, tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Conv2dParams, Conv2dShape, Padding, UpsampleMode, UpsampleParams};

    /// A small xorshift generator (the lib has no test RNG of its own).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Uniform in `lo..=hi`.
        fn range(&mut self, lo: u32, hi: u32) -> u32 {
            lo + (self.next() % u64::from(hi - lo + 1)) as u32
        }
        /// Small integers: every sum and product below is exact in f32 and f64.
        fn ints(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.range(0, 8) as f32 - 4.0).collect()
        }
        /// Uniform in [-1, 1).
        fn floats(&mut self, n: usize) -> Vec<f32> {
            (0..n)
                .map(|_| (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
                .collect()
        }
    }

    /// A random nearest + stride-1 case: `(input, weight, params)`.
    fn random_case(rng: &mut Rng) -> ([usize; 4], [usize; 4], UpsampleConv2dParams) {
        loop {
            let (groups, cpg_in, cpg_out) = match rng.range(0, 2) {
                0 => (1, rng.range(1, 3), rng.range(1, 3)),
                1 => (rng.range(2, 3), rng.range(1, 2), rng.range(1, 3)),
                _ => (rng.range(2, 4), 1, rng.range(1, 2)), // depthwise
            };
            let params = UpsampleConv2dParams {
                upsample: UpsampleParams::nearest(rng.range(1, 4), rng.range(1, 4)),
                conv: Conv2dParams::default()
                    .dilation(rng.range(1, 3), rng.range(1, 3))
                    .groups(groups)
                    .padding(Padding::new(
                        rng.range(0, 6),
                        rng.range(0, 6),
                        rng.range(0, 6),
                        rng.range(0, 6),
                    )),
            };
            let input = [
                rng.range(1, 2) as usize,
                (groups * cpg_in) as usize,
                rng.range(1, 5) as usize,
                rng.range(1, 5) as usize,
            ];
            let weight = [
                (groups * cpg_out) as usize,
                cpg_in as usize,
                rng.range(1, 5) as usize,
                rng.range(1, 5) as usize,
            ];
            if UpsampleConv2dShape::new(input, weight, None, &params).is_ok() {
                return (input, weight, params);
            }
        }
    }

    /// The derived transposed layer resolves every input to the fused op's
    /// output size, or fails exactly when the fused op does.
    #[test]
    fn sub_pixel_output_size_equals_fused() {
        let mut rng = Rng(0x5eed_0f5b_1c00);
        for _ in 0..2000 {
            let (_, weight, params) = random_case(&mut rng);
            let sp = params.sub_pixel(weight).expect("nearest, stride 1");
            for h in 1..12 {
                for w in [1, 2, 3, 7] {
                    let input = [1, weight[1] * params.conv.groups as usize, h, w];
                    let fused = UpsampleConv2dShape::new(input, weight, Some(weight[0]), &params);
                    let derived = Conv2dShape::conv_transpose2d(
                        input,
                        sp.weight_shape,
                        Some(weight[0]),
                        &sp.params,
                    );
                    match (fused, derived) {
                        (Ok(f), Ok(d)) => assert_eq!(
                            f.output_shape(),
                            d.output_shape(),
                            "{params:?} {input:?} {sp:?}"
                        ),
                        (Err(_), Err(_)) => {}
                        (f, d) => panic!("{params:?} {input:?} {sp:?}: fused {f:?}, derived {d:?}"),
                    }
                }
            }
        }
    }

    /// With small integer data every sum is exact, so the derived transposed
    /// convolution must equal the upsample-then-convolve reference exactly.
    #[test]
    fn sub_pixel_identity_is_exact_on_integers() {
        let mut rng = Rng(0x0dd_ba11);
        let mut by_scale = std::collections::BTreeSet::new();
        for i in 0..600 {
            let (input, weight, params) = random_case(&mut rng);
            let activation = [
                Activation::None,
                Activation::Relu,
                Activation::LeakyRelu(0.5),
            ][i % 3];
            let shape = UpsampleConv2dShape::new(input, weight, Some(weight[0]), &params).unwrap();
            let sp = params.sub_pixel(weight).unwrap();
            let t =
                Conv2dShape::conv_transpose2d(input, sp.weight_shape, Some(weight[0]), &sp.params)
                    .unwrap();
            let (x, w, b) = (
                rng.ints(shape.input_len()),
                rng.ints(weight.iter().product()),
                rng.ints(weight[0]),
            );
            let want = reference::upsample_conv(&shape, &x, &w, Some(&b), activation).unwrap();
            let wt = sub_pixel_weight(&sp, &w, weight);
            let got = reference::conv(&t, &x, &wt, Some(&b), activation).unwrap();
            assert_eq!(
                got.values, want.values,
                "{params:?} {input:?} {weight:?} {sp:?}"
            );
            by_scale.insert(params.upsample.scale);
        }
        assert_eq!(by_scale.len(), 16, "every scale pair 1..=4 × 1..=4");
    }

    /// With random f32 data the derived path (weights rounded once) stays
    /// within the reference's f32-accumulation bound.
    #[test]
    fn sub_pixel_identity_within_tolerance_on_floats() {
        let mut rng = Rng(0xf10a7);
        for i in 0..300 {
            let (input, weight, params) = random_case(&mut rng);
            let activation = [Activation::None, Activation::Silu][i % 2];
            let shape = UpsampleConv2dShape::new(input, weight, None, &params).unwrap();
            let sp = params.sub_pixel(weight).unwrap();
            let t =
                Conv2dShape::conv_transpose2d(input, sp.weight_shape, None, &sp.params).unwrap();
            let (x, w) = (
                rng.floats(shape.input_len()),
                rng.floats(weight.iter().product()),
            );
            let want = reference::upsample_conv(&shape, &x, &w, None, activation).unwrap();
            let got = reference::conv(&t, &x, &sub_pixel_weight(&sp, &w, weight), None, activation)
                .unwrap();
            let cmp = reference::compare(
                &want,
                activation,
                &got.to_f32(),
                reference::Tolerance::F32Accumulation,
            )
            .unwrap();
            assert!(cmp.passed, "{params:?} {input:?} {weight:?}: {cmp}");
        }
    }

    /// The DCGAN decoder's 3×3 pad-1 ×2 layer becomes a 4×4 stride-2 pad-1
    /// transposed convolution, as a hand derivation gives; bilinear and
    /// strided convolutions have no sub-pixel form.
    #[test]
    fn sub_pixel_by_hand() {
        let p = |up, conv| UpsampleConv2dParams { upsample: up, conv };
        let c = Conv2dParams::default().padding(Padding::uniform(1));
        let sp = p(UpsampleParams::nearest(2, 2), c)
            .sub_pixel([4, 3, 3, 3])
            .unwrap();
        assert_eq!(sp.weight_shape, [3, 4, 4, 4]);
        assert_eq!(sp.params.stride, (2, 2));
        assert_eq!(sp.params.padding, Padding::uniform(1));
        assert_eq!(sp.params.output_padding, (0, 0));
        // Phase 0 reads x[q-1]·w0 + x[q]·(w1+w2); phase 1 x[q]·(w0+w1) + x[q+1]·w2.
        // k' = r + P − 2δ with P = 1: phase 0 δ=-1 → 3, δ=0 → 1; phase 1 δ=0 → 2, δ=1 → 0.
        let taps: Vec<_> = (0..2)
            .flat_map(|r| (0..3).map(move |t| sp.h.tap(r, t)))
            .collect();
        assert_eq!(taps, vec![3, 1, 1, 2, 2, 0]);
        assert!(p(UpsampleParams::bilinear(2, 2), c)
            .sub_pixel([4, 3, 3, 3])
            .is_none());
        assert!(p(UpsampleParams::nearest(2, 2), c.stride(2, 1))
            .sub_pixel([4, 3, 3, 3])
            .is_none());
        assert_eq!(UpsampleMode::default(), UpsampleMode::Nearest);
    }
}
