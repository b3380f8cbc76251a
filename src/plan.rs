//! The planner: from a resolved shape (and the adapter) to the kernel that
//! runs it. New kernels are added here without touching the public API.
//!
//! Planning has two stages because weights are repacked once, when a layer
//! is created, before any input (and so any output size) is known:
//! [`weight_layout`] depends only on what the weight and parameters fix;
//! [`plan`] adds the choices that depend on the output size. [`plan`] always
//! agrees with [`weight_layout`] for the same layer.

use crate::geometry::{
    Activation, Conv2dShape, ConvKind, Pool2dShape, PoolMode, UpsampleConv2dShape, UpsampleShape,
};
use crate::pipelines::{Kernel, KernelKey};

/// What the planner knows of the adapter.
#[derive(Debug, Clone)]
pub struct AdapterProfile {
    /// Device type (lavapipe and llvmpipe report `Cpu`).
    pub device_type: wgpu::DeviceType,
    /// Backend.
    pub backend: wgpu::Backend,
    /// `max_compute_workgroup_storage_size`: bytes of workgroup memory per
    /// workgroup.
    pub max_workgroup_storage: u32,
    /// The smaller of `max_compute_invocations_per_workgroup` and
    /// `max_compute_workgroup_size_x`: the largest 1-D workgroup.
    pub max_invocations: u32,
    /// `max_uniform_buffer_binding_size`, bytes: bounds the weight window of
    /// `conv2d_tiled` (see [`tiled_weight_cap`]).
    pub max_uniform_binding: u64,
    /// `min_uniform_buffer_offset_alignment`, bytes: where those windows may
    /// start.
    pub uniform_align: u32,
    /// `min_storage_buffer_offset_alignment`, bytes: where storage windows
    /// may start (vec4 input loads need 16-byte aligned windows).
    pub storage_align: u32,
    /// The subgroup size, where the device has subgroup operations enabled
    /// and runs every subgroup at one size (lavapipe: 8); `None` elsewhere.
    /// See [`subgroup_weights`].
    pub subgroup_size: Option<u32>,
    /// `max_texture_dimension_2d`: bounds the input textures (see
    /// [`texture_input`]).
    pub max_texture_2d: u32,
    /// `max_storage_buffer_binding_size`, bytes.
    pub max_storage_binding: u64,
    /// Whether the engine allows texture inputs (see
    /// [`crate::EngineOptions::texture_inputs`]).
    pub texture_inputs: bool,
}

impl AdapterProfile {
    /// The profile of an adapter with its limits (the engine's device is
    /// created with the adapter's limits).
    pub fn from_info(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> Self {
        Self::new(info.device_type, info.backend, limits)
    }

    /// A profile from a device type, a backend and limits (to plan for an
    /// adapter that is not present; `wgpu::Limits::default()` are the limits
    /// WebGPU guarantees).
    pub fn new(
        device_type: wgpu::DeviceType,
        backend: wgpu::Backend,
        limits: &wgpu::Limits,
    ) -> Self {
        Self {
            device_type,
            backend,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations: limits
                .max_compute_invocations_per_workgroup
                .min(limits.max_compute_workgroup_size_x),
            max_uniform_binding: limits.max_uniform_buffer_binding_size,
            uniform_align: limits.min_uniform_buffer_offset_alignment,
            storage_align: limits.min_storage_buffer_offset_alignment,
            subgroup_size: None,
            max_texture_2d: limits.max_texture_dimension_2d,
            max_storage_binding: limits.max_storage_buffer_binding_size,
            texture_inputs: true,
        }
    }

    /// This profile with texture inputs allowed or not (see
    /// [`AdapterProfile::texture_inputs`]).
    pub fn with_texture_inputs(self, on: bool) -> Self {
        Self {
            texture_inputs: on,
            ..self
        }
    }

    /// This profile with subgroups of `size` invocations (see
    /// [`AdapterProfile::subgroup_size`]).
    pub fn with_subgroup_size(self, size: Option<u32>) -> Self {
        Self {
            subgroup_size: size,
            ..self
        }
    }

    /// A real GPU (discrete or integrated), where workgroup-memory tiling
    /// with barriers is the fast design; see [`weight_layout`].
    pub fn is_gpu(&self) -> bool {
        matches!(
            self.device_type,
            wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu
        )
    }

    /// Whether the adapter can run `conv2d_shared` (its largest tile).
    pub fn fits_shared(&self) -> bool {
        self.max_workgroup_storage >= SHARED_MAX_STORAGE && self.max_invocations >= SHARED_WORKGROUP
    }
}

/// What a layer's plan optimises ([`crate::LayerOptions::goal`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Goal {
    /// The fastest launches once the kernels are compiled, for a layer that
    /// runs many times: the planner's (or the autotuner's) kernels, forms
    /// and tiles. The default.
    #[default]
    Throughput,
    /// The least time to the first result in a new process, compilation
    /// included, for a layer that runs once (`wgconv conv2d`): no Winograd
    /// or sub-pixel form (each adds pipelines to compile), no autotuning,
    /// and on CPU adapters a compact tile for layers of up to
    /// [`FIRST_RESULT_MAX_FLOPS`] ([`first_result_tile`]).
    FirstResult,
}

/// The most FLOPs a [`Goal::FirstResult`] layer runs with the compact tile
/// of [`first_result_tile`]; larger ones take the planner's tile, whose
/// faster run repays its longer compile. Measured on lavapipe (`wgconv
/// bench --goal G --runs 9`, the two goals alternated twice, medians): the
/// compact tile took 6–24 ms more per GFLOP (tconv4 6, r3x3 7, b8 12
/// against its Winograd form, ctx8 16, aspp12 17, pw 24), and the first
/// result with an empty shader cache came 0.1–0.5 s sooner (aspp12 0.1,
/// pw 0.17, r3x3 0.24, tconv4 0.27, b8 0.5), so it stays ahead up to 6–40
/// GFLOP depending on the layer; the bound stays below all of them.
pub const FIRST_RESULT_MAX_FLOPS: u64 = 4_000_000_000;

/// The tile a [`Goal::FirstResult`] layer runs on a CPU adapter where its
/// kernel is `conv2d_tiled` or `conv_transpose2d`: 4 columns (column steps)
/// by 2 vec4s of output channels (fewer where the planner's block is
/// smaller), 32 accumulators against the planner's 128–256. `None`
/// elsewhere: the planner's tile.
///
/// Lavapipe-specific: llvmpipe compiles a kernel when it first dispatches it,
/// and its compile time grows with the tile's accumulators (the Winograd
/// GEMM's module with 2, 4 and 8 pixels of 8 vec4s: 131–144, 175–191 and
/// 257–332 ms, `examples/first_dispatch.rs`). On a GPU the compiler's time
/// is not measured here, so it keeps its tile.
///
/// Measured on lavapipe with Mesa's shader cache off, the time to the first
/// result of each suite layer (`MESA_SHADER_CACHE_DISABLE=true wgconv bench
/// --layer L --runs 1 --warmup 0 --no-check`, the better of 2 runs, ms; for
/// 4 × 2 the better of 2 in each of two sets):
///
/// | layer | planner | 4 px × 4 vec4s | 2 × 4 | 4 × 2 (this) | 2 × 2 | 4 × 1 |
/// |---|---|---|---|---|---|---|
/// | r3x3 | 406 | 248 | 213 | 158–166 | 162 | 126 |
/// | pw | 299 | 186 | 168 | 128–132 | 126 | 103 |
/// | aspp12 | 322 | 313 | 281 | 238–242 | 230 | 225 |
/// | ctx8 | 670 (Winograd) | 349 | 236 | 216–224 | 164 | 178 |
/// | tconv4 | 499 | 359 | 250 | 204–206 | 162 | 164 |
/// | b8 | 649 (Winograd) | 292 | 265 | 194–199 | 234 | 209 |
///
/// The two 16-accumulator tiles are ahead on some of these layers and behind
/// on others, and they run slower on larger inputs, so 4 × 2.
pub fn first_result_tile(
    sig: &LayerSig,
    adapter: &AdapterProfile,
    force: Option<Kernel>,
) -> Option<Tile> {
    if adapter.device_type != wgpu::DeviceType::Cpu {
        return None;
    }
    match weight_layout(sig, adapter, force) {
        (Kernel::Conv2dTiled | Kernel::ConvTranspose2d, WeightLayout::Blocked { cob4 }) => {
            Some(Tile {
                pix: 4,
                ph: 1,
                cob4: Some(cob4.min(2)),
            })
        }
        _ => None,
    }
}

/// Whether a layer runs in Winograd form ([`crate::winograd`]):
/// [`crate::LayerOptions::winograd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Winograd {
    /// Never: the direct kernels.
    Off,
    /// F(2×2, 3×3) where the layer allows it.
    F2,
    /// F(4×4, 3×3) where the layer allows it.
    F4,
}

/// Whether a layer can run in Winograd form at all: a forward 3×3
/// convolution with stride 1, any dilation (run in phases, see
/// [`crate::winograd::TileGrid`]), one group and at least 16 input and
/// output channels (below that the transforms outweigh the GEMMs).
pub fn winograd_eligible(sig: &LayerSig) -> bool {
    sig.kind == ConvKind::Forward
        && (sig.k_h, sig.k_w) == (3, 3)
        && sig.stride == (1, 1)
        && sig.groups == 1
        && sig.c_in_per_group >= 16
        && sig.c_out_per_group >= 16
}

/// Whether the planner's default Winograd form (built by [`winograd_tile`]
/// when no option chose it) runs `shape` on `adapter`, rather than the
/// direct kernels.
///
/// With texture inputs and weights ([`texture_reads`], lavapipe's default),
/// without dilation: with min(c_in, c_out) ≥ 128, at least 36 tiles and tiles ×
/// channels ≥ 6272; with ≥ 64 channels, at least 400 tiles; never below 64.
/// The 36 tiles: layers with ≥ 128 output channels run direct in 32-channel
/// blocks (`few_pixel_wide_blocks`), measured so (`--runs 11–15`, 2
/// alternations, ms direct / F4): 256 at 20×20 (25 tiles) 5.84 / 7.36, 6.07 /
/// 7.19; 512 at 20×20 24.5 / 23.8, 23.2 / 23.4; 256 at 24×24 (36 tiles) 8.34 /
/// 7.54, 8.70 / 7.73; 128 at 28×28 3.10 / 2.86, 3.09 / 2.95; 512 at 28×28 45.4
/// / 22.9, 42.7 / 24.6; 256 at 16×16 3.63 / 6.07, 3.65 / 6.56. With the
/// 16-channel blocks before them: since `conv2d_tiled` unrolls 3×3 kernels'
/// rows ([`unrolled_rows`]) the
/// direct form is about 1.45× faster than before and wins on small images and
/// few channels. Measured on the current host (`wgconv bench --shape N,C,HW,HW
/// --kernel C,C,3,3 --padding 1 --winograd off|f4 --runs 9`, medians of 3
/// alternated processes, ms direct / F4): 32 at 56×56 0.92 / 1.35, 32 at
/// 112×112 3.64 / 4.01; 64 at 56×56 2.82 / 2.94, 2 images 5.19 / 5.23, 4 images
/// of 28×28 3.01 / 3.05, 64 at 80×80 5.69 / 5.08, 112×112 12.2 / 9.21; 128 at
/// 14×14 1.11 / 1.88, 20×20 1.72 / 2.08, 28×28 2.86 / 2.30, 8 images 21.7 /
/// 13.9; 256 at 14×14 3.97 / 5.41, 20×20 6.12 / 6.04, 28×28 10.7 / 6.35; 512 at
/// 14×14 15.0 / 17.5, 20×20 23.7 / 18.5, 28×28 41.8 / 19.2. With dilation the
/// direct kernel takes 32 channels in tiles of at most 4 phase-spaced pixels
/// (`few_pixel_wide_blocks`), and Winograd needs at least 16 tiles, tiles ×
/// min(c_in, c_out) ≥ 2048 and: ≥ 64 channels where the transforms run in lane
/// order (`DIL = 2`, see [`crate::winograd::TileGrid::lanes`]); in scalar
/// phases ≥ 128 channels and at least 3/4 of the tiles' outputs real (aspp12,
/// 33 wide at dilation 12, has 47 %: a tie, and the direct form starts in half
/// the time). Current host, `--shape 1,C,HW,HW --padding D --dilation D
/// --runs 15`, ms direct / F4 (minimums of 2 alternations, the host noisy):
/// lane order at 64×64, C = 21, D = 4 0.62–0.67 / 1.12–1.20; C = 32, D = 4
/// 1.14–1.16 / 1.54–1.70, D = 8 1.31–1.37 / 1.75–1.77; C = 64, D = 4 4.20–4.35 /
/// 3.52–3.54, ctx8 4.33–4.43 / 3.48–3.55; scalar phases, C = 64 at 64×64, D = 2
/// 4.12–4.13 / 4.36–4.38; C = 128 at 32×32, D = 2 3.69–3.84 / 3.04–3.07, at
/// 33×33, D = 6 4.81–4.95 / 6.42–6.59; aspp12 18.31–18.46 / 18.64–18.67; 2048 →
/// 256 at 33×33, D = 6 147–152 / 166–167 (`--runs 5`). Before the wider
/// direct tiles: lane order, C = 21 at 64×64 with D = 4 1.70 / 1.10–1.44,
/// D = 8 1.72–1.74 / 1.07–1.15, ctx8 4.43 / 3.07; scalar phases, D = 2 at 64×64:
/// C = 21 1.61–1.67 / 2.24–2.88, C = 32 1.24–1.32 / 2.05–2.12, C = 64 4.45 /
/// 4.45; C = 64, D = 6 6.52 / 6.20–7.39; C = 128 at 32×32, D = 2 4.13–4.17 /
/// 3.02–3.06, at 33×33, D = 6 5.21–5.26 / 6.59–6.61 (less than half the tiles'
/// outputs real); aspp12 23.7 / 17.5. Measured before the unrolling on the
/// earlier host (ms direct / F4): 64 at 56×56 13.97 / 10.02; 128 at 28×28 16.27
/// / 7.69; 256 at 14×14 33.8 / 19.5; 512 at 7×7 31.5 / 61.2; 512 at 14×14 125.5
/// / 55.2; 256 at 12×12 10.7 / 16.5; 64 at 16×16 1.35 / 1.93; 128 at 14×14 8.43
/// / 5.89; 256 at 28×28 65.5 / 23.6; 64 at 28×28 4.97 / 3.24; 32 at 28×28 1.45
/// / 1.53; 512 at 28×28 223 / 73.3; 256 at 7×7 8.73 / 19.8; 64 at 12×12 1.07 /
/// 2.33.
///
/// Without them (uniform weight windows, storage inputs): at least 9 tiles,
/// and at least 9 per 256² of `c_in·c_out`. Below that its GEMM streams its
/// 4× larger transformed weight (F(4×4, 3×3)) for too few tiles, in many
/// small dispatches: a GEMM chunk holds the channel blocks of one 64 KiB
/// weight window, so at 512 channels each has a single block and, on a 7×7
/// image, a single invocation. Measured on lavapipe before the textures
/// (medians of 5–15, ms direct / F4): 512 channels at 7×7 70.6 / 414, 4
/// images of 7×7 143 / 376, 8 images 292 / 376, 14×14 262 / 355, 28×28 689
/// / 310; 256 channels at 12×12 53 / 42, 14×14 64 / 40; 128 channels at
/// 7×7 5.5 / 14, 2 images of 8×8 6.2 / 11.4, 28×28 30 / 13.5; 64 channels
/// at 4×4 0.88 / 2.5, 8×8 1.5 / 3.0, 12×12 4.2 / 3.3, 16×16 3.9 / 2.5.
///
/// The suite's Winograd layers (ctx8, aspp12, b8; r3x3 too without
/// textures) have 144–392 tiles. With dilation each phase is tiled on its own, so a large
/// dilation on a small image leaves most of a tile's outputs outside the
/// image: at least 3/8 of them must be real. Measured (before the textures;
/// not re-measured since) on DeepLab's ASPP branches (2048 → 256 channels
/// at 33×33, ms direct / F4): dilation 6 (47 % real) 1444 / 1339, dilation
/// 18 (21 % real) 1309 / 2121. The autotuner times both forms whatever this
/// says.
pub fn winograd_pays_off(shape: &Conv2dShape, m: u32, adapter: &AdapterProfile) -> bool {
    // Tiles of m×m outputs along one axis: each dilation phase (every d-th
    // output) tiled on its own.
    let axis = |len: u32, d: u32| -> u64 {
        (0..d.max(1))
            .map(|r| u64::from(len.saturating_sub(r).div_ceil(d.max(1)).div_ceil(m)))
            .sum()
    };
    let tiles =
        u64::from(shape.n) * axis(shape.h_out, shape.dil_h) * axis(shape.w_out, shape.dil_w);
    let outputs = u64::from(shape.n) * u64::from(shape.h_out) * u64::from(shape.w_out);
    // Whether at least `num / den` of the tiles' outputs are real. Tiles mostly
    // past their phase's edge (large dilations on small images) compute little:
    // at least 3/8 must be.
    let real = |num: u64, den: u64| outputs * den >= tiles * u64::from(m * m) * num;
    let covered = real(3, 8);
    let channels = u64::from(shape.c_in.min(shape.c_out));
    if texture_reads(adapter) {
        let dilated = (shape.dil_h, shape.dil_w) != (1, 1);
        let lanes = winograd_lanes(shape, m, adapter);
        covered
            && if dilated {
                tiles >= 16
                    && tiles * channels >= 2048
                    && if lanes {
                        channels >= 64
                    } else {
                        channels >= 128 && real(3, 4)
                    }
            } else {
                (channels >= 128 && tiles >= 36 && tiles * channels >= 6272)
                    || (channels >= 64 && tiles >= 400)
            }
    } else {
        covered
            && tiles >= 9
            && tiles * 256 * 256 >= 9 * u64::from(shape.c_in) * u64::from(shape.c_out)
    }
}

