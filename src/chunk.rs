//! Device limits: chunking and dispatch folding.
//!
//! A convolution whose tensors are larger than one storage binding
//! (`max_storage_buffer_binding_size`) runs as several dispatches, each over a
//! *chunk* of the output: a range of images, then (if one image is still too
//! large) a range of output-channel units, then (if one unit of one image is
//! still too large) a band of output rows. Each binding of a chunk is a
//! *window* of its tensor's buffer whose offset is aligned down to
//! `min_storage_buffer_offset_alignment`; the shaders compute their indices in
//! global coordinates and subtract the window's base (`in_base`, `w_base`,
//! `out_base` in the uniform, `ConvUniforms`). When the rows a band reads (or writes) are
//! not contiguous in the tensor — several channel planes of a few rows each —
//! and their contiguous span does not fit a binding, the band is *staged*
//! through a scratch buffer (one copy per channel plane) and the kernel sees
//! channel planes `rows·w` elements apart (`in_cstride` / `out_cstride`).
//! Every output is computed by the same invocation code with the same
//! operations in the same order as without chunking, so results are
//! bit-identical.
//!
//! Independently, a chunk's logical grid whose dimension exceeds
//! `max_compute_workgroups_per_dimension` is folded into a 2-D/3-D dispatch;
//! the shaders recover the logical workgroup id with `logical_wid()` from the
//! dispatch size the uniform carries (`disp_x`, `disp_y`).
//!
//! The windows are computed from exact bounds of the shaders' index math (see
//! `Schedule::build`); that is what makes it sound to compile the kernels
//! without runtime bounds checks ([`crate::pipelines`]).

use crate::error::{Error, Result};
use crate::geometry::{Conv2dShape, ConvKind};
use crate::ops::{ConvUniforms, ACC_IN, FINAL};
use crate::pipelines::Kernel;
use crate::plan::{Plan, WeightLayout, WORKGROUP};

/// Largest spatial quantity (extent, padding, stride·extent, dilation·kernel)
/// the shaders' `i32` arithmetic is allowed to see: sums of up to four such
/// terms stay below `2^31`.
pub(crate) const MAX_SPATIAL: u64 = 1 << 29;

/// Output rows a row band aims for when choosing its channel range.
const BAND_ROWS: u32 = 8;

/// The limits a schedule works within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Largest storage binding, bytes (a multiple of 4).
    pub binding: u64,
    /// Storage binding offsets must be multiples of this (bytes, a power of two).
    pub align: u64,
    /// Uniform binding offsets must be multiples of this (bytes, a power of
    /// two): the weight windows of `conv2d_tiled`.
    pub uniform_align: u64,
    /// Workgroups per dispatch dimension.
    pub max_groups: u32,
}

/// How a chunk was formed: the coarsest level at which the layer fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChunkLevel {
    /// One dispatch over whole tensors.
    Whole,
    /// Ranges of output-channel units over every image (when the units'
    /// weights, not the tensors, are what does not fit one binding).
    Units,
    /// Ranges of images.
    Batch,
    /// Ranges of output-channel units (blocks or channels) of one image.
    Channels,
    /// Bands of output rows of a range of output-channel units of one image.
    Rows,
}

/// What [`crate::ConvLayer::chunking`] reports about how a layer runs on an
/// input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// The level at which the work was split.
    pub level: ChunkLevel,
    /// Dispatches (one per chunk).
    pub chunks: usize,
    /// Chunks whose input is staged through a scratch buffer.
    pub staged_inputs: usize,
    /// Chunks whose output is staged through a scratch buffer.
    pub staged_outputs: usize,
    /// Chunks whose dispatch was folded (some logical grid dimension exceeded
    /// the workgroups-per-dimension limit).
    pub folded: usize,
    /// Largest storage binding any chunk uses, bytes.
    pub largest_binding: u64,
    /// Reduction segments: the input channels of a group are summed in this
    /// many dispatches per output region (`conv2d_tiled` when one channel
    /// block's weights exceed its uniform weight window), each continuing
    /// from the partial sums the previous one stored; 1 otherwise.
    pub segments: usize,
}

/// A window of a tensor a chunk binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// Bytes `[offset, offset + size)` of the tensor's own buffer.
    Direct {
        /// Byte offset, a multiple of the storage offset alignment.
        offset: u64,
        /// Byte size.
        size: u64,
    },
    /// `runs` runs of `run_len` f32 elements; run `r` is tensor elements
    /// `[first + r·stride, first + r·stride + run_len)` and scratch elements
    /// `[r·run_len, (r + 1)·run_len)`.
    Staged {
        /// Tensor element of the first run.
        first: u64,
        /// Number of runs (channel planes).
        runs: u64,
        /// Tensor elements between runs (one channel plane).
        stride: u64,
        /// Elements per run.
        run_len: u64,
    },
}

impl Window {
    /// Bytes of the binding.
    pub(crate) fn size(&self) -> u64 {
        match *self {
            Window::Direct { size, .. } => size,
            Window::Staged { runs, run_len, .. } => runs * run_len * 4,
        }
    }
}

/// One dispatch.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    /// The uniform of this chunk (mirrors the shaders' `Params`).
    pub uniforms: ConvUniforms,
    /// Input window.
    pub input: Window,
    /// Output window.
    pub output: Window,
    /// Weight window: byte offset and size.
    pub weight: (u64, u64),
    /// The workgroups to dispatch (the folded logical grid).
    pub dispatch: [u32; 3],
}

/// Every dispatch of one layer on one input shape.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// The chunks in order.
    pub chunks: Vec<Chunk>,
    /// Level of the split.
    pub level: ChunkLevel,
    /// Scratch bytes for staged inputs (0: none staged).
    pub input_scratch: u64,
    /// Scratch bytes for staged outputs (0: none staged).
    pub output_scratch: u64,
    /// Reduction segments (see [`Chunking::segments`]).
    pub segments: usize,
    /// Whether the weight windows are uniform bindings (`conv2d_tiled`).
    pub uniform_weight: bool,
}

/// How a kernel's logical grid maps onto the tensors. The grid is
/// `[ceil(grid_rows·items_per_row / items_per_group), y_units, n]`: x items run over
/// grid rows (`rows_per_item` output rows each: the depthwise kernel's tile
/// height, else 1) in order with `items_per_row` items per row, `items_per_group`
/// of them per workgroup ([`WORKGROUP`], or `conv2d_shared`'s M tile of BM
/// pixels), y over units of output channels, z over images. **A new kernel
/// must keep that shape or extend this function.**
#[derive(Debug, Clone, Copy)]
struct GridMap {
    items_per_row: u32,
    /// Items per workgroup: [`WORKGROUP`] (one item per invocation), or BM
    /// output pixels for `conv2d_shared`.
    items_per_group: u32,
    /// Output rows per grid row (`PH` of the depthwise kernel, else 1).
    rows_per_item: u32,
    /// `ceil(h_out / rows_per_item)`.
    grid_rows: u32,
    y_units: u32,
    /// The output channels of a unit.
    unit_channels: UnitChannels,
    blocks_per_group: u32,
    /// Weight elements (of the weight binding's element type) per unit.
    weight_unit: u64,
    /// Bytes per weight element (16 for `vec4<f32>`, 4 for `f32`).
    weight_elem: u64,
    /// `conv2d_tiled`'s uniform weight window; `None`: a storage window.
    uniform_weight: Option<UniformWeight>,
    /// The kernel reads the input as vec4s (`conv2d_tiled` with `VIN = 1`):
    /// every input window must start, and every channel plane, at a multiple
    /// of 4 floats and span whole vec4s.
    vec4_input: bool,
    /// The kernel reads the input as the vec4s holding each row
    /// (`conv2d_tiled` with `VIN = 2`): every input window must start at a
    /// multiple of 4 floats and span whole vec4s (planes need not).
    shifted_input: bool,
    /// The kernel stores the output as vec4s (`conv2d_tiled` with `VOUT =
    /// 1`): the same conditions on every output window.
    vec4_output: bool,
    /// Input channels per step of the kernel's reduction loop (`CU` of
    /// `conv2d_tiled`, else 1): every reduction segment is a multiple of it.
    channel_step: u32,
}

