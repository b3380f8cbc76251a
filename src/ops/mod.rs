//! One file per op family: the layer type and its dispatch. What every
//! convolution kernel shares — the Pod params struct mirroring `struct
//! Params` in the shaders and the uploaded weights (`LayerCore`, also used
//! by the fused upsample + conv layer) — and what every op shares — the
//! per-input-shape uniform cache and the recording of one dispatch — live
//! here.

pub mod batch_norm;
pub mod concat;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod eltwise;
pub mod pool;
pub mod sub_pixel;
pub mod upsample;
pub mod upsample_conv2d;
pub mod winograd;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::autotune::{Choice, Form};
use crate::chunk::{Chunking, Schedule, Window};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::geometry::{Activation, Conv2dShape, ConvKind};
use crate::pipelines::{Kernel, KernelKey};
use crate::plan::{self, AdapterProfile, Plan, WeightLayout};
use crate::reference::{self, Comparison, Tolerance};
use crate::tensor::{checked_len, GpuTensor, STORAGE_USAGE};

/// Mirrors `struct Params` in every convolution shader, field for field.
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
    pub tap_step_h: u32,
    pub x_end: u32,
    // Chunk origin and windows, set per chunk by `chunk::Schedule::build`.
    pub x0: u32,
    pub y0: u32,
    pub z0: u32,
    pub w_base: u32,
    pub in_base: u32,
    pub in_cstride: u32,
    pub out_base: u32,
    pub out_cstride: u32,
    // Logical grid of the chunk and the dispatch it is folded into.
    pub grid_x: u32,
    pub grid_y: u32,
    pub grid_z: u32,
    pub disp_x: u32,
    pub disp_y: u32,
    // Reduction segment (`conv2d_tiled` only; the other kernels ignore these):
    // input channels `[ci0, ci1)` of each group, and `flags` (`ACC_IN`: start
    // from the partial sums in the output window; `FINAL`: add the bias and
    // activate, else store raw partial sums).
    pub ci0: u32,
    pub ci1: u32,
    pub flags: u32,
}

/// [`ConvUniforms::flags`]: the accumulators start from the output window.
pub(crate) const ACC_IN: u32 = 1;
/// [`ConvUniforms::flags`]: the last segment: add the bias and activate.
pub(crate) const FINAL: u32 = 2;

// The shaders' `Params` is 40 scalars; uniform structs are 16-byte multiples.
const _: () = assert!(std::mem::size_of::<ConvUniforms>() == 160);

/// Copies `runs` runs of `run_len` f32s, run `r` from element
/// `first + r·stride` of `src`, to consecutive runs of `dst` from element 0:
/// how a staged window (`chunk::Window::Staged`) is filled.
fn gather_runs(
    encoder: &mut wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    first: u64,
    runs: u64,
    stride: u64,
    run_len: u64,
) {
    for r in 0..runs {
        encoder.copy_buffer_to_buffer(
            src,
            (first + r * stride) * 4,
            dst,
            r * run_len * 4,
            run_len * 4,
        );
    }
}

/// Greatest common divisor.
pub(crate) fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl ConvUniforms {
    /// The layer-wide fields, with one reduction segment over every input
    /// channel (`ci0 = 0`, `ci1 = c_in/groups`, `flags = FINAL`); the other
    /// chunk fields (from `x_end` on) are zero until `chunk::Schedule::build`
    /// fills them.
    pub(crate) fn new(s: &Conv2dShape, activation: Activation, plan: &Plan) -> Self {
        // Transposed: the valid kernel rows of an output row step by stride / gcd(stride, dilation).
        let tap_step_h = match s.kind {
            ConvKind::Forward => 1,
            ConvKind::Transposed => s.stride_h / gcd(s.stride_h, s.dil_h),
        };
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
            tap_step_h,
            // One segment over every input channel of a group.
            ci0: 0,
            ci1: s.c_in_per_group(),
            flags: FINAL,
            ..bytemuck::Zeroable::zeroed()
        }
    }
}

/// Records with `record` into a new command encoder labelled `label`, submits
/// it and checks the device: the `forward` of every op. The result stays on
/// the GPU.
pub(crate) fn submit_recorded<T>(
    engine: &Engine,
    label: &str,
    record: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<T>,
) -> Result<T> {
    let mut encoder = engine
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    let out = record(&mut encoder)?;
    engine.queue().submit([encoder.finish()]);
    engine.check_lost()?;
    Ok(out)
}

/// What an op's uniforms depend on: the input shape and the kernel key (a
/// tuned tile changes the grid, and so the uniforms).
pub(crate) type UniformKey = ([usize; 4], KernelKey);

/// One uniform buffer per (input shape, kernel key) an op has seen, so
/// repeated calls upload nothing.
#[derive(Debug, Default)]
pub(crate) struct UniformCache(Mutex<HashMap<UniformKey, Arc<wgpu::Buffer>>>);

impl UniformCache {
    /// The uniform buffer for `key`, made by `make` the first time.
    pub(crate) fn get<U: bytemuck::Pod>(
        &self,
        engine: &Engine,
        key: UniformKey,
        make: impl FnOnce() -> U,
    ) -> Result<Arc<wgpu::Buffer>> {
        let mut map = self
            .0
            .lock()
            .map_err(|_| Error::Validation("uniform cache lock poisoned".into()))?;
        if let Some(u) = map.get(&key) {
            return Ok(Arc::clone(u));
        }
        let u = Arc::new(engine.buffer_with(
            "wgconv params",
            bytemuck::bytes_of(&make()),
            wgpu::BufferUsages::UNIFORM,
        )?);
        map.insert(key, Arc::clone(&u));
        Ok(u)
    }
}

/// Records one dispatch of `plan`: the uniform `uniform` returns at binding
/// 0, then `tensors` at bindings 1, 2, … of the kernel's layout
/// ([`crate::pipelines::Bindings`]), each bound as the window of its own
/// elements (offset 0, `len·4` bytes) rather than its whole buffer: a tensor may be a
/// [`GpuTensor::view`] of a larger (pooled) buffer, and then the kernel can
/// reach only the tensor. The output is the last tensor.
///
/// # Errors
/// [`Error::ExceedsLimit`] when a tensor is larger than one storage binding
/// (these kernels are not chunked), and device errors raised meanwhile.
pub(crate) fn dispatch_tensors(
    engine: &Engine,
    encoder: &mut wgpu::CommandEncoder,
    plan: &Plan,
    uniform: impl FnOnce() -> Result<Arc<wgpu::Buffer>>,
    tensors: &[&GpuTensor],
) -> Result<()> {
    dispatch_with_texture(engine, encoder, plan, uniform, None, tensors)
}

/// As [`dispatch_tensors`], with `texture` (when given) bound at binding 1
/// in place of the first tensor.
pub(crate) fn dispatch_with_texture(
    engine: &Engine,
    encoder: &mut wgpu::CommandEncoder,
    plan: &Plan,
    uniform: impl FnOnce() -> Result<Arc<wgpu::Buffer>>,
    texture: Option<&wgpu::TextureView>,
    tensors: &[&GpuTensor],
) -> Result<()> {
    let textures: Vec<wgpu::TextureView> = texture.into_iter().cloned().collect();
    dispatch_with_textures(engine, encoder, plan, &textures, uniform, tensors)
}

/// As [`dispatch_tensors`], with `textures[i]` bound at binding `i + 1` in
/// place of tensor `i`.
pub(crate) fn dispatch_with_textures(
    engine: &Engine,
    encoder: &mut wgpu::CommandEncoder,
    plan: &Plan,
    textures: &[wgpu::TextureView],
    uniform: impl FnOnce() -> Result<Arc<wgpu::Buffer>>,
    tensors: &[&GpuTensor],
) -> Result<()> {
    let mut resources = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        if let Some(view) = textures.get(i) {
            resources.push(wgpu::BindingResource::TextureView(view));
            continue;
        }
        let bytes = t.len() as u64 * 4;
        engine.check_binding("tensor binding", bytes)?;
        resources.push(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: t.buffer(),
            offset: 0,
            size: wgpu::BufferSize::new(bytes),
        }));
    }
    dispatch_bound(engine, encoder, plan, uniform, resources)
}

/// Returns [`Error::AliasedOutput`] when `output` lives in the buffer of one
/// of `inputs` (a pass cannot read and write one buffer; copies cannot copy a
/// buffer onto itself).
pub(crate) fn check_aliasing(output: &GpuTensor, inputs: &[&GpuTensor]) -> Result<()> {
    match inputs.iter().position(|t| t.buffer() == output.buffer()) {
        Some(input) => Err(Error::AliasedOutput { input }),
        None => Ok(()),
    }
}

