//! A 3×3 stride-1 convolution (any dilation, in phases) run as Winograd
//! F(m×m, 3×3) (see [`crate::winograd`]): `winograd_input`, the `α²` GEMMs as one grouped
//! 1×1 [`Conv2d`] through the ordinary planner, and `winograd_output` with
//! the bias and activation.
//!
//! The transformed tiles live in two scratch tensors per input shape, `V`
//! (`[1, α²·c_in, rows, row]`) and `Mt` (`[1, α²·c_out, rows, row]`): a row
//! of `row` tiles (a multiple of 4, at most 64: [`winograd::gemm_row`]) makes the GEMM's output
//! rows, and the tiles run in slabs of `rows` such rows, sized so that both
//! fit one storage binding and [`SLAB_BYTES`]. A shape whose input or output
//! does not fit one storage binding runs on the direct path instead (see
//! `WinogradExec::fits`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::Engine;
use crate::engine::TextureUse;
use crate::error::{Error, Result};
use crate::geometry::{Activation, Conv2dParams, Conv2dShape};
use crate::ops::conv2d::Conv2d;
#[cfg(test)]
use crate::pipelines::Kernel;
use crate::plan::{self, Plan};
use crate::tensor::GpuTensor;
use crate::winograd::{self, TileGrid};

/// Largest scratch tensor (`V` or `Mt`) of one slab, bytes.
pub const SLAB_BYTES: u64 = 32 << 20;

/// Mirrors `struct Params` of `shaders/winograd_input.wgsl` and
/// `shaders/winograd_output.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct WinogradUniforms {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub th: u32,
    pub tw: u32,
    pub tiles: u32,
    pub t0: u32,
    pub quads: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub row_stride: u32,
    pub items: u32,
    pub act: u32,
    pub alpha: f32,
    pub dil_h: u32,
    pub dil_w: u32,
    pub pad0: u32,
    pub pad1: u32,
    pub pad2: u32,
}

/// The Winograd form of one layer: its GEMM layer and bias.
#[derive(Debug)]
pub(crate) struct WinogradExec {
    m: u32,
    c_in: usize,
    c_out: usize,
    activation: Activation,
    /// The `α²` GEMMs: weight `[α²·c_out, c_in, 1, 1]`, `α²` groups.
    gemm: Conv2d,
    bias: GpuTensor,
    scratch: Mutex<HashMap<[usize; 4], Arc<Scratch>>>,
}

/// Per input shape: the tile grid, the slabs' scratch tensors, plans and
/// uniforms.
#[derive(Debug)]
struct Scratch {
    v: GpuTensor,
    mt: GpuTensor,
    input_plan: Plan,
    output_plan: Plan,
    /// Per slab: the input and output transforms' uniforms.
    slabs: Vec<(Arc<wgpu::Buffer>, Arc<wgpu::Buffer>)>,
}

/// How a shape's tiles are laid out for the GEMM: `rows` rows of `row`
/// tiles per slab, `slabs` slabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlabLayout {
    pub grid: TileGrid,
    pub row: u64,
    pub rows: u64,
    pub slabs: u64,
}

impl SlabLayout {
    /// The layout of `shape` under F(m×m, 3×3) within `binding` bytes per
    /// scratch tensor (and [`SLAB_BYTES`]), with each transform's
    /// invocations (one per channel and quad of tiles) within `max_dim²`
    /// workgroups; `None` if not even one row fits.
    pub fn of(shape: &Conv2dShape, m: u32, binding: u64, max_dim: u32) -> Option<Self> {
        let grid = TileGrid::new(
            m,
            shape.n,
            shape.h_out,
            shape.w_out,
            (shape.dil_h, shape.dil_w),
        );
        let tiles = grid.tiles();
        let row = winograd::gemm_row(tiles);
        let total_rows = tiles.div_ceil(row);
        let a2 = u64::from((m + 2) * (m + 2));
        let channels = u64::from(shape.c_in.max(shape.c_out));
        let row_bytes = a2 * channels * row * 4;
        let max_items = u64::from(max_dim).pow(2) * u64::from(plan::WORKGROUP);
        let rows = (binding.min(SLAB_BYTES) / row_bytes)
            .min(max_items / (channels * row / 4))
            .min(total_rows);
        if rows == 0 || tiles > u64::from(u32::MAX) - 4 {
            return None;
        }
        Some(Self {
            grid,
            row,
            rows,
            slabs: total_rows.div_ceil(rows),
        })
    }
}