/// The Winograd tile size `m` a layer runs with, or `None` for the direct
/// kernels: `choice` where the layer is eligible; by default (no choice, no
/// forced kernel family) F(4×4, 3×3) on CPU adapters, where it measured
/// faster (see the README), and nothing elsewhere (unmeasured on GPUs).
pub fn winograd_tile(
    sig: &LayerSig,
    adapter: &AdapterProfile,
    force: Option<Kernel>,
    choice: Option<Winograd>,
) -> Option<u32> {
    if !winograd_eligible(sig) {
        return None;
    }
    match choice {
        Some(Winograd::Off) => None,
        Some(Winograd::F2) => Some(2),
        Some(Winograd::F4) => Some(4),
        None if force.is_none() && adapter.device_type == wgpu::DeviceType::Cpu => Some(4),
        None => None,
    }
}

/// Whether a transposed layer runs in sub-pixel form (its `stride_h·stride_w`
/// phases as forward convolutions, see [`crate::ops::sub_pixel`]) where it
/// has one: `choice` if given (the autotuner times both forms), else no.
///
/// It was the default on CPU adapters for layers with at least 16 channels
/// in and out per group and a kernel a multiple of the stride: on the
/// earlier host tconv4 (4×4, stride 2) went 57.6 → 44.3 ms with the phases
/// on `conv2d_tiled`, for a first result with an empty shader cache of 1.2 s
/// against 0.92 (tconv3, 3×3, gained only 36.9 → 35.4 ms and kept the
/// gather). Since the gather unrolls its taps ([`unrolled_taps`]) it is as
/// fast or faster, and one kernel to compile instead of two phase
/// specialisations and the scatter. Measured on the current host (medians of
/// 21, 3 alternated processes, ms gather / sub-pixel): tconv4 4.64 / 4.92,
/// 5.05 / 4.98, 4.68 / 4.99, first result 0.30 / 0.50 s; the DCGAN
/// decoder's `up1` (512 → 256 channels on 4×4, `wgconv bench --net decoder
/// --breakdown`) 1.76–2.12 / 2.62–2.75, `up2` and `up3` within noise.
/// `adapter` is unused: kept so that every form choice takes one.
pub fn sub_pixel(sig: &LayerSig, _adapter: &AdapterProfile, choice: Option<bool>) -> bool {
    sig.kind == ConvKind::Transposed && choice.unwrap_or(false)
}

/// Whether the Winograd transforms of `shape` under F(m×m, 3×3) run their
/// dilation phases in lane order (`DIL = 2`, aligned vec4 loads and stores;
/// see [`crate::winograd::TileGrid::lanes`]), which also needs storage
/// bindings that take vec4 windows.
pub fn winograd_lanes(shape: &Conv2dShape, m: u32, adapter: &AdapterProfile) -> bool {
    adapter.storage_align.is_multiple_of(16)
        && crate::winograd::TileGrid::new(
            m,
            shape.n,
            shape.h_out,
            shape.w_out,
            (shape.dil_h, shape.dil_w),
        )
        .lanes(shape.w_in, shape.padding.left, shape.w_out)
}

/// The pipeline keys of a layer `shape` in Winograd form F(m×m, 3×3):
/// `winograd_input`, the GEMM's (a 1×1 convolution with `α²` groups over
/// rows of `row` tiles; its key does not depend on the number of rows) and
/// `winograd_output`.
pub fn winograd_keys(
    shape: &Conv2dShape,
    m: u32,
    activation: Activation,
    adapter: &AdapterProfile,
    row: u32,
) -> [KernelKey; 3] {
    // vec4 loads and stores need quads of neighbouring tiles (the dense grid)
    // or of neighbouring phases (a dilated grid in lane order).
    let dense = (shape.dil_h, shape.dil_w) == (1, 1);
    let lanes = winograd_lanes(shape, m, adapter);
    let aligned = dense && adapter.storage_align.is_multiple_of(16);
    let vin = if lanes {
        Some(0)
    } else {
        (aligned && shape.w_in.is_multiple_of(4)).then_some((4 - shape.padding.left % 4) % 4)
    };
    let vout = lanes || (aligned && shape.w_out.is_multiple_of(4));
    let dil = if lanes { 2 } else { u32::from(!dense) };
    let a2 = (m + 2) * (m + 2);
    let gemm = Conv2dShape::conv2d(
        [1, (a2 * shape.c_in) as usize, 1, row as usize],
        [(a2 * shape.c_out) as usize, shape.c_in as usize, 1, 1],
        None,
        &crate::geometry::Conv2dParams {
            groups: a2,
            ..Default::default()
        },
    )
    .map_or(KernelKey::plain(Kernel::Conv2dDirect), |g| {
        plan(&g, Activation::None, adapter, None).key
    });
    [
        KernelKey {
            kernel: Kernel::WinogradInput,
            consts: vec![
                ("M", m),
                ("VIN", u32::from(vin.is_some())),
                ("VA", vin.unwrap_or(0)),
                (
                    "TIN",
                    texture_read(Kernel::WinogradInput, texture_input(shape, adapter)),
                ),
                ("DIL", dil),
            ],
        },
        gemm,
        KernelKey {
            kernel: Kernel::WinogradOutput,
            consts: vec![
                ("M", m),
                ("VOUT", u32::from(vout)),
                (
                    "TIN",
                    texture_read(Kernel::WinogradOutput, winograd_output_texture(adapter)),
                ),
                ("DIL", dil),
                ("ACT", activation.code()),
            ],
        },
    ]
}

/// How a layer's weights are stored on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightLayout {
    /// The PyTorch layout as given.
    Natural,
    /// `[groups][blocks][c_in/G][k_h][k_w][cob4·4]`, zero-padded per group
    /// to whole blocks of `cob4·4` output channels.
    Blocked {
        /// Output channels per block, in vec4s.
        cob4: u32,
    },
}

/// The structural facts of a layer that fix its weight layout.
#[derive(Debug, Clone, Copy)]
pub struct LayerSig {
    /// Forward or transposed.
    pub kind: ConvKind,
    /// Groups.
    pub groups: u32,
    /// Input channels per group.
    pub c_in_per_group: u32,
    /// Output channels per group.
    pub c_out_per_group: u32,
    /// Kernel height.
    pub k_h: u32,
    /// Kernel width.
    pub k_w: u32,
    /// Stride (h, w).
    pub stride: (u32, u32),
    /// Dilation (h, w).
    pub dilation: (u32, u32),
}

impl LayerSig {
    /// The signature of a resolved shape.
    pub fn of(shape: &Conv2dShape) -> Self {
        Self {
            kind: shape.kind,
            groups: shape.groups,
            c_in_per_group: shape.c_in_per_group(),
            c_out_per_group: shape.c_out_per_group(),
            k_h: shape.k_h,
            k_w: shape.k_w,
            stride: (shape.stride_h, shape.stride_w),
            dilation: (shape.dil_h, shape.dil_w),
        }
    }
}

/// Largest input row segment a register-blocked kernel may hold.
const MAX_SEG: u32 = 64;
/// Pixels per invocation of the register-blocked kernels when the row is wide enough.
const MAX_PIX: u32 = 8;
/// The widest tile the autotuner may try.
const MAX_TUNED_PIX: u32 = 16;
/// Output rows per invocation of the depthwise kernel. A tile of `PH` rows
/// loads `(PH − 1)·S_H + K_H` input rows, so at stride 1 going from 4 to 8
/// rows cuts the loads per output row of a 3×3 kernel from 1.5 to 1.25; at
/// stride 2 only from 2.25 to 2.125. Measured on lavapipe (medians of 6
/// alternated processes, when the kernel was fully unrolled): dw3 2.48 →
/// 2.07 ms with 8 rows, its first result with an empty shader cache 0.26 /
/// 0.32 → 0.45 / 0.46 s; dw3s2 2.41 → 2.32 ms but 0.43 / 0.47 → 0.94 /
/// 1.04 s, so strided layers kept 4. Since the kernel loops over its rows
/// (`codegen::conv2d_depthwise_main`) the tile height no longer costs
/// compile time, and strided layers take 8 too: dw3s2 3.28 → 2.64 ms
/// (medians of 5 alternated processes, `--runs 100`), its first result
/// 0.29–0.40 → 0.38–0.40 s (3 each); MobileNetV2 108.7 / 107.6 ms (5
/// each, unchanged). 16 rows (at first only where the plane kept
/// [`DEPTHWISE_MIN_TILES`] of them; on CPU adapters everywhere since
/// [`depthwise_channels`]), `wgconv bench --shape … --groups C`, medians of
/// alternated processes, ms:
///
/// | layer | 8 rows | 16 rows |
/// |---|---|---|
/// | 3×3 on 32×112² (6 × `--runs 60`) | 2.06 | 1.85 |
/// | 3×3 on 64×224² (3 × `--runs 30`) | 17.1 | 14.6 |
/// | 5×5 on 32×112² (3 × `--runs 30`) | 2.83 | 2.66 |
/// | 7×7 on 96×112² (4 × `--runs 20`) | 13.9 | 10.9 |
/// | 11×11 on 16×64², 4 pixels (4 × `--runs 30`) | 2.43 | 1.59 |
const MAX_PH: u32 = 16;
/// Unrolled multiply-adds per row of a depthwise tile, `PIX · K_H · K_W`
/// (bounds code size and compile time; `codegen::conv2d_depthwise_main`
/// loops over the tile's rows). 8 pixels of a 7×7 kernel fit. When the
/// kernel was fully unrolled this bounded the whole tile, `PH · PIX · K_H ·
/// K_W` (8 rows of 8 pixels of a 3×3 kernel), which left 5×5 kernels 2 rows
/// and 7×7 kernels 1. Bounding a row instead, measured on lavapipe (`wgconv
/// bench --shape … --groups C`, medians of 3 alternated processes of
/// `--runs 30`, then of 4 of `--runs 60` for the 28² planes): 7×7 on 96×56²
/// 15.6 → 3.9 ms (8×1 → 8×8 tiles), 5×5 on 32×112² 7.0 → 4.0 ms (8×2 →
/// 8×8), 5×5 on 240×28² 3.65 → 3.37 ms and 5×5 stride 2 on 144×56² 2.85 →
/// 2.67 ms (8×2 → 4×4, [`DEPTHWISE_MIN_TILES`]); the `first conv`
/// of the cold-start line with Mesa's shader cache off 0.33–0.63 s against
/// 0.43–0.68 s. 3×3 layers are unchanged.
const MAX_DEPTHWISE_FMAS: u32 = 576;

/// Output channels per unit of the depthwise grid (`CB`): the largest
/// divisor of `c_out` up to a workgroup's invocations. A workgroup's
/// invocations take consecutive tile columns of CB channels, then the next
/// tile row, so a plane of few tiles still fills a workgroup with other
/// channels' tiles. 1 (a unit per channel) where the input or the output
/// exceeds one storage binding: `chunk` then splits by channels as well as
/// rows, and a row band across many channels would not fit a window.
///
/// With a workgroup per channel (CB = 1), a plane of few tiles left most of
/// a workgroup's lanes idle, and on lavapipe each workgroup costs a few µs
/// whatever it does, so small planes took small tiles
/// ([`DEPTHWISE_MIN_TILES`]: 1×1 on 7², 2×2 on 14²) and still ran at
/// 0.2 GFLOP/s. With channels filling the workgroups, CPU adapters keep
/// full 8 × 16 tiles (8 × 8 on 7² planes). Measured on lavapipe, `wgconv
/// bench --shape 1,C,H,H --kernel C,1,3,3 --padding 1 --groups C`, medians
/// of 3 alternated processes of `--runs 60` (4 of `--runs 100` for dw3 and
/// dw3s2, 4 of `--runs 8` for MobileNetV2), ms:
///
/// | layer | a channel a workgroup | CB channels |
/// |---|---|---|
/// | 960×7² | 4.14 (1×1) | 0.51 (8×8) |
/// | 576×14² | 2.98 (2×2) | 0.93 (8×16) |
/// | 192×28² | 1.16 (4×4) | 1.12 (8×16) |
/// | 32×112² | 1.59 | 1.47 |
/// | dw3 (144×56²) | 2.28 (8×8) | 1.36 (8×16) |
/// | dw3s2 (96×112², stride 2) | 2.42 (8×8) | 1.50 (8×16) |
/// | MobileNetV2 | 102.2 | 76.6 |
fn depthwise_channels(shape: &Conv2dShape, adapter: &AdapterProfile) -> u32 {
    let fits = |elems: usize| elems as u64 * 4 <= adapter.max_storage_binding;
    if !fits(shape.input_len()) || !fits(shape.output_len()) {
        return 1;
    }
    let c_out = shape.c_out;
    (1..=WORKGROUP.min(c_out))
        .rev()
        .find(|d| c_out.is_multiple_of(*d))
        .unwrap_or(1)
}

/// Tiles of one channel the planner gives a depthwise layer at least on a
/// GPU, where the plane allows: small planes get small tiles, for enough
/// invocations to fill a GPU (not measured here: no GPU). CPU adapters no
/// longer shrink tiles ([`depthwise_channels`]). The rule came from
/// lavapipe when a workgroup took one channel, and llvmpipe ran a channel
/// of few tiles on idle lanes (`wgconv bench --shape
/// 1,C,H,H --kernel C,1,3,3 --padding 1 --groups C --runs 9`, the tile set
/// by a temporary override, medians of 3 processes, ms), the best tile of
/// each plane has 49 tiles a channel:
///
/// | plane, C | 8×8 | 8×4 | 4×4 | 4×2 | 2×2 | 2×1 | 1×1 |
/// |---|---|---|---|---|---|---|---|
/// | 7², 960 | 19.0 | 11.2 | 7.7 | 5.0 | 4.2 | 4.0 | 4.3 |
/// | 14², 384 | 7.6 | 5.1 | 3.6 | 2.7 | 2.5 | 3.9 | 6.9 |
/// | 28², 192 | 2.4 | 1.7 | 1.6 | 2.1 | 4.3 | 6.9 | 11.8 |
/// | 56², 144 | 2.8 | 3.2 | 4.2 | 5.9 | 11.5 | 18.7 | 34.0 |
///
/// (columns: PIX × PH). Halving the larger side from 8×8 until a channel
/// has 32 tiles picks 1×1, 2×2, 4×4 and 8×8 for these: MobileNetV2's
/// small-plane depthwise layers, which the 8×8 tile ran 1.5–4.5× slower.
const DEPTHWISE_MIN_TILES: u32 = 32;

fn seg(pix: u32, s: &LayerSig) -> u32 {
    (pix - 1) * s.stride.1 + (s.k_w - 1) * s.dilation.1 + 1
}

/// Invocations per workgroup of `conv2d_shared` (its `WG`).
pub const SHARED_WORKGROUP: u32 = 256;
/// K step of `conv2d_shared` (its `BK`).
const SHARED_BK: u32 = 16;
/// Outputs per invocation along M or N of `conv2d_shared` at most (its
/// `TM`, `TN`): tiles of up to 64 × 64.
const SHARED_MAX_T: u32 = 4;
/// Workgroup memory of the largest `conv2d_shared` tile:
/// `BK·(BM + BN)` f32s with BM = BN = 64 (8 KiB; WebGPU guarantees 16 KiB).
pub const SHARED_MAX_STORAGE: u32 = SHARED_BK * 2 * 16 * SHARED_MAX_T * 4;
const _: () = assert!(SHARED_MAX_STORAGE <= 16 * 1024, "beyond WebGPU's guarantee");

/// `conv2d_shared`'s outputs per invocation along N (`TN`): the smallest
/// power of two up to 4 whose `16·TN` channels cover the group.
fn shared_tn(s: &LayerSig) -> u32 {
    s.c_out_per_group
        .div_ceil(16)
        .next_power_of_two()
        .min(SHARED_MAX_T)
}

/// Whether a dense, grouped or pointwise layer has enough work per group for
/// `conv2d_shared`'s tiles: at least one full 16-channel N column and one
/// full K step.
fn shared_pays_off(s: &LayerSig) -> bool {
    s.c_out_per_group >= 16 && s.c_in_per_group * s.k_h * s.k_w >= SHARED_BK
}

