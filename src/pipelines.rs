//! Kernels, their specialisation, and the pipeline cache.
//!
//! Every kernel is a real WGSL file under `shaders/` that validates on its
//! own. Structural parameters (kernel size, stride, dilation, tile shape,
//! activation) are `const` declarations between the markers
//! `// specialise:begin` and `// specialise:end`; a [`KernelKey`] rewrites
//! their values — and nothing else — to produce the specialised module, so
//! loops over them have constant bounds and unroll. Runtime sizes live in a
//! uniform. The cache holds one pipeline per key, compiled once per engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::codegen;
use crate::error::{Error, Result};
use crate::winograd::Quads;

/// One WGSL kernel family; the variant name matches the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    /// `shaders/conv2d_direct.wgsl`: one output per invocation, every
    /// parameter at run time. The fallback for any forward convolution.
    Conv2dDirect,
    /// `shaders/conv2d_tiled.wgsl`: implicit GEMM, register-blocked: each
    /// invocation computes `PIX` pixels × `COB` output channels.
    Conv2dTiled,
    /// `shaders/conv2d_depthwise.wgsl`: one input channel per group,
    /// `PIX` pixels per invocation.
    Conv2dDepthwise,
    /// `shaders/conv_transpose2d.wgsl`: transposed convolution as a gather
    /// with phase arithmetic, `PIX` same-phase pixels × `COB4`·4 channels.
    ConvTranspose2d,
    /// `shaders/upsample.wgsl`: nearest or bilinear upsampling by integer
    /// factors, one output element per invocation.
    Upsample,
    /// `shaders/conv2d_upsampled.wgsl`: a forward convolution of the
    /// upsampled input, reading the input through the upsampling index math
    /// (never materialised); register-blocked like `conv2d_tiled`.
    Conv2dUpsampled,
    /// `shaders/conv2d_shared.wgsl`: implicit GEMM with input and weight
    /// tiles staged in workgroup memory (barriers), `TM`×`TN` outputs per
    /// invocation — the classic GPU GEMM, for discrete and integrated GPUs.
    Conv2dShared,
    /// `shaders/add.wgsl`: element-wise sum of two tensors with a fused
    /// activation, one element per invocation.
    Add,
    /// `shaders/pool2d.wgsl`: max or average pooling (no padding), one
    /// output element per invocation.
    Pool2d,
    /// `shaders/global_avg_pool.wgsl`: the mean of each plane, one plane
    /// per invocation.
    GlobalAvgPool,
    /// `shaders/winograd_input.wgsl`: the input transform of Winograd
    /// F(m×m, 3×3) (see [`crate::winograd`]), 4 tiles per invocation.
    WinogradInput,
    /// `shaders/winograd_output.wgsl`: the output transform of Winograd
    /// F(m×m, 3×3), with bias and activation, 4 tiles per invocation.
    WinogradOutput,
    /// `shaders/phase_scatter.wgsl`: writes one phase of a sub-pixel
    /// transposed convolution into its strided output pixels (see
    /// [`crate::ops::sub_pixel`]), one element per invocation.
    PhaseScatter,
}

/// The bind-group layout a kernel's module declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bindings {
    /// 0 uniform params, 1 input, 2 weight, 3 bias (read-only storage),
    /// 4 output (read-write storage): the convolution kernels but `conv2d_tiled`.
    Conv,
    /// As [`Bindings::Conv`] with the weight (binding 2) a uniform buffer:
    /// `conv2d_tiled` (see [`crate::plan::tiled_weight_cap`]).
    ConvUniformWeight,
    /// As [`Bindings::Conv`] with the input (binding 1) an `Rgba32Float`
    /// 2-D texture read with `textureLoad` (a kernel with `TIN = 1` or 2;
    /// see [`crate::plan::texture_input`]); sampled or read-only storage
    /// textures, as [`KernelKey::storage_textures`] says.
    ConvTexture,
    /// As [`Bindings::ConvUniformWeight`] with the input a texture
    /// (`conv2d_tiled` with `TIN = 1`).
    ConvTextureUniformWeight,
    /// As [`Bindings::Conv`] with the weight (binding 2) a texture (a kernel
    /// with `TWT = 1`; see [`crate::plan::weight_texture`]).
    ConvTextureWeight,
    /// As [`Bindings::Conv`] with the input and the weight textures
    /// (`TIN = 1` and `TWT = 1`).
    ConvTextures,
    /// 0 uniform params, 1 input (read-only storage), 2 output (read-write
    /// storage): weightless ops.
    Unary,
    /// As [`Bindings::Unary`] with the input a texture (`winograd_input`
    /// with `TIN = 1`).
    UnaryTexture,
    /// 0 uniform params, 1 and 2 inputs (read-only storage), 3 output
    /// (read-write storage): element-wise binary ops.
    Binary,
    /// As [`Bindings::Binary`] with the first input a texture
    /// (`winograd_output` with `TIN = 1`).
    BinaryTexture,
    /// As [`Bindings::Binary`] with both inputs textures (`add` with `TIN =
    /// 1` or 2).
    BinaryTextures,
}

impl Kernel {
    /// Every kernel, in declaration order.
    pub const ALL: [Kernel; 13] = [
        Kernel::Conv2dDirect,
        Kernel::Conv2dTiled,
        Kernel::Conv2dDepthwise,
        Kernel::ConvTranspose2d,
        Kernel::Upsample,
        Kernel::Conv2dUpsampled,
        Kernel::Conv2dShared,
        Kernel::Add,
        Kernel::Pool2d,
        Kernel::GlobalAvgPool,
        Kernel::WinogradInput,
        Kernel::WinogradOutput,
        Kernel::PhaseScatter,
    ];

    /// The kernel families that can run any forward convolution (what
    /// [`crate::LayerOptions::force_kernel`] chooses among for a `Conv2d`).
    pub const FORWARD: [Kernel; 4] = [
        Kernel::Conv2dDirect,
        Kernel::Conv2dTiled,
        Kernel::Conv2dDepthwise,
        Kernel::Conv2dShared,
    ];