/// Records one dispatch with `resources[i]` bound at binding `i + 1`.
fn dispatch_bound(
    engine: &Engine,
    encoder: &mut wgpu::CommandEncoder,
    plan: &Plan,
    uniform: impl FnOnce() -> Result<Arc<wgpu::Buffer>>,
    resources: Vec<wgpu::BindingResource<'_>>,
) -> Result<()> {
    engine.check_dispatch(plan.groups)?;
    engine.scoped(|| {
        let pipeline = engine.pipelines.get(engine.device(), &plan.key)?;
        let uniform = uniform()?;
        let layout = engine.pipelines.bind_layout(&plan.key);
        let entries: Vec<wgpu::BindGroupEntry> = std::iter::once(uniform.as_entire_binding())
            .chain(resources)
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource,
            })
            .collect();
        let bind = engine
            .device()
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(plan.key.kernel.name()),
                layout,
                entries: &entries,
            });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(plan.key.kernel.name()),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(plan.groups[0], plan.groups[1], plan.groups[2]);
        Ok(())
    })
}

/// A layer's GPU state: its packed weights, its bias (zeros when it has
/// none) and, per input shape it has seen, the dispatch schedule with one
/// uniform buffer holding every chunk's parameters.
#[derive(Debug)]
pub(crate) struct LayerCore {
    pub(crate) activation: Activation,
    /// The packed weight, as a buffer and as a texture copy (see
    /// [`WeightStore`]).
    weight: Mutex<WeightStore>,
    /// Bytes of the packed weight with its padding: whole vec4s.
    weight_bytes: u64,
    bias: wgpu::Buffer,
    /// Uniforms of the kernels outside the chunked path.
    uniforms: UniformCache,
    /// Chunk schedules, keyed like the uniforms (a tuned tile changes the
    /// grid) and by the bits of the activation's alpha (a plan fused with a
    /// residual add runs the add's activation; see [`Plan::with_residual`]).
    schedules: Mutex<HashMap<(UniformKey, u32), Arc<Prepared>>>,
}

/// Where a layer's packed weight lives on the GPU: a storage (and uniform)
/// buffer, for the kernels that bind it, and a texture copy for those with
/// `TWT` (made on first use). Once the texture is made the buffer is
/// dropped, halving the layer's weight memory: every plan of one layer has
/// the same `TWT` (`plan::weight_texture` depends on the weight and its
/// packing, not on the input shape). Should a plan still need the buffer,
/// it is made again from the texture.
#[derive(Debug)]
struct WeightStore {
    buffer: Option<wgpu::Buffer>,
    texture: Option<wgpu::Texture>,
}

/// What a dispatch binds as its weight (binding 2).
enum WeightBinding {
    /// The texture copy (`TWT`).
    Texture(wgpu::TextureView),
    /// The buffer, bound in windows.
    Buffer(wgpu::Buffer),
}

/// A schedule and its uniforms: chunk `i`'s `ConvUniforms` at byte
/// `i · stride` of `uniform`.
#[derive(Debug)]
struct Prepared {
    schedule: Schedule,
    uniform: wgpu::Buffer,
    stride: u64,
}

const UNIFORM_SIZE: u64 = std::mem::size_of::<ConvUniforms>() as u64;

/// A chunk window's `(offset, size)` in its tensor, if the chunk binds the
/// tensor itself rather than a scratch copy.
fn direct(w: &Window) -> Option<(u64, u64)> {
    match *w {
        Window::Direct { offset, size } => Some((offset, size)),
        Window::Staged { .. } => None,
    }
}

/// Records a copy of `input` into the engine's input texture of its size
/// (layout: [`crate::plan::texture_rows`]) and returns a view of it.
/// `input` holds whole vec4s (the planner's condition).
pub(crate) fn input_texture(
    engine: &Engine,
    encoder: &mut wgpu::CommandEncoder,
    input: &GpuTensor,
    usage: crate::engine::TextureUse,
) -> Result<wgpu::TextureView> {
    let len = input.len() as u64;
    let texture = engine.input_texture(usage, texture_rows32(len)?)?;
    copy_to_texture(engine, encoder, input.buffer(), len, &texture)?;
    Ok(texture.create_view(&wgpu::TextureViewDescriptor::default()))
}

/// The rows of a texture holding `len` floats, as a `u32`.
fn texture_rows32(len: u64) -> Result<u32> {
    let rows = crate::plan::texture_rows(len);
    u32::try_from(rows).map_err(|_| Error::Internal {
        what: "texture rows",
        expected: u64::from(u32::MAX),
        actual: rows,
    })
}

/// The copies between the first `len` floats of a buffer (whole vec4s) and
/// a texture laid out by [`crate::plan::texture_rows`]: vec4 `t` is texel
/// `(t % W, t / W)`, `W =` [`crate::plan::TEXTURE_WIDTH`]. One copy of the
/// full rows and one of a ragged last row, as (buffer side, texture side,
/// extent), for [`copy_to_texture`] and [`copy_from_texture`].
fn texture_copies<'a>(
    buffer: &'a wgpu::Buffer,
    len: u64,
    texture: &'a wgpu::Texture,
) -> Result<Vec<TexelCopy<'a>>> {
    if !len.is_multiple_of(4) {
        return Err(Error::Internal {
            what: "texture copy floats mod 4",
            expected: 0,
            actual: len % 4,
        });
    }
    let width = u64::from(crate::plan::TEXTURE_WIDTH);
    let texels = len / 4;
    let (full, tail) = (texels / width, texels % width);
    let copy = |row: u64, w: u64, h: u64| {
        (
            wgpu::TexelCopyBufferInfo {
                buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: row * width * 16,
                    bytes_per_row: Some((width * 16) as u32),
                    rows_per_image: None,
                },
            },
            wgpu::TexelCopyTextureInfo {
                texture,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: 0,
                    y: row as u32,
                    z: 0,
                },
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::Extent3d {
                width: w as u32,
                height: h as u32,
                depth_or_array_layers: 1,
            },
        )
    };
    let mut copies = Vec::with_capacity(2);
    if full > 0 {
        copies.push(copy(0, width, full));
    }
    if tail > 0 {
        copies.push(copy(full, tail, 1));
    }
    Ok(copies)
}

/// One buffer–texture copy: the buffer side, the texture side, the extent.
type TexelCopy<'a> = (
    wgpu::TexelCopyBufferInfo<'a>,
    wgpu::TexelCopyTextureInfo<'a>,
    wgpu::Extent3d,
);

/// Records a copy of the first `len` floats of `buffer` (whole vec4s) into
/// `texture` ([`texture_copies`]).
fn copy_to_texture(
    engine: &Engine,
    encoder: &mut wgpu::CommandEncoder,
    buffer: &wgpu::Buffer,
    len: u64,
    texture: &wgpu::Texture,
) -> Result<()> {
    let copies = texture_copies(buffer, len, texture)?;
    engine.scoped(|| {
        for (from, to, extent) in copies {
            encoder.copy_buffer_to_texture(from, to, extent);
        }
        Ok(())
    })
}

/// Usages of a layer's weight buffer: storage, or uniform windows for
/// `conv2d_tiled`, and copies to and from its texture.
const WEIGHT_USAGE: wgpu::BufferUsages = STORAGE_USAGE.union(wgpu::BufferUsages::UNIFORM);

/// Records the copy [`copy_to_texture`] makes, backwards: the first `len`
/// floats of `texture` into `buffer`.
fn copy_from_texture(
    encoder: &mut wgpu::CommandEncoder,
    texture: &wgpu::Texture,
    len: u64,
    buffer: &wgpu::Buffer,
) -> Result<()> {
    for (to, from, extent) in texture_copies(buffer, len, texture)? {
        encoder.copy_texture_to_buffer(from, to, extent);
    }
    Ok(())
}

/// A binding of `size` bytes at `offset` of `buffer`.
fn window(buffer: &wgpu::Buffer, offset: u64, size: u64) -> Result<wgpu::BindingResource<'_>> {
    let size = wgpu::BufferSize::new(size).ok_or(Error::Internal {
        what: "binding size",
        expected: 4,
        actual: 0,
    })?;
    Ok(wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset,
        size: Some(size),
    }))
}