/// The kernel family for a layer, and its weight layout. `force` overrides
/// the choice (tests use it to keep every family correct).
///
/// The choice between the two implicit-GEMM families is adapter-specific.
/// `conv2d_shared` is the classic GPU GEMM: input and weight tiles staged in
/// workgroup memory, two barriers per K step, 4×4 outputs per invocation —
/// the fast design on discrete and integrated GPUs, whose workgroups run in
/// parallel on hardware with fast on-chip shared memory. On CPU drivers the
/// opposite holds: measured on lavapipe, shared-memory kernels with
/// workgroup barriers run 5–8× slower than the register-blocked,
/// barrier-free `conv2d_tiled` (`conv2d_shared` itself: about 4.4× on the
/// r3x3 suite layer, 2–3× on pw), because llvmpipe runs a workgroup's
/// invocations in 8-wide batches on one thread and every barrier switches
/// between all the batches. So `Cpu` adapters (lavapipe,
/// llvmpipe, WARP) and unknown/virtual ones keep `conv2d_tiled`, and GPUs
/// take `conv2d_shared` for every non-depthwise layer with enough work per
/// group (small groups would leave most of a 16-wide tile column idle).
pub fn weight_layout(
    sig: &LayerSig,
    adapter: &AdapterProfile,
    force: Option<Kernel>,
) -> (Kernel, WeightLayout) {
    let depthwise = sig.c_in_per_group == 1 && sig.groups > 1;
    // Only the forward families run a forward convolution; any other forced kernel is ignored.
    let force = force.filter(|k| Kernel::FORWARD.contains(k));
    let kernel = match force {
        _ if sig.kind == ConvKind::Transposed => Kernel::ConvTranspose2d,
        // An adapter below WebGPU's guaranteed limits cannot run the shared kernel.
        Some(Kernel::Conv2dShared) if !adapter.fits_shared() => Kernel::Conv2dTiled,
        Some(k) => k,
        // A register-blocked kernel whose loads for even one pixel do not fit in
        // registers falls back to the direct kernel.
        None if depthwise && seg(1, sig) <= MAX_SEG => Kernel::Conv2dDepthwise,
        None if adapter.is_gpu() && adapter.fits_shared() && !depthwise && shared_pays_off(sig) => {
            Kernel::Conv2dShared
        }
        None if tiled_loads(1, pixel_spacing(sig), sig) <= MAX_SEG
            && tiled_fits(sig, 1, adapter) =>
        {
            Kernel::Conv2dTiled
        }
        None => Kernel::Conv2dDirect,
    };
    // A forced `conv2d_tiled` whose kernel is too large for one weight window
    // (more than about 4000 taps) runs on the direct kernel.
    let kernel = if kernel == Kernel::Conv2dTiled && !tiled_fits(sig, 1, adapter) {
        Kernel::Conv2dDirect
    } else {
        kernel
    };
    let layout = match kernel {
        Kernel::Conv2dTiled | Kernel::ConvTranspose2d => {
            // 16 output channels per invocation where the group has them; fewer for small groups.
            // Pointwise layers get 32 output channels per invocation: each input load then
            // feeds twice the multiply-adds (measured on lavapipe, pw: about 1.8× faster
            // than 16 in interleaved runs); wider kernels keep 16 to bound registers.
            // Transposed layers on CPU adapters get 32 too: with their taps unrolled
            // (`unrolled_taps`) it measured faster at a first result still well within
            // 0.5 s, where the forward 3×3 layers gained less and compiled longer (current
            // host, 3 alternations of `wgconv bench --runs 15`, ms 16 → 32 channels;
            // first result with Mesa's cache off): tconv4 4.66–4.72 → 4.14–4.25, 0.31 →
            // 0.40 s; tconv3 4.52–4.59 → 3.96–4.03, 0.29 → 0.37 s; r3x3s2 3.19–3.29 →
            // 3.10–3.15, 0.36 → 0.53 s; r3x3 2.77–2.97 → 2.61–2.70, 0.34 → 0.49 s; stem7
            // 3.49–3.60 → 3.40–3.49, 0.34 → 0.45 s (those with 8 pixels). Lavapipe-specific
            // (a GPU would spill such tiles out of its registers); unmeasured on GPUs. With 4
            // pixels, dilated layers and 2–3-row kernels with ≥ 128 channels on CPU adapters
            // take 32 too (`few_pixel_wide_blocks`).
            let wide = match sig.kind {
                ConvKind::Forward => sig.k_h * sig.k_w == 1 || few_pixel_wide_blocks(sig, adapter),
                ConvKind::Transposed => adapter.device_type == wgpu::DeviceType::Cpu,
            };
            let max = if wide { 8 } else { 4 };
            let mut cob4 = sig.c_out_per_group.div_ceil(4).clamp(1, max);
            // One input channel of a block must fit a weight window (large kernels).
            while kernel == Kernel::Conv2dTiled && cob4 > 1 && !tiled_fits(sig, cob4, adapter) {
                cob4 /= 2;
            }
            // A block whose weights exceed one window keeps its width and runs as
            // reduction segments: measured on lavapipe, r3x3s2 53 ms and b8 311 ms with
            // 16 channels in 2 segments against 76 and 421 ms with 8 channels unsplit.
            WeightLayout::Blocked { cob4 }
        }
        // One block per N tile of BN = 16·TN channels: [K][BN] per block.
        Kernel::Conv2dShared => WeightLayout::Blocked {
            cob4: 4 * shared_tn(sig),
        },
        _ => WeightLayout::Natural,
    };
    (kernel, layout)
}

/// The weight layout of a fused upsample + convolution layer
/// ([`Kernel::Conv2dUpsampled`]): blocked like `conv2d_tiled`, 16 output
/// channels per invocation where the group has them.
pub fn upsample_conv2d_layout(sig: &LayerSig) -> WeightLayout {
    WeightLayout::Blocked {
        cob4: sig.c_out_per_group.div_ceil(4).clamp(1, 4),
    }
}

/// Plans a fused upsample + convolution: [`Kernel::Conv2dUpsampled`] with
/// `PIX` pixels per invocation chosen as for `conv2d_tiled` (narrow rows get
/// fewer, and the upsampled row segment fits in registers where it can).
pub fn plan_upsample_conv2d(shape: &UpsampleConv2dShape, _adapter: &AdapterProfile) -> Plan {
    let conv = &shape.conv;
    let sig = LayerSig::of(conv);
    let layout = upsample_conv2d_layout(&sig);
    let cob4 = match layout {
        WeightLayout::Blocked { cob4 } => cob4,
        WeightLayout::Natural => 1,
    };
    let mut pix = MAX_PIX.min(conv.w_out.next_power_of_two());
    while pix > 1 && seg(pix, &sig) > MAX_SEG {
        pix /= 2;
    }
    let blocks_w = conv.w_out.div_ceil(pix);
    let blocks_per_group = conv.c_out_per_group().div_ceil(cob4 * 4);
    Plan {
        key: KernelKey {
            kernel: Kernel::Conv2dUpsampled,
            consts: vec![
                ("PIX", pix),
                ("COB4", cob4),
                ("K_W", conv.k_w),
                ("S_W", conv.stride_w),
                ("D_W", conv.dil_w),
                ("MODE", shape.upsample.mode.code()),
            ],
        },
        layout,
        groups: [
            (conv.h_out * blocks_w).div_ceil(WORKGROUP),
            blocks_per_group * conv.groups,
            conv.n,
        ],
        blocks_w,
        blocks_per_group,
        flat: false,
    }
}

/// Largest workgroup count per dispatch dimension every WebGPU device
/// supports (the default `max_compute_workgroups_per_dimension`).
const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// Plans an upsampling: [`Kernel::Upsample`], one output element per
/// invocation over a flat index folded into a 2-D grid of at most
/// 65 535 workgroups per row. `blocks_w` is the row stride in invocations.
pub fn plan_upsample(shape: &UpsampleShape) -> Plan {
    flat_plan(
        KernelKey {
            kernel: Kernel::Upsample,
            consts: vec![("MODE", shape.mode.code())],
        },
        shape.output_len() as u64,
    )
}

/// A one-item-per-invocation plan over `items` (at most `u32::MAX`, as
/// every validated tensor), in workgroups of [`WORKGROUP`] folded into a 2-D
/// grid of at most 65 535 workgroups per row; `blocks_w` is the row stride
/// in invocations (the shaders' `row_stride`).
fn flat_plan(key: KernelKey, items: u64) -> Plan {
    flat_plan_within(key, items, MAX_GROUPS_PER_DIM)
}

/// [`flat_plan`] on a device allowing `max_dim` workgroups per dimension
/// (the caller keeps `items` within `max_dim²` workgroups).
pub(crate) fn flat_plan_within(key: KernelKey, items: u64, max_dim: u32) -> Plan {
    let total_groups = items.max(1).div_ceil(u64::from(WORKGROUP));
    let x = total_groups.min(u64::from(max_dim.max(1))) as u32;
    let y = total_groups.div_ceil(u64::from(x)) as u32;
    Plan {
        key,
        layout: WeightLayout::Natural,
        groups: [x, y, 1],
        blocks_w: x * WORKGROUP,
        blocks_per_group: 1,
        flat: false,
    }
}

/// Plans an element-wise add of `len` elements: [`Kernel::Add`] on a 2-D
/// grid like [`plan_upsample`]'s. Where `len` is a multiple of 4 the tensors
/// are read and written as vec4s (`V = 4`), [`ADD_VEC4S`] of them per
/// invocation (`E`), and on CPU adapters the two inputs are read from
/// texture copies of them (`TIN`, as [`texture_input`]); otherwise one
/// element per invocation from storage. The activation is a uniform, so
/// every add of one form shares one pipeline.
///
/// Lavapipe-specific, the textures: Mesa 22's llvmpipe loads a storage
/// element whose index differs between lanes lane by lane, inserting each
/// into a vector through the stack (a store-forwarding stall per element,
/// seen in this kernel's JIT code), where a texel fetch is a gather.
/// Measured on lavapipe on ResNeXt's residual add (256·56·56 elements, a
/// probe recording 50 adds per submission, medians of 7): 9.5–13 ms from
/// storage buffers (one element per invocation, or 1, 4, 16 or 64 vec4s),
/// 4.1–5.7 ms from textures (1, 4 or 16 vec4s; the two copies into the
/// textures are about a fifth of it). What remains is mostly the per-lane
/// stores.
pub fn plan_add(len: usize, adapter: &AdapterProfile) -> Plan {
    let (v, e) = if len.is_multiple_of(4) {
        (4, ADD_VEC4S)
    } else {
        (1, 1)
    };
    let texture = v == 4
        && texture_reads(adapter)
        && texture_rows(len as u64) <= u64::from(adapter.max_texture_2d)
        && len as u64 * 4 <= adapter.max_storage_binding;
    let key = KernelKey {
        kernel: Kernel::Add,
        consts: vec![
            ("V", v),
            ("E", e),
            ("TIN", texture_read(Kernel::Add, texture)),
        ],
    };
    // One invocation per E binding elements (`flat_plan` rounds up to workgroups).
    flat_plan(key, (len as u64 / u64::from(v)).div_ceil(u64::from(e)))
}

/// Vec4s per invocation of a vec4 [`plan_add`].
pub const ADD_VEC4S: u32 = 4;

/// Plans a pooling: [`Kernel::Pool2d`] specialised on the mode, one output
/// element per invocation on a 2-D grid like [`plan_upsample`]'s.
pub fn plan_pool2d(shape: &Pool2dShape) -> Plan {
    flat_plan(
        KernelKey {
            kernel: Kernel::Pool2d,
            consts: vec![("MODE", shape.mode.code())],
        },
        shape.output_len() as u64,
    )
}

/// Every pipeline key the weightless network ops can plan: [`plan_add`] in
/// both forms, [`plan_pool2d`] in each [`PoolMode`], [`plan_global_avg_pool`] and
/// [`plan_phase_scatter`] in both widths (their keys do not depend on the
/// shape otherwise).
pub fn network_op_keys() -> Vec<KernelKey> {
    let cpu = AdapterProfile::new(
        wgpu::DeviceType::Cpu,
        wgpu::Backend::Vulkan,
        &wgpu::Limits::default(),
    );
    let mut keys = vec![plan_add(1, &cpu).key, plan_add(4, &cpu).key];
    keys.push(plan_add(4, &cpu.clone().with_texture_inputs(false)).key);
    for mode in [PoolMode::Max, PoolMode::Avg] {
        keys.push(KernelKey {
            kernel: Kernel::Pool2d,
            consts: vec![("MODE", mode.code())],
        });
    }
    keys.push(plan_global_avg_pool(1).key);
    for profile in [cpu.clone().with_texture_inputs(false), cpu] {
        keys.push(plan_phase_scatter(1, 1, MAX_GROUPS_PER_DIM, &profile).key);
        keys.push(plan_phase_scatter(8, 4, MAX_GROUPS_PER_DIM, &profile).key);
    }
    keys
}

/// Plans the scatter of one sub-pixel phase of `len` elements, in rows of
/// `w_ph`, into its output ([`Kernel::PhaseScatter`]): 4 elements of a row
/// per invocation (`V = 4`) where rows are a multiple of 4 elements, else
/// one, on a 2-D grid like [`plan_upsample`]'s, at most `max_dim`
/// workgroups wide. With `V = 4` on `adapter`s that read textures
/// ([`texture_reads`]) the phase is read from a texture copy (`TIN`), as
/// the convolution kernels' inputs are.
///
/// Measured on lavapipe, tconv4 in sub-pixel form (phase rows of 32; its
/// 4 scatters were about 16 % of its JIT samples): `V = 4` 21.7 → 19.8 ms
/// (medians of 5 alternated processes of `wgconv bench --runs 15`); the
/// texture: see the `TIN` rule's measurement in the README (*Sub-pixel
/// scatter*). llvmpipe reads a storage buffer lane by lane, each lane's
/// value put into a vector through memory, which stalls store forwarding.
pub fn plan_phase_scatter(len: usize, w_ph: usize, max_dim: u32, adapter: &AdapterProfile) -> Plan {
    let v: u32 = if w_ph.is_multiple_of(4) { 4 } else { 1 };
    let len64 = len as u64;
    let texture = v == 4
        && texture_reads(adapter)
        && texture_rows(len64) <= u64::from(adapter.max_texture_2d);
    let key = KernelKey {
        kernel: Kernel::PhaseScatter,
        consts: vec![
            ("V", v),
            ("TIN", texture_read(Kernel::PhaseScatter, texture)),
        ],
    };
    flat_plan_within(key, len64 / u64::from(v), max_dim)
}

/// Plans a global average pooling of `planes` (= n·c) planes:
/// [`Kernel::GlobalAvgPool`], one plane per invocation on a 2-D grid like
/// [`plan_upsample`]'s.
pub fn plan_global_avg_pool(planes: usize) -> Plan {
    flat_plan(KernelKey::plain(Kernel::GlobalAvgPool), planes as u64)
}

/// A kernel launch: the specialised pipeline key and the dispatch size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Pipeline cache key (kernel + specialisation).
    pub key: KernelKey,
    /// Weight layout the kernel reads.
    pub layout: WeightLayout,
    /// Workgroups in x, y, z.
    pub groups: [u32; 3],
    /// Pixel blocks per output row.
    pub blocks_w: u32,
    /// Output-channel blocks per group.
    pub blocks_per_group: u32,
    /// The kernel runs each output plane as one row of `h_out·w_out`
    /// pixels ([`flat_shape`]): the dispatch, the blocks and the uniforms
    /// are those of [`Plan::exec_shape`].
    pub flat: bool,
}

impl Plan {
    /// This plan fused with the residual add after it: the kernel adds a
    /// residual of the output's shape after the bias and applies the add's
    /// `activation` (`RES = 1`). Only `conv2d_tiled` plans of layers
    /// without an activation of their own can; `None` otherwise.
    pub fn with_residual(&self, activation: Activation) -> Option<Plan> {
        if self.key.kernel != Kernel::Conv2dTiled || !self.key.is("ACT", 0) || self.key.residual() {
            return None;
        }
        let mut plan = self.clone();
        for (name, v) in &mut plan.key.consts {
            if *name == "ACT" {
                *v = activation.code();
            }
        }
        plan.key.consts.push(("RES", 1));
        Some(plan)
    }

    /// The shape the kernel runs: `shape` itself, or its planes as single
    /// rows where the plan is [`Plan::flat`].
    pub fn exec_shape(&self, shape: &Conv2dShape) -> Conv2dShape {
        if self.flat {
            flattened(shape)
        } else {
            *shape
        }
    }

    /// The tile shape of this plan (`None` for the direct kernel).
    pub fn tile(&self) -> Option<Tile> {
        let get = |name| {
            self.key
                .consts
                .iter()
                .find(|(n, _)| *n == name)
                .map(|c| c.1)
        };
        Some(Tile {
            pix: get("PIX")?,
            ph: get("PH").unwrap_or(1),
            cob4: get("COB4"),
        })
    }
}

/// Invocations per workgroup of every convolution kernel but `conv2d_shared`
/// ([`SHARED_WORKGROUP`]).
pub const WORKGROUP: u32 = 64;

/// A tile shape: output columns (`pix`) and rows (`ph`, depthwise only) per
/// invocation, and for the blocked kernels the output channels per
/// invocation (`cob4` vec4s; `None`: the planner's). The autotuner picks one
/// of [`tile_candidates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Tile {
    /// Output columns (column steps, for the transposed kernel) per invocation.
    pub pix: u32,
    /// Output rows per invocation (1 for every kernel but depthwise).
    pub ph: u32,
    /// Output channels per invocation in vec4s (`conv2d_tiled` and
    /// `conv_transpose2d`, whose weights are repacked in blocks of that
    /// many); `None` keeps the planner's. Files written before this field
    /// existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cob4: Option<u32>,
}

impl Tile {
    /// `pix` columns by `ph` rows, the planner's channel block.
    pub fn new(pix: u32, ph: u32) -> Self {
        Self {
            pix,
            ph,
            cob4: None,
        }
    }
}

