//! Element-wise binary ops: the residual [`Add`] (`shaders/add.wgsl`),
//! with an optional fused activation. Reference: [`crate::reference::add`].

use crate::engine::Engine;
use crate::engine::TextureUse;
use crate::error::{Error, Result};
use crate::geometry::{self, Activation};
use crate::ops::{check_aliasing, dispatch_with_textures, input_texture, UniformCache};
use crate::plan::{self, Plan};
use crate::tensor::GpuTensor;

/// Mirrors `struct Params` in `shaders/add.wgsl`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct AddUniforms {
    pub total: u32,
    pub row_stride: u32,
    pub act: u32,
    pub alpha: f32,
}

/// `a + b` for two NCHW f32 tensors of the same shape (no broadcasting),
/// then an optional activation (ResNet/ResNeXt apply ReLU after the
/// residual add), on the GPU. It owns no weights, only one small uniform
/// per shape it has seen (created on the engine of the first call with that
/// shape; use one `Add` per engine).
#[derive(Debug)]
pub struct Add {
    activation: Activation,
    uniforms: UniformCache,
}

impl Add {
    /// A residual add followed by `activation` (`Activation::None` for a
    /// plain sum).
    pub fn new(activation: Activation) -> Self {
        Self {
            activation,
            uniforms: UniformCache::default(),
        }
    }

    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The output shape for inputs of shapes `a` and `b`: their common shape.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `a != b`, [`Error::EmptyDimension`] and
    /// [`Error::SizeOverflow`].
    pub fn output_shape(&self, a: [usize; 4], b: [usize; 4]) -> Result<[usize; 4]> {
        geometry::eltwise_shape(a, b)
    }

    /// The plan (kernel and dispatch) for inputs of `shape` on `engine`.
    ///
    /// # Errors
    /// As [`Add::output_shape`] with `a = b = shape`.
    pub fn plan_for(&self, engine: &Engine, shape: [usize; 4]) -> Result<Plan> {
        let shape = geometry::eltwise_shape(shape, shape)?;
        Ok(plan::plan_add(shape.iter().product(), &engine.profile()))
    }

    /// Records `activation(a + b)` into an existing `output` tensor (so
    /// repeated calls allocate nothing). `a` and `b` may be the same tensor;
    /// `output` may be a view of a larger buffer.
    ///
    /// # Errors
    /// As [`Add::output_shape`]; [`Error::BadShape`] when `output` does not
    /// have the inputs' shape; [`Error::AliasedOutput`] when `output` shares
    /// a buffer with `a` or `b`; [`Error::ExceedsLimit`] when a tensor is
    /// larger than one storage binding; captured device errors.
    pub fn record_into(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        a: &GpuTensor,
        b: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        let shape = self.output_shape(a.shape(), b.shape())?;
        if output.shape() != shape {
            return Err(Error::BadShape {
                what: "output",
                expected: "the inputs' shape",
                actual: output.shape().to_vec(),
            });
        }
        check_aliasing(output, &[a, b])?;
        let plan = plan::plan_add(a.len(), &engine.profile());
        // `TIN` = 1 or 2: both inputs are read from texture copies of them.
        let textures = if plan.key.reads_texture("TIN") {
            vec![
                input_texture(engine, encoder, a, TextureUse::AddA)?,
                input_texture(engine, encoder, b, TextureUse::AddB)?,
            ]
        } else {
            Vec::new()
        };
        dispatch_with_textures(
            engine,
            encoder,
            &plan,
            &textures,
            || {
                self.uniforms.get(engine, (shape, plan.key.clone()), || {
                    AddUniforms {
                        // Binding elements (vec4s with V = 4); validated to fit u32
                        // by eltwise_shape.
                        total: (a.len() / if plan.key.is("V", 4) { 4 } else { 1 }) as u32,
                        row_stride: plan.blocks_w,
                        act: self.activation.code(),
                        alpha: self.activation.alpha(),
                    }
                })
            },
            &[a, b, output],
        )
    }

    /// Records `activation(a + b)` into `encoder` and returns the output
    /// tensor (valid once the encoder's commands run).
    ///
    /// # Errors
    /// As [`Add::record_into`].
    pub fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        a: &GpuTensor,
        b: &GpuTensor,
    ) -> Result<GpuTensor> {
        let shape = self.output_shape(a.shape(), b.shape())?;
        let output = GpuTensor::empty(engine, shape)?;
        self.record_into(engine, encoder, a, b, &output)?;
        Ok(output)
    }

    /// Computes `activation(a + b)` and submits the work; the result stays
    /// on the GPU.
    ///
    /// # Errors
    /// As [`Add::record_into`].
    pub fn forward(&self, engine: &Engine, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        crate::ops::submit_recorded(engine, "wgconv add", |enc| self.record(engine, enc, a, b))
    }
}
