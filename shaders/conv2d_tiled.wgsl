// conv2d_tiled — forward convolution as an implicit GEMM, register-blocked.
// Each invocation computes PIX consecutive output pixels of one row × COB4·4
// output channels of one group, held in registers. No im2col buffer, no
// workgroup memory, no barriers.
//
// Bindings (group 0):
//   0 uniform Params                  runtime sizes (struct below)
//   1 input  : array<f32>        [n, c_in, h_in, w_in]
//   2 weight : uniform array<vec4<f32>, WCAP>, a window of the weight repacked once at layer
//              creation: [groups][blocks_per_group][c_in/groups][k_h][K_W][COB4] vec4s;
//              output channels past c_out/groups in a group's last block are zero.
//              Uniform because every invocation of a workgroup reads the same weights (see
//              plan::tiled_weight_cap); a window holds at most WCAP vec4s, so a channel block
//              whose weights are larger runs as reduction segments (below).
//   3 bias   : array<f32>        [c_out]                    (zeros if none)
//   4 output : array<f32>        [n, c_out, h_out, w_out]
//   5 residual : array<f32>      [n, c_out, h_out, w_out]   (RES = 1 only; see below)
//
// Chunks and folding (host side: src/chunk.rs). One dispatch runs one chunk of the grid
// below: x items [x0, x_end) (whole output rows), y units from y0, images from z0, as the
// logical grid (grid_x, grid_y, grid_z) that logical_wid() recovers from the (possibly folded)
// dispatch. Indices are computed in global coordinates; each storage binding is a window of its
// tensor: element i of the binding is global element i + in_base / w_base / out_base (in the
// binding's element type), and input / output channel planes are in_cstride / out_cstride
// elements apart (h·w, or rows·w for a row band the host staged through a scratch buffer).
// The host guarantees that every index this kernel computes lies inside its window.
//
// Grid: x = pixel block within an output plane (oh · blocks_w + blk), y = channel
// block cb (g = cb / blocks_per_group), z = batch n. Every invocation of a workgroup
// shares y, so every weight load is uniform across the workgroup.
// An invocation's PIX pixels are Q columns apart: ow = ow0 + px·Q with
// ow0 = blk % Q + (blk / Q)·PIX·Q (blocks_w = Q · blocks per phase). Q = 1 for dense
// rows; with dilation, Q = D_W / gcd(S_W, D_W) makes neighbouring pixels share taps.
// Index math (taps outside the input read zero):
//   out[n, co, oh, ow] = act(bias[co] + Σ_{ci, kh, kw} w[co, ci, kh, kw]
//       · x[n, g·(c_in/groups) + ci, oh·stride_h − pad_top + kh·dil_h, ow·S_W − pad_left + kw·D_W])
// For each (ci, kh) the input row segment the PIX pixels need — SEG values — is loaded once
// and reused across all K_W taps, PIX pixels and COB4·4 channels.
//
// Reduction segments: a dispatch sums input channels [ci0, ci1) of the group. With ACC_IN the
// accumulators start from the partial sums the previous segment stored in the output; without
// FINAL the raw sums are stored, with it the bias is added and the activation applied. The
// partial sums are f32 values stored and reloaded exactly, and each segment continues the
// same sequence of fma operations, so a split reduction is bit-identical to an unsplit one.
// Only layers the host will split compile that code (SEGS = 1); the rest always finish.
//
// `main` below is the readable loop form. The pipeline cache compiles the same
// computation unrolled by src/codegen.rs (which replaces the text between the
// `generated` markers): named accumulators instead of private arrays, and only the
// distinct input columns loaded — CPU drivers run that form about 2× faster.