    /// Short name (the shader's file stem).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Conv2dDirect => "conv2d_direct",
            Kernel::Conv2dTiled => "conv2d_tiled",
            Kernel::Conv2dDepthwise => "conv2d_depthwise",
            Kernel::ConvTranspose2d => "conv_transpose2d",
            Kernel::Upsample => "upsample",
            Kernel::Conv2dUpsampled => "conv2d_upsampled",
            Kernel::Conv2dShared => "conv2d_shared",
            Kernel::Add => "add",
            Kernel::Pool2d => "pool2d",
            Kernel::GlobalAvgPool => "global_avg_pool",
            Kernel::WinogradInput => "winograd_input",
            Kernel::WinogradOutput => "winograd_output",
            Kernel::PhaseScatter => "phase_scatter",
        }
    }

    /// Whether the kernel runs through the chunked convolution path
    /// (`LayerCore::record` with windows from `chunk::Schedule::build`), the
    /// precondition for compiling it without runtime checks.
    pub fn chunked(self) -> bool {
        matches!(
            self,
            Kernel::Conv2dDirect
                | Kernel::Conv2dTiled
                | Kernel::Conv2dDepthwise
                | Kernel::ConvTranspose2d
                | Kernel::Conv2dShared
        )
    }

    /// The bind-group layout of the kernel's module.
    pub fn bindings(self) -> Bindings {
        match self {
            Kernel::Upsample
            | Kernel::Pool2d
            | Kernel::GlobalAvgPool
            | Kernel::WinogradInput
            | Kernel::PhaseScatter => Bindings::Unary,
            Kernel::Add | Kernel::WinogradOutput => Bindings::Binary,
            Kernel::Conv2dTiled => Bindings::ConvUniformWeight,
            _ => Bindings::Conv,
        }
    }

    /// The WGSL source as shipped (default specialisation).
    pub fn source(self) -> &'static str {
        match self {
            Kernel::Conv2dDirect => include_str!("../shaders/conv2d_direct.wgsl"),
            Kernel::Conv2dTiled => include_str!("../shaders/conv2d_tiled.wgsl"),
            Kernel::Conv2dDepthwise => include_str!("../shaders/conv2d_depthwise.wgsl"),
            Kernel::ConvTranspose2d => include_str!("../shaders/conv_transpose2d.wgsl"),
            Kernel::Upsample => include_str!("../shaders/upsample.wgsl"),
            Kernel::Conv2dUpsampled => include_str!("../shaders/conv2d_upsampled.wgsl"),
            Kernel::Conv2dShared => include_str!("../shaders/conv2d_shared.wgsl"),
            Kernel::Add => include_str!("../shaders/add.wgsl"),
            Kernel::Pool2d => include_str!("../shaders/pool2d.wgsl"),
            Kernel::GlobalAvgPool => include_str!("../shaders/global_avg_pool.wgsl"),
            Kernel::WinogradInput => include_str!("../shaders/winograd_input.wgsl"),
            Kernel::WinogradOutput => include_str!("../shaders/winograd_output.wgsl"),
            Kernel::PhaseScatter => include_str!("../shaders/phase_scatter.wgsl"),
        }
    }
}

/// A kernel with its specialisation constants: exactly what varies between
/// pipelines, and so the pipeline cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelKey {
    /// The kernel family.
    pub kernel: Kernel,
    /// `(name, value)` for each specialisation constant, in declaration order.
    pub consts: Vec<(&'static str, u32)>,
}

impl std::fmt::Display for KernelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kernel.name())?;
        for (name, v) in &self.consts {
            write!(f, "-{}{}", name.to_lowercase().replace('_', ""), v)?;
        }
        Ok(())
    }
}

const BEGIN: &str = "// specialise:begin";
const END: &str = "// specialise:end";

impl KernelKey {
    /// The bindings its module declares: the kernel's, but a storage weight
    /// for `conv2d_tiled` with `WST = 1` and a texture input with `TIN` = 1 or 2.
    pub fn bindings(&self) -> Bindings {
        let wst = self.is("WST", 1);
        let tin = self.reads_texture("TIN");
        if self.reads_texture("TWT") {
            return if tin {
                Bindings::ConvTextures
            } else {
                Bindings::ConvTextureWeight
            };
        }
        match (self.kernel.bindings(), tin) {
            (Bindings::ConvUniformWeight, _) if wst => {
                if tin {
                    Bindings::ConvTexture
                } else {
                    Bindings::Conv
                }
            }
            (Bindings::ConvUniformWeight, true) => Bindings::ConvTextureUniformWeight,
            (Bindings::Conv, true) => Bindings::ConvTexture,
            (Bindings::Unary, true) => Bindings::UnaryTexture,
            (Bindings::Binary, true) if self.kernel == Kernel::Add => Bindings::BinaryTextures,
            (Bindings::Binary, true) => Bindings::BinaryTexture,
            (b, _) => b,
        }
    }

    /// Whether the key reads the binding that constant `name` (`TIN` or
    /// `TWT`) controls from a texture: sampled (1) or storage (2).
    pub fn reads_texture(&self, name: &str) -> bool {
        self.is(name, 1) || self.is(name, 2)
    }

    /// Whether the key's textures are read-only storage textures (`TIN = 2`
    /// or `TWT = 2`; the planner never mixes the two kinds in one key).
    pub fn storage_textures(&self) -> bool {
        self.is("TIN", 2) || self.is("TWT", 2)
    }

    /// Whether the key's module reads a residual at binding 5 (`RES = 1`,
    /// `conv2d_tiled` fused with the residual add after it).
    pub fn residual(&self) -> bool {
        self.is("RES", 1)
    }

    /// Whether the key sets constant `name` to `value`.
    pub fn is(&self, name: &str, value: u32) -> bool {
        self.consts.iter().any(|&(n, v)| n == name && v == value)
    }

    /// A key with no specialisation constants.
    pub fn plain(kernel: Kernel) -> Self {
        Self {
            kernel,
            consts: Vec::new(),
        }
    }