/// The output channels of a grid unit (a y coordinate).
#[derive(Debug, Clone, Copy)]
enum UnitChannels {
    /// One channel.
    One,
    /// A block of this many channels within a group (the last of a group may
    /// be short): the blocked kernels.
    Block(u32),
    /// This many consecutive channels, which may span groups, a divisor of
    /// `c_out`: the depthwise kernel (`CB`).
    Span(u32),
}

/// The weight window of `conv2d_tiled`: a uniform array of exactly `cap`
/// vec4s (`WCAP`), within which a chunk's units' weights for its reduction
/// segment must lie.
#[derive(Debug, Clone, Copy)]
struct UniformWeight {
    /// `WCAP`: vec4s per window.
    cap: u64,
    /// vec4s per input channel of one unit (`k_h · k_w · COB4`).
    per_ci: u64,
}

fn internal(what: &'static str, expected: u64, actual: u64) -> Error {
    Error::Internal {
        what,
        expected,
        actual,
    }
}

fn spec(plan: &Plan, name: &str) -> Option<u32> {
    plan.key
        .consts
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

fn spec_is(plan: &Plan, name: &'static str, want: u32) -> Result<()> {
    match spec(plan, name) {
        Some(v) if v == want => Ok(()),
        Some(v) => Err(internal(name, u64::from(want), u64::from(v))),
        None => Err(internal(name, u64::from(want), 0)),
    }
}

impl GridMap {
    /// The map for `plan`, after checking every planner invariant the
    /// windows (and so the trusted-module proof) rely on.
    fn of(s: &Conv2dShape, plan: &Plan, weight_bytes: u64) -> Result<Self> {
        let cpg_in = u64::from(s.c_in_per_group());
        let taps = u64::from(s.k_h) * u64::from(s.k_w);
        let (items_per_row, unit_channels, y_units, weight_unit, weight_elem, uniform_weight) =
            match (plan.key.kernel, plan.layout) {
                (Kernel::Conv2dDirect, WeightLayout::Natural) => {
                    (s.w_out, UnitChannels::One, s.c_out, cpg_in * taps, 4, None)
                }
                (Kernel::Conv2dDepthwise, WeightLayout::Natural) => {
                    if s.c_in_per_group() != 1 {
                        return Err(internal("depthwise input channels per group", 1, cpg_in));
                    }
                    spec_is(plan, "K_W", s.k_w)?;
                    spec_is(plan, "K_H", s.k_h)?;
                    spec_is(plan, "S_H", s.stride_h)?;
                    spec_is(plan, "D_H", s.dil_h)?;
                    // Items run over tile columns of CB consecutive channels, then rows.
                    let cb = spec(plan, "CB").unwrap_or(0);
                    if cb == 0 || !s.c_out.is_multiple_of(cb) {
                        return Err(internal("channels per depthwise unit", 1, u64::from(cb)));
                    }
                    let ipr = plan.blocks_w.checked_mul(cb).ok_or(Error::SizeOverflow {
                        what: "depthwise items per row",
                        limit: "u32 indices",
                    })?;
                    (
                        ipr,
                        UnitChannels::Span(cb),
                        s.c_out / cb,
                        taps * u64::from(cb),
                        4,
                        None,
                    )
                }
                (Kernel::Conv2dTiled, WeightLayout::Blocked { cob4 })
                | (Kernel::ConvTranspose2d, WeightLayout::Blocked { cob4 }) => {
                    spec_is(plan, "COB4", cob4)?;
                    spec_is(plan, "K_W", s.k_w)?;
                    // Unrolled rows (`KHU`): `conv2d_tiled`'s are the kernel's rows (its
                    // index proof needs `kh < k_h`); `conv_transpose2d`'s cover every tap
                    // that reaches an output row.
                    if let Some(khu) = spec(plan, "KHU").filter(|&k| k != 0) {
                        let (what, rows, ok) = if plan.key.kernel == Kernel::Conv2dTiled {
                            ("unrolled kernel rows", s.k_h, khu == s.k_h)
                        } else {
                            let taps = crate::plan::transposed_row_taps(s);
                            ("unrolled taps per row", taps, khu >= taps)
                        };
                        if !ok {
                            return Err(internal(what, u64::from(rows), u64::from(khu)));
                        }
                    }
                    let cob = cob4 * 4;
                    let blocks = s.c_out_per_group().div_ceil(cob);
                    if plan.blocks_per_group != blocks {
                        return Err(internal(
                            "blocks per group",
                            u64::from(blocks),
                            u64::from(plan.blocks_per_group),
                        ));
                    }
                    if plan.key.kernel == Kernel::ConvTranspose2d {
                        // An item covers every W phase of its column block.
                        spec_is(plan, "S_W", s.stride_w)?;
                    }
                    let ipr = plan.blocks_w;
                    let units = blocks.checked_mul(s.groups).ok_or(Error::SizeOverflow {
                        what: "output channel blocks",
                        limit: "u32 indices",
                    })?;
                    let uniform_weight = match plan.key.kernel {
                        Kernel::Conv2dTiled if spec(plan, "WST") != Some(1) => {
                            let cap = u64::from(spec(plan, "WCAP").unwrap_or(0));
                            if cap == 0 {
                                return Err(internal("weight window vec4s", 1, 0));
                            }
                            Some(UniformWeight {
                                cap,
                                per_ci: taps * u64::from(cob4),
                            })
                        }
                        _ => None,
                    };
                    (
                        ipr,
                        UnitChannels::Block(cob),
                        units,
                        cpg_in * taps * u64::from(cob4),
                        16,
                        uniform_weight,
                    )
                }
                (Kernel::Conv2dShared, WeightLayout::Blocked { cob4 }) => {
                    // Items are output pixels; one unit is one BN = 16·TN block of a group,
                    // whose [K][BN] weight the kernel indexes with K = c_in/G · K_H · K_W.
                    spec_is(plan, "TN", cob4 / 4)?;
                    spec_is(plan, "K_W", s.k_w)?;
                    spec_is(plan, "K_H", s.k_h)?;
                    if cob4 % 4 != 0 {
                        return Err(internal(
                            "conv2d_shared block channels",
                            16,
                            u64::from(cob4) * 4,
                        ));
                    }
                    let cob = cob4 * 4;
                    let blocks = s.c_out_per_group().div_ceil(cob);
                    if plan.blocks_per_group != blocks {
                        return Err(internal(
                            "blocks per group",
                            u64::from(blocks),
                            u64::from(plan.blocks_per_group),
                        ));
                    }
                    if plan.blocks_w != s.w_out {
                        return Err(internal(
                            "items per output row",
                            u64::from(s.w_out),
                            u64::from(plan.blocks_w),
                        ));
                    }
                    // The kernel's K loop counts k0 up by 16 to K: keep it far from wrapping.
                    if cpg_in * taps + 16 > u64::from(u32::MAX) {
                        return Err(Error::SizeOverflow {
                            what: "reduction length",
                            limit: "u32 indices",
                        });
                    }
                    let units = blocks.checked_mul(s.groups).ok_or(Error::SizeOverflow {
                        what: "output channel blocks",
                        limit: "u32 indices",
                    })?;
                    (
                        s.w_out,
                        UnitChannels::Block(cob),
                        units,
                        cpg_in * taps * u64::from(cob4),
                        16,
                        None,
                    )
                }
                (_, layout) => {
                    return Err(internal(
                        "weight layout matching the kernel",
                        0,
                        matches!(layout, WeightLayout::Blocked { .. }) as u64,
                    ))
                }
            };
        if items_per_row == 0 {
            return Err(internal("items per output row", 1, 0));
        }
        // A uniform window has a fixed size: the buffer is padded by one window
        // (`plan::weight_padding`), so a window starting inside the weight fits.
        let expected_weight = u64::from(y_units) * weight_unit * weight_elem
            + uniform_weight.map_or(0, |u| u.cap * weight_elem);
        if weight_bytes < expected_weight {
            return Err(internal(
                "weight buffer bytes",
                expected_weight,
                weight_bytes,
            ));
        }
        let channel_step = spec(plan, "CU").unwrap_or(1).max(1);
        if !s.c_in_per_group().is_multiple_of(channel_step) {
            return Err(internal(
                "input channels per group, a multiple of the channel step",
                u64::from(channel_step),
                u64::from(s.c_in_per_group()),
            ));
        }
        let rows_per_item = match plan.key.kernel {
            Kernel::Conv2dDepthwise => spec(plan, "PH").unwrap_or(1).max(1),
            _ => 1,
        };
        let items_per_group = match plan.key.kernel {
            Kernel::Conv2dShared => 16 * spec(plan, "TM").unwrap_or(0),
            _ => WORKGROUP,
        };
        if items_per_group == 0 {
            return Err(internal("items per workgroup", 16, 0));
        }
        let grid_rows = s.h_out.div_ceil(rows_per_item);
        let items = u64::from(grid_rows) * u64::from(items_per_row);
        // item = x0 + lw.x·WG + lid (or m0 + mm) may run up to a workgroup's items − 1
        // past x_end before the check.
        if items + u64::from(items_per_group) > u64::from(u32::MAX) {
            return Err(Error::SizeOverflow {
                what: "output work items",
                limit: "u32 indices",
            });
        }
        let groups = [
            items.div_ceil(u64::from(items_per_group)),
            u64::from(y_units),
            u64::from(s.n),
        ];
        let planned = plan.groups.map(u64::from);
        for (e, a) in groups.iter().zip(planned) {
            if *e != a {
                return Err(internal("planned workgroups", *e, a));
            }
        }
        Ok(Self {
            items_per_row,
            items_per_group,
            rows_per_item,
            grid_rows,
            y_units,
            unit_channels,
            blocks_per_group: plan.blocks_per_group.max(1),
            weight_unit,
            weight_elem,
            uniform_weight,
            vec4_input: spec(plan, "VIN") == Some(1),
            shifted_input: spec(plan, "VIN") == Some(2),
            vec4_output: spec(plan, "VOUT") == Some(1),
            channel_step,
        })
    }

    /// The reduction segments: `[(0, c_in/groups)]`, unless one unit's
    /// weights exceed the uniform weight window; then the fewest balanced
    /// ranges of input channels whose weights (plus the window's alignment
    /// slack) fit it.
    fn segments(&self, s: &Conv2dShape, budget: Budget) -> Result<Vec<(u32, u32)>> {
        let cpg = s.c_in_per_group();
        let Some(uw) = self.uniform_weight else {
            return Ok(vec![(0, cpg)]);
        };
        // A window starts up to (alignment / 16 − 1) vec4s before the segment's first weight.
        let slack = lcm(budget.uniform_align, self.weight_elem) / self.weight_elem - 1;
        if self.weight_unit + slack <= uw.cap {
            return Ok(vec![(0, cpg)]);
        }
        // Segments are whole steps of `channel_step` channels.
        let step = u64::from(self.channel_step);
        let per_segment = uw.cap.saturating_sub(slack) / (uw.per_ci * step);
        if per_segment == 0 {
            return Err(Error::ExceedsLimit {
                what: "the weight of one step of input channels of one output-channel block",
                size: (uw.per_ci * step + slack) * self.weight_elem,
                max: uw.cap * self.weight_elem,
            });
        }
        let steps = u64::from(cpg) / step;
        let n = steps.div_ceil(per_segment);
        // Balanced bounds k·steps/n: each range is at most ceil(steps/n) ≤ per_segment steps.
        let bound = |k: u64| (k * steps / n * step) as u32;
        Ok((0..n).map(|k| (bound(k), bound(k + 1))).collect())
    }

    /// Groups `[g_lo, g_hi)` and output channels `[lo, hi)` of unit `y`.
    fn unit(&self, s: &Conv2dShape, y: u32) -> ((u32, u32), u64, u64) {
        let cpg_out = u64::from(s.c_out_per_group());
        match self.unit_channels {
            UnitChannels::One => {
                let g = y / s.c_out_per_group();
                ((g, g + 1), u64::from(y), u64::from(y) + 1)
            }
            UnitChannels::Block(cob) => {
                let g = y / self.blocks_per_group;
                let first =
                    u64::from(g) * cpg_out + u64::from(y % self.blocks_per_group) * u64::from(cob);
                let end = (u64::from(g) + 1) * cpg_out;
                ((g, g + 1), first, (first + u64::from(cob)).min(end))
            }
            UnitChannels::Span(cb) => {
                let lo = u64::from(y) * u64::from(cb);
                let hi = lo + u64::from(cb);
                // Channels below c_out < 2³², so their groups fit u32.
                let group = |co: u64| (co / cpg_out) as u32;
                ((group(lo), group(hi - 1) + 1), lo, hi)
            }
        }
    }
}

/// The largest spatial quantity the kernels' `i32` arithmetic meets, and the
/// check that it is at most [`MAX_SPATIAL`].
fn check_spatial(s: &Conv2dShape, plan: &Plan) -> Result<()> {
    let u = u64::from;
    let pix = u(spec(plan, "PIX").unwrap_or(1));
    // Columns an invocation starts from (ow0, q0) reach at most blocks_w·PIX.
    let cols = u(plan.blocks_w)
        .saturating_mul(pix)
        .saturating_add(u(s.w_out));
    let reach_h = u(s.k_h - 1) * u(s.dil_h);
    let reach_w = u(s.k_w - 1) * u(s.dil_w);
    let quantities = [
        u(s.h_in),
        u(s.w_in),
        u(s.h_out),
        u(s.w_out),
        u(s.padding.top),
        u(s.padding.left),
        u(s.h_out) * u(s.stride_h),
        cols.saturating_mul(u(s.stride_w)),
        reach_h,
        reach_w.saturating_add(u(s.stride_w).saturating_mul(pix.saturating_add(1))),
        u(s.stride_h),
        u(s.stride_w),
    ];
    let worst = quantities.into_iter().max().unwrap_or(0);
    if worst > MAX_SPATIAL {
        return Err(Error::ExceedsLimit {
            what: "spatial extent for the shaders' i32 index arithmetic",
            size: worst,
            max: MAX_SPATIAL,
        });
    }
    Ok(())
}

/// Folds a logical grid into a dispatch no dimension of which exceeds `max`:
/// unchanged when it already fits, else the linear workgroup index
/// `l = (z·dy + y)·dx + x` of a `[dx, dy, dz]` dispatch enumerates the
/// logical grid in x-fastest order (`logical_wid()` in the shaders), and the
/// `dx·dy·dz − total` extra workgroups return at once.
///
/// # Errors
/// [`Error::ExceedsLimit`] when even `max³` workgroups are too few, or the
/// linear index would not fit `u32`.
pub(crate) fn fold(grid: [u32; 3], max: u32) -> Result<[u32; 3]> {
    let max = max.max(1);
    let total: u64 = grid.iter().map(|&g| u64::from(g)).product();
    let too_many = || Error::ExceedsLimit {
        what: "workgroups per dispatch",
        size: total,
        max: u64::from(u32::MAX).min(u64::from(max).pow(3)),
    };
    if total > u64::from(u32::MAX) {
        return Err(too_many());
    }
    if grid.iter().all(|&g| g <= max) {
        return Ok(grid);
    }
    let m = u64::from(max);
    let dx = total.min(m);
    let dy = total.div_ceil(dx).min(m);
    let dz = total.div_ceil(dx * dy);
    if dz > m || dx * dy * dz > u64::from(u32::MAX) {
        return Err(too_many());
    }
    // All three are at most max, a u32.
    Ok([dx as u32, dy as u32, dz as u32])
}

/// The shaders' `logical_wid()`, for the tests: the logical id of workgroup
/// `wid` of dispatch `disp` over `grid`.
#[cfg(test)]
fn logical_wid(wid: [u32; 3], disp: [u32; 3], grid: [u32; 3]) -> [u32; 3] {
    let l = (wid[2] * disp[1] + wid[1]) * disp[0] + wid[0];
    let gxy = grid[0] * grid[1];
    [l % grid[0], (l % gxy) / grid[0], l / gxy]
}

fn align_down(v: u64, a: u64) -> u64 {
    v - v % a
}

/// One chunk's ranges: images `[n0, n1)`, units `[y0, y1)`, grid rows `[oh0, oh1)`
/// (output rows, or depthwise tiles of `rows_per_item` output rows).
#[derive(Debug, Clone, Copy)]
struct Span {
    n: (u32, u32),
    y: (u32, u32),
    oh: (u32, u32),
}

/// A planned binding: its window, and the shader's base and channel stride.
#[derive(Debug, Clone, Copy)]
struct Bound {
    window: Window,
    base: u64,
    cstride: u64,
}

#[derive(Clone, Copy)]
struct Planner<'a> {
    s: &'a Conv2dShape,
    map: GridMap,
    budget: Budget,
    base: ConvUniforms,
    /// Whether windows may be staged through scratch buffers.
    stage: bool,
    /// The reduction segment: input channels `[ci0, ci1)` of each group.
    ci: (u32, u32),
}