/// The tiles the autotuner times for a layer: the planner's default first,
/// then the alternatives that are valid for the shape. Empty for the direct
/// kernel (nothing to tune).
pub fn tile_candidates(
    shape: &Conv2dShape,
    activation: Activation,
    adapter: &AdapterProfile,
    force: Option<Kernel>,
) -> Vec<Tile> {
    let default = plan(shape, activation, adapter, force);
    let Some(first) = default.tile() else {
        return Vec::new();
    };
    let options: &[(u32, u32)] = match default.key.kernel {
        Kernel::Conv2dDirect
        | Kernel::Upsample
        | Kernel::Conv2dUpsampled
        | Kernel::Add
        | Kernel::Pool2d
        | Kernel::GlobalAvgPool
        | Kernel::WinogradInput
        | Kernel::WinogradOutput
        | Kernel::PhaseScatter => &[],
        Kernel::Conv2dDepthwise => &[(8, 1), (8, 2), (8, 4), (4, 4), (4, 2), (16, 2)],
        Kernel::Conv2dTiled | Kernel::ConvTranspose2d => &[(2, 1), (4, 1), (8, 1)],
        Kernel::Conv2dShared => &[],
    };
    // The blocked kernels also try twice the planner's output channels per
    // invocation where the group fills such blocks: each loaded input then
    // feeds twice the multiply-adds, for twice the accumulators and a longer
    // compile (measured on lavapipe: r3x3s2 18.1 → 14.6 ms, tconv4's phases
    // 21.5 → 18.6 ms, first results 1.1 → 1.8–2.3 s and 0.9 → 3.5–4.0 s).
    let blocks = match first.cob4 {
        Some(c) if 2 * c <= MAX_TUNED_COB4 && shape.c_out_per_group() >= 8 * c => {
            vec![first.cob4, Some(2 * c)]
        }
        _ => vec![first.cob4],
    };
    let mut out = vec![first];
    for cob4 in blocks {
        for &(pix, ph) in std::iter::once(&(first.pix, first.ph)).chain(options) {
            let tile = Tile { pix, ph, cob4 };
            let outputs = u64::from(pix * ph) * u64::from(4 * cob4.unwrap_or(1));
            let outputs = outputs
                * if default.key.kernel == Kernel::ConvTranspose2d {
                    u64::from(shape.stride_w)
                } else {
                    1
                };
            if cob4 != first.cob4 && outputs > MAX_TUNED_OUTPUTS {
                continue;
            }
            // Keep a candidate only if the planner accepts it unchanged (it fits the shape).
            let planned = plan_with(shape, activation, adapter, force, Some(tile)).tile();
            if planned == Some(tile) && !out.contains(&tile) {
                out.push(tile);
            }
        }
    }
    out
}

/// Widest channel block the autotuner tries, in vec4s.
const MAX_TUNED_COB4: u32 = 8;

/// Most outputs per invocation (accumulators) of a wider channel block the
/// autotuner tries: the planner's own tiles go up to 256.
const MAX_TUNED_OUTPUTS: u64 = 256;

/// [`weight_layout`] with the autotuner's channel block (`cob4`, in vec4s)
/// in place of the planner's, where the kernel is blocked and the block
/// fits: at most `MAX_TUNED_COB4`, and for `conv2d_tiled` one input
/// channel of it within a weight window.
pub fn tuned_layout(
    sig: &LayerSig,
    adapter: &AdapterProfile,
    force: Option<Kernel>,
    cob4: Option<u32>,
) -> (Kernel, WeightLayout) {
    let (kernel, layout) = weight_layout(sig, adapter, force);
    match (kernel, layout, cob4) {
        (Kernel::Conv2dTiled | Kernel::ConvTranspose2d, WeightLayout::Blocked { .. }, Some(c))
            if (1..=MAX_TUNED_COB4).contains(&c)
                && (kernel != Kernel::Conv2dTiled || tiled_fits(sig, c, adapter)) =>
        {
            (kernel, WeightLayout::Blocked { cob4: c })
        }
        _ => (kernel, layout),
    }
}

/// Plans one convolution.
pub fn plan(
    shape: &Conv2dShape,
    activation: Activation,
    adapter: &AdapterProfile,
    force: Option<Kernel>,
) -> Plan {
    plan_with(shape, activation, adapter, force, None)
}

/// [`plan`] with a tile shape (from the autotuner) in place of the default.
/// A tile that does not fit the shape is reduced until it does.
pub fn plan_with(
    shape: &Conv2dShape,
    activation: Activation,
    adapter: &AdapterProfile,
    force: Option<Kernel>,
    tile: Option<Tile>,
) -> Plan {
    let sig = LayerSig::of(shape);
    let (kernel, layout) = tuned_layout(&sig, adapter, force, tile.and_then(|t| t.cob4));
    let act = activation.code();
    let max_pix = tile.map_or(MAX_PIX, |t| t.pix.clamp(1, MAX_TUNED_PIX));
    let pix = || {
        // Narrow rows get fewer pixels per invocation, and every segment must fit.
        let mut pix = max_pix.min(shape.w_out.next_power_of_two());
        while pix > 1 && seg(pix, &sig) > MAX_SEG {
            pix /= 2;
        }
        pix
    };
    match kernel {
        // weight_layout never picks a kernel of another op for a convolution;
        // should it, the direct kernel still runs every forward convolution.
        Kernel::Conv2dDirect
        | Kernel::Upsample
        | Kernel::Conv2dUpsampled
        | Kernel::Add
        | Kernel::Pool2d
        | Kernel::GlobalAvgPool
        | Kernel::WinogradInput
        | Kernel::WinogradOutput
        | Kernel::PhaseScatter => Plan {
            key: KernelKey::plain(Kernel::Conv2dDirect),
            layout,
            groups: [
                (shape.h_out * shape.w_out).div_ceil(WORKGROUP),
                shape.c_out,
                shape.n,
            ],
            blocks_w: shape.w_out,
            blocks_per_group: shape.c_out_per_group(),
            flat: false,
        },
        Kernel::Conv2dDepthwise => {
            // A PH × PIX tile, a loop over its rows: keep a row's FMAs (and compile time)
            // bounded.
            let mut pix = pix();
            let mut ph = tile
                .map_or(MAX_PH, |t| t.ph.clamp(1, MAX_PH))
                .min(shape.h_out.next_power_of_two());
            while pix * shape.k_h * shape.k_w > MAX_DEPTHWISE_FMAS && pix > 1 {
                pix /= 2;
            }
            // A band of PH output rows, and the input rows it reads, must fit one storage
            // binding for `chunk` to split the layer by rows.
            let band = |ph: u32| {
                let u = u64::from;
                let rows_in = u(ph - 1) * u(shape.stride_h) + u(shape.k_h - 1) * u(shape.dil_h) + 1;
                4 * (rows_in * u(shape.w_in)).max(u(ph) * u(shape.w_out))
            };
            while ph > 1 && band(ph) > adapter.max_storage_binding {
                ph /= 2;
            }
            // On GPUs, smaller tiles on a small plane, until a channel has
            // DEPTHWISE_MIN_TILES of them (the larger side halved first, PH on a tie).
            // The planner's choice only; the autotuner's tile stands.
            let shrink = tile.is_none() && adapter.device_type != wgpu::DeviceType::Cpu;
            let tiles = |pix: u32, ph: u32| shape.h_out.div_ceil(ph) * shape.w_out.div_ceil(pix);
            while shrink && tiles(pix, ph) < DEPTHWISE_MIN_TILES && (ph > 1 || pix > 1) {
                if ph >= pix && ph > 1 {
                    ph /= 2;
                } else {
                    pix /= 2;
                }
            }
            let blocks_w = shape.w_out.div_ceil(pix);
            let cb = depthwise_channels(shape, adapter);
            let consts = vec![
                ("PIX", pix),
                ("PH", ph),
                ("K_H", shape.k_h),
                ("K_W", shape.k_w),
                ("S_H", shape.stride_h),
                ("S_W", shape.stride_w),
                ("D_H", shape.dil_h),
                ("D_W", shape.dil_w),
                ("VIN", 0),
                ("VA", 0),
                (
                    "TIN",
                    texture_read(kernel, depthwise_texture_input(shape, adapter)),
                ),
                ("ACT", act),
                (
                    "VOUT",
                    u32::from(depthwise_vec4_output(shape, pix, adapter)),
                ),
                ("CB", cb),
            ];
            let mut consts = consts;
            if let Some(a) = depthwise_vec4_input(shape, pix, adapter) {
                consts[8].1 = 1;
                consts[9].1 = a;
            }
            Plan {
                key: KernelKey { kernel, consts },
                layout,
                groups: [
                    (shape.h_out.div_ceil(ph) * blocks_w * cb).div_ceil(WORKGROUP),
                    shape.c_out / cb,
                    shape.n,
                ],
                blocks_w,
                blocks_per_group: shape.c_out_per_group(),
                flat: false,
            }
        }
        Kernel::ConvTranspose2d => {
            // PIX input-column steps per invocation, each giving all S_W phases.
            let cols = shape.w_out.div_ceil(shape.stride_w);
            // MAX_PIX outputs per row: 4 column steps at stride 2. Measured on lavapipe
            // (the gather forced, 3 alternations of 10 launches a submission, ms): 3×3
            // stride 2, 64→32 on 64² (tconv3) 22.1–23.0 with 8 steps → 17.9–18.3 with 4;
            // 128→64 on 32²: 4×4 37.4–39.2 → 21.9–22.0, 3×3 25.2–26.4 → 12.6–15.5;
            // 256→128 3×3 on 16² 26.4–27.9 → 23.9–25.2; 2×2 on 64² 2.2–3.1 → 2.1–2.8.
            // (8 steps had measured about 1.25× faster on tconv4 and tconv3 before the
            // weights were read from textures through subgroups.) Unmeasured on GPUs,
            // where 8 outputs a row × the channel block is a common register tile.
            let per_phase = tile.map_or((MAX_PIX / shape.stride_w).clamp(1, MAX_PIX), |t| {
                t.pix.clamp(1, MAX_TUNED_PIX)
            });
            let pix = per_phase.min(cols.next_power_of_two());
            let cob4 = match layout {
                WeightLayout::Blocked { cob4 } => cob4,
                WeightLayout::Natural => 1,
            };
            let blocks_w = cols.div_ceil(pix);
            let blocks_per_group = shape.c_out_per_group().div_ceil(cob4 * 4);
            let vin = transposed_vec4_input(shape, pix, adapter);
            let consts = vec![
                ("PIX", pix),
                ("COB4", cob4),
                ("K_W", shape.k_w),
                ("S_W", shape.stride_w),
                ("D_W", shape.dil_w),
                ("PLR", shape.padding.left % shape.stride_w),
                (
                    "VOUT",
                    u32::from(transposed_vec4_output(shape, pix, adapter)),
                ),
                ("VIN", u32::from(vin.is_some())),
                ("VA", vin.unwrap_or(0)),
                ("TIN", texture_read(kernel, texture_input(shape, adapter))),
                (
                    "TWT",
                    texture_read(kernel, weight_texture(shape, cob4, adapter)),
                ),
                ("ACT", act),
                ("SG", transposed_subgroups(blocks_w, adapter)),
                ("KHU", unrolled_taps(shape, adapter)),
            ];
            Plan {
                key: KernelKey { kernel, consts },
                layout,
                groups: [
                    (shape.h_out * blocks_w).div_ceil(WORKGROUP),
                    blocks_per_group * shape.groups,
                    shape.n,
                ],
                blocks_w,
                blocks_per_group,
                flat: false,
            }
        }
        Kernel::Conv2dShared => {
            // BN = 16·TN channels per block (fixed by the weight layout); BM = 16·TM
            // pixels, fewer for small output planes.
            let tn = match layout {
                WeightLayout::Blocked { cob4 } => (cob4 / 4).clamp(1, SHARED_MAX_T),
                WeightLayout::Natural => 1,
            };
            // Items are output pixels (blocks_w = w_out per output row), BM to a workgroup.
            let m = shape.h_out * shape.w_out;
            let tm = m.div_ceil(16).next_power_of_two().min(SHARED_MAX_T);
            let m_tiles = m.div_ceil(16 * tm);
            let blocks_per_group = shape.c_out_per_group().div_ceil(16 * tn);
            let consts = vec![
                ("TM", tm),
                ("TN", tn),
                ("K_H", shape.k_h),
                ("K_W", shape.k_w),
                ("ACT", act),
            ];
            Plan {
                key: KernelKey { kernel, consts },
                layout,
                groups: [m_tiles, blocks_per_group * shape.groups, shape.n],
                blocks_w: shape.w_out,
                blocks_per_group,
                flat: false,
            }
        }
        Kernel::Conv2dTiled => {
            let flat = flat_shape(shape, adapter);
            let shape = flat.as_ref().unwrap_or(shape);
            let sig = LayerSig::of(shape);
            let q = pixel_spacing(&sig);
            let cols = shape.w_out.div_ceil(q);
            // A 32-channel block of a kernel wider than 1×1 takes at most 4 pixels, the
            // accumulators of 8 pixels × 16 channels (see `few_pixel_wide_blocks`).
            let max_pix = match layout {
                WeightLayout::Blocked { cob4: 8 } if tile.is_none() && sig.k_h * sig.k_w > 1 => {
                    max_pix.min(MAX_PIX / 2)
                }
                _ => max_pix,
            };
            // Dense rows: a power of two (fewer specialisations); phase-spaced rows are short,
            // so take them whole, or in as few blocks of equal width as fit.
            let mut pix = if q == 1 {
                max_pix.min(cols.next_power_of_two())
            } else {
                cols.div_ceil(cols.div_ceil(max_pix.max(1)))
            };
            while pix > 1 && tiled_loads(pix, q, &sig) > MAX_SEG {
                pix -= 1;
            }
            let cob4 = match layout {
                WeightLayout::Blocked { cob4 } => cob4,
                WeightLayout::Natural => 1,
            };
            let blocks_w = q * cols.div_ceil(pix);
            let items = u64::from(shape.n) * u64::from(shape.h_out) * u64::from(blocks_w);
            let blocks_per_group = shape.c_out_per_group().div_ceil(cob4 * 4);
            let twt = weight_texture(shape, cob4, adapter);
            let wst = twt || storage_weights(&sig, cob4, adapter, items);
            let vin = tiled_vec4_input(shape, pix, q, adapter);
            let shifted = flat.is_some() && tiled_shifted_input(shape, pix, q, adapter);
            let consts = vec![
                ("PIX", pix),
                ("COB4", cob4),
                ("K_W", shape.k_w),
                ("S_W", shape.stride_w),
                ("D_W", shape.dil_w),
                ("Q", q),
                ("KH1", u32::from(shape.k_h == 1)),
                (
                    "WCAP",
                    if wst {
                        0
                    } else {
                        tiled_weight_cap(&sig, cob4, adapter)
                    },
                ),
                ("WST", u32::from(wst)),
                (
                    "SEGS",
                    u32::from(!wst && tiled_segmented(&sig, cob4, adapter)),
                ),
                ("VIN", if shifted { 2 } else { u32::from(vin.is_some()) }),
                ("VA", vin.unwrap_or(0)),
                ("TIN", texture_read(kernel, texture_input(shape, adapter))),
                ("TWT", texture_read(kernel, twt)),
                ("VOUT", u32::from(tiled_vec4_output(shape, pix, q, adapter))),
                ("SG", subgroup_weights(adapter)),
                ("CU", channels_per_step(&sig, cob4, adapter)),
                ("KHU", unrolled_rows(&sig, adapter)),
                ("ACT", act),
            ];
            Plan {
                key: KernelKey { kernel, consts },
                layout,
                groups: [
                    (shape.h_out * blocks_w).div_ceil(WORKGROUP),
                    blocks_per_group * shape.groups,
                    shape.n,
                ],
                blocks_w,
                blocks_per_group,
                flat: flat.is_some(),
            }
        }
    }
}

/// `shape` as a `conv2d_tiled` kernel runs it best, where that differs:
/// a 1×1, stride-1, unpadded forward convolution computes the same outputs
/// with each `h × w` plane taken as one row of `h·w` pixels (channel planes
/// are contiguous either way), so no row ends in a partial pixel block and
/// planes of `h·w` a multiple of 4 floats read and store whole vec4s
/// whatever `w` is. MobileNetV2's 14×14 pointwise layers (`w` = 14: two
/// 8-pixel blocks a row, one of them 6/8 live, scalar loads and stores)
/// measured 12.0 → 8.5–9.4 ms on lavapipe as one 196-pixel row (1,320,14,14
/// → 1280 channels, `wgconv bench --runs 40`, 2 runs each). On a GPU the
/// same holds: fewer idle lanes and wider accesses.
///
/// Only where `chunk` never needs to split the planes by rows: one image's
/// input and output each fit a storage binding.
pub fn flat_shape(shape: &Conv2dShape, adapter: &AdapterProfile) -> Option<Conv2dShape> {
    let per_image = |c: u32, h: u32, w: u32| 4 * u64::from(c) * u64::from(h) * u64::from(w);
    let pointwise = shape.kind == ConvKind::Forward
        && (shape.k_h, shape.k_w, shape.stride_h, shape.stride_w) == (1, 1, 1, 1)
        && shape.padding == crate::geometry::Padding::default();
    (pointwise
        && per_image(shape.c_in, shape.h_in, shape.w_in) <= adapter.max_storage_binding
        && per_image(shape.c_out, shape.h_out, shape.w_out) <= adapter.max_storage_binding)
        .then(|| flattened(shape))
}

/// `shape` with every plane one row (see [`flat_shape`]).
fn flattened(shape: &Conv2dShape) -> Conv2dShape {
    Conv2dShape {
        h_in: 1,
        w_in: shape.h_in * shape.w_in,
        h_out: 1,
        w_out: shape.h_out * shape.w_out,
        dil_h: 1,
        dil_w: 1,
        ..*shape
    }
}

/// Texels per row of an input texture (see [`texture_input`]): 16 KiB
/// rows, so a tensor copies into whole rows (copies need rows of a multiple
/// of 256 bytes) and a 64 Mi-float tensor fits in 16384 rows.
pub const TEXTURE_WIDTH: u32 = 1024;

/// Rows of the input texture that holds a tensor of `len` floats:
/// vec4 `t` of the tensor is texel `(t % TEXTURE_WIDTH, t / TEXTURE_WIDTH)`.
pub fn texture_rows(len: u64) -> u64 {
    len.div_ceil(4 * u64::from(TEXTURE_WIDTH))
}