    /// The complete specialised WGSL module.
    ///
    /// # Errors
    /// [`Error::Shader`] if the shader lacks the marked block or a constant
    /// the key names (a bug in wgconv, caught by the shader tests).
    pub fn wgsl(&self) -> Result<String> {
        let src = self.kernel.source();
        let err = |message: String| Error::Shader {
            kernel: self.kernel.name().into(),
            message,
        };
        let mut out = String::with_capacity(src.len() + 64);
        let mut inside = false;
        let mut seen = vec![false; self.consts.len()];
        for line in src.lines() {
            let t = line.trim();
            if t == BEGIN {
                inside = true;
            } else if t == END {
                inside = false;
            } else if inside {
                if let Some(rest) = t.strip_prefix("const ") {
                    let name = rest.split(':').next().unwrap_or("").trim();
                    if let Some(i) = self.consts.iter().position(|(n, _)| *n == name) {
                        seen[i] = true;
                        out.push_str(&format!("const {name}: u32 = {}u;\n", self.consts[i].1));
                        continue;
                    }
                }
            }
            out.push_str(line);
            out.push('\n');
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(err(format!(
                "no specialisation constant {}",
                self.consts[i].0
            )));
        }
        if self.consts.is_empty() {
            return Ok(out);
        }
        // The generated kernels read every constant of the specialised module.
        let c = codegen::read_consts(&out);
        let get = |name: &str| {
            c.get(name)
                .copied()
                .ok_or_else(|| err(format!("no constant {name}")))
        };
        // `SG`: the subgroup size the weight broadcasts assume (0: none); the
        // subgroups must tile the workgroup.
        let subgroup_size = || -> Result<Option<u32>> {
            let sg = Some(get("SG")?).filter(|&s| s > 0);
            if sg.is_some_and(|s| !crate::plan::WORKGROUP.is_multiple_of(s)) {
                return Err(err("SG must divide the workgroup size".into()));
            }
            Ok(sg)
        };
        // `DIL`: where a Winograd transform's quads of tiles lie.
        let winograd_quads = || -> Result<Quads> {
            let dil = get("DIL")?;
            Quads::from_dil(dil).ok_or_else(|| err(format!("DIL must be 0, 1 or 2, not {dil}")))
        };
        match self.kernel {
            Kernel::Conv2dTiled => {
                let spec = codegen::TiledSpec {
                    pix: get("PIX")?,
                    cob4: get("COB4")?,
                    k_w: get("K_W")?,
                    s_w: get("S_W")?,
                    d_w: get("D_W")?,
                    q: get("Q")?,
                    kh1: get("KH1")? == 1,
                    segs: get("SEGS")? == 1,
                    vin: (get("VIN")? == 1).then_some(get("VA")?),
                    shifted: get("VIN")? == 2,
                    vout: get("VOUT")? == 1,
                    sg: subgroup_size()?,
                    cu: get("CU")?,
                    res: get("RES")? == 1,
                    khu: get("KHU")?,
                };
                if get("VIN")? > 2 || (spec.shifted && !spec.shifted_fits()) {
                    return Err(err(
                        "VIN = 2 needs K_W = S_W = Q = 1 and PIX a multiple of 4".into(),
                    ));
                }
                if spec.cu == 0 {
                    return Err(err("CU must be at least 1".into()));
                }
                if spec.vout && !spec.vout_fits() {
                    return Err(err("VOUT needs Q = 1 and PIX a multiple of 4".into()));
                }
                let out = replace_generated(&out, &codegen::conv2d_tiled_main(&spec))
                    .ok_or_else(|| err("no generated block".into()))?;
                let out = if get("WST")? == 1 {
                    storage_weight(out).ok_or_else(|| err("no uniform weight binding".into()))?
                } else {
                    out
                };
                let out = self.texture_weight(out, get("TWT")?)?;
                let out = if spec.vout {
                    vec4_output(out).ok_or_else(|| err("no scalar output binding".into()))?
                } else {
                    out
                };
                let out = residual_binding(out, spec.res, spec.vout)
                    .ok_or_else(|| err("no residual binding".into()))?;
                if matches!(spec.vin, Some(a) if a > 3 || !spec.vin_fits()) {
                    return Err(err(
                        "VIN needs VA < 4, Q = 1 and PIX·S_W a multiple of 4".into()
                    ));
                }
                self.input_binding(out, spec.vin.is_some() || spec.shifted, get("TIN")?)
            }
            Kernel::Conv2dDepthwise => {
                let spec = codegen::DepthwiseSpec {
                    pix: get("PIX")?,
                    k_h: get("K_H")?,
                    k_w: get("K_W")?,
                    stride: (get("S_H")?, get("S_W")?),
                    dilation: (get("D_H")?, get("D_W")?),
                    vin: (get("VIN")? == 1).then_some(get("VA")?),
                    vout: get("VOUT")? == 1,
                };
                if matches!(spec.vin, Some(a) if a > 3 || !(spec.pix * spec.stride.1).is_multiple_of(4))
                {
                    return Err(err("VIN needs VA < 4 and PIX·S_W a multiple of 4".into()));
                }
                if spec.vout && !spec.pix.is_multiple_of(4) {
                    return Err(err("VOUT needs PIX a multiple of 4".into()));
                }
                let out = replace_generated(&out, &codegen::conv2d_depthwise_main(&spec))
                    .ok_or_else(|| err("no generated block".into()))?;
                let out = if spec.vout {
                    vec4_output(out).ok_or_else(|| err("no scalar output binding".into()))?
                } else {
                    out
                };
                self.input_binding(out, spec.vin.is_some(), get("TIN")?)
            }
            Kernel::ConvTranspose2d => {
                let spec = codegen::TransposedSpec {
                    pix: get("PIX")?,
                    cob4: get("COB4")?,
                    k_w: get("K_W")?,
                    s_w: get("S_W")?,
                    d_w: get("D_W")?,
                    plr: get("PLR")?,
                    vout: get("VOUT")? == 1,
                    vin: (get("VIN")? == 1).then_some(get("VA")?),
                    sg: subgroup_size()?,
                    khu: get("KHU")?,
                };
                if spec.vout && !(spec.pix * spec.s_w).is_multiple_of(4) {
                    return Err(err("VOUT needs PIX·S_W a multiple of 4".into()));
                }
                if matches!(spec.vin, Some(a) if a > 3 || !spec.pix.is_multiple_of(4)) {
                    return Err(err("VIN needs VA < 4 and PIX a multiple of 4".into()));
                }
                let out = replace_generated(&out, &codegen::conv_transpose2d_main(&spec))
                    .ok_or_else(|| err("no generated block".into()))?;
                let out = if spec.vout {
                    vec4_output(out).ok_or_else(|| err("no scalar output binding".into()))?
                } else {
                    out
                };
                let out = self.texture_weight(out, get("TWT")?)?;
                self.input_binding(out, spec.vin.is_some(), get("TIN")?)
            }
            Kernel::WinogradInput => {
                let spec = crate::winograd::TransformSpec {
                    m: get("M")?,
                    vec4: (get("VIN")? == 1).then_some(get("VA")?),
                    quads: winograd_quads()?,
                };
                // Phase mode reads scalars; lane order aligned vec4s.
                match (spec.quads, spec.vec4) {
                    (Quads::Dense, _) | (Quads::Phases, None) | (Quads::Lanes, Some(0)) => {}
                    _ => {
                        return Err(err(
                            "DIL = 1 needs VIN = 0; DIL = 2 needs VIN = 1 and VA = 0".into(),
                        ))
                    }
                }
                if matches!(spec.vec4, Some(a) if a > 3) {
                    return Err(err("VIN needs VA < 4".into()));
                }
                let body = crate::winograd::winograd_input_main(&spec)
                    .ok_or_else(|| err(format!("no Winograd F({0}x{0}, 3x3)", spec.m)))?;
                let out = replace_generated(&out, &body)
                    .ok_or_else(|| err("no generated block".into()))?;
                self.input_binding(out, spec.vec4.is_some(), get("TIN")?)
            }
            Kernel::WinogradOutput => {
                let spec = crate::winograd::TransformSpec {
                    m: get("M")?,
                    vec4: (get("VOUT")? == 1).then_some(0),
                    quads: winograd_quads()?,
                };
                if matches!(
                    (spec.quads, spec.vec4),
                    (Quads::Phases, Some(_)) | (Quads::Lanes, None)
                ) {
                    return Err(err("DIL = 1 needs VOUT = 0; DIL = 2 needs VOUT = 1".into()));
                }
                let body = crate::winograd::winograd_output_main(&spec)
                    .ok_or_else(|| err(format!("no Winograd F({0}x{0}, 3x3)", spec.m)))?;
                let out = replace_generated(&out, &body)
                    .ok_or_else(|| err("no generated block".into()))?;
                let out = self.texture_input(out, get("TIN")?)?;
                if spec.vec4.is_none() {
                    return Ok(out);
                }
                vec4_output(out).ok_or_else(|| err("no scalar output binding".into()))
            }
            // Loops over specialisation constants only: GPU compilers unroll them.
            Kernel::Conv2dDirect
            | Kernel::Upsample
            | Kernel::Conv2dUpsampled
            | Kernel::Conv2dShared
            | Kernel::Pool2d
            | Kernel::GlobalAvgPool => Ok(out),
            Kernel::Add => match get("V")? {
                1 if get("TIN")? == 0 => Ok(out),
                4 => {
                    const SCALAR: &str = "alias T = f32;";
                    const BINDINGS: [&str; 3] = [
                        "var<storage, read> a: array<f32>;",
                        "var<storage, read> b: array<f32>;",
                        "var<storage, read_write> output: array<f32>;",
                    ];
                    if !out.contains(SCALAR) || BINDINGS.iter().any(|b| !out.contains(b)) {
                        return Err(err("no scalar bindings and element type".into()));
                    }
                    let out = BINDINGS
                        .iter()
                        .fold(out.replace(SCALAR, "alias T = vec4<f32>;"), |out, b| {
                            out.replace(b, &b.replace("array<f32>", "array<vec4<f32>>"))
                        });
                    let Some(storage) = self.texture_kind("TIN", get("TIN")?)? else {
                        return Ok(out);
                    };
                    texture_binding(&out, 1, "a", None, "load_a", storage)
                        .and_then(|out| texture_binding(&out, 2, "b", None, "load_b", storage))
                        .ok_or_else(|| err("no storage input bindings".into()))
                }
                v => Err(err(format!(
                    "V must be 1 or 4 (with TIN = 0 for 1), not {v}"
                ))),
            },
            Kernel::PhaseScatter => match get("V")? {
                1 => Ok(out),
                4 => {
                    let out = replace_generated(&out, codegen::PHASE_SCATTER_VEC4_MAIN)
                        .ok_or_else(|| err("no generated block".into()))?;
                    const SCALAR: &str = "var<storage, read> phase: array<f32>;";
                    if !out.contains(SCALAR) {
                        return Err(err("no scalar phase binding".into()));
                    }
                    let out = out.replace(SCALAR, "var<storage, read> phase: array<vec4<f32>>;");
                    self.texture_input(out, get("TIN")?)
                }
                v => Err(err(format!("V must be 1 or 4, not {v}"))),
            },
        }
    }
}

