//! Forward 2-D convolution: every kind (standard, strided, padded, dilated,
//! grouped, depthwise with multiplier, pointwise) is a value of
//! [`Conv2dParams`]; the planner picks the kernel. Reference:
//! [`crate::reference::conv`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{Activation, Conv2dParams, Conv2dShape};
use crate::pipelines::Kernel;
use crate::plan::{self, AdapterProfile, LayerSig, Plan, WeightLayout};
use crate::reference::{self, Comparison, Tolerance};
use crate::tensor::{checked_len, GpuTensor, STORAGE_USAGE};

/// Mirrors `struct Params` in every `shaders/conv2d_*.wgsl`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct ConvUniforms {
    pub n: u32,
    pub c_in: u32,
    pub h_in: u32,
    pub w_in: u32,
    pub c_out: u32,
    pub h_out: u32,
    pub w_out: u32,
    pub groups: u32,
    pub c_in_per_group: u32,
    pub c_out_per_group: u32,
    pub k_h: u32,
    pub k_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub dil_h: u32,
    pub dil_w: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub act: u32,
    pub alpha: f32,
    pub blocks_w: u32,
    pub blocks_per_group: u32,
    pub pad0: u32,
    pub pad1: u32,
}

impl ConvUniforms {
    pub(crate) fn new(s: &Conv2dShape, activation: Activation, plan: &Plan) -> Self {
        Self {
            n: s.n,
            c_in: s.c_in,
            h_in: s.h_in,
            w_in: s.w_in,
            c_out: s.c_out,
            h_out: s.h_out,
            w_out: s.w_out,
            groups: s.groups,
            c_in_per_group: s.c_in_per_group(),
            c_out_per_group: s.c_out_per_group(),
            k_h: s.k_h,
            k_w: s.k_w,
            stride_h: s.stride_h,
            stride_w: s.stride_w,
            dil_h: s.dil_h,
            dil_w: s.dil_w,
            pad_top: s.padding.top,
            pad_left: s.padding.left,
            act: activation.code(),
            alpha: activation.alpha(),
            blocks_w: plan.blocks_w,
            blocks_per_group: plan.blocks_per_group,
            pad0: 0,
            pad1: 0,
        }
    }
}

/// Options for building a layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerOptions {
    /// Run this kernel family instead of the planner's choice (every family
    /// runs every forward convolution; tests use this to keep them all
    /// correct).
    pub force_kernel: Option<Kernel>,
}

/// A forward convolution layer: owns its weights and bias on the GPU
/// (uploaded once, in the layout its kernel reads), so calls upload nothing
/// but a small uniform.
#[derive(Debug)]
pub struct Conv2d {
    weight_shape: [usize; 4],
    params: Conv2dParams,
    activation: Activation,
    options: LayerOptions,
    profile: AdapterProfile,
    host_weight: Arc<[f32]>,
    host_bias: Option<Arc<[f32]>>,
    layout: WeightLayout,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    uniforms: Mutex<HashMap<[usize; 4], Arc<wgpu::Buffer>>>,
}

/// A layer signature from the weight shape alone (the input's channel count
/// is `groups · weight[1]`).
fn sig_of(weight_shape: [usize; 4], params: &Conv2dParams) -> LayerSig {
    LayerSig {
        groups: params.groups,
        c_in_per_group: weight_shape[1] as u32,
        c_out_per_group: (weight_shape[0] / params.groups.max(1) as usize) as u32,
        k_h: weight_shape[2] as u32,
        k_w: weight_shape[3] as u32,
        stride: params.stride,
        dilation: params.dilation,
    }
}

impl Conv2d {
    /// Builds a layer from a PyTorch-layout weight `[c_out, c_in/groups,
    /// k_h, k_w]` and an optional bias `[c_out]`.
    ///
    /// # Errors
    /// Any parameter error [`Conv2dShape::conv2d`] would report that does
    /// not depend on the input, [`Error::DataLength`] for slices that do
    /// not match their shapes, and device errors.
    pub fn new(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: Conv2dParams,
        activation: Activation,
    ) -> Result<Self> {
        Self::with_options(
            engine,
            weight,
            weight_shape,
            bias,
            params,
            activation,
            LayerOptions::default(),
        )
    }