impl WinogradExec {
    /// The Winograd form of a 3×3 stride-1 layer with weight `[c_out, c_in,
    /// 3, 3]` (groups 1, any dilation): the weight transformed once, in f64.
    pub(crate) fn new(
        engine: &Engine,
        m: u32,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        activation: Activation,
    ) -> Result<Self> {
        let [c_out, c_in, _, _] = weight_shape;
        let mats = winograd::matrices(m).ok_or(Error::Internal {
            what: "Winograd tile size",
            expected: 4,
            actual: u64::from(m),
        })?;
        let a2 = mats.alpha * mats.alpha;
        let u = winograd::transform_weight(&mats, weight, c_out, c_in);
        let gemm = Conv2d::new(
            engine,
            &u,
            [a2 * c_out, c_in, 1, 1],
            None,
            Conv2dParams {
                groups: a2 as u32,
                ..Conv2dParams::default()
            },
            Activation::None,
        )?;
        let zeros;
        let b = match bias {
            Some(b) => b,
            None => {
                zeros = vec![0f32; c_out];
                &zeros
            }
        };
        Ok(Self {
            m,
            c_in,
            c_out,
            activation,
            gemm,
            bias: GpuTensor::upload(engine, b, [1, c_out, 1, 1])?,
            scratch: Mutex::new(HashMap::new()),
        })
    }

    /// The output tile size `m`.
    pub(crate) fn m(&self) -> u32 {
        self.m
    }

    /// Bytes of GPU memory the transformed weight and the bias hold.
    pub(crate) fn gpu_bytes(&self) -> u64 {
        self.gemm.gpu_bytes() + self.bias.len() as u64 * 4
    }

    /// Whether `shape` runs in Winograd form on `engine`: its input and
    /// output each fit one storage binding (the transforms bind them whole)
    /// and at least one row of tiles fits the scratch limits.
    pub(crate) fn fits(&self, engine: &Engine, shape: &Conv2dShape) -> bool {
        let binding = engine.budget().binding;
        let bytes = |len: usize| len as u64 * 4;
        bytes(shape.input_len()) <= binding
            && bytes(shape.output_len()) <= binding
            && Self::layout(engine, shape, self.m).is_some()
    }

    fn layout(engine: &Engine, shape: &Conv2dShape, m: u32) -> Option<SlabLayout> {
        let max_dim = engine.limits().max_compute_workgroups_per_dimension;
        SlabLayout::of(shape, m, engine.budget().binding, max_dim)
    }

    /// [`WinogradExec::layout`] where [`WinogradExec::fits`] held (an
    /// internal error otherwise).
    fn layout_for(&self, engine: &Engine, shape: &Conv2dShape) -> Result<SlabLayout> {
        Self::layout(engine, shape, self.m).ok_or(Error::Internal {
            what: "Winograd slab rows",
            expected: 1,
            actual: 0,
        })
    }

    /// The GEMM's input shape for `shape` (one slab).
    fn gemm_input(&self, layout: &SlabLayout) -> [usize; 4] {
        let a2 = ((self.m + 2) * (self.m + 2)) as usize;
        [1, a2 * self.c_in, layout.rows as usize, layout.row as usize]
    }

    /// A name for the kernels `shape` runs: `winograd-f{m}+` and the GEMM's
    /// kernel key.
    pub(crate) fn kernel_name(&self, engine: &Engine, shape: &Conv2dShape) -> Result<String> {
        let layout = self.layout_for(engine, shape)?;
        let gemm = self.gemm.plan_on(engine, self.gemm_input(&layout))?;
        Ok(format!("winograd-f{}+{}", self.m, gemm.key))
    }