/// `src` with its weight bound as a storage `array<vec4<f32>>` instead of a
/// uniform window of `WCAP` vec4s (`conv2d_tiled` with `WST = 1`); `None`
/// if it has no such binding.
fn storage_weight(src: String) -> Option<String> {
    const UNIFORM: &str = "var<uniform> weight: array<vec4<f32>, WCAP>;";
    src.contains(UNIFORM)
        .then(|| src.replace(UNIFORM, "var<storage, read> weight: array<vec4<f32>>;"))
}

impl KernelKey {
    /// `src` with its input bound as vec4s (`vin`: [`vec4_input`]) and then,
    /// with `tin` ≥ 1, read from a texture ([`KernelKey::texture_input`]).
    fn input_binding(&self, src: String, vin: bool, tin: u32) -> Result<String> {
        let src = if vin {
            vec4_input(src).ok_or_else(|| Error::Shader {
                kernel: self.kernel.name().into(),
                message: "no scalar input binding".into(),
            })?
        } else {
            src
        };
        self.texture_input(src, tin)
    }

    /// What the value `v` of constant `name` (`TIN` or `TWT`) selects for
    /// its binding: `None` a storage buffer (0), `Some(false)` a sampled
    /// texture (1), `Some(true)` a read-only storage texture (2);
    /// [`Error::Shader`] for any other value, or for a kind the other
    /// constant contradicts (one bind-group layout holds one texture kind:
    /// [`KernelKey::storage_textures`]).
    fn texture_kind(&self, name: &str, v: u32) -> Result<Option<bool>> {
        let err = |message| Error::Shader {
            kernel: self.kernel.name().into(),
            message,
        };
        let other = if name == "TIN" { "TWT" } else { "TIN" };
        match v {
            0 => Ok(None),
            1 | 2 if self.is(other, 3 - v) => Err(err(format!(
                "{name} = {v} and {other} = {} mix texture kinds",
                3 - v
            ))),
            1 | 2 => Ok(Some(v == 2)),
            _ => Err(err(format!("{name} must be 0, 1 or 2, not {v}"))),
        }
    }

