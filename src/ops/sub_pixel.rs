//! The sub-pixel form of a transposed convolution: with stride `(s_h, s_w)`
//! and no dilation, the output pixels `(s_h·i + a, s_w·j + b)` of each phase
//! `(a, b)` are a forward convolution of the input with a sub-kernel of the
//! weight (every `s`-th tap, flipped) and a padding that depends only on the
//! layer. So the layer runs as `s_h·s_w` forward convolutions, on whatever
//! kernel the planner picks for them (on lavapipe the register-blocked
//! `conv2d_tiled`), each followed by a scatter of its phase into the
//! strided output pixels (`shaders/phase_scatter.wgsl`). Bias and activation
//! are fused into the phase convolutions: each output pixel belongs to
//! exactly one phase.
//!
//! Derivation, along one axis (kernel `k`, stride `s`, paddings `p0`, `p1`,
//! output padding `op`): input `ih` reaches output `oh = ih·s − p0 + kh`.
//! For `oh = s·i + a`, the taps are `kh ≡ r = (a + p0) mod s`, `kh = r + s·t`
//! for `t < T = ⌈(k − r)/s⌉`, reading `ih = i + q − t` with
//! `q = ⌊(a + p0)/s⌋`. With `u = T − 1 − t` that is a correlation with the
//! flipped sub-kernel `w'[u] = w[r + s·(T − 1 − u)]` and padding
//! `T − 1 − q` before; the phase has `⌈(h_out − a)/s⌉ = h_in − 1 + ⌈c/s⌉`
//! rows with `c = k + op − p0 − p1 − a`, so the padding after is
//! `⌈c/s⌉ − 1 − (T − 1 − q) + T − 1`. Neither depends on `h_in`; a layer
//! whose phases would need a negative padding or an empty sub-kernel
//! (`k < s`) keeps the gather kernel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::engine::{Engine, TextureUse};
use crate::error::{Error, Result};
use crate::geometry::{Activation, Conv2dParams, Conv2dShape, ConvTranspose2dParams, Padding};
use crate::ops::conv2d::Conv2d;
use crate::ops::{dispatch_with_texture, input_texture, LayerOptions, UniformCache};
use crate::plan;
use crate::tensor::GpuTensor;

/// Mirrors `struct Params` in `shaders/phase_scatter.wgsl`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScatterUniforms {
    total: u32,
    row_stride: u32,
    h_ph: u32,
    w_ph: u32,
    h_out: u32,
    w_out: u32,
    s_h: u32,
    s_w: u32,
    a: u32,
    b: u32,
    pad0: u32,
    pad1: u32,
}

/// One axis of one phase: the first tap `r`, the tap count `t` and the
/// forward convolution's paddings before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisPhase {
    /// First tap of the phase (`(a + p0) mod s`).
    pub r: u32,
    /// Taps in the phase's sub-kernel.
    pub t: u32,
    /// Padding before (rows above / columns left).
    pub before: u32,
    /// Padding after.
    pub after: u32,
}

/// The `s` phases of one axis (see the module docs), or `None` where one
/// would need an empty sub-kernel or a negative padding.
pub fn axis_phases(k: u32, s: u32, p0: u32, p1: u32, op: u32) -> Option<Vec<AxisPhase>> {
    let (k, s) = (i64::from(k), i64::from(s));
    (0..s)
        .map(|a| {
            let r = (a + i64::from(p0)) % s;
            let q = (a + i64::from(p0)) / s;
            if r >= k {
                return None;
            }
            let t = (k - r + s - 1) / s;
            let before = t - 1 - q;
            let c = k + i64::from(op) - i64::from(p0) - i64::from(p1) - a;
            let after = -(-c).div_euclid(s) - 1 - before + t - 1;
            Some(AxisPhase {
                r: u32::try_from(r).ok()?,
                t: u32::try_from(t).ok()?,
                before: u32::try_from(before).ok()?,
                after: u32::try_from(after).ok()?,
            })
        })
        .collect()
}

/// The phases of a transposed layer along H and W, if it has a sub-pixel
/// form: no dilation, a stride above 1 on some axis, and every phase a
/// forward convolution (see [`axis_phases`]).
pub fn phases(
    params: &ConvTranspose2dParams,
    k_h: u32,
    k_w: u32,
) -> Option<(Vec<AxisPhase>, Vec<AxisPhase>)> {
    let p = &params.padding;
    if params.dilation != (1, 1) || params.stride == (1, 1) {
        return None;
    }
    let (s_h, s_w) = params.stride;
    let (op_h, op_w) = params.output_padding;
    Some((
        axis_phases(k_h, s_h, p.top, p.bottom, op_h)?,
        axis_phases(k_w, s_w, p.left, p.right, op_w)?,
    ))
}

