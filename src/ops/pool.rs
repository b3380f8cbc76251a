//! Pooling: [`Pool2d`] (max or average over a window, `shaders/pool2d.wgsl`)
//! and [`GlobalAvgPool`] (the mean of each plane,
//! `shaders/global_avg_pool.wgsl`). References: [`crate::reference::pool2d`],
//! [`crate::reference::global_avg_pool`]. The parameter types live in
//! [`crate::geometry`] and are re-exported here, as is [`Concat`].

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry;
pub use crate::geometry::{Pool2dParams, Pool2dShape, PoolMode};
pub use crate::ops::concat::Concat;
use crate::ops::{check_aliasing, dispatch_tensors, UniformCache};
use crate::plan::{self, Plan};
use crate::tensor::GpuTensor;

/// Mirrors `struct Params` in `shaders/pool2d.wgsl`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Pool2dUniforms {
    pub h_in: u32,
    pub w_in: u32,
    pub h_out: u32,
    pub w_out: u32,
    pub k_h: u32,
    pub k_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub total: u32,
    pub row_stride: u32,
    pub inv_area: f32,
    pub pad0: u32,
}

/// Mirrors `struct Params` in `shaders/global_avg_pool.wgsl`, field for
/// field.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct GlobalAvgPoolUniforms {
    pub planes: u32,
    pub plane_len: u32,
    pub row_stride: u32,
    pub inv_area: f32,
}

/// `1 / count` rounded once to f32: what the averaging kernels scale their
/// sums by (see [`crate::reference::AVERAGE_ROUNDINGS`]).
fn inv_count(count: u64) -> f32 {
    (1.0 / count as f64) as f32
}

/// The `BadShape` error for an output tensor of the wrong shape.
fn bad_output(expected: &'static str, output: &GpuTensor) -> Error {
    Error::BadShape {
        what: "output",
        expected,
        actual: output.shape().to_vec(),
    }
}

/// A 2-D max or average pooling (PyTorch `MaxPool2d` / `AvgPool2d`, no
/// padding, floor mode): NCHW f32 in, `[n, c, (h − k_h)/s_h + 1,
/// (w − k_w)/s_w + 1]` out, on the GPU. It owns only one small uniform per
/// input shape it has seen (use one `Pool2d` per engine).
#[derive(Debug)]
pub struct Pool2d {
    params: Pool2dParams,
    uniforms: UniformCache,
}

impl Pool2d {
    /// A pooling with `params`.
    ///
    /// # Errors
    /// [`Error::ZeroPoolKernel`] and [`Error::ZeroStride`].
    pub fn new(params: Pool2dParams) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            params,
            uniforms: UniformCache::default(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &Pool2dParams {
        &self.params
    }

    /// Resolves this op against an input shape.
    ///
    /// # Errors
    /// As [`Pool2dShape::new`].
    pub fn shape_for(&self, input: [usize; 4]) -> Result<Pool2dShape> {
        Pool2dShape::new(input, &self.params)
    }

    /// The output shape for an input shape.
    ///
    /// # Errors
    /// As [`Pool2dShape::new`] (notably [`Error::PoolWindowLargerThanInput`]).
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        Ok(self.shape_for(input)?.output_shape())
    }

    /// The plan (kernel, specialisation, dispatch) for an input shape.
    ///
    /// # Errors
    /// As [`Pool2d::shape_for`].
    pub fn plan_for(&self, input: [usize; 4]) -> Result<Plan> {
        Ok(plan::plan_pool2d(&self.shape_for(input)?))
    }

    /// Records the pooling of `input` into an existing `output` tensor (so
    /// repeated calls allocate nothing); `output` may be a view of a larger
    /// buffer.
    ///
    /// # Errors
    /// As [`Pool2d::output_shape`]; [`Error::BadShape`] when `output` does
    /// not have the output shape; [`Error::AliasedOutput`] when it shares
    /// `input`'s buffer; [`Error::ExceedsLimit`] when a tensor is larger than
    /// one storage binding; captured device errors.
    pub fn record_into(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        let s = self.shape_for(input.shape())?;
        if output.shape() != s.output_shape() {
            return Err(bad_output(
                "the pooled shape [n, c, (h − k_h)/s_h + 1, (w − k_w)/s_w + 1]",
                output,
            ));
        }
        check_aliasing(output, &[input])?;
        let plan = plan::plan_pool2d(&s);
        dispatch_tensors(
            engine,
            encoder,
            &plan,
            || {
                self.uniforms
                    .get(engine, (s.input_shape(), plan.key.clone()), || {
                        Pool2dUniforms {
                            h_in: s.h_in,
                            w_in: s.w_in,
                            h_out: s.h_out,
                            w_out: s.w_out,
                            k_h: s.k_h,
                            k_w: s.k_w,
                            stride_h: s.stride_h,
                            stride_w: s.stride_w,
                            // At most the input's element count, validated to fit u32.
                            total: s.output_len() as u32,
                            row_stride: plan.blocks_w,
                            inv_area: inv_count(u64::from(s.window_len())),
                            pad0: 0,
                        }
                    })
            },
            &[input, output],
        )
    }

