//! Upsampling by integer scale factors, nearest-neighbour or bilinear
//! (PyTorch `nn.Upsample(scale_factor=(s_h, s_w), mode=...)`, bilinear with
//! `align_corners=False`): `shaders/upsample.wgsl`. Reference:
//! [`crate::reference::upsample`]. To convolve the upsampled image, use
//! [`crate::UpsampleConv2d`], which never materialises it.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{UpsampleMode, UpsampleParams, UpsampleShape};
use crate::ops::{dispatch_tensors, UniformCache};
use crate::plan::{self, Plan};
use crate::reference::{self, Comparison, Tolerance};
use crate::tensor::GpuTensor;

/// Mirrors `struct Params` in `shaders/upsample.wgsl`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UpsampleUniforms {
    h_in: u32,
    w_in: u32,
    h_out: u32,
    w_out: u32,
    scale_h: u32,
    scale_w: u32,
    total: u32,
    row_stride: u32,
    inv_area: f32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

/// The factor the bilinear kernels scale their integer-weighted sums by:
/// `1 / (4·scale_h·scale_w)` rounded once to f32 (1 for nearest, which has
/// no weights).
pub(crate) fn inv_area(mode: UpsampleMode, scale_h: u32, scale_w: u32) -> f32 {
    match mode {
        UpsampleMode::Nearest => 1.0,
        UpsampleMode::Bilinear => (1.0 / (4.0 * f64::from(scale_h) * f64::from(scale_w))) as f32,
    }
}

impl UpsampleUniforms {
    fn new(s: &UpsampleShape, plan: &Plan) -> Self {
        Self {
            h_in: s.h_in,
            w_in: s.w_in,
            h_out: s.h_out,
            w_out: s.w_out,
            scale_h: s.scale_h,
            scale_w: s.scale_w,
            // Validated to fit u32 by UpsampleShape::new.
            total: s.output_len() as u32,
            row_stride: plan.blocks_w,
            inv_area: inv_area(s.mode, s.scale_h, s.scale_w),
            pad0: 0,
            pad1: 0,
            pad2: 0,
        }
    }
}

/// An upsampling op: NCHW f32 in, NCHW f32 out (`[n, c, h·s_h, w·s_w]`),
/// any batch, on the GPU. It owns no weights, only one small uniform per
/// input shape it has seen (created on the engine of the first call with
/// that shape; use one `Upsample` per engine).
#[derive(Debug)]
pub struct Upsample {
    params: UpsampleParams,
    uniforms: UniformCache,
}

impl Upsample {
    /// An upsampling by `params`.
    ///
    /// # Errors
    /// [`Error::ZeroScale`] and [`Error::ScaleTooLarge`].
    pub fn new(params: UpsampleParams) -> Result<Self> {
        // The smallest input checks everything the parameters alone fix.
        UpsampleShape::new([1, 1, 1, 1], &params)?;
        Ok(Self {
            params,
            uniforms: UniformCache::default(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &UpsampleParams {
        &self.params
    }

    /// Resolves this op against an input shape.
    ///
    /// # Errors
    /// As [`UpsampleShape::new`].
    pub fn shape_for(&self, input: [usize; 4]) -> Result<UpsampleShape> {
        UpsampleShape::new(input, &self.params)
    }

    /// The plan (kernel, specialisation, dispatch) for an input shape.
    ///
    /// # Errors
    /// As [`Upsample::shape_for`].
    pub fn plan_for(&self, input: [usize; 4]) -> Result<Plan> {
        Ok(plan::plan_upsample(&self.shape_for(input)?))
    }

    /// Records the upsampling of `input` into `encoder` and returns the
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

    /// Records the upsampling of `input` into an existing `output` tensor
    /// (so repeated calls allocate nothing).
    ///
    /// # Errors
    /// [`Error::BadShape`] when `output` does not have the output shape, and
    /// everything [`Upsample::record`] reports.
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
                expected: "the upsampled shape [n, c, h·scale_h, w·scale_w]",
                actual: output.shape().to_vec(),
            });
        }
        self.record_shape(engine, encoder, &shape, input, output)
    }

    fn record_shape(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        shape: &UpsampleShape,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        let plan = plan::plan_upsample(shape);
        // Bound as their own elements: either may be a view of a larger
        // pooled buffer.
        dispatch_tensors(
            engine,
            encoder,
            &plan,
            || {
                self.uniforms
                    .get(engine, (shape.input_shape(), plan.key.clone()), || {
                        UpsampleUniforms::new(shape, &plan)
                    })
            },
            &[input, output],
        )
    }

    /// Upsamples `input` and submits the work; the result stays on the GPU.
    ///
    /// # Errors
    /// As [`Upsample::record`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        crate::ops::submit_recorded(engine, "wgconv upsample", |enc| {
            self.record(engine, enc, input)
        })
    }

    /// Runs the op on the GPU and on the CPU reference and compares them.
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
        let cpu = reference::upsample(&shape, input)?;
        reference::compare(&cpu, crate::Activation::None, &gpu, tolerance)
    }
}