/// Whether a kernel reads its input (aligned vec4s with `VIN = 1`, else
/// scalars) from a texture copy of the input instead (`TIN` = 1 or 2, see
/// [`texture_read`]): on CPU adapters, for inputs of whole vec4s that fit
/// one texture and one storage binding (so no chunk stages its input).
///
/// Lavapipe-specific. Mesa 22's llvmpipe compiles every storage-buffer load
/// to a loop over the SIMD lanes with a bounds check and a branch per lane
/// and component, while a texel fetch (like a uniform-buffer load) is one
/// unrolled gather. Measured on lavapipe with 262144 invocations of 32
/// loads each: 15.2 ns per vec4 storage load, 1.4 ns per vec4 texel fetch,
/// 1.3 ns per vec4 uniform load. The copy into the texture costs one pass
/// over the input. A GPU reads storage buffers through its caches at full
/// speed, so GPUs keep them (unmeasured there).
pub fn texture_input(shape: &Conv2dShape, adapter: &AdapterProfile) -> bool {
    let len =
        u64::from(shape.n) * u64::from(shape.c_in) * u64::from(shape.h_in) * u64::from(shape.w_in);
    texture_reads(adapter)
        && len.is_multiple_of(4)
        && texture_rows(len) <= u64::from(adapter.max_texture_2d)
        && len * 4 <= adapter.max_storage_binding
}

/// Whether `conv2d_depthwise` reads its input from a texture copy: as
/// [`texture_input`], but only without stride. A strided depthwise layer
/// reads each input element about `k_h·k_w / (s_h·s_w)` times, 2.25 for
/// 3×3 at stride 2, so the copy (a pass over an input 4× the output) costs
/// more than the texel fetches save. Lavapipe-specific, as
/// [`texture_input`]. Measured on the current host (`WGCONV_TEXTURE_INPUTS=1`
/// / `0`, `wgconv bench --layer dw3,dw3s2 --runs 31`, 4 alternations,
/// medians, ms): dw3s2 0.93 / 0.88, 1.18 / 0.89, 1.02 / 0.86, 0.93 / 0.84;
/// dw3 (stride 1) 0.88 / 0.92, 0.78 / 0.88, 1.44 / 1.51, 0.88 / 0.84.
pub fn depthwise_texture_input(shape: &Conv2dShape, adapter: &AdapterProfile) -> bool {
    (shape.stride_h, shape.stride_w) == (1, 1) && texture_input(shape, adapter)
}

/// Whether a `conv_transpose2d` or `conv2d_tiled` kernel on `shape`, its
/// weight packed in blocks of `cob4` vec4s, reads it from a texture copy (`TWT = 1`),
/// made once per layer: on CPU adapters, where it fits one texture and one
/// storage binding (with a window's worth of padding to spare).
/// Lavapipe-specific, as [`texture_input`].
///
/// `conv_transpose2d` binds its weight as a storage buffer, so on lavapipe
/// each weight load was a per-lane loop. Measured, `wgconv bench --layer
/// tconv3 --runs 9`, one build then the other and back: 27.9 → 22.0 /
/// 23.9 ms. `conv2d_tiled` reads uniform windows, already gathers; a
/// texture reads as fast and has no 64 KiB window, so no layer runs as
/// reduction segments or in weight-window chunks (`WST = 1` with it):
/// medians of 6 alternated processes of `wgconv bench --runs 7`, r3x3s2
/// 17.4 → 15.9 ms, pw 6.62 → 5.96, aspp12 68.1 → 61.3, the rest within
/// ±5 % (this host's noise); r3x3s2's first result with an empty shader
/// cache 1.09 / 1.52 → 0.51 / 0.73 s (no partial-sum reload to compile).
/// `conv2d_depthwise` (9 scalar weights per invocation) showed no
/// difference and keeps its storage weights.
pub fn weight_texture(shape: &Conv2dShape, cob4: u32, adapter: &AdapterProfile) -> bool {
    // The blocked layout: every group's channel blocks of `cob4` vec4s.
    let floats = u64::from(shape.groups)
        * u64::from(shape.c_out_per_group().div_ceil(cob4 * 4))
        * u64::from(shape.c_in_per_group())
        * u64::from(shape.k_h * shape.k_w)
        * u64::from(cob4 * 4);
    // With a window's worth of padding; within one storage binding, so no
    // chunk's weight window can outgrow a binding either.
    let padded = floats + 4 * u64::from(TILED_MAX_WCAP);
    texture_reads(adapter)
        && texture_rows(padded) <= u64::from(adapter.max_texture_2d)
        && padded * 4 <= adapter.max_storage_binding
}

/// The `TIN` or `TWT` of a `kernel` that reads that binding from a texture
/// where `texture` holds: 0 (a storage buffer), 2 (a read-only storage
/// texture, `texture_storage_2d<rgba32float, read>`) where
/// [`storage_texture_reads`] holds for the kernel, else 1 (a sampled
/// `texture_2d<f32>`).
pub fn texture_read(kernel: Kernel, texture: bool) -> u32 {
    match (texture, storage_texture_reads(kernel)) {
        (false, _) => 0,
        (true, true) => 2,
        (true, false) => 1,
    }
}

/// Whether `kernel` reads its textures as read-only storage textures rather
/// than sampled ones: `conv2d_tiled`, `conv_transpose2d` and
/// `conv2d_depthwise`, whose texture reads sit in a loop (a handful of load
/// sites per module), not the fully unrolled Winograd transforms (about 40
/// sites each). Lavapipe-specific, as [`texture_input`]: Mesa 22.3's
/// llvmpipe compiles a texel fetch to a call of one shared function that
/// looks up the mip level lane by lane, and a storage-texture load to an
/// inlined gather, faster to run but slower to compile. Measured on
/// lavapipe with 65536 invocations (a probe, first dispatch with Mesa's
/// shader cache off, then the median of 7): 16 / 48 / 96 unrolled loads
/// per invocation ran at 2.2 / 2.4 / 1.7 ns per load as texel fetches and
/// 1.5 / 1.5 / 0.8 ns as storage-texture loads, and took 49 / 82 / 103 ms
/// against 72 / 277 / 508 ms to the first result. On the suite (medians of
/// 3 alternated processes of `wgconv bench --runs 9`, every texture a
/// storage texture against none): stem7 11.9 → 9.2 ms, r3x3s2 16.0 →
/// 12.9, pw 5.9 → 4.9, grp32 4.4 → 3.1, the Winograd layers 6–15 % faster
/// and the transposed ones 2–3 %; but the first result of r3x3 1.18 →
/// 1.65 s, hence sampled textures for the Winograd transforms.
/// `conv2d_depthwise` loops over its tile's rows
/// (`codegen::conv2d_depthwise_main`); with storage-texture reads there,
/// against the fully unrolled form with sampled ones it replaced (medians
/// of 4 alternated processes of `wgconv bench --runs 150`): dw3 2.64 →
/// 2.32 ms, dw3s2 3.88 → 3.36 ms, and the first result sooner (see that
/// function).
pub fn storage_texture_reads(kernel: Kernel) -> bool {
    matches!(
        kernel,
        Kernel::Conv2dTiled
            | Kernel::ConvTranspose2d
            | Kernel::PhaseScatter
            | Kernel::Conv2dDepthwise
            | Kernel::Add
    )
}

/// Whether the planner reads inputs through textures on `adapter` at all
/// (see [`texture_input`]).
pub fn texture_reads(adapter: &AdapterProfile) -> bool {
    adapter.texture_inputs && adapter.device_type == wgpu::DeviceType::Cpu
}

/// Whether the Winograd output transform reads the GEMM's output through a
/// texture (`TIN` of `winograd_output`; see [`texture_input`]): the GEMM
/// output is one storage binding of whole vec4s, so it fits a texture
/// wherever any binding does.
pub fn winograd_output_texture(adapter: &AdapterProfile) -> bool {
    texture_reads(adapter)
        && adapter.max_storage_binding / 16
            <= u64::from(adapter.max_texture_2d) * u64::from(TEXTURE_WIDTH)
}

/// The `SG` of a `conv2d_tiled` kernel: the subgroup size where its weights
/// are read once per subgroup and broadcast (see
/// `codegen::subgroup_weights`), else 0. Chosen on CPU adapters with a fixed
/// subgroup size that divides the workgroup: it works around how Mesa 22's
/// llvmpipe compiles loads whose index is the same for every lane (a gather,
/// lane by lane), a lavapipe-specific cost. A GPU compiler turns such loads
/// into one scalar or constant-cache load itself, so GPUs keep the plain
/// loads (the broadcasts are unmeasured there). Tried and not kept for
/// `conv2d_depthwise` (its 9 weights in 2 gathers): about 6 % less CPU time
/// on dw3, nothing measurable on dw3s2, but the lanes past a channel's last
/// tile then run as idle lanes of a live subgroup, and MobileNetV2's 14×14
/// and 7×7 depthwise layers (4 and 1 tiles a channel) took 15–25 % longer
/// (`wgconv bench --net mobilenet_v2 --breakdown`, 2 alternations).
pub fn subgroup_weights(adapter: &AdapterProfile) -> u32 {
    match adapter.subgroup_size {
        Some(s)
            if adapter.device_type == wgpu::DeviceType::Cpu
                && s > 1
                && WORKGROUP.is_multiple_of(s) =>
        {
            s
        }
        _ => 0,
    }
}

/// The `SG` of a `conv_transpose2d` kernel with `blocks_w` tiles per output
/// row: [`subgroup_weights`]'s where a row is a whole number of subgroups,
/// so that the lanes of a subgroup (which take consecutive tiles) share an
/// output row and with it the kernel rows they visit; else 0. tconv3 (8
/// tiles per row) qualifies; a narrower layer would idle lanes to pad its
/// rows, so it keeps the plain loads. Measured on lavapipe, tconv3 39.0 →
/// 19.6 ms (medians of 6 alternated processes, `WGCONV_SUBGROUPS=0` / `1`);
/// its first result with an empty shader cache 0.57 / 0.54 → 0.46 / 0.45 s.
pub fn transposed_subgroups(blocks_w: u32, adapter: &AdapterProfile) -> u32 {
    match subgroup_weights(adapter) {
        0 => 0,
        s if blocks_w.is_multiple_of(s) => s,
        _ => 0,
    }
}

/// The `CU` of a `conv2d_tiled` kernel: input channels per step of its
/// reduction loop, each accumulator taking the step's taps of a kernel row in
/// one expression. llvmpipe blends every write to a variable inside a loop
/// with the loop's execution mask, and a tile's accumulators mostly live in
/// spill slots, so each write costs a load, a blend and a store: fewer writes
/// per multiply-add pay (a lavapipe-specific cost; a GPU compiler keeps
/// accumulators in registers and needs no blend in uniform control flow).
/// Measured on lavapipe, medians of 3 alternated processes of
/// `wgconv bench`, 1 → 2 channels per step: pw 10.4 → 8.1 ms, aspp12
/// 106.8 → 81.5, b8 76.4 → 65.8 (Winograd's GEMMs are one-row kernels);
/// 4 were no faster than 2 and compile slower (first result with an empty
/// shader cache, 1 / 2 / 4 channels: pw 0.51 / 0.58 / 0.77 s, r3x3 1.5 /
/// 1.8 / 2.3 s). Kernels with several rows, whose `K_W` taps already share
/// an expression, gained nothing beyond noise (stem7, r3x3s2, grp32). So: 2
/// for one-row kernels with an even channel count per group on CPU adapters,
/// where the weights of 2 channels fit one window; else 1.
pub fn channels_per_step(sig: &LayerSig, cob4: u32, adapter: &AdapterProfile) -> u32 {
    let two = adapter.device_type == wgpu::DeviceType::Cpu
        && sig.k_h == 1
        && sig.c_in_per_group.is_multiple_of(2)
        && 2 * u64::from(sig.k_w) * u64::from(cob4) + u64::from(uniform_slack(adapter))
            <= u64::from(tiled_max_wcap(adapter));
    if two {
        2
    } else {
        1
    }
}

/// The kernel rows `conv2d_tiled` unrolls (`KHU`): all of them for a
/// kernel 2 or 3 rows high on a CPU adapter, else none (0: a loop over the
/// rows inside the image).
///
/// Lavapipe-specific: llvmpipe keeps a loop's carried values in memory and
/// blends each with the execution mask on every iteration, so with the row
/// loop each of a tile's accumulators is reloaded, blended and stored after
/// every `K_W` FMAs; unrolled, after every `K_H·K_W`. Rows outside the
/// image read zeros instead of being skipped, a few wasted FMAs at the
/// top and bottom edges. Measured on the current host (medians of 15, 2–3
/// alternated processes): r3x3s2 4.56–4.66 → 3.18–3.26 ms, grp32 1.35–1.39
/// → 1.20–1.43, tconv4's 2×2 sub-pixel phases 7.16–7.65 → 5.00–5.06, the
/// direct r3x3 3.93–3.96 → 2.62–2.71; a 5×5 layer (32 channels, 56²) 2.30
/// → 2.43 and stem7 (7×7) 3.39–3.51 → 5.13–5.23 ms, its first result 0.31 →
/// 1.20 s, so taller kernels keep the loop. GPU compilers unroll such loops
/// themselves or keep the accumulators in registers; unmeasured there, so
/// left off.
pub fn unrolled_rows(sig: &LayerSig, adapter: &AdapterProfile) -> u32 {
    if adapter.device_type == wgpu::DeviceType::Cpu && (2..=3).contains(&sig.k_h) {
        sig.k_h
    } else {
        0
    }
}

/// The taps of a kernel column that can reach one output row of a
/// transposed convolution: `⌈k_h / tap_step_h⌉`, `tap_step_h = stride_h /
/// gcd(stride_h, dil_h)`.
pub fn transposed_row_taps(shape: &Conv2dShape) -> u32 {
    let step = shape.stride_h / crate::ops::gcd(shape.stride_h, shape.dil_h).max(1);
    shape.k_h.div_ceil(step.max(1))
}

/// The taps `conv_transpose2d` unrolls per output row (`KHU`): all of them
/// ([`transposed_row_taps`]) where that is 2 or 3 on a CPU adapter, else
/// none (0: the loop). Lavapipe-specific, for the reason given at
/// [`unrolled_rows`]; a row whose parity leaves fewer taps tests the rest
/// away. Measured on the current host (medians of 15, 3 alternated
/// processes): tconv3 (3×3, stride 2: 1 or 2 taps a row) 5.47–5.55 →
/// 4.36–4.41 ms.
pub fn unrolled_taps(shape: &Conv2dShape, adapter: &AdapterProfile) -> u32 {
    let taps = transposed_row_taps(shape);
    if adapter.device_type == wgpu::DeviceType::Cpu && (2..=3).contains(&taps) {
        taps
    } else {
        0
    }
}

/// Largest weight window of `conv2d_tiled`, in vec4s (64 KiB: the uniform
/// binding size every WebGPU adapter allows).
pub const TILED_MAX_WCAP: u32 = 4096;

/// The `vec4` count `WCAP` of `conv2d_tiled`'s uniform weight array: the
/// whole packed weight rounded up to a power of two when that fits one
/// uniform binding, else the largest power of two that does (capped at
/// [`TILED_MAX_WCAP`]). Every weight window the chunk planner binds is
/// exactly `WCAP` vec4s, so the layer's weight buffer is padded by as much
/// (see [`weight_padding`]).
///
/// Why uniform: every invocation of a workgroup reads the same weights
/// (the channel block is the workgroup's `y`), which is what uniform
/// buffers are for on every GPU (a broadcast from the constant cache). On
/// Mesa's llvmpipe/lavapipe it matters more: a uniform load at a
/// workgroup-uniform offset is one scalar load and a broadcast, while a
/// storage-buffer load is a per-lane loop with a bounds check per lane —
/// measured on the `pw` suite layer, 22–25 ms with storage weights against
/// 14–17 ms with uniform ones.
pub fn tiled_weight_cap(sig: &LayerSig, cob4: u32, adapter: &AdapterProfile) -> u32 {
    let cap = tiled_max_wcap(adapter);
    let blocks = sig.c_out_per_group.div_ceil(cob4 * 4);
    let total = u64::from(sig.groups)
        * u64::from(blocks)
        * u64::from(sig.c_in_per_group)
        * u64::from(sig.k_h * sig.k_w)
        * u64::from(cob4);
    // A window starts at an aligned offset up to `slack` vec4s before its first weight.
    u32::try_from((total + u64::from(uniform_slack(adapter))).next_power_of_two())
        .unwrap_or(u32::MAX)
        .min(cap)
}

/// Whether a `conv2d_tiled` block of `cob4` vec4s of output channels has
/// more weights than one window holds, so that the layer runs as reduction
/// segments (the rule `chunk::GridMap::segments` applies). Only such layers
/// compile the code that reloads partial sums: it doubles lavapipe's compile
/// time for the others (measured, `r3x3` cold: 1.8 s without, 3.4 s with).
pub fn tiled_segmented(sig: &LayerSig, cob4: u32, adapter: &AdapterProfile) -> bool {
    let block = u64::from(sig.c_in_per_group) * u64::from(sig.k_h * sig.k_w) * u64::from(cob4);
    block + u64::from(uniform_slack(adapter)) > u64::from(tiled_weight_cap(sig, cob4, adapter))
}

/// Whether `conv2d_tiled` binds its weight as a storage buffer (`WST = 1`)
/// rather than as uniform windows of at most 64 KiB, for a layer whose
/// channel block's reduction segments have `items` invocations (images ×
/// output rows × pixel blocks): on adapters where it reads weights once per
/// subgroup (`SG`, see [`subgroup_weights`]), where a block would not fit
/// one uniform window and its segments would not fill one workgroup (or
/// not even one input channel fits a window). Such a layer otherwise runs
/// one dispatch per block and segment, with its partial sums stored and
/// reloaded, each on one thread of a CPU driver. A storage load is a
/// per-lane loop on lavapipe even when a subgroup shares it, so other
/// layers keep uniform weights. A lavapipe-specific choice (GPUs run
/// `conv2d_shared`). Measured on lavapipe (`wgconv bench --shape …`,
/// medians of 5, ms uniform / storage; `items` in brackets): 512 channels
/// 3×3 at 7×7 62.9 / 43.2 (7), 14×14 234 / 168 (28), 28×28 695 / 715
/// (112); their Winograd GEMMs (blocks of exactly one window plus its
/// alignment slack) at 14×14 361 / 165 (2) and 28×28 321 / 176 (7); r3x3s2
/// (112) 46.8 / 51.3 over 4 alternated processes. Layers that fit a window
/// lost 10–40 % (256-channel GEMMs, stem7, pw, grp32, tconv4's phases).
pub fn storage_weights(sig: &LayerSig, cob4: u32, adapter: &AdapterProfile, items: u64) -> bool {
    subgroup_weights(adapter) > 0
        && ((tiled_segmented(sig, cob4, adapter) && items < u64::from(WORKGROUP))
            || !uniform_fits(sig, cob4, adapter))
}