/// The forward weight `[c_out, c_in/groups, t_h, t_w]` of phase `(ph, pw)`
/// from a transposed weight `[c_in, c_out/groups, k_h, k_w]`: output
/// channel `co` of group `g` reads input channel `g·c_in/groups + ci` at tap
/// `(r + s·(t − 1 − u))` along each axis.
pub fn phase_weight(
    weight: &[f32],
    weight_shape: [usize; 4],
    groups: usize,
    stride: (u32, u32),
    ph: AxisPhase,
    pw: AxisPhase,
) -> Vec<f32> {
    let [c_in, cog, k_h, k_w] = weight_shape;
    let cig = c_in / groups;
    let (th, tw) = (ph.t as usize, pw.t as usize);
    let (s_h, s_w) = (stride.0 as usize, stride.1 as usize);
    let mut out = Vec::with_capacity(cog * groups * cig * th * tw);
    for co in 0..cog * groups {
        let (g, col) = (co / cog, co % cog);
        for ci in 0..cig {
            for u in 0..th {
                let kh = ph.r as usize + s_h * (th - 1 - u);
                for v in 0..tw {
                    let kw = pw.r as usize + s_w * (tw - 1 - v);
                    out.push(weight[(((g * cig + ci) * cog + col) * k_h + kh) * k_w + kw]);
                }
            }
        }
    }
    out
}

/// A phase: its offsets `(a, b)` in the output, its forward convolution and
/// its scatter's uniforms (one per input shape).
#[derive(Debug)]
struct Phase {
    a: u32,
    b: u32,
    conv: Conv2d,
    uniforms: UniformCache,
    /// The phase's output tensor per input shape, reused by every call
    /// (commands run in submission order, so a later call's phase
    /// convolution cannot overwrite it before an earlier call's scatter).
    scratch: Mutex<HashMap<[usize; 4], Arc<GpuTensor>>>,
}

impl Phase {
    fn scratch(&self, engine: &Engine, input: [usize; 4]) -> Result<Arc<GpuTensor>> {
        let mut map = self
            .scratch
            .lock()
            .map_err(|_| Error::Validation("sub-pixel scratch lock poisoned".into()))?;
        if let Some(t) = map.get(&input) {
            return Ok(Arc::clone(t));
        }
        let shape = self.conv.shape_for(input)?;
        let t = Arc::new(GpuTensor::empty(engine, shape.output_shape())?);
        map.insert(input, Arc::clone(&t));
        Ok(t)
    }
}

/// A transposed layer in sub-pixel form: its phase convolutions, with
/// weights derived and uploaded once, at layer creation.
#[derive(Debug)]
pub struct SubPixelExec {
    stride: (u32, u32),
    phases: Vec<Phase>,
}

impl SubPixelExec {
    /// Derives and uploads the phase convolutions of a transposed layer, or
    /// `None` when it has no sub-pixel form ([`phases`]).
    ///
    /// # Errors
    /// Device errors.
    pub fn new(
        engine: &Engine,
        weight: &[f32],
        weight_shape: [usize; 4],
        bias: Option<&[f32]>,
        params: &ConvTranspose2dParams,
        activation: Activation,
    ) -> Result<Option<Self>> {
        let Some((hs, ws)) = phases(params, weight_shape[2] as u32, weight_shape[3] as u32) else {
            return Ok(None);
        };
        let groups = params.groups as usize;
        let c_out = weight_shape[1] * groups;
        let cig = weight_shape[0] / groups.max(1);
        let mut out = Vec::with_capacity(hs.len() * ws.len());
        for (a, ph) in hs.iter().enumerate() {
            for (b, pw) in ws.iter().enumerate() {
                let w = phase_weight(weight, weight_shape, groups, params.stride, *ph, *pw);
                let conv_params = Conv2dParams::default()
                    .groups(params.groups)
                    .padding(Padding {
                        top: ph.before,
                        left: pw.before,
                        bottom: ph.after,
                        right: pw.after,
                    });
                let conv = Conv2d::with_options(
                    engine,
                    &w,
                    [c_out, cig, ph.t as usize, pw.t as usize],
                    bias,
                    conv_params,
                    activation,
                    LayerOptions::default(),
                )?;
                out.push(Phase {
                    a: a as u32,
                    b: b as u32,
                    conv,
                    uniforms: UniformCache::default(),
                    scratch: Mutex::new(HashMap::new()),
                });
            }
        }
        Ok(Some(Self {
            stride: params.stride,
            phases: out,
        }))
    }