impl LayerCore {
    /// Uploads packed weights and the bias (or `c_out` zeros). The weight
    /// may exceed one storage binding (dispatches bind windows of it); the
    /// bias is bound whole.
    pub(crate) fn upload(
        engine: &Engine,
        activation: Activation,
        packed: &[f32],
        bias: Option<&[f32]>,
        c_out: usize,
        padding: u64,
    ) -> Result<Self> {
        engine.check_buffer("weight", packed.len() as u64 * 4 + padding)?;
        engine.check_binding("bias", c_out as u64 * 4)?;
        let zeros;
        let bias = match bias {
            Some(b) => b,
            None => {
                zeros = vec![0f32; c_out];
                &zeros
            }
        };
        engine.scoped(|| {
            let init = |label, data: &[f32]| {
                engine.buffer_with(label, bytemuck::cast_slice(data), STORAGE_USAGE)
            };
            // `padding` zero bytes after the weight keep every fixed-size
            // window of it in bounds (`plan::weight_padding`); uniform for
            // `conv2d_tiled`, which binds it as a uniform buffer.
            // Whole vec4s, so a texture copy of it takes whole texels (see
            // `LayerCore::weight_texture`).
            let mut bytes = bytemuck::cast_slice::<f32, u8>(packed).to_vec();
            bytes.resize((bytes.len() + padding as usize).next_multiple_of(16), 0);
            Ok(Self {
                activation,
                weight: Mutex::new(WeightStore {
                    buffer: Some(engine.buffer_with("wgconv weight", &bytes, WEIGHT_USAGE)?),
                    texture: None,
                }),
                weight_bytes: bytes.len() as u64,
                bias: init("wgconv bias", bias)?,
                uniforms: UniformCache::default(),
                schedules: Mutex::new(HashMap::new()),
            })
        })
    }

    /// Bytes of GPU memory the layer's weight (its buffer, its texture copy
    /// or both) and bias hold.
    pub(crate) fn gpu_bytes(&self) -> u64 {
        let weight = self.weight.lock().map_or(0, |w| {
            w.buffer.as_ref().map_or(0, wgpu::Buffer::size)
                + w.texture
                    .as_ref()
                    .map_or(0, |t| u64::from(t.width()) * u64::from(t.height()) * 16)
        });
        weight + self.bias.size()
    }

    fn weight_store(&self) -> Result<std::sync::MutexGuard<'_, WeightStore>> {
        self.weight
            .lock()
            .map_err(|_| Error::Validation("weight lock poisoned".into()))
    }

    /// A view of the weight's texture copy (`TWT`; layout:
    /// [`crate::plan::texture_rows`]), made on first use from the buffer,
    /// which is then dropped (see [`WeightStore`]). The copy is submitted at
    /// once, so it runs before any command buffer that reads the texture,
    /// whichever encoder records the layer first; command buffers recorded
    /// earlier that bind the buffer keep it alive until they have run.
    fn weight_texture(&self, engine: &Engine) -> Result<wgpu::TextureView> {
        let mut store = self.weight_store()?;
        if let Some(t) = &store.texture {
            return Ok(t.create_view(&wgpu::TextureViewDescriptor::default()));
        }
        let buffer = store.buffer.as_ref().ok_or(Error::Internal {
            what: "weight buffer or texture",
            expected: 1,
            actual: 0,
        })?;
        let len = self.weight_bytes / 4;
        let texture = engine.texture_of_rows("wgconv weight texture", texture_rows32(len)?)?;
        let mut encoder = engine
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgconv weight texture"),
            });
        copy_to_texture(engine, &mut encoder, buffer, len, &texture)?;
        engine.queue().submit([encoder.finish()]);
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        store.texture = Some(texture);
        store.buffer = None;
        Ok(view)
    }

    /// The weight's buffer, made again from the texture copy if that
    /// replaced it (and then kept: a layer whose plans read both would
    /// otherwise copy back and forth).
    fn weight_buffer(&self, engine: &Engine) -> Result<wgpu::Buffer> {
        let mut store = self.weight_store()?;
        if let Some(b) = &store.buffer {
            return Ok(b.clone());
        }
        let texture = store.texture.as_ref().ok_or(Error::Internal {
            what: "weight buffer or texture",
            expected: 1,
            actual: 0,
        })?;
        engine.check_buffer("weight", self.weight_bytes)?;
        let buffer = engine.scoped(|| {
            let buffer = engine.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgconv weight"),
                size: self.weight_bytes,
                usage: WEIGHT_USAGE,
                mapped_at_creation: false,
            });
            let mut encoder =
                engine
                    .device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("wgconv weight from texture"),
                    });
            copy_from_texture(&mut encoder, texture, self.weight_bytes / 4, &buffer)?;
            engine.queue().submit([encoder.finish()]);
            Ok(buffer)
        })?;
        store.buffer = Some(buffer.clone());
        Ok(buffer)
    }

    /// The schedule for `shape` running `activation` (built and its
    /// uniforms uploaded on first use).
    fn prepared(
        &self,
        engine: &Engine,
        shape: &Conv2dShape,
        plan: &Plan,
        activation: Activation,
    ) -> Result<Arc<Prepared>> {
        let key = (
            (shape.input_shape(), plan.key.clone()),
            activation.alpha().to_bits(),
        );
        let mut map = self
            .schedules
            .lock()
            .map_err(|_| Error::Validation("schedule cache lock poisoned".into()))?;
        if let Some(p) = map.get(&key) {
            return Ok(Arc::clone(p));
        }
        let shape = &plan.exec_shape(shape);
        let schedule = Schedule::build(
            shape,
            plan,
            ConvUniforms::new(shape, activation, plan),
            self.weight_bytes,
            engine.budget(),
        )?;
        let align = u64::from(engine.limits().min_uniform_buffer_offset_alignment).max(1);
        let stride = UNIFORM_SIZE.next_multiple_of(align);
        let mut bytes = vec![0u8; stride as usize * schedule.chunks.len()];
        for (i, c) in schedule.chunks.iter().enumerate() {
            let at = i * stride as usize;
            bytes[at..at + UNIFORM_SIZE as usize].copy_from_slice(bytemuck::bytes_of(&c.uniforms));
        }
        let uniform = engine.buffer_with("wgconv params", &bytes, wgpu::BufferUsages::UNIFORM)?;
        let p = Arc::new(Prepared {
            schedule,
            uniform,
            stride,
        });
        map.insert(key, Arc::clone(&p));
        Ok(p)
    }

    /// How `plan` on `shape`, running `activation`, is split into dispatches.
    pub(crate) fn chunking(
        &self,
        engine: &Engine,
        shape: &Conv2dShape,
        plan: &Plan,
        activation: Activation,
    ) -> Result<Chunking> {
        Ok(self
            .prepared(engine, shape, plan, activation)?
            .schedule
            .report())
    }

    /// Records the dispatches of `plan` reading `input` and writing `output`:
    /// one per chunk, each with its staging copies. With `residual` (a plan
    /// of [`Plan::with_residual`]), the kernel also reads that tensor (the
    /// output's shape) at the output's windows and runs its activation.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        shape: &Conv2dShape,
        plan: &Plan,
        input: &GpuTensor,
        residual: Option<(&GpuTensor, Activation)>,
        output: &GpuTensor,
    ) -> Result<()> {
        if residual.is_some() != plan.key.residual() {
            return Err(Error::Internal {
                what: "residual tensors bound to a kernel (one if it reads a residual)",
                expected: u64::from(plan.key.residual()),
                actual: u64::from(residual.is_some()),
            });
        }
        let activation = residual.map_or(self.activation, |r| r.1);
        let prepared = self.prepared(engine, shape, plan, activation)?;
        let sched = &prepared.schedule;
        // The residual is read at the output's own windows, so no chunk may
        // stage its output through a scratch buffer (`residual_plan` checks).
        if residual.is_some() && sched.chunks.iter().any(|c| direct(&c.output).is_none()) {
            return Err(Error::Internal {
                what: "staged output chunks of a kernel reading a residual",
                expected: 0,
                actual: sched
                    .chunks
                    .iter()
                    .filter(|c| direct(&c.output).is_none())
                    .count() as u64,
            });
        }
        engine.scoped(|| {
            let device = engine.device();
            let pipeline = engine.pipelines.get(device, &plan.key)?;
            let scratch = |label, size: u64, usage| {
                (size > 0).then(|| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some(label),
                        size,
                        usage: wgpu::BufferUsages::STORAGE | usage,
                        mapped_at_creation: false,
                    })
                })
            };
            let in_scratch = scratch(
                "wgconv input band",
                sched.input_scratch,
                wgpu::BufferUsages::COPY_DST,
            );
            let out_scratch = scratch(
                "wgconv output band",
                sched.output_scratch,
                wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            );
            let missing = || Error::Internal {
                what: "scratch buffer",
                expected: 1,
                actual: 0,
            };
            // `TWT` = 1 or 2: the kernel reads its weights from the layer's texture copy.
            let weight = if plan.key.reads_texture("TWT") {
                WeightBinding::Texture(self.weight_texture(engine)?)
            } else {
                WeightBinding::Buffer(self.weight_buffer(engine)?)
            };
            let bind = |i: usize,
                        input_res: wgpu::BindingResource<'_>,
                        output_res: wgpu::BindingResource<'_>|
             -> Result<wgpu::BindGroup> {
                let chunk = &sched.chunks[i];
                // The residual's window is the output's (checked direct above).
                let residual_entry = match residual {
                    Some((r, _)) => {
                        let (offset, size) = direct(&chunk.output).ok_or_else(missing)?;
                        Some(wgpu::BindGroupEntry {
                            binding: 5,
                            resource: window(r.buffer(), offset, size)?,
                        })
                    }
                    None => None,
                };
                let entries: Vec<wgpu::BindGroupEntry> = [
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: window(
                            &prepared.uniform,
                            i as u64 * prepared.stride,
                            UNIFORM_SIZE,
                        )?,
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: input_res,
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: match &weight {
                            WeightBinding::Texture(view) => {
                                wgpu::BindingResource::TextureView(view)
                            }
                            WeightBinding::Buffer(buffer) => {
                                window(buffer, chunk.weight.0, chunk.weight.1)?
                            }
                        },
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: self.bias.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: output_res,
                    },
                ]
                .into_iter()
                .chain(residual_entry)
                .collect();
                Ok(device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(plan.key.kernel.name()),
                    layout: engine.pipelines.bind_layout(&plan.key),
                    entries: &entries,
                }))
            };
            // `TIN` = 1 or 2: the kernel reads the whole input from a texture copy of it.
            let texture = if plan.key.reads_texture("TIN") {
                Some(input_texture(
                    engine,
                    encoder,
                    input,
                    crate::engine::TextureUse::Conv,
                )?)
            } else {
                None
            };
            let input_binding = |offset, size| match &texture {
                Some(view) => Ok(wgpu::BindingResource::TextureView(view)),
                None => window(input.buffer(), offset, size),
            };
            let mut i = 0;
            while i < sched.chunks.len() {
                // A run of chunks that bind the tensors themselves shares one
                // compute pass: measured on lavapipe, a dispatch in a pass of
                // its own costs about 35 µs more than one in a shared pass
                // (wgpu orders the dispatches of a pass that touch one buffer).
                let run_end = (i..sched.chunks.len())
                    .find(|&j| {
                        let c = &sched.chunks[j];
                        direct(&c.input).is_none() || direct(&c.output).is_none()
                    })
                    .unwrap_or(sched.chunks.len());
                if run_end > i {
                    let binds = (i..run_end)
                        .map(|j| {
                            let c = &sched.chunks[j];
                            let (io, is) = direct(&c.input).ok_or_else(missing)?;
                            let (oo, os) = direct(&c.output).ok_or_else(missing)?;
                            bind(j, input_binding(io, is)?, window(output.buffer(), oo, os)?)
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(plan.key.kernel.name()),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(&pipeline);
                    for (j, b) in (i..run_end).zip(&binds) {
                        pass.set_bind_group(0, b, &[]);
                        let [x, y, z] = sched.chunks[j].dispatch;
                        pass.dispatch_workgroups(x, y, z);
                    }
                    i = run_end;
                    continue;
                }
                let chunk = &sched.chunks[i];
                let input_res = match chunk.input {
                    Window::Direct { offset, size } => input_binding(offset, size)?,
                    // The planner reads textures only where no chunk stages its input.
                    Window::Staged { .. } if texture.is_some() => {
                        return Err(Error::Internal {
                            what: "staged input of a texture-reading kernel",
                            expected: 0,
                            actual: 1,
                        })
                    }
                    Window::Staged {
                        first,
                        runs,
                        stride,
                        run_len,
                    } => {
                        let buf = in_scratch.as_ref().ok_or_else(missing)?;
                        gather_runs(encoder, input.buffer(), buf, first, runs, stride, run_len);
                        window(buf, 0, chunk.input.size())?
                    }
                };
                let output_res = match chunk.output {
                    Window::Direct { offset, size } => window(output.buffer(), offset, size)?,
                    Window::Staged {
                        first,
                        runs,
                        stride,
                        run_len,
                    } => {
                        let buf = out_scratch.as_ref().ok_or_else(missing)?;
                        // A later reduction segment reads the partial sums back.
                        if chunk.uniforms.flags & ACC_IN != 0 {
                            gather_runs(
                                encoder,
                                output.buffer(),
                                buf,
                                first,
                                runs,
                                stride,
                                run_len,
                            );
                        }
                        window(buf, 0, chunk.output.size())?
                    }
                };
                let b = bind(i, input_res, output_res)?;
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(plan.key.kernel.name()),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &b, &[]);
                    let [x, y, z] = chunk.dispatch;
                    pass.dispatch_workgroups(x, y, z);
                }
                if let Window::Staged {
                    first,
                    runs,
                    stride,
                    run_len,
                } = chunk.output
                {
                    let buf = out_scratch.as_ref().ok_or_else(missing)?;
                    for r in 0..runs {
                        encoder.copy_buffer_to_buffer(
                            buf,
                            r * run_len * 4,
                            output.buffer(),
                            (first + r * stride) * 4,
                            run_len * 4,
                        );
                    }
                }
                i += 1;
            }
            Ok(())
        })
    }

    /// Records one whole-tensor dispatch of a kernel outside the chunked
    /// convolution path (`UpsampleConv2d`), with its own uniform (made by
    /// `uniforms` the first time input shape `key` meets this kernel key).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_with<U: bytemuck::Pod>(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        key: [usize; 4],
        uniforms: impl FnOnce() -> U,
        plan: &Plan,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        // Input and output bound as their own elements (either may be a
        // view of a larger pooled buffer); weight and bias whole.
        let window = |t: &GpuTensor| -> Result<Option<wgpu::BufferSize>> {
            let bytes = t.len() as u64 * 4;
            engine.check_binding("tensor binding", bytes)?;
            Ok(wgpu::BufferSize::new(bytes))
        };
        let weight = self.weight_buffer(engine)?;
        dispatch_bound(
            engine,
            encoder,
            plan,
            || self.uniforms.get(engine, (key, plan.key.clone()), uniforms),
            vec![
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: input.buffer(),
                    offset: 0,
                    size: window(input)?,
                }),
                weight.as_entire_binding(),
                self.bias.as_entire_binding(),
                wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: output.buffer(),
                    offset: 0,
                    size: window(output)?,
                }),
            ],
        )
    }
}