impl Planner<'_> {
    /// Input rows `[lo, hi)` that output rows `[oh0, oh1)` read: the exact
    /// hull of the rows the kernels index before their bounds test,
    /// intersected with `[0, h_in)`, widened to one row if empty.
    fn input_rows(&self, oh0: u32, oh1: u32) -> (u64, u64) {
        let s = self.s;
        let i = i64::from;
        let reach = i(s.k_h - 1) * i(s.dil_h);
        let (lo, hi) = match s.kind {
            // ih = oh·stride_h − pad_top + kh·dil_h
            ConvKind::Forward => (
                i(oh0) * i(s.stride_h) - i(s.padding.top),
                (i(oh1) - 1) * i(s.stride_h) - i(s.padding.top) + reach + 1,
            ),
            // ih = (oh + pad_top − kh·dil_h) / stride_h where that is exact and ≥ 0
            ConvKind::Transposed => (
                (i(oh0) + i(s.padding.top) - reach).max(0) / i(s.stride_h),
                (i(oh1) - 1 + i(s.padding.top)) / i(s.stride_h) + 1,
            ),
        };
        let h = i(s.h_in);
        let lo = lo.clamp(0, h - 1);
        let hi = hi.clamp(lo + 1, h);
        (lo as u64, hi as u64)
    }

    /// Input and output channel ranges of units `[y0, y1)`.
    fn channels(&self, y: (u32, u32)) -> ((u64, u64), (u64, u64)) {
        let cpg_in = u64::from(self.s.c_in_per_group());
        let ((g0, _), co_lo, _) = self.map.unit(self.s, y.0);
        let ((_, g1), _, co_hi) = self.map.unit(self.s, y.1 - 1);
        (
            (u64::from(g0) * cpg_in, u64::from(g1) * cpg_in),
            (co_lo, co_hi),
        )
    }

    /// A window of an NCHW f32 tensor with `c` channels of `h × w`: images
    /// `n`, channels `ch`, rows `rows`. Direct when its aligned span fits a
    /// binding, staged when one image's plane runs fit, else `None`.
    fn tensor_window(
        &self,
        c: u64,
        (h, w): (u64, u64),
        n: (u32, u32),
        ch: (u64, u64),
        rows: (u64, u64),
    ) -> Option<Bound> {
        let plane = h * w;
        let (n0, n1) = (u64::from(n.0), u64::from(n.1));
        let start = (n0 * c + ch.0) * plane + rows.0 * w;
        let end = ((n1 - 1) * c + ch.1 - 1) * plane + rows.1 * w;
        let first = align_down(start * 4, self.budget.align) / 4;
        if (end - first) * 4 <= self.budget.binding {
            return Some(Bound {
                window: Window::Direct {
                    offset: first * 4,
                    size: (end - first) * 4,
                },
                base: first,
                cstride: plane,
            });
        }
        let run_len = (rows.1 - rows.0) * w;
        let runs = ch.1 - ch.0;
        if self.stage && n1 - n0 == 1 && runs * run_len * 4 <= self.budget.binding {
            return Some(Bound {
                window: Window::Staged {
                    first: start,
                    runs,
                    stride: plane,
                    run_len,
                },
                // Virtual index (n·c + ci)·run_len + ih·w + iw minus this is the scratch index.
                base: (n0 * c + ch.0) * run_len + rows.0 * w,
                cstride: run_len,
            });
        }
        None
    }

    /// The chunk over `span`, or `None` if some binding does not fit.
    fn chunk(&self, span: Span) -> Option<Result<Chunk>> {
        let s = self.s;
        let u = u64::from;
        let (ci, co) = self.channels(span.y);
        // Grid rows to output rows. The input hull takes every row of the last
        // tile (the depthwise kernel loads rows for tile rows past h_out too,
        // clamped into the image), the output window only the real ones.
        let rpi = self.map.rows_per_item;
        let oh = (span.oh.0 * rpi, (span.oh.1 * rpi).min(s.h_out));
        let rows = self.input_rows(oh.0, span.oh.1 * rpi);
        let input = self.tensor_window(u(s.c_in), (u(s.h_in), u(s.w_in)), span.n, ci, rows)?;
        let output = self.tensor_window(
            u(s.c_out),
            (u(s.h_out), u(s.w_out)),
            span.n,
            co,
            (u(oh.0), u(oh.1)),
        )?;
        let we = self.map.weight_elem;
        let (w_first, w_bytes) = match self.map.uniform_weight {
            // The units' weights for this segment, inside one window of `cap` vec4s.
            Some(uw) => {
                let w_start = u(span.y.0) * self.map.weight_unit + u(self.ci.0) * uw.per_ci;
                let w_end = u(span.y.1 - 1) * self.map.weight_unit + u(self.ci.1) * uw.per_ci;
                let w_first = align_down(w_start * we, lcm(self.budget.uniform_align, we)) / we;
                if w_end - w_first > uw.cap {
                    return None;
                }
                (w_first, uw.cap * we)
            }
            None => {
                let w_start = u(span.y.0) * self.map.weight_unit;
                let w_end = u(span.y.1) * self.map.weight_unit;
                let w_align = lcm(self.budget.align, we);
                let w_first = align_down(w_start * we, w_align) / we;
                let w_bytes = (w_end - w_first) * we;
                if w_bytes > self.budget.binding {
                    return None;
                }
                (w_first, w_bytes)
            }
        };
        Some(self.finish(span, input, output, (w_first, w_bytes)))
    }

    fn finish(
        &self,
        span: Span,
        input: Bound,
        output: Bound,
        (w_first, w_bytes): (u64, u64),
    ) -> Result<Chunk> {
        let ipr = self.map.items_per_row;
        // Every value below is an element index or count within a tensor of at
        // most u32::MAX elements (validated shapes), or an item index below
        // h_out·items_per_row + items_per_group (checked in GridMap::of).
        let to32 = |what: &'static str, v: u64| {
            u32::try_from(v).map_err(|_| Error::SizeOverflow {
                what,
                limit: "u32 indices",
            })
        };
        let x0 = span.oh.0 * ipr;
        let x_end = span.oh.1 * ipr;
        let grid = [
            (x_end - x0).div_ceil(self.map.items_per_group),
            span.y.1 - span.y.0,
            span.n.1 - span.n.0,
        ];
        let dispatch = fold(grid, self.budget.max_groups)?;
        let mut u = self.base;
        u.x0 = x0;
        u.x_end = x_end;
        u.y0 = span.y.0;
        u.z0 = span.n.0;
        u.w_base = to32("weight window", w_first)?;
        let whole_vec4s = |b: &Bound| {
            let bytes = match b.window {
                Window::Direct { size, .. } => size,
                Window::Staged { runs, run_len, .. } => runs * run_len * 4,
            };
            b.base.is_multiple_of(4) && bytes.is_multiple_of(16)
        };
        let vec4_aligned = |b: &Bound| whole_vec4s(b) && b.cstride.is_multiple_of(4);
        if self.map.vec4_input && !vec4_aligned(&input) {
            return Err(internal("vec4-aligned input window", 0, input.base));
        }
        if self.map.shifted_input && !whole_vec4s(&input) {
            return Err(internal("whole-vec4 input window", 0, input.base));
        }
        if self.map.vec4_output && !vec4_aligned(&output) {
            return Err(internal("vec4-aligned output window", 0, output.base));
        }
        u.in_base = to32("input window", input.base)?;
        u.in_cstride = to32("input window", input.cstride)?;
        u.out_base = to32("output window", output.base)?;
        u.out_cstride = to32("output window", output.cstride)?;
        u.grid_x = grid[0];
        u.grid_y = grid[1];
        u.grid_z = grid[2];
        u.disp_x = dispatch[0];
        u.disp_y = dispatch[1];
        u.ci0 = self.ci.0;
        u.ci1 = self.ci.1;
        u.flags = if self.ci.0 > 0 { ACC_IN } else { 0 }
            | if self.ci.1 == self.s.c_in_per_group() {
                FINAL
            } else {
                0
            };
        Ok(Chunk {
            uniforms: u,
            input: input.window,
            output: output.window,
            weight: (w_first * self.map.weight_elem, w_bytes),
            dispatch,
        })
    }

    /// Greedy maximal ranges over `0..len`: each range starts where the last
    /// ended and grows while `make` still fits. `None` if a single step does
    /// not fit.
    fn greedy(
        len: u32,
        mut make: impl FnMut(u32, u32) -> Option<Result<Chunk>>,
    ) -> Option<Result<Vec<(u32, u32, Chunk)>>> {
        let mut out = Vec::new();
        let mut a = 0;
        while a < len {
            let mut best = match make(a, a + 1)? {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            let mut b = a + 1;
            // Exponential then binary search: the windows grow with b.
            let mut step = 1;
            while b < len {
                let next = (b + step).min(len);
                match make(a, next) {
                    Some(Ok(c)) => {
                        best = c;
                        b = next;
                        step *= 2;
                    }
                    Some(Err(e)) => return Some(Err(e)),
                    None if step == 1 => break,
                    None => step = 1,
                }
            }
            out.push((a, b, best));
            a = b;
        }
        Some(Ok(out))
    }

    fn build(&self) -> Result<(ChunkLevel, Vec<Chunk>)> {
        let s = self.s;
        let ys = self.map.y_units;
        let all = |n: (u32, u32)| Span {
            n,
            y: (0, ys),
            oh: (0, self.map.grid_rows),
        };
        if let Some(c) = self.chunk(all((0, s.n))) {
            return Ok((ChunkLevel::Whole, vec![c?]));
        }
        // When the weights are what does not fit, split the units, not the batch.
        if self.map.uniform_weight.is_some() && s.n > 1 {
            let units = Self::greedy(ys, |a, b| {
                self.chunk(Span {
                    n: (0, s.n),
                    y: (a, b),
                    oh: (0, self.map.grid_rows),
                })
            });
            if let Some(r) = units {
                return Ok((ChunkLevel::Units, r?.into_iter().map(|t| t.2).collect()));
            }
        }
        if let Some(r) = Self::greedy(s.n, |a, b| self.chunk(all((a, b)))) {
            return Ok((ChunkLevel::Batch, r?.into_iter().map(|t| t.2).collect()));
        }
        let per_image_units = |n: u32| {
            Self::greedy(ys, |a, b| {
                self.chunk(Span {
                    n: (n, n + 1),
                    y: (a, b),
                    oh: (0, self.map.grid_rows),
                })
            })
        };
        if per_image_units(0).is_some() {
            let mut chunks = Vec::new();
            for n in 0..s.n {
                match per_image_units(n) {
                    Some(r) => chunks.extend(r?.into_iter().map(|t| t.2)),
                    // Alignment differs between images: fall through to rows.
                    None => return self.rows().map(|c| (ChunkLevel::Rows, c)),
                }
            }
            return Ok((ChunkLevel::Channels, chunks));
        }
        self.rows().map(|c| (ChunkLevel::Rows, c))
    }

    /// Row bands with direct windows only if that works (no copies), else
    /// with staging allowed.
    fn rows(&self) -> Result<Vec<Chunk>> {
        let direct = Planner {
            stage: false,
            ..*self
        };
        direct.bands_per_image().or_else(|_| self.bands_per_image())
    }

    /// Row bands: for each image, ranges of units chosen so that a band of
    /// [`BAND_ROWS`] rows in the middle of the image fits, then maximal row
    /// bands for each range.
    fn bands_per_image(&self) -> Result<Vec<Chunk>> {
        let s = self.s;
        let rows = self.map.grid_rows;
        let band = BAND_ROWS.min(rows);
        let mid = (rows - band) / 2;
        let mut chunks = Vec::new();
        for n in 0..s.n {
            let fits_band = |y: (u32, u32), rows: u32| {
                self.chunk(Span {
                    n: (n, n + 1),
                    y,
                    oh: (mid, mid + rows),
                })
            };
            let rows = if fits_band((0, 1), band).is_some() {
                band
            } else {
                1
            };
            let ranges: Vec<(u32, u32)> =
                match Self::greedy(self.map.y_units, |a, b| fits_band((a, b), rows)) {
                    Some(r) => r?.into_iter().map(|(a, b, _)| (a, b)).collect(),
                    None => (0..self.map.y_units).map(|y| (y, y + 1)).collect(),
                };
            for y in ranges {
                self.bands(n, y, &mut chunks)?;
            }
        }
        Ok(chunks)
    }

    /// Maximal row bands of units `y` of image `n`; single units if the
    /// range does not fit one row somewhere.
    fn bands(&self, n: u32, y: (u32, u32), chunks: &mut Vec<Chunk>) -> Result<()> {
        let make = |y: (u32, u32)| {
            move |a: u32, b: u32| {
                self.chunk(Span {
                    n: (n, n + 1),
                    y,
                    oh: (a, b),
                })
            }
        };
        if let Some(r) = Self::greedy(self.map.grid_rows, make(y)) {
            chunks.extend(r?.into_iter().map(|t| t.2));
            return Ok(());
        }
        for unit in y.0..y.1 {
            match Self::greedy(self.map.grid_rows, make((unit, unit + 1))) {
                Some(r) => chunks.extend(r?.into_iter().map(|t| t.2)),
                None => return Err(self.impossible(unit)),
            }
        }
        Ok(())
    }

    /// The error for a unit of which not even one output row fits: names the
    /// binding that is too large.
    fn impossible(&self, unit: u32) -> Error {
        let s = self.s;
        let u = u64::from;
        let max = self.budget.binding;
        let worst_row = (0..s.h_out)
            .map(|oh| {
                let (lo, hi) = self.input_rows(oh, oh + 1);
                hi - lo
            })
            .max()
            .unwrap_or(1);
        let ((ci0, ci1), (co0, co1)) = self.channels((unit, unit + 1));
        let input = (ci1 - ci0) * worst_row * u(s.w_in) * 4;
        let output = (co1 - co0) * u(s.w_out) * 4;
        let weight = self.map.weight_unit * self.map.weight_elem;
        let (what, size) = if u(s.w_in) * 4 > max {
            ("one input row", u(s.w_in) * 4)
        } else if input > max {
            (
                "the input rows one output row of one channel unit reads",
                input,
            )
        } else if output > max {
            ("one output row of one channel unit", output)
        } else {
            ("the weight of one output-channel unit", weight)
        };
        Error::ExceedsLimit { what, size, max }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b).max(1) * b
}