    /// Whether `shape` runs in sub-pixel form on `engine`: every phase is a
    /// non-empty forward convolution of the input (short outputs leave a
    /// phase without rows), and the scatters, which bind the output whole
    /// and run one flat grid, fit the device's limits. Otherwise the layer
    /// runs the gather kernel.
    pub fn fits(&self, engine: &Engine, shape: &Conv2dShape) -> bool {
        let input = shape.input_shape();
        let max_dim = u64::from(engine.limits().max_compute_workgroups_per_dimension);
        let len = shape.output_len() as u64;
        len * 4 <= engine.budget().binding
            && len.div_ceil(u64::from(plan::WORKGROUP)) <= max_dim * max_dim
            && self.phases.iter().all(|p| p.conv.shape_for(input).is_ok())
    }

    /// The kernels it runs on `input`, for reports: `sub-pixel{s_h}x{s_w}+`
    /// and the first phase's kernel.
    ///
    /// # Errors
    /// Geometry errors.
    pub fn kernel_name(&self, engine: &Engine, input: [usize; 4]) -> Result<String> {
        let first = match self.phases.first() {
            Some(p) => p.conv.kernel_name(engine, input)?,
            None => String::new(),
        };
        Ok(format!(
            "sub-pixel{}x{}+{first}",
            self.stride.0, self.stride.1
        ))
    }

    /// Bytes of GPU memory the phases' weights and biases hold.
    pub fn gpu_bytes(&self) -> u64 {
        self.phases.iter().map(|p| p.conv.gpu_bytes()).sum()
    }