/// What distinguishes the two convolution ops for a layer: how a shape is
/// resolved and how the weight shape maps to channels.
pub trait OpParams: Copy + std::fmt::Debug + Send + Sync + 'static {
    /// Which op.
    const KIND: ConvKind;
    /// Resolves the op against an input shape.
    ///
    /// # Errors
    /// Any geometry error.
    fn resolve(
        &self,
        input: [usize; 4],
        weight: [usize; 4],
        bias_len: Option<usize>,
    ) -> Result<Conv2dShape>;
    /// Input channels the weight expects.
    fn input_channels(&self, weight: [usize; 4]) -> usize;
    /// The smallest input shape that validates everything the weight and
    /// parameters alone determine.
    fn nominal_input(&self, weight: [usize; 4]) -> [usize; 4];
    /// The layer signature the planner needs.
    fn sig(&self, weight: [usize; 4]) -> crate::plan::LayerSig;
    /// The transposed convolution's parameters, for a transposed op.
    fn transposed(&self) -> Option<crate::geometry::ConvTranspose2dParams> {
        None
    }
}

/// Options for building a layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerOptions {
    /// Run this kernel family instead of the planner's choice (every forward
    /// family runs every forward convolution; tests use this to keep them
    /// all correct). Ignored when the kernel cannot run the op: a forward
    /// family for a transposed op, or `conv2d_shared` on an adapter below
    /// WebGPU's workgroup limits (`conv2d_tiled` runs instead).
    pub force_kernel: Option<Kernel>,
    /// Run this tile shape instead of the planner's (or the autotuner's)
    /// choice; reduced to fit when too large for the shape. Tests use it to
    /// keep every tile the autotuner may pick correct.
    pub force_tile: Option<plan::Tile>,
    /// Run (or never run) an eligible layer — forward 3×3, stride 1, any
    /// dilation, one group, at least 16 channels in and out — in Winograd
    /// form ([`crate::winograd`]); `None`: the planner's choice
    /// ([`plan::winograd_tile`]), which never picks it when `force_kernel`
    /// is set.
    pub winograd: Option<plan::Winograd>,
    /// Run (`Some(true)`) or never run (`Some(false)`) a transposed layer
    /// that has a sub-pixel form ([`sub_pixel`]) in it; `None`: the
    /// planner's choice ([`plan::sub_pixel`]). Ignored for forward layers.
    pub sub_pixel: Option<bool>,
    /// What the plan optimises: [`plan::Goal::Throughput`] (the default), or
    /// [`plan::Goal::FirstResult`] for a layer that runs once, where the
    /// kernels' compile time outweighs their speed. A first-result layer
    /// runs a Winograd or sub-pixel form only where `winograd` or
    /// `sub_pixel` asks for it, and the autotuner leaves it alone.
    pub goal: plan::Goal,
}