impl Schedule {
    /// Plans every dispatch of `plan` on `shape` within `budget`.
    ///
    /// What the host guarantees, chunk by chunk (the basis of running the
    /// kernels without runtime bounds checks):
    /// - the grid is `[ceil((x_end − x0)/items_per_group), y1 − y0, n1 − n0]`
    ///   with `x0 = oh0·ipr`, `x_end = oh1·ipr` (`conv2d_shared`: `ipr = w_out`
    ///   items are output pixels, `BM` per workgroup): an invocation that
    ///   passes the shader's `lw.z < grid_z` and `item < x_end` (`m < x_end`) tests has
    ///   `oh ∈ [oh0, oh1)`, unit `y ∈ [y0, y1)`, image `n ∈ [n0, n1)`;
    /// - the input window holds, for those images, every channel of the
    ///   units' groups and every row in [`Planner::input_rows`] — the hull of
    ///   `ih` over those output rows and all kernel rows, clipped to
    ///   `[0, h_in)`, which is exactly where the kernels' `0 ≤ ih < h_in` test
    ///   lets a load through; columns are clamped into `[0, w_in)` in the
    ///   shader, so each load stays inside its row;
    /// - the output window holds every `(co, oh, ow)` with `co` in the units'
    ///   channels, `oh ∈ [oh0, oh1)`, `ow < w_out` (the shaders test
    ///   `co_local < c_out/groups` and `ow < w_out` before storing);
    /// - the weight window holds the units' whole weight blocks, which the
    ///   specialisation constants index exactly (`K_W = k_w`, `COB4` of the
    ///   layout; for `conv2d_shared` also `K_H = k_h` and `16·TN` = the
    ///   block's channels: checked in `GridMap::of`, with the weight buffer's
    ///   size);
    /// - every spatial quantity is below [`MAX_SPATIAL`], so no `i32`
    ///   conversion or sum in the shaders wraps.
    ///
    /// # Errors
    /// [`Error::ExceedsLimit`] when not even one output row of one channel
    /// unit fits (for example, one input row larger than a binding), or a
    /// spatial extent is beyond the shaders' `i32` arithmetic;
    /// [`Error::Internal`] when the plan breaks an invariant above.
    pub(crate) fn build(
        shape: &Conv2dShape,
        plan: &Plan,
        base: ConvUniforms,
        weight_bytes: u64,
        budget: Budget,
    ) -> Result<Self> {
        if budget.binding < 4 || !budget.align.is_power_of_two() {
            return Err(internal("storage binding limits", 4, budget.binding));
        }
        let budget = Budget {
            binding: budget.binding - budget.binding % 4,
            ..budget
        };
        check_spatial(shape, plan)?;
        if base.tap_step_h == 0 {
            return Err(internal("tap step", 1, 0));
        }
        let map = GridMap::of(shape, plan, weight_bytes)?;
        let segments = map.segments(shape, budget)?;
        if segments.len() > 1 {
            // Only a kernel compiled with the partial-sum reload runs segments.
            spec_is(plan, "SEGS", 1)?;
        }
        // Segment after segment: each output region sees its segments in order.
        let mut level = ChunkLevel::Whole;
        let mut chunks = Vec::new();
        for &ci in &segments {
            let planner = Planner {
                s: shape,
                map,
                budget,
                base,
                stage: true,
                ci,
            };
            let (l, c) = planner.build()?;
            level = l;
            chunks.extend(c);
        }
        let scratch = |f: fn(&Chunk) -> Window| {
            chunks
                .iter()
                .map(f)
                .filter(|w| matches!(w, Window::Staged { .. }))
                .map(|w| w.size())
                .max()
                .unwrap_or(0)
        };
        Ok(Self {
            input_scratch: scratch(|c| c.input),
            output_scratch: scratch(|c| c.output),
            chunks,
            level,
            segments: segments.len(),
            uniform_weight: map.uniform_weight.is_some(),
        })
    }