/// Where the first input column of every tile sits in its vec4, if the tile
/// reads its input as aligned vec4s (`VIN`, `VA`): every tile starts at the
/// same place in a vec4 (`spec.vin_fits`, with `a = (−pad_left) mod 4`),
/// rows are a multiple of 4 floats (so each vec4 is wholly inside or wholly
/// outside the row), windows start 16-byte aligned, and fewer vec4s than
/// scalars cover the columns `offs`. On lavapipe every storage load is a
/// per-lane loop, so fewer, wider loads pay (see the README); on a GPU they
/// are wider coalesced loads.
fn vec4_input(
    shape: &Conv2dShape,
    offs: &[u32],
    fits: bool,
    adapter: &AdapterProfile,
) -> Option<u32> {
    vec4_input_at(shape, offs, fits, (4 - shape.padding.left % 4) % 4, adapter)
}

/// [`vec4_input`] with the first column at position `a` of its vec4.
fn vec4_input_at(
    shape: &Conv2dShape,
    offs: &[u32],
    fits: bool,
    a: u32,
    adapter: &AdapterProfile,
) -> Option<u32> {
    (fits
        && shape.w_in.is_multiple_of(4)
        && adapter.storage_align.is_multiple_of(16)
        && crate::codegen::vec4_slots(offs, a).len() < offs.len())
    .then_some(a)
}

/// `vec4_input` for a `conv2d_tiled` tile of `pix` columns `q` apart.
pub fn tiled_vec4_input(
    shape: &Conv2dShape,
    pix: u32,
    q: u32,
    adapter: &AdapterProfile,
) -> Option<u32> {
    let spec = tile_columns(pix, q, &LayerSig::of(shape));
    vec4_input(shape, &spec.offsets(), spec.vin_fits(), adapter)
}

/// Whether a `conv2d_tiled` tile of `pix` columns on the flattened
/// `shape` ([`flat_shape`]) reads its input as the vec4s that hold its
/// columns, shifted into place (`VIN = 2`, see `codegen::TiledSpec::shifted`),
/// where rows of a multiple of 4 floats, which aligned reads need, are not
/// to be had: `h·w` planes such as 7×7 = 49. Every input window the
/// chunker makes then starts at an image or a group of channels (a flat
/// plan never splits rows), so `c_in/groups·h·w` a multiple of 4 makes
/// every window whole vec4s at a multiple of 4 floats.
///
/// Measured on lavapipe (1,320,1,49 → 1280 channels against 1,320,1,48 and
/// 1,320,1,56 with aligned reads, `wgconv bench --runs 40`, 2 alternations):
/// scalar reads took 3.7 ms where the aligned ones took 2.4–2.6 ms for as
/// much or more work.
pub fn tiled_shifted_input(
    shape: &Conv2dShape,
    pix: u32,
    q: u32,
    adapter: &AdapterProfile,
) -> bool {
    let u = u64::from;
    tile_columns(pix, q, &LayerSig::of(shape)).shifted_fits()
        && shape.h_in == 1
        && shape.padding == crate::geometry::Padding::default()
        && !shape.w_in.is_multiple_of(4)
        && (u(shape.c_in_per_group()) * u(shape.w_in)).is_multiple_of(4)
        && adapter.storage_align.is_multiple_of(16)
}

/// Whether a `conv2d_tiled` tile stores (and, in reduction segments,
/// reloads) its outputs as aligned vec4s of 4 neighbouring pixels (`VOUT`):
/// `pix` a multiple of 4 with no pixel spacing, output rows a multiple of 4
/// floats, windows 16-byte aligned. On lavapipe each storage access compiles
/// to its own per-lane loop, and one per accumulator was most of a kernel's
/// compile time (see the README).
pub fn tiled_vec4_output(shape: &Conv2dShape, pix: u32, q: u32, adapter: &AdapterProfile) -> bool {
    q == 1
        && pix.is_multiple_of(4)
        && shape.w_out.is_multiple_of(4)
        && adapter.storage_align.is_multiple_of(16)
}

/// Whether a `conv_transpose2d` tile of `pix` column steps stores its
/// `S_W·pix` neighbouring output columns as aligned vec4s (`VOUT`): `S_W·pix`
/// a multiple of 4, output rows a multiple of 4 floats, windows 16-byte
/// aligned (see [`tiled_vec4_output`]).
pub fn transposed_vec4_output(shape: &Conv2dShape, pix: u32, adapter: &AdapterProfile) -> bool {
    (pix * shape.stride_w).is_multiple_of(4)
        && shape.w_out.is_multiple_of(4)
        && adapter.storage_align.is_multiple_of(16)
}

/// The `VA` of a `conv_transpose2d` tile of `pix` column steps that reads
/// its input columns as aligned vec4s (`VIN`), or `None` where it reads
/// scalars. The columns start at `q0 + pad_left / S_W + first` (see
/// `TransposedSpec::shifted_offsets`) with `q0` a multiple of `pix`; so with
/// `pix` a multiple of 4 the first sits at the fixed position
/// `a = (pad_left / S_W + first) mod 4` of its vec4. The other conditions
/// are `vec4_input_at`'s: rows a multiple of 4 floats, 16-byte windows,
/// fewer vec4s than scalars (`tconv4`: 10 columns in 4 vec4s).
pub fn transposed_vec4_input(
    shape: &Conv2dShape,
    pix: u32,
    adapter: &AdapterProfile,
) -> Option<u32> {
    let spec = crate::codegen::TransposedSpec {
        pix,
        cob4: 1,
        k_w: shape.k_w,
        s_w: shape.stride_w,
        d_w: shape.dil_w,
        plr: shape.padding.left % shape.stride_w,
        vout: false,
        vin: None,
        sg: None,
        khu: 0,
    };
    let (first, rel) = spec.shifted_offsets();
    let a = (i64::from(shape.padding.left / shape.stride_w) + first).rem_euclid(4) as u32;
    vec4_input_at(shape, &rel, pix.is_multiple_of(4), a, adapter)
}

/// Whether a `conv2d_depthwise` tile of `pix` columns stores each of its
/// rows as aligned vec4s (`VOUT`): the conditions of [`tiled_vec4_output`]
/// with dense pixels. On lavapipe every storage access is a per-lane loop
/// and a depthwise tile does few multiply-adds per access, so storing a
/// quarter as many pays.
pub fn depthwise_vec4_output(shape: &Conv2dShape, pix: u32, adapter: &AdapterProfile) -> bool {
    tiled_vec4_output(shape, pix, 1, adapter)
}

/// `vec4_input` for a `conv2d_depthwise` tile of `pix` columns (`dw3s2`:
/// 17 columns in 5 vec4s).
pub fn depthwise_vec4_input(
    shape: &Conv2dShape,
    pix: u32,
    adapter: &AdapterProfile,
) -> Option<u32> {
    let spec = crate::codegen::DepthwiseSpec {
        pix,
        k_h: shape.k_h,
        k_w: shape.k_w,
        stride: (shape.stride_h, shape.stride_w),
        dilation: (shape.dil_h, shape.dil_w),
        vin: None,
        vout: false,
    };
    let fits = (pix * shape.stride_w).is_multiple_of(4);
    vec4_input(shape, &spec.cols(), fits, adapter)
}

/// The largest `WCAP` the adapter allows: a power of two of vec4s within
/// `max_uniform_buffer_binding_size` and [`TILED_MAX_WCAP`].
fn tiled_max_wcap(adapter: &AdapterProfile) -> u32 {
    let cap_bytes = adapter
        .max_uniform_binding
        .min(u64::from(TILED_MAX_WCAP) * 16);
    1u32 << (cap_bytes / 16).max(1).ilog2()
}

/// vec4s a uniform window may start before the weight it is for: the
/// offset alignment in vec4s, less one.
fn uniform_slack(adapter: &AdapterProfile) -> u32 {
    adapter.uniform_align.max(16) / 16 - 1
}

/// Whether one input channel of a `conv2d_tiled` block of `cob4` vec4s of
/// output channels fits its weight binding: always where blocks too large
/// for a uniform window get a storage one ([`storage_weights`]), else one
/// uniform window with its alignment slack (the smallest reduction segment).
fn tiled_fits(sig: &LayerSig, cob4: u32, adapter: &AdapterProfile) -> bool {
    subgroup_weights(adapter) > 0 || uniform_fits(sig, cob4, adapter)
}

/// Whether one input channel of a block fits a uniform weight window.
fn uniform_fits(sig: &LayerSig, cob4: u32, adapter: &AdapterProfile) -> bool {
    u64::from(sig.k_h * sig.k_w) * u64::from(cob4) + u64::from(uniform_slack(adapter))
        <= u64::from(tiled_max_wcap(adapter))
}

/// Bytes of zeros appended to a layer's packed weight so that every weight
/// window of its kernel is in bounds: `WCAP` vec4s for `conv2d_tiled`
/// (windows have exactly that size; see [`tiled_weight_cap`]), none for the
/// others.
pub fn weight_padding(
    sig: &LayerSig,
    adapter: &AdapterProfile,
    force: Option<Kernel>,
    layout: WeightLayout,
) -> u64 {
    match (weight_layout(sig, adapter, force).0, layout) {
        (Kernel::Conv2dTiled, WeightLayout::Blocked { cob4 }) => {
            u64::from(tiled_weight_cap(sig, cob4, adapter)) * 16
        }
        _ => 0,
    }
}

/// Whether a forward `conv2d_tiled` layer takes 32 output channels per
/// invocation although its kernel is wider than 1×1, on a CPU adapter: a
/// dilated layer whose pixels are [`pixel_spacing`] apart (phase-spaced
/// rows), or one with 2 or 3 kernel rows (unrolled, see [`unrolled_rows`])
/// and at least 128 output channels per group. A full 32-channel block then
/// holds at most 4 pixels (`plan_with`), the accumulators of the 8 × 16
/// default, so it compiles no longer (a group of 17–28 channels keeps up to
/// 8 pixels for its narrower block);
/// each input load feeds twice the output channels, and a strided tile of 4
/// pixels loads 9 columns (3 vec4s) where 8 load 17 (5).
/// Lavapipe-specific (a GPU keeps its accumulators in registers and its loads
/// coalesced either way); unmeasured on GPUs. Measured on the current host
/// (`wgconv bench --runs 21`, alternated processes, medians, ms, 16 → 32
/// channels): aspp12, F4 / direct with 32 channels (pix3, the autotuner's
/// pick): 19.36 / 18.84, 19.32 / 19.11, 19.39 / 19.40, 20.32 / 19.24, with 16
/// channels direct took 24.7–25.7, first result with Mesa's cache off
/// 0.69–0.71 (F4) → 0.37–0.38 s; at stride 2, r3x3s2 3.38 → 3.07, 3.57 →
/// 3.18, 3.67 → 3.14, 3.92 → 3.11 (first result 0.39–0.42 / 0.41–0.45 s);
/// 256 channels at 28×28 3.91 → 3.55, 3.86 → 3.31; at stride 1 (direct forms,
/// `--winograd off --runs 21`, 3 alternations) 512 at 7×7 4.85 → 4.19, 4.58 →
/// 4.18, 4.78 → 4.33; 256 at 14×14 4.51 → 3.63, 4.78 → 3.68, 4.48 → 3.95; 512
/// at 14×14 18.6 → 14.0, 18.4 → 14.4, 18.0 → 14.3; 256 at 28×28 13.4 → 11.7,
/// 13.3 → 10.8, 13.3 → 12.2; 128 at 56×56 (`--runs 15`) 11.6 → 11.6, 11.8 →
/// 12.3. Not with 64 channels (64 at 112×112 stride 2, `--runs 31`: 4.54 →
/// 4.63, 4.31 → 4.38, 4.29 → 4.42), for one-row kernels (1×3, 128 at 28×28:
/// 1.52 → 1.65, 1.38 → 1.91, 2.52 → 1.89) nor for stem7 (7×7: 4.13 → 4.45,
/// 3.73 → 4.40).
fn few_pixel_wide_blocks(sig: &LayerSig, adapter: &AdapterProfile) -> bool {
    let wide_rows = unrolled_rows(sig, adapter) > 0 && sig.c_out_per_group >= 128;
    adapter.device_type == wgpu::DeviceType::Cpu && (pixel_spacing(sig) > 1 || wide_rows)
}

/// Column spacing of the pixels of one `conv2d_tiled` invocation: with
/// dilation, `D_W / gcd(S_W, D_W)` puts pixels that share taps together.
fn pixel_spacing(s: &LayerSig) -> u32 {
    let (sw, dw) = (s.stride.1, s.dilation.1);
    if dw > 1 {
        dw / crate::ops::gcd(sw, dw)
    } else {
        1
    }
}

/// Distinct input columns one `conv2d_tiled` invocation loads per (ci, kh).
fn tiled_loads(pix: u32, q: u32, s: &LayerSig) -> u32 {
    tile_columns(pix, q, s).offsets().len() as u32
}

/// The column geometry of a `conv2d_tiled` tile of `pix` columns `q` apart
/// on layer `s` (the rest of the specialisation at its plainest), for the
/// planner's questions about the columns a tile reads.
fn tile_columns(pix: u32, q: u32, s: &LayerSig) -> crate::codegen::TiledSpec {
    crate::codegen::TiledSpec {
        pix,
        cob4: 1,
        k_w: s.k_w,
        s_w: s.stride.1,
        d_w: s.dilation.1,
        q,
        kh1: s.k_h == 1,
        segs: false,
        vin: None,
        shifted: false,
        vout: false,
        sg: None,
        cu: 1,
        res: false,
        khu: 0,
    }
}