impl LayerOptions {
    /// Whether the autotuner may choose a layer's route: not where the tile
    /// is pinned, nor for a first result (tuning compiles and times every
    /// candidate; a remembered winner is the fastest to run, not to compile).
    fn tunable(&self) -> bool {
        self.force_tile.is_none() && self.goal == plan::Goal::Throughput
    }
}

/// A convolution layer ([`conv2d::Conv2d`] or
/// [`conv_transpose2d::ConvTranspose2d`]): owns its weights and bias on the
/// GPU, uploaded once in the layout its kernel reads, so calls upload
/// nothing but one small uniform per new input shape.
#[derive(Debug)]
pub struct ConvLayer<P: OpParams> {
    weight_shape: [usize; 4],
    params: P,
    activation: Activation,
    options: LayerOptions,
    profile: AdapterProfile,
    host_weight: Arc<[f32]>,
    host_bias: Option<Arc<[f32]>>,
    layout: WeightLayout,
    /// The direct path's weights in the planner's layout: uploaded with the
    /// layer, or for a layer that runs a form by default only when a shape
    /// does not fit the form (or the autotuner times the direct path).
    core: OnceLock<Arc<LayerCore>>,
    /// The direct path's weights in other layouts (wider channel blocks),
    /// uploaded when the autotuner first times them.
    tuned_cores: Mutex<Vec<(WeightLayout, Arc<LayerCore>)>>,
    winograd: Option<Box<winograd::WinogradExec>>,
    sub_pixel: Option<Box<sub_pixel::SubPixelExec>>,
    /// Whether the planner runs the form above (Winograd or sub-pixel) by
    /// default; otherwise it was built only as an autotuning candidate.
    form_default: bool,
    /// The compact tile a [`plan::Goal::FirstResult`] layer runs on shapes of
    /// up to [`plan::FIRST_RESULT_MAX_FLOPS`] ([`plan::first_result_tile`]);
    /// `None` for every other layer.
    first_result_tile: Option<plan::Tile>,
}

/// Timed runs per autotuning candidate (after one untimed run).
const TUNE_RUNS: u32 = 3;