    fn scratch(&self, engine: &Engine, shape: &Conv2dShape) -> Result<Arc<Scratch>> {
        let key = shape.input_shape();
        let mut map = self
            .scratch
            .lock()
            .map_err(|_| Error::Validation("Winograd scratch lock poisoned".into()))?;
        if let Some(s) = map.get(&key) {
            return Ok(Arc::clone(s));
        }
        let layout = self.layout_for(engine, shape)?;
        let max_dim = engine.limits().max_compute_workgroups_per_dimension;
        // V is the GEMM's input; Mt its output, α²·c_out channels of the same rows.
        let v_shape = self.gemm_input(&layout);
        let [_, _, rows, row] = v_shape;
        let a2 = ((self.m + 2) * (self.m + 2)) as usize;
        let v = GpuTensor::empty(engine, v_shape)?;
        let mt = GpuTensor::empty(engine, [1, a2 * self.c_out, rows, row])?;
        let quads = (layout.rows * layout.row / 4) as u32;
        let profile = engine.profile();
        let [input_key, _, output_key] =
            plan::winograd_keys(shape, self.m, self.activation, &profile, layout.row as u32);
        let input_plan =
            plan::flat_plan_within(input_key, u64::from(quads) * self.c_in as u64, max_dim);
        let output_plan =
            plan::flat_plan_within(output_key, u64::from(quads) * self.c_out as u64, max_dim);
        let grid = layout.grid;
        let mut slabs = Vec::new();
        for s in 0..layout.slabs {
            let base = WinogradUniforms {
                n: shape.n,
                c: shape.c_in,
                h: shape.h_in,
                w: shape.w_in,
                th: grid.th,
                tw: grid.tw,
                tiles: grid.real_tiles() as u32,
                t0: (s * layout.rows * layout.row) as u32,
                quads,
                pad_top: shape.padding.top,
                pad_left: shape.padding.left,
                row_stride: input_plan.blocks_w,
                items: quads * shape.c_in,
                act: self.activation.code(),
                alpha: self.activation.alpha(),
                dil_h: shape.dil_h,
                dil_w: shape.dil_w,
                pad0: 0,
                pad1: 0,
                pad2: 0,
            };
            let out = WinogradUniforms {
                c: shape.c_out,
                h: shape.h_out,
                w: shape.w_out,
                row_stride: output_plan.blocks_w,
                items: quads * shape.c_out,
                ..base
            };
            let upload = |u: &WinogradUniforms| {
                engine
                    .buffer_with(
                        "wgconv winograd params",
                        bytemuck::bytes_of(u),
                        wgpu::BufferUsages::UNIFORM,
                    )
                    .map(Arc::new)
            };
            slabs.push((upload(&base)?, upload(&out)?));
        }
        let s = Arc::new(Scratch {
            v,
            mt,
            input_plan,
            output_plan,
            slabs,
        });
        map.insert(key, Arc::clone(&s));
        Ok(s)
    }

    /// Records the layer on `input` into `output` (shapes checked by the
    /// caller; [`WinogradExec::fits`] holds).
    pub(crate) fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        shape: &Conv2dShape,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        crate::ops::check_aliasing(output, &[input])?;
        let s = self.scratch(engine, shape)?;
        // `TIN` = 1 or 2: the input transform reads a texture copy of the input.
        let texture = if s.input_plan.key.reads_texture("TIN") {
            Some(crate::ops::input_texture(
                engine,
                encoder,
                input,
                TextureUse::WinogradInput,
            )?)
        } else {
            None
        };
        for (u_in, u_out) in &s.slabs {
            crate::ops::dispatch_with_texture(
                engine,
                encoder,
                &s.input_plan,
                || Ok(Arc::clone(u_in)),
                texture.as_ref(),
                &[input, &s.v],
            )?;
            self.gemm.record_into(engine, encoder, &s.v, &s.mt)?;
            // `TIN` = 1 or 2: the output transform reads a texture copy of Mt.
            let mt = if s.output_plan.key.reads_texture("TIN") {
                Some(crate::ops::input_texture(
                    engine,
                    encoder,
                    &s.mt,
                    TextureUse::WinogradOutput,
                )?)
            } else {
                None
            };
            crate::ops::dispatch_with_texture(
                engine,
                encoder,
                &s.output_plan,
                || Ok(Arc::clone(u_out)),
                mt.as_ref(),
                &[&s.mt, &self.bias, output],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniforms_mirror_both_shaders() {
        for k in [Kernel::WinogradInput, Kernel::WinogradOutput] {
            let src = k.source();
            let start = src.find("struct Params {").expect("Params") + 15;
            let body = &src[start..start + src[start..].find('}').expect("}")];
            let fields = body.split(',').filter(|f| f.contains(':')).count();
            assert_eq!(fields * 4, std::mem::size_of::<WinogradUniforms>(), "{k:?}");
        }
    }

    #[test]
    fn slabs_cover_every_tile_within_the_binding() {
        let s = Conv2dShape::conv2d(
            [8, 128, 28, 28],
            [128, 128, 3, 3],
            None,
            &Conv2dParams::default().padding(crate::geometry::Padding::uniform(1)),
        )
        .unwrap();
        for (m, binding) in [(4, 1u64 << 30), (2, 1 << 30), (4, 2 << 20), (2, 600_000)] {
            let l = SlabLayout::of(&s, m, binding, 65535).unwrap();
            assert!(l.row <= 64 && l.row.is_multiple_of(4));
            assert!(l.slabs * l.rows * l.row >= l.grid.tiles());
            assert!((l.slabs - 1) * l.rows * l.row < l.grid.tiles());
            let a2 = u64::from((m + 2) * (m + 2));
            assert!(a2 * 128 * l.rows * l.row * 4 <= binding.min(SLAB_BYTES));
        }
        assert!(SlabLayout::of(&s, 4, 1000, 65535).is_none());
        // 8 workgroups per dimension: at most 64·64 invocations per transform.
        let l = SlabLayout::of(&s, 4, 1 << 30, 8).unwrap();
        assert!(128 * l.rows * l.row / 4 <= 64 * 64);
    }
}