    /// `src`, or with `tin` ≥ 1 its input (vec4s or scalars) read from a
    /// texture ([`texture_input`]; a storage texture with `tin` = 2);
    /// [`Error::Shader`] if `tin` is set on a module without a storage input
    /// binding.
    fn texture_input(&self, src: String, tin: u32) -> Result<String> {
        let Some(storage) = self.texture_kind("TIN", tin)? else {
            return Ok(src);
        };
        // The conv kernels bind windows of their input (`in_base` floats,
        // added back in the binding's elements); the Winograd transforms and
        // the scatter bind theirs whole.
        let vec4 = src.contains("var<storage, read> input: array<vec4<f32>>;");
        let (name, base) = match self.kernel {
            Kernel::WinogradInput => ("input", None),
            Kernel::WinogradOutput => ("mt", None),
            Kernel::PhaseScatter => ("phase", None),
            _ if vec4 => ("input", Some("p.in_base / 4u")),
            _ => ("input", Some("p.in_base")),
        };
        texture_input(&src, name, base, storage).ok_or_else(|| Error::Shader {
            kernel: self.kernel.name().into(),
            message: "TIN needs a storage input binding".into(),
        })
    }

    /// `src`, or with `twt` ≥ 1 its vec4 weight read from the layer's texture
    /// copy (a storage texture with `twt` = 2; the window base `w_base` is
    /// added back).
    fn texture_weight(&self, src: String, twt: u32) -> Result<String> {
        let Some(storage) = self.texture_kind("TWT", twt)? else {
            return Ok(src);
        };
        texture_binding(&src, 2, "weight", Some("p.w_base"), "load_weight", storage).ok_or_else(
            || Error::Shader {
                kernel: self.kernel.name().into(),
                message: "TWT needs a storage weight binding".into(),
            },
        )
    }
}

/// `src` with its input window (the `array<vec4<f32>>` or `array<f32>`
/// named `name` at binding 1) read from an `Rgba32Float` texture holding the
/// whole tensor instead: vec4 `t` of the tensor is texel `(t % W, t / W)`
/// with `W =` [`crate::plan::TEXTURE_WIDTH`], and every `name[q]` becomes
/// `load_input(q)`, which adds the window's base (the WGSL expression
/// `base`, in the binding's elements) back; a scalar `q` reads its texel
/// and picks the component. With `storage` the texture is bound as a
/// read-only storage texture (`texture_storage_2d<rgba32float, read>`,
/// `TIN = 2`) instead of a sampled one (`texture_2d<f32>`, `TIN = 1`); see
/// [`crate::plan::storage_texture_reads`]. `None` if `src` has no such
/// binding or an unbalanced `name[`.
pub(crate) fn texture_input(
    src: &str,
    name: &str,
    base: Option<&str>,
    storage: bool,
) -> Option<String> {
    texture_binding(src, 1, name, base, "load_input", storage)
}

