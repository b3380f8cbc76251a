//! Concatenation along channels ([`Concat`]): for NCHW tensors, image `b`
//! of the output is input 0's image `b`, then input 1's, … — contiguous
//! blocks, so the op is buffer copies (no shader). Reference:
//! [`crate::reference::concat`].

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry;
use crate::ops::check_aliasing;
use crate::tensor::GpuTensor;

/// Channel concatenation (PyTorch `torch.cat(dim=1)`): inputs `[n, c_i, h, w]`
/// with the same `n`, `h`, `w` (at least one) in, `[n, Σ c_i, h, w]` out,
/// as `n · inputs` buffer-to-buffer copies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Concat;

impl Concat {
    /// A channel concatenation.
    pub fn new() -> Self {
        Self
    }

    /// The output shape for input shapes, `[n, Σ c_i, h, w]`.
    ///
    /// # Errors
    /// [`Error::NoInputs`], [`Error::ConcatMismatch`],
    /// [`Error::EmptyDimension`] and [`Error::SizeOverflow`].
    pub fn output_shape(&self, inputs: &[[usize; 4]]) -> Result<[usize; 4]> {
        geometry::concat_shape(inputs)
    }

    /// Records the concatenation of `inputs` into an existing `output`
    /// tensor (which may be a view of a larger buffer). An input may appear
    /// more than once.
    ///
    /// # Errors
    /// As [`Concat::output_shape`]; [`Error::BadShape`] when `output` does
    /// not have the output shape; [`Error::AliasedOutput`] when it shares a
    /// buffer with an input; captured device errors.
    pub fn record_into(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        inputs: &[&GpuTensor],
        output: &GpuTensor,
    ) -> Result<()> {
        let shapes: Vec<[usize; 4]> = inputs.iter().map(|t| t.shape()).collect();
        let out = self.output_shape(&shapes)?;
        if output.shape() != out {
            return Err(Error::BadShape {
                what: "output",
                expected: "[n, Σ c_i, h, w] of the inputs",
                actual: output.shape().to_vec(),
            });
        }
        check_aliasing(output, inputs)?;
        // Every count is at most the output's element count (validated: < 2^32), so the
        // byte offsets fit u64 and are multiples of 4 (COPY_BUFFER_ALIGNMENT).
        let plane = (out[2] * out[3]) as u64 * 4;
        let c_total = out[1] as u64;
        engine.scoped(|| {
            for image in 0..out[0] as u64 {
                let mut c_offset = 0u64;
                for t in inputs {
                    let c = t.shape()[1] as u64;
                    encoder.copy_buffer_to_buffer(
                        t.buffer(),
                        image * c * plane,
                        output.buffer(),
                        (image * c_total + c_offset) * plane,
                        c * plane,
                    );
                    c_offset += c;
                }
            }
            Ok(())
        })
    }

    /// Records the concatenation into `encoder` and returns the output
    /// tensor (valid once the encoder's commands run).
    ///
    /// # Errors
    /// As [`Concat::record_into`].
    pub fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        inputs: &[&GpuTensor],
    ) -> Result<GpuTensor> {
        let shapes: Vec<[usize; 4]> = inputs.iter().map(|t| t.shape()).collect();
        let output = GpuTensor::empty(engine, self.output_shape(&shapes)?)?;
        self.record_into(engine, encoder, inputs, &output)?;
        Ok(output)
    }

    /// Concatenates `inputs` and submits the work; the result stays on the
    /// GPU.
    ///
    /// # Errors
    /// As [`Concat::record_into`].
    pub fn forward(&self, engine: &Engine, inputs: &[&GpuTensor]) -> Result<GpuTensor> {
        crate::ops::submit_recorded(engine, "wgconv concat", |enc| {
            self.record(engine, enc, inputs)
        })
    }
}