    /// The public summary.
    pub(crate) fn report(&self) -> Chunking {
        let count = |f: fn(&Chunk) -> bool| self.chunks.iter().filter(|c| f(c)).count();
        Chunking {
            level: self.level,
            chunks: self.chunks.len(),
            staged_inputs: count(|c| matches!(c.input, Window::Staged { .. })),
            staged_outputs: count(|c| matches!(c.output, Window::Staged { .. })),
            folded: count(|c| {
                [c.uniforms.grid_x, c.uniforms.grid_y, c.uniforms.grid_z] != c.dispatch
            }),
            largest_binding: self
                .chunks
                .iter()
                .flat_map(|c| {
                    let w = if self.uniform_weight { 0 } else { c.weight.1 };
                    [c.input.size(), c.output.size(), w]
                })
                .max()
                .unwrap_or(0),
            segments: self.segments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Activation, Conv2dParams, ConvTranspose2dParams, Padding};
    use crate::plan::{self, AdapterProfile, LayerSig};

    fn cpu() -> AdapterProfile {
        AdapterProfile::new(
            wgpu::DeviceType::Cpu,
            wgpu::Backend::Vulkan,
            &wgpu::Limits::default(),
        )
    }

    #[test]
    fn folding_enumerates_the_logical_grid_once() {
        for (grid, max) in [
            ([7, 3, 2], 4),
            ([70, 1, 1], 8),
            ([1, 1, 50], 7),
            ([5, 9, 1], 5),
            ([3, 3, 3], 3),
            ([17, 2, 3], 1000),
        ] {
            let d = fold(grid, max).unwrap();
            assert!(d.iter().all(|&v| v <= max), "{grid:?} -> {d:?}");
            let mut seen = std::collections::HashSet::new();
            for z in 0..d[2] {
                for y in 0..d[1] {
                    for x in 0..d[0] {
                        let l = logical_wid([x, y, z], d, grid);
                        if l[2] < grid[2] {
                            assert!(l[0] < grid[0] && l[1] < grid[1]);
                            assert!(seen.insert(l), "{l:?} twice");
                        }
                    }
                }
            }
            assert_eq!(seen.len() as u32, grid[0] * grid[1] * grid[2]);
        }
        assert!(matches!(
            fold([10, 10, 10], 2),
            Err(Error::ExceedsLimit { .. })
        ));
    }

    /// Every index the kernels can form, enumerated per chunk (the index
    /// math of the shaders, written out), must lie inside its window; every
    /// output must be covered by exactly one chunk.
    /// [`check_schedule_on`] a CPU adapter whose storage bindings are
    /// `budget`'s (as an engine's profile and budget come from the same limits).
    fn check_schedule(shape: &Conv2dShape, force: Option<Kernel>, budget: Budget) -> Schedule {
        let profile = AdapterProfile {
            max_storage_binding: budget.binding,
            ..cpu()
        };
        check_schedule_on(shape, force, budget, &profile)
    }

    /// [`check_schedule`] planned for `profile`; also checks that every
    /// output sees the reduction segments in order, from channel 0 to
    /// `c_in/groups`, with the right `ACC_IN` / `FINAL` flags.
    fn check_schedule_on(
        shape: &Conv2dShape,
        force: Option<Kernel>,
        budget: Budget,
        profile: &AdapterProfile,
    ) -> Schedule {
        let plan = plan::plan(shape, Activation::None, profile, force);
        let shape = &plan.exec_shape(shape);
        let sig = LayerSig::of(shape);
        let weight_bytes = {
            let w = vec![0f32; shape.weight_len()];
            plan::repack_weight(&w, &sig, plan.layout).len() as u64 * 4
                + plan::weight_padding(&sig, profile, force, plan.layout)
        };
        let base = ConvUniforms::new(shape, Activation::None, &plan);
        let sched = Schedule::build(shape, &plan, base, weight_bytes, budget).unwrap();
        let map = GridMap::of(shape, &plan, weight_bytes).unwrap();
        let s = shape;
        let u = u64::from;
        let cpg = s.c_in_per_group();
        let mut covered = vec![0u8; shape.output_len()];
        let mut next_ci = vec![0u32; shape.output_len()];
        for c in &sched.chunks {
            let p = &c.uniforms;
            for size in [c.input.size(), c.output.size()] {
                assert!(size <= budget.binding && size > 0);
            }
            for w in [c.input, c.output] {
                if let Window::Direct { offset, .. } = w {
                    assert_eq!(offset % budget.align, 0);
                }
            }
            match map.uniform_weight {
                Some(uw) => {
                    assert_eq!(c.weight.0 % budget.uniform_align, 0);
                    assert_eq!(c.weight.1, uw.cap * 16);
                    // The window lies inside the padded weight buffer.
                    assert!(c.weight.0 + c.weight.1 <= weight_bytes);
                }
                None => {
                    assert!(c.weight.1 <= budget.binding && c.weight.1 > 0);
                    assert_eq!(c.weight.0 % budget.align, 0);
                }
            }
            assert!(p.ci0 < p.ci1 && p.ci1 <= cpg);
            // Whole steps of the kernel's reduction loop.
            assert_eq!(p.ci0 % map.channel_step, 0);
            assert_eq!(p.ci1 % map.channel_step, 0);
            assert_eq!(p.flags & ACC_IN != 0, p.ci0 > 0);
            assert_eq!(p.flags & FINAL != 0, p.ci1 == cpg);
            let in_len = c.input.size() / 4;
            let out_len = c.output.size() / 4;
            let w_len = c.weight.1 / map.weight_elem;
            assert_eq!(p.x0 % map.items_per_row, 0);
            assert_eq!(p.x_end % map.items_per_row, 0);
            let (t0, t1) = (p.x0 / map.items_per_row, p.x_end / map.items_per_row);
            let rpi = map.rows_per_item;
            let (oh0, oh1) = (t0 * rpi, (t1 * rpi).min(s.h_out));
            for n in p.z0..p.z0 + p.grid_z {
                for y in p.y0..p.y0 + p.grid_y {
                    let ((g_lo, g_hi), co_lo, co_hi) = map.unit(s, y);
                    // Weight: the unit's block, for the segment's input channels.
                    let per_ci = map.weight_unit / u(cpg);
                    let w0 = u(y) * map.weight_unit + u(p.ci0) * per_ci - u(p.w_base);
                    assert!(w0 + u(p.ci1 - p.ci0) * per_ci <= w_len);
                    for co in co_lo..co_hi {
                        // The unit's groups hold every channel's inputs.
                        let g = co / u(s.c_out_per_group());
                        assert!(u(g_lo) <= g && g < u(g_hi), "{s:?}: unit {y}, channel {co}");
                    }
                    for oh in oh0..oh1 {
                        for co in co_lo..co_hi {
                            for ow in 0..u(s.w_out) {
                                let o = (u(n) * u(s.c_out) + co) * u(p.out_cstride)
                                    + u(oh) * u(s.w_out)
                                    + ow;
                                assert!(o >= u(p.out_base) && o - u(p.out_base) < out_len);
                                let flat = ((u(n) * u(s.c_out) + co) * u(s.h_out) + u(oh))
                                    * u(s.w_out)
                                    + ow;
                                covered[flat as usize] += 1;
                                assert_eq!(next_ci[flat as usize], p.ci0, "{s:?}");
                                next_ci[flat as usize] = p.ci1;
                            }
                        }
                        let cpg = s.c_in_per_group();
                        for ci in g_lo * cpg..g_hi * cpg {
                            for kh in 0..s.k_h {
                                let ih = match s.kind {
                                    ConvKind::Forward => {
                                        i64::from(oh * s.stride_h) - i64::from(s.padding.top)
                                            + i64::from(kh * s.dil_h)
                                    }
                                    ConvKind::Transposed => {
                                        let t =
                                            i64::from(oh + s.padding.top) - i64::from(kh * s.dil_h);
                                        if t < 0 || t % i64::from(s.stride_h) != 0 {
                                            continue;
                                        }
                                        t / i64::from(s.stride_h)
                                    }
                                };
                                if ih < 0 || ih >= i64::from(s.h_in) {
                                    continue;
                                }
                                let row = (u(n) * u(s.c_in) + u(ci)) * u(p.in_cstride)
                                    + ih as u64 * u(s.w_in);
                                // Columns are clamped into [0, w_in − 1].
                                assert!(row >= u(p.in_base), "{s:?} {p:?}");
                                assert!(row - u(p.in_base) + u(s.w_in) <= in_len, "{s:?}");
                            }
                        }
                    }
                }
            }
        }
        assert!(
            covered.iter().all(|&c| usize::from(c) == sched.segments),
            "{shape:?}"
        );
        assert!(next_ci.iter().all(|&c| c == cpg), "{shape:?}");
        sched
    }

    fn fwd(input: [usize; 4], weight: [usize; 4], p: Conv2dParams) -> Conv2dShape {
        Conv2dShape::conv2d(input, weight, None, &p).unwrap()
    }

    #[test]
    fn every_level_covers_every_output_inside_its_windows() {
        let small = |binding| Budget {
            binding,
            align: 256,
            uniform_align: 256,
            max_groups: 65535,
        };
        let pad1 = Conv2dParams::default().padding(Padding::uniform(1));
        // Whole.
        let s = fwd([1, 3, 8, 8], [4, 3, 3, 3], pad1);
        assert_eq!(
            check_schedule(&s, None, small(1 << 20)).level,
            ChunkLevel::Whole
        );
        // Whole, depthwise with multiplier 3: units of 64 channels (CB), each spanning
        // groups, that every output and every input row a unit reads lie in.
        let s = fwd([2, 64, 9, 7], [192, 1, 3, 3], pad1.groups(64));
        let sc = check_schedule(&s, None, small(1 << 20));
        assert_eq!(sc.level, ChunkLevel::Whole);
        assert_eq!(sc.chunks[0].uniforms.grid_y, 3);
        // Batch: 5 images of 3·13·7 floats, unaligned starts.
        let s = fwd([5, 3, 13, 7], [4, 3, 3, 3], pad1);
        let sc = check_schedule(&s, None, small(4096));
        assert_eq!(sc.level, ChunkLevel::Batch);
        assert!(sc.chunks.len() > 1);
        // Channels: depthwise with multiplier, grouped, and the weight alone too big.
        let s = fwd([1, 8, 20, 20], [16, 1, 3, 3], pad1.groups(8));
        let sc = check_schedule(&s, None, small(4096));
        assert_eq!(sc.level, ChunkLevel::Channels);
        let s = fwd([1, 8, 12, 12], [12, 2, 3, 3], pad1.groups(4));
        assert_eq!(
            check_schedule(&s, None, small(4096)).level,
            ChunkLevel::Channels
        );
        let s = fwd([1, 64, 2, 2], [64, 64, 3, 3], pad1);
        assert_eq!(
            check_schedule(&s, None, small(40 << 10)).level,
            ChunkLevel::Channels
        );
        // Rows: dense (staged input), depthwise (direct windows), transposed, strided, dilated.
        let s = fwd([2, 6, 30, 17], [20, 6, 3, 3], pad1);
        let sc = check_schedule(&s, None, small(4096));
        assert_eq!(sc.level, ChunkLevel::Rows);
        assert!(sc.input_scratch > 0);
        let s = fwd([1, 2, 60, 40], [2, 1, 3, 5], pad1.groups(2));
        assert_eq!(
            check_schedule(&s, None, small(2048)).level,
            ChunkLevel::Rows
        );
        let s = fwd(
            [1, 4, 41, 23],
            [8, 4, 3, 3],
            Conv2dParams::default()
                .stride(2, 3)
                .dilation(2, 1)
                .padding(Padding::new(3, 0, 1, 2)),
        );
        for k in [None, Some(Kernel::Conv2dDirect)] {
            assert_eq!(check_schedule(&s, k, small(2048)).level, ChunkLevel::Rows);
        }
        let mut levels = Vec::new();
        for (stride, pad, dil) in [(2, 1, 1), (3, 0, 2), (1, 2, 1)] {
            let t = Conv2dShape::conv_transpose2d(
                [2, 6, 15, 11],
                [6, 5, 4, 3],
                None,
                &ConvTranspose2dParams::default()
                    .stride(stride, stride)
                    .padding(Padding::uniform(pad))
                    .dilation(dil, 1),
            )
            .unwrap();
            for binding in [3072, 4096, 16 << 10] {
                levels.push(check_schedule(&t, None, small(binding)).level);
            }
        }
        assert!(levels.contains(&ChunkLevel::Rows) && levels.contains(&ChunkLevel::Batch));
        // Folding never changes coverage.
        let s = fwd([3, 5, 9, 9], [7, 5, 3, 3], pad1);
        let sc = check_schedule(
            &s,
            Some(Kernel::Conv2dDirect),
            Budget {
                binding: 1 << 20,
                align: 256,
                uniform_align: 256,
                max_groups: 4,
            },
        );
        assert!(sc.report().folded > 0);
    }

    #[test]
    fn shared_kernel_chunks_at_every_level() {
        let small = |binding| Budget {
            binding,
            align: 256,
            uniform_align: 256,
            max_groups: 65535,
        };
        let shared = Some(Kernel::Conv2dShared);
        let pad1 = Conv2dParams::default().padding(Padding::uniform(1));
        let mut levels = Vec::new();
        for (s, binding) in [
            (fwd([1, 3, 8, 8], [20, 3, 3, 3], pad1), 1 << 20),
            (fwd([5, 3, 13, 7], [20, 3, 3, 3], pad1), 8192),
            (fwd([1, 64, 2, 2], [100, 64, 3, 3], pad1), 160 << 10),
            (fwd([1, 8, 12, 12], [40, 2, 3, 3], pad1.groups(4)), 4096),
            (fwd([2, 6, 30, 17], [20, 6, 3, 3], pad1), 8192),
            (
                fwd([1, 16, 40, 50], [70, 16, 1, 1], Conv2dParams::default()),
                16 << 10,
            ),
            (
                fwd(
                    [1, 4, 41, 23],
                    [24, 4, 3, 3],
                    Conv2dParams::default()
                        .stride(2, 3)
                        .dilation(2, 1)
                        .padding(Padding::new(3, 0, 1, 2)),
                ),
                8192,
            ),
        ] {
            let plan = plan::plan(&s, Activation::None, &cpu(), shared);
            assert_eq!(plan.key.kernel, Kernel::Conv2dShared);
            levels.push(check_schedule(&s, shared, small(binding)).level);
        }
        for level in [
            ChunkLevel::Whole,
            ChunkLevel::Batch,
            ChunkLevel::Channels,
            ChunkLevel::Rows,
        ] {
            assert!(levels.contains(&level), "{level:?} not reached: {levels:?}");
        }
        // Folding: 2 pixel tiles x 2 channel blocks x 4 images, at most 3 per dimension.
        let s = fwd([4, 5, 9, 9], [70, 5, 3, 3], pad1);
        let sc = check_schedule(
            &s,
            shared,
            Budget {
                binding: 1 << 20,
                align: 256,
                uniform_align: 256,
                max_groups: 3,
            },
        );
        assert!(sc.report().folded > 0);
    }

    #[test]
    fn reduction_segments_cover_every_channel_in_order() {
        // A 1 KiB uniform limit: 64-vec4 windows, so blocks of a 3×3 layer with
        // 40 input channels are summed in segments of at most 2 channels
        // (weights in uniform windows: no texture copies of them).
        let small_uniform = AdapterProfile {
            max_uniform_binding: 1024,
            ..cpu().with_texture_inputs(false)
        };
        let budget = |binding| Budget {
            binding,
            align: 256,
            uniform_align: 256,
            max_groups: 65535,
        };
        let pad1 = Conv2dParams::default().padding(Padding::uniform(1));
        let s = fwd([1, 40, 9, 11], [8, 40, 3, 3], pad1);
        let sc = check_schedule_on(&s, None, budget(1 << 20), &small_uniform);
        assert_eq!(sc.segments, 20);
        assert_eq!(sc.report().segments, 20);
        // Several images: units over every image, not one image at a time.
        let s = fwd([3, 40, 9, 11], [24, 40, 3, 3], pad1);
        let sc = check_schedule_on(&s, None, budget(1 << 20), &small_uniform);
        assert_eq!(sc.level, ChunkLevel::Units);
        assert!(sc.chunks.iter().all(|c| c.uniforms.grid_z == 3));
        // Grouped, and with row bands (staged windows) on a small storage binding.
        let s = fwd([2, 40, 20, 24], [8, 20, 3, 3], pad1.groups(2));
        let sc = check_schedule_on(&s, None, budget(6 << 10), &small_uniform);
        assert!(sc.segments > 1);
        assert_eq!(sc.level, ChunkLevel::Rows);
        // The default limits keep the same layers in one segment.
        let s = fwd([1, 40, 9, 11], [8, 40, 3, 3], pad1);
        assert_eq!(check_schedule(&s, None, budget(1 << 20)).segments, 1);
        // Pointwise with 2 channels per step (CU 2): a 64-vec4 window less 15 vec4s of
        // alignment slack holds 3 steps of a 32-channel block (2 channels of 8 vec4s), so
        // 40 channels (20 steps) run in 7 segments of whole steps.
        let s = fwd([1, 40, 5, 8], [32, 40, 1, 1], Conv2dParams::default());
        let plan = plan::plan(&s, Activation::None, &small_uniform, None);
        assert!(plan.key.consts.contains(&("CU", 2)), "{}", plan.key);
        let sc = check_schedule_on(&s, None, budget(1 << 20), &small_uniform);
        assert_eq!(sc.segments, 7);
    }

    #[test]
    fn impossible_chunks_are_typed_errors() {
        // One input row of 2000 floats against a 4 KiB binding.
        let s = fwd([1, 1, 3, 2000], [1, 1, 1, 1], Conv2dParams::default());
        // Planned for that binding (a larger one would plan the planes as single rows).
        let profile = AdapterProfile {
            max_storage_binding: 4096,
            ..cpu()
        };
        let plan = plan::plan(&s, Activation::None, &profile, None);
        assert!(!plan.flat);
        let base = ConvUniforms::new(&s, Activation::None, &plan);
        let sig = LayerSig::of(&s);
        let packed = plan::repack_weight(&[1.0], &sig, plan.layout).len() as u64;
        let err = Schedule::build(
            &s,
            &plan,
            base,
            packed * 4 + plan::weight_padding(&sig, &cpu(), None, plan.layout),
            Budget {
                binding: 4096,
                align: 256,
                uniform_align: 256,
                max_groups: 65535,
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ExceedsLimit {
                    what: "one input row",
                    size: 8000,
                    max: 4096
                }
            ),
            "{err}"
        );
        // Padding beyond the shaders' i32 arithmetic.
        let s = fwd(
            [1, 1, 1, 1],
            [1, 1, 1, 1],
            Conv2dParams::default()
                .stride(1, 1 << 30)
                .padding(Padding::new(0, 1 << 30, 0, 0)),
        );
        let plan = plan::plan(&s, Activation::None, &cpu(), None);
        let base = ConvUniforms::new(&s, Activation::None, &plan);
        let budget = Budget {
            binding: 1 << 20,
            align: 256,
            uniform_align: 256,
            max_groups: 65535,
        };
        let err = Schedule::build(&s, &plan, base, 64, budget).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ExceedsLimit {
                    max: MAX_SPATIAL,
                    ..
                }
            ),
            "{err}"
        );
    }
}