/// `src` with the storage `array<vec4<f32>>` or `array<f32>` `name` at
/// `binding` read from a texture holding the whole buffer, every `name[q]`
/// becoming `func(q)`; see [`texture_input`].
fn texture_binding(
    src: &str,
    binding: u32,
    name: &str,
    base: Option<&str>,
    func: &str,
    storage: bool,
) -> Option<String> {
    let array =
        |ty: &str| format!("@group(0) @binding({binding}) var<storage, read> {name}: array<{ty}>;");
    let (array, vec4) = if src.contains(&array("vec4<f32>")) {
        (array("vec4<f32>"), true)
    } else if src.contains(&array("f32")) {
        (array("f32"), false)
    } else {
        return None;
    };
    let w = crate::plan::TEXTURE_WIDTH;
    let base = base.map_or(String::new(), |b| format!(" + {b}"));
    let (ty, level) = if storage {
        ("texture_storage_2d<rgba32float, read>", "")
    } else {
        ("texture_2d<f32>", ", 0")
    };
    let decl = if vec4 {
        format!(
            "@group(0) @binding({binding}) var {name}: {ty};\n\n\
             // Vec4 `q` of the `{name}` window (see the header comment) from the texture that\n\
             // holds the whole buffer, {w} texels a row (the host's layout: plan::texture_rows).\n\
             fn {func}(q: u32) -> vec4<f32> {{\n\
             \x20   let t = q{base};\n\
             \x20   return textureLoad({name}, vec2<u32>(t % {w}u, t / {w}u){level});\n\
             }}"
        )
    } else {
        format!(
            "@group(0) @binding({binding}) var {name}: {ty};\n\n\
             // Element `q` of the `{name}` window (see the header comment) from the texture\n\
             // that holds the whole buffer, 4 floats a texel and {w} texels a row (the host's\n\
             // layout: plan::texture_rows): its texel's component `(q + base) % 4`.\n\
             fn {func}(q: u32) -> f32 {{\n\
             \x20   let e = q{base};\n\
             \x20   let t = e / 4u;\n\
             \x20   let v = textureLoad({name}, vec2<u32>(t % {w}u, t / {w}u){level});\n\
             \x20   let k = e % 4u;\n\
             \x20   return select(select(v.x, v.y, k == 1u), select(v.z, v.w, k == 3u), k >= 2u);\n\
             }}"
        )
    };
    let src = src.replace(&array, &decl);
    // `name[expr]` → `load_input(expr)`, brackets inside `expr` balanced.
    let open = format!("{name}[");
    let mut out = String::with_capacity(src.len());
    let mut rest = src.as_str();
    while let Some(i) = rest.find(&open) {
        let word_start = i == 0 || {
            let c = rest.as_bytes()[i - 1];
            !(c.is_ascii_alphanumeric() || c == b'_')
        };
        out.push_str(&rest[..i]);
        if !word_start {
            out.push_str(&open);
            rest = &rest[i + open.len()..];
            continue;
        }
        let body = &rest[i + open.len()..];
        let mut depth = 1usize;
        let end = body.char_indices().find_map(|(j, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(j)
        })?;
        out.push_str(func);
        out.push('(');
        out.push_str(&body[..end]);
        out.push(')');
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// `src` with its input bound as `array<vec4<f32>>` instead of `array<f32>`
/// (the generated kernels with `VIN = 1`); `None` if it has no such binding.
fn vec4_input(src: String) -> Option<String> {
    const SCALAR: &str = "var<storage, read> input: array<f32>;";
    src.contains(SCALAR)
        .then(|| src.replace(SCALAR, "var<storage, read> input: array<vec4<f32>>;"))
}

/// `src` with its output bound as `array<vec4<f32>>` instead of
/// `array<f32>` (the generated kernels with `VOUT = 1`); `None` if it has no
/// such binding.
fn vec4_output(src: String) -> Option<String> {
    const SCALAR: &str = "var<storage, read_write> output: array<f32>;";
    src.contains(SCALAR)
        .then(|| src.replace(SCALAR, "var<storage, read_write> output: array<vec4<f32>>;"))
}

/// `src` (`conv2d_tiled`) with its residual binding (5) as the key needs
/// it: removed without `RES`, so the module's bindings are its layout's,
/// and bound as `array<vec4<f32>>` with `VOUT` (read at the output's vec4
/// index); `None` if it has no such binding.
fn residual_binding(src: String, res: bool, vout: bool) -> Option<String> {
    const SCALAR: &str = "@group(0) @binding(5) var<storage, read> residual: array<f32>;";
    if !src.contains(SCALAR) {
        return None;
    }
    Some(match (res, vout) {
        (false, _) => src.replace(&format!("{SCALAR}\n"), ""),
        (true, true) => src.replace(SCALAR, &SCALAR.replace("array<f32>", "array<vec4<f32>>")),
        (true, false) => src,
    })
}

const GEN_BEGIN: &str = "// generated:begin";
const GEN_END: &str = "// generated:end";

/// `src` with the text between the `generated` markers replaced by `body`.
fn replace_generated(src: &str, body: &str) -> Option<String> {
    let start = src.find(GEN_BEGIN)? + GEN_BEGIN.len();
    let end = src.find(GEN_END)?;
    (start <= end).then(|| format!("{}\n{body}{}", &src[..start], &src[end..]))
}

/// The bind-group layout of [`Bindings`]: binding 0 is the uniform params,
/// then the storage buffers in order (the last one read-write). Its textures
/// are read-only storage textures with `storage`, sampled ones without.
fn bind_layout(
    device: &wgpu::Device,
    (bindings, storage_textures, residual): Layout,
) -> wgpu::BindGroupLayout {
    let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let uniform = wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let texture = |binding| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: if storage_textures {
            wgpu::BindingType::StorageTexture {
                access: wgpu::StorageTextureAccess::ReadOnly,
                format: wgpu::TextureFormat::Rgba32Float,
                view_dimension: wgpu::TextureViewDimension::D2,
            }
        } else {
            wgpu::BindingType::Texture {
                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            }
        },
        count: None,
    };
    let (label, entries) = match bindings {
        Bindings::Conv => (
            "wgconv conv layout",
            vec![
                uniform,
                storage(1, true),
                storage(2, true),
                storage(3, true),
                storage(4, false),
            ],
        ),
        Bindings::ConvUniformWeight => (
            "wgconv conv layout (uniform weight)",
            vec![
                uniform,
                storage(1, true),
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    ..uniform
                },
                storage(3, true),
                storage(4, false),
            ],
        ),
        Bindings::ConvTexture => (
            "wgconv conv layout (texture input)",
            vec![
                uniform,
                texture(1),
                storage(2, true),
                storage(3, true),
                storage(4, false),
            ],
        ),
        Bindings::ConvTextureUniformWeight => (
            "wgconv conv layout (texture input, uniform weight)",
            vec![
                uniform,
                texture(1),
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    ..uniform
                },
                storage(3, true),
                storage(4, false),
            ],
        ),
        Bindings::ConvTextureWeight => (
            "wgconv conv layout (texture weight)",
            vec![
                uniform,
                storage(1, true),
                texture(2),
                storage(3, true),
                storage(4, false),
            ],
        ),
        Bindings::ConvTextures => (
            "wgconv conv layout (texture input and weight)",
            vec![
                uniform,
                texture(1),
                texture(2),
                storage(3, true),
                storage(4, false),
            ],
        ),
        Bindings::Unary => (
            "wgconv unary layout",
            vec![uniform, storage(1, true), storage(2, false)],
        ),
        Bindings::UnaryTexture => (
            "wgconv unary layout (texture input)",
            vec![uniform, texture(1), storage(2, false)],
        ),
        Bindings::Binary => (
            "wgconv binary layout",
            vec![
                uniform,
                storage(1, true),
                storage(2, true),
                storage(3, false),
            ],
        ),
        Bindings::BinaryTexture => (
            "wgconv binary layout (texture input)",
            vec![uniform, texture(1), storage(2, true), storage(3, false)],
        ),
        Bindings::BinaryTextures => (
            "wgconv binary layout (texture inputs)",
            vec![uniform, texture(1), texture(2), storage(3, false)],
        ),
    };
    let mut entries = entries;
    if residual {
        // After the output: the residual a fused convolution adds (`RES`).
        entries.push(storage(5, true));
    }
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

/// A module's bindings, whether its textures are storage textures, and
/// whether it reads a residual at binding 5 ([`KernelKey::residual`]).
type Layout = (Bindings, bool, bool);

/// `(kernel, specialisation) -> pipeline`, compiled once, behind a lock.
pub(crate) struct PipelineCache {
    /// Every [`Bindings`] and texture kind (storage textures or not), the
    /// convolution ones also with a residual, with its bind-group layout
    /// and pipeline layout.
    layouts: Vec<(Layout, wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    map: Mutex<HashMap<KernelKey, Arc<wgpu::ComputePipeline>>>,
    compiled: AtomicUsize,
    compile_nanos: AtomicU64,
    trusted: bool,
}

impl PipelineCache {
    /// A cache compiling trusted modules (no runtime checks) when `trusted`.
    pub(crate) fn new(device: &wgpu::Device, trusted: bool) -> Self {
        let layouts = [
            Bindings::Conv,
            Bindings::ConvUniformWeight,
            Bindings::ConvTexture,
            Bindings::ConvTextureUniformWeight,
            Bindings::ConvTextureWeight,
            Bindings::ConvTextures,
            Bindings::Unary,
            Bindings::UnaryTexture,
            Bindings::Binary,
            Bindings::BinaryTexture,
            Bindings::BinaryTextures,
        ]
        .into_iter()
        .flat_map(|b| [(b, false), (b, true)])
        .flat_map(|(b, st)| {
            // Only `conv2d_tiled` reads a residual (`RES`).
            let conv = !matches!(
                b,
                Bindings::Unary
                    | Bindings::UnaryTexture
                    | Bindings::Binary
                    | Bindings::BinaryTexture
                    | Bindings::BinaryTextures
            );
            std::iter::once((b, st, false)).chain(conv.then_some((b, st, true)))
        })
        .map(|b| {
            let layout = bind_layout(device, b);
            let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("wgconv pipeline layout"),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            (b, layout, pipeline)
        })
        .collect();
        Self {
            layouts,
            map: Mutex::new(HashMap::new()),
            compiled: AtomicUsize::new(0),
            compile_nanos: AtomicU64::new(0),
            trusted,
        }
    }