    /// [`Conv2d::new`] with [`LayerOptions`].
    ///
    /// # Errors
    /// As [`Conv2d::new`].
    pub fn with_options(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: Conv2dParams,
        activation: Activation,
        options: LayerOptions,
    ) -> Result<Self> {
        // Validate everything the weight alone determines by resolving against a
        // nominal input exactly as large as the dilated kernel.
        let c_in =
            weight_shape[1]
                .checked_mul(params.groups as usize)
                .ok_or(Error::SizeOverflow {
                    what: "weight",
                    limit: "u64 bytes",
                })?;
        let reach = |k: usize, d: u32| (k.max(1) - 1).saturating_mul(d as usize).saturating_add(1);
        Conv2dShape::conv2d(
            [
                1,
                c_in,
                reach(weight_shape[2], params.dilation.0),
                reach(weight_shape[3], params.dilation.1),
            ],
            weight_shape,
            bias.map(<[f32]>::len),
            &params,
        )?;
        let len = checked_len("weight", weight_shape)?;
        if weight.len() != len {
            return Err(Error::DataLength {
                what: "weight",
                shape: weight_shape.to_vec(),
                expected: len,
                actual: weight.len(),
            });
        }
        let profile = AdapterProfile::from_info(engine.info());
        let sig = sig_of(weight_shape, &params);
        let (_, layout) = plan::weight_layout(&sig, &profile, options.force_kernel);
        let packed = plan::repack_weight(weight, &sig, layout);
        engine.check_binding("weight", packed.len() as u64 * 4)?;
        let c_out = weight_shape[0];
        let zeros;
        let bias_data = match bias {
            Some(b) => b,
            None => {
                zeros = vec![0f32; c_out];
                &zeros
            }
        };
        let (weight_buf, bias_buf) = engine.scoped(|| {
            let device = engine.device();
            let w = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgconv conv2d weight"),
                contents: bytemuck::cast_slice(&packed),
                usage: STORAGE_USAGE,
            });
            let b = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgconv conv2d bias"),
                contents: bytemuck::cast_slice(bias_data),
                usage: STORAGE_USAGE,
            });
            Ok((w, b))
        })?;
        Ok(Self {
            weight_shape,
            params,
            activation,
            options,
            profile,
            host_weight: weight.into(),
            host_bias: bias.map(Into::into),
            layout,
            weight: weight_buf,
            bias: bias_buf,
            uniforms: Mutex::new(HashMap::new()),
        })
    }

    /// The weight shape `[c_out, c_in/groups, k_h, k_w]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        self.weight_shape
    }
    /// The convolution parameters.
    pub fn params(&self) -> &Conv2dParams {
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

    /// Resolves this layer against an input shape.
    ///
    /// # Errors
    /// Any geometry error, and [`Error::InputChannels`] when the input's
    /// channels do not match the weight.
    pub fn shape_for(&self, input: [usize; 4]) -> Result<Conv2dShape> {
        let expected = self.weight_shape[1] * self.params.groups as usize;
        if input[1] != expected {
            return Err(Error::InputChannels {
                expected,
                actual: input[1],
            });
        }
        Conv2dShape::conv2d(
            input,
            self.weight_shape,
            self.host_bias.as_ref().map(|b| b.len()),
            &self.params,
        )
    }

    /// The plan (kernel, specialisation, dispatch) for an input shape.
    ///
    /// # Errors
    /// As [`Conv2d::shape_for`].
    pub fn plan_for(&self, input: [usize; 4]) -> Result<Plan> {
        let shape = self.shape_for(input)?;
        Ok(plan::plan(
            &shape,
            self.activation,
            &self.profile,
            self.options.force_kernel,
        ))
    }

    fn uniform_for(
        &self,
        engine: &Engine,
        shape: &Conv2dShape,
        plan: &Plan,
    ) -> Result<Arc<wgpu::Buffer>> {
        let key = shape.input_shape();
        let mut map = self
            .uniforms
            .lock()
            .map_err(|_| Error::Validation("uniform cache lock poisoned".into()))?;
        if let Some(u) = map.get(&key) {
            return Ok(Arc::clone(u));
        }
        let u = Arc::new(
            engine
                .device()
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("wgconv conv2d params"),
                    contents: bytemuck::bytes_of(&ConvUniforms::new(shape, self.activation, plan)),
                    usage: wgpu::BufferUsages::UNIFORM,
                }),
        );
        map.insert(key, Arc::clone(&u));
        Ok(u)
    }

    /// Records this convolution of `input` into `encoder` and returns the
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
        self.record_into(engine, encoder, &shape, input, &output)?;
        Ok(output)
    }

    fn record_into(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        shape: &Conv2dShape,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        let plan = plan::plan(
            shape,
            self.activation,
            &self.profile,
            self.options.force_kernel,
        );
        debug_assert_eq!(plan.layout, self.layout);
        engine.check_dispatch(plan.groups)?;
        engine.scoped(|| {
            let pipeline = engine.pipelines.get(engine.device(), &plan.key)?;
            let uniform = self.uniform_for(engine, shape, &plan)?;
            let bind = engine
                .device()
                .create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("wgconv conv2d"),
                    layout: &engine.pipelines.conv_layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: uniform.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: input.buffer().as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: self.weight.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 3,
                            resource: self.bias.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 4,
                            resource: output.buffer().as_entire_binding(),
                        },
                    ],
                });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgconv conv2d"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(plan.groups[0], plan.groups[1], plan.groups[2]);
            Ok(())
        })
    }

    /// Runs the convolution on `input` and submits it; the result stays on
    /// the GPU.
    ///
    /// # Errors
    /// As [`Conv2d::record`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        let mut encoder = engine
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgconv conv2d"),
            });
        let out = self.record(engine, &mut encoder, input)?;
        engine.queue().submit([encoder.finish()]);
        Ok(out)
    }

    /// Runs the layer on the GPU and on the CPU reference and compares them.
    ///
    /// # Errors
    /// Geometry, device and readback errors (a mismatch is not an error: it
    /// is a [`Comparison`] with `passed == false`).
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
        let cpu = reference::conv(
            &shape,
            input,
            &self.host_weight,
            self.host_bias.as_deref(),
            self.activation,
        )?;
        reference::compare(&cpu, self.activation, &gpu, tolerance)
    }
}

/// A depthwise-separable block: a depthwise convolution, then a pointwise
/// (1×1) one, recorded into one command buffer with no readback between.
#[derive(Debug)]
pub struct DepthwiseSeparable {
    /// The depthwise layer (`groups == c_in`).
    pub depthwise: Conv2d,
    /// The pointwise layer (1×1).
    pub pointwise: Conv2d,
}

impl DepthwiseSeparable {
    /// Records both layers into one encoder and submits it once.
    ///
    /// # Errors
    /// As [`Conv2d::record`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        let mut encoder = engine
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgconv separable"),
            });
        let mid = self.depthwise.record(engine, &mut encoder, input)?;
        let out = self.pointwise.record(engine, &mut encoder, &mid)?;
        engine.queue().submit([encoder.finish()]);
        Ok(out)
    }
}