    /// Records the pooling of `input` into `encoder` and returns the output
    /// tensor (valid once the encoder's commands run).
    ///
    /// # Errors
    /// As [`Pool2d::record_into`].
    pub fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
    ) -> Result<GpuTensor> {
        let output = GpuTensor::empty(engine, self.output_shape(input.shape())?)?;
        self.record_into(engine, encoder, input, &output)?;
        Ok(output)
    }

    /// Pools `input` and submits the work; the result stays on the GPU.
    ///
    /// # Errors
    /// As [`Pool2d::record_into`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        crate::ops::submit_recorded(engine, "wgconv pool2d", |enc| {
            self.record(engine, enc, input)
        })
    }
}

/// Global average pooling (PyTorch `AdaptiveAvgPool2d(1)`): `[n, c, h, w]`
/// in, `[n, c, 1, 1]` out, the mean of each plane, on the GPU. It owns only
/// one small uniform per input shape it has seen (use one per engine).
#[derive(Debug, Default)]
pub struct GlobalAvgPool {
    uniforms: UniformCache,
}

impl GlobalAvgPool {
    /// A global average pooling.
    pub fn new() -> Self {
        Self::default()
    }

    /// The output shape for an input shape, `[n, c, 1, 1]`.
    ///
    /// # Errors
    /// [`Error::EmptyDimension`] and [`Error::SizeOverflow`].
    pub fn output_shape(&self, input: [usize; 4]) -> Result<[usize; 4]> {
        geometry::global_pool_shape(input)
    }

    /// The plan (kernel and dispatch) for an input shape.
    ///
    /// # Errors
    /// As [`GlobalAvgPool::output_shape`].
    pub fn plan_for(&self, input: [usize; 4]) -> Result<Plan> {
        let [n, c, _, _] = self.output_shape(input)?;
        Ok(plan::plan_global_avg_pool(n * c))
    }

    /// Records the pooling of `input` into an existing `output` tensor;
    /// `output` may be a view of a larger buffer.
    ///
    /// # Errors
    /// As [`GlobalAvgPool::output_shape`]; [`Error::BadShape`] when `output`
    /// is not `[n, c, 1, 1]`; [`Error::AliasedOutput`] when it shares
    /// `input`'s buffer; [`Error::ExceedsLimit`] when a tensor is larger than
    /// one storage binding; captured device errors.
    pub fn record_into(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        let shape = input.shape();
        let out = self.output_shape(shape)?;
        if output.shape() != out {
            return Err(bad_output("[n, c, 1, 1]", output));
        }
        check_aliasing(output, &[input])?;
        let planes = out[0] * out[1];
        let plane_len = shape[2] * shape[3];
        let plan = plan::plan_global_avg_pool(planes);
        dispatch_tensors(
            engine,
            encoder,
            &plan,
            || {
                self.uniforms.get(engine, (shape, plan.key.clone()), || {
                    // Both at most the input's element count, validated to fit u32.
                    GlobalAvgPoolUniforms {
                        planes: planes as u32,
                        plane_len: plane_len as u32,
                        row_stride: plan.blocks_w,
                        inv_area: inv_count(plane_len as u64),
                    }
                })
            },
            &[input, output],
        )
    }

    /// Records the pooling of `input` into `encoder` and returns the output
    /// tensor (valid once the encoder's commands run).
    ///
    /// # Errors
    /// As [`GlobalAvgPool::record_into`].
    pub fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
    ) -> Result<GpuTensor> {
        let output = GpuTensor::empty(engine, self.output_shape(input.shape())?)?;
        self.record_into(engine, encoder, input, &output)?;
        Ok(output)
    }

    /// Pools `input` and submits the work; the result stays on the GPU.
    ///
    /// # Errors
    /// As [`GlobalAvgPool::record_into`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        crate::ops::submit_recorded(engine, "wgconv global_avg_pool", |enc| {
            self.record(engine, enc, input)
        })
    }
}