// specialise:begin
const PIX: u32 = 4u;
const COB4: u32 = 2u;
const K_W: u32 = 3u;
const S_W: u32 = 1u;
const D_W: u32 = 1u;
// Column spacing of an invocation's pixels (see the grid below).
const Q: u32 = 1u;
// KH1 = 1: the kernel is one row high (the generated form has no kh loop).
const KH1: u32 = 0u;
// vec4s in the weight window (a power of two; see the bindings above).
const WCAP: u32 = 4096u;
// WST = 1: the weight is bound as a storage window of any size (array<vec4<f32>>) instead of
// a uniform one of WCAP vec4s (WCAP is then 0), so no layer is split by weight windows; see
// plan::storage_weights.
const WST: u32 = 0u;
// SEGS = 1: the layer runs as reduction segments (the flags below are read).
const SEGS: u32 = 1u;
// VIN = 1: the generated form binds the input as array<vec4<f32>> and reads the columns as
// aligned vec4s, the first column at position VA of its vec4 (see plan::tiled_vec4_input).
// VIN = 2 (K_W = S_W = Q = 1, no column padding): it reads the PIX/4 + 1 vec4s holding a
// tile's columns wherever the first sits, and shifts them into place (rows of any length,
// e.g. pointwise planes run as one row of 49 floats; see plan::tiled_shifted_input and
// codegen::shifted_row_loads). The loop form below always reads scalars.
const VIN: u32 = 0u;
const VA: u32 = 0u;
// TIN = 1: the generated form reads its input (vec4s or scalars) from an Rgba32Float texture that
// holds the whole input tensor, through textureLoad (see plan::texture_input and
// pipelines::texture_input, which rewrites the binding and the loads). TIN = 2: the same
// through a read-only storage texture (see plan::storage_texture_reads).
const TIN: u32 = 0u;
// TWT = 1 (with WST = 1): the weight is read from an Rgba32Float texture copy of the layer's
// weight buffer (made once per layer), through textureLoad (see plan::weight_texture); TWT = 2:
// a read-only storage texture.
const TWT: u32 = 0u;
// VOUT = 1: the generated form binds the output as array<vec4<f32>> and stores each
// channel's 4 neighbouring pixels as one aligned vec4 (see plan::tiled_vec4_output).
const VOUT: u32 = 0u;
// SG > 0: the device runs subgroups of exactly SG invocations, and the generated form reads
// each weight once per subgroup and broadcasts it (see plan::subgroup_weights); the loop
// form below reads them directly.
const SG: u32 = 0u;
// CU: input channels per step of the generated form's reduction loop (the host makes every
// reduction segment a multiple of CU; see plan::channels_per_step); the loop form below
// takes one channel per step.
const CU: u32 = 1u;
// KHU: the generated form unrolls the kernel's KHU rows (KHU = k_h; rows outside the image
// read zeros) instead of looping over the rows inside the image; 0: the loop. See
// plan::unrolled_rows; the loop form below ignores it.
const KHU: u32 = 0u;
const ACT: u32 = 0u;
// RES = 1: a residual tensor of the output's shape is added to each output after the bias and
// before the activation (a convolution fused with the residual add after it; see
// ops::ConvLayer::record_residual_into). It is bound as a window exactly like the output's
// (same base and channel stride), so it is read at the output's own index. RES = 0 modules do
// not declare binding 5 (pipelines::residual_binding removes it).
const RES: u32 = 0u;
// specialise:end

struct Params {
    n: u32, c_in: u32, h_in: u32, w_in: u32,
    c_out: u32, h_out: u32, w_out: u32, groups: u32,
    c_in_per_group: u32, c_out_per_group: u32, k_h: u32, k_w: u32,
    stride_h: u32, stride_w: u32, dil_h: u32, dil_w: u32,
    pad_top: u32, pad_left: u32, act: u32, alpha: f32,
    blocks_w: u32, blocks_per_group: u32, tap_step_h: u32, x_end: u32,
    // Chunk origin and windows (set per chunk by the host; see the header comment).
    x0: u32, y0: u32, z0: u32, w_base: u32,
    in_base: u32, in_cstride: u32, out_base: u32, out_cstride: u32,
    // Logical grid of this chunk and the dispatch it is folded into.
    grid_x: u32, grid_y: u32, grid_z: u32, disp_x: u32,
    disp_y: u32, ci0: u32, ci1: u32, flags: u32,
}

const WG: u32 = 64u;
// Params.flags bits.
const ACC_IN: u32 = 1u;
const FINAL: u32 = 2u;
const SEG: u32 = (PIX - 1u) * Q * S_W + (K_W - 1u) * D_W + 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<uniform> weight: array<vec4<f32>, WCAP>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;

// Logical workgroup id within this chunk's grid (grid_x, grid_y, grid_z), unfolded from the
// dispatch (disp_x, disp_y, ·) the host folded it into when a dimension exceeded the device's
// workgroups-per-dimension limit. z >= grid_z marks a padding workgroup, which must return.
fn logical_wid(wid: vec3<u32>) -> vec3<u32> {
    let l = (wid.z * p.disp_y + wid.y) * p.disp_x + wid.x;
    let gxy = p.grid_x * p.grid_y;
    return vec3<u32>(l % p.grid_x, (l % gxy) / p.grid_x, l / gxy);
}

