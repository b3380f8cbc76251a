//! Fused upsample + convolution (resize-convolution): any [`Conv2dParams`](crate::Conv2dParams)
//! convolution of the nearest- or bilinear-upsampled input, where the kernel
//! reads the input through the upsampling index math and the upsampled image
//! never exists in memory: `shaders/conv2d_upsampled.wgsl`. Reference:
//! [`crate::reference::upsample_conv`] (upsample, then convolve, in f64).

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{Activation, UpsampleConv2dParams, UpsampleConv2dShape};
use crate::ops::upsample::inv_area;
use crate::ops::{ConvUniforms, LayerCore, OpParams};
use crate::plan::{self, AdapterProfile, Plan, WeightLayout};
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
#[derive(Debug)]
pub struct UpsampleConv2d {
    weight_shape: [usize; 4],
    params: UpsampleConv2dParams,
    profile: AdapterProfile,
    host_weight: Arc<[f32]>,
    host_bias: Option<Arc<[f32]>>,
    layout: WeightLayout,
    core: LayerCore,
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
        let sig = conv.sig(weight_shape);
        let layout = plan::upsample_conv2d_layout(&sig);
        let packed = plan::repack_weight(weight, &sig, layout);
        let core = LayerCore::upload(engine, activation, &packed, bias, weight_shape[0])?;
        Ok(Self {
            weight_shape,
            params,
            profile: AdapterProfile::from_info(engine.info(), engine.limits()),
            host_weight: weight.into(),
            host_bias: bias.map(Into::into),
            layout,
            core,
        })
    }

    /// Bytes of GPU memory the layer's packed weight and bias hold.
    pub fn gpu_bytes(&self) -> u64 {
        self.core.gpu_bytes()
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
        self.core.activation
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
        Ok(plan::plan_upsample_conv2d(
            &self.shape_for(input)?,
            &self.profile,
        ))
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
        let plan = plan::plan_upsample_conv2d(shape, &self.profile);
        debug_assert_eq!(plan.layout, self.layout);
        let activation = self.core.activation;
        self.core.record_with(
            engine,
            encoder,
            shape.input_shape(),
            || UpsampleConvUniforms::new(shape, activation, &plan),
            &plan,
            input,
            output,
        )
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
            self.core.activation,
        )?;
        reference::compare(&cpu, self.core.activation, &gpu, tolerance)
    }
}
