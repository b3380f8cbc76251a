//! GPU tensors: f32 NCHW buffers that stay on the GPU between ops.
//! Readback is explicit: [`GpuTensor::read_async`] or the blocking
//! [`GpuTensor::read`].

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// An f32 tensor in a GPU storage buffer, with its NCHW shape.
#[derive(Debug, Clone)]
pub struct GpuTensor {
    buffer: Arc<wgpu::Buffer>,
    shape: [usize; 4],
}

/// Elements of a shape, checked: non-zero and addressable with `u32`.
pub(crate) fn checked_len(what: &'static str, shape: [usize; 4]) -> Result<usize> {
    if shape.contains(&0) {
        return Err(Error::EmptyDimension {
            tensor: what,
            shape: shape.to_vec(),
        });
    }
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= u32::MAX as usize && n.checked_mul(4).is_some())
        .ok_or(Error::SizeOverflow {
            what,
            limit: "u32 element indices",
        })
}

pub(crate) const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuTensor {
    /// Uploads `data` with the NCHW `shape`.
    ///
    /// # Errors
    /// [`Error::DataLength`] if `data.len()` is not the shape's element
    /// count, [`Error::ExceedsLimit`] if the buffer is larger than the
    /// device's `max_buffer_size` (a tensor larger than one storage binding
    /// is fine: layers bind it in windows, see [`crate::chunk`]).
    pub fn upload(engine: &Engine, data: &[f32], shape: [usize; 4]) -> Result<Self> {
        let len = checked_len("tensor", shape)?;
        if data.len() != len {
            return Err(Error::DataLength {
                what: "tensor",
                shape: shape.to_vec(),
                expected: len,
                actual: data.len(),
            });
        }
        engine.check_buffer("tensor", len as u64 * 4)?;
        let buffer =
            engine.buffer_with("wgconv tensor", bytemuck::cast_slice(data), STORAGE_USAGE)?;
        Ok(Self {
            buffer: Arc::new(buffer),
            shape,
        })
    }

    /// A new tensor whose contents are about to be written by a kernel
    /// (wgpu zero-initialises it).
    ///
    /// # Errors
    /// As [`GpuTensor::upload`].
    pub fn empty(engine: &Engine, shape: [usize; 4]) -> Result<Self> {
        engine.check_lost()?;
        let len = checked_len("tensor", shape)?;
        engine.check_buffer("tensor", len as u64 * 4)?;
        let buffer = engine.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgconv tensor"),
            size: len as u64 * 4,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Ok(Self {
            buffer: Arc::new(buffer),
            shape,
        })
    }

    /// The first `shape`'s element count of this tensor's buffer, as a
    /// tensor of that shape: no copy, the same buffer (shared), so writing
    /// one writes the other. A tensor pool uses it to run an op into a
    /// buffer larger than the op's output; every op reads a tensor's size
    /// from its shape, never from its buffer, and touches only those
    /// elements.
    ///
    /// # Errors
    /// [`Error::EmptyDimension`] and [`Error::SizeOverflow`] for an invalid
    /// shape, [`Error::BadShape`] when `shape` has more elements than this
    /// tensor.
    #[doc(hidden)]
    pub fn view(&self, shape: [usize; 4]) -> Result<GpuTensor> {
        if checked_len("view", shape)? > self.len() {
            return Err(Error::BadShape {
                what: "view",
                expected: "at most as many elements as the viewed tensor",
                actual: shape.to_vec(),
            });
        }
        Ok(Self {
            buffer: Arc::clone(&self.buffer),
            shape,
        })
    }

    /// A tensor of `shape` held in the first elements of `buffer` (which
    /// may be larger: the network's pooled buffers are reused across
    /// tensors). The caller guarantees the buffer holds the shape.
    pub(crate) fn in_buffer(buffer: Arc<wgpu::Buffer>, shape: [usize; 4]) -> Self {
        debug_assert!(buffer.size() >= shape.iter().product::<usize>() as u64 * 4);
        Self { buffer, shape }
    }

    /// `[n, c, h, w]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Always false: shapes are validated non-empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Copies the tensor to the host: one copy into a staging buffer,
    /// `map_async` signalling a futures-intrusive channel, then a poll.
    ///
    /// # Errors
    /// [`Error::Readback`] if mapping fails, [`Error::DeviceLost`] if the
    /// device is lost.
    pub async fn read_async(&self, engine: &Engine) -> Result<Vec<f32>> {
        engine.check_lost()?;
        let size = self.len() as u64 * 4;
        let device = engine.device();
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgconv readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wgconv readback"),
        });
        encoder.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, size);
        engine.queue().submit([encoder.finish()]);
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            // The receiver may be gone if the caller dropped the future; nothing to do then.
            let _ = sender.send(r);
        });
        engine.wait()?;
        match receiver.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                engine.check_lost()?;
                return Err(Error::Readback(e.to_string()));
            }
            None => return Err(Error::Readback("map callback dropped".into())),
        }
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Readback(e.to_string()))?;
        // Copies without assuming the mapping is 4-byte aligned.
        let out = bytemuck::pod_collect_to_vec::<u8, f32>(&view);
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Blocking [`GpuTensor::read_async`].
    ///
    /// # Errors
    /// As [`GpuTensor::read_async`].
    pub fn read(&self, engine: &Engine) -> Result<Vec<f32>> {
        pollster::block_on(self.read_async(engine))
    }
}