    /// Records every phase convolution of `input`, each into its own
    /// tensor, and its scatter into `output` (of `shape`'s output shape).
    ///
    /// # Errors
    /// Geometry errors, device limits and device errors.
    pub fn record(
        &self,
        engine: &Engine,
        encoder: &mut wgpu::CommandEncoder,
        shape: &Conv2dShape,
        input: &GpuTensor,
        output: &GpuTensor,
    ) -> Result<()> {
        for p in &self.phases {
            let y = p.scratch(engine, input.shape())?;
            let [_, _, h_ph, w_ph] = y.shape();
            // The phase's pixels are exactly the output's (s_h·i + a, s_w·j + b).
            let rows = |len: u32, s: u32, a: u32| (len.saturating_sub(a)).div_ceil(s) as usize;
            if (h_ph, w_ph)
                != (
                    rows(shape.h_out, self.stride.0, p.a),
                    rows(shape.w_out, self.stride.1, p.b),
                )
            {
                return Err(Error::Internal {
                    what: "sub-pixel phase rows",
                    expected: rows(shape.h_out, self.stride.0, p.a) as u64,
                    actual: h_ph as u64,
                });
            }
            p.conv.record_into(engine, encoder, input, &y)?;
            let plan = plan::plan_phase_scatter(
                y.len(),
                w_ph,
                engine.limits().max_compute_workgroups_per_dimension,
                &engine.profile(),
            );
            let make = || ScatterUniforms {
                // Each tensor fits one storage binding (dispatch_tensors checks), so
                // every count below fits u32.
                // Elements, or vec4s with `V = 4` (rows of a multiple of 4).
                total: (y.len() / if plan.key.is("V", 4) { 4 } else { 1 }) as u32,
                row_stride: plan.blocks_w,
                h_ph: h_ph as u32,
                w_ph: w_ph as u32,
                h_out: shape.h_out,
                w_out: shape.w_out,
                s_h: self.stride.0,
                s_w: self.stride.1,
                a: p.a,
                b: p.b,
                pad0: 0,
                pad1: 0,
            };
            // `TIN` = 1 or 2: the scatter reads a texture copy of the phase.
            let texture = if plan.key.reads_texture("TIN") {
                Some(input_texture(engine, encoder, &y, TextureUse::Scatter)?)
            } else {
                None
            };
            dispatch_with_texture(
                engine,
                encoder,
                &plan,
                || {
                    p.uniforms
                        .get(engine, (input.shape(), plan.key.clone()), make)
                },
                texture.as_ref(),
                &[&*y, output],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::Rng;
    use crate::reference;

    /// Integer data, so every sum is exact in f64 and the two forms must
    /// agree exactly.
    fn ints(rng: &mut Rng, len: usize) -> Vec<f32> {
        (0..len).map(|_| (rng.range(0, 8) as f32) - 4.0).collect()
    }

    /// The phases, each a forward convolution by the CPU reference, scattered
    /// into the output, equal the reference transposed convolution exactly,
    /// over strides, kernels, asymmetric paddings, output paddings and groups;
    /// layers without a sub-pixel form are the ones `phases` rejects.
    #[test]
    fn phases_reassemble_the_transposed_convolution() {
        let mut rng = Rng::new(0x5b_9e);
        let mut checked = 0;
        for _ in 0..600 {
            let s = (1 + rng.range(0, 2), 1 + rng.range(0, 2));
            let k = (1 + rng.range(0, 4) as usize, 1 + rng.range(0, 4) as usize);
            let groups = 1 + rng.range(0, 1) as usize;
            let pad = Padding {
                top: rng.range(0, 2),
                left: rng.range(0, 2),
                bottom: rng.range(0, 3),
                right: rng.range(0, 3),
            };
            let op = (rng.range(0, s.0 - 1), rng.range(0, s.1 - 1));
            let params = ConvTranspose2dParams {
                stride: s,
                padding: pad,
                output_padding: op,
                dilation: (1, 1),
                groups: groups as u32,
            };
            let input = [
                1 + rng.range(0, 1) as usize,
                2 * groups,
                2 + rng.range(0, 5) as usize,
                2 + rng.range(0, 5) as usize,
            ];
            let wshape = [input[1], 1 + rng.range(0, 2) as usize, k.0, k.1];
            let Ok(shape) =
                Conv2dShape::conv_transpose2d(input, wshape, Some(wshape[1] * groups), &params)
            else {
                continue;
            };
            let Some((hs, ws)) = phases(&params, k.0 as u32, k.1 as u32) else {
                continue;
            };
            let x = ints(&mut rng, shape.input_len());
            let w = ints(&mut rng, shape.weight_len());
            let b = ints(&mut rng, shape.c_out as usize);
            let want = reference::conv(&shape, &x, &w, Some(&b), Activation::None).unwrap();
            let mut got = vec![f64::NAN; shape.output_len()];
            let (h_out, w_out) = (shape.h_out as usize, shape.w_out as usize);
            let c_out = shape.c_out as usize;
            for (a, ph) in hs.iter().enumerate() {
                for (bb, pw) in ws.iter().enumerate() {
                    let pwt = phase_weight(&w, wshape, groups, s, *ph, *pw);
                    let cp = Conv2dParams::default()
                        .groups(groups as u32)
                        .padding(Padding {
                            top: ph.before,
                            left: pw.before,
                            bottom: ph.after,
                            right: pw.after,
                        });
                    let rows = h_out.saturating_sub(a).div_ceil(s.0 as usize);
                    let cols = w_out.saturating_sub(bb).div_ceil(s.1 as usize);
                    let fwd = [c_out, input[1] / groups, ph.t as usize, pw.t as usize];
                    let Ok(fs) = Conv2dShape::conv2d(input, fwd, Some(c_out), &cp) else {
                        // Only a phase with no output rows or columns may fail.
                        assert!(rows == 0 || cols == 0, "{params:?} {input:?} {wshape:?}");
                        continue;
                    };
                    assert_eq!((fs.h_out as usize, fs.w_out as usize), (rows, cols));
                    let y = reference::conv(&fs, &x, &pwt, Some(&b), Activation::None).unwrap();
                    for n in 0..input[0] {
                        for c in 0..c_out {
                            for i in 0..rows {
                                for j in 0..cols {
                                    let o = ((n * c_out + c) * h_out + s.0 as usize * i + a)
                                        * w_out
                                        + s.1 as usize * j
                                        + bb;
                                    got[o] = y.values[((n * c_out + c) * rows + i) * cols + j];
                                }
                            }
                        }
                    }
                }
            }
            assert_eq!(got, want.values, "{params:?} {input:?} {wshape:?}");
            checked += 1;
        }
        assert!(checked >= 100, "{checked}");
    }

    #[test]
    fn suite_transposed_layers_have_sub_pixel_forms() {
        // tconv4 (k 4, s 2, pad 1) and tconv3 (k 3, s 2, pad 1, output padding 1).
        let t4 = axis_phases(4, 2, 1, 1, 0).unwrap();
        assert_eq!(
            t4,
            vec![
                AxisPhase {
                    r: 1,
                    t: 2,
                    before: 1,
                    after: 0
                },
                AxisPhase {
                    r: 0,
                    t: 2,
                    before: 0,
                    after: 1
                },
            ]
        );
        let t3 = axis_phases(3, 2, 1, 1, 1).unwrap();
        assert_eq!(
            t3,
            vec![
                AxisPhase {
                    r: 1,
                    t: 1,
                    before: 0,
                    after: 0
                },
                AxisPhase {
                    r: 0,
                    t: 2,
                    before: 0,
                    after: 1
                },
            ]
        );
        // Kernel narrower than the stride: a phase with no taps.
        assert_eq!(axis_phases(1, 2, 0, 0, 0), None);
    }
}