    fn layouts(&self, key: &KernelKey) -> &(Layout, wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        let layout = (key.bindings(), key.storage_textures(), key.residual());
        // `new` builds every variant, so the search always succeeds.
        self.layouts
            .iter()
            .find(|(l, ..)| *l == layout)
            .unwrap_or(&self.layouts[0])
    }

    /// The bind-group layout of `key`'s module.
    pub(crate) fn bind_layout(&self, key: &KernelKey) -> &wgpu::BindGroupLayout {
        &self.layouts(key).1
    }

    /// Whether modules are compiled without runtime checks.
    pub(crate) fn trusted(&self) -> bool {
        self.trusted
    }

    pub(crate) fn compiled(&self) -> usize {
        self.compiled.load(Ordering::Relaxed)
    }

    /// Wall time spent creating pipelines (driver shader compilation included).
    pub(crate) fn compile_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.compile_nanos.load(Ordering::Relaxed))
    }

    /// The pipeline for `key`, compiling it on first use. The lock is held
    /// while compiling so that two threads never compile the same key.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        key: &KernelKey,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| Error::Validation("pipeline cache lock poisoned".into()))?;
        if let Some(p) = map.get(key) {
            return Ok(Arc::clone(p));
        }
        let start = Instant::now();
        let source = key.wgsl()?;
        let label = key.to_string();
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let module = if self.trusted && key.kernel.chunked() {
            // SAFETY: `ShaderRuntimeChecks::unchecked()` drops wgpu's bounds checks,
            // loop bounding and integer-division guards; that is sound when every
            // access is in bounds, every loop terminates and no divisor is zero.
            // Only the `chunked()` kernels get here; they run only through
            // `LayerCore::record`, which binds only windows from
            // `chunk::Schedule::build`, so for each of them (loop form and the
            // unrolled form src/codegen.rs generates alike):
            // - storage indices: each kernel computes global indices and subtracts
            //   the window base; `Schedule::build` (its doc lists the argument)
            //   makes each window contain every index an invocation that passes the
            //   kernel's own tests (`lw.z < grid_z`, `item < x_end`, `0 ≤ ih < h_in`,
            //   `ow < w_out`, `co_local < c_out/groups`; the generated forms clamp
            //   `item` to `x_end − 1` and read only kernel rows with `0 ≤ ih < h_in`,
            //   or clamp rows into `[0, h_in − 1]` (depthwise; `conv2d_tiled` with
            //   subgroups or unrolled rows, `KHU` = `k_h` checked in `GridMap::of`,
            //   so `kh < k_h`), inside the row hull
            //   `chunk::Planner::input_rows` takes over the tile's rows) can form: the chunk's images,
            //   the units' input channels and output channels, the input-row hull of
            //   the output rows, and the units' whole weight blocks (indexed with
            //   `K_W = k_w` and the layout's `COB4`, checked against the plan and the
            //   weight buffer's size in `GridMap::of`); input columns are clamped
            //   into `[0, w_in − 1]` (`w_in ≥ 1`) in the shader; `bias[co]` has
            //   `co < c_out` = the bias length; no `i32` conversion wraps
            //   (`check_spatial`: every spatial term ≤ 2^29) and no `u32` index
            //   exceeds the validated element counts (≤ u32::MAX);
            // - texture reads (`TIN`, `TWT` = 1 or 2; `texture_input` rewrites each
            //   window access `name[q]` into a `textureLoad` of texel `t = q + base`
            //   for a vec4 window, or `t = (q + base) / 4` for a scalar one, the base
            //   the host subtracted): `q` is a window index as above, so `q + base`
            //   indexes the tensor (or weight buffer) the window lies in; the texture
            //   holds all of it (`plan::texture_rows` rows of `TEXTURE_WIDTH` texels,
            //   ≥ its length / 4, checked against `max_texture_dimension_2d` by the
            //   planner), so the texel `(t % TEXTURE_WIDTH, t / TEXTURE_WIDTH)` is
            //   inside the texture;
            // - private arrays (`seg`, `acc`, `xs`) are indexed by loop counters
            //   bounded by specialisation constants: `px·S_W + kw·D_W ≤
            //   (PIX−1)·S_W + (K_W−1)·D_W < SEG`, `px·COB4 + c < PIX·COB4`, `px < PIX`;
            //   `conv2d_shared`'s private `acc`, `a` (`i·TN + j < TM·TN`, `i < TM`) and
            //   workgroup arrays: `a_tile[kk·BM + mm]` with `kk < BK` (`lid / BM +
            //   i·(WG / BM) < WG·TM / BM = BK`) or `tm + 16·i < BM`, `b_tile[e·4 + c]`
            //   with `e < BK·BN/4`, `b_tile[kk·BN + tn + 16·j]` with `tn + 16·j < BN`;
            //   its loads are behind `m < x_end`, `k < K`, `0 ≤ ih < h_in`,
            //   `0 ≤ iw < w_in` (and `co < c_out/groups` for stores), inside the same
            //   windows; its barriers are in uniform control flow;
            // - loops: every loop counts a `u32` up by at least 1 (the transposed
            //   kernel's `kh += tap_step_h`: `tap_step_h ≥ 1`, checked in
            //   `Schedule::build`; `conv2d_shared`'s `k0 += 16` to K ≤ u32::MAX − 16,
            //   checked in `GridMap::of`) to a bound that is a constant or a uniform
            //   value, far below `u32::MAX`, so none can wrap or run forever;
            // - divisions: divisors are `p.w_out`, `p.blocks_w`, `p.c_out_per_group`,
            //   `p.dil_h` (≥ 1, validated),
            //   `p.blocks_per_group`, `p.stride_h`, `grid_x`, `grid_x·grid_y`
            //   (all ≥ 1 from validated shapes and non-empty chunks, the product
            //   ≤ u32::MAX by `chunk::fold`) and constants ≥ 1; all operands are
            //   `u32` (the kernels never divide negative or signed values).
            // Tests run with runtime checks on (`EngineOptions::runtime_checks`).
            unsafe {
                device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            device.create_shader_module(desc)
        };
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&self.layouts(key).2),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[],
                // No kernel reads workgroup memory before writing it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        self.compiled.fetch_add(1, Ordering::Relaxed);
        let nanos = start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.compile_nanos.fetch_add(nanos, Ordering::Relaxed);
        if std::env::var_os("WGCONV_LOG_COMPILES").is_some() {
            eprintln!("wgconv: compiled {key} in {:.1} ms", nanos as f64 / 1e6);
        }
        let p = Arc::new(pipeline);
        map.insert(key.clone(), Arc::clone(&p));
        Ok(p)
    }
}