// Activation codes: 0 none, 1 relu, 2 relu6, 3 leaky_relu(alpha), 4 silu.
fn activate(v: f32) -> f32 {
    switch ACT {
        case 1u: { return max(v, 0.0); }
        case 2u: { return clamp(v, 0.0, 6.0); }
        case 3u: { return select(p.alpha * v, v, v >= 0.0); }
        case 4u: { return v / (1.0 + exp(-v)); }
        default: { return v; }
    }
}

// generated:begin
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let lw = logical_wid(wid);
    if lw.z >= p.grid_z {
        return;
    }
    let item = p.x0 + lw.x * WG + lid;
    if item >= p.x_end {
        return;
    }
    let oh = item / p.blocks_w;
    let blk = item % p.blocks_w;
    let ow0 = blk % Q + (blk / Q) * (PIX * Q);
    let cb = p.y0 + lw.y;
    let n = p.z0 + lw.z;
    let g = cb / p.blocks_per_group;
    let co_in_group0 = (cb % p.blocks_per_group) * (COB4 * 4u);
    let cpg = p.c_in_per_group;
    let plane = p.in_cstride;
    let ih0 = i32(oh * p.stride_h) - i32(p.pad_top);
    let iw0 = i32(ow0 * S_W) - i32(p.pad_left);
    let hin = i32(p.h_in);
    let win = i32(p.w_in);

    var acc: array<vec4<f32>, PIX * COB4>;
    let o_base = (n * p.c_out + g * p.c_out_per_group + co_in_group0) * p.out_cstride + oh * p.w_out - p.out_base;
    if SEGS == 1u && (p.flags & ACC_IN) != 0u {
        for (var px = 0u; px < PIX; px++) {
            let ow = ow0 + px * Q;
            for (var c = 0u; c < COB4; c++) {
                for (var j = 0u; j < 4u; j++) {
                    if ow < p.w_out && co_in_group0 + c * 4u + j < p.c_out_per_group {
                        acc[px * COB4 + c][j] = output[o_base + (c * 4u + j) * p.out_cstride + ow];
                    }
                }
            }
        }
    }
    var x_plane = (n * p.c_in + g * cpg + p.ci0) * plane;
    let taps = p.k_h * K_W;
    var w_at = (cb * cpg + p.ci0) * taps * COB4 - p.w_base;
    for (var ci = p.ci0; ci < p.ci1; ci++) {
        for (var kh = 0u; kh < p.k_h; kh++) {
            let ih = ih0 + i32(kh * p.dil_h);
            if ih >= 0 && ih < hin {
                let row = x_plane + u32(ih) * p.w_in - p.in_base;
                var seg: array<f32, SEG>;
                for (var s = 0u; s < SEG; s++) {
                    let iw = iw0 + i32(s);
                    let v = input[row + u32(clamp(iw, 0, win - 1))];
                    seg[s] = select(0.0, v, iw >= 0 && iw < win);
                }
                for (var kw = 0u; kw < K_W; kw++) {
                    for (var c = 0u; c < COB4; c++) {
                        let w = weight[w_at + (kh * K_W + kw) * COB4 + c];
                        for (var px = 0u; px < PIX; px++) {
                            acc[px * COB4 + c] += seg[px * Q * S_W + kw * D_W] * w;
                        }
                    }
                }
            }
        }
        x_plane += plane;
        w_at += taps * COB4;
    }

    for (var px = 0u; px < PIX; px++) {
        let ow = ow0 + px * Q;
        if ow >= p.w_out {
            break;
        }
        for (var c = 0u; c < COB4; c++) {
            for (var j = 0u; j < 4u; j++) {
                let co_local = co_in_group0 + c * 4u + j;
                if co_local < p.c_out_per_group {
                    let co = g * p.c_out_per_group + co_local;
                    var v = acc[px * COB4 + c][j];
                    let o = (n * p.c_out + co) * p.out_cstride + oh * p.w_out + ow - p.out_base;
                    if SEGS == 0u || (p.flags & FINAL) != 0u {
                        v += bias[co];
                        if RES == 1u {
                            v += residual[o];
                        }
                        v = activate(v);
                    }
                    output[o] = v;
                }
            }
        }
    }
}
// generated:end