/// Repacks a PyTorch-layout weight (forward `[c_out, c_in/G, k_h, k_w]`,
/// transposed `[c_in, c_out/G, k_h, k_w]`) into `layout`.
pub fn repack_weight(weight: &[f32], sig: &LayerSig, layout: WeightLayout) -> Vec<f32> {
    match layout {
        WeightLayout::Natural => weight.to_vec(),
        WeightLayout::Blocked { cob4 } => {
            let cob = (cob4 * 4) as usize;
            let (cpg_in, cpg_out) = (sig.c_in_per_group as usize, sig.c_out_per_group as usize);
            let taps = (sig.k_h * sig.k_w) as usize;
            let blocks = cpg_out.div_ceil(cob);
            let groups = sig.groups as usize;
            // Flat index of tap t of (input channel ci, output channel co) in the source.
            let src = |g: usize, ci: usize, co_local: usize, t: usize| match sig.kind {
                ConvKind::Forward => ((g * cpg_out + co_local) * cpg_in + ci) * taps + t,
                ConvKind::Transposed => ((g * cpg_in + ci) * cpg_out + co_local) * taps + t,
            };
            let mut out = vec![0f32; groups * blocks * cpg_in * taps * cob];
            for g in 0..groups {
                for b in 0..blocks {
                    for ci in 0..cpg_in {
                        for t in 0..taps {
                            for j in 0..cob.min(cpg_out - b * cob) {
                                let dst = (((g * blocks + b) * cpg_in + ci) * taps + t) * cob + j;
                                out[dst] = weight[src(g, ci, b * cob + j, t)];
                            }
                        }
                    }
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Conv2dParams, Padding};

    /// The Winograd default's shape rule on the measured points (see
    /// `winograd_pays_off`): true exactly where F(4×4, 3×3) measured faster.
    #[test]
    fn winograd_pays_off_where_it_measured_faster() {
        let shape = |n: u32, c: u32, hw: u32| {
            Conv2dShape::conv2d(
                [n as usize, c as usize, hw as usize, hw as usize],
                [c as usize, c as usize, 3, 3],
                None,
                &Conv2dParams::default().padding(Padding::uniform(1)),
            )
            .unwrap()
        };
        // With textures (the CPU profile's default): the current host's points.
        for (n, c, hw, faster) in [
            (1, 32, 56, false),
            (1, 32, 112, false),
            (1, 64, 56, false),
            (2, 64, 56, false),
            (4, 64, 28, false),
            (1, 64, 80, true),
            (1, 64, 112, true),
            (1, 128, 14, false),
            (1, 128, 20, false),
            (1, 128, 28, true),
            (8, 128, 28, true),
            (1, 256, 14, false),
            (1, 256, 16, false),
            (1, 256, 20, false),
            (1, 256, 24, true),
            (1, 256, 28, true),
            (1, 512, 14, false),
            (1, 512, 20, false),
            (1, 512, 28, true),
        ] {
            assert_eq!(
                winograd_pays_off(&shape(n, c, hw), 4, &cpu()),
                faster,
                "{n}x{c}x{hw}² with textures"
            );
        }
        // Without textures.
        let plain = cpu().with_texture_inputs(false);
        for (n, c, hw, faster) in [
            (1, 512, 7, false),
            (4, 512, 7, false),
            (8, 512, 7, false),
            (1, 512, 14, false),
            (1, 512, 28, true),
            (1, 256, 12, true),
            (1, 256, 14, true),
            (1, 128, 7, false),
            (2, 128, 8, false),
            (1, 128, 28, true),
            (1, 64, 4, false),
            (1, 64, 8, false),
            (1, 64, 12, true),
            (1, 64, 16, true),
            (1, 64, 56, true),
        ] {
            assert_eq!(
                winograd_pays_off(&shape(n, c, hw), 4, &plain),
                faster,
                "{n}x{c}x{hw}²"
            );
        }
        // DeepLab's ASPP branches: 33×33, 2048 → 256 channels, dilation 6 and 18
        // (with textures 47 % and 21 % of the tiles' outputs real: direct).
        for (d, textures, faster) in [
            (6, true, false),
            (6, false, true),
            (18, true, false),
            (18, false, false),
        ] {
            let s = dilated_3x3(2048, 256, 33, d);
            let p = cpu().with_texture_inputs(textures);
            assert_eq!(
                winograd_pays_off(&s, 4, &p),
                faster,
                "dilation {d}, {textures}"
            );
        }
        // Dilated, with textures: lane order (d_w a multiple of 4) or scalar phases.
        for (c, hw, d, faster) in [
            (21, 64, 4, false),
            (32, 64, 4, false),
            (32, 64, 8, false),
            (64, 64, 4, true),
            (64, 64, 8, true),
            (21, 64, 2, false),
            (32, 64, 2, false),
            (64, 64, 2, false),
            (128, 32, 2, true),
            (128, 33, 6, false),
        ] {
            let s = dilated_3x3(c, c, hw, d);
            assert_eq!(winograd_pays_off(&s, 4, &cpu()), faster, "{c}x{hw}² d{d}");
        }
        // The suite's Winograd layers: ctx8 (dilated) and b8, and aspp12 without
        // textures; r3x3 (64 channels, 196 tiles) and aspp12 (47 % real) run
        // direct with textures.
        for l in crate::suite::SUITE
            .iter()
            .filter(|l| ["aspp12", "ctx8", "b8", "r3x3"].contains(&l.name))
        {
            for p in [cpu(), cpu().with_texture_inputs(false)] {
                let want = !["r3x3", "aspp12"].contains(&l.name) || !texture_reads(&p);
                assert_eq!(
                    winograd_pays_off(&l.shape().unwrap(), 4, &p),
                    want,
                    "{}",
                    l.name
                );
            }
        }
    }

    fn profile(device_type: wgpu::DeviceType) -> AdapterProfile {
        AdapterProfile::new(device_type, wgpu::Backend::Vulkan, &wgpu::Limits::default())
    }

    /// `conv2d_tiled` unrolls kernels of 2 or 3 rows on CPU adapters only.
    #[test]
    fn kernel_rows_unroll_for_short_kernels_on_cpu_adapters() {
        let khu = |k: usize, stride: u32, adapter: &AdapterProfile| {
            let shape = Conv2dShape::conv2d(
                [1, 32, 28, 28],
                [32, 32, k, k],
                None,
                &Conv2dParams::default()
                    .padding(Padding::uniform(k as u32 / 2))
                    .stride(stride, stride),
            )
            .unwrap();
            let key = plan(&shape, Activation::None, adapter, None).key;
            assert_eq!(key.kernel, Kernel::Conv2dTiled, "{key}");
            key.consts.iter().find(|c| c.0 == "KHU").map(|c| c.1)
        };
        assert_eq!(khu(3, 2, &cpu()), Some(3));
        assert_eq!(khu(2, 1, &cpu()), Some(2));
        assert_eq!(khu(1, 1, &cpu()), Some(0));
        assert_eq!(khu(5, 1, &cpu()), Some(0));
        assert_eq!(khu(7, 2, &cpu()), Some(0));
    }

    /// Dilated grids run in lane order (`DIL = 2`, vec4 loads and stores)
    /// exactly where `d_w`, the widths and the left padding are multiples
    /// of 4 (ctx8), else in scalar phases (aspp12: 33 wide).
    #[test]
    fn dilated_winograd_uses_lane_order_where_columns_align() {
        let keys = |input: [usize; 4], pad: Padding, dil: (u32, u32)| {
            let shape = Conv2dShape::conv2d(
                input,
                [64, input[1], 3, 3],
                None,
                &Conv2dParams::default().padding(pad).dilation(dil.0, dil.1),
            )
            .unwrap();
            let [i, _, o] = winograd_keys(&shape, 4, Activation::None, &cpu(), 64);
            let c = |k: &KernelKey, n: &str| k.consts.iter().find(|c| c.0 == n).map(|c| c.1);
            (
                c(&i, "DIL"),
                c(&i, "VIN"),
                c(&i, "VA"),
                c(&o, "DIL"),
                c(&o, "VOUT"),
            )
        };
        let lanes = (Some(2), Some(1), Some(0), Some(2), Some(1));
        let phases = (Some(1), Some(0), Some(0), Some(1), Some(0));
        assert_eq!(keys([1, 64, 64, 64], Padding::uniform(8), (8, 8)), lanes);
        assert_eq!(
            keys([1, 64, 20, 12], Padding::new(2, 4, 2, 4), (2, 4)),
            lanes
        );
        assert_eq!(
            keys([1, 256, 33, 33], Padding::uniform(12), (12, 12)),
            phases
        );
        assert_eq!(keys([1, 64, 64, 64], Padding::uniform(6), (6, 6)), phases);
        assert_eq!(
            keys([1, 64, 64, 64], Padding::new(8, 2, 8, 6), (8, 4)),
            phases
        );
        assert_eq!(keys([1, 64, 64, 64], Padding::uniform(2), (2, 2)), phases);
        let dense = keys([1, 64, 64, 64], Padding::uniform(1), (1, 1));
        assert_eq!(dense.0, Some(0));
    }

    fn cpu() -> AdapterProfile {
        profile(wgpu::DeviceType::Cpu)
    }

    /// A 3×3 convolution of `c_in` → `c_out` channels on one `hw × hw` image,
    /// dilation `d` padded to keep the size.
    fn dilated_3x3(c_in: usize, c_out: usize, hw: usize, d: u32) -> Conv2dShape {
        Conv2dShape::conv2d(
            [1, c_in, hw, hw],
            [c_out, c_in, 3, 3],
            None,
            &Conv2dParams::default()
                .padding(Padding::uniform(d))
                .dilation(d, d),
        )
        .unwrap()
    }

    fn discrete() -> AdapterProfile {
        profile(wgpu::DeviceType::DiscreteGpu)
    }

    fn conv(input: [usize; 4], weight: [usize; 4], params: Conv2dParams) -> Conv2dShape {
        Conv2dShape::conv2d(input, weight, None, &params).unwrap()
    }

    #[test]
    fn loop_kernels_read_storage_textures() {
        let p3 = Conv2dParams::default().padding(Padding::uniform(1));
        // r3x3s2 (tiled), dw3 (depthwise), and a transposed layer.
        let tiled = conv([1, 128, 56, 56], [128, 128, 3, 3], p3.stride(2, 2));
        let dw = conv([1, 144, 56, 56], [144, 1, 3, 3], p3.groups(144));
        let tp = Conv2dShape::conv_transpose2d(
            [1, 64, 64, 64],
            [64, 32, 3, 3],
            None,
            &crate::ConvTranspose2dParams::default()
                .stride(2, 2)
                .padding(Padding::uniform(1))
                .output_padding(1, 1),
        )
        .unwrap();
        for (shape, kernel, tin, twt) in [
            (&tiled, Kernel::Conv2dTiled, 2, Some(2)),
            (&dw, Kernel::Conv2dDepthwise, 2, None),
            (&tp, Kernel::ConvTranspose2d, 2, Some(2)),
        ] {
            let key = plan(shape, Activation::None, &cpu(), None).key;
            assert_eq!(key.kernel, kernel, "{key}");
            assert!(key.is("TIN", tin), "{key}");
            assert!(twt.is_none_or(|v| key.is("TWT", v)), "{key}");
            assert_eq!(key.storage_textures(), tin == 2, "{key}");
            let src = key.wgsl().unwrap();
            let storage = src.contains("texture_storage_2d<rgba32float, read>");
            assert_eq!(storage, tin == 2, "{key}");
            assert_eq!(src.contains("texture_2d<f32>"), tin == 1, "{key}");
            // The same key without textures reads storage buffers.
            let plain = plan(
                shape,
                Activation::None,
                &cpu().with_texture_inputs(false),
                None,
            )
            .key;
            assert!(plain.is("TIN", 0) && !plain.storage_textures(), "{plain}");
            let src = plain.wgsl().unwrap();
            assert!(!src.contains(": texture_"), "{plain}");
        }
        // One bind-group layout holds one texture kind: a key that mixes them,
        // or names a kind that does not exist, does not build.
        let key = plan(&tp, Activation::None, &cpu(), None).key;
        for (tin, twt) in [(1, 2), (2, 1), (3, 2), (2, 3)] {
            let mut bad = key.clone();
            for c in &mut bad.consts {
                match c.0 {
                    "TIN" => c.1 = tin,
                    "TWT" => c.1 = twt,
                    _ => {}
                }
            }
            assert!(
                matches!(bad.wgsl(), Err(crate::Error::Shader { .. })),
                "TIN {tin} TWT {twt}"
            );
        }
    }

    #[test]
    fn phase_scatters_take_vec4s_of_rows_of_four_and_read_textures() {
        let max = MAX_GROUPS_PER_DIM;
        // Rows of 32: vec4s, from a storage texture on a CPU adapter.
        let p = plan_phase_scatter(64 * 32 * 32, 32, max, &cpu());
        assert!(p.key.is("V", 4) && p.key.is("TIN", 2), "{}", p.key);
        assert_eq!(p.groups, [64 * 32 * 32 / 4 / WORKGROUP, 1, 1]);
        let src = p.key.wgsl().unwrap();
        assert!(src.contains("phase: texture_storage_2d<rgba32float, read>"));
        assert!(src.contains("load_input(q)"));
        // Without textures: vec4 storage loads.
        let p = plan_phase_scatter(64 * 32 * 32, 32, max, &cpu().with_texture_inputs(false));
        assert!(p.key.is("V", 4) && p.key.is("TIN", 0), "{}", p.key);
        assert!(p.key.wgsl().unwrap().contains("phase: array<vec4<f32>>"));
        // Rows of 6: one element per invocation, never a texture.
        let p = plan_phase_scatter(64 * 6 * 6, 6, max, &cpu());
        assert!(p.key.is("V", 1) && p.key.is("TIN", 0), "{}", p.key);
        assert_eq!(p.groups, [(64 * 6 * 6usize).div_ceil(64) as u32, 1, 1]);
        assert!(p.key.wgsl().unwrap().contains("phase: array<f32>"));
    }

    #[test]
    fn depthwise_row_fmas_bound_the_pixels_not_the_rows() {
        // (channels, plane, kernel) -> (PIX, PH): a row of 8 pixels of a
        // 7×7 kernel fits MAX_DEPTHWISE_FMAS; of an 11×11 kernel, 4 do. Every
        // tile takes MAX_PH rows.
        for (c, h, k, pix, ph) in [
            (96, 56, 7, 8, 16),
            (32, 112, 5, 8, 16),
            (144, 56, 3, 8, 16),
            (16, 64, 11, 4, 16),
        ] {
            let s = conv(
                [1, c, h, h],
                [c, 1, k, k],
                Conv2dParams::default()
                    .padding(Padding::uniform(k as u32 / 2))
                    .groups(c as u32),
            );
            let key = plan(&s, Activation::None, &cpu(), None).key;
            assert_eq!(key.kernel, Kernel::Conv2dDepthwise, "{key}");
            assert!(key.is("PIX", pix) && key.is("PH", ph), "{k}x{k}: {key}");
            assert!(pix * (k * k) as u32 <= MAX_DEPTHWISE_FMAS);
        }
    }

    #[test]
    fn pointwise_planes_run_as_single_rows() {
        let pw = Conv2dParams::default();
        let tiled = Some(Kernel::Conv2dTiled);
        let p = cpu();
        // 14×14: one row of 196 floats, 25 blocks of 8 in one workgroup,
        // whole vec4s in and out.
        let s = conv([1, 96, 14, 14], [576, 96, 1, 1], pw);
        let flat = flat_shape(&s, &p).unwrap();
        assert_eq!(
            (flat.h_in, flat.w_in, flat.h_out, flat.w_out),
            (1, 196, 1, 196)
        );
        assert_eq!((flat.c_in, flat.c_out, flat.n), (96, 576, 1));
        let planned = plan(&s, Activation::None, &p, tiled);
        assert!(planned.flat);
        assert_eq!(planned.exec_shape(&s), flat);
        assert_eq!((planned.blocks_w, planned.groups[0]), (25, 1));
        assert!(
            planned.key.is("VIN", 1) && planned.key.is("VOUT", 1),
            "{}",
            planned.key
        );
        // 7×7: rows of 49 floats, read as shifted vec4s; scalar stores.
        let s = conv([2, 320, 7, 7], [1280, 320, 1, 1], pw);
        let planned = plan(&s, Activation::None, &p, tiled);
        assert!(planned.flat && planned.key.is("VIN", 2), "{}", planned.key);
        assert!(planned.key.is("VOUT", 0), "{}", planned.key);
        assert_eq!(planned.groups, [1, 40, 2]);
        // Not the same computation as a row: stride, padding, a wider kernel.
        for (w, params) in [
            ([8, 96, 1, 1], pw.stride(2, 2)),
            ([8, 96, 1, 1], pw.padding(Padding::uniform(1))),
            ([8, 96, 3, 3], pw.padding(Padding::uniform(1))),
            ([8, 96, 1, 3], pw),
        ] {
            let s = conv([1, 96, 14, 14], w, params);
            assert!(flat_shape(&s, &p).is_none(), "{w:?} {params:?}");
            assert!(!plan(&s, Activation::None, &p, tiled).flat);
        }
        // An image larger than a binding keeps its rows, for `chunk` to split.
        let s = conv([1, 96, 14, 14], [8, 96, 1, 1], pw);
        let small = AdapterProfile {
            max_storage_binding: 4 * 96 * 196 - 4,
            ..cpu()
        };
        assert!(flat_shape(&s, &small).is_none());
        assert!(flat_shape(&s, &cpu()).is_some());
    }

    #[test]
    fn depthwise_tiles_fill_workgroups_with_channels_on_cpus_and_shrink_on_gpus() {
        let dw = |h: usize, c: usize| {
            conv(
                [1, c, h, h],
                [c, 1, 3, 3],
                Conv2dParams::default()
                    .padding(Padding::uniform(1))
                    .groups(c as u32),
            )
        };
        // (plane, channels) -> CPU tile, GPU tile, channels per unit (PIX, PH, CB).
        for (h, c, on_cpu, on_gpu, cb) in [
            (7, 960, (8, 8), (1, 1), 64),
            (14, 384, (8, 16), (2, 2), 64),
            (28, 192, (8, 16), (4, 4), 64),
            (56, 144, (8, 16), (8, 8), 48),
        ] {
            let s = dw(h, c);
            for (p, (pix, ph)) in [(cpu(), on_cpu), (discrete(), on_gpu)] {
                let key = plan(&s, Activation::None, &p, None).key;
                assert_eq!(key.kernel, Kernel::Conv2dDepthwise, "{key}");
                assert!(key.is("PIX", pix) && key.is("PH", ph), "{h}: {key}");
                assert!(key.is("CB", cb), "{h}: {key}");
                if p.device_type != wgpu::DeviceType::Cpu {
                    let tiles = (h as u32).div_ceil(pix) * (h as u32).div_ceil(ph);
                    assert!(tiles >= DEPTHWISE_MIN_TILES, "{h}: {tiles}");
                }
            }
            // A tile the autotuner (or a caller) chose stands.
            let forced = plan_with(
                &s,
                Activation::None,
                &discrete(),
                None,
                Some(Tile::new(8, 8)),
            );
            assert!(
                forced.key.is("PIX", 8) && forced.key.is("PH", 8),
                "{}",
                forced.key
            );
        }
        // dw3s2 (stride 2, 56x56 out) takes 8x16 tiles too.
        let s2 = conv(
            [1, 96, 112, 112],
            [96, 1, 3, 3],
            Conv2dParams::default()
                .padding(Padding::uniform(1))
                .stride(2, 2)
                .groups(96),
        );
        let key = plan(&s2, Activation::None, &cpu(), None).key;
        assert!(key.is("PIX", 8) && key.is("PH", 16), "{key}");
    }

    #[test]
    fn gpus_take_the_shared_kernel_and_cpus_the_tiled_one() {
        // r3x3: 64 -> 64 channels, 3x3, 56x56.
        let s = conv(
            [1, 64, 56, 56],
            [64, 64, 3, 3],
            Conv2dParams::default().padding(Padding::uniform(1)),
        );
        for gpu in [discrete(), profile(wgpu::DeviceType::IntegratedGpu)] {
            let p = plan(&s, Activation::Relu, &gpu, None);
            assert_eq!(p.key.kernel, Kernel::Conv2dShared);
            assert_eq!(p.layout, weight_layout(&LayerSig::of(&s), &gpu, None).1);
            // 64x64 tiles: one channel block, 56·56 / 64 = 49 pixel tiles.
            assert_eq!(p.layout, WeightLayout::Blocked { cob4: 16 });
            assert_eq!(p.groups, [49, 1, 1]);
            assert!(p.key.consts.contains(&("TM", 4)) && p.key.consts.contains(&("TN", 4)));
            assert_eq!(p.tile(), None, "nothing for the autotuner");
        }
        for other in [
            cpu(),
            profile(wgpu::DeviceType::VirtualGpu),
            profile(wgpu::DeviceType::Other),
        ] {
            assert_eq!(
                plan(&s, Activation::Relu, &other, None).key.kernel,
                Kernel::Conv2dTiled
            );
        }
        // Pointwise and grouped layers with 16+ channels per group go to it too.
        let pw = conv([1, 128, 28, 28], [256, 128, 1, 1], Conv2dParams::default());
        assert_eq!(
            plan(&pw, Activation::None, &discrete(), None).key.kernel,
            Kernel::Conv2dShared
        );
        let grouped = conv(
            [2, 64, 14, 14],
            [64, 16, 3, 3],
            Conv2dParams::default()
                .padding(Padding::uniform(1))
                .groups(4),
        );
        let p = plan(&grouped, Activation::None, &discrete(), None);
        assert_eq!(p.key.kernel, Kernel::Conv2dShared);
        // 16 channels per group: TN = 1, one block per group; 196 pixels: TM = 4.
        assert_eq!(p.layout, WeightLayout::Blocked { cob4: 4 });
        assert_eq!(p.groups, [196u32.div_ceil(64), 4, 2]);
    }

    #[test]
    fn small_groups_and_depthwise_stay_off_the_shared_kernel_on_gpus() {
        // grp32: 32 groups of 4 channels.
        let grp = conv(
            [1, 128, 28, 28],
            [128, 4, 3, 3],
            Conv2dParams::default()
                .padding(Padding::uniform(1))
                .groups(32),
        );
        assert_eq!(
            plan(&grp, Activation::None, &discrete(), None).key.kernel,
            Kernel::Conv2dTiled
        );
        // K = 3·1·1 < 16.
        let thin = conv([1, 3, 32, 32], [64, 3, 1, 1], Conv2dParams::default());
        assert_eq!(
            plan(&thin, Activation::None, &discrete(), None).key.kernel,
            Kernel::Conv2dTiled
        );
        let dw = conv(
            [1, 64, 28, 28],
            [64, 1, 5, 5],
            Conv2dParams::default()
                .padding(Padding::uniform(2))
                .groups(64),
        );
        assert_eq!(
            plan(&dw, Activation::None, &discrete(), None).key.kernel,
            Kernel::Conv2dDepthwise
        );
    }

    #[test]
    fn forced_shared_kernel_runs_anything_forward() {
        // Forced on a CPU adapter, on a tiny layer, with small tiles.
        let s = conv([1, 3, 5, 3], [5, 3, 2, 2], Conv2dParams::default());
        let p = plan(&s, Activation::None, &cpu(), Some(Kernel::Conv2dShared));
        assert_eq!(p.key.kernel, Kernel::Conv2dShared);
        assert_eq!(p.layout, WeightLayout::Blocked { cob4: 4 });
        // 4x2 = 8 output pixels: TM = 1, one tile of 16.
        assert!(p.key.consts.contains(&("TM", 1)) && p.key.consts.contains(&("TN", 1)));
        assert_eq!(p.groups, [1, 1, 1]);
        // An adapter below WebGPU's limits cannot run it: the tiled kernel instead.
        let small = AdapterProfile {
            max_workgroup_storage: 4096,
            ..cpu()
        };
        assert_eq!(
            plan(&s, Activation::None, &small, Some(Kernel::Conv2dShared))
                .key
                .kernel,
            Kernel::Conv2dTiled
        );
        assert!(!AdapterProfile {
            max_invocations: 128,
            ..discrete()
        }
        .fits_shared());
        assert!(discrete().fits_shared());
    }

    #[test]
    fn depthwise_goes_to_the_depthwise_kernel() {
        let s = Conv2dShape::conv2d(
            [1, 144, 56, 56],
            [144, 1, 3, 3],
            None,
            &Conv2dParams::default()
                .padding(Padding::uniform(1))
                .groups(144),
        )
        .unwrap();
        let p = plan(&s, Activation::Relu6, &cpu(), None);
        assert_eq!(p.key.kernel, Kernel::Conv2dDepthwise);
        // 16 rows x 8 pixels per invocation at stride 1: 7 x 4 tiles per 56x56 plane,
        // in units of 48 channels (the largest divisor of 144 up to a workgroup).
        assert!(p.key.consts.contains(&("CB", 48)), "{}", p.key);
        assert_eq!(p.groups, [(7 * 4 * 48u32).div_ceil(WORKGROUP), 3, 1]);
        assert!(p.key.consts.contains(&("PH", 16)), "{}", p.key);
        // Stride 2, 28 output rows: 16-row tiles too.
        let s2 = Conv2dShape::conv2d(
            [1, 96, 56, 56],
            [96, 1, 3, 3],
            None,
            &Conv2dParams::default()
                .padding(Padding::uniform(1))
                .stride(2, 2)
                .groups(96),
        )
        .unwrap();
        let p2 = plan(&s2, Activation::None, &cpu(), None);
        assert!(p2.key.consts.contains(&("PH", 16)), "{}", p2.key);
        // A 5x5 kernel at stride 1: a row of 8 pixels is within the multiply-add bound.
        let s5 = Conv2dShape::conv2d(
            [1, 8, 20, 20],
            [8, 1, 5, 5],
            None,
            &Conv2dParams::default()
                .padding(Padding::uniform(2))
                .groups(8),
        )
        .unwrap();
        let p5 = plan(&s5, Activation::None, &cpu(), None);
        assert!(p5.key.is("PH", 16) && p5.key.is("PIX", 8), "{}", p5.key);
        // Bindings of 4 KiB: a band of 16 output rows of 80 floats (5 KiB) would not
        // fit one, so `chunk` could not split the layer by rows; 8 rows do.
        let s80 = conv(
            [1, 8, 80, 80],
            [8, 1, 3, 3],
            Conv2dParams::default()
                .padding(Padding::uniform(1))
                .groups(8),
        );
        let small = AdapterProfile {
            max_storage_binding: 4096,
            ..cpu()
        };
        let p80 = plan(&s80, Activation::None, &small, None);
        assert!(p80.key.is("PH", 8) && p80.key.is("CB", 1), "{}", p80.key);
        assert!(plan(&s80, Activation::None, &cpu(), None).key.is("CB", 8));
    }

    #[test]
    fn dense_goes_to_the_tiled_kernel_and_layouts_agree() {
        let s = Conv2dShape::conv2d(
            [1, 64, 56, 56],
            [64, 64, 3, 3],
            None,
            &Conv2dParams::default().padding(Padding::uniform(1)),
        )
        .unwrap();
        let p = plan(&s, Activation::None, &cpu(), None);
        assert_eq!(p.key.kernel, Kernel::Conv2dTiled);
        assert_eq!(p.layout, weight_layout(&LayerSig::of(&s), &cpu(), None).1);
        assert_eq!(p.layout, WeightLayout::Blocked { cob4: 4 });
        assert_eq!(p.groups, [(56 * 7u32).div_ceil(WORKGROUP), 4, 1]);
    }

    #[test]
    fn pointwise_takes_32_channel_blocks() {
        let s = Conv2dShape::conv2d(
            [1, 256, 56, 56],
            [64, 256, 1, 1],
            None,
            &Conv2dParams::default(),
        )
        .unwrap();
        let p = plan(&s, Activation::None, &cpu(), None);
        assert_eq!(p.key.kernel, Kernel::Conv2dTiled);
        assert_eq!(p.layout, WeightLayout::Blocked { cob4: 8 });
        assert_eq!(p.blocks_per_group, 2);
    }

    /// Kernels of 2 or 3 rows with at least 128 output channels take
    /// 32-channel blocks of 4 pixels on CPU adapters, at any stride (see
    /// `few_pixel_wide_blocks`); 64 channels, one-row and 7×7 kernels and
    /// GPUs keep 16 channels and 8 pixels.
    #[test]
    fn short_kernels_with_many_channels_take_32_channel_blocks() {
        let key = |c: usize, (kh, kw): (usize, usize), stride: u32, adapter: &AdapterProfile| {
            let s = Conv2dShape::conv2d(
                [1, c, 56, 56],
                [c, c, kh, kw],
                None,
                &Conv2dParams::default()
                    .padding(Padding::symmetric(kh as u32 / 2, kw as u32 / 2))
                    .stride(stride, stride),
            )
            .unwrap();
            let p = plan(&s, Activation::None, adapter, Some(Kernel::Conv2dTiled));
            let pix = p.key.consts.iter().find(|c| c.0 == "PIX").map(|c| c.1);
            (p.layout, pix)
        };
        let blocked = |cob4| WeightLayout::Blocked { cob4 };
        assert_eq!(key(128, (3, 3), 2, &cpu()), (blocked(8), Some(4)));
        assert_eq!(key(256, (2, 2), 2, &cpu()), (blocked(8), Some(4)));
        assert_eq!(key(256, (3, 3), 1, &cpu()), (blocked(8), Some(4)));
        assert_eq!(key(128, (3, 1), 1, &cpu()), (blocked(8), Some(4)));
        assert_eq!(key(64, (3, 3), 2, &cpu()), (blocked(4), Some(8)));
        assert_eq!(key(64, (3, 3), 1, &cpu()), (blocked(4), Some(8)));
        assert_eq!(key(128, (1, 3), 1, &cpu()), (blocked(4), Some(8)));
        assert_eq!(key(128, (7, 7), 2, &cpu()), (blocked(4), Some(8)));
        let gpu = profile(wgpu::DeviceType::DiscreteGpu);
        assert_eq!(key(128, (3, 3), 2, &gpu).0, blocked(4));
    }

    #[test]
    fn first_results_take_compact_tiles_on_cpu_adapters_only() {
        let sig = |c_in: u32, c_out: u32, groups: u32, k: (u32, u32), kind: ConvKind| LayerSig {
            kind,
            groups,
            c_in_per_group: c_in / groups,
            c_out_per_group: c_out / groups,
            k_h: k.0,
            k_w: k.1,
            stride: (1, 1),
            dilation: (1, 1),
        };
        let compact = |cob4| {
            Some(Tile {
                pix: 4,
                ph: 1,
                cob4: Some(cob4),
            })
        };
        let fwd = ConvKind::Forward;
        // 4 columns of 2 vec4s, or of the planner's block where it is smaller.
        assert_eq!(
            first_result_tile(&sig(128, 128, 1, (3, 3), fwd), &cpu(), None),
            compact(2)
        );
        assert_eq!(
            first_result_tile(&sig(256, 64, 1, (1, 1), fwd), &cpu(), None),
            compact(2)
        );
        assert_eq!(
            first_result_tile(&sig(64, 64, 1, (4, 4), ConvKind::Transposed), &cpu(), None),
            compact(2)
        );
        let grouped = sig(256, 256, 64, (3, 3), fwd);
        assert_eq!(
            weight_layout(&grouped, &cpu(), None).1,
            WeightLayout::Blocked { cob4: 1 }
        );
        assert_eq!(first_result_tile(&grouped, &cpu(), None), compact(1));
        // Depthwise and the direct kernel keep theirs, and so does every GPU.
        assert_eq!(
            first_result_tile(&sig(64, 64, 64, (3, 3), fwd), &cpu(), None),
            None
        );
        let s = sig(128, 128, 1, (3, 3), fwd);
        assert_eq!(
            first_result_tile(&s, &cpu(), Some(Kernel::Conv2dDirect)),
            None
        );
        assert_eq!(first_result_tile(&s, &discrete(), None), None);
        // The tile fits the shape as any other: a row of 2 takes 2 columns.
        let narrow = Conv2dShape::conv2d(
            [1, 128, 16, 2],
            [128, 128, 3, 3],
            None,
            &Conv2dParams::default().padding(Padding::symmetric(1, 1)),
        )
        .unwrap();
        let p = plan_with(&narrow, Activation::None, &cpu(), None, compact(2));
        let two_columns = Tile {
            pix: 2,
            ph: 1,
            cob4: Some(2),
        };
        assert_eq!(
            (p.layout, p.tile()),
            (WeightLayout::Blocked { cob4: 2 }, Some(two_columns))
        );
    }

    #[test]
    fn dilated_rows_take_phase_spaced_pixels() {
        // aspp12: 33 columns, dilation 12 -> 12 phases of 3 columns, one block each.
        let s = dilated_3x3(256, 256, 33, 12);
        let p = plan(&s, Activation::None, &cpu(), None);
        assert_eq!(p.key.kernel, Kernel::Conv2dTiled);
        assert!(p.key.consts.contains(&("Q", 12)));
        assert!(p.key.consts.contains(&("PIX", 3)));
        assert_eq!(p.blocks_w, 12);
        // On CPU adapters 32 channels a block (16 on GPUs), at most 4 pixels a tile
        // in blocks of equal width: 6 columns a phase (33 wide at dilation 6) as 2 × 3,
        // 8 (64 wide at dilation 8) as 2 × 4.
        assert_eq!(p.layout, WeightLayout::Blocked { cob4: 8 });
        let gpu = profile(wgpu::DeviceType::DiscreteGpu);
        assert_eq!(
            weight_layout(&LayerSig::of(&s), &gpu, Some(Kernel::Conv2dTiled)).1,
            WeightLayout::Blocked { cob4: 4 }
        );
        for (hw, d, pix, blocks_w) in [(33, 6, 3, 12), (64, 8, 4, 16), (64, 2, 4, 16)] {
            let s = dilated_3x3(64, 64, hw, d);
            let p = plan(&s, Activation::None, &cpu(), Some(Kernel::Conv2dTiled));
            assert_eq!(p.layout, WeightLayout::Blocked { cob4: 8 }, "{hw}² d{d}");
            assert!(
                p.key.consts.contains(&("PIX", pix)),
                "{hw}² d{d}: {}",
                p.key
            );
            assert_eq!(p.blocks_w, blocks_w, "{hw}² d{d}");
        }
        // A large dilation with a huge row no longer forces the direct fallback.
        let s = Conv2dShape::conv2d(
            [1, 2, 200, 200],
            [2, 2, 3, 3],
            None,
            &Conv2dParams::default().dilation(1, 40),
        )
        .unwrap();
        assert_eq!(
            plan(&s, Activation::None, &cpu(), None).key.kernel,
            Kernel::Conv2dTiled
        );
    }

    #[test]
    fn huge_rows_fall_back_to_direct() {
        let s = Conv2dShape::conv2d(
            [1, 2, 200, 200],
            [2, 2, 1, 70],
            None,
            &Conv2dParams::default(),
        )
        .unwrap();
        assert_eq!(
            plan(&s, Activation::None, &cpu(), None).key.kernel,
            Kernel::Conv2dDirect
        );
    }

    #[test]
    fn upsample_conv_blocks_sixteen_channels_and_keys_on_the_mode() {
        use crate::geometry::{UpsampleConv2dParams, UpsampleParams};
        let params = UpsampleConv2dParams {
            upsample: UpsampleParams::bilinear(2, 2),
            conv: Conv2dParams::default().padding(Padding::uniform(1)),
        };
        let s = UpsampleConv2dShape::new([1, 64, 28, 28], [64, 64, 3, 3], None, &params).unwrap();
        let p = plan_upsample_conv2d(&s, &cpu());
        assert_eq!(p.key.kernel, Kernel::Conv2dUpsampled);
        assert_eq!(p.layout, WeightLayout::Blocked { cob4: 4 });
        assert_eq!(p.layout, upsample_conv2d_layout(&LayerSig::of(&s.conv)));
        assert_eq!(
            p.key.to_string(),
            "conv2d_upsampled-pix8-cob44-kw3-sw1-dw1-mode1"
        );
        // 56x56 output, 8 pixels per invocation: 7 blocks per row; 4 blocks of 16 channels.
        assert_eq!(p.groups, [(56 * 7u32).div_ceil(WORKGROUP), 4, 1]);
    }

    #[test]
    fn upsample_folds_large_outputs_into_two_dimensions() {
        use crate::geometry::UpsampleParams;
        let small = UpsampleShape::new([1, 3, 8, 8], &UpsampleParams::nearest(2, 2)).unwrap();
        let p = plan_upsample(&small);
        assert_eq!(p.groups, [(3 * 16 * 16u32).div_ceil(WORKGROUP), 1, 1]);
        assert_eq!(p.key.to_string(), "upsample-mode0");
        let big = UpsampleShape::new([2, 8, 512, 512], &UpsampleParams::bilinear(2, 2)).unwrap();
        let p = plan_upsample(&big);
        let total = (big.output_len() as u64).div_ceil(u64::from(WORKGROUP));
        assert_eq!(p.groups[0], MAX_GROUPS_PER_DIM);
        assert_eq!(
            u64::from(p.groups[1]),
            total.div_ceil(u64::from(MAX_GROUPS_PER_DIM))
        );
        assert_eq!(p.blocks_w, MAX_GROUPS_PER_DIM * WORKGROUP);
    }

    #[test]
    fn forcing_another_ops_kernel_is_ignored() {
        let s = Conv2dShape::conv2d([1, 8, 16, 16], [8, 8, 3, 3], None, &Conv2dParams::default())
            .unwrap();
        let planned = plan(&s, Activation::None, &cpu(), None);
        for k in [
            Kernel::ConvTranspose2d,
            Kernel::Upsample,
            Kernel::Conv2dUpsampled,
            Kernel::Add,
            Kernel::Pool2d,
            Kernel::GlobalAvgPool,
        ] {
            assert_eq!(
                plan(&s, Activation::None, &cpu(), Some(k)),
                planned,
                "{k:?}"
            );
        }
    }

    #[test]
    fn blocked_repack_pads_each_group() {
        // 2 groups, 5 output channels per group (not a multiple of 4), 1 input channel, 1x1.
        let sig = LayerSig {
            kind: ConvKind::Forward,
            groups: 2,
            c_in_per_group: 1,
            c_out_per_group: 5,
            k_h: 1,
            k_w: 1,
            stride: (1, 1),
            dilation: (1, 1),
        };
        let w: Vec<f32> = (0..10).map(|v| v as f32 + 1.0).collect();
        let r = repack_weight(&w, &sig, WeightLayout::Blocked { cob4: 1 });
        // group 0: blocks [1,2,3,4], [5,0,0,0]; group 1: [6,7,8,9], [10,0,0,0]
        assert_eq!(
            r,
            vec![1., 2., 3., 4., 5., 0., 0., 0., 6., 7., 8., 9., 10., 0., 0., 0.]
        );
    }
}