/// Parses and validates a WGSL module with naga, then translates it with
/// naga's back ends to every shading language wgpu uses for the backends we
/// claim: SPIR-V (Vulkan), MSL 2.0 (Metal), HLSL SM 6.0 (DX12), and GLSL ES
/// 3.10 and desktop 4.30 (GL). No GPU needed.
///
/// # Errors
/// [`Error::Shader`] naming the stage that failed.
pub fn check_portability(name: &str, src: &str) -> Result<()> {
    use naga::back::{glsl, hlsl, msl, spv};
    let fail = |stage: &str, e: String| Error::Shader {
        kernel: name.into(),
        message: format!("{stage}: {e}"),
    };
    let module =
        naga::front::wgsl::parse_str(src).map_err(|e| fail("wgsl", e.emit_to_string(src)))?;
    // Kernels that use subgroup operations (planned only where the device has them).
    let subgroups = src.contains("subgroup");
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        if subgroups {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::empty()
        },
    );
    if subgroups {
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    let info = validator
        .validate(&module)
        .map_err(|e| fail("validation", format!("{:?}", e.into_inner())))?;
    spv::write_vec(&module, &info, &spv::Options::default(), None)
        .map_err(|e| fail("spir-v", e.to_string()))?;
    let msl_options = msl::Options {
        lang_version: (2, 0),
        ..Default::default()
    };
    msl::write_string(
        &module,
        &info,
        &msl_options,
        &msl::PipelineOptions::default(),
    )
    .map_err(|e| fail("msl", e.to_string()))?;
    let hlsl_options = hlsl::Options {
        shader_model: hlsl::ShaderModel::V6_0,
        ..Default::default()
    };
    let mut out = String::new();
    hlsl::Writer::new(&mut out, &hlsl_options, &hlsl::PipelineOptions::default())
        .write(&module, &info, None)
        .map_err(|e| fail("hlsl", e.to_string()))?;
    for version in [glsl::Version::new_gles(310), glsl::Version::Desktop(430)] {
        let options = glsl::Options {
            version,
            ..Default::default()
        };
        let pipeline = glsl::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: "main".into(),
            multiview: None,
        };
        let mut out = String::new();
        glsl::Writer::new(
            &mut out,
            &module,
            &info,
            &options,
            &pipeline,
            naga::proc::BoundsCheckPolicies::default(),
        )
        .and_then(|mut w| w.write())
        .map_err(|e| fail(&format!("glsl {version}"), e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(src: &str) -> std::result::Result<(), String> {
        let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .map_err(|e| format!("{e:?}"))?;
        Ok(())
    }

    #[test]
    fn every_shipped_shader_validates_as_is() {
        for k in Kernel::ALL {
            let src = KernelKey::plain(k).wgsl().unwrap();
            assert_eq!(src.trim_end(), k.source().trim_end());
            validate(&src).unwrap_or_else(|e| panic!("{}: {e}", k.name()));
        }
    }

    #[test]
    fn specialisation_rewrites_only_named_constants() {
        let key = KernelKey {
            kernel: Kernel::Conv2dTiled,
            consts: vec![("PIX", 2), ("K_W", 1)],
        };
        let src = key.wgsl().unwrap();
        assert!(src.contains("const PIX: u32 = 2u;"));
        assert!(src.contains("const K_W: u32 = 1u;"));
        validate(&src).unwrap();
        let bad = KernelKey {
            kernel: Kernel::Conv2dTiled,
            consts: vec![("NOPE", 1)],
        };
        assert!(matches!(bad.wgsl(), Err(Error::Shader { .. })));
        assert_eq!(key.to_string(), "conv2d_tiled-pix2-kw1");
    }

    #[test]
    fn winograd_keys_pair_dilation_modes_with_their_loads() {
        let input = |dil: u32, vin: u32, va: u32| KernelKey {
            kernel: Kernel::WinogradInput,
            consts: vec![("M", 4), ("VIN", vin), ("VA", va), ("DIL", dil)],
        };
        let output = |dil: u32, vout: u32| KernelKey {
            kernel: Kernel::WinogradOutput,
            consts: vec![("M", 4), ("VOUT", vout), ("DIL", dil)],
        };
        for (key, ok) in [
            (input(0, 1, 3), true),
            (input(1, 0, 0), true),
            (input(1, 1, 3), false),
            (input(1, 1, 0), false),
            (input(2, 1, 0), true),
            (input(2, 0, 0), false),
            (input(2, 1, 3), false),
            (input(3, 0, 0), false),
            (output(1, 0), true),
            (output(1, 1), false),
            (output(2, 1), true),
            (output(2, 0), false),
        ] {
            match key.wgsl() {
                Ok(src) => {
                    assert!(ok, "{key} accepted");
                    validate(&src).unwrap_or_else(|e| panic!("{key}: {e}"));
                }
                Err(e) => assert!(!ok, "{key}: {e}"),
            }
        }
    }

    #[test]
    fn only_residual_modules_declare_the_residual() {
        let binding = "@binding(5)";
        let key = |consts: Vec<(&'static str, u32)>| KernelKey {
            kernel: Kernel::Conv2dTiled,
            consts,
        };
        let plain = key(vec![("PIX", 4)]).wgsl().unwrap();
        assert!(!plain.contains(binding) && !plain.contains("residual["));
        for vout in [0, 1] {
            let src = key(vec![("PIX", 4), ("VOUT", vout), ("RES", 1)])
                .wgsl()
                .unwrap();
            let elem = if vout == 1 {
                "array<vec4<f32>>"
            } else {
                "array<f32>"
            };
            assert!(
                src.contains(&format!("{binding} var<storage, read> residual: {elem};")),
                "VOUT = {vout}"
            );
            assert!(src.contains("residual["));
            validate(&src).unwrap();
        }
    }
}