/// How a layer runs one input shape.
enum Route<'a> {
    Winograd(&'a winograd::WinogradExec),
    SubPixel(&'a sub_pixel::SubPixelExec),
    Direct(Plan),
}

impl<P: OpParams> ConvLayer<P> {
    /// Builds a layer from a PyTorch-layout weight (forward `[c_out,
    /// c_in/groups, k_h, k_w]`, transposed `[c_in, c_out/groups, k_h,
    /// k_w]`) and an optional bias `[c_out]`.
    ///
    /// # Errors
    /// Every parameter error that does not depend on the input,
    /// [`Error::DataLength`] for slices that do not match their shapes, and
    /// device errors.
    pub fn new(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: P,
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

    /// [`ConvLayer::new`] with [`LayerOptions`].
    ///
    /// # Errors
    /// As [`ConvLayer::new`].
    pub fn with_options(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: P,
        activation: Activation,
        options: LayerOptions,
    ) -> Result<Self> {
        params.resolve(
            params.nominal_input(weight_shape),
            weight_shape,
            bias.map(<[f32]>::len),
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
        let profile = engine.profile();
        let sig = params.sig(weight_shape);
        let mut options = options;
        let first_result = options.goal == plan::Goal::FirstResult;
        if first_result {
            // Forms add pipelines to compile; only the options can ask for one.
            options.winograd.get_or_insert(plan::Winograd::Off);
            options.sub_pixel.get_or_insert(false);
        }
        let first_result_tile = first_result
            .then(|| plan::first_result_tile(&sig, &profile, options.force_kernel))
            .flatten();
        // The weights go up in the layout of the tile the layer runs (a
        // first-result layer's compact tile: the usual case for it).
        let tile = options.force_tile.or(first_result_tile);
        let (_, layout) = plan::tuned_layout(
            &sig,
            &profile,
            options.force_kernel,
            tile.and_then(|t| t.cob4),
        );
        // With autotuning on, a form the options leave open is built even where
        // the planner would not run it, so that the tuner can time it.
        let tune_forms =
            engine.autotuner().is_some() && options.tunable() && options.force_kernel.is_none();
        let planned_w = plan::winograd_tile(&sig, &profile, options.force_kernel, options.winograd);
        let winograd_m = planned_w.or_else(|| {
            (tune_forms && options.winograd.is_none() && plan::winograd_eligible(&sig)).then_some(4)
        });
        let winograd = match winograd_m {
            Some(m) => Some(Box::new(winograd::WinogradExec::new(
                engine,
                m,
                weight,
                weight_shape,
                bias,
                activation,
            )?)),
            None => None,
        };
        let planned_s = plan::sub_pixel(&sig, &profile, options.sub_pixel);
        let sub_pixel = match params.transposed() {
            Some(t) if planned_s || (tune_forms && options.sub_pixel.is_none()) => {
                sub_pixel::SubPixelExec::new(engine, weight, weight_shape, bias, &t, activation)?
                    .map(Box::new)
            }
            _ => None,
        };
        let form_default =
            (winograd.is_some() && planned_w.is_some()) || (sub_pixel.is_some() && planned_s);
        let core = OnceLock::new();
        if !form_default {
            let _ = core.set(Arc::new(Self::upload_core(
                engine, &profile, options, weight, &sig, layout, bias, activation,
            )?));
        }
        Ok(Self {
            weight_shape,
            params,
            activation,
            options,
            profile,
            host_weight: weight.into(),
            host_bias: bias.map(Into::into),
            layout,
            core,
            tuned_cores: Mutex::new(Vec::new()),
            winograd,
            sub_pixel,
            form_default,
            first_result_tile,
        })
    }

    /// Uploads the direct path's weights (repacked for its kernel) and bias.
    #[allow(clippy::too_many_arguments)]
    fn upload_core(
        engine: &Engine,
        profile: &AdapterProfile,
        options: LayerOptions,
        weight: &[f32],
        sig: &plan::LayerSig,
        layout: WeightLayout,
        bias: Option<&[f32]>,
        activation: Activation,
    ) -> Result<LayerCore> {
        let packed = plan::repack_weight(weight, sig, layout);
        let c_out = sig.c_out_per_group as usize * sig.groups as usize;
        let padding = plan::weight_padding(sig, profile, options.force_kernel, layout);
        LayerCore::upload(engine, activation, &packed, bias, c_out, padding)
    }

    /// The direct path's state for weights in `layout`, uploaded on first
    /// use where the layer was built without it (a form runs by default, or
    /// the autotuner times a wider channel block).
    fn core_for(&self, engine: &Engine, layout: WeightLayout) -> Result<Arc<LayerCore>> {
        let upload = || {
            Self::upload_core(
                engine,
                &self.profile,
                self.options,
                &self.host_weight,
                &self.params.sig(self.weight_shape),
                layout,
                self.host_bias.as_deref(),
                self.activation,
            )
            .map(Arc::new)
        };
        if layout == self.layout {
            if let Some(core) = self.core.get() {
                return Ok(Arc::clone(core));
            }
            // Another thread may have won the race; either copy is the same.
            let _ = self.core.set(upload()?);
            return self.core.get().cloned().ok_or(Error::Internal {
                what: "direct path state",
                expected: 1,
                actual: 0,
            });
        }
        let mut cores = self
            .tuned_cores
            .lock()
            .map_err(|_| Error::Validation("layer weight cache lock poisoned".into()))?;
        if let Some((_, core)) = cores.iter().find(|(l, _)| *l == layout) {
            return Ok(Arc::clone(core));
        }
        let core = upload()?;
        cores.push((layout, Arc::clone(&core)));
        Ok(core)
    }

    /// The form this layer holds that runs `shape` on `engine`, if any.
    fn form_fitting(&self, engine: &Engine, shape: &Conv2dShape) -> Option<Route<'_>> {
        if let Some(w) = self.winograd.as_deref().filter(|w| w.fits(engine, shape)) {
            return Some(Route::Winograd(w));
        }
        self.sub_pixel
            .as_deref()
            .filter(|s| s.fits(engine, shape))
            .map(Route::SubPixel)
    }

    /// Whether the options pin this layer to the form it holds.
    fn form_pinned(&self) -> bool {
        (self.winograd.is_some() && self.options.winograd.is_some())
            || (self.sub_pixel.is_some() && self.options.sub_pixel.is_some())
    }

    /// The route of `choice` (`None`: the planner's) on `shape`: a form
    /// runs where it fits, else the direct path.
    fn route_of(&self, engine: &Engine, shape: &Conv2dShape, choice: Option<Choice>) -> Route<'_> {
        let form = self.form_fitting(engine, shape);
        match (choice, form) {
            (Some(Choice::Tile(t)), _) => Route::Direct(self.plan_tile(shape, Some(t))),
            (
                Some(Choice::Form {
                    form: Form::Direct, ..
                }),
                _,
            ) => Route::Direct(self.plan_tile(shape, None)),
            (Some(Choice::Form { .. }), Some(form)) => form,
            (None, Some(form)) if self.form_by_default(shape, &form) => form,
            _ => Route::Direct(self.plan_tile(shape, None)),
        }
    }

    /// Whether the untuned route of `shape` is `form` (which fits it): the
    /// options pin it, or the planner built it and, for Winograd, it pays
    /// off at this shape ([`plan::winograd_pays_off`]).
    fn form_by_default(&self, shape: &Conv2dShape, form: &Route<'_>) -> bool {
        match form {
            Route::Winograd(w) => {
                self.form_default
                    && (self.options.winograd.is_some()
                        || plan::winograd_pays_off(shape, w.m(), &self.profile))
            }
            Route::SubPixel(_) => self.form_default,
            Route::Direct(_) => false,
        }
    }

    /// The autotuner's remembered choice for `shape`, where it is one this
    /// layer can run: a form it holds that fits the shape, or a candidate
    /// tile; none where the options pin the tile or the form, or plan for
    /// the first result.
    fn remembered(&self, engine: &Engine, shape: &Conv2dShape) -> Option<Choice> {
        if !self.options.tunable() {
            return None;
        }
        let choice = engine.autotuner()?.get(&self.tune_class(shape))?;
        let form = self.form_fitting(engine, shape);
        let valid = match choice {
            _ if form.is_some() && self.form_pinned() => false,
            Choice::Tile(t) => self.candidates(shape).contains(&t),
            Choice::Form { form: Form::Direct } => self.candidates(shape).is_empty(),
            Choice::Form {
                form: Form::Winograd,
            } => matches!(form, Some(Route::Winograd(_))),
            Choice::Form {
                form: Form::SubPixel,
            } => matches!(form, Some(Route::SubPixel(_))),
        };
        valid.then_some(choice)
    }

    /// How this layer runs `shape` on `engine` now: the autotuner's
    /// remembered choice, else the planner's (this does not start tuning;
    /// recording does).
    fn route(&self, engine: &Engine, shape: &Conv2dShape) -> Route<'_> {
        self.route_of(engine, shape, self.remembered(engine, shape))
    }

    /// Whether this layer runs `input` in sub-pixel form (a transposed layer
    /// as forward convolutions of its phases, see [`sub_pixel`]).
    ///
    /// # Errors
    /// As [`ConvLayer::shape_for`].
    pub fn sub_pixel_on(&self, engine: &Engine, input: [usize; 4]) -> Result<bool> {
        let shape = self.shape_for(input)?;
        Ok(matches!(self.route(engine, &shape), Route::SubPixel(_)))
    }

    /// The Winograd tile size `m` this layer runs `input` with on `engine`
    /// (F(m×m, 3×3)), or `None` for the direct kernels.
    ///
    /// # Errors
    /// As [`ConvLayer::shape_for`].
    pub fn winograd_on(&self, engine: &Engine, input: [usize; 4]) -> Result<Option<u32>> {
        let shape = self.shape_for(input)?;
        Ok(match self.route(engine, &shape) {
            Route::Winograd(w) => Some(w.m()),
            _ => None,
        })
    }

    /// The kernels this layer runs on `input` on `engine`, for reports: the
    /// key of the direct path's plan, for the Winograd form
    /// `winograd-f{m}+` and the key of its GEMM's plan, for the sub-pixel
    /// form `sub-pixel{s_h}x{s_w}+` and its first phase's.
    ///
    /// # Errors
    /// As [`ConvLayer::shape_for`].
    pub fn kernel_name(&self, engine: &Engine, input: [usize; 4]) -> Result<String> {
        let shape = self.shape_for(input)?;
        match self.route(engine, &shape) {
            Route::SubPixel(s) => s.kernel_name(engine, input),
            Route::Winograd(w) => w.kernel_name(engine, &shape),
            Route::Direct(plan) => Ok(plan.key.to_string()),
        }
    }

    /// The CPU reference for this layer on `input` (f64), with the error
    /// magnitude of the arithmetic the layer runs on `engine`: the direct
    /// form's `Σ|x·w| + |b|`, or the Winograd form's (see
    /// [`crate::winograd::bound`]), so that [`reference::compare`] under
    /// [`Tolerance::F32Accumulation`] bounds the rounding of what ran.
    ///
    /// # Errors
    /// Geometry and length errors.
    pub fn reference_on(
        &self,
        engine: &Engine,
        input: &[f32],
        input_shape: [usize; 4],
    ) -> Result<reference::RefOutput> {
        let shape = self.shape_for(input_shape)?;
        let mut r = reference::conv(
            &shape,
            input,
            &self.host_weight,
            self.host_bias.as_deref(),
            self.activation,
        )?;
        if let Route::Winograd(w) = self.route(engine, &shape) {
            let p = &shape.padding;
            let (mag, terms) = crate::winograd::bound(
                w.m(),
                input,
                input_shape,
                &self.host_weight,
                shape.c_out as usize,
                self.host_bias.as_deref(),
                (shape.h_out as usize, shape.w_out as usize),
                (p.top as usize, p.left as usize),
                (shape.dil_h as usize, shape.dil_w as usize),
            )
            .ok_or(Error::Internal {
                what: "Winograd tile size",
                expected: 4,
                actual: u64::from(w.m()),
            })?;
            r.magnitude = mag;
            r.terms = terms;
        }
        Ok(r)
    }

    /// The weight shape, in the op's PyTorch layout.
    pub fn weight_shape(&self) -> [usize; 4] {
        self.weight_shape
    }
    /// The parameters.
    pub fn params(&self) -> &P {
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

    /// Bytes of GPU memory the layer's packed weight and bias hold.
    pub fn gpu_bytes(&self) -> u64 {
        self.core.get().map_or(0, |c| c.gpu_bytes())
            + self.tuned_cores.lock().map_or(0, |cores| {
                cores.iter().map(|(_, c)| c.gpu_bytes()).sum::<u64>()
            })
            + self.winograd.as_ref().map_or(0, |w| w.gpu_bytes())
            + self.sub_pixel.as_ref().map_or(0, |s| s.gpu_bytes())
    }

    /// Resolves this layer against an input shape.
    ///
    /// # Errors
    /// Any geometry error, and [`Error::InputChannels`] when the input's
    /// channels do not match the weight.
    pub fn shape_for(&self, input: [usize; 4]) -> Result<Conv2dShape> {
        let expected = self.params.input_channels(self.weight_shape);
        if input[1] != expected {
            return Err(Error::InputChannels {
                expected,
                actual: input[1],
            });
        }
        self.params.resolve(
            input,
            self.weight_shape,
            self.host_bias.as_ref().map(|b| b.len()),
        )
    }

    /// The planner's default plan (kernel, specialisation, dispatch) for an
    /// input shape, for this layer's [`LayerOptions::goal`].
    ///
    /// # Errors
    /// As [`ConvLayer::shape_for`].
    pub fn plan_for(&self, input: [usize; 4]) -> Result<Plan> {
        let shape = self.shape_for(input)?;
        Ok(self.plan_tile(&shape, None))
    }

    /// The direct path's plan on `engine`: the planner's default for the
    /// layer's goal, or the autotuner's remembered tile for this shape (this does not start
    /// tuning; recording does). Where the layer runs a form instead
    /// ([`ConvLayer::kernel_name`] tells), this is the plan of the direct
    /// path it would fall back to.
    ///
    /// # Errors
    /// As [`ConvLayer::shape_for`].
    pub fn plan_on(&self, engine: &Engine, input: [usize; 4]) -> Result<Plan> {
        let shape = self.shape_for(input)?;
        let tile = match self.remembered(engine, &shape) {
            Some(Choice::Tile(t)) => Some(t),
            _ => None,
        };
        Ok(self.plan_tile(&shape, tile))
    }

    fn plan_tile(&self, shape: &Conv2dShape, tile: Option<plan::Tile>) -> Plan {
        let first_result = self
            .first_result_tile
            .filter(|_| shape.flops() <= plan::FIRST_RESULT_MAX_FLOPS);
        plan::plan_with(
            shape,
            self.activation,
            &self.profile,
            self.options.force_kernel,
            self.options.force_tile.or(tile).or(first_result),
        )
    }

    fn candidates(&self, shape: &Conv2dShape) -> Vec<plan::Tile> {
        plan::tile_candidates(
            shape,
            self.activation,
            &self.profile,
            self.options.force_kernel,
        )
    }

    /// The autotuner's key for a shape: everything the timing and the
    /// candidates depend on.
    fn tune_class(&self, shape: &Conv2dShape) -> String {
        format!(
            "wgconv {} | {shape:?} | {:?} | {:?} | {:?} | {:?}",
            env!("CARGO_PKG_VERSION"),
            self.activation,
            self.options.force_kernel,
            self.options.winograd,
            self.options.sub_pixel,
        )
    }

    /// The route to record for `shape`: with autotuning on, the remembered
    /// choice, or — on first use of the shape — the fastest candidate, timed
    /// here on `input` (read only) and a scratch output, then remembered.
    /// The candidates are the form the layer holds (unless the options pin
    /// it) and the direct path with each candidate tile; the planner's
    /// default goes first and wins ties.
    fn route_recorded(
        &self,
        engine: &Engine,
        shape: &Conv2dShape,
        input: &GpuTensor,
    ) -> Result<Route<'_>> {
        let Some(tuner) = engine.autotuner().filter(|_| self.options.tunable()) else {
            return Ok(self.route_of(engine, shape, None));
        };
        if let Some(choice) = self.remembered(engine, shape) {
            return Ok(self.route_of(engine, shape, Some(choice)));
        }
        let fitting = self.form_fitting(engine, shape);
        let first = fitting
            .as_ref()
            .is_some_and(|f| self.form_by_default(shape, f));
        let form = match fitting {
            Some(_) if self.form_pinned() => return Ok(self.route_of(engine, shape, None)),
            Some(Route::Winograd(_)) => Some(Form::Winograd),
            Some(Route::SubPixel(_)) => Some(Form::SubPixel),
            _ => None,
        };
        let tiles = self.candidates(shape);
        let mut candidates: Vec<Choice> = if tiles.is_empty() {
            vec![Choice::Form { form: Form::Direct }]
        } else {
            tiles.into_iter().map(Choice::Tile).collect()
        };
        if let Some(form) = form {
            let at = if first { 0 } else { candidates.len() };
            candidates.insert(at, Choice::Form { form });
        }
        if candidates.len() < 2 {
            return Ok(self.route_of(engine, shape, None));
        }
        let scratch = GpuTensor::empty(engine, shape.output_shape())?;
        let mut best: Option<(f64, Choice)> = None;
        for choice in candidates {
            let route = self.route_of(engine, shape, Some(choice));
            let run = || -> Result<f64> {
                let start = std::time::Instant::now();
                submit_recorded(engine, "wgconv autotune", |enc| {
                    self.record_route(engine, enc, shape, &route, input, &scratch)
                })?;
                engine.wait()?;
                Ok(start.elapsed().as_secs_f64() * 1e3)
            };
            // One untimed run compiles the pipelines (and tunes a form's own
            // layers); then the best of three, by GPU timestamps where the
            // device writes them inside encoders, else by wall clock around
            // synchronous submissions.
            run()?;
            let mut fastest = f64::INFINITY;
            if crate::timing::available(engine) {
                let stamps = crate::timing::record_timed(engine, 2 * TUNE_RUNS, |enc, qs| {
                    for i in 0..TUNE_RUNS {
                        enc.write_timestamp(qs, 2 * i);
                        self.record_route(engine, enc, shape, &route, input, &scratch)?;
                        enc.write_timestamp(qs, 2 * i + 1);
                    }
                    Ok::<_, Error>(())
                })?;
                fastest = stamps
                    .chunks_exact(2)
                    .map(|t| t[1] - t[0])
                    .filter(|&t| t > 0.0)
                    .fold(fastest, f64::min);
            }
            if !fastest.is_finite() {
                // No timestamps, or ones that never advance.
                for _ in 0..TUNE_RUNS {
                    fastest = fastest.min(run()?);
                }
            }
            if best.is_none_or(|(t, _)| fastest < t) {
                best = Some((fastest, choice));
            }
        }
        let choice = best.map(|(_, c)| c);
        if let Some(c) = choice {
            tuner.put(&self.tune_class(shape), c);
        }
        Ok(self.route_of(engine, shape, choice))
    }

    /// Records `route` of `shape` reading `input` and writing `output`.
    fn record_route(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        shape: &Conv2dShape,
        route: &Route<'_>,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        match route {
            Route::Winograd(w) => w.record(engine, encoder, shape, input, output),
            Route::SubPixel(s) => s.record(engine, encoder, shape, input, output),
            Route::Direct(plan) => self
                .core_for(engine, plan.layout)?
                .record(engine, encoder, shape, plan, input, None, output),
        }
    }

    /// How this layer runs on an input shape within the engine's limits:
    /// one dispatch, or chunks by batch, output channels or output rows,
    /// staged or not, folded or not (see [`crate::chunk`]).
    ///
    /// # Errors
    /// As [`ConvLayer::shape_for`], and [`Error::ExceedsLimit`] when the
    /// layer cannot run on this shape within the device's limits.
    pub fn chunking(&self, engine: &Engine, input: [usize; 4]) -> Result<Chunking> {
        let shape = self.shape_for(input)?;
        let plan = plan::plan(
            &shape,
            self.activation,
            &self.profile,
            self.options.force_kernel,
        );
        self.core_for(engine, plan.layout)?
            .chunking(engine, &shape, &plan, self.activation)
    }

    /// The plan this layer runs on `input` fused with a residual add after
    /// it that applies `activation` ([`Plan::with_residual`]), if it can
    /// fuse: the layer has no activation of its own, runs the direct path
    /// (no Winograd or sub-pixel form) with `conv2d_tiled`, and no chunk
    /// stages its output. The route is the one recording takes without
    /// tuning (the remembered choice, if any).
    ///
    /// # Errors
    /// As [`ConvLayer::shape_for`], and device errors.
    pub(crate) fn residual_plan(
        &self,
        engine: &Engine,
        input: [usize; 4],
        activation: Activation,
    ) -> Result<Option<Plan>> {
        let shape = self.shape_for(input)?;
        let route = self.route_of(engine, &shape, self.remembered(engine, &shape));
        self.fused(engine, &shape, &route, activation)
    }

    /// `route`'s plan fused with a residual add (see [`ConvLayer::residual_plan`]).
    fn fused(
        &self,
        engine: &Engine,
        shape: &Conv2dShape,
        route: &Route<'_>,
        activation: Activation,
    ) -> Result<Option<Plan>> {
        if self.activation != Activation::None {
            return Ok(None);
        }
        let Route::Direct(plan) = route else {
            return Ok(None);
        };
        let Some(fused) = plan.with_residual(activation) else {
            return Ok(None);
        };
        let chunking = self
            .core_for(engine, fused.layout)?
            .chunking(engine, shape, &fused, activation)?;
        Ok((chunking.staged_outputs == 0).then_some(fused))
    }

    /// Records `activation(layer(input) + residual)` into `output` as one
    /// kernel, where the layer can fuse the add ([`ConvLayer::residual_plan`];
    /// the route is the one [`ConvLayer::record_into`] would take, tuned if
    /// the engine autotunes). Returns `false`, recording nothing, where it
    /// cannot. Bit for bit the same as the layer followed by
    /// [`crate::Add`]: the kernel rounds `(sum + bias) + residual` as the
    /// two dispatches do.
    ///
    /// # Errors
    /// [`Error::BadShape`] when `residual` or `output` does not have the
    /// layer's output shape, [`Error::AliasedOutput`] when `output` shares a
    /// buffer with `input` or `residual`, and everything
    /// [`ConvLayer::record`] reports.
    pub(crate) fn record_residual_into(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        input: &GpuTensor,
        residual: &GpuTensor,
        activation: Activation,
        output: &GpuTensor,
    ) -> Result<bool> {
        let shape = self.shape_for(input.shape())?;
        for (what, t) in [("output", output), ("residual", residual)] {
            if t.shape() != shape.output_shape() {
                return Err(Error::BadShape {
                    what,
                    expected: "the layer's output shape for this input",
                    actual: t.shape().to_vec(),
                });
            }
        }
        check_aliasing(output, &[input, residual])?;
        let route = self.route_recorded(engine, &shape, input)?;
        let Some(plan) = self.fused(engine, &shape, &route, activation)? else {
            return Ok(false);
        };
        self.core_for(engine, plan.layout)?.record(
            engine,
            encoder,
            &shape,
            &plan,
            input,
            Some((residual, activation)),
            output,
        )?;
        Ok(true)
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
    /// everything [`ConvLayer::record`] reports.
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

    /// Records the route of `shape`: a form where the layer runs it, else
    /// the direct kernel of the plan (tuned if the engine autotunes).
    fn record_shape(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        shape: &Conv2dShape,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        let route = self.route_recorded(engine, shape, input)?;
        self.record_route(engine, encoder, shape, &route, input, output)
    }

    /// Runs the layer on `input` and submits it; the result stays on the GPU.
    ///
    /// # Errors
    /// As [`ConvLayer::record`].
    pub fn forward(&self, engine: &Engine, input: &GpuTensor) -> Result<GpuTensor> {
        submit_recorded(engine, "wgconv layer", |enc| {
            self.record(engine, enc, input)
        })
    }

    /// Runs the layer into an existing `output` (the shape
    /// [`ConvLayer::record_into`] checks), submitted at once. Unlike
    /// [`ConvLayer::forward`] it makes no new buffer, so a loop over inputs
    /// pays neither the allocation nor wgpu's zero-fill of a fresh buffer
    /// before its first use (measured on lavapipe: about a sixth of pw's
    /// time and a quarter to a third of dw3's; see `wgconv bench`).
    ///
    /// # Errors
    /// As [`ConvLayer::record_into`].
    pub fn forward_into(
        &self,
        engine: &Engine,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        submit_recorded(engine, "wgconv layer", |enc| {
            self.record_into(engine, enc, input, output)
        })
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
        let x = GpuTensor::upload(engine, input, input_shape)?;
        let gpu = self.forward(engine, &x)?.read(engine)?;
        let cpu = self.reference_on(engine, input, input_shape)?;
        reference::compare(&cpu, self.activation, &gpu, tolerance)
    }
}

#[cfg(test)]
mod tests {
    use crate::pipelines::Kernel;

    /// A layer's weight buffer makes way for its texture copy, and comes
    /// back from it bit for bit should a plan need it again.
    #[test]
    fn weight_buffer_round_trips_through_its_texture() {
        let engine = match crate::Engine::new() {
            Ok(e) => e,
            Err(e) => {
                let required = std::env::var("WGCONV_REQUIRE_GPU").is_ok_and(|v| v == "1");
                assert!(!required, "no GPU adapter: {e}");
                eprintln!(
                    "SKIPPED: no GPU adapter (set WGCONV_REQUIRE_GPU=1 to make this a failure)"
                );
                return;
            }
        };
        // 5 full texture rows of 1024 texels and 7 texels of a sixth.
        let packed: Vec<f32> = (0..(1024 * 5 + 7) * 4)
            .map(|i| i as f32 * 0.37 - 1000.0)
            .collect();
        let core = super::LayerCore::upload(&engine, crate::Activation::None, &packed, None, 3, 0)
            .unwrap();
        let (weight, texture, bias) = (packed.len() as u64 * 4, 6 * 1024 * 16, 12);
        assert_eq!(core.gpu_bytes(), weight + bias);
        core.weight_texture(&engine).unwrap();
        assert_eq!(core.gpu_bytes(), texture + bias, "the buffer is dropped");
        let buffer = core.weight_buffer(&engine).unwrap();
        assert_eq!(
            core.gpu_bytes(),
            weight + texture + bias,
            "and kept once remade"
        );
        let back =
            crate::GpuTensor::in_buffer(std::sync::Arc::new(buffer), [1, 1, 1, packed.len()])
                .read(&engine)
                .unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&packed));
    }

    /// `ConvUniforms`' fields in order (keep in step with the struct).
    const FIELDS: [&str; 40] = [
        "n",
        "c_in",
        "h_in",
        "w_in",
        "c_out",
        "h_out",
        "w_out",
        "groups",
        "c_in_per_group",
        "c_out_per_group",
        "k_h",
        "k_w",
        "stride_h",
        "stride_w",
        "dil_h",
        "dil_w",
        "pad_top",
        "pad_left",
        "act",
        "alpha",
        "blocks_w",
        "blocks_per_group",
        "tap_step_h",
        "x_end",
        "x0",
        "y0",
        "z0",
        "w_base",
        "in_base",
        "in_cstride",
        "out_base",
        "out_cstride",
        "grid_x",
        "grid_y",
        "grid_z",
        "disp_x",
        "disp_y",
        "ci0",
        "ci1",
        "flags",
    ];

    #[test]
    fn every_shader_params_mirrors_conv_uniforms() {
        assert_eq!(std::mem::size_of::<super::ConvUniforms>(), FIELDS.len() * 4);
        // conv2d_upsampled's Params begins with ConvUniforms (its uniform embeds it).
        for k in [
            Kernel::Conv2dDirect,
            Kernel::Conv2dTiled,
            Kernel::Conv2dDepthwise,
            Kernel::ConvTranspose2d,
            Kernel::Conv2dUpsampled,
            Kernel::Conv2dShared,
        ] {
            let src = k.source();
            let start = src.find("struct Params {").expect("struct Params") + 15;
            let body = &src[start..start + src[start..].find('}').expect("}")];
            let fields: Vec<&str> = body
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .flat_map(|l| l.split(','))
                .filter_map(|f| f.split(':').next())
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect();
            if k == Kernel::Conv2dUpsampled {
                assert_eq!(fields[..FIELDS.len()], FIELDS, "{}", k.name());
            } else {
                assert_eq!(fields, FIELDS, "{}", k.name());
            }
            let types_ok = body
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .flat_map(|l| l.split(','))
                .filter(|f| f.contains(':'))
                .all(|f| {
                    f.contains("alpha: f32")
                        || f.contains("inv_area: f32")
                        || f.trim_end().ends_with("u32")
                });
            assert!(types_ok, "{}: every field but alpha is u32", k.name());
        }
    }

    /// `(name, type)` of each field of `struct Params` in `kernel`'s shader.
    fn shader_params(kernel: Kernel) -> Vec<(String, String)> {
        let src = kernel.source();
        let start = src.find("struct Params {").expect("struct Params") + 15;
        let body = &src[start..start + src[start..].find('}').expect("}")];
        body.lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .flat_map(|l| l.split(','))
            .filter_map(|f| f.split_once(':'))
            .map(|(n, t)| (n.trim().to_string(), t.trim().to_string()))
            .collect()
    }

    #[test]
    fn weightless_uniforms_mirror_their_shaders() {
        // (kernel, Rust struct size, fields in order with their WGSL types)
        type Fields = &'static [(&'static str, &'static str)];
        let cases: [(Kernel, usize, Fields); 3] = [
            (
                Kernel::Add,
                std::mem::size_of::<super::eltwise::AddUniforms>(),
                &[
                    ("total", "u32"),
                    ("row_stride", "u32"),
                    ("act", "u32"),
                    ("alpha", "f32"),
                ],
            ),
            (
                Kernel::Pool2d,
                std::mem::size_of::<super::pool::Pool2dUniforms>(),
                &[
                    ("h_in", "u32"),
                    ("w_in", "u32"),
                    ("h_out", "u32"),
                    ("w_out", "u32"),
                    ("k_h", "u32"),
                    ("k_w", "u32"),
                    ("stride_h", "u32"),
                    ("stride_w", "u32"),
                    ("total", "u32"),
                    ("row_stride", "u32"),
                    ("inv_area", "f32"),
                    ("pad0", "u32"),
                ],
            ),
            (
                Kernel::GlobalAvgPool,
                std::mem::size_of::<super::pool::GlobalAvgPoolUniforms>(),
                &[
                    ("planes", "u32"),
                    ("plane_len", "u32"),
                    ("row_stride", "u32"),
                    ("inv_area", "f32"),
                ],
            ),
        ];
        for (kernel, size, fields) in cases {
            let expected: Vec<(String, String)> = fields
                .iter()
                .map(|&(n, t)| (n.to_string(), t.to_string()))
                .collect();
            assert_eq!(shader_params(kernel), expected, "{}", kernel.name());
            assert_eq!(size, fields.len() * 4, "{}", kernel.name());
            assert_eq!(
                size % 16,
                0,
                "{}: uniform structs are 16-byte multiples",
                kernel.name()
            );
        }
    }
}
